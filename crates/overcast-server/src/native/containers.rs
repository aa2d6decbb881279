//! Container services of an environment: clusters, task definitions, services and tasks,
//! each in a region (`?region=`, default the environment's first). Reads show the caller's
//! org's; changes are operations.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use overcast_core::containers::{
    CreateClusterRequest, CreateRegistryRequest, CreateServiceRequest, LogsRequest,
    RegisterTaskDefinitionRequest, RunTaskRequest, UpdateServiceRequest, MAX_LOG_EVENTS,
};
use overcast_core::orchestration::CreateContainerServiceRequest;
use overcast_provider::TaskFilter;
use overcast_types::{
    Cluster, ContainerLogs, ContainerService, Operation, Page, Registry, Task, TaskDefinition,
};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::native::error::{ApiResult, ErrorBody};
use crate::native::extract::{ApiPath, ApiQuery, Caller, Mutation, NoBody};
use crate::AppState;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RegionQuery {
    /// The region (default: the environment's first).
    region: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ServicesQuery {
    /// The cluster's region (default: the environment's first).
    region: Option<String>,
    /// Read the backend now rather than answer from the inventory; the answer's `as_of`
    /// says when it was read.
    #[serde(default)]
    fresh: bool,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    region: Option<String>,
    /// Clusters: delete its services and stop its tasks first. Services: also deregister
    /// the task definition revisions its org made that nothing else uses.
    #[serde(default)]
    recursive: bool,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TaskDefinitionQuery {
    region: Option<String>,
    /// Only this family's revisions.
    family: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TaskQuery {
    region: Option<String>,
    /// Only tasks this service started.
    service: Option<String>,
    /// Only tasks of this task definition family.
    family: Option<String>,
    /// `RUNNING` (default), `PENDING` or `STOPPED`: the tasks' desired status.
    status: Option<String>,
}

/// The clusters the caller may see, with their counts.
#[utoipa::path(get, path = "/v1/environments/{env}/clusters", tag = "containers",
    params(("env" = String, Path, description = "Environment name"), RegionQuery),
    responses((status = 200, body = Page<Cluster>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn cluster_list(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(env): ApiPath<String>,
    ApiQuery(query): ApiQuery<RegionQuery>,
) -> ApiResult<Json<Page<Cluster>>> {
    let clusters = state
        .core
        .clusters(&principal, &env, query.region.as_deref())
        .await?;
    Ok(Json(Page::whole(clusters)))
}

/// Makes a cluster (an operation): Fargate and Fargate Spot capacity providers unless told.
#[utoipa::path(post, path = "/v1/environments/{env}/clusters", tag = "containers", request_body = CreateClusterRequest,
    params(("env" = String, Path, description = "Environment name"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 201, body = Operation), (status = 202, body = Operation), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "name taken")))]
pub async fn cluster_create(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(env): ApiPath<String>,
    request: Mutation<CreateClusterRequest>,
) -> ApiResult<Response> {
    let operation = state
        .core
        .create_cluster(
            &principal,
            &env,
            &request.body,
            request.idempotency.as_ref(),
        )
        .await?;
    request
        .answer(&state, &principal, operation, StatusCode::CREATED)
        .await
}

/// One cluster, with its counts of services and tasks.
#[utoipa::path(get, path = "/v1/environments/{env}/clusters/{cluster}", tag = "containers",
    params(("env" = String, Path, description = "Environment name"), ("cluster" = String, Path, description = "Cluster name"), RegionQuery),
    responses((status = 200, body = Cluster), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn cluster_view(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, cluster)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<RegionQuery>,
) -> ApiResult<Json<Cluster>> {
    let cluster = state
        .core
        .cluster(&principal, &env, query.region.as_deref(), &cluster)
        .await?;
    Ok(Json(cluster))
}

/// Deletes a cluster (an operation): 409 while it has services or tasks, unless
/// `recursive`.
#[utoipa::path(delete, path = "/v1/environments/{env}/clusters/{cluster}", tag = "containers",
    params(("env" = String, Path, description = "Environment name"), ("cluster" = String, Path, description = "Cluster name"), DeleteQuery,
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 200, body = Operation), (status = 202, body = Operation), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "it has services or tasks")))]
pub async fn cluster_delete(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, cluster)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<DeleteQuery>,
    request: Mutation<NoBody>,
) -> ApiResult<Response> {
    let operation = state
        .core
        .delete_cluster(
            &principal,
            &env,
            query.region.as_deref(),
            &cluster,
            query.recursive,
            request.idempotency.as_ref(),
        )
        .await?;
    request
        .answer(&state, &principal, operation, StatusCode::OK)
        .await
}

