//! Domain values of overcast: roles, names, stages, operations, audit entries, tokens, pages,
//! secrets and parameters, container services, and the public [`Error`]. This crate does no IO, so every layer can share it.

mod containers;
mod error;
mod event;
mod firewall;
mod instance;
mod operation;
mod secrets;
mod stage;
mod storage;

pub use containers::{
    validate_container_name, CapacityShare, Cluster, Container, ContainerLogs, ContainerService,
    Deployment, LogLine, LogSettings, PortMapping, Registry, ServiceEvent, Task, TaskContainer,
    TaskDefinition,
};
pub use error::{Error, ErrorKind};
pub use event::{Event, EventKind};
pub use firewall::{Direction, Protocol, Rule, SecurityGroup};
pub use instance::{tags, Image, Instance, InstanceState, Owned};
pub use operation::{
    AccessKey, AuditEntry, Operation, OperationError, OperationStatus, Progress, TargetOutcome,
    TargetResult, TokenInfo,
};
pub use secrets::{
    validate_parameter_path, validate_secret_name, Parameter, ParameterType, Secret, SecretData,
    SecretValue,
};
pub use stage::StagePolicy;
pub use storage::{
    validate_bucket_name, validate_object_key, Bucket, ByteRange, ObjectInfo, ObjectListing,
    ObjectSummary, PresignedUrl,
};

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use utoipa::ToSchema;

/// What a token may do. Ordered: each role may do everything the one before it may.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads resources, operations and the audit log of its org.
    Viewer,
    /// Also creates, changes and deletes resources of its org.
    Operator,
    /// Also manages tokens, and sees and acts on every org.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            other => Err(Error::invalid(
                "role",
                format!("`{other}` is not a role; use viewer, operator or admin"),
            )),
        }
    }
}

/// Checks a user-chosen name (org, token, environment, machine type): 1 to 63 characters,
/// lowercase letters, digits, `-`, `_` and `.`, starting with a letter or digit. The same
/// rule everywhere keeps names safe in URLs, tags and file paths.
pub fn validate_name(field: &str, value: &str) -> Result<(), Error> {
    let ok_start = value
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ok_chars = value
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
    if value.is_empty() || value.len() > 63 || !ok_start || !ok_chars {
        return Err(Error::invalid(
            field,
            format!(
                "`{value}` is not a valid name: use 1 to 63 lowercase letters, digits, '-', '_' or '.', starting with a letter or digit"
            ),
        ));
    }
    Ok(())
}

/// One page of a listing. `next_page_token` is absent on the last page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
    /// For listings served from the server's inventory: when the backend was read for
    /// them (the oldest read of the regions listed).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub as_of: Option<time::OffsetDateTime>,
}

impl<T> Page<T> {
    /// A listing that fits one page: every item, no next page.
    pub fn whole(items: Vec<T>) -> Self {
        Page::of(items, None)
    }

    /// A page and the token of the next one.
    pub fn of(items: Vec<T>, next_page_token: Option<String>) -> Self {
        Page {
            items,
            next_page_token,
            as_of: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_by_power() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
        assert_eq!("operator".parse::<Role>().unwrap(), Role::Operator);
        let err = "root".parse::<Role>().unwrap_err();
        assert_eq!(err.field.as_deref(), Some("role"));
    }

    #[test]
    fn names_are_checked() {
        for good in ["dev", "aws-dev", "team_1.eu", "0x"] {
            validate_name("name", good).unwrap();
        }
        for bad in ["", "Dev", "-dev", "a b", "ü", &"a".repeat(64)] {
            let err = validate_name("org", bad).unwrap_err();
            assert_eq!(err.field.as_deref(), Some("org"), "{bad}");
        }
    }
}
