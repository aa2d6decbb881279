//! Container services of an environment, per org: clusters, task definitions, services and
//! tasks. Reads show only what the caller's org owns (by its `overcast:org` tag); every
//! change is an operation, and every create finds what an earlier try of its operation made
//! (by its `overcast:operation` tag) before it makes anything.

use async_trait::async_trait;
use overcast_provider::{
    ClusterSpec, ContainerOverride, Containers, LogPage, LogQuery, RegistrySpec, RunTaskSpec,
    ServiceSpec, ServiceUpdate, TaskDefinitionSpec, TaskFilter,
};
use overcast_types::{
    tags, validate_container_name, CapacityShare, Cluster, Container, ContainerLogs,
    ContainerService, Error, LogLine, Operation, Page, Registry, Role, TargetResult, Task,
    TaskDefinition,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

use crate::access::{made_by, owner_tags, visible_only, visible_or_404};
use crate::app::{Core, Idempotency, Target};
use crate::auth::Principal;
use crate::environments::Environment;
use crate::errors::provider_error;
use crate::operations::attempts::{find_or_create, repeatable};
use crate::operations::{Cancellation, Change, InEnvironment, OperationContext};
use crate::tags::check_tags;

/// The capacity providers a cluster gets unless told: on-demand and spot Fargate.
const DEFAULT_CAPACITY_PROVIDERS: [&str; 2] = ["FARGATE", "FARGATE_SPOT"];
/// The most tasks one run starts (ECS's limit).
const MAX_RUN_COUNT: u32 = 10;
/// The task execution role overcast makes when a task definition needs one and names none.
pub const EXECUTION_ROLE: &str = "overcast-ecs-task-execution";
/// The most log events one read answers.
pub const MAX_LOG_EVENTS: u32 = 10_000;

/// The log groups a task definition's containers write to.
pub(crate) fn log_groups(containers: &[Container]) -> Vec<String> {
    let mut groups: Vec<String> = containers
        .iter()
        .filter_map(|c| c.log.as_ref().map(|l| l.group.clone()))
        .collect();
    groups.sort();
    groups.dedup();
    groups
}

/// Whether ECS needs an execution role to run these containers: to write their logs, pull
/// from a private registry, or read their secrets.
fn needs_execution_role(containers: &[Container]) -> bool {
    containers
        .iter()
        .any(|c| c.log.is_some() || c.repository_credentials.is_some() || !c.secrets.is_empty())
}

/// Only the tags that say who owns a resource (for what a change makes besides its
/// target, such as a log group).
fn owner_only(tags: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    tags.iter()
        .filter(|(k, _)| k.starts_with("overcast:"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A new cluster.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClusterRequest {
    pub name: String,
    /// Default: the environment's first region.
    #[serde(default)]
    pub region: Option<String>,
    /// Default: `FARGATE` and `FARGATE_SPOT`.
    #[serde(default)]
    pub capacity_providers: Option<Vec<String>>,
    /// Default: every task on `FARGATE`.
    #[serde(default)]
    pub default_strategy: Option<Vec<CapacityShare>>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// One container of a new task definition. `secrets` and `repository_credentials` name
/// overcast secrets of the same environment and region, resolved to their ARNs.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainerRequest {
    pub name: String,
    pub image: String,
    #[serde(default)]
    pub cpu: Option<u32>,
    #[serde(default)]
    pub memory_mb: Option<u32>,
    #[serde(default)]
    pub essential: Option<bool>,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default)]
    pub ports: Vec<overcast_types::PortMapping>,
    #[serde(default)]
    pub log: Option<overcast_types::LogSettings>,
    /// Environment variable → overcast secret name.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// The overcast secret holding the private registry's credentials.
    #[serde(default)]
    pub repository_credentials: Option<String>,
}

/// A new task definition revision (Fargate, awsvpc).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterTaskDefinitionRequest {
    pub family: String,
    #[serde(default)]
    pub region: Option<String>,
    /// CPU units of the task, e.g. `256` (default) up to `16384`.
    #[serde(default)]
    pub cpu: Option<String>,
    /// Memory of the task in MiB, e.g. `512` (default).
    #[serde(default)]
    pub memory: Option<String>,
    pub containers: Vec<ContainerRequest>,
    /// The role ECS pulls images and reads secrets with (an ARN).
    #[serde(default)]
    pub execution_role: Option<String>,
    /// The role the task's code runs as (an ARN).
    #[serde(default)]
    pub task_role: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// Where a service's or a run's tasks are placed on the network, as an operation
/// records it.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub(crate) struct Placement {
    #[serde(default)]
    pub subnets: Vec<String>,
    #[serde(default)]
    pub security_groups: Vec<String>,
    #[serde(default)]
    pub public_ip: bool,
}

/// A new service.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateServiceRequest {
    pub name: String,
    /// `family:revision`, or a family for its latest revision (in a one-call create, the
    /// revision it registers when this is left out).
    #[serde(default)]
    pub task_definition: String,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default = "one")]
    pub desired_count: u32,
    #[serde(default)]
    pub subnets: Vec<String>,
    #[serde(default)]
    pub security_groups: Vec<String>,
    /// Give each task a public IP.
    #[serde(default)]
    pub public_ip: bool,
    /// Default: the `FARGATE` launch type.
    #[serde(default)]
    pub capacity_strategy: Vec<CapacityShare>,
    /// Service discovery registries (Cloud Map service ARNs).
    #[serde(default)]
    pub registries: Vec<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

fn one() -> u32 {
    1
}

/// A change to a service.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateServiceRequest {
    #[serde(default)]
    pub desired_count: Option<u32>,
    #[serde(default)]
    pub task_definition: Option<String>,
    /// Replace every task, e.g. to pull a moved image tag again.
    #[serde(default)]
    pub force_new_deployment: bool,
}

/// A run of tasks.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunTaskRequest {
    pub task_definition: String,
    #[serde(default)]
    pub region: Option<String>,
    /// 1 to 10 (default 1).
    #[serde(default = "one")]
    pub count: u32,
    #[serde(default)]
    pub subnets: Vec<String>,
    #[serde(default)]
    pub security_groups: Vec<String>,
    /// Give each task a public IP.
    #[serde(default)]
    pub public_ip: bool,
    /// Container name → its command and environment for this run.
    #[serde(default)]
    pub overrides: BTreeMap<String, OverrideRequest>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// A container's command and environment for one run.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OverrideRequest {
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
}

/// A new service discovery service in a Cloud Map namespace.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRegistryRequest {
    /// The namespace's id, e.g. `ns-...`.
    pub namespace: String,
    pub name: String,
    /// Seconds a resolver keeps a task's record (default 60).
    #[serde(default = "default_ttl")]
    pub dns_ttl: u32,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

fn default_ttl() -> u32 {
    60
}

