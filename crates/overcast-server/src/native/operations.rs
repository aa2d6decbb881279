//! Operations: list, get, cancel.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::Response;
use axum::Json;
use futures::{Stream, StreamExt};
use overcast_core::{OperationFilter, PageRequest};
use overcast_types::{Operation, OperationStatus, Page};
use serde::Deserialize;
use std::convert::Infallible;
use utoipa::{IntoParams, ToSchema};

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

/// One server-sent event of an operation's stream, as the wire carries it (axum's `Event`
/// writes it; this type describes it in the OpenAPI document).
#[derive(ToSchema)]
pub struct OperationEvent {
    /// `operation`, or `error` when the operation could not be read.
    pub event: String,
    /// The operation as JSON (an `Operation`), or the error body.
    pub data: String,
}

/// The operation as it runs, as server-sent events: an `operation` event holding the whole
/// operation at once and again whenever it changes (status, progress, a target's outcome),
/// until it has ended; then the stream ends. A read that fails sends an `error` event with
/// the error body. For a browser's `EventSource`, which shows progress without polling.
#[utoipa::path(get, path = "/v1/operations/{id}/events", tag = "operations",
    params(("id" = String, Path, description = "Operation id")),
    responses((status = 200, content_type = "text/event-stream", body = OperationEvent,
               description = "`event: operation` with the operation as JSON in `data`, each time it changes"),
              (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn operation_events(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    // An operation the caller may not see is a 404 before any stream starts.
    state.core.operation(&principal, &id).await?;
    let events = state.core.follow(&principal, &id).map(|read| {
        let event = match read {
            Ok(operation) => Event::default().event("operation").json_data(&operation),
            Err(e) => Event::default()
                .event("error")
                .json_data(ErrorBody::from(e)),
        };
        Ok(event.unwrap_or_else(|e| Event::default().event("error").data(e.to_string())))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
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
