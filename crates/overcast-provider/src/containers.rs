//! The `Containers` capability: clusters, task definitions, services and tasks of a
//! container service (ECS Fargate on AWS). Creates make one attempt (see
//! [`crate::Compute::run_instances`]) and carry the caller's tags, so a retried step looks
//! for what an earlier try made before it makes anything.

use async_trait::async_trait;
use overcast_types::{CapacityShare, Cluster, Container, ContainerService, Task, TaskDefinition};
use std::collections::BTreeMap;

use crate::ProviderError;

/// What a new cluster is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSpec {
    pub region: String,
    pub name: String,
    /// The capacity providers it may use, e.g. `FARGATE` and `FARGATE_SPOT`.
    pub capacity_providers: Vec<String>,
    pub default_strategy: Vec<CapacityShare>,
    pub tags: BTreeMap<String, String>,
}

/// What a task definition revision is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskDefinitionSpec {
    pub region: String,
    pub family: String,
    pub cpu: String,
    pub memory: String,
    pub containers: Vec<Container>,
    pub execution_role: Option<String>,
    pub task_role: Option<String>,
    pub tags: BTreeMap<String, String>,
}

/// What a new service is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    pub region: String,
    pub cluster: String,
    pub name: String,
    /// `family:revision` or an ARN.
    pub task_definition: String,
    pub desired_count: u32,
    /// Empty: the `FARGATE` launch type.
    pub capacity_strategy: Vec<CapacityShare>,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub public_ip: bool,
    pub registries: Vec<String>,
    pub tags: BTreeMap<String, String>,
    /// Makes a repeated create one service where the backend honours it.
    pub client_token: String,
}

/// A change to a service; what is `None` stays.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceUpdate {
    pub desired_count: Option<u32>,
    pub task_definition: Option<String>,
    pub force_new_deployment: bool,
}

/// What a run of tasks is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct RunTaskSpec {
    pub region: String,
    pub cluster: String,
    pub task_definition: String,
    pub count: u32,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub public_ip: bool,
    /// Per container: its command and environment for this run.
    pub overrides: BTreeMap<String, ContainerOverride>,
    pub tags: BTreeMap<String, String>,
    /// Makes a repeated run one run where the backend honours it.
    pub client_token: String,
}

/// A container's command and environment for one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerOverride {
    pub command: Vec<String>,
    pub environment: BTreeMap<String, String>,
}

/// Which tasks of a cluster to list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskFilter {
    pub service: Option<String>,
    pub family: Option<String>,
    /// `RUNNING` (the default), `PENDING` or `STOPPED`.
    pub desired_status: Option<String>,
}

/// Container services of one environment's account. Every read answers resources with
/// their tags.
#[async_trait]
pub trait Containers: Send + Sync {
    async fn list_clusters(&self, region: &str) -> Result<Vec<Cluster>, ProviderError>;

    /// One cluster, with its counts; `None` if there is none (or it is inactive).
    async fn cluster(&self, region: &str, name: &str) -> Result<Option<Cluster>, ProviderError>;

    async fn create_cluster(&self, spec: &ClusterSpec) -> Result<Cluster, ProviderError>;

    async fn delete_cluster(&self, region: &str, name: &str) -> Result<(), ProviderError>;

    async fn register_task_definition(
        &self,
        spec: &TaskDefinitionSpec,
    ) -> Result<TaskDefinition, ProviderError>;

    /// The active revisions, of one family or all, as `family:revision`, oldest first.
    async fn list_task_definitions(
        &self,
        region: &str,
        family: Option<&str>,
    ) -> Result<Vec<String>, ProviderError>;

    /// A revision by `family:revision`, a family's latest by `family`, or an ARN.
    async fn task_definition(
        &self,
        region: &str,
        name: &str,
    ) -> Result<Option<TaskDefinition>, ProviderError>;

    async fn deregister_task_definition(
        &self,
        region: &str,
        name: &str,
    ) -> Result<(), ProviderError>;

    async fn create_service(&self, spec: &ServiceSpec) -> Result<ContainerService, ProviderError>;

    /// The services of a cluster, described.
    async fn list_services(
        &self,
        region: &str,
        cluster: &str,
    ) -> Result<Vec<ContainerService>, ProviderError>;