/// Which of a task's log lines to read.
#[derive(Debug, Clone, Default)]
pub struct LogsRequest {
    /// Default: the task's only (or first) container with logs.
    pub container: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub newest_first: bool,
    pub limit: u32,
    pub page_token: Option<String>,
}

/// One change to container services, as an operation records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub(crate) enum ContainerChange {
    CreateCluster {
        region: String,
        name: String,
        capacity_providers: Vec<String>,
        default_strategy: Vec<CapacityShare>,
        tags: BTreeMap<String, String>,
    },
    /// Deletes a cluster; `recursive` first deletes its services and stops its tasks.
    DeleteCluster {
        region: String,
        name: String,
        recursive: bool,
    },
    RegisterTaskDefinition {
        region: String,
        family: String,
        cpu: String,
        memory: String,
        containers: Vec<Container>,
        execution_role: Option<String>,
        task_role: Option<String>,
        tags: BTreeMap<String, String>,
    },
    DeregisterTaskDefinition {
        region: String,
        name: String,
    },
    CreateService {
        region: String,
        cluster: String,
        name: String,
        task_definition: String,
        desired_count: u32,
        placement: Placement,
        capacity_strategy: Vec<CapacityShare>,
        registries: Vec<String>,
        tags: BTreeMap<String, String>,
    },
    UpdateService {
        region: String,
        cluster: String,
        name: String,
        desired_count: Option<u32>,
        task_definition: Option<String>,
        force_new_deployment: bool,
    },
    /// Scales a service to zero and deletes it; `recursive` then deregisters the revisions
    /// of its task definition family that the caller's org made and no other service uses.
    DeleteService {
        region: String,
        cluster: String,
        name: String,
        recursive: bool,
        /// The service's org: only what it made is taken away with the service.
        org: Option<String>,
        /// The service's task definition family and registries, as planned (so a re-run
        /// after the service is gone still knows them).
        #[serde(default)]
        family: Option<String>,
        #[serde(default)]
        registries: Vec<String>,
    },
    CreateRegistry {
        region: String,
        namespace: String,
        name: String,
        dns_ttl: u32,
        tags: BTreeMap<String, String>,
    },
    DeleteRegistry {
        region: String,
        id: String,
    },
    RunTask {
        region: String,
        cluster: String,
        task_definition: String,
        count: u32,
        placement: Placement,
        overrides: BTreeMap<String, OverrideRequest>,
        tags: BTreeMap<String, String>,
    },
    StopTask {
        region: String,
        cluster: String,
        id: String,
    },
}

impl ContainerChange {
    fn kind(&self) -> &'static str {
        match self {
            ContainerChange::CreateCluster { .. } => "cluster.create",
            ContainerChange::DeleteCluster { .. } => "cluster.delete",
            ContainerChange::RegisterTaskDefinition { .. } => "task_definition.register",
            ContainerChange::DeregisterTaskDefinition { .. } => "task_definition.deregister",
            ContainerChange::CreateService { .. } => "service.create",
            ContainerChange::UpdateService { .. } => "service.update",
            ContainerChange::DeleteService { .. } => "service.delete",
            ContainerChange::CreateRegistry { .. } => "registry.create",
            ContainerChange::DeleteRegistry { .. } => "registry.delete",
            ContainerChange::RunTask { .. } => "task.run",
            ContainerChange::StopTask { .. } => "task.stop",
        }
    }
}

/// Every container change. Creates look first for what an earlier try made by the
/// operation's tag; deletes and stops count what is already gone as done, so a re-run
/// after a crash does no harm.
pub(crate) struct ContainerChanges;

#[async_trait]
impl Change for ContainerChanges {
    const KINDS: &'static [&'static str] = &[
        "cluster.create",
        "cluster.delete",
        "task_definition.register",
        "task_definition.deregister",
        "service.create",
        "service.update",
        "service.delete",
        "registry.create",
        "registry.delete",
        "task.run",
        "task.stop",
    ];
    type Input = InEnvironment<ContainerChange>;

    fn kind(input: &InEnvironment<ContainerChange>) -> &'static str {
        input.change.kind()
    }

    async fn run(
        &self,
        input: InEnvironment<ContainerChange>,
        step: &mut OperationContext,
    ) -> Result<(), Error> {
        let env = step.environment(&input.environment)?;
        let operation_id = step.operation_id().to_string();
        let results = apply(
            env.as_ref(),
            input.change,
            &operation_id,
            &step.cancellation(),
        )
        .await?;
        step.set_total(results.len() as u64).await?;
        step.record_many(results).await
    }
}

