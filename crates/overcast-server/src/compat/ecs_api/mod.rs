//! ecs-api's routes (`/v1/ecs`, YaleSpinup's ecs-api v1.2.0, CONTRACTS.md §2): orchestrated
//! container services, clusters, tasks, task definitions, service discovery, secrets and
//! parameters, read as its Go decoder read them and answered in the AWS SDK's shapes with
//! its plain-text errors. `{account}` names an overcast environment (directly or through
//! `[compat.ecs_api.accounts]`); the org is the token's; every change is an operation.

mod adhoc;
mod decode;
mod render;
mod services;
mod stores;

use axum::body::Bytes;
use axum::extract::{FromRequest, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, head, post};
use axum::Router;
use overcast_core::auth::Principal;
use overcast_core::config::Config;
use overcast_types::{Error, ErrorKind, Operation, OperationStatus, Role, TargetOutcome};
use serde_json::{json, Value};
use std::collections::BTreeMap;

use super::lenient::Fields;
use super::ChangeContext;
use crate::http::family::{AuthScheme, Family, RoutePolicy};
use crate::http::status::status_of;
use crate::native::extract::Caller;
use crate::AppState;

/// The tag ecs-api marked its org's resources with; overcast adds it to what this family
/// makes, beside its own `overcast:org`.
const ORG_TAG: &str = "spinup:org";
/// The org tags a caller may not set on its own.
const ORG_KEYS: [&str; 2] = [ORG_TAG, "yale:org"];

/// ecs-api's family: an overcast token in `X-Auth-Token` (as its clients send one) or as
/// the bearer; plain-text errors.
pub struct EcsApi;

impl Family for EcsApi {
    fn auth(&self) -> AuthScheme {
        AuthScheme::BearerOrHeader("x-auth-token")
    }

    fn policy(&self, method: &Method, route: &str, _config: &Config) -> RoutePolicy {
        match (method.as_str(), route) {
            (_, "/v1/ecs/ping" | "/v1/ecs/version") => RoutePolicy::PUBLIC,
            ("GET" | "HEAD", _) => RoutePolicy::read(Role::Viewer),
            _ => RoutePolicy::audited(Role::Operator),
        }
    }

    fn error(&self, error: Error) -> Response {
        EcsError::from(error).into_response()
    }
}

pub fn routes() -> Router<AppState> {
    let secrets = get(stores::show_secret)
        .put(stores::update_secret)
        .delete(stores::delete_secret);
    Router::new()
        .route("/v1/ecs/ping", axum::routing::any(ping))
        .route("/v1/ecs/version", axum::routing::any(version))
        // overcast's own metrics, which need a viewer token (ecs-api's were public).
        .route(
            "/v1/ecs/metrics",
            get(crate::native::system::system_metrics),
        )
        .route("/v1/ecs/images", head(image))
        .route("/v1/ecs/{account}/services", post(services::create))
        .route(
            "/v1/ecs/{account}/clusters/{cluster}/services",
            get(services::list),
        )
        .route(
            "/v1/ecs/{account}/clusters/{cluster}/services/{service}",
            get(services::show)
                .put(services::update)
                .delete(services::delete),
        )
        .route(
            "/v1/ecs/{account}/clusters/{cluster}/services/{service}/events",
            get(services::events),
        )
        .route(
            "/v1/ecs/{account}/clusters/{cluster}/services/{service}/logs",
            get(services::logs),
        )
        .route(
            "/v1/ecs/{account}/clusters",
            get(adhoc::list_clusters).post(adhoc::create_cluster),
        )
        .route(
            "/v1/ecs/{account}/clusters/{cluster}",
            get(adhoc::show_cluster).delete(adhoc::delete_cluster),
        )
        .route(
            "/v1/ecs/{account}/clusters/{cluster}/tasks",
            get(adhoc::list_tasks).post(adhoc::run_task),
        )
        .route(
            "/v1/ecs/{account}/clusters/{cluster}/tasks/{task}",
            get(adhoc::show_task).delete(adhoc::stop_task),
        )
        .route(
            "/v1/ecs/{account}/taskdefs",
            get(adhoc::list_task_definitions).post(adhoc::register_task_definition),
        )
        .route(
            "/v1/ecs/{account}/taskdefs/{taskdef}",
            get(adhoc::show_task_definition).delete(adhoc::deregister_task_definition),
        )
        .route(
            "/v1/ecs/{account}/servicediscovery/services",
            get(adhoc::list_registries).post(adhoc::create_registry),
        )
        .route(
            "/v1/ecs/{account}/servicediscovery/services/{id}",
            get(adhoc::show_registry).delete(adhoc::delete_registry),
        )
        .route(
            "/v1/ecs/{account}/secrets",
            get(stores::list_secrets).post(stores::create_secret),
        )
        .route("/v1/ecs/{account}/secrets/{secret}", secrets.clone())
        // The README's spelling of the same routes.
        .route("/v1/ecs/{account}/secret/{secret}", secrets)
        .route(
            "/v1/ecs/{account}/params/{prefix}",
            get(stores::list_parameters)
                .post(stores::create_parameter)
                .delete(stores::delete_parameters),
        )
        .route(
            "/v1/ecs/{account}/params/{prefix}/{param}",
            get(stores::show_parameter)
                .put(stores::update_parameter)
                .delete(stores::delete_parameter),
        )
}

