//! The `Compute` capability: virtual machines.

use async_trait::async_trait;
use overcast_types::{Instance, InstanceState};
use std::collections::BTreeMap;

use serde::de::DeserializeOwned;

use crate::{parse_settings, ProviderError, ProviderErrorKind, Table};

/// What to launch.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LaunchSpec {
    pub region: String,
    pub image: String,
    pub instance_type: String,
    /// Launch at least this many, or none.
    pub min_count: u32,
    /// Launch at most this many.
    pub max_count: u32,
    pub key_pair: Option<String>,
    pub security_groups: Vec<String>,
    pub subnet: Option<String>,
    pub zone: Option<String>,
    /// Base64, as the backend takes it.
    pub user_data: Option<String>,
    /// Applied at launch, never in a second call.
    pub tags: BTreeMap<String, String>,
    /// Makes a repeated launch call a no-op where the backend honours it.
    pub client_token: String,
    /// For providers sized by numbers rather than named types (qemu).
    #[serde(default)]
    pub size: Option<MachineSize>,
    /// The `Name` tag's value, for providers that use it as the host name.
    #[serde(default)]
    pub name: Option<String>,
}

/// How a create asks to size its machines, before the provider resolves it: the request's
/// own values override the machine type's.
#[derive(Debug, Clone, Copy, Default)]
pub struct SizeRequest<'a> {
    /// A machine type's name and its entry for this provider (`None`: it has none).
    pub machine_type: Option<(&'a str, Option<&'a Table>)>,
    pub image: Option<&'a str>,
    pub instance_type: Option<&'a str>,
    pub cpus: Option<u32>,
    pub memory_mb: Option<u64>,
    pub disk_gb: Option<u64>,
}

impl SizeRequest<'_> {
    /// The named machine type's entry for `provider`, parsed as that provider's type; none
    /// when no machine type was named. A machine type without an entry for this provider,
    /// or with one it cannot read, is bad input naming `machine_type`.
    pub fn machine_entry<T: DeserializeOwned>(
        &self,
        provider: &str,
    ) -> Result<Option<T>, ProviderError> {
        let Some((name, entry)) = self.machine_type else {
            return Ok(None);
        };
        let invalid = |message: String| {
            ProviderError::new(ProviderErrorKind::InvalidInput, "invalid_input", message)
                .with_field("machine_type")
        };
        let entry = entry.ok_or_else(|| {
            invalid(format!(
                "machine type `{name}` has no size for provider {provider}"
            ))
        })?;
        let (machine, _) = parse_settings::<T>(entry)
            .map_err(|p| invalid(format!("machine type `{name}`: {}", p.message)))?;
        Ok(Some(machine))
    }

    /// The fields of a size in numbers that the request gives, by name.
    pub fn numbers_given(&self) -> Vec<&'static str> {
        [
            ("cpus", self.cpus.is_some()),
            ("memory_mb", self.memory_mb.is_some()),
            ("disk_gb", self.disk_gb.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect()
    }
}

/// A create's machines as the provider sizes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchSize {
    pub image: String,
    /// The provider's type name; for providers sized in numbers, the machine type's name
    /// or `custom`.
    pub instance_type: String,
    pub size: Option<MachineSize>,
}

/// What an environment puts into a launch that names none of its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaunchDefaults {
    pub key_pair: Option<String>,
    pub security_groups: Vec<String>,
    pub subnet: Option<String>,
}

/// A machine's size in numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MachineSize {
    pub cpus: u32,
    pub memory_mb: u64,
    pub disk_gb: u64,
}

/// Which instances to list. Every given part must match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceFilter {
    /// One region; default: all of the environment's.
    pub region: Option<String>,
    pub ids: Vec<String>,
    pub tags: BTreeMap<String, String>,
    pub states: Vec<InstanceState>,
}

/// A lifecycle action on instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Start,
    Stop { force: bool },
    Reboot,
    Terminate,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop { .. } => "stop",
            Action::Reboot => "reboot",
            Action::Terminate => "terminate",
        }
    }

    /// The state the instance ends in.
    pub fn target_state(self) -> InstanceState {
        match self {
            Action::Start | Action::Reboot => InstanceState::Running,
            Action::Stop { .. } => InstanceState::Stopped,
            Action::Terminate => InstanceState::Terminated,
        }
    }
}

/// Attributes to change on one instance; `None` leaves one as it is.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InstanceChange {
    pub instance_type: Option<String>,
    pub termination_protection: Option<bool>,
    /// Base64, as the backend takes it.
    pub user_data: Option<String>,
    pub security_groups: Option<Vec<String>>,
}

/// Virtual machines of one environment.
#[async_trait]
pub trait Compute: Send + Sync {
    /// Resolves the image and size of a create, or says which field is missing or wrong.
    fn size_launch(&self, request: &SizeRequest<'_>) -> Result<LaunchSize, ProviderError>;

    /// The environment's defaults for a launch that names no key pair, groups or subnet.
    fn launch_defaults(&self) -> LaunchDefaults {
        LaunchDefaults::default()
    }

    /// Instances matching the filter, across the filter's region or all regions. Tags are
    /// the raw provider tags; stage and org are the core's to derive.
    async fn list_instances(&self, filter: &InstanceFilter)
        -> Result<Vec<Instance>, ProviderError>;

    /// Whether a launch would be allowed (the backend's dry run); launches nothing.
    async fn check_launch(&self, spec: &LaunchSpec) -> Result<(), ProviderError>;

    /// Launches instances, tagged at launch, in one attempt: a provider must not repeat a
    /// launch whose answer it lost, since the launch may have landed and not every backend
    /// honours the client token. The caller looks for what an attempt made (by the
    /// `overcast:operation` tag) before it tries again.
    async fn run_instances(&self, spec: &LaunchSpec) -> Result<Vec<Instance>, ProviderError>;

    /// The most instance ids one [`Compute::act`] or tag call takes (EC2: 1,000); plans batch
    /// their targets by it.
    fn max_ids_per_call(&self) -> usize;

    /// Asks for an action on instances of one region; does not wait for the state.
    async fn act(&self, region: &str, ids: &[String], action: Action) -> Result<(), ProviderError>;

    /// The availability zones of a region.
    async fn zones(&self, region: &str) -> Result<Vec<String>, ProviderError>;

    /// Changes attributes of one instance; the caller has checked the preconditions.
    async fn modify_instance(
        &self,
        region: &str,
        id: &str,
        change: &InstanceChange,
    ) -> Result<(), ProviderError>;

    /// The instance's serial console output so far.
    async fn console_output(&self, region: &str, id: &str) -> Result<String, ProviderError>;
}
