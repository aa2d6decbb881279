//! The native family: the `/v1` API and the system routes beside it, with bearer tokens,
//! the role each route needs (tokens for admins, reads for viewers, changes for
//! operators), every change audited, and errors as `{"error": {...}}`. Handlers parse,
//! call the core, and shape the answer; they decide nothing themselves.

pub mod audit;
pub mod buckets;
pub mod bulk;
pub mod containers;
pub mod environments;
pub mod error;
pub mod extract;
pub mod image_checks;
pub mod images;
pub mod instances;
pub mod inventory;
pub mod key_pairs;
pub mod objects;
pub mod operations;
pub mod parameters;
pub mod secrets;
pub mod security_groups;
pub mod system;
pub mod tags;
pub mod tokens;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use overcast_core::config::Config;
use overcast_types::{Error, ErrorKind, Role};
use std::collections::BTreeMap;
use time::OffsetDateTime;
use utoipa::openapi::path::ParameterIn;
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
/// admins (and so is the servers' list), reading is for viewers, every change is for
/// operators.
pub fn required_role(method: &str, route: &str) -> Role {
    if ACCESS_KEY_ROUTES.contains(&route) {
        // Any token may hold access keys of its own; core lets admins handle every one.
        Role::Viewer
    } else if route == "/v1/tokens" || route.starts_with("/v1/tokens/") || route == "/v1/servers" {
        Role::Admin
    } else if SECRET_READS.contains(&route) {
        Role::Operator
    } else if matches!(method, "GET" | "HEAD") {
        Role::Viewer
    } else {
        Role::Operator
    }
}

/// The routes of the EC2 endpoint's access keys.
const ACCESS_KEY_ROUTES: [&str; 3] = [
    "/v1/access-keys",
    "/v1/access-keys/{id}",
    "/v1/tokens/{id}/access-keys",
];

/// The reads that answer a secret value: operators only, each in the audit log.
const SECRET_READS: [&str; 2] = [
    "/v1/environments/{env}/secrets/{name}/value",
    "/v1/environments/{env}/parameter-values/{*name}",
];

/// The native family.
pub struct Native;

impl Family for Native {
    fn auth(&self) -> AuthScheme {
        AuthScheme::BearerOrSession
    }

    fn policy(&self, method: &Method, route: &str, config: &Config) -> RoutePolicy {
        if PUBLIC_ROUTES.contains(&route) || (config.public_docs && is_docs_route(route)) {
            return RoutePolicy::PUBLIC;
        }
        let role = required_role(method.as_str(), route);
        // Every native route that changes something does so by a method other than
        // GET and HEAD; the reads that disclose a secret's or parameter's value are
        // audited like changes.
        if SECRET_READS.contains(&route) {
            RoutePolicy::audited(role)
        } else if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
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
        (name = "secrets", description = "Secrets: values by their own audited route"),
        (name = "parameters", description = "Parameters under the caller's org"),
        (name = "containers", description = "Container services: clusters, task definitions, services, tasks"),
        (name = "registry", description = "Container images in their registries"),
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

/// An answer the family gives on every route a rule picks, whatever its handler: the
/// status, and why it is given.
struct CommonAnswer {
    status: &'static str,
    why: &'static str,
    applies: fn(&RouteShape) -> bool,
}

/// What the rules read of a route: its method, its path as documented, and its operation.
struct RouteShape<'a> {
    method: Method,
    path: &'a str,
    operation: &'a utoipa::openapi::path::Operation,
}

impl RouteShape<'_> {
    fn secured(&self) -> bool {
        !PUBLIC_ROUTES.contains(&self.path)
    }

    /// Parameters and bodies are read by the family's extractors, which refuse malformed
    /// input with a 400 naming it.
    fn takes_input(&self) -> bool {
        self.operation
            .parameters
            .as_ref()
            .is_some_and(|p| !p.is_empty())
            || self.operation.request_body.is_some()
    }

    fn takes_header(&self, name: &str) -> bool {
        self.operation
            .parameters
            .iter()
            .flatten()
            .any(|p| p.parameter_in == ParameterIn::Header && p.name.eq_ignore_ascii_case(name))
    }

