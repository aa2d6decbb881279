//! ecs-api's ad hoc routes of v1.2.0: clusters, tasks, task definitions and service
//! discovery services one at a time (CONTRACTS.md §2.3, routes 12–27). ecs-api passed
//! these straight to AWS; here each read is the caller's org's and each change an
//! operation, answered in the SDK's output shapes once it has ended.

use axum::extract::{RawQuery, State};
use axum::response::Response;
use overcast_core::containers::{OverrideRequest, RunTaskRequest};
use overcast_provider::TaskFilter;
use overcast_types::{Cluster, ErrorKind, Operation, Registry, Task, TaskDefinition};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::collections::BTreeMap;

use super::decode::{self, GoStruct};
use super::services::{
    cluster_request, fargate_only, network, registry_request, task_definition_request,
};
use super::{
    account, changed, finished, json_answer, query_values, render, respond, EcsError, Sent,
};
use crate::native::extract::{ApiPath, Caller};
use crate::AppState;

/// What each result of an operation made, as recorded.
fn made_all<T: DeserializeOwned>(operation: &Operation) -> Vec<T> {
    operation
        .results
        .iter()
        .filter_map(|r| r.detail.clone())
        .filter_map(|d| serde_json::from_value(d).ok())
        .collect()
}

fn made_one<T: DeserializeOwned>(operation: &Operation, what: &str) -> Result<T, EcsError> {
    made_all(operation).into_iter().next().ok_or_else(|| {
        EcsError::bad_request(format!("operation {} made no {what} to show", operation.id))
    })
}

/// A change request's parts: its environment, its body as JSON, and its context.
struct Change<'a> {
    env: String,
    value: Value,
    cx: crate::compat::ChangeContext<'a>,
}

fn change<'a>(
    state: &'a AppState,
    principal: &'a overcast_core::auth::Principal,
    account_name: &str,
    service: &str,
    sent: &Sent,
) -> Result<Change<'a>, EcsError> {
    let value = if sent.body.is_empty() {
        Value::Null
    } else {
        decode::body(&sent.body)?
    };
    Ok(Change {
        env: account(state, account_name, service)?.environment,
        value,
        cx: sent.context(state, principal)?,
    })
}

pub async fn list_clusters(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(account_name): ApiPath<String>,
) -> Response {
    respond(
        async {
            let env = account(&state, &account_name, "ecs")?.environment;
            let clusters = state.core.clusters(&principal, &env, None).await?;
            let arns: Vec<&Option<String>> = clusters.iter().map(|c| &c.arn).collect();
            Ok(json_answer(&json!(arns)))
        }
        .await,
    )
}

/// `POST .../clusters`: an `ecs.CreateClusterInput` as it is (no ecs-api defaults).
pub async fn create_cluster(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(account_name): ApiPath<String>,
    sent: Sent,
) -> Response {
    respond(
        async {
            let c = change(&state, &principal, &account_name, "ecs", &sent)?;
            let input = GoStruct::of(&c.value, "ecs.CreateClusterInput")?;
            let request = cluster_request(&input, &principal.org, false)?;
            let operation = state
                .core
                .create_cluster(&principal, &c.env, &request, c.cx.idempotency.as_ref())
                .await?;
            let operation = finished(&c.cx, operation).await?;
            let cluster: Cluster = made_one(&operation, "cluster")?;
            changed(&json!({"Cluster": render::cluster(&cluster)}), &operation)
        }
        .await,
    )
}

pub async fn show_cluster(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((account_name, name)): ApiPath<(String, String)>,
) -> Response {
    respond(
        async {
            let env = account(&state, &account_name, "ecs")?.environment;
            let cluster = state.core.cluster(&principal, &env, None, &name).await?;
            Ok(json_answer(
                &json!({"Clusters": [render::cluster(&cluster)], "Failures": []}),
            ))
        }
        .await,
    )
}

/// `DELETE .../clusters/{cluster}`: an empty cluster (one with services or tasks is a 409).
pub async fn delete_cluster(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((account_name, name)): ApiPath<(String, String)>,
    sent: Sent,
) -> Response {
    respond(
        async {
            let c = change(&state, &principal, &account_name, "ecs", &sent)?;
            let mut cluster = state.core.cluster(&principal, &c.env, None, &name).await?;
            let operation = state
                .core
                .delete_cluster(
                    &principal,
                    &c.env,
                    Some(&cluster.region),
                    &name,
                    false,
                    c.cx.idempotency.as_ref(),
                )
                .await?;
            let operation = finished(&c.cx, operation).await?;
            cluster.status = "INACTIVE".into();
            changed(&json!({"Cluster": render::cluster(&cluster)}), &operation)
        }
        .await,
    )
}

