//! The overcast HTTP server: native `/v1` routes, system routes, request ids, auth and
//! audit middleware, the one error-to-HTTP mapping, OpenAPI and the docs page, metrics,
//! TLS and graceful shutdown. Handlers stay thin: parse, call the core, shape the answer.

pub mod error;
pub mod extract;
pub mod middleware;
pub mod routes;

use axum::middleware::{from_fn, from_fn_with_state};
use axum::Router;
use overcast_core::Core;
use overcast_types::Error;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use routes::{
    audit, buckets, bulk, environments, images, instances, key_pairs, objects, operations,
    security_groups, system, tags, tokens,
};

/// How long in-flight requests may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// What every handler gets.
#[derive(Clone)]
pub struct AppState {
    pub core: Arc<Core>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "overcast",
        description = "One API over cloud and local infrastructure. Every change is a recorded, retryable operation."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "system", description = "Health, readiness, version, metrics"),
        (name = "environments", description = "Targets and machine types"),
        (name = "instances", description = "Virtual machines"),
        (name = "bulk", description = "Actions on the instances a selector matches"),
        (name = "security-groups", description = "Firewall rules"),
        (name = "images", description = "Machine images"),
        (name = "key-pairs", description = "SSH key pairs"),
        (name = "buckets", description = "Object storage buckets"),
        (name = "objects", description = "Objects in buckets: streamed, ranged, copied, presigned"),
        (name = "tags", description = "Tags of instances, images and security groups"),
        (name = "operations", description = "Recorded changes"),
        (name = "tokens", description = "API tokens (admin)"),
        (name = "audit", description = "The append-only audit log"),
    )
)]
struct ApiDoc;

/// Declares bearer-token auth and requires it everywhere; public routes opt out.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.security = Some(vec![SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
}

fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(system::healthz))
        .routes(routes!(system::readyz))
        .routes(routes!(system::version))
        .routes(routes!(system::metrics))
        .routes(routes!(system::whoami))
        .routes(routes!(environments::list_environments))
        .routes(routes!(environments::get_environment))
        .routes(routes!(environments::list_machine_types))
        .routes(routes!(
            instances::list_instances,
            instances::create_instances
        ))
        .routes(routes!(
            instances::get_instance,
            instances::delete_instance,
            instances::modify_instance
        ))
        .routes(routes!(instances::list_regions))
        .routes(routes!(buckets::list_buckets, buckets::create_bucket))
        .routes(routes!(buckets::get_bucket, buckets::delete_bucket))
        .routes(routes!(
            objects::list_objects,
            objects::copy_object,
            objects::delete_objects
        ))
        .routes(routes!(
            objects::get_object,
            objects::head_object,
            objects::put_object,
            objects::delete_object
        ))
        .routes(routes!(objects::presign))
        .routes(routes!(bulk::start))
        .routes(routes!(bulk::stop))
        .routes(routes!(bulk::reboot))
        .routes(routes!(bulk::terminate))
        .routes(routes!(bulk::promote))
        .routes(routes!(bulk::tag))
        .routes(routes!(bulk::untag))
        .routes(routes!(tags::set_instance_tags, tags::remove_instance_tags))
        .routes(routes!(tags::set_image_tags, tags::remove_image_tags))
        .routes(routes!(tags::set_group_tags, tags::remove_group_tags))
        .routes(routes!(images::list_images, images::create_image))
        .routes(routes!(images::get_image, images::delete_image))
        .routes(routes!(images::import_image))
        .routes(routes!(
            key_pairs::list_key_pairs,
            key_pairs::create_key_pair
        ))
        .routes(routes!(key_pairs::delete_key_pair))
        .routes(routes!(
            security_groups::list_groups,
            security_groups::create_group
        ))
        .routes(routes!(
            security_groups::get_group,
            security_groups::delete_group
        ))
        .routes(routes!(
            security_groups::add_rule,
            security_groups::remove_rule
        ))
        .routes(routes!(instances::instance_action))
        .routes(routes!(instances::console))
        .routes(routes!(operations::list_operations))
        .routes(routes!(operations::get_operation))
        .routes(routes!(operations::cancel_operation))
        .routes(routes!(tokens::list_tokens, tokens::create_token))
        .routes(routes!(tokens::revoke_token))
        .routes(routes!(audit::list_audit))
}

/// The OpenAPI document of the API, as served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    parts().1
}

/// The router and its OpenAPI document. Object keys hold slashes, so their routes end in
/// axum's catch-all `{*key}`; OpenAPI writes that parameter `{key}`.
fn parts() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut document) = api().split_for_parts();
    document.paths.paths = std::mem::take(&mut document.paths.paths)
        .into_iter()
        .map(|(path, item)| (path.replace("{*", "{"), item))
        .collect();
    (router, document)
}

/// The whole application: routes, docs, middleware.
pub fn app(core: Arc<Core>) -> Router {
    let state = AppState { core };
    let (api, document) = parts();
    api.merge(SwaggerUi::new("/docs").url("/openapi.json", document))
        .route_layer(from_fn_with_state(state.clone(), middleware::authorize))
        .route_layer(from_fn_with_state(state.clone(), middleware::metrics))
        .fallback(middleware::not_found)
        .method_not_allowed_fallback(middleware::method_not_allowed)
        .layer(from_fn(middleware::request_id))
        .with_state(state)
}

/// A bound, not yet running server.
pub struct Server {
    listener: std::net::TcpListener,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    core: Arc<Core>,
}

impl Server {
    /// Binds the configured address (port 0 picks a free one) and loads TLS if configured.
    pub async fn bind(core: Arc<Core>) -> Result<Server, Error> {
        let config = core.config();
        let addr: SocketAddr = config.listen.parse().map_err(|_| {
            Error::invalid("listen", format!("`{}` is not an address", config.listen))
        })?;
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|e| Error::invalid("listen", format!("cannot listen on {addr}: {e}")))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::internal(e.to_string()))?;
        let tls = match &config.tls {
            None => None,
            Some(tls) => {
                // Two TLS crypto backends are linked in (the HTTP client brings its own);
                // say which one the server uses. Installing twice is harmless.
                let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
                let loaded =
                    axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key)
                        .await
                        .map_err(|e| {
                            Error::invalid(
                                "tls",
                                format!("cannot load the certificate or key: {e}"),
                            )
                        })?;
                Some(loaded)
            }
        };
        Ok(Server {
            listener,
            tls,
            core,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish (up to 30 s).
    /// Running operations stay recorded and resume at the next start.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let app = app(self.core.clone());
        let handle = axum_server::Handle::new();
        let signal = handle.clone();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight requests");
            signal.graceful_shutdown(Some(SHUTDOWN_GRACE));
        });
        let service = app.into_make_service();
        let served = match self.tls {
            Some(tls) => {
                axum_server::from_tcp_rustls(self.listener, tls)
                    .handle(handle)
                    .serve(service)
                    .await
            }
            None => {
                axum_server::from_tcp(self.listener)
                    .handle(handle)
                    .serve(service)
                    .await
            }
        };
        self.core.close().await;
        served
    }
}
