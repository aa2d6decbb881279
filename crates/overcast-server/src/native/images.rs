//! Machine images of an environment.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use overcast_core::images::{CreateImageRequest, ImportImageRequest};
use overcast_types::{Image, Operation, Page};

use crate::native::error::{ApiResult, ErrorBody};
use crate::native::extract::{ApiPath, Caller};
use crate::native::extract::{ApiQuery, InventoryQuery, Mutation, NoBody};
use crate::AppState;

/// Images the environment's account owns that the caller may see.
#[utoipa::path(get, path = "/v1/environments/{env}/images", tag = "images",
    params(("env" = String, Path, description = "Environment name"), InventoryQuery),
    responses((status = 200, body = Page<Image>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn image_list(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(env): ApiPath<String>,
    ApiQuery(query): ApiQuery<InventoryQuery>,
) -> ApiResult<Json<Page<Image>>> {
    let page = state
        .core
        .images(&principal, &env, query.region.as_deref(), query.fresh)
        .await?;
    Ok(Json(page))
}

/// Makes an image of an instance (an operation that ends when the image is available).
#[utoipa::path(post, path = "/v1/environments/{env}/images", tag = "images", request_body = CreateImageRequest,
    params(("env" = String, Path, description = "Environment name"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 201, body = Operation), (status = 202, body = Operation), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "name taken"),
              (status = 403, body = ErrorBody)))]
pub async fn image_create(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(env): ApiPath<String>,
    request: Mutation<CreateImageRequest>,
) -> ApiResult<Response> {
    let operation = state
        .core
        .create_image(
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

/// Brings in an image from a URL (an operation whose progress counts bytes): a qcow2 or
/// raw disk, or a kernel and initrd for direct boot. `file://` URLs (the server's own
/// files) are for admins. Providers that cannot import answer 400.
#[utoipa::path(post, path = "/v1/environments/{env}/images/import", tag = "images", request_body = ImportImageRequest,
    params(("env" = String, Path, description = "Environment name"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 201, body = Operation), (status = 202, body = Operation), (status = 400, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "name taken"), (status = 403, body = ErrorBody)))]
pub async fn image_import(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(env): ApiPath<String>,
    request: Mutation<ImportImageRequest>,
) -> ApiResult<Response> {
    let operation = state
        .core
        .import_image(
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

#[utoipa::path(get, path = "/v1/environments/{env}/images/{id}", tag = "images",
    params(("env" = String, Path, description = "Environment name"), ("id" = String, Path, description = "Image id")),
    responses((status = 200, body = Image), (status = 404, body = ErrorBody)))]
pub async fn image_view(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, id)): ApiPath<(String, String)>,
) -> ApiResult<Json<Image>> {
    Ok(Json(state.core.image(&principal, &env, &id).await?))
}

/// Deregisters an image and deletes its snapshots (an operation).
#[utoipa::path(delete, path = "/v1/environments/{env}/images/{id}", tag = "images",
    params(("env" = String, Path, description = "Environment name"), ("id" = String, Path, description = "Image id"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 200, body = Operation), (status = 202, body = Operation), (status = 404, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
pub async fn image_delete(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, id)): ApiPath<(String, String)>,
    request: Mutation<NoBody>,
) -> ApiResult<Response> {
    let operation = state
        .core
        .delete_image(&principal, &env, &id, request.idempotency.as_ref())
        .await?;
    request
        .answer(&state, &principal, operation, StatusCode::OK)
        .await
}
