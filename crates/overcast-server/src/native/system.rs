//! Health, readiness, version, metrics, the servers sharing the database, and "who am I".

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use overcast_core::{Readiness, ServerView};
use overcast_types::Role;
use serde::Serialize;
use utoipa::ToSchema;

use crate::native::error::{ApiResult, ErrorBody};
use crate::native::extract::Caller;
use crate::AppState;

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the process answers.
    pub status: String,
}

#[derive(Serialize, ToSchema)]
pub struct VersionInfo {
    pub name: String,
    pub version: String,
}

/// The caller as the server sees it.
#[derive(Serialize, ToSchema)]
pub struct WhoAmI {
    pub token_id: String,
    pub token_name: String,
    pub org: String,
    pub role: Role,
}

impl From<overcast_core::auth::Principal> for WhoAmI {
    fn from(principal: overcast_core::auth::Principal) -> Self {
        WhoAmI {
            token_id: principal.token_id,
            token_name: principal.token_name,
            org: principal.org,
            role: principal.role,
        }
    }
}

/// Answers while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "system", security(()),
    responses((status = 200, body = Health)))]
pub async fn system_health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Whether the store and each environment's backend answer. 503 while the store does not.
#[utoipa::path(get, path = "/readyz", tag = "system", security(()),
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn system_ready(State(state): State<AppState>) -> impl IntoResponse {
    let readiness = state.core.readiness().await;
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness))
}

#[utoipa::path(get, path = "/version", tag = "system", security(()),
    responses((status = 200, body = VersionInfo)))]
pub async fn system_version() -> Json<VersionInfo> {
    Json(VersionInfo {
        name: "overcast".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// Prometheus metrics: requests, latency, operations, backend calls.
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain"),
              (status = 401, body = ErrorBody)))]
pub async fn system_metrics(State(state): State<AppState>, _: Caller) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.core.metrics().render(),
    )
}

/// The live servers sharing this server's database: their version, last heartbeat and the
/// operations each holds (admins only).
#[utoipa::path(get, path = "/v1/servers", tag = "system",
    responses((status = 200, body = Vec<ServerView>), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
pub async fn servers_list(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> ApiResult<Json<Vec<ServerView>>> {
    Ok(Json(state.core.servers(&principal).await?))
}

/// The token the request carries: its name, org and role.
#[utoipa::path(get, path = "/v1/whoami", tag = "system",
    responses((status = 200, body = WhoAmI), (status = 401, body = ErrorBody)))]
pub async fn principal_view(Caller(principal): Caller) -> Json<WhoAmI> {
    Json(WhoAmI::from(principal))
}
