//! The native family: the `/v1` API and the system routes beside it, with bearer tokens,
//! the role each route needs (tokens for admins, reads for viewers, changes for
//! operators), every change audited, and errors as `{"error": {...}}`. Handlers parse,
//! call the core, and shape the answer; they decide nothing themselves.

pub mod audit;
pub mod buckets;
pub mod bulk;
pub mod environments;
pub mod error;
pub mod extract;
pub mod images;
pub mod instances;
pub mod key_pairs;
pub mod objects;
pub mod operations;
pub mod security_groups;
pub mod system;
pub mod tags;
pub mod tokens;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use overcast_core::config::Config;
use overcast_types::{Error, ErrorKind, Role};
use time::OffsetDateTime;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::family::{AuthScheme, Family, RoutePolicy};
use crate::AppState;
use error::ApiError;
use extract::parse_param;

/// Routes anyone may call.
const PUBLIC_ROUTES: [&str; 3] = ["/healthz", "/readyz", "/version"];

/// Routes anyone may call when `public_docs` is on.
fn is_docs_route(route: &str) -> bool {
    route == "/openapi.json" || route == "/docs" || route.starts_with("/docs/")
}

/// The role a native route needs, from its method and declared route: tokens are for
/// admins, reading is for viewers, every change is for operators.
pub fn required_role(method: &str, route: &str) -> Role {
    if route == "/v1/tokens" || route.starts_with("/v1/tokens/") {
        Role::Admin
    } else if matches!(method, "GET" | "HEAD") {
        Role::Viewer
    } else {
        Role::Operator
    }
}

/// The native family.
pub struct Native;

impl Family for Native {
    fn auth(&self) -> AuthScheme {
        AuthScheme::Bearer
    }

    fn policy(&self, method: &Method, route: &str, config: &Config) -> RoutePolicy {
        if PUBLIC_ROUTES.contains(&route) || (config.public_docs && is_docs_route(route)) {
            return RoutePolicy::PUBLIC;
        }
        let role = required_role(method.as_str(), route);
        // Every native route that changes something does so by a method other than
        // GET and HEAD, and no native read discloses a secret.
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            RoutePolicy::read(role)
        } else {
            RoutePolicy::audited(role)
        }
    }

    fn error(&self, error: Error) -> Response {
        ApiError(error).into_response()
    }
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
        (name = "tags", description = "Tags of instances, images, security groups and buckets"),
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

/// States in the document what the family's middleware answers before any handler: 401 on
/// every route that needs a token, and 403 where a route needs more than a viewer.
pub(crate) fn document_auth_answers(document: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let error = |description: &str| {
        let content = ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build();
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content("application/json", content)
                .build(),
        )
    };
    for (path, item) in document.paths.paths.iter_mut() {
        if PUBLIC_ROUTES.contains(&path.as_str()) {
            continue;
        }
        let operations = [
            (Method::GET, &mut item.get),
            (Method::HEAD, &mut item.head),
            (Method::PUT, &mut item.put),
            (Method::POST, &mut item.post),
            (Method::PATCH, &mut item.patch),
            (Method::DELETE, &mut item.delete),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation.as_mut() else {
                continue;
            };
            let responses = &mut operation.responses.responses;
            responses
                .entry("401".into())
                .or_insert_with(|| error("no token, or one that is unknown, revoked or expired"));
            if required_role(method.as_str(), path) > Role::Viewer {
                responses
                    .entry("403".into())
                    .or_insert_with(|| error("the token's role is too weak for this route"));
            }
        }
    }
}

