//! The inventory's routes: refresh an environment's inventory now, and read the events
//! (drift) the inventories saw.

use axum::extract::State;
use axum::Json;
use overcast_core::inventory::{Refreshed, KINDS};
use overcast_core::{EventFilter, PageRequest};
use overcast_types::{Error, Event, EventKind, Page};
use serde::Deserialize;
use utoipa::IntoParams;

use super::page_limit;
use crate::native::error::{ApiResult, ErrorBody};
use crate::native::extract::{ApiPath, ApiQuery, Caller};
use crate::AppState;

/// Reads the environment's backend now (one listing per region) into the server's
/// inventory, and records what changed outside overcast as events.
#[utoipa::path(post, path = "/v1/environments/{env}/refresh", tag = "instances",
    params(("env" = String, Path, description = "Environment name")),
    responses((status = 200, body = Refreshed), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn inventory_refresh(
    State(state): State<AppState>,
    Caller(_principal): Caller,
    ApiPath(env): ApiPath<String>,
) -> ApiResult<Json<Refreshed>> {
    Ok(Json(state.core.refresh_inventory(&env).await?))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Only this environment's events.
    environment: Option<String>,
    /// Only `created`, `changed` or `deleted`.
    kind: Option<String>,
    /// Only this kind of resource's: `instance`, `image`, `security_group`, `bucket` or
    /// `container_service`.
    resource_kind: Option<String>,
    /// Only this resource's: an instance, image or security group id, a bucket name, a
    /// container service ARN.
    resource: Option<String>,
    /// 1 to 500, default 50.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
    /// From the previous page's `next_page_token`.
    page_token: Option<String>,
}

/// Changes to the caller's org's resources made outside overcast (every org's for
/// admins), newest first, as the inventories noticed them.
#[utoipa::path(get, path = "/v1/events", tag = "instances", params(EventQuery),
    responses((status = 200, body = Page<Event>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn event_list(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiQuery(query): ApiQuery<EventQuery>,
) -> ApiResult<Json<Page<Event>>> {
    let kind = query
        .kind
        .map(|k| {
            EventKind::parse(&k).ok_or_else(|| {
                Error::invalid("kind", format!("`{k}` is not created, changed or deleted"))
            })
        })
        .transpose()?;
    if let Some(resource_kind) = &query.resource_kind {
        if !KINDS.contains(&resource_kind.as_str()) {
            return Err(Error::invalid(
                "resource_kind",
                format!("`{resource_kind}` is not one of {}", KINDS.join(", ")),
            )
            .into());
        }
    }
    let filter = EventFilter {
        org: None,
        environment: query.environment,
        kind,
        resource_kind: query.resource_kind,
        resource: query.resource,
    };
    let page = PageRequest {
        limit: page_limit(query.limit.as_deref())?,
        after: query.page_token,
    };
    Ok(Json(state.core.events(&principal, filter, page).await?))
}