/// The active task definition revisions the caller may see, oldest first.
#[utoipa::path(get, path = "/v1/environments/{env}/task-definitions", tag = "containers",
    params(("env" = String, Path, description = "Environment name"), TaskDefinitionQuery),
    responses((status = 200, body = Page<TaskDefinition>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn task_definition_list(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(env): ApiPath<String>,
    ApiQuery(query): ApiQuery<TaskDefinitionQuery>,
) -> ApiResult<Json<Page<TaskDefinition>>> {
    let definitions = state
        .core
        .task_definitions(
            &principal,
            &env,
            query.region.as_deref(),
            query.family.as_deref(),
        )
        .await?;
    Ok(Json(Page::whole(definitions)))
}

/// Registers a task definition revision (an operation). Container secrets name overcast
/// secrets; ECS gets their ARNs.
#[utoipa::path(post, path = "/v1/environments/{env}/task-definitions", tag = "containers", request_body = RegisterTaskDefinitionRequest,
    params(("env" = String, Path, description = "Environment name"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 201, body = Operation), (status = 202, body = Operation), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody, description = "no such environment, or a secret named is not the caller's")))]
pub async fn task_definition_register(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(env): ApiPath<String>,
    request: Mutation<RegisterTaskDefinitionRequest>,
) -> ApiResult<Response> {
    let operation = state
        .core
        .register_task_definition(
            &principal,
            &env,
            &request.body,
            request.idempotency.as_ref(),
        )
        .await?;
    request
        .answer(&state, &principal, operation, StatusCode::CREATED)
        .await
}

/// One revision (`family:revision`), or a family's latest (`family`).
#[utoipa::path(get, path = "/v1/environments/{env}/task-definitions/{name}", tag = "containers",
    params(("env" = String, Path, description = "Environment name"), ("name" = String, Path, description = "family:revision, or family"), RegionQuery),
    responses((status = 200, body = TaskDefinition), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn task_definition_view(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, name)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<RegionQuery>,
) -> ApiResult<Json<TaskDefinition>> {
    let definition = state
        .core
        .task_definition(&principal, &env, query.region.as_deref(), &name)
        .await?;
    Ok(Json(definition))
}

/// Deregisters a revision (an operation).
#[utoipa::path(delete, path = "/v1/environments/{env}/task-definitions/{name}", tag = "containers",
    params(("env" = String, Path, description = "Environment name"), ("name" = String, Path, description = "family:revision"), RegionQuery,
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 200, body = Operation), (status = 202, body = Operation), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn task_definition_deregister(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, name)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<RegionQuery>,
    request: Mutation<NoBody>,
) -> ApiResult<Response> {
    let operation = state
        .core
        .deregister_task_definition(
            &principal,
            &env,
            query.region.as_deref(),
            &name,
            request.idempotency.as_ref(),
        )
        .await?;
    request
        .answer(&state, &principal, operation, StatusCode::OK)
        .await
}

/// The services of a cluster the caller may see.
#[utoipa::path(get, path = "/v1/environments/{env}/clusters/{cluster}/services", tag = "containers",
    params(("env" = String, Path, description = "Environment name"), ("cluster" = String, Path, description = "Cluster name"), ServicesQuery),
    responses((status = 200, body = Page<ContainerService>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn service_list(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, cluster)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<ServicesQuery>,
) -> ApiResult<Json<Page<ContainerService>>> {
    let region = query.region.as_deref();
    let page = state
        .core
        .container_services(&principal, &env, region, &cluster, query.fresh)
        .await?;
    Ok(Json(page))
}

/// Makes a service (an operation): Fargate tasks of a task definition kept at a desired
/// count, in the given subnets and security groups.
#[utoipa::path(post, path = "/v1/environments/{env}/clusters/{cluster}/services", tag = "containers", request_body = CreateServiceRequest,
    params(("env" = String, Path, description = "Environment name"), ("cluster" = String, Path, description = "Cluster name"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 201, body = Operation), (status = 202, body = Operation), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "name taken")))]
