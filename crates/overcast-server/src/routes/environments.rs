//! Environments and machine types.

use axum::extract::{Path, State};
use axum::Json;
use overcast_core::environments::{EnvironmentView, MachineTypeView};

use crate::error::{ApiResult, ErrorBody};
use crate::middleware::Caller;
use crate::AppState;

/// Every environment: provider, regions, stages, whether its backend answers and why not.
#[utoipa::path(get, path = "/v1/environments", tag = "environments",
    responses((status = 200, body = Vec<EnvironmentView>), (status = 401, body = ErrorBody)))]
pub async fn list_environments(
    State(state): State<AppState>,
    _: Caller,
) -> Json<Vec<EnvironmentView>> {
    Json(state.core.environments().await)
}

#[utoipa::path(get, path = "/v1/environments/{env}", tag = "environments",
    params(("env" = String, Path, description = "Environment name")),
    responses((status = 200, body = EnvironmentView), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn get_environment(
    State(state): State<AppState>,
    _: Caller,
    Path(env): Path<String>,
) -> ApiResult<Json<EnvironmentView>> {
    Ok(Json(state.core.environment(&env).await?))
}

/// Named sizes (and images) per provider.
#[utoipa::path(get, path = "/v1/machine-types", tag = "environments",
    responses((status = 200, body = Vec<MachineTypeView>), (status = 401, body = ErrorBody)))]
pub async fn list_machine_types(
    State(state): State<AppState>,
    _: Caller,
) -> Json<Vec<MachineTypeView>> {
    Json(state.core.machine_types())
}