/// What ecs-api did before routing: answer a CORS preflight on any path without a token,
/// and (overcast's addition) collapse doubled slashes in a `/v1/ecs` path, for the README's
/// `PUT /v1/ecs//{account}/params/...`, which ecs-api's router answered with a redirect
/// that most clients turn into a GET.
pub async fn before_routing(mut request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if !path.starts_with("/v1/ecs/") {
        return next.run(request).await;
    }
    if request.method() == Method::OPTIONS {
        return preflight();
    }
    if path.contains("//") {
        let mut collapsed = String::with_capacity(path.len());
        for c in path.chars() {
            if !(c == '/' && collapsed.ends_with('/')) {
                collapsed.push(c);
            }
        }
        let rebuilt = match request.uri().query() {
            Some(query) => format!("{collapsed}?{query}"),
            None => collapsed,
        };
        if let Ok(uri) = rebuilt.parse::<Uri>() {
            *request.uri_mut() = uri;
        }
    }
    next.run(request).await
}

/// ecs-api's error: its status and a short plain-text message, no trailing newline.
#[derive(Debug)]
pub struct EcsError {
    pub status: StatusCode,
    pub text: String,
}

impl EcsError {
    pub fn new(status: StatusCode, text: impl Into<String>) -> Self {
        EcsError {
            status,
            text: text.into(),
        }
    }

    pub fn bad_request(text: impl Into<String>) -> Self {
        EcsError::new(StatusCode::BAD_REQUEST, text)
    }

    pub fn not_found(text: impl Into<String>) -> Self {
        EcsError::new(StatusCode::NOT_FOUND, text)
    }
}

impl From<Error> for EcsError {
    /// ecs-api answered every refused credential with 403; the message names the field a
    /// core refusal is about.
    fn from(error: Error) -> Self {
        let status = match error.kind {
            ErrorKind::Unauthenticated => StatusCode::FORBIDDEN,
            kind => status_of(kind),
        };
        let text = match &error.field {
            Some(field) if !error.message.contains(field.as_str()) => {
                format!("{field}: {}", error.message)
            }
            _ => error.message,
        };
        EcsError::new(status, text)
    }
}

impl IntoResponse for EcsError {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.text).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
    }
}

/// An answer, or ecs-api's error.
pub type Answer = Result<Response, EcsError>;

pub fn respond(answer: Answer) -> Response {
    answer.unwrap_or_else(IntoResponse::into_response)
}