/// Carries out one container change as the operation `operation_id`; answers what it did,
/// one result per resource (a run of tasks has one per task).
pub(crate) async fn apply(
    env: &Environment,
    change: ContainerChange,
    operation_id: &str,
    cancellation: &Cancellation,
) -> Result<Vec<TargetResult>, Error> {
    let containers = env.containers()?;
    let operation_id = operation_id.to_string();
    let cancellation = cancellation.clone();
    let mine = |mut tags: BTreeMap<String, String>| {
        tags.insert(tags::OPERATION.into(), operation_id.clone());
        tags
    };
    let result = match change {
        ContainerChange::CreateCluster {
            region,
            name,
            capacity_providers,
            default_strategy,
            tags,
        } => {
            let spec = ClusterSpec {
                region: region.clone(),
                name: name.clone(),
                capacity_providers,
                default_strategy,
                tags: mine(tags),
            };
            let cluster = find_or_create(
                "cluster",
                &cancellation,
                || async {
                    let found = containers.cluster(&region, &name).await?;
                    Ok(found.filter(made_by(&operation_id)))
                },
                || containers.create_cluster(&spec),
            )
            .await?;
            let cluster = env.with_owner(cluster);
            TargetResult::done(&cluster.name).with_detail(&cluster)?
        }
        ContainerChange::DeleteCluster {
            region,
            name,
            recursive,
        } => {
            if recursive {
                // A re-run after the cluster went finds it gone: nothing left in it.
                let services = containers
                    .list_services(&region, &name)
                    .await
                    .or_else(gone_is_empty)?;
                for service in services {
                    delete_service(containers, &region, &name, &service.name, &cancellation)
                        .await?;
                }
                let tasks = containers
                    .list_tasks(&region, &name, &TaskFilter::default())
                    .await
                    .or_else(gone_is_empty)?;
                for task in tasks {
                    stop_task(containers, &region, &name, &task.id).await?;
                }
            }
            delete_cluster_once_empty(containers, &region, &name, &cancellation).await?;
            env.inventory
                .container_services
                .record_gone_where(|s| s.region == region && s.cluster == name);
            TargetResult::done(name)
        }
        ContainerChange::RegisterTaskDefinition {
            region,
            family,
            cpu,
            memory,
            containers: defined,
            execution_role,
            task_role,
            tags,
        } => {
            // The log groups the containers write to, made when missing (tagged as
            // overcast's, so a recursive delete knows them), and the execution role ECS
            // needs to write there, pull from a private registry or read secrets.
            let mut made_groups = Vec::new();
            for group in log_groups(&defined) {
                let support = env.container_support()?;
                let owner = mine(owner_only(&tags));
                if repeatable("log group", &cancellation, || {
                    support.ensure_log_group(&region, &group, &owner)
                })
                .await?
                {
                    made_groups.push(group);
                }
            }
            let execution_role = match execution_role {
                Some(role) => Some(role),
                None if needs_execution_role(&defined) => {
                    let support = env.container_support()?;
                    Some(
                        repeatable("execution role", &cancellation, || {
                            support.ensure_execution_role(EXECUTION_ROLE)
                        })
                        .await?,
                    )
                }
                None => None,
            };
            let spec = TaskDefinitionSpec {
                region: region.clone(),
                family: family.clone(),
                cpu,
                memory,
                containers: defined,
                execution_role,
                task_role,
                tags: mine(tags),
            };
            // An earlier try's revision is the family's latest, carrying this
            // operation's tag.
            let definition = find_or_create(
                "task definition",
                &cancellation,
                || async {
                    let latest = containers.task_definition(&region, &family).await?;
                    Ok(latest.filter(made_by(&operation_id)))
                },
                || containers.register_task_definition(&spec),
            )
            .await?;
            let definition = env.with_owner(definition);
            let mut result = TargetResult::done(definition.name()).with_detail(&definition)?;
            if !made_groups.is_empty() {
                result.message = Some(format!("made log group(s) {}", made_groups.join(", ")));
            }
            result
        }
        ContainerChange::DeregisterTaskDefinition { region, name } => {
            repeatable("deregister", &cancellation, || {
                containers.deregister_task_definition(&region, &name)
            })
            .await?;
            TargetResult::done(name)
        }
        ContainerChange::CreateService {
            region,
            cluster,
            name,
            task_definition,
            desired_count,
            placement,
            capacity_strategy,
            registries,
            tags,
        } => {
            let spec = ServiceSpec {
                region: region.clone(),
                cluster: cluster.clone(),
                name: name.clone(),
                task_definition,
                desired_count,
                capacity_strategy,
                subnets: placement.subnets,
                security_groups: placement.security_groups,
                public_ip: placement.public_ip,
                registries,
                tags: mine(tags),
                client_token: operation_id.clone(),
            };
            let service = find_or_create(
                "service",
                &cancellation,
                || async {
                    let found = containers.service(&region, &cluster, &name).await?;
                    Ok(found.filter(made_by(&operation_id)))
                },
                || containers.create_service(&spec),
            )
            .await?;
            let service = env.with_owner(service);
            env.inventory.container_services.record([service.clone()]);
            TargetResult::done(&service.name).with_detail(&service)?
        }
        ContainerChange::UpdateService {
            region,
            cluster,
            name,
            desired_count,
            task_definition,
            force_new_deployment,
        } => {
            let update = ServiceUpdate {
                desired_count,
                task_definition,
                force_new_deployment,
            };
            let service = repeatable("update", &cancellation, || {
                containers.update_service(&region, &cluster, &name, &update)
            })
            .await?;
            let service = env.with_owner(service);
            env.inventory.container_services.record([service.clone()]);
            TargetResult::done(&service.name).with_detail(&service)?
        }
        ContainerChange::DeleteService {
            region,
            cluster,
            name,
            recursive,
            org,
            family,
            registries,
        } => {
            delete_service(containers, &region, &cluster, &name, &cancellation).await?;
            env.inventory.container_services.record_gone_where(|s| {
                s.region == region && s.cluster == cluster && s.name == name
            });
            let result = TargetResult::done(&name);
            match (recursive, org) {
                (true, Some(org)) => {
                    let left = Leftovers {
                        region: &region,
                        family: family.as_deref(),
                        registries: &registries,
                        org: &org,
                    };
                    result.with_detail(&left.take_away(env).await?)?
                }
                _ => result,
            }
        }
        ContainerChange::CreateRegistry {
            region,
            namespace,
            name,
            dns_ttl,
            tags,
        } => {
            let discovery = env.service_discovery()?;
            let spec = RegistrySpec {
                region: region.clone(),
                namespace: namespace.clone(),
                name: name.clone(),
                dns_ttl,
                tags: mine(tags),
                client_token: operation_id.clone(),
            };
            let registry = find_or_create(
                "registry",
                &cancellation,
                || async {
                    let found = discovery.list_registries(&region, Some(&namespace)).await?;
                    Ok(found.into_iter().find(made_by(&operation_id)))
                },
                || discovery.create_registry(&spec),
            )
            .await?;
            let registry = env.with_owner(registry);
            TargetResult::done(&registry.id).with_detail(&registry)?
        }
        ContainerChange::DeleteRegistry { region, id } => {
            env.service_discovery()?
                .delete_registry(&region, &id)
                .await
                .map_err(provider_error)?;
            TargetResult::done(id)
        }
        ContainerChange::RunTask {
            region,
            cluster,
            task_definition,
            count,
            placement,
            overrides,
            tags,
        } => {
            let spec = RunTaskSpec {
                region: region.clone(),
                cluster: cluster.clone(),
                task_definition: task_definition.clone(),
                count,
                subnets: placement.subnets,
                security_groups: placement.security_groups,
                public_ip: placement.public_ip,
                overrides: overrides
                    .into_iter()
                    .map(|(name, o)| {
                        (
                            name,
                            ContainerOverride {
                                command: o.command,
                                environment: o.environment,
                            },
                        )
                    })
                    .collect(),
                tags: mine(tags),
                client_token: operation_id.clone(),
            };
            let family = task_definition
                .split_once(':')
                .map_or(task_definition.as_str(), |(f, _)| f)
                .to_string();
            let tasks = find_or_create(
                "tasks",
                &cancellation,
                || async {
                    // A short task an earlier try ran may have stopped already.
                    let mut ran: Vec<Task> = Vec::new();
                    for status in ["RUNNING", "STOPPED"] {
                        let filter = TaskFilter {
                            family: Some(family.clone()),
                            desired_status: Some(status.into()),
                            ..TaskFilter::default()
                        };
                        ran.extend(
                            containers
                                .list_tasks(&region, &cluster, &filter)
                                .await?
                                .into_iter()
                                .filter(made_by(&operation_id)),
                        );
                    }
                    Ok((!ran.is_empty()).then_some(ran))
                },
                || containers.run_task(&spec),
            )
            .await?;
            return tasks
                .into_iter()
                .map(|task| {
                    let task = env.with_owner(task);
                    TargetResult::done(&task.id).with_detail(&task)
                })
                .collect();
        }
        ContainerChange::StopTask {
            region,
            cluster,
            id,
        } => {
            let task = stop_task(containers, &region, &cluster, &id).await?;
            match task {
                Some(task) => TargetResult::done(&id).with_detail(&env.with_owner(task))?,
                None => TargetResult::done(&id),
            }
        }
    };
    Ok(vec![result])
}

