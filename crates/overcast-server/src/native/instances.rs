//! Instances of an environment: list, create, get, act on, tag, console.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use overcast_core::compute::{
    BulkAction, CreateInstancesRequest, FleetSummary, InstanceActionRequest, InstanceQuery, Launch,
    ModifyInstanceRequest, RegionView,
};
use overcast_types::{Error, Instance, InstanceState, Operation, Page};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::page_limit;
use crate::native::error::{ApiResult, ErrorBody};
use crate::native::extract::{parse_param, ApiQuery, FreshQuery, Mutation, NoBody};
use crate::native::extract::{ApiPath, Caller};
use crate::AppState;

/// Instances of the environment the caller may see, across its regions, sorted by id.
#[utoipa::path(get, path = "/v1/environments/{env}/instances", tag = "instances",
    params(
        ("env" = String, Path, description = "Environment name"),
        ("stage" = Option<String>, Query, description = "Only this stage"),
        ("state" = Option<InstanceState>, Query, description = "Only this state, e.g. running"),
        ("name" = Option<String>, Query, description = "Only this Name tag"),
        ("region" = Option<String>, Query, description = "Only this region"),
        ("tag.KEY" = Option<String>, Query, description = "Only instances whose tag KEY has this value; repeatable"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "1 to 500, default 50"),
        ("page_token" = Option<String>, Query, description = "From the previous page's next_page_token"),
        ("fresh" = Option<bool>, Query, description = "Read the backend now (every region) rather than answer from the inventory; the answer's as_of says when it was read"),
    ),
    responses((status = 200, body = Page<Instance>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn instance_list(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(env): ApiPath<String>,
    ApiQuery(params): ApiQuery<Vec<(String, String)>>,
) -> ApiResult<Json<Page<Instance>>> {
    let query = instance_query(params, true)?;
    Ok(Json(state.core.instances(&principal, &env, query).await?))
}

/// The instances of the environment the caller may see that match the filters, counted by
/// stage and state: the fleet at a glance, without listing it.
#[utoipa::path(get, path = "/v1/environments/{env}/fleet", tag = "instances",
    params(
        ("env" = String, Path, description = "Environment name"),
        ("stage" = Option<String>, Query, description = "Only this stage"),
        ("state" = Option<InstanceState>, Query, description = "Only this state, e.g. running"),
        ("name" = Option<String>, Query, description = "Only this Name tag"),
        ("region" = Option<String>, Query, description = "Only this region"),
        ("tag.KEY" = Option<String>, Query, description = "Only instances whose tag KEY has this value; repeatable"),
        ("fresh" = Option<bool>, Query, description = "Read the backend now rather than count the inventory"),
    ),
    responses((status = 200, body = FleetSummary), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn fleet_summary(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(env): ApiPath<String>,
    ApiQuery(params): ApiQuery<Vec<(String, String)>>,
) -> ApiResult<Json<FleetSummary>> {
    let query = instance_query(params, false)?;
    Ok(Json(
        state.core.fleet_summary(&principal, &env, query).await?,
    ))
}

/// The filters of an instance listing; `limit` and `page_token` too when it is `paged`.
fn instance_query(params: Vec<(String, String)>, paged: bool) -> Result<InstanceQuery, Error> {
    let mut query = InstanceQuery::default();
    let mut limit = None;
    for (key, value) in params {
        match key.as_str() {
            "stage" => query.stage = Some(value),
            "state" => query.state = Some(InstanceState::parse("state", &value)?),
            "name" => query.name = Some(value),
            "region" => query.region = Some(value),
            "limit" if paged => limit = Some(value),
            "page_token" if paged => query.page_token = Some(value),
            "fresh" => {
                query.fresh = parse_param("fresh", Some(&value), "true or false")?.unwrap_or(false)
            }
            _ => match key.strip_prefix("tag.") {
                Some(tag) if !tag.is_empty() => {
                    query.tags.insert(tag.to_string(), value);
                }
                _ => {
                    let known = if paged {
                        "stage, state, name, region, tag.KEY, limit, page_token, fresh"
                    } else {
                        "stage, state, name, region, tag.KEY, fresh"
                    };
                    return Err(Error::invalid(
                        "query",
                        format!("unknown parameter `{key}`; use {known}"),
                    ));
                }
            },
        }
    }
    query.limit = page_limit(limit.as_deref())?;
    Ok(query)
}

/// The answer to a dry-run create.
#[derive(Serialize, ToSchema)]
pub struct DryRunAnswer {
    pub dry_run: bool,
    pub message: String,
}

/// Launches instances (an operation), tagged at launch with name, stage, org, creator and
/// operation. With `dry_run`, asks the backend whether the launch would be allowed.
#[utoipa::path(post, path = "/v1/environments/{env}/instances", tag = "instances", request_body = CreateInstancesRequest,
    params(("env" = String, Path, description = "Environment name"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 201, body = Operation), (status = 202, body = Operation), (status = 200, body = DryRunAnswer, description = "a dry run: the backend would allow the launch"),
              (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 503, body = ErrorBody),
              (status = 507, body = ErrorBody, description = "more than the host has free (local environments)")))]
pub async fn instance_create(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(env): ApiPath<String>,
    request: Mutation<CreateInstancesRequest>,
) -> ApiResult<Response> {
    match state
        .core
        .create_instances(
            &principal,
            &env,
            &request.body,
            request.idempotency.as_ref(),
        )
        .await?
    {
        Launch::DryRun => Ok(Json(DryRunAnswer {
            dry_run: true,
            message: "the backend would allow this launch; nothing was launched".into(),
        })
        .into_response()),
        Launch::Started(operation) => {
            request
                .answer(&state, &principal, *operation, StatusCode::CREATED)
                .await
        }
    }
}

/// One instance: the inventory's, or the backend's with `fresh` (or when the inventory
/// does not hold it).
#[utoipa::path(get, path = "/v1/environments/{env}/instances/{id}", tag = "instances",
    params(("env" = String, Path, description = "Environment name"), ("id" = String, Path, description = "Instance id"), FreshQuery),
    responses((status = 200, body = Instance), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn instance_view(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, id)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<FreshQuery>,
) -> ApiResult<Json<Instance>> {
    let instance = state
        .core
        .instance_read(&principal, &env, &id, query.fresh)
        .await?;
    Ok(Json(instance))
}

/// Changes instance type, termination protection, user data or security groups (an
/// operation). Instance type and user data need the instance stopped (409 otherwise).
#[utoipa::path(patch, path = "/v1/environments/{env}/instances/{id}", tag = "instances", request_body = ModifyInstanceRequest,
    params(("env" = String, Path, description = "Environment name"), ("id" = String, Path, description = "Instance id"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 200, body = Operation), (status = 202, body = Operation), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn instance_modify(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, id)): ApiPath<(String, String)>,
    request: Mutation<ModifyInstanceRequest>,
) -> ApiResult<Response> {
    let operation = state
        .core
        .modify_instance(
            &principal,
            &env,
            &id,
            &request.body,
            request.idempotency.as_ref(),
        )
        .await?;
    request
        .answer(&state, &principal, operation, StatusCode::OK)
        .await
}

