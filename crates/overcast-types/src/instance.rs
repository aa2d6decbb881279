//! Instances: virtual machines on any provider, in overcast's common shape.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;
use utoipa::ToSchema;

/// The common states of every provider's machines.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    Pending,
    Running,
    Stopping,
    Stopped,
    Rebooting,
    Terminating,
    Terminated,
    Error,
}

impl InstanceState {
    pub const ALL: [InstanceState; 8] = [
        InstanceState::Pending,
        InstanceState::Running,
        InstanceState::Stopping,
        InstanceState::Stopped,
        InstanceState::Rebooting,
        InstanceState::Terminating,
        InstanceState::Terminated,
        InstanceState::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Pending => "pending",
            InstanceState::Running => "running",
            InstanceState::Stopping => "stopping",
            InstanceState::Stopped => "stopped",
            InstanceState::Rebooting => "rebooting",
            InstanceState::Terminating => "terminating",
            InstanceState::Terminated => "terminated",
            InstanceState::Error => "error",
        }
    }

    pub fn parse(field: &str, s: &str) -> Result<Self, crate::Error> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| {
                crate::Error::invalid(
                    field,
                    format!("`{s}` is not an instance state; use one of pending, running, stopping, stopped, rebooting, terminating, terminated, error"),
                )
            })
    }

    /// Gone for good: nothing but listing applies any more.
    pub fn is_gone(self) -> bool {
        matches!(self, InstanceState::Terminating | InstanceState::Terminated)
    }
}

/// A virtual machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Instance {
    /// The provider's own id, e.g. `i-0abc...`.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub environment: String,
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// From the environment's stage tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    pub state: InstanceState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip: Option<String>,
    /// Where to reach the guest's SSH (`HOST:PORT`) when it differs from its IP address,
    /// e.g. a local VM's forwarded port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_address: Option<String>,
    /// Why the instance is in its state, when the provider knows something worth saying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_pair: Option<String>,
    #[serde(default)]
    pub security_groups: Vec<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub launched_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The org that owns it: its `overcast:org` tag, else the environment's default org.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
}

impl Instance {
    /// An instance known only by its id, place and state; the rest is empty.
    pub fn new(id: &str, environment: &str, region: &str, state: InstanceState) -> Self {
        Instance {
            id: id.into(),
            name: None,
            environment: environment.into(),
            region: region.into(),
            zone: None,
            stage: None,
            state,
            instance_type: None,
            image: None,
            private_ip: None,
            public_ip: None,
            ssh_address: None,
            state_reason: None,
            key_pair: None,
            security_groups: vec![],
            launched_at: None,
            tags: BTreeMap::new(),
            org: None,
        }
    }
}

/// A machine image the environment's account owns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Image {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub region: String,
    /// The backend's state, e.g. `available`, `pending`, `failed`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Snapshots that back the image; deleted with it.
    #[serde(default)]
    pub snapshots: Vec<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
}

/// A resource an org owns through its tags.
pub trait Owned {
    fn tags(&self) -> &BTreeMap<String, String>;
    fn org(&self) -> Option<&str>;
    fn set_org(&mut self, org: Option<String>);
}

/// Implements [`Owned`] for types with `tags` and `org` fields.
#[macro_export]
macro_rules! owned_by_tags {
    ($($t:ty),*) => {$(
        impl $crate::Owned for $t {
            fn tags(&self) -> &std::collections::BTreeMap<String, String> {
                &self.tags
            }
            fn org(&self) -> Option<&str> {
                self.org.as_deref()
            }
            fn set_org(&mut self, org: Option<String>) {
                self.org = org;
            }
        }
    )*};
}

owned_by_tags!(Instance, Image, crate::SecurityGroup);

/// Tags overcast puts on everything it creates.
pub mod tags {
    /// What overcast's own keys start with.
    pub const PREFIX: &str = "overcast:";
    pub const ORG: &str = "overcast:org";
    pub const CREATED_BY: &str = "overcast:created-by";
    pub const OPERATION: &str = "overcast:operation";
    pub const NAME: &str = "Name";

    /// Keys a caller may not set or remove: overcast owns them.
    pub fn is_reserved(key: &str) -> bool {
        key.starts_with(PREFIX) || key.starts_with("aws:")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_parse_and_say_when_gone() {
        assert_eq!(
            InstanceState::parse("state", "stopped").unwrap(),
            InstanceState::Stopped
        );
        assert_eq!(
            InstanceState::parse("state", "asleep")
                .unwrap_err()
                .field
                .as_deref(),
            Some("state")
        );
        assert!(InstanceState::Terminated.is_gone() && !InstanceState::Stopped.is_gone());
        assert!(tags::is_reserved("overcast:org") && !tags::is_reserved("team"));
    }
}