/// A JSON answer as Go's `json.Marshal` wrote it (no trailing newline).
pub fn json_answer(value: &Value) -> Response {
    let mut response = (StatusCode::OK, value.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The JSON answer to a change, linked to its operation for the audit log.
pub fn changed(value: &Value, operation: &Operation) -> Answer {
    Ok(super::audited(json_answer(value), operation))
}

/// A text answer under ecs-api's `application/json` content type (its `OK`).
pub fn text_answer(text: &str) -> Response {
    let mut response = json_answer(&Value::Null);
    *response.body_mut() = text.to_string().into();
    response
}

/// The environment and defaults an `{account}` stands for; an unknown one is a 404 with
/// ecs-api's text for the route's AWS service.
pub struct Account {
    pub environment: String,
    pub kms_key_id: Option<String>,
}

pub fn account(state: &AppState, name: &str, service: &str) -> Result<Account, EcsError> {
    let config = state.core.config();
    if let Some(account) = config.compat.ecs_api.accounts.get(name) {
        return Ok(Account {
            environment: account.environment.clone(),
            kms_key_id: account.kms_key_id.clone(),
        });
    }
    if config.environments.contains_key(name) {
        return Ok(Account {
            environment: name.to_string(),
            kms_key_id: None,
        });
    }
    Err(EcsError::not_found(format!(
        "{service} service not found for account: {name}"
    )))
}

/// The query string's values by name (first of each; names kept as sent).
pub fn query_values(query: Option<&str>) -> Result<BTreeMap<String, String>, EcsError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|e| EcsError::bad_request(format!("cannot read the query: {e}")))?;
    let mut values = BTreeMap::new();
    for (k, v) in pairs {
        values.entry(k).or_insert(v);
    }
    Ok(values)
}

/// Go's `strconv.ParseBool` as ecs-api used it: anything else is false.
pub fn go_bool(value: Option<&String>) -> bool {
    matches!(
        value.map(String::as_str),
        Some("1" | "t" | "T" | "TRUE" | "true" | "True")
    )
}

/// Tags for what this family makes: the org's `spinup:org`, then the caller's own minus
/// any org tag it sent (ecs-api's `[spinup:org] + tags minus org keys`).
pub fn with_org(org: &str, tags: BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut all: BTreeMap<String, String> = tags
        .into_iter()
        .filter(|(k, _)| !ORG_KEYS.contains(&k.as_str()))
        .collect();
    all.insert(ORG_TAG.into(), org.into());
    all
}

/// The operation once it has ended: its failure as ecs-api answered one (400 with the
/// text, or the failure's own status where it is the caller's), or a 202 naming it when
/// it is still running after the server's wait.
pub async fn finished(cx: &ChangeContext<'_>, operation: Operation) -> Result<Operation, EcsError> {
    let operation = cx.settle(&operation, cx.default_wait()).await?;
    match operation.status {
        OperationStatus::Succeeded => Ok(operation),
        OperationStatus::Failed | OperationStatus::Cancelled => Err(EcsError::new(
            failure_status(&operation),
            failure_text(&operation),
        )),
        OperationStatus::Pending | OperationStatus::Running => Err(EcsError::new(
            StatusCode::ACCEPTED,
            format!(
                "operation {id} is still running; follow it at /v1/operations/{id}",
                id = operation.id
            ),
        )),
    }
}

/// ecs-api answered a failed AWS call with 400; overcast keeps the failure's own status
/// where it says the caller was at fault in another way (404, 409, 429).
fn failure_status(operation: &Operation) -> StatusCode {
    match operation.error.as_ref().and_then(|e| e.kind) {
        Some(
            kind @ (ErrorKind::NotFound
            | ErrorKind::Conflict
            | ErrorKind::RateLimited
            | ErrorKind::Forbidden),
        ) => status_of(kind),
        _ => StatusCode::BAD_REQUEST,
    }
}