pub async fn service_create(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, cluster)): ApiPath<(String, String)>,
    request: Mutation<CreateServiceRequest>,
) -> ApiResult<Response> {
    let operation = state
        .core
        .create_container_service(
            &principal,
            &env,
            &cluster,
            &request.body,
            request.idempotency.as_ref(),
        )
        .await?;
    request
        .answer(&state, &principal, operation, StatusCode::CREATED)
        .await
}

/// One service: deployments, recent events, counts.
#[utoipa::path(get, path = "/v1/environments/{env}/clusters/{cluster}/services/{service}", tag = "containers",
    params(("env" = String, Path, description = "Environment name"), ("cluster" = String, Path, description = "Cluster name"),
           ("service" = String, Path, description = "Service name"), RegionQuery),
    responses((status = 200, body = ContainerService), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn service_view(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, cluster, service)): ApiPath<(String, String, String)>,
    ApiQuery(query): ApiQuery<RegionQuery>,
) -> ApiResult<Json<ContainerService>> {
    let service = state
        .core
        .container_service(
            &principal,
            &env,
            query.region.as_deref(),
            &cluster,
            &service,
        )
        .await?;
    Ok(Json(service))
}

/// Changes a service's desired count or task definition, or redeploys it (an operation).
#[utoipa::path(patch, path = "/v1/environments/{env}/clusters/{cluster}/services/{service}", tag = "containers", request_body = UpdateServiceRequest,
    params(("env" = String, Path, description = "Environment name"), ("cluster" = String, Path, description = "Cluster name"),
           ("service" = String, Path, description = "Service name"), RegionQuery,
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 200, body = Operation), (status = 202, body = Operation), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn service_update(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, cluster, service)): ApiPath<(String, String, String)>,
    ApiQuery(query): ApiQuery<RegionQuery>,
    request: Mutation<UpdateServiceRequest>,
) -> ApiResult<Response> {
    let operation = state
        .core
        .update_container_service(
            &principal,
            &env,
            query.region.as_deref(),
            &cluster,
            &service,
            &request.body,
            request.idempotency.as_ref(),
        )
        .await?;
    request
        .answer(&state, &principal, operation, StatusCode::OK)
        .await
}

/// Scales a service to zero and deletes it (an operation); `recursive` also deregisters
/// the revisions of its family its org made that nothing else uses.
#[utoipa::path(delete, path = "/v1/environments/{env}/clusters/{cluster}/services/{service}", tag = "containers",
    params(("env" = String, Path, description = "Environment name"), ("cluster" = String, Path, description = "Cluster name"),
           ("service" = String, Path, description = "Service name"), DeleteQuery,
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 200, body = Operation), (status = 202, body = Operation), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn service_delete(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, cluster, service)): ApiPath<(String, String, String)>,
    ApiQuery(query): ApiQuery<DeleteQuery>,
    request: Mutation<NoBody>,
) -> ApiResult<Response> {
    let operation = state
        .core
        .delete_container_service(
            &principal,
            &env,
            query.region.as_deref(),
            &cluster,
            &service,
            query.recursive,
            request.idempotency.as_ref(),
        )
        .await?;
    request
        .answer(&state, &principal, operation, StatusCode::OK)
        .await
}

/// The tasks of a cluster the caller may see.
#[utoipa::path(get, path = "/v1/environments/{env}/clusters/{cluster}/tasks", tag = "containers",
    params(("env" = String, Path, description = "Environment name"), ("cluster" = String, Path, description = "Cluster name"), TaskQuery),
    responses((status = 200, body = Page<Task>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn task_list(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, cluster)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<TaskQuery>,
) -> ApiResult<Json<Page<Task>>> {
    let status = query
        .status
        .map(|s| s.to_ascii_uppercase())
        .map(|s| match s.as_str() {
            "RUNNING" | "PENDING" | "STOPPED" => Ok(s),
            _ => Err(overcast_types::Error::invalid(
                "status",
                format!("`{s}` is not RUNNING, PENDING or STOPPED"),
            )),
        })
        .transpose()?;
    let filter = TaskFilter {
        service: query.service,
        family: query.family,
        desired_status: status,
    };
    let tasks = state
        .core
        .container_tasks(&principal, &env, query.region.as_deref(), &cluster, &filter)
        .await?;
    Ok(Json(Page::whole(tasks)))
}

/// Runs tasks of a task definition (an operation), with per-container overrides.
#[utoipa::path(post, path = "/v1/environments/{env}/clusters/{cluster}/tasks", tag = "containers", request_body = RunTaskRequest,
    params(("env" = String, Path, description = "Environment name"), ("cluster" = String, Path, description = "Cluster name"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 201, body = Operation), (status = 202, body = Operation), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 507, body = ErrorBody, description = "the backend could not place the tasks")))]