/// The change that makes a cluster: Fargate and Fargate Spot, on-demand by default.
pub(crate) fn cluster_change(
    principal: &Principal,
    request: &CreateClusterRequest,
    region: String,
) -> Result<ContainerChange, Error> {
    validate_container_name("name", &request.name)?;
    check_tags(&request.tags)?;
    let capacity_providers = request.capacity_providers.clone().unwrap_or_else(|| {
        DEFAULT_CAPACITY_PROVIDERS
            .iter()
            .map(|p| p.to_string())
            .collect()
    });
    let default_strategy = request.default_strategy.clone().unwrap_or_else(|| {
        vec![CapacityShare {
            provider: "FARGATE".into(),
            weight: 1,
            base: 0,
        }]
    });
    if let Some(unknown) = default_strategy
        .iter()
        .find(|s| !capacity_providers.contains(&s.provider))
    {
        return Err(Error::invalid(
            "default_strategy",
            format!(
                "`{}` is not one of the cluster's capacity providers",
                unknown.provider
            ),
        ));
    }
    Ok(ContainerChange::CreateCluster {
        region,
        name: request.name.clone(),
        capacity_providers,
        default_strategy,
        tags: owner_tags(principal, &request.tags),
    })
}

/// A listing of a cluster that is gone: nothing.
fn gone_is_empty<T>(error: overcast_provider::ProviderError) -> Result<Vec<T>, Error> {
    if error.code == "cluster_not_found" {
        Ok(Vec::new())
    } else {
        Err(provider_error(error))
    }
}

/// How long a cluster's delete waits for its stopping tasks to be gone.
const CLUSTER_EMPTY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// Deletes a cluster, waiting while the backend still counts tasks that are stopping
/// (Fargate tasks take tens of seconds to); one already gone counts as deleted.
pub(crate) async fn delete_cluster_once_empty(
    containers: &dyn Containers,
    region: &str,
    name: &str,
    cancellation: &Cancellation,
) -> Result<(), Error> {
    let deadline = std::time::Instant::now() + CLUSTER_EMPTY_TIMEOUT;
    loop {
        match containers.delete_cluster(region, name).await {
            Ok(()) => return Ok(()),
            Err(e) if e.code == "cluster_not_found" => return Ok(()),
            Err(e) if e.code == "cluster_in_use" && std::time::Instant::now() < deadline => {
                cancellation.check()?;
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            }
            Err(e) => return Err(provider_error(e)),
        }
    }
}

/// Scales a service to zero, then deletes it; a service already gone counts as deleted.
pub(crate) async fn delete_service(
    containers: &dyn Containers,
    region: &str,
    cluster: &str,
    name: &str,
    cancellation: &Cancellation,
) -> Result<(), Error> {
    let to_zero = ServiceUpdate {
        desired_count: Some(0),
        ..ServiceUpdate::default()
    };
    match repeatable("scale to zero", cancellation, || {
        containers.update_service(region, cluster, name, &to_zero)
    })
    .await
    {
        Err(e) if e.code == "service_not_found" => return Ok(()),
        other => {
            other?;
        }
    }
    match containers.delete_service(region, cluster, name).await {
        Err(e) if e.code == "service_not_found" => Ok(()),
        other => other.map_err(provider_error),
    }
}

/// Stops a task; one already stopped or gone counts as stopped.
async fn stop_task(
    containers: &dyn Containers,
    region: &str,
    cluster: &str,
    id: &str,
) -> Result<Option<Task>, Error> {
    match containers
        .stop_task(region, cluster, id, "stopped through overcast")
        .await
    {
        Ok(task) => Ok(Some(task)),
        Err(e) if e.kind == overcast_provider::ProviderErrorKind::NotFound => Ok(None),
        Err(e) => Err(provider_error(e)),
    }
}

/// What a service leaves behind that overcast made for it, taken away by a recursive
/// delete: its family's revisions that no service uses, their log groups, its registries.
/// Only what the service's org made through overcast (by its tags) goes; nothing else.
struct Leftovers<'a> {
    region: &'a str,
    family: Option<&'a str>,
    registries: &'a [String],
    org: &'a str,
}

/// What a recursive delete took away.
#[derive(Debug, Default, Serialize)]
struct TakenAway {
    deregistered: Vec<String>,
    log_groups: Vec<String>,
    registries: Vec<String>,
    /// Registry credentials secrets overcast made for the containers.
    secrets: Vec<String>,
}

impl Leftovers<'_> {
    /// Whether overcast made a resource with these tags for the org.
    fn made_for_org(&self, tags: &BTreeMap<String, String>) -> bool {
        tags.get(tags::ORG).map(String::as_str) == Some(self.org)
            && tags.contains_key(tags::OPERATION)
    }

    async fn take_away(&self, env: &Environment) -> Result<TakenAway, Error> {
        let containers = env.containers()?;
        let region = self.region;
        let mut taken = TakenAway::default();
        if let Some(family) = self.family {
            let in_use = services_task_definitions(containers, region).await?;
            let mut groups = Vec::new();
            let mut kept_groups = Vec::new();
            let mut credentials = Vec::new();
            for name in containers
                .list_task_definitions(region, Some(family))
                .await
                .map_err(provider_error)?
            {
                let Some(definition) = containers
                    .task_definition(region, &name)
                    .await
                    .map_err(provider_error)?
                else {
                    continue;
                };
                let definition = env.with_owner(definition);
                if in_use.contains(&name) || !self.made_for_org(&definition.tags) {
                    kept_groups.extend(log_groups(&definition.containers));
                    continue;
                }
                groups.extend(log_groups(&definition.containers));
                credentials.extend(
                    definition
                        .containers
                        .iter()
                        .filter_map(|c| c.repository_credentials.clone()),
                );
                containers
                    .deregister_task_definition(region, &name)
                    .await
                    .map_err(provider_error)?;
                taken.deregistered.push(name);
            }
            groups.sort();
            groups.dedup();
            for group in groups.into_iter().filter(|g| !kept_groups.contains(g)) {
                let support = env.container_support()?;
                let tags = support
                    .log_group_tags(region, &group)
                    .await
                    .map_err(provider_error)?;
                if tags.is_some_and(|t| self.made_for_org(&t)) {
                    support
                        .delete_log_group(region, &group)
                        .await
                        .map_err(provider_error)?;
                    taken.log_groups.push(group);
                }
            }
            credentials.sort();
            credentials.dedup();
            for arn in credentials {
                let secrets = env.secrets()?;
                let found = secrets.secret(region, &arn).await.map_err(provider_error)?;
                if let Some(secret) = found.filter(|s| self.made_for_org(&s.tags)) {
                    secrets
                        .delete_secret(region, &arn, 0)
                        .await
                        .map_err(provider_error)?;
                    taken.secrets.push(secret.name);
                }
            }
        }
        if !self.registries.is_empty() {
            let discovery = env.service_discovery()?;
            for arn in self.registries {
                let id = arn.rsplit('/').next().unwrap_or(arn);
                let found = discovery
                    .registry(region, id)
                    .await
                    .map_err(provider_error)?;
                if found.is_some_and(|r| self.made_for_org(&r.tags)) {
                    discovery
                        .delete_registry(region, id)
                        .await
                        .map_err(provider_error)?;
                    taken.registries.push(id.to_string());
                }
            }
        }
        Ok(taken)
    }
}

