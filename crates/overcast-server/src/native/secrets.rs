//! Secrets of an environment: listed and described without values; the value by its own
//! route (operators, every read audited); changes as operations.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use overcast_core::secrets::{CreateSecretRequest, SecretQuery, UpdateSecretRequest};
use overcast_provider::VersionWanted;
use overcast_types::{Error, Operation, Page, Secret, SecretValue};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::native::error::{ApiResult, ErrorBody};
use crate::native::extract::{parse_param, ApiPath, ApiQuery, Caller, Mutation, NoBody};
use crate::AppState;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SecretRegionQuery {
    /// The region (default: the environment's first).
    region: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SecretValueQuery {
    region: Option<String>,
    /// A version id (default: the current version).
    version_id: Option<String>,
    /// A stage, e.g. `AWSPREVIOUS` (default: `AWSCURRENT`).
    stage: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SecretDeleteQuery {
    region: Option<String>,
    /// Days before the secret goes for good, 7–30 (default 7); 0 deletes it at once.
    window: Option<u32>,
}

/// The secrets the caller may see, sorted by name, without values.
#[utoipa::path(get, path = "/v1/environments/{env}/secrets", tag = "secrets",
    params(
        ("env" = String, Path, description = "Environment name"),
        ("region" = Option<String>, Query, description = "Only this region"),
        ("prefix" = Option<String>, Query, description = "Only names that start with this"),
        ("tag.KEY" = Option<String>, Query, description = "Only secrets whose tag KEY has this value; repeatable"),
        ("limit" = Option<String>, Query, description = "1 to 1000, default 100"),
        ("page_token" = Option<String>, Query, description = "From the previous page's next_page_token"),
    ),
    responses((status = 200, body = Page<Secret>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn secret_list(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(env): ApiPath<String>,
    ApiQuery(params): ApiQuery<Vec<(String, String)>>,
) -> ApiResult<Json<Page<Secret>>> {
    let mut query = SecretQuery {
        limit: 100,
        ..SecretQuery::default()
    };
    for (key, value) in params {
        match key.as_str() {
            "region" => query.region = Some(value),
            "prefix" => query.prefix = Some(value),
            "page_token" => query.page_token = Some(value),
            "limit" => {
                query.limit = parse_param("limit", Some(&value), "a number from 1 to 1000")?
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| Error::invalid("limit", "is a number from 1 to 1000"))?
            }
            _ => match key.strip_prefix("tag.") {
                Some(tag) if !tag.is_empty() => {
                    query.tags.insert(tag.to_string(), value);
                }
                _ => {
                    return Err(Error::invalid(
                        "query",
                        format!(
                        "unknown parameter `{key}`; use region, prefix, tag.KEY, limit, page_token"
                    ),
                    )
                    .into())
                }
            },
        }
    }
    Ok(Json(state.core.secrets(&principal, &env, query).await?))
}

/// Makes a secret (an operation). The value is never stored: it reaches the backend from
/// memory.
#[utoipa::path(post, path = "/v1/environments/{env}/secrets", tag = "secrets", request_body = CreateSecretRequest,
    params(("env" = String, Path, description = "Environment name"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 201, body = Operation), (status = 202, body = Operation), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "name taken")))]
pub async fn secret_create(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(env): ApiPath<String>,
    request: Mutation<CreateSecretRequest>,
) -> ApiResult<Response> {
    let operation = state
        .core
        .create_secret(
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

/// A secret's description: versions and their stages, rotation, deletion date, tags.
/// Never its value.
#[utoipa::path(get, path = "/v1/environments/{env}/secrets/{name}", tag = "secrets",
    params(("env" = String, Path, description = "Environment name"), ("name" = String, Path, description = "Secret name"), SecretRegionQuery),
    responses((status = 200, body = Secret), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn secret_view(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, name)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<SecretRegionQuery>,
) -> ApiResult<Json<Secret>> {
    let secret = state
        .core
        .secret(&principal, &env, query.region.as_deref(), &name)
        .await?;
    Ok(Json(secret))
}

/// A new value (a new current version) and/or tags (an operation).
#[utoipa::path(patch, path = "/v1/environments/{env}/secrets/{name}", tag = "secrets", request_body = UpdateSecretRequest,
    params(("env" = String, Path, description = "Environment name"), ("name" = String, Path, description = "Secret name"), SecretRegionQuery,
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 200, body = Operation), (status = 202, body = Operation), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "scheduled for deletion")))]
pub async fn secret_update(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, name)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<SecretRegionQuery>,
    request: Mutation<UpdateSecretRequest>,
) -> ApiResult<Response> {
    let operation = state
        .core
        .update_secret(
            &principal,
            &env,
            query.region.as_deref(),
            &name,
            &request.body,
            request.idempotency.as_ref(),
        )
        .await?;
    request
        .answer(&state, &principal, operation, StatusCode::OK)
        .await
}

/// Schedules a secret's deletion after a recovery window, or deletes it at once
/// (`window=0`) (an operation).
#[utoipa::path(delete, path = "/v1/environments/{env}/secrets/{name}", tag = "secrets",
    params(("env" = String, Path, description = "Environment name"), ("name" = String, Path, description = "Secret name"), SecretDeleteQuery,
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 200, body = Operation), (status = 202, body = Operation), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn secret_delete(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, name)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<SecretDeleteQuery>,
    request: Mutation<NoBody>,
) -> ApiResult<Response> {
    let operation = state
        .core
        .delete_secret(
            &principal,
            &env,
            query.region.as_deref(),
            &name,
            query.window.unwrap_or(7),
            request.idempotency.as_ref(),
        )
        .await?;
    request
        .answer(&state, &principal, operation, StatusCode::OK)
        .await
}

/// Cancels a secret's scheduled deletion (an operation).
#[utoipa::path(post, path = "/v1/environments/{env}/secrets/{name}/restore", tag = "secrets",
    params(("env" = String, Path, description = "Environment name"), ("name" = String, Path, description = "Secret name"), SecretRegionQuery,
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 200, body = Operation), (status = 202, body = Operation), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "not scheduled for deletion")))]
pub async fn secret_restore(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, name)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<SecretRegionQuery>,
    request: Mutation<NoBody>,
) -> ApiResult<Response> {
    let operation = state
        .core
        .restore_secret(
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

/// A secret's value: operators only; every read is in the audit log.
#[utoipa::path(get, path = "/v1/environments/{env}/secrets/{name}/value", tag = "secrets",
    params(("env" = String, Path, description = "Environment name"), ("name" = String, Path, description = "Secret name"), SecretValueQuery),
    responses((status = 200, body = SecretValue), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "scheduled for deletion")))]
pub async fn secret_value(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, name)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<SecretValueQuery>,
) -> ApiResult<Json<SecretValue>> {
    let wanted = VersionWanted {
        version_id: query.version_id,
        stage: query.stage,
    };
    let value = state
        .core
        .secret_value(&principal, &env, query.region.as_deref(), &name, &wanted)
        .await?;
    Ok(Json(value))
}