    /// Routes under an environment reach its provider, and through it a backend.
    fn in_environment(&self) -> bool {
        self.path.starts_with("/v1/environments/{env}/")
    }
}

/// The family's answers by rule. Handlers add what is their own (a conflict a use case
/// finds, a 416 of a range); these are what every route of a kind answers alike.
const COMMON_ANSWERS: &[CommonAnswer] = &[
    CommonAnswer {
        status: "400",
        why: "a parameter, header or body that is malformed or refused, naming the field",
        applies: |route| route.takes_input(),
    },
    CommonAnswer {
        status: "400",
        why: "the environment's provider lacks this capability",
        applies: |route| route.in_environment(),
    },
    CommonAnswer {
        status: "401",
        why: "no token, or one that is unknown, revoked or expired",
        applies: |route| route.secured(),
    },
    CommonAnswer {
        status: "403",
        why: "the token's role is too weak for this route",
        applies: |route| route.secured() && required_role(route.method.as_str(), route.path) > Role::Viewer,
    },
    CommonAnswer {
        status: "403",
        why: "the backend denied overcast's credentials",
        applies: |route| route.in_environment(),
    },
    CommonAnswer {
        status: "404",
        why: "what the path names does not exist, or is another org's",
        applies: |route| route.path.contains('{'),
    },
    CommonAnswer {
        status: "409",
        why: "the Idempotency-Key was used before with another request",
        applies: |route| route.takes_header("Idempotency-Key"),
    },
    CommonAnswer {
        status: "502",
        why: "the backend refused the call",
        applies: |route| route.in_environment(),
    },
    CommonAnswer {
        status: "503",
        why: "the environment's provider cannot run here, or its backend is unreachable or throttling",
        applies: |route| route.in_environment(),
    },
    CommonAnswer {
        status: "504",
        why: "the backend did not answer in time",
        applies: |route| route.in_environment(),
    },
];

/// The parameters every change that can answer 202 reads (see [`extract::Mutation`]): how
/// long to wait for its operation, and whether to wait at all.
fn wait_parameters() -> [utoipa::openapi::path::Parameter; 2] {
    use utoipa::openapi::path::ParameterBuilder;
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let seconds = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(0));
    let text = ObjectBuilder::new().schema_type(Type::String);
    [
        ParameterBuilder::new()
            .name("timeout")
            .parameter_in(ParameterIn::Query)
            .description(Some(
                "Seconds to wait for the operation before answering 202: default the server's \
                 operation_timeout_secs, at most its max_operation_timeout_secs",
            ))
            .schema(Some(seconds))
            .build(),
        ParameterBuilder::new()
            .name("Prefer")
            .parameter_in(ParameterIn::Header)
            .description(Some("`respond-async`: answer 202 at once"))
            .schema(Some(text))
            .build(),
    ]
}

/// A change that can answer 202 answers 200 with the same body when its operation was
/// cancelled while the request waited (see [`extract::Mutation::respond`]): beside
/// whatever else the change answers with 200.
fn document_cancelled_answer(operation: &mut utoipa::openapi::path::Operation) {
    use utoipa::openapi::schema::{OneOfBuilder, Schema};
    use utoipa::openapi::RefOr;
    const WHY: &str = "the operation was cancelled while the request waited";
    let responses = &mut operation.responses.responses;
    let Some(RefOr::T(accepted)) = responses.get("202") else {
        return;
    };
    let accepted = accepted.clone();
    let Some(RefOr::T(ok)) = responses.get_mut("200") else {
        let mut cancelled = accepted;
        cancelled.description = WHY.into();
        responses.insert("200".into(), RefOr::T(cancelled));
        return;
    };
    let body = |response: &utoipa::openapi::Response| {
        response
            .content
            .get("application/json")
            .and_then(|c| c.schema.clone())
    };
    let (Some(theirs), Some(ours)) = (body(&accepted), body(ok)) else {
        return;
    };
    if theirs != ours {
        let either = OneOfBuilder::new().item(ours).item(theirs).build();
        if let Some(content) = ok.content.get_mut("application/json") {
            content.schema = Some(RefOr::T(Schema::OneOf(either)));
        }
        ok.description = if ok.description.is_empty() {
            WHY.into()
        } else {
            format!("{}; {WHY}", ok.description)
        };
    }
}