/// `GET .../clusters/{cluster}/tasks[?service=&family=&status=]`: task ARNs.
pub async fn list_tasks(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((account_name, cluster)): ApiPath<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    respond(
        async {
            let env = account(&state, &account_name, "ecs")?.environment;
            let values = query_values(query.as_deref())?;
            let filter = TaskFilter {
                service: values.get("service").cloned(),
                family: values.get("family").cloned(),
                desired_status: values.get("status").cloned(),
            };
            let tasks = state
                .core
                .container_tasks(&principal, &env, None, &cluster, &filter)
                .await?;
            let arns: Vec<&Option<String>> = tasks.iter().map(|t| &t.arn).collect();
            Ok(json_answer(&json!(arns)))
        }
        .await,
    )
}

/// `POST .../clusters/{cluster}/tasks`: an `ecs.RunTaskInput`, run in the cluster of the
/// path (ecs-api ran every task in a cluster named FARGATE, which failed).
pub async fn run_task(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((account_name, cluster)): ApiPath<(String, String)>,
    sent: Sent,
) -> Response {
    respond(
        async {
            let c = change(&state, &principal, &account_name, "ecs", &sent)?;
            let input = GoStruct::of(&c.value, "ecs.RunTaskInput")?;
            input.refuse(&[
                "CapacityProviderStrategy",
                "PlacementConstraints",
                "PlacementStrategy",
            ])?;
            fargate_only(&input)?;
            let (subnets, security_groups, public_ip) = network(&input)?;
            let mut overrides = BTreeMap::new();
            if let Some(task) = input.object("Overrides", "ecs.TaskOverride")? {
                task.refuse(&[
                    "Cpu",
                    "ExecutionRoleArn",
                    "InferenceAcceleratorOverrides",
                    "Memory",
                    "TaskRoleArn",
                ])?;
                for container in task.objects("ContainerOverrides", "ecs.ContainerOverride")? {
                    container.refuse(&[
                        "Cpu",
                        "Memory",
                        "MemoryReservation",
                        "ResourceRequirements",
                    ])?;
                    overrides.insert(
                        container.string("Name")?.unwrap_or_default(),
                        OverrideRequest {
                            command: container.strings("Command")?,
                            environment: container.name_values("Environment")?,
                        },
                    );
                }
            }
            let count = match input.int("Count")? {
                Some(n) => {
                    u32::try_from(n).map_err(|_| EcsError::bad_request("Count must be 1 to 10"))?
                }
                None => 1,
            };
            let request = RunTaskRequest {
                task_definition: input.string("TaskDefinition")?.unwrap_or_default(),
                region: None,
                count,
                subnets,
                security_groups,
                public_ip,
                overrides,
                tags: super::with_org(&principal.org, input.tags("Tags")?),
            };
            let operation = state
                .core
                .run_container_task(
                    &principal,
                    &c.env,
                    &cluster,
                    &request,
                    c.cx.idempotency.as_ref(),
                )
                .await?;
            let operation = finished(&c.cx, operation).await?;
            let tasks: Vec<Task> = made_all(&operation);
            let tasks: Vec<Value> = tasks.iter().map(render::task).collect();
            changed(&json!({"Failures": [], "Tasks": tasks}), &operation)
        }
        .await,
    )
}

/// `GET .../tasks/{task}`: a missing task is a `MISSING` failure, not a 404, as
/// DescribeTasks answers.
pub async fn show_task(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((account_name, cluster, id)): ApiPath<(String, String, String)>,
) -> Response {
    respond(
        async {
            let env = account(&state, &account_name, "ecs")?.environment;
            let answer = match state
                .core
                .container_task(&principal, &env, None, &cluster, &id)
                .await
            {
                Ok(task) => json!({"Failures": [], "Tasks": [render::task(&task)]}),
                Err(e) if e.kind == ErrorKind::NotFound && e.message.contains("task") => json!({
                    "Failures": [{"Arn": id, "Detail": null, "Reason": "MISSING"}],
                    "Tasks": [],
                }),
                Err(e) => return Err(e.into()),
            };
            Ok(json_answer(&answer))
        }
        .await,
    )
}

/// `DELETE .../tasks/{task}`: stops it; answers the task as stopping.
pub async fn stop_task(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((account_name, cluster, id)): ApiPath<(String, String, String)>,
    sent: Sent,
) -> Response {
    respond(
        async {
            let c = change(&state, &principal, &account_name, "ecs", &sent)?;
            let operation = state
                .core
                .stop_container_task(
                    &principal,
                    &c.env,
                    None,
                    &cluster,
                    &id,
                    c.cx.idempotency.as_ref(),
                )
                .await?;
            let operation = finished(&c.cx, operation).await?;
            let task = match made_all::<Task>(&operation).into_iter().next() {
                Some(task) => task,
                None => {
                    state
                        .core
                        .container_task(&principal, &c.env, None, &cluster, &id)
                        .await?
                }
            };
            changed(&json!({"Task": render::task(&task)}), &operation)
        }
        .await,
    )
}

