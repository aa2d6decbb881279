//! SSH key pairs of an environment.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use overcast_core::key_pairs::CreateKeyPairRequest;
use overcast_provider::KeyPair;
use overcast_types::{Error, Operation, OperationStatus, Page};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::native::error::{ApiResult, ErrorBody};
use crate::native::extract::{ApiPath, Caller};
use crate::native::extract::{ApiQuery, Mutation, NoBody};
use crate::AppState;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RegionQuery {
    /// The region; listing default: all, delete default: the environment's first.
    region: Option<String>,
}

/// The answer to a key pair creation.
#[derive(Serialize, ToSchema)]
pub struct KeyPairCreated {
    pub operation: Operation,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_pair: Option<KeyPair>,
    /// A made key's private half (PEM): in this answer only, never stored anywhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
}

#[utoipa::path(get, path = "/v1/environments/{env}/key-pairs", tag = "key-pairs",
    params(("env" = String, Path, description = "Environment name"), RegionQuery),
    responses((status = 200, body = Page<KeyPair>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn key_pair_list(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(env): ApiPath<String>,
    ApiQuery(query): ApiQuery<RegionQuery>,
) -> ApiResult<Json<Page<KeyPair>>> {
    let items = state
        .core
        .key_pairs(&principal, &env, query.region.as_deref())
        .await?;
    Ok(Json(Page::whole(items)))
}

/// Makes a key pair (the private key is in this answer only) or, with `public_key`,
/// imports one. Making one needs a synchronous request: `Prefer: respond-async` is refused.
#[utoipa::path(post, path = "/v1/environments/{env}/key-pairs", tag = "key-pairs", request_body = CreateKeyPairRequest,
    params(("env" = String, Path, description = "Environment name"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 201, body = KeyPairCreated), (status = 202, body = KeyPairCreated), (status = 400, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "name taken"), (status = 403, body = ErrorBody)))]
pub async fn key_pair_create(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(env): ApiPath<String>,
    request: Mutation<CreateKeyPairRequest>,
) -> ApiResult<Response> {
    if request.respond_async && request.body.public_key.is_none() {
        return Err(Error::invalid(
            "Prefer",
            "making a key pair returns its private key, which only a synchronous answer can carry",
        )
        .into());
    }
    let operation = state
        .core
        .create_key_pair(
            &principal,
            &env,
            &request.body,
            request.idempotency.as_ref(),
        )
        .await?;
    let operation = state
        .core
        .wait(&principal, &operation.id, request.wait)
        .await?;
    let private_key = state
        .core
        .take_private_key(&principal, &operation.id)
        .await?;
    let key_pair = match operation.status {
        OperationStatus::Succeeded => operation
            .results
            .first()
            .and_then(|r| r.detail.clone())
            .and_then(|d| serde_json::from_value(d).ok()),
        _ => None,
    };
    let body = KeyPairCreated {
        operation: operation.clone(),
        key_pair,
        private_key,
    };
    Ok(request.respond(&operation, StatusCode::CREATED, body))
}

/// Deletes a key pair (an operation).
#[utoipa::path(delete, path = "/v1/environments/{env}/key-pairs/{name}", tag = "key-pairs",
    params(("env" = String, Path, description = "Environment name"), ("name" = String, Path, description = "Key pair name"), RegionQuery,
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 200, body = Operation), (status = 202, body = Operation), (status = 404, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
pub async fn key_pair_delete(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, name)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<RegionQuery>,
    request: Mutation<NoBody>,
) -> ApiResult<Response> {
    let operation = state
        .core
        .delete_key_pair(
            &principal,
            &env,
            &name,
            query.region.as_deref(),
            request.idempotency.as_ref(),
        )
        .await?;
    request
        .answer(&state, &principal, operation, StatusCode::OK)
        .await
}