/// What failed, and what the operation did about what it had made.
fn failure_text(operation: &Operation) -> String {
    let mut text = operation.error.as_ref().map_or_else(
        || format!("operation {} failed", operation.id),
        |e| e.message.clone(),
    );
    let steps: Vec<String> = operation
        .results
        .iter()
        .filter(|r| r.outcome != TargetOutcome::Done || r.target.starts_with("undo:"))
        .filter_map(|r| r.message.as_ref().map(|m| format!("{}: {m}", r.target)))
        .collect();
    if !steps.is_empty() {
        text.push_str(&format!(" ({})", steps.join("; ")));
    }
    text.push_str(&format!(" [operation {}]", operation.id));
    text
}

/// `pong`, to any method, without a token.
async fn ping() -> Response {
    let mut response = "pong".into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// ecs-api's version object, with overcast's version; another method is a 400.
async fn version(method: Method) -> Response {
    if method != Method::GET {
        return StatusCode::BAD_REQUEST.into_response();
    }
    json_answer(&json!({
        "version": env!("CARGO_PKG_VERSION"),
        "githash": option_env!("OVERCAST_GIT_HASH").unwrap_or(""),
        "buildstamp": option_env!("OVERCAST_BUILD_STAMP").unwrap_or(""),
    }))
}

/// CORS preflight, answered before any token is asked for, as ecs-api did.
fn preflight() -> Response {
    let mut response = StatusCode::OK.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("X-Auth-Token, Authorization, Content-Type, Idempotency-Key"),
    );
    response
}

/// Image verification by status alone: 200 present, 404 absent or not readable without
/// credentials, 400 a bad reference or a registry that failed.
async fn image(
    State(state): State<AppState>,
    Caller(principal): Caller,
    RawQuery(query): RawQuery,
) -> Response {
    let mut fields = Fields::default();
    if fields.add_pairs(query.as_deref().unwrap_or("")).is_err() {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let Some(image) = fields.text("image") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let status = match state.core.check_image(&principal, &image).await {
        Ok(_) => StatusCode::OK,
        Err(e) if matches!(e.kind, ErrorKind::NotFound | ErrorKind::Forbidden) => {
            StatusCode::NOT_FOUND
        }
        Err(_) => StatusCode::BAD_REQUEST,
    };
    let mut response = status.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A change request as it was sent: its idempotency is computed from all of it.
pub struct Sent {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    pub body: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for Sent {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        let (method, uri, headers) = (
            request.method().clone(),
            request.uri().clone(),
            request.headers().clone(),
        );
        let body = Bytes::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Sent {
            method,
            uri,
            headers,
            body,
        })
    }
}

impl Sent {
    /// Its change context: who asks, and the request's idempotency.
    pub fn context<'a>(
        &self,
        state: &'a AppState,
        principal: &'a Principal,
    ) -> Result<ChangeContext<'a>, EcsError> {
        Ok(ChangeContext::new(
            state,
            principal,
            &self.headers,
            &self.method,
            self.uri.path(),
            &self.body,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_tags_are_the_servers_never_the_callers() {
        let given = BTreeMap::from([
            ("spinup:org".to_string(), "other".to_string()),
            ("yale:org".to_string(), "other".to_string()),
            ("Team".to_string(), "web".to_string()),
        ]);
        let tags = with_org("acme", given);
        assert_eq!(tags.len(), 2);
        assert_eq!(tags["spinup:org"], "acme");
        assert_eq!(tags["Team"], "web");
    }

    #[test]
    fn booleans_parse_as_go_parsed_them() {
        for yes in ["1", "t", "T", "TRUE", "true", "True"] {
            assert!(go_bool(Some(&yes.to_string())), "{yes}");
        }
        for no in ["yes", "0", "false", ""] {
            assert!(!go_bool(Some(&no.to_string())), "{no}");
        }
        assert!(!go_bool(None));
    }

    #[test]
    fn core_errors_become_plain_text_with_their_field() {
        let e = EcsError::from(Error::invalid("window", "must be 0 or 7 to 30"));
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.text, "window: must be 0 or 7 to 30");
        let e = EcsError::from(Error::unauthenticated("no token"));
        assert_eq!(e.status, StatusCode::FORBIDDEN);
    }
}
