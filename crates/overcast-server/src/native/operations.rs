//! Operations: list, get, cancel.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use overcast_core::{OperationFilter, PageRequest};
use overcast_types::{Operation, OperationStatus, Page};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{page_limit, since};
use crate::native::error::{ApiResult, ErrorBody};
use crate::native::extract::{ApiPath, Caller};
use crate::native::extract::{ApiQuery, Mutation, NoBody, WaitFor};
use crate::AppState;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OperationsQuery {
    /// pending, running, succeeded, failed or cancelled
    #[param(value_type = Option<OperationStatus>)]
    status: Option<String>,
    /// e.g. `token.create`
    kind: Option<String>,
    /// Only operations created at or after this RFC 3339 time.
    #[param(format = DateTime)]
    since: Option<String>,
    /// 1 to 500, default 50.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
    /// From the previous page's `next_page_token`.
    page_token: Option<String>,
}

/// Operations of the caller's org (every org for admins), newest first.
#[utoipa::path(get, path = "/v1/operations", tag = "operations", params(OperationsQuery),
    responses((status = 200, body = Page<Operation>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn operation_list(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiQuery(query): ApiQuery<OperationsQuery>,
) -> ApiResult<Json<Page<Operation>>> {
    let filter = OperationFilter {
        org: None,
        status: query
            .status
            .as_deref()
            .map(|s| OperationStatus::parse("status", s))
            .transpose()?,
        kind: query.kind,
        since: since(query.since.as_deref())?,
    };
    let page = PageRequest {
        limit: page_limit(query.limit.as_deref())?,
        after: query.page_token,
    };
    Ok(Json(state.core.operations(&principal, filter, page).await?))
}

/// An operation; with `?timeout=SECONDS`, once it has ended or the wait is over, whichever
/// server runs it.
#[utoipa::path(get, path = "/v1/operations/{id}", tag = "operations",
    params(("id" = String, Path, description = "Operation id"),
           ("timeout" = Option<u64>, Query, description = "Wait up to this many seconds for it to end")),
    responses((status = 200, body = Operation), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn operation_view(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(id): ApiPath<String>,
    WaitFor(wait): WaitFor,
) -> ApiResult<Json<Operation>> {
    let operation = state.core.operation(&principal, &id).await?;
    if wait.is_zero() || operation.status.is_final() {
        return Ok(Json(operation));
    }
    Ok(Json(state.core.wait(&principal, &id, wait).await?))
}

/// Asks an operation to stop: a pending one ends at once, a running one at its next step.
/// Waits like any change (`?timeout=`, `Prefer: respond-async`).
#[utoipa::path(post, path = "/v1/operations/{id}/cancel", tag = "operations",
    params(("id" = String, Path, description = "Operation id")),
    responses((status = 200, body = Operation), (status = 202, body = Operation),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "already ended"),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn operation_cancel(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(id): ApiPath<String>,
    request: Mutation<NoBody>,
) -> ApiResult<Response> {
    let operation = state.core.cancel(&principal, &id).await?;
    request
        .answer(&state, &principal, operation, StatusCode::OK)
        .await
}
