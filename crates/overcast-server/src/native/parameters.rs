//! Parameters of an environment, under the caller's org: listed by path, described (the
//! value of a `SecureString` only by its own route: operators, every read audited), their
//! history; puts and deletes as operations. Names hold slashes, so they end the path.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use overcast_core::parameters::{ParameterQuery, PutParameterRequest};
use overcast_types::{Error, Operation, Page, Parameter};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::native::error::{ApiResult, ErrorBody};
use crate::native::extract::{ApiPath, ApiQuery, Caller, Mutation, NoBody};
use crate::AppState;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ParameterListQuery {
    /// The path to list under (default `/`, all of the org's parameters).
    path: Option<String>,
    /// At any depth under the path (default), or only directly under it.
    recursive: Option<bool>,
    /// At most this many (1–50, default 50).
    limit: Option<u32>,
    page_token: Option<String>,
    /// The region (default: the environment's first).
    region: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ParameterRegionQuery {
    /// The region (default: the environment's first).
    region: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ParameterPrefixQuery {
    /// Everything under this path goes, at any depth (required).
    path: Option<String>,
    region: Option<String>,
}

/// The caller's name of a parameter from the path's catch-all, which has no leading `/`.
fn name_of(rest: &str) -> String {
    format!("/{rest}")
}

#[utoipa::path(get, path = "/v1/environments/{env}/parameters", tag = "parameters",
    params(("env" = String, Path, description = "Environment name"), ParameterListQuery),
    responses((status = 200, body = Page<Parameter>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn parameter_list(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(env): ApiPath<String>,
    ApiQuery(query): ApiQuery<ParameterListQuery>,
) -> ApiResult<Json<Page<Parameter>>> {
    let query = ParameterQuery {
        region: query.region,
        path: query.path.unwrap_or_else(|| "/".into()),
        recursive: query.recursive.unwrap_or(true),
        limit: query.limit.unwrap_or(50),
        page_token: query.page_token,
    };
    Ok(Json(state.core.parameters(&principal, &env, query).await?))
}

/// Deletes every parameter under a path, in the backend's batches (an operation with
/// progress).
#[utoipa::path(delete, path = "/v1/environments/{env}/parameters", tag = "parameters",
    params(("env" = String, Path, description = "Environment name"), ParameterPrefixQuery,
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 200, body = Operation), (status = 202, body = Operation), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn parameter_delete_under(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(env): ApiPath<String>,
    ApiQuery(query): ApiQuery<ParameterPrefixQuery>,
    request: Mutation<NoBody>,
) -> ApiResult<Response> {
    let path = query
        .path
        .ok_or_else(|| Error::invalid("path", "is required: the path to delete under"))?;
    let operation = state
        .core
        .delete_parameters_under(
            &principal,
            &env,
            query.region.as_deref(),
            &path,
            request.idempotency.as_ref(),
        )
        .await?;
    request
        .answer(&state, &principal, operation, StatusCode::OK)
        .await
}

/// A parameter with its tags; its value unless it is a `SecureString`.
#[utoipa::path(get, path = "/v1/environments/{env}/parameters/{*name}", tag = "parameters",
    params(("env" = String, Path, description = "Environment name"), ("name" = String, Path, description = "Parameter name below the org, e.g. app/db/url"), ParameterRegionQuery),
    responses((status = 200, body = Parameter), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn parameter_view(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, rest)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<ParameterRegionQuery>,
) -> ApiResult<Json<Parameter>> {
    let parameter = state
        .core
        .parameter(&principal, &env, query.region.as_deref(), &name_of(&rest))
        .await?;
    Ok(Json(parameter))
}

/// Writes a parameter (an operation); with `overwrite`, a new version of an existing one.
/// The value is never stored: it reaches the backend from memory.
#[utoipa::path(put, path = "/v1/environments/{env}/parameters/{*name}", tag = "parameters", request_body = PutParameterRequest,
    params(("env" = String, Path, description = "Environment name"), ("name" = String, Path, description = "Parameter name below the org"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 201, body = Operation), (status = 202, body = Operation), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "exists and overwrite is false")))]
pub async fn parameter_put(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, rest)): ApiPath<(String, String)>,
    request: Mutation<PutParameterRequest>,
) -> ApiResult<Response> {
    let operation = state
        .core
        .put_parameter(
            &principal,
            &env,
            &name_of(&rest),
            &request.body,
            request.idempotency.as_ref(),
        )
        .await?;
    request
        .answer(&state, &principal, operation, StatusCode::CREATED)
        .await
}

/// Deletes one parameter (an operation).
#[utoipa::path(delete, path = "/v1/environments/{env}/parameters/{*name}", tag = "parameters",
    params(("env" = String, Path, description = "Environment name"), ("name" = String, Path, description = "Parameter name below the org"), ParameterRegionQuery,
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 200, body = Operation), (status = 202, body = Operation), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn parameter_delete(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, rest)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<ParameterRegionQuery>,
    request: Mutation<NoBody>,
) -> ApiResult<Response> {
    let operation = state
        .core
        .delete_parameter(
            &principal,
            &env,
            query.region.as_deref(),
            &name_of(&rest),
            request.idempotency.as_ref(),
        )
        .await?;
    request
        .answer(&state, &principal, operation, StatusCode::OK)
        .await
}

/// A parameter with its value, a `SecureString` decrypted: operators only; every read is
/// in the audit log.
#[utoipa::path(get, path = "/v1/environments/{env}/parameter-values/{*name}", tag = "parameters",
    params(("env" = String, Path, description = "Environment name"), ("name" = String, Path, description = "Parameter name below the org"), ParameterRegionQuery),
    responses((status = 200, body = Parameter), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn parameter_value(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, rest)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<ParameterRegionQuery>,
) -> ApiResult<Json<Parameter>> {
    let parameter = state
        .core
        .parameter_value(&principal, &env, query.region.as_deref(), &name_of(&rest))
        .await?;
    Ok(Json(parameter))
}

/// The versions of a parameter, oldest first, without values.
#[utoipa::path(get, path = "/v1/environments/{env}/parameter-history/{*name}", tag = "parameters",
    params(("env" = String, Path, description = "Environment name"), ("name" = String, Path, description = "Parameter name below the org"), ParameterRegionQuery),
    responses((status = 200, body = Page<Parameter>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn parameter_history(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, rest)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<ParameterRegionQuery>,
) -> ApiResult<Json<Page<Parameter>>> {
    let versions = state
        .core
        .parameter_history(&principal, &env, query.region.as_deref(), &name_of(&rest))
        .await?;
    Ok(Json(Page::whole(versions)))
}