/// The environment's regions and their availability zones.
#[utoipa::path(get, path = "/v1/environments/{env}/regions", tag = "environments",
    params(("env" = String, Path, description = "Environment name")),
    responses((status = 200, body = Page<RegionView>), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn region_list(
    State(state): State<AppState>,
    _: Caller,
    ApiPath(env): ApiPath<String>,
) -> ApiResult<Json<Page<RegionView>>> {
    Ok(Json(Page::whole(state.core.regions(&env).await?)))
}

/// Terminates an instance (an operation); the same as `POST .../{id}/terminate`.
#[utoipa::path(delete, path = "/v1/environments/{env}/instances/{id}", tag = "instances",
    params(("env" = String, Path, description = "Environment name"), ("id" = String, Path, description = "Instance id"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 200, body = Operation), (status = 202, body = Operation), (status = 404, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
pub async fn instance_delete(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, id)): ApiPath<(String, String)>,
    request: Mutation<NoBody>,
) -> ApiResult<Response> {
    let operation = state
        .core
        .instance_action(
            &principal,
            &env,
            &id,
            InstanceActionRequest {
                action: BulkAction::Terminate,
                force: false,
                to_stage: None,
            },
            request.idempotency.as_ref(),
        )
        .await?;
    request
        .answer(&state, &principal, operation, StatusCode::OK)
        .await
}

/// The body of an action on one instance.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    /// stop only: stop at once, without a graceful shutdown.
    #[serde(default)]
    pub force: bool,
    /// promote only: a later stage to move to; default: the next one.
    #[serde(default)]
    pub to_stage: Option<String>,
}

/// Starts, stops, reboots, terminates or promotes one instance (an operation that ends
/// when the instance reaches the wanted state or stage). Promoting from the last stage is
/// a 409.
#[utoipa::path(post, path = "/v1/environments/{env}/instances/{id}/{action}", tag = "instances", request_body = ActionBody,
    params(("env" = String, Path, description = "Environment name"), ("id" = String, Path, description = "Instance id"),
           ("action" = String, Path, description = "start, stop, reboot, terminate or promote"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 200, body = Operation), (status = 202, body = Operation), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn instance_action(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, id, action)): ApiPath<(String, String, String)>,
    request: Mutation<ActionBody>,
) -> ApiResult<Response> {
    let action = match BulkAction::parse(&action)? {
        BulkAction::Tag | BulkAction::Untag => {
            return Err(Error::invalid(
                "action",
                "use PUT or DELETE .../tags to change one instance's tags",
            )
            .into())
        }
        action => action,
    };
    if request.body.force && action != BulkAction::Stop {
        return Err(Error::invalid("body.force", "only stop takes force").into());
    }
    if request.body.to_stage.is_some() && action != BulkAction::Promote {
        return Err(Error::invalid("body.to_stage", "only promote takes to_stage").into());
    }
    let operation = state
        .core
        .instance_action(
            &principal,
            &env,
            &id,
            InstanceActionRequest {
                action,
                force: request.body.force,
                to_stage: request.body.to_stage.clone(),
            },
            request.idempotency.as_ref(),
        )
        .await?;
    request
        .answer(&state, &principal, operation, StatusCode::OK)
        .await
}

#[derive(Serialize, ToSchema)]
pub struct ConsoleOutput {
    pub id: String,
    pub output: String,
}

/// The serial console output so far.
#[utoipa::path(get, path = "/v1/environments/{env}/instances/{id}/console", tag = "instances",
    params(("env" = String, Path, description = "Environment name"), ("id" = String, Path, description = "Instance id")),
    responses((status = 200, body = ConsoleOutput), (status = 404, body = ErrorBody)))]
pub async fn instance_console(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, id)): ApiPath<(String, String)>,
) -> ApiResult<Json<ConsoleOutput>> {
    let output = state.core.console(&principal, &env, &id).await?;
    Ok(Json(ConsoleOutput { id, output }))
}