/// The task definitions the region's services run.
async fn services_task_definitions(
    containers: &dyn Containers,
    region: &str,
) -> Result<Vec<String>, Error> {
    let mut in_use = Vec::new();
    for cluster in containers
        .list_clusters(region)
        .await
        .map_err(provider_error)?
    {
        for service in containers
            .list_services(region, &cluster.name)
            .await
            .map_err(provider_error)?
        {
            // Every deployment's revision: one being replaced still runs tasks.
            in_use.extend(service.deployments.into_iter().map(|d| d.task_definition));
            in_use.push(service.task_definition);
        }
    }
    Ok(in_use)
}

impl Core {
    fn containers_of(
        &self,
        env: &str,
        region: Option<&str>,
    ) -> Result<(&Environment, &dyn Containers, String), Error> {
        let environment = self.environments.require(env)?;
        let containers = environment.containers()?;
        let region = environment.region_or_first(region)?;
        Ok((environment, containers, region))
    }

    /// Where tasks go: the subnets and security groups asked for, else the environment's
    /// own (its instances' launch defaults).
    pub(crate) fn placement(
        &self,
        env: &str,
        subnets: &[String],
        security_groups: &[String],
        public_ip: bool,
    ) -> Result<Placement, Error> {
        let environment = self.environments.require(env)?;
        let defaults = environment.compute().ok().map(|c| c.launch_defaults());
        let subnets = match (subnets.is_empty(), &defaults) {
            (true, Some(defaults)) => defaults.subnet.iter().cloned().collect(),
            _ => subnets.to_vec(),
        };
        let security_groups = match (security_groups.is_empty(), defaults) {
            (true, Some(defaults)) => defaults.security_groups,
            _ => security_groups.to_vec(),
        };
        Ok(Placement {
            subnets,
            security_groups,
            public_ip,
        })
    }

    async fn start_container_change(
        &self,
        principal: &Principal,
        env: &str,
        target: String,
        owner: Option<&str>,
        change: ContainerChange,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        let target = Target::new(env, format!("{env}/{target}")).owned_by(owner);
        self.start::<ContainerChanges>(
            principal,
            target,
            &InEnvironment::new(env, change),
            idempotency,
        )
        .await
    }

    /// The clusters of a region the caller may see.
    pub async fn clusters(
        &self,
        principal: &Principal,
        env: &str,
        region: Option<&str>,
    ) -> Result<Vec<Cluster>, Error> {
        let (environment, containers, region) = self.containers_of(env, region)?;
        let found = containers
            .list_clusters(&region)
            .await
            .map_err(provider_error)?;
        Ok(visible_only(principal, environment, found))
    }

    /// One cluster, with its counts of services and tasks.
    pub async fn cluster(
        &self,
        principal: &Principal,
        env: &str,
        region: Option<&str>,
        name: &str,
    ) -> Result<Cluster, Error> {
        let (environment, containers, region) = self.containers_of(env, region)?;
        let found = containers
            .cluster(&region, name)
            .await
            .map_err(provider_error)?
            .map(|c| environment.with_owner(c));
        visible_or_404(principal, found, "cluster", name)
    }

    pub async fn create_cluster(
        &self,
        principal: &Principal,
        env: &str,
        request: &CreateClusterRequest,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        principal.require(Role::Operator)?;
        validate_container_name("name", &request.name)?;
        check_tags(&request.tags)?;
        let (_, containers, region) = self.containers_of(env, request.region.as_deref())?;
        if self.replayed(principal, idempotency).await?.is_none()
            && containers
                .cluster(&region, &request.name)
                .await
                .map_err(provider_error)?
                .is_some()
        {
            return Err(Error {
                field: Some("name".into()),
                ..Error::conflict(
                    "cluster_exists",
                    format!("a cluster named `{}` exists in {region}", request.name),
                )
            });
        }
        let change = cluster_change(principal, request, region)?;
        self.start_container_change(
            principal,
            env,
            format!("clusters/{}", request.name),
            None,
            change,
            idempotency,
        )
        .await
    }

    /// Deletes a cluster: 409 while it has services or tasks, unless `recursive`.
    pub async fn delete_cluster(
        &self,
        principal: &Principal,
        env: &str,
        region: Option<&str>,
        name: &str,
        recursive: bool,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        principal.require(Role::Operator)?;
        if let Some(operation) = self.replayed(principal, idempotency).await? {
            return Ok(operation);
        }
        let cluster = self.cluster(principal, env, region, name).await?;
        if !recursive {
            // The backend's own lists, not the cluster's counts, which lag behind them.
            let (_, containers, _) = self.containers_of(env, Some(&cluster.region))?;
            let services = containers
                .list_services(&cluster.region, name)
                .await
                .map_err(provider_error)?;
            let tasks = containers
                .list_tasks(&cluster.region, name, &TaskFilter::default())
                .await
                .map_err(provider_error)?;
            if !services.is_empty() || !tasks.is_empty() {
                return Err(Error::conflict(
                    "cluster_in_use",
                    format!(
                        "cluster {name} has {} service(s) and {} running task(s); delete them first, or ask for recursive",
                        services.len(),
                        tasks.len()
                    ),
                ));
            }
        }
        let change = ContainerChange::DeleteCluster {
            region: cluster.region.clone(),
            name: name.to_string(),
            recursive,
        };
        self.start_container_change(
            principal,
            env,
            format!("clusters/{name}"),
            cluster.org.as_deref(),
            change,
            idempotency,
        )
        .await
    }