/// States in the document what every route of a kind shares: the parameters of waiting on
/// every change that can answer 202, and the answers of [`COMMON_ANSWERS`] on the routes
/// they apply to, each in the error shape (without a body for HEAD, which has none). A
/// status a handler already documents keeps its description, followed by the rules'
/// reasons.
pub(crate) fn document_common_rules(document: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    for (path, item) in document.paths.paths.iter_mut() {
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
            if operation.responses.responses.contains_key("202") {
                operation
                    .parameters
                    .get_or_insert_with(Vec::new)
                    .extend(wait_parameters());
                document_cancelled_answer(operation);
            }
            let head = method == Method::HEAD;
            let route = RouteShape {
                method,
                path,
                operation,
            };
            let mut reasons: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for answer in COMMON_ANSWERS.iter().filter(|a| (a.applies)(&route)) {
                reasons.entry(answer.status).or_default().push(answer.why);
            }
            for (status, whys) in reasons {
                let why = whys.join("; ");
                match operation.responses.responses.get_mut(status) {
                    Some(RefOr::T(response)) if response.description.is_empty() => {
                        response.description = why;
                    }
                    Some(RefOr::T(response)) => {
                        response.description = format!("{}; {why}", response.description);
                    }
                    Some(RefOr::Ref(_)) => {}
                    None => {
                        let mut response = ResponseBuilder::new().description(why);
                        if !head {
                            let body = ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name("ErrorBody")))
                                .build();
                            response = response.content("application/json", body);
                        }
                        operation
                            .responses
                            .responses
                            .insert(status.into(), RefOr::T(response.build()));
                    }
                }
            }
        }
    }
}

/// States core's `MachineTypeView` as the one object it is on the wire, and the listing's
/// page as a page of them. The view is a name beside a flattened `MachineType`, which
/// utoipa writes as `allOf` of the two (inline in the page); there `MachineType`'s
/// `additionalProperties` (each provider's entry, an object) also claims `name`, so no
/// machine type the server answers would match the document.
pub(crate) fn document_machine_type_view(document: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
    use utoipa::openapi::{Ref, RefOr};
    let Some(components) = document.components.as_mut() else {
        return;
    };
    let Some(RefOr::T(Schema::Object(machine))) = components.schemas.get("MachineType") else {
        return;
    };
    let mut view = machine.clone();
    view.description = Some("A machine type as the API shows it.".into());
    view.properties.insert(
        "name".into(),
        ObjectBuilder::new().schema_type(Type::String).into(),
    );
    view.required.push("name".into());
    components
        .schemas
        .insert("MachineTypeView".into(), Schema::Object(view).into());
    if let Some(RefOr::T(Schema::Object(page))) = components.schemas.get_mut("Page_MachineTypeView")
    {
        let items = ArrayBuilder::new().items(Ref::from_schema_name("MachineTypeView"));
        page.properties.insert("items".into(), items.into());
    }
}

