//! The audit log: read-only, by design. Nothing in the API edits or deletes it.

use axum::extract::State;
use axum::Json;
use overcast_core::{AuditFilter, PageRequest};
use overcast_types::{AuditEntry, Page};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{page_limit, since};
use crate::native::error::{ApiResult, ErrorBody};
use crate::native::extract::ApiQuery;
use crate::native::extract::Caller;
use crate::AppState;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only changes made with this token.
    token_id: Option<String>,
    /// Only the change that started this operation.
    operation_id: Option<String>,
    /// Only entries at or after this RFC 3339 time.
    #[param(format = DateTime)]
    since: Option<String>,
    /// 1 to 500, default 50.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
    /// From the previous page's `next_page_token`.
    page_token: Option<String>,
}

/// Authenticated changes of the caller's org (every org for admins), newest first.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = Page<AuditEntry>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn audit_list(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> ApiResult<Json<Page<AuditEntry>>> {
    let filter = AuditFilter {
        org: None,
        token_id: query.token_id,
        operation_id: query.operation_id,
        since: since(query.since.as_deref())?,
    };
    let page = PageRequest {
        limit: page_limit(query.limit.as_deref())?,
        after: query.page_token,
    };
    Ok(Json(state.core.audit(&principal, filter, page).await?))
}