    /// Registers a task definition revision. Secrets are named as overcast names them
    /// and must be the caller's; ECS gets their ARNs.
    pub async fn register_task_definition(
        &self,
        principal: &Principal,
        env: &str,
        request: &RegisterTaskDefinitionRequest,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        principal.require(Role::Operator)?;
        if let Some(operation) = self.replayed(principal, idempotency).await? {
            return Ok(operation);
        }
        let (_, _, region) = self.containers_of(env, request.region.as_deref())?;
        let change = self
            .task_definition_change(principal, env, region, request)
            .await?;
        self.start_container_change(
            principal,
            env,
            format!("task-definitions/{}", request.family),
            None,
            change,
            idempotency,
        )
        .await
    }

    /// The change that registers a task definition revision in `region`: the request
    /// checked, its containers' secrets resolved to the ARNs of the caller's secrets.
    pub(crate) async fn task_definition_change(
        &self,
        principal: &Principal,
        env: &str,
        region: String,
        request: &RegisterTaskDefinitionRequest,
    ) -> Result<ContainerChange, Error> {
        validate_container_name("family", &request.family)?;
        check_tags(&request.tags)?;
        if request.containers.is_empty() {
            return Err(Error::invalid("containers", "give at least one container"));
        }
        let mut containers = Vec::new();
        for (i, c) in request.containers.iter().enumerate() {
            validate_container_name(&format!("containers[{i}].name"), &c.name)?;
            if c.image.trim().is_empty() {
                return Err(Error::invalid(
                    format!("containers[{i}].image"),
                    "give the image, e.g. nginx:alpine",
                ));
            }
            let mut secrets = BTreeMap::new();
            for (variable, secret) in &c.secrets {
                let arn = self
                    .secret_arn(
                        principal,
                        env,
                        &region,
                        secret,
                        &format!("containers[{i}].secrets.{variable}"),
                    )
                    .await?;
                secrets.insert(variable.clone(), arn);
            }
            let repository_credentials = match &c.repository_credentials {
                None => None,
                Some(secret) => Some(
                    self.secret_arn(
                        principal,
                        env,
                        &region,
                        secret,
                        &format!("containers[{i}].repository_credentials"),
                    )
                    .await?,
                ),
            };
            containers.push(Container {
                name: c.name.clone(),
                image: c.image.clone(),
                cpu: c.cpu,
                memory_mb: c.memory_mb,
                essential: c.essential.unwrap_or(true),
                command: c.command.clone(),
                environment: c.environment.clone(),
                ports: c.ports.clone(),
                log: c.log.clone(),
                secrets,
                repository_credentials,
            });
        }
        Ok(ContainerChange::RegisterTaskDefinition {
            region,
            family: request.family.clone(),
            cpu: request.cpu.clone().unwrap_or_else(|| "256".into()),
            memory: request.memory.clone().unwrap_or_else(|| "512".into()),
            containers,
            execution_role: request.execution_role.clone(),
            task_role: request.task_role.clone(),
            tags: owner_tags(principal, &request.tags),
        })
    }

    /// The change that makes a service discovery service: the request checked and its
    /// namespace asked for (a 404 naming it when there is none).
    pub(crate) async fn registry_change(
        &self,
        principal: &Principal,
        env: &str,
        region: &str,
        request: &CreateRegistryRequest,
    ) -> Result<ContainerChange, Error> {
        validate_container_name("name", &request.name)?;
        check_tags(&request.tags)?;
        if !(1..=2_147_483_647).contains(&request.dns_ttl) {
            return Err(Error::invalid("dns_ttl", "must be 1 or more seconds"));
        }
        if self
            .namespace_name(env, Some(region), &request.namespace)
            .await?
            .is_none()
        {
            return Err(Error {
                field: Some("namespace".into()),
                ..Error::not_found("namespace", &request.namespace)
            });
        }
        Ok(ContainerChange::CreateRegistry {
            region: region.to_string(),
            namespace: request.namespace.clone(),
            name: request.name.clone(),
            dns_ttl: request.dns_ttl,
            tags: owner_tags(principal, &request.tags),
        })
    }

    /// The ARN of an overcast secret the caller may see; a 404 naming `field` otherwise.
    async fn secret_arn(
        &self,
        principal: &Principal,
        env: &str,
        region: &str,
        name: &str,
        field: &str,
    ) -> Result<String, Error> {
        let secret = self
            .secret(principal, env, Some(region), name)
            .await
            .map_err(|e| Error {
                field: Some(field.to_string()),
                ..e
            })?;
        secret
            .arn
            .ok_or_else(|| Error::invalid(field, format!("secret `{name}` has no ARN to give ECS")))
    }

    /// The task definition revisions of a region (of one family) the caller may see,
    /// oldest first.
    pub async fn task_definitions(
        &self,
        principal: &Principal,
        env: &str,
        region: Option<&str>,
        family: Option<&str>,
    ) -> Result<Vec<TaskDefinition>, Error> {
        let (environment, containers, region) = self.containers_of(env, region)?;
        let names = containers
            .list_task_definitions(&region, family)
            .await
            .map_err(provider_error)?;
        let mut found = Vec::new();
        for name in names {
            if let Some(definition) = containers
                .task_definition(&region, &name)
                .await
                .map_err(provider_error)?
            {
                found.push(definition);
            }
        }
        Ok(visible_only(principal, environment, found))
    }

    /// One revision (`family:revision`), or a family's latest (`family`).
    pub async fn task_definition(
        &self,
        principal: &Principal,
        env: &str,
        region: Option<&str>,
        name: &str,
    ) -> Result<TaskDefinition, Error> {
        let (environment, containers, region) = self.containers_of(env, region)?;
        let found = containers
            .task_definition(&region, name)
            .await
            .map_err(provider_error)?
            .filter(|d| d.status == "ACTIVE")
            .map(|d| environment.with_owner(d));
        visible_or_404(principal, found, "task_definition", name)
    }

    pub async fn deregister_task_definition(
        &self,
        principal: &Principal,
        env: &str,
        region: Option<&str>,
        name: &str,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        principal.require(Role::Operator)?;
        if let Some(operation) = self.replayed(principal, idempotency).await? {
            return Ok(operation);
        }
        let definition = self.task_definition(principal, env, region, name).await?;
        let change = ContainerChange::DeregisterTaskDefinition {
            region: definition.region.clone(),
            name: definition.name(),
        };
        self.start_container_change(
            principal,
            env,
            format!("task-definitions/{}", definition.name()),
            definition.org.as_deref(),
            change,
            idempotency,
        )
        .await
    }

    /// The services of a cluster the caller may see (the cluster must be visible too),
    /// from the inventory (read afresh when `fresh`).
    pub async fn container_services(
        &self,
        principal: &Principal,
        env: &str,
        region: Option<&str>,
        cluster: &str,
        fresh: bool,
    ) -> Result<Page<ContainerService>, Error> {
        let cluster = self.cluster(principal, env, region, cluster).await?;
        let in_cluster = |s: &ContainerService| s.cluster == cluster.name;
        self.listed_visible(principal, env, Some(&cluster.region), fresh, in_cluster)
            .await
    }