pub async fn task_run(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, cluster)): ApiPath<(String, String)>,
    request: Mutation<RunTaskRequest>,
) -> ApiResult<Response> {
    let operation = state
        .core
        .run_container_task(
            &principal,
            &env,
            &cluster,
            &request.body,
            request.idempotency.as_ref(),
        )
        .await?;
    request
        .answer(&state, &principal, operation, StatusCode::CREATED)
        .await
}

/// One task, with its containers' states.
#[utoipa::path(get, path = "/v1/environments/{env}/clusters/{cluster}/tasks/{id}", tag = "containers",
    params(("env" = String, Path, description = "Environment name"), ("cluster" = String, Path, description = "Cluster name"),
           ("id" = String, Path, description = "Task id"), RegionQuery),
    responses((status = 200, body = Task), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn task_view(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, cluster, id)): ApiPath<(String, String, String)>,
    ApiQuery(query): ApiQuery<RegionQuery>,
) -> ApiResult<Json<Task>> {
    let task = state
        .core
        .container_task(&principal, &env, query.region.as_deref(), &cluster, &id)
        .await?;
    Ok(Json(task))
}

/// Stops a task (an operation).
#[utoipa::path(post, path = "/v1/environments/{env}/clusters/{cluster}/tasks/{id}/stop", tag = "containers",
    params(("env" = String, Path, description = "Environment name"), ("cluster" = String, Path, description = "Cluster name"),
           ("id" = String, Path, description = "Task id"), RegionQuery,
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 200, body = Operation), (status = 202, body = Operation), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn task_stop(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, cluster, id)): ApiPath<(String, String, String)>,
    ApiQuery(query): ApiQuery<RegionQuery>,
    request: Mutation<NoBody>,
) -> ApiResult<Response> {
    let operation = state
        .core
        .stop_container_task(
            &principal,
            &env,
            query.region.as_deref(),
            &cluster,
            &id,
            request.idempotency.as_ref(),
        )
        .await?;
    request
        .answer(&state, &principal, operation, StatusCode::OK)
        .await
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RegistryQuery {
    region: Option<String>,
    /// Only this namespace's (its id).
    namespace: Option<String>,
}

/// The service discovery services the caller may see.
#[utoipa::path(get, path = "/v1/environments/{env}/registries", tag = "containers",
    params(("env" = String, Path, description = "Environment name"), RegistryQuery),
    responses((status = 200, body = Page<Registry>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn registry_list(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(env): ApiPath<String>,
    ApiQuery(query): ApiQuery<RegistryQuery>,
) -> ApiResult<Json<Page<Registry>>> {
    let registries = state
        .core
        .registries(
            &principal,
            &env,
            query.region.as_deref(),
            query.namespace.as_deref(),
        )
        .await?;
    Ok(Json(Page::whole(registries)))
}

/// Makes a service discovery service in a namespace (an operation); an unknown namespace
/// is a 404 naming it.
#[utoipa::path(post, path = "/v1/environments/{env}/registries", tag = "containers", request_body = CreateRegistryRequest,
    params(("env" = String, Path, description = "Environment name"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 201, body = Operation), (status = 202, body = Operation), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody, description = "no such environment or namespace")))]
pub async fn registry_create(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(env): ApiPath<String>,
    request: Mutation<CreateRegistryRequest>,
) -> ApiResult<Response> {
    let operation = state
        .core
        .create_registry(
            &principal,
            &env,
            &request.body,
            request.idempotency.as_ref(),
        )
        .await?;
    request
        .answer(&state, &principal, operation, StatusCode::CREATED)
        .await
}

#[utoipa::path(get, path = "/v1/environments/{env}/registries/{id}", tag = "containers",
    params(("env" = String, Path, description = "Environment name"), ("id" = String, Path, description = "Registry id, e.g. srv-..."), RegionQuery),
    responses((status = 200, body = Registry), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn registry_view(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, id)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<RegionQuery>,
) -> ApiResult<Json<Registry>> {
    let registry = state
        .core
        .registry(&principal, &env, query.region.as_deref(), &id)
        .await?;
    Ok(Json(registry))
}