/// The native routes with their OpenAPI document.
pub(crate) fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(system::system_health))
        .routes(routes!(system::system_ready))
        .routes(routes!(system::system_version))
        .routes(routes!(system::system_metrics))
        .routes(routes!(system::principal_view))
        .routes(routes!(environments::environment_list))
        .routes(routes!(environments::environment_view))
        .routes(routes!(environments::machine_type_list))
        .routes(routes!(
            instances::instance_list,
            instances::instance_create
        ))
        .routes(routes!(
            instances::instance_view,
            instances::instance_delete,
            instances::instance_modify
        ))
        .routes(routes!(instances::region_list))
        .routes(routes!(buckets::bucket_list, buckets::bucket_create))
        .routes(routes!(buckets::bucket_view, buckets::bucket_delete))
        .routes(routes!(
            objects::object_list,
            objects::object_copy,
            objects::object_delete_prefix
        ))
        .routes(routes!(
            objects::object_get,
            objects::object_head,
            objects::object_put,
            objects::object_delete
        ))
        .routes(routes!(objects::object_presign))
        .routes(routes!(bulk::instance_bulk_start))
        .routes(routes!(bulk::instance_bulk_stop))
        .routes(routes!(bulk::instance_bulk_reboot))
        .routes(routes!(bulk::instance_bulk_terminate))
        .routes(routes!(bulk::instance_bulk_promote))
        .routes(routes!(bulk::instance_bulk_tag))
        .routes(routes!(bulk::instance_bulk_untag))
        .routes(routes!(tags::instance_tag_set, tags::instance_tag_remove))
        .routes(routes!(tags::image_tag_set, tags::image_tag_remove))
        .routes(routes!(
            tags::security_group_tag_set,
            tags::security_group_tag_remove
        ))
        .routes(routes!(tags::bucket_tag_set, tags::bucket_tag_remove))
        .routes(routes!(images::image_list, images::image_create))
        .routes(routes!(images::image_view, images::image_delete))
        .routes(routes!(images::image_import))
        .routes(routes!(
            key_pairs::key_pair_list,
            key_pairs::key_pair_create
        ))
        .routes(routes!(key_pairs::key_pair_delete))
        .routes(routes!(
            security_groups::security_group_list,
            security_groups::security_group_create
        ))
        .routes(routes!(
            security_groups::security_group_view,
            security_groups::security_group_delete
        ))
        .routes(routes!(
            security_groups::security_group_rule_add,
            security_groups::security_group_rule_remove
        ))
        .routes(routes!(instances::instance_action))
        .routes(routes!(instances::instance_console))
        .routes(routes!(operations::operation_list))
        .routes(routes!(operations::operation_view))
        .routes(routes!(operations::operation_cancel))
        .routes(routes!(tokens::token_list, tokens::token_create))
        .routes(routes!(tokens::token_revoke))
        .routes(routes!(audit::audit_list))
}

/// The method-not-allowed answer (405) in the native error shape.
pub async fn method_not_allowed(method: Method) -> Response {
    let mut response = ApiError(Error::new(
        ErrorKind::InvalidInput,
        "method_not_allowed",
        format!("{method} is not allowed on this route"),
    ))
    .into_response();
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    response
}

/// The unknown-route answer in the native error shape.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError(Error::new(
        ErrorKind::NotFound,
        "route_not_found",
        format!("no route {}", uri.path()),
    ))
}

/// Listings return this many items unless `limit` says otherwise.
const DEFAULT_PAGE: u32 = 50;

/// `limit`: 1 to the store's maximum, default 50.
fn page_limit(value: Option<&str>) -> Result<u32, Error> {
    let max = overcast_core::MAX_PAGE;
    match parse_param::<u32>("limit", value, &format!("a number from 1 to {max}"))? {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(Error::invalid(
            "limit",
            format!("{n} is not from 1 to {max}"),
        )),
    }
}

/// `since`: an RFC 3339 time.
fn since(value: Option<&str>) -> Result<Option<OffsetDateTime>, Error> {
    value
        .map(|v| {
            OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339).map_err(|_| {
                Error::invalid(
                    "since",
                    format!("`{v}` is not an RFC 3339 time like 2026-01-31T12:00:00Z"),
                )
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_maps_routes_to_roles() {
        assert_eq!(required_role("GET", "/v1/environments"), Role::Viewer);
        assert_eq!(
            required_role("POST", "/v1/operations/{id}/cancel"),
            Role::Operator
        );
        assert_eq!(required_role("GET", "/v1/tokens"), Role::Admin);
        assert_eq!(required_role("DELETE", "/v1/tokens/{id}"), Role::Admin);
    }

    #[test]
    fn operation_ids_name_their_resource_then_their_verb_once_each() {
        let document = crate::openapi();
        let mut ids = Vec::new();
        for item in document.paths.paths.values() {
            for operation in [&item.get, &item.put, &item.post, &item.delete, &item.head]
                .into_iter()
                .flatten()
            {
                ids.push(operation.operation_id.clone().unwrap_or_default());
            }
        }
        let verbs = [
            "start",
            "stop",
            "reboot",
            "terminate",
            "promote",
            "tag",
            "untag",
        ];
        for id in &ids {
            let (resource, verb) = id.split_once('_').unwrap_or_default();
            assert!(
                !resource.is_empty() && !verb.is_empty() && !verbs.contains(&resource),
                "operation id `{id}` is not <resource>_<verb>"
            );
        }
        let count = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), count, "an operation id is used twice");
    }

    #[test]
    fn the_document_states_the_answers_of_authentication_and_roles() {
        let document = crate::openapi();
        for (path, item) in &document.paths.paths {
            let public = PUBLIC_ROUTES.contains(&path.as_str());
            for (method, operation) in [
                ("GET", &item.get),
                ("POST", &item.post),
                ("DELETE", &item.delete),
            ] {
                let Some(operation) = operation else { continue };
                let answers = &operation.responses.responses;
                assert_eq!(answers.contains_key("401"), !public, "{method} {path}");
                if required_role(method, path) > Role::Viewer {
                    assert!(answers.contains_key("403"), "{method} {path}");
                }
            }
        }
    }
}
