//! The overcast HTTP server: route families (the native `/v1` API with its system routes,
//! the compatibility families of the tools overcast replaces, and the console), request ids and
//! metrics, per-family authentication, audit and error bodies, OpenAPI and the docs page,
//! TLS and graceful shutdown. Handlers stay thin: parse, call the core, shape the answer.

pub mod compat;
pub mod console;
pub mod http;
pub mod native;
mod server;

use axum::middleware::{from_fn, from_fn_with_state};
use axum::Router;
use overcast_core::Core;
use std::sync::Arc;
use utoipa_swagger_ui::SwaggerUi;

pub use server::Server;

use http::family::{authorize, Family, FamilyState};

/// What every handler gets.
#[derive(Clone)]
pub struct AppState {
    pub core: Arc<Core>,
}

/// The OpenAPI document of the native API, as served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    parts().1
}

/// The native router and its OpenAPI document. Object keys hold slashes, so their routes
/// end in axum's catch-all `{*key}`; OpenAPI writes that parameter `{key}`.
fn parts() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut document) = native::api().split_for_parts();
    document.paths.paths = std::mem::take(&mut document.paths.paths)
        .into_iter()
        .map(|(path, item)| (path.replace("{*", "{"), item))
        .collect();
    native::document_common_rules(&mut document);
    native::document_machine_type_view(&mut document);
    (router, document)
}

/// A family's routes behind its authentication, role and audit policy, counted in the
/// request metrics.
pub(crate) fn family_routes(
    routes: Router<AppState>,
    state: &AppState,
    family: impl Family,
) -> Router<AppState> {
    let family_state = FamilyState {
        app: state.clone(),
        family: Arc::new(family),
    };
    routes
        .route_layer(from_fn_with_state(family_state, authorize))
        .route_layer(from_fn_with_state(state.clone(), http::metrics::metrics))
}

/// The EC2 Query API alone, for the extra listener `[compat.ec2] listen`.
pub fn ec2_app(core: Arc<Core>) -> Router {
    let state = AppState { core };
    family_routes(compat::ec2::routes(), &state, compat::ec2::Ec2)
        .fallback(native::not_found)
        .layer(from_fn(http::request_id::request_id))
        .with_state(state)
}

/// The whole application: every family, docs, request ids.
pub fn app(core: Arc<Core>) -> Router {
    let state = AppState { core };
    let (api, document) = parts();
    let native = api.merge(SwaggerUi::new("/docs").url("/openapi.json", document));
    let app = family_routes(native, &state, native::Native)
        .merge(compat::routes(&state))
        .merge(family_routes(console::routes(), &state, console::Console))
        .fallback(native::not_found)
        .method_not_allowed_fallback(native::method_not_allowed)
        .layer(from_fn(http::request_id::request_id))
        .with_state(state);
    // A layer on a router runs after its routing; this one must run before.
    Router::new()
        .fallback_service(app)
        .layer(from_fn(compat::ecs_api::before_routing))
}