/// Deletes a service discovery service (an operation).
#[utoipa::path(delete, path = "/v1/environments/{env}/registries/{id}", tag = "containers",
    params(("env" = String, Path, description = "Environment name"), ("id" = String, Path, description = "Registry id"), RegionQuery,
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 200, body = Operation), (status = 202, body = Operation), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn registry_delete(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, id)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<RegionQuery>,
    request: Mutation<NoBody>,
) -> ApiResult<Response> {
    let operation = state
        .core
        .delete_registry(
            &principal,
            &env,
            query.region.as_deref(),
            &id,
            request.idempotency.as_ref(),
        )
        .await?;
    request
        .answer(&state, &principal, operation, StatusCode::OK)
        .await
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogQueryParams {
    region: Option<String>,
    /// The container (default: the task's first that logs).
    container: Option<String>,
    /// From this time: RFC 3339, or milliseconds since the epoch.
    since: Option<String>,
    /// Before this time: RFC 3339, or milliseconds since the epoch.
    until: Option<String>,
    /// `oldest` (default) or `newest` first.
    order: Option<String>,
    /// 1 to 10,000 lines (default 100).
    limit: Option<u32>,
    page_token: Option<String>,
}

/// A time as RFC 3339 or milliseconds since the epoch.
fn time_ms(field: &str, value: Option<&str>) -> Result<Option<i64>, overcast_types::Error> {
    let Some(value) = value else {
        return Ok(None);
    };
    if let Ok(ms) = value.parse::<i64>() {
        return Ok(Some(ms));
    }
    time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map(|t| Some((t.unix_timestamp_nanos() / 1_000_000) as i64))
        .map_err(|_| {
            overcast_types::Error::invalid(
                field,
                format!("`{value}` is not an RFC 3339 time or milliseconds since the epoch"),
            )
        })
}

/// What one container of a task logged, paged, oldest or newest first.
#[utoipa::path(get, path = "/v1/environments/{env}/clusters/{cluster}/tasks/{id}/logs", tag = "containers",
    params(("env" = String, Path, description = "Environment name"), ("cluster" = String, Path, description = "Cluster name"),
           ("id" = String, Path, description = "Task id"), LogQueryParams),
    responses((status = 200, body = ContainerLogs), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn task_logs(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, cluster, id)): ApiPath<(String, String, String)>,
    ApiQuery(query): ApiQuery<LogQueryParams>,
) -> ApiResult<Json<ContainerLogs>> {
    let newest_first = match query.order.as_deref() {
        None | Some("oldest") => false,
        Some("newest") => true,
        Some(other) => {
            return Err(overcast_types::Error::invalid(
                "order",
                format!("`{other}` is not oldest or newest"),
            )
            .into())
        }
    };
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_LOG_EVENTS).contains(&limit) {
        return Err(overcast_types::Error::invalid("limit", "is a number from 1 to 10000").into());
    }
    let request = LogsRequest {
        container: query.container,
        since_ms: time_ms("since", query.since.as_deref())?,
        until_ms: time_ms("until", query.until.as_deref())?,
        newest_first,
        limit,
        page_token: query.page_token,
    };
    let logs = state
        .core
        .task_logs(
            &principal,
            &env,
            query.region.as_deref(),
            &cluster,
            &id,
            &request,
        )
        .await?;
    Ok(Json(logs))
}

/// Makes a whole container service in one operation: the cluster (unless the caller has one
/// of that name), a task definition revision, a service discovery service, and the service,
/// in that order. When a step fails, what the operation made is undone, newest first; its
/// results say what was made, undone, or left in place.
#[utoipa::path(post, path = "/v1/environments/{env}/container-services", tag = "containers", request_body = CreateContainerServiceRequest,
    params(("env" = String, Path, description = "Environment name"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 201, body = Operation), (status = 202, body = Operation), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody, description = "a part names what the caller does not have, e.g. a namespace or secret"),
              (status = 409, body = ErrorBody, description = "the service exists")))]
pub async fn container_service_create(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(env): ApiPath<String>,
    request: Mutation<CreateContainerServiceRequest>,
) -> ApiResult<Response> {
    let operation = state
        .core
        .create_container_stack(
            &principal,
            &env,
            &request.body,
            request.idempotency.as_ref(),
        )
        .await?;
    request
        .answer(&state, &principal, operation, StatusCode::CREATED)
        .await
}