    /// One service with its deployments and recent events; `None` if there is none or it
    /// is inactive.
    async fn service(
        &self,
        region: &str,
        cluster: &str,
        name: &str,
    ) -> Result<Option<ContainerService>, ProviderError>;

    async fn update_service(
        &self,
        region: &str,
        cluster: &str,
        name: &str,
        update: &ServiceUpdate,
    ) -> Result<ContainerService, ProviderError>;

    /// Deletes a service (its tasks are stopped by the backend).
    async fn delete_service(
        &self,
        region: &str,
        cluster: &str,
        name: &str,
    ) -> Result<(), ProviderError>;

    async fn run_task(&self, spec: &RunTaskSpec) -> Result<Vec<Task>, ProviderError>;

    /// The tasks of a cluster a filter selects, described.
    async fn list_tasks(
        &self,
        region: &str,
        cluster: &str,
        filter: &TaskFilter,
    ) -> Result<Vec<Task>, ProviderError>;

    async fn task(
        &self,
        region: &str,
        cluster: &str,
        id: &str,
    ) -> Result<Option<Task>, ProviderError>;

    async fn stop_task(
        &self,
        region: &str,
        cluster: &str,
        id: &str,
        reason: &str,
    ) -> Result<Task, ProviderError>;
}

/// A page of log events: what a container wrote, one event per line it logged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogPage {
    pub events: Vec<LogEvent>,
    /// Where the next page starts; `None` at the end of what is there now.
    pub next_page_token: Option<String>,
}

/// One line a container logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    pub message: String,
}

/// Which events of a log stream to read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogQuery {
    /// From this time on (ms since the epoch), inclusive.
    pub start_ms: Option<i64>,
    /// Before this time (ms since the epoch).
    pub end_ms: Option<i64>,
    pub newest_first: bool,
    pub limit: u32,
    pub page_token: Option<String>,
}

/// What container services lean on: the log groups their containers write to, those
/// groups' events, and the role ECS pulls images and reads secrets with.
#[async_trait]
pub trait ContainerSupport: Send + Sync {
    /// Makes a log group unless one exists; answers whether this call made it.
    async fn ensure_log_group(
        &self,
        region: &str,
        group: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<bool, ProviderError>;

    /// A log group's tags; `None` if there is no such group.
    async fn log_group_tags(
        &self,
        region: &str,
        group: &str,
    ) -> Result<Option<BTreeMap<String, String>>, ProviderError>;

    async fn delete_log_group(&self, region: &str, group: &str) -> Result<(), ProviderError>;

    /// One page of a stream's events; an unknown stream is an empty page (a task that has
    /// logged nothing yet has none).
    async fn log_events(
        &self,
        region: &str,
        group: &str,
        stream: &str,
        query: &LogQuery,
    ) -> Result<LogPage, ProviderError>;

    /// The ARN of the task execution role named `name`, made when missing: trusted by ECS
    /// tasks, allowed to pull images, write logs and read secrets.
    async fn ensure_execution_role(&self, name: &str) -> Result<String, ProviderError>;
}

/// A service of a service discovery namespace (Cloud Map on AWS): the DNS name its
/// tasks register under.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistrySpec {
    pub region: String,
    pub namespace: String,
    pub name: String,
    /// Seconds a resolver keeps a task's A record.
    pub dns_ttl: u32,
    pub tags: BTreeMap<String, String>,
    /// Makes a repeated create one service.
    pub client_token: String,
}

/// Service discovery of one environment's account.
#[async_trait]
pub trait ServiceDiscovery: Send + Sync {
    /// A namespace's name (its DNS domain), or `None` when there is no such namespace (AWS
    /// refuses services in one that does not exist; moto does not, so overcast asks first).
    async fn namespace_name(
        &self,
        region: &str,
        namespace: &str,
    ) -> Result<Option<String>, ProviderError>;

    async fn list_registries(
        &self,
        region: &str,
        namespace: Option<&str>,
    ) -> Result<Vec<overcast_types::Registry>, ProviderError>;

    async fn registry(
        &self,
        region: &str,
        id: &str,
    ) -> Result<Option<overcast_types::Registry>, ProviderError>;

    async fn create_registry(
        &self,
        spec: &RegistrySpec,
    ) -> Result<overcast_types::Registry, ProviderError>;

    async fn delete_registry(&self, region: &str, id: &str) -> Result<(), ProviderError>;
}
