//! Container services (ECS Fargate on AWS): clusters, task definitions, services and
//! tasks, as overcast shows them whatever the backend.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

use crate::Error;

/// A capacity provider's share of a cluster's or service's tasks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CapacityShare {
    /// `FARGATE` or `FARGATE_SPOT`.
    pub provider: String,
    #[serde(default)]
    pub weight: u32,
    /// How many tasks run on this provider before weights apply.
    #[serde(default)]
    pub base: u32,
}

/// A cluster: where services and tasks run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Cluster {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    pub region: String,
    /// `ACTIVE`, `PROVISIONING`, `DEPROVISIONING`, `FAILED`, `INACTIVE`.
    pub status: String,
    #[serde(default)]
    pub capacity_providers: Vec<String>,
    #[serde(default)]
    pub default_strategy: Vec<CapacityShare>,
    #[serde(default)]
    pub active_services: u32,
    #[serde(default)]
    pub running_tasks: u32,
    #[serde(default)]
    pub pending_tasks: u32,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
}

crate::owned_by_tags!(Cluster);

/// A port a container listens on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PortMapping {
    pub container_port: u16,
    /// `tcp` (default) or `udp`.
    #[serde(default = "default_protocol")]
    pub protocol: String,
}

fn default_protocol() -> String {
    "tcp".into()
}

/// Where a container's output goes: a CloudWatch Logs group (made when missing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub group: String,
    /// The prefix of each task's log stream (`PREFIX/CONTAINER/TASK-ID`).
    pub stream_prefix: String,
}

/// One container of a task definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Container {
    pub name: String,
    pub image: String,
    /// CPU units (1024 = one vCPU); within the task's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<u32>,
    /// Hard limit in MiB; within the task's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u32>,
    #[serde(default = "default_true")]
    pub essential: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortMapping>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<LogSettings>,
    /// Environment variables set from secrets: the variable's name and the secret's ARN.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, String>,
    /// The ARN of the secret holding the credentials of a private image's registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_credentials: Option<String>,
}

fn default_true() -> bool {
    true
}

/// A task definition revision: what a task runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskDefinition {
    pub family: String,
    pub revision: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    pub region: String,
    /// `ACTIVE` or `INACTIVE` (deregistered).
    pub status: String,
    /// Task CPU units, e.g. `256` (0.25 vCPU).
    pub cpu: String,
    /// Task memory in MiB, e.g. `512`.
    pub memory: String,
    pub containers: Vec<Container>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_role: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
}

crate::owned_by_tags!(TaskDefinition);

impl TaskDefinition {
    /// `family:revision`, the name ECS takes wherever it takes an ARN.
    pub fn name(&self) -> String {
        format!("{}:{}", self.family, self.revision)
    }
}

/// One rollout of a service's task definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Deployment {
    pub id: String,
    /// `PRIMARY` (the newest), `ACTIVE` (being replaced) or `INACTIVE`.
    pub status: String,
    pub task_definition: String,
    pub desired_count: u32,
    pub running_count: u32,
    pub pending_count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// Something the scheduler said about a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServiceEvent {
    pub id: String,
    pub at: String,
    pub message: String,
}

/// A long-running service: tasks of one task definition kept at a desired count.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ContainerService {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    pub cluster: String,
    pub region: String,
    /// `ACTIVE`, `DRAINING` or `INACTIVE`.
    pub status: String,
    pub task_definition: String,
    pub desired_count: u32,
    pub running_count: u32,
    pub pending_count: u32,
    /// `FARGATE`, or empty when a capacity provider strategy is used.
    #[serde(default)]
    pub launch_type: String,
    #[serde(default)]
    pub capacity_strategy: Vec<CapacityShare>,
    #[serde(default)]
    pub subnets: Vec<String>,
    #[serde(default)]
    pub security_groups: Vec<String>,
    #[serde(default)]
    pub public_ip: bool,
    /// Service discovery registries (Cloud Map service ARNs).
    #[serde(default)]
    pub registries: Vec<String>,
    #[serde(default)]
    pub deployments: Vec<Deployment>,
    /// The most recent first.
    #[serde(default)]
    pub events: Vec<ServiceEvent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
}

crate::owned_by_tags!(ContainerService);

/// One container of a running or stopped task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TaskContainer {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A task: one run of a task definition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Task {
    /// The last part of its ARN.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    pub cluster: String,
    pub region: String,
    pub task_definition: String,
    /// The service that started it, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// `PROVISIONING`, `PENDING`, `RUNNING`, `STOPPED`, ...
    pub last_status: String,
    pub desired_status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_reason: Option<String>,
    #[serde(default)]
    pub containers: Vec<TaskContainer>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
}

crate::owned_by_tags!(Task);

/// A service discovery service (Cloud Map): the name a service's tasks register under in a
/// namespace.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Registry {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    pub region: String,
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_ttl: Option<u32>,
    #[serde(default)]
    pub instance_count: u32,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
}

crate::owned_by_tags!(Registry);

/// One line a container logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LogLine {
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    pub message: String,
}

/// A page of one container's log lines in one task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ContainerLogs {
    pub task: String,
    pub container: String,
    pub group: String,
    pub stream: String,
    pub lines: Vec<LogLine>,
    /// Where the next page starts; absent at the end of what is there now (a follower asks
    /// again later with the last token it had).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// A cluster, service or task definition family name as ECS takes it: 1 to 255 letters,
/// digits, hyphens and underscores.
pub fn validate_container_name(field: &str, name: &str) -> Result<(), Error> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if name.is_empty() || name.len() > 255 || !name.chars().all(allowed) {
        return Err(Error::invalid(
            field,
            "use 1 to 255 letters, digits, hyphens and underscores",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_as_ecs_checks_them() {
        assert!(validate_container_name("name", "web_api-2").is_ok());
        for bad in ["", "web api", "web/api", &"x".repeat(256)] {
            let e = validate_container_name("name", bad).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("name"), "{bad:?}");
        }
    }
}