/// `GET .../taskdefs[?status=ACTIVE|INACTIVE&prefix=]`: revision ARNs.
pub async fn list_task_definitions(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(account_name): ApiPath<String>,
    RawQuery(query): RawQuery,
) -> Response {
    respond(
        async {
            let env = account(&state, &account_name, "ecs")?.environment;
            let values = query_values(query.as_deref())?;
            let status = values.get("status").map_or("ACTIVE", String::as_str);
            let definitions = state
                .core
                .task_definitions(
                    &principal,
                    &env,
                    None,
                    values.get("prefix").map(String::as_str),
                )
                .await?;
            let arns: Vec<&Option<String>> = definitions
                .iter()
                .filter(|d| d.status == status)
                .map(|d| &d.arn)
                .collect();
            Ok(json_answer(&json!(arns)))
        }
        .await,
    )
}

/// `POST .../taskdefs`: an `ecs.RegisterTaskDefinitionInput`.
pub async fn register_task_definition(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(account_name): ApiPath<String>,
    sent: Sent,
) -> Response {
    respond(
        async {
            let c = change(&state, &principal, &account_name, "ecs", &sent)?;
            let input = GoStruct::of(&c.value, "ecs.RegisterTaskDefinitionInput")?;
            let request = task_definition_request(&input, &principal.org)?;
            let operation = state
                .core
                .register_task_definition(&principal, &c.env, &request, c.cx.idempotency.as_ref())
                .await?;
            let operation = finished(&c.cx, operation).await?;
            let definition: TaskDefinition = made_one(&operation, "task definition")?;
            changed(
                &json!({
                    "Tags": render::tags(&definition.tags),
                    "TaskDefinition": render::task_definition(&definition),
                }),
                &operation,
            )
        }
        .await,
    )
}

pub async fn show_task_definition(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((account_name, name)): ApiPath<(String, String)>,
) -> Response {
    respond(
        async {
            let env = account(&state, &account_name, "ecs")?.environment;
            let definition = state
                .core
                .task_definition(&principal, &env, None, &name)
                .await?;
            Ok(json_answer(&json!({
                "Tags": render::tags(&definition.tags),
                "TaskDefinition": render::task_definition(&definition),
            })))
        }
        .await,
    )
}

/// `DELETE .../taskdefs/{taskdef}`: deregisters the revision; answers it as INACTIVE.
pub async fn deregister_task_definition(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((account_name, name)): ApiPath<(String, String)>,
    sent: Sent,
) -> Response {
    respond(
        async {
            let c = change(&state, &principal, &account_name, "ecs", &sent)?;
            let mut definition = state
                .core
                .task_definition(&principal, &c.env, None, &name)
                .await?;
            let operation = state
                .core
                .deregister_task_definition(
                    &principal,
                    &c.env,
                    Some(&definition.region),
                    &name,
                    c.cx.idempotency.as_ref(),
                )
                .await?;
            let operation = finished(&c.cx, operation).await?;
            definition.status = "INACTIVE".into();
            changed(
                &json!({"TaskDefinition": render::task_definition(&definition)}),
                &operation,
            )
        }
        .await,
    )
}

/// `GET .../servicediscovery/services`: every Cloud Map service of the org, one page.
pub async fn list_registries(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(account_name): ApiPath<String>,
) -> Response {
    respond(
        async {
            let env = account(&state, &account_name, "service discover")?.environment;
            let registries = state.core.registries(&principal, &env, None, None).await?;
            let services: Vec<Value> = registries.iter().map(render::registry_summary).collect();
            Ok(json_answer(
                &json!({"NextToken": null, "Services": services}),
            ))
        }
        .await,
    )
}

/// `POST .../servicediscovery/services`: a `servicediscovery.CreateServiceInput`.
pub async fn create_registry(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(account_name): ApiPath<String>,
    sent: Sent,
) -> Response {
    respond(
        async {
            let c = change(&state, &principal, &account_name, "service discover", &sent)?;
            let input = GoStruct::of(&c.value, "servicediscovery.CreateServiceInput")?;
            let mut request = registry_request(&input)?;
            request.tags = super::with_org(&principal.org, BTreeMap::new());
            let operation = state
                .core
                .create_registry(&principal, &c.env, &request, c.cx.idempotency.as_ref())
                .await?;
            let operation = finished(&c.cx, operation).await?;
            let registry: Registry = made_one(&operation, "service discovery service")?;
            changed(&json!({"Service": render::registry(&registry)}), &operation)
        }
        .await,
    )
}

pub async fn show_registry(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((account_name, id)): ApiPath<(String, String)>,
) -> Response {
    respond(
        async {
            let env = account(&state, &account_name, "service discover")?.environment;
            let registry = state.core.registry(&principal, &env, None, &id).await?;
            Ok(json_answer(
                &json!({"Service": render::registry(&registry)}),
            ))
        }
        .await,
    )
}

pub async fn delete_registry(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((account_name, id)): ApiPath<(String, String)>,
    sent: Sent,
) -> Response {
    respond(
        async {
            let c = change(&state, &principal, &account_name, "service discover", &sent)?;
            let operation = state
                .core
                .delete_registry(&principal, &c.env, None, &id, c.cx.idempotency.as_ref())
                .await?;
            let operation = finished(&c.cx, operation).await?;
            changed(&json!({}), &operation)
        }
        .await,
    )
}
