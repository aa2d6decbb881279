//! API tokens: list, create (the secret is shown once), revoke; admins only. And the
//! access keys of the EC2 endpoint, each bound to a token and an environment: any token
//! may hold its own, admins handle every one.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use overcast_core::access_keys::CreateAccessKeyRequest;
use overcast_core::tokens::CreateTokenRequest;
use overcast_types::{AccessKey, Operation, OperationStatus, Page, TokenInfo};
use serde::Serialize;
use utoipa::ToSchema;

use crate::native::error::{ApiResult, ErrorBody};
use crate::native::extract::{ApiPath, Caller};
use crate::native::extract::{Mutation, NoBody};
use crate::AppState;

/// The answer to a token creation.
#[derive(Serialize, ToSchema)]
pub struct TokenCreated {
    pub operation: Operation,
    /// The token, once the operation has recorded it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenInfo>,
    /// The secret: shown in this answer only, never stored, and absent when an
    /// `Idempotency-Key` replays an earlier creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// Every token (never a secret).
#[utoipa::path(get, path = "/v1/tokens", tag = "tokens",
    responses((status = 200, body = Page<TokenInfo>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn token_list(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> ApiResult<Json<Page<TokenInfo>>> {
    Ok(Json(Page::whole(state.core.tokens(&principal).await?)))
}

/// Creates a token for an org and role, as an operation. The secret is in this answer only.
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", request_body = CreateTokenRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 201, body = TokenCreated), (status = 202, body = TokenCreated),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn token_create(
    State(state): State<AppState>,
    Caller(principal): Caller,
    request: Mutation<CreateTokenRequest>,
) -> ApiResult<Response> {
    let (operation, secret) = state
        .core
        .create_token(&principal, &request.body, request.idempotency.as_ref())
        .await?;
    let operation = state
        .core
        .wait(&principal, &operation.id, request.wait)
        .await?;
    let token = match operation.status {
        OperationStatus::Succeeded => state.core.created_token(&operation).await?,
        _ => None,
    };
    let body = TokenCreated {
        operation: operation.clone(),
        token,
        secret,
    };
    Ok(request.respond(&operation, StatusCode::CREATED, body))
}

/// Revokes a token, as an operation: it stops working at once.
#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "Token id"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 200, body = Operation), (status = 202, body = Operation), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "the last usable admin token"),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn token_revoke(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(id): ApiPath<String>,
    request: Mutation<NoBody>,
) -> ApiResult<Response> {
    let operation = state
        .core
        .revoke_token(&principal, &id, request.idempotency.as_ref())
        .await?;
    request
        .answer(&state, &principal, operation, StatusCode::OK)
        .await
}

/// The answer to an access key's creation.
#[derive(Serialize, ToSchema)]
pub struct AccessKeyCreated {
    pub operation: Operation,
    /// The key, once the operation has recorded it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key: Option<AccessKey>,
    /// The secret access key: in this answer only (it is derived under the server's
    /// master key, never stored), and absent when an `Idempotency-Key` replays an earlier
    /// creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
}

/// The access keys the caller may see: its own token's (every one for admins); never a
/// secret.
#[utoipa::path(get, path = "/v1/access-keys", tag = "tokens",
    responses((status = 200, body = Page<AccessKey>), (status = 401, body = ErrorBody)))]
pub async fn access_key_list(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> ApiResult<Json<Page<AccessKey>>> {
    Ok(Json(Page::whole(state.core.access_keys(&principal).await?)))
}

/// Makes an access key for a token (an admin's for any token, any caller's for its own),
/// bound to an environment: requests to the EC2 endpoint signed with it act as the token
/// there. The secret is in this answer only.
#[utoipa::path(post, path = "/v1/tokens/{id}/access-keys", tag = "tokens", request_body = CreateAccessKeyRequest,
    params(("id" = String, Path, description = "Token id"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 201, body = AccessKeyCreated), (status = 202, body = AccessKeyCreated),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn access_key_create(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(token_id): ApiPath<String>,
    request: Mutation<CreateAccessKeyRequest>,
) -> ApiResult<Response> {
    let (operation, secret) = state
        .core
        .create_access_key(
            &principal,
            &token_id,
            &request.body,
            request.idempotency.as_ref(),
        )
        .await?;
    let operation = state
        .core
        .wait(&principal, &operation.id, request.wait)
        .await?;
    let access_key = match operation.status {
        OperationStatus::Succeeded => state.core.created_access_key(&operation).await?,
        _ => None,
    };
    let body = AccessKeyCreated {
        operation: operation.clone(),
        access_key,
        secret_access_key: secret,
    };
    Ok(request.respond(&operation, StatusCode::CREATED, body))
}

/// Revokes an access key, as an operation: requests signed with it fail at once.
#[utoipa::path(delete, path = "/v1/access-keys/{id}", tag = "tokens",
    params(("id" = String, Path, description = "Access key id"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 200, body = Operation), (status = 202, body = Operation), (status = 404, body = ErrorBody),
              (status = 401, body = ErrorBody)))]
pub async fn access_key_revoke(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(id): ApiPath<String>,
    request: Mutation<NoBody>,
) -> ApiResult<Response> {
    let operation = state
        .core
        .revoke_access_key(&principal, &id, request.idempotency.as_ref())
        .await?;
    request
        .answer(&state, &principal, operation, StatusCode::OK)
        .await
}