/// The native routes with their OpenAPI document.
pub(crate) fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(system::system_health))
        .routes(routes!(system::system_ready))
        .routes(routes!(system::system_version))
        .routes(routes!(system::system_metrics))
        .routes(routes!(system::servers_list))
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
        .routes(routes!(instances::fleet_summary))
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
        .routes(routes!(operations::operation_events))
        .routes(routes!(tokens::token_list, tokens::token_create))
        .routes(routes!(tokens::token_revoke))
        .routes(routes!(tokens::access_key_list))
        .routes(routes!(tokens::access_key_create))
        .routes(routes!(tokens::access_key_revoke))
        .routes(routes!(audit::audit_list))
        .routes(routes!(inventory::event_list))
        .routes(routes!(inventory::inventory_refresh))
        .routes(routes!(secrets::secret_list, secrets::secret_create))
        .routes(routes!(
            secrets::secret_view,
            secrets::secret_update,
            secrets::secret_delete
        ))
        .routes(routes!(secrets::secret_restore))
        .routes(routes!(secrets::secret_value))
        .routes(routes!(
            parameters::parameter_list,
            parameters::parameter_delete_under
        ))
        .routes(routes!(
            parameters::parameter_view,
            parameters::parameter_put,
            parameters::parameter_delete
        ))
        .routes(routes!(parameters::parameter_value))
        .routes(routes!(parameters::parameter_history))
        .routes(routes!(
            containers::cluster_list,
            containers::cluster_create
        ))
        .routes(routes!(
            containers::cluster_view,
            containers::cluster_delete
        ))
        .routes(routes!(
            containers::task_definition_list,
            containers::task_definition_register
        ))
        .routes(routes!(
            containers::task_definition_view,
            containers::task_definition_deregister
        ))
        .routes(routes!(
            containers::service_list,
            containers::service_create
        ))
        .routes(routes!(
            containers::service_view,
            containers::service_update,
            containers::service_delete
        ))
        .routes(routes!(containers::task_list, containers::task_run))
        .routes(routes!(containers::task_view))
        .routes(routes!(containers::task_stop))
        .routes(routes!(containers::task_logs))
        .routes(routes!(containers::container_service_create))
        .routes(routes!(
            containers::registry_list,
            containers::registry_create
        ))
        .routes(routes!(
            containers::registry_view,
            containers::registry_delete
        ))
        .routes(routes!(image_checks::image_check, image_checks::image_head))
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
    fn the_document_states_the_answers_every_route_of_a_kind_shares() {
        let document = crate::openapi();
        for (path, item) in &document.paths.paths {
            let public = PUBLIC_ROUTES.contains(&path.as_str());
            for (method, operation) in [
                ("GET", &item.get),
                ("HEAD", &item.head),
                ("PUT", &item.put),
                ("POST", &item.post),
                ("PATCH", &item.patch),
                ("DELETE", &item.delete),
            ] {
                let Some(operation) = operation else { continue };
                let answers = &operation.responses.responses;
                let states = |status: &str| answers.contains_key(status);
                let route = format!("{method} {path}");
                assert_eq!(states("401"), !public, "{route}");
                if required_role(method, path) > Role::Viewer {
                    assert!(states("403"), "{route}");
                }
                let takes_input = operation.parameters.as_ref().is_some_and(|p| !p.is_empty())
                    || operation.request_body.is_some();
                assert_eq!(states("400"), takes_input, "{route}");
                // The image check names what it looks for in its query, not its path.
                let names_by_query = path == "/v1/images";
                assert_eq!(
                    states("404"),
                    path.contains('{') || names_by_query,
                    "{route}"
                );
                if path.starts_with("/v1/environments/{env}/") {
                    for status in ["403", "502", "503", "504"] {
                        assert!(states(status), "{route} {status}");
                    }
                }
                let parameter = |name: &str| {
                    operation
                        .parameters
                        .iter()
                        .flatten()
                        .any(|p| p.name == name)
                };
                if parameter("Idempotency-Key") {
                    assert!(states("409"), "{route}");
                }
                if states("202") {
                    assert!(states("200"), "{route}");
                    assert!(parameter("timeout") && parameter("Prefer"), "{route}");
                }
            }
        }
    }

    #[test]
    fn machine_types_are_one_object_with_each_provider_entry_beside_the_name() {
        use utoipa::openapi::schema::{AdditionalProperties, Schema};
        use utoipa::openapi::RefOr;
        let document = crate::openapi();
        let schemas = &document.components.as_ref().unwrap().schemas;
        let Some(RefOr::T(Schema::Object(view))) = schemas.get("MachineTypeView") else {
            panic!("MachineTypeView is not one object");
        };
        assert!(view.properties.contains_key("name") && view.required == ["name"]);
        assert!(matches!(
            view.additional_properties.as_deref(),
            Some(AdditionalProperties::RefOr(_))
        ));
        let page = serde_json::to_value(&schemas["Page_MachineTypeView"]).unwrap();
        assert_eq!(
            page["properties"]["items"]["items"]["$ref"],
            "#/components/schemas/MachineTypeView"
        );
    }
}
