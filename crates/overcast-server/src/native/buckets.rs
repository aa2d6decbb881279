//! Buckets of an environment's object store.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use overcast_core::buckets::CreateBucketRequest;
use overcast_types::{Bucket, Operation, Page};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::native::error::{ApiResult, ErrorBody};
use crate::native::extract::{parse_param, ApiQuery, FreshQuery, Mutation, NoBody};
use crate::native::extract::{ApiPath, Caller};
use crate::AppState;

/// Buckets the caller may see, with region, tags and versioning.
#[utoipa::path(get, path = "/v1/environments/{env}/buckets", tag = "buckets",
    params(("env" = String, Path, description = "Environment name"), FreshQuery),
    responses((status = 200, body = Page<Bucket>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn bucket_list(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(env): ApiPath<String>,
    ApiQuery(query): ApiQuery<FreshQuery>,
) -> ApiResult<Json<Page<Bucket>>> {
    Ok(Json(
        state.core.buckets(&principal, &env, query.fresh).await?,
    ))
}

/// Creates a bucket in a region of the environment (an operation), tagged with its org.
#[utoipa::path(post, path = "/v1/environments/{env}/buckets", tag = "buckets", request_body = CreateBucketRequest,
    params(("env" = String, Path, description = "Environment name"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 201, body = Operation), (status = 202, body = Operation), (status = 400, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "the name is taken"), (status = 403, body = ErrorBody)))]
pub async fn bucket_create(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(env): ApiPath<String>,
    request: Mutation<CreateBucketRequest>,
) -> ApiResult<Response> {
    let operation = state
        .core
        .create_bucket(
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

#[utoipa::path(get, path = "/v1/environments/{env}/buckets/{bucket}", tag = "buckets",
    params(("env" = String, Path, description = "Environment name"), ("bucket" = String, Path, description = "Bucket name")),
    responses((status = 200, body = Bucket), (status = 404, body = ErrorBody)))]
pub async fn bucket_view(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, bucket)): ApiPath<(String, String)>,
) -> ApiResult<Json<Bucket>> {
    Ok(Json(state.core.bucket(&principal, &env, &bucket).await?))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// Empty the bucket first, in batches of 1,000 keys.
    #[param(value_type = Option<bool>)]
    force: Option<String>,
}

/// Deletes a bucket (an operation): 409 while it holds objects, unless `force=true`.
#[utoipa::path(delete, path = "/v1/environments/{env}/buckets/{bucket}", tag = "buckets",
    params(("env" = String, Path, description = "Environment name"), ("bucket" = String, Path, description = "Bucket name"), DeleteQuery,
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 200, body = Operation), (status = 202, body = Operation), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "not empty"), (status = 403, body = ErrorBody)))]
pub async fn bucket_delete(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, bucket)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<DeleteQuery>,
    request: Mutation<NoBody>,
) -> ApiResult<Response> {
    let force = parse_param("force", query.force.as_deref(), "true or false")?;
    let operation = state
        .core
        .delete_bucket(
            &principal,
            &env,
            &bucket,
            force.unwrap_or(false),
            request.idempotency.as_ref(),
        )
        .await?;
    request
        .answer(&state, &principal, operation, StatusCode::OK)
        .await
}