    pub async fn container_service(
        &self,
        principal: &Principal,
        env: &str,
        region: Option<&str>,
        cluster: &str,
        name: &str,
    ) -> Result<ContainerService, Error> {
        let cluster = self.cluster(principal, env, region, cluster).await?;
        let (environment, containers, _) = self.containers_of(env, Some(&cluster.region))?;
        let found = containers
            .service(&cluster.region, &cluster.name, name)
            .await
            .map_err(provider_error)?
            .map(|s| environment.with_owner(s));
        visible_or_404(principal, found, "service", name)
    }

    pub async fn create_container_service(
        &self,
        principal: &Principal,
        env: &str,
        cluster: &str,
        request: &CreateServiceRequest,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        principal.require(Role::Operator)?;
        if let Some(operation) = self.replayed(principal, idempotency).await? {
            return Ok(operation);
        }
        validate_container_name("name", &request.name)?;
        check_tags(&request.tags)?;
        if request.task_definition.is_empty() {
            return Err(Error::invalid(
                "task_definition",
                "give family:revision, or a family for its latest revision",
            ));
        }
        let cluster = self
            .cluster(principal, env, request.region.as_deref(), cluster)
            .await?;
        let definition = self
            .task_definition(
                principal,
                env,
                Some(&cluster.region),
                &request.task_definition,
            )
            .await
            .map_err(|e| Error {
                field: Some("task_definition".into()),
                ..e
            })?;
        let (_, containers, _) = self.containers_of(env, Some(&cluster.region))?;
        if containers
            .service(&cluster.region, &cluster.name, &request.name)
            .await
            .map_err(provider_error)?
            .is_some()
        {
            return Err(Error {
                field: Some("name".into()),
                ..Error::conflict(
                    "service_exists",
                    format!(
                        "cluster {} has a service named `{}`",
                        cluster.name, request.name
                    ),
                )
            });
        }
        let change = ContainerChange::CreateService {
            region: cluster.region.clone(),
            cluster: cluster.name.clone(),
            name: request.name.clone(),
            task_definition: definition.name(),
            desired_count: request.desired_count,
            placement: self.placement(
                env,
                &request.subnets,
                &request.security_groups,
                request.public_ip,
            )?,
            capacity_strategy: request.capacity_strategy.clone(),
            registries: request.registries.clone(),
            tags: owner_tags(principal, &request.tags),
        };
        self.start_container_change(
            principal,
            env,
            format!("clusters/{}/services/{}", cluster.name, request.name),
            None,
            change,
            idempotency,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn update_container_service(
        &self,
        principal: &Principal,
        env: &str,
        region: Option<&str>,
        cluster: &str,
        name: &str,
        request: &UpdateServiceRequest,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        principal.require(Role::Operator)?;
        if let Some(operation) = self.replayed(principal, idempotency).await? {
            return Ok(operation);
        }
        if request.desired_count.is_none()
            && request.task_definition.is_none()
            && !request.force_new_deployment
        {
            return Err(Error::invalid(
                "body",
                "give desired_count, task_definition or force_new_deployment",
            ));
        }
        let service = self
            .container_service(principal, env, region, cluster, name)
            .await?;
        let task_definition = match &request.task_definition {
            None => None,
            Some(wanted) => Some(
                self.task_definition(principal, env, Some(&service.region), wanted)
                    .await
                    .map_err(|e| Error {
                        field: Some("task_definition".into()),
                        ..e
                    })?
                    .name(),
            ),
        };
        let change = ContainerChange::UpdateService {
            region: service.region.clone(),
            cluster: service.cluster.clone(),
            name: name.to_string(),
            desired_count: request.desired_count,
            task_definition,
            force_new_deployment: request.force_new_deployment,
        };
        self.start_container_change(
            principal,
            env,
            format!("clusters/{cluster}/services/{name}"),
            service.org.as_deref(),
            change,
            idempotency,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn delete_container_service(
        &self,
        principal: &Principal,
        env: &str,
        region: Option<&str>,
        cluster: &str,
        name: &str,
        recursive: bool,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        principal.require(Role::Operator)?;
        if let Some(operation) = self.replayed(principal, idempotency).await? {
            return Ok(operation);
        }
        let service = self
            .container_service(principal, env, region, cluster, name)
            .await?;
        let change = ContainerChange::DeleteService {
            region: service.region.clone(),
            cluster: service.cluster.clone(),
            name: name.to_string(),
            recursive,
            org: service.org.clone(),
            family: service
                .task_definition
                .split_once(':')
                .map(|(family, _)| family.to_string()),
            registries: service.registries.clone(),
        };
        self.start_container_change(
            principal,
            env,
            format!("clusters/{cluster}/services/{name}"),
            service.org.as_deref(),
            change,
            idempotency,
        )
        .await
    }

    /// The tasks of a cluster the caller may see: of one service, and by desired status
    /// (`RUNNING` unless told).
    pub async fn container_tasks(
        &self,
        principal: &Principal,
        env: &str,
        region: Option<&str>,
        cluster: &str,
        filter: &TaskFilter,
    ) -> Result<Vec<Task>, Error> {
        let cluster = self.cluster(principal, env, region, cluster).await?;
        let (environment, containers, _) = self.containers_of(env, Some(&cluster.region))?;
        let found = containers
            .list_tasks(&cluster.region, &cluster.name, filter)
            .await
            .map_err(provider_error)?;
        Ok(visible_only(principal, environment, found))
    }

    pub async fn container_task(
        &self,
        principal: &Principal,
        env: &str,
        region: Option<&str>,
        cluster: &str,
        id: &str,
    ) -> Result<Task, Error> {
        let cluster = self.cluster(principal, env, region, cluster).await?;
        let (environment, containers, _) = self.containers_of(env, Some(&cluster.region))?;
        let found = containers
            .task(&cluster.region, &cluster.name, id)
            .await
            .map_err(provider_error)?
            .map(|t| environment.with_owner(t));
        visible_or_404(principal, found, "task", id)
    }

    pub async fn run_container_task(
        &self,
        principal: &Principal,
        env: &str,
        cluster: &str,
        request: &RunTaskRequest,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        principal.require(Role::Operator)?;
        if let Some(operation) = self.replayed(principal, idempotency).await? {
            return Ok(operation);
        }
        check_tags(&request.tags)?;
        if !(1..=MAX_RUN_COUNT).contains(&request.count) {
            return Err(Error::invalid(
                "count",
                format!("must be from 1 to {MAX_RUN_COUNT}"),
            ));
        }
        let cluster = self
            .cluster(principal, env, request.region.as_deref(), cluster)
            .await?;
        let definition = self
            .task_definition(
                principal,
                env,
                Some(&cluster.region),
                &request.task_definition,
            )
            .await
            .map_err(|e| Error {
                field: Some("task_definition".into()),
                ..e
            })?;
        if let Some(unknown) = request
            .overrides
            .keys()
            .find(|name| !definition.containers.iter().any(|c| &c.name == *name))
        {
            return Err(Error::invalid(
                format!("overrides.{unknown}"),
                format!(
                    "task definition {} has no container `{unknown}`",
                    definition.name()
                ),
            ));
        }
        let change = ContainerChange::RunTask {
            region: cluster.region.clone(),
            cluster: cluster.name.clone(),
            task_definition: definition.name(),
            count: request.count,
            placement: self.placement(
                env,
                &request.subnets,
                &request.security_groups,
                request.public_ip,
            )?,
            overrides: request.overrides.clone(),
            tags: owner_tags(principal, &request.tags),
        };
        self.start_container_change(
            principal,
            env,
            format!("clusters/{}/tasks?count={}", cluster.name, request.count),
            None,
            change,
            idempotency,
        )
        .await
    }

    pub async fn stop_container_task(
        &self,
        principal: &Principal,
        env: &str,
        region: Option<&str>,
        cluster: &str,
        id: &str,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        principal.require(Role::Operator)?;
        if let Some(operation) = self.replayed(principal, idempotency).await? {
            return Ok(operation);
        }
        let task = self
            .container_task(principal, env, region, cluster, id)
            .await?;
        let change = ContainerChange::StopTask {
            region: task.region.clone(),
            cluster: task.cluster.clone(),
            id: id.to_string(),
        };
        self.start_container_change(
            principal,
            env,
            format!("clusters/{cluster}/tasks/{id}"),
            task.org.as_deref(),
            change,
            idempotency,
        )
        .await
    }

    /// The service discovery services of a namespace (or all) the caller may see.
    /// A Cloud Map namespace's name (its DNS domain), or `None` when it does not exist.
    /// Namespaces are the account's, shared by every org.
    pub async fn namespace_name(
        &self,
        env: &str,
        region: Option<&str>,
        id: &str,
    ) -> Result<Option<String>, Error> {
        let environment = self.environments.require(env)?;
        let region = environment.region_or_first(region)?;
        environment
            .service_discovery()?
            .namespace_name(&region, id)
            .await
            .map_err(provider_error)
    }

    pub async fn registries(
        &self,
        principal: &Principal,
        env: &str,
        region: Option<&str>,
        namespace: Option<&str>,
    ) -> Result<Vec<Registry>, Error> {
        let environment = self.environments.require(env)?;
        let region = environment.region_or_first(region)?;
        let found = environment
            .service_discovery()?
            .list_registries(&region, namespace)
            .await
            .map_err(provider_error)?;
        Ok(visible_only(principal, environment, found))
    }

    pub async fn registry(
        &self,
        principal: &Principal,
        env: &str,
        region: Option<&str>,
        id: &str,
    ) -> Result<Registry, Error> {
        let environment = self.environments.require(env)?;
        let region = environment.region_or_first(region)?;
        let found = environment
            .service_discovery()?
            .registry(&region, id)
            .await
            .map_err(provider_error)?
            .map(|r| environment.with_owner(r));
        visible_or_404(principal, found, "registry", id)
    }

    /// Makes a service discovery service; an unknown namespace is a 404 (AWS refuses one,
    /// some emulators do not).
    pub async fn create_registry(
        &self,
        principal: &Principal,
        env: &str,
        request: &CreateRegistryRequest,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        principal.require(Role::Operator)?;
        if let Some(operation) = self.replayed(principal, idempotency).await? {
            return Ok(operation);
        }
        let region = self
            .environments
            .require(env)?
            .region_or_first(request.region.as_deref())?;
        let change = self
            .registry_change(principal, env, &region, request)
            .await?;
        self.start_container_change(
            principal,
            env,
            format!("registries/{}", request.name),
            None,
            change,
            idempotency,
        )
        .await
    }

    pub async fn delete_registry(
        &self,
        principal: &Principal,
        env: &str,
        region: Option<&str>,
        id: &str,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        principal.require(Role::Operator)?;
        if let Some(operation) = self.replayed(principal, idempotency).await? {
            return Ok(operation);
        }
        let registry = self.registry(principal, env, region, id).await?;
        let change = ContainerChange::DeleteRegistry {
            region: registry.region.clone(),
            id: id.to_string(),
        };
        self.start_container_change(
            principal,
            env,
            format!("registries/{id}"),
            registry.org.as_deref(),
            change,
            idempotency,
        )
        .await
    }

    /// A page of what one container of a task logged, from the log group and stream
    /// prefix its task definition names (`PREFIX/CONTAINER/TASK-ID`).
    pub async fn task_logs(
        &self,
        principal: &Principal,
        env: &str,
        region: Option<&str>,
        cluster: &str,
        task_id: &str,
        request: &LogsRequest,
    ) -> Result<ContainerLogs, Error> {
        let task = self
            .container_task(principal, env, region, cluster, task_id)
            .await?;
        let (environment, containers, _) = self.containers_of(env, Some(&task.region))?;
        let definition = containers
            .task_definition(&task.region, &task.task_definition)
            .await
            .map_err(provider_error)?
            .ok_or_else(|| Error::not_found("task_definition", &task.task_definition))?;
        let logged: Vec<&Container> = definition
            .containers
            .iter()
            .filter(|c| c.log.is_some())
            .collect();
        let container = match &request.container {
            Some(name) => logged.iter().find(|c| &c.name == name).ok_or_else(|| {
                Error::invalid(
                    "container",
                    format!("task {task_id} has no container `{name}` that logs"),
                )
            })?,
            None => logged.first().ok_or_else(|| {
                Error::invalid(
                    "container",
                    format!(
                        "no container of {} sends its logs anywhere",
                        definition.name()
                    ),
                )
            })?,
        };
        let Some(settings) = &container.log else {
            return Err(Error::internal("a logged container lost its log settings"));
        };
        let stream = format!("{}/{}/{}", settings.stream_prefix, container.name, task.id);
        let query = LogQuery {
            start_ms: request.since_ms,
            end_ms: request.until_ms,
            newest_first: request.newest_first,
            limit: request.limit.clamp(1, MAX_LOG_EVENTS),
            page_token: request.page_token.clone(),
        };
        let LogPage {
            events,
            next_page_token,
        } = environment
            .container_support()?
            .log_events(&task.region, &settings.group, &stream, &query)
            .await
            .map_err(provider_error)?;
        Ok(ContainerLogs {
            task: task.id,
            container: container.name.clone(),
            group: settings.group.clone(),
            stream,
            lines: events
                .into_iter()
                .map(|e| LogLine {
                    at_ms: e.at_ms,
                    message: e.message,
                })
                .collect(),
            next_page_token,
        })
    }
}
