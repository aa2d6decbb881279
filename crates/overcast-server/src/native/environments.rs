//! Environments and machine types.

use axum::extract::State;
use axum::Json;
use overcast_core::environments::{EnvironmentView, MachineTypeView};
use overcast_types::Page;

use crate::native::error::{ApiResult, ErrorBody};
use crate::native::extract::{ApiPath, Caller};
use crate::AppState;

/// Every environment: provider, regions, stages, whether its backend answers and why not.
#[utoipa::path(get, path = "/v1/environments", tag = "environments",
    responses((status = 200, body = Page<EnvironmentView>), (status = 401, body = ErrorBody)))]
pub async fn environment_list(
    State(state): State<AppState>,
    _: Caller,
) -> Json<Page<EnvironmentView>> {
    Json(Page::whole(state.core.environments().await))
}

#[utoipa::path(get, path = "/v1/environments/{env}", tag = "environments",
    params(("env" = String, Path, description = "Environment name")),
    responses((status = 200, body = EnvironmentView), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn environment_view(
    State(state): State<AppState>,
    _: Caller,
    ApiPath(env): ApiPath<String>,
) -> ApiResult<Json<EnvironmentView>> {
    Ok(Json(state.core.environment(&env).await?))
}

/// Named sizes (and images) per provider.
#[utoipa::path(get, path = "/v1/machine-types", tag = "environments",
    responses((status = 200, body = Page<MachineTypeView>), (status = 401, body = ErrorBody)))]
pub async fn machine_type_list(
    State(state): State<AppState>,
    _: Caller,
) -> Json<Page<MachineTypeView>> {
    Json(Page::whole(state.core.machine_types()))
}
