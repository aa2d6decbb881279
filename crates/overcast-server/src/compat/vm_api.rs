//! The Cloud VM API's routes (`/vm`): list, create, start and stop by GET, delete, in the
//! overcast environment `?environment=` names, with machine types by name, base64
//! `cloud_init`, CloudMuX's status words, its 204s and its plain-text errors with their
//! exact texts. Start, stop and delete answer once the VM got there, bounded by
//! `[compat.vm_api] timeout_secs` (CONTRACTS.md §3).

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use overcast_core::auth::Principal;
use overcast_core::compute::{
    BulkAction, CreateInstancesRequest, InstanceActionRequest, InstanceQuery, Launch,
};
use overcast_core::config::Config;
use overcast_types::{Error, ErrorKind, Instance, InstanceState, Operation, OperationStatus, Role};
use serde_json::{json, Value};
use std::time::Duration;

use super::lenient::{self, Fields};
use super::{audited, ChangeContext};
use crate::http::family::{AuthScheme, Family, RoutePolicy};
use crate::http::status::status_of;
use crate::native::error::ApiError;
use crate::native::extract::{ApiPath, Caller};
use crate::AppState;

/// The Cloud VM API's family: an overcast token as the bearer (the tool took cloud keys
/// there; those are refused with its own text and a hint), plain-text errors.
pub struct VmApi;

impl Family for VmApi {
    fn auth(&self) -> AuthScheme {
        AuthScheme::Bearer
    }

    /// Listing is a read; start and stop change state although they are GETs.
    fn policy(&self, method: &Method, route: &str, _config: &Config) -> RoutePolicy {
        if *method == Method::GET && route == "/vm" {
            RoutePolicy::read(Role::Viewer)
        } else {
            RoutePolicy::audited(Role::Operator)
        }
    }

    fn error(&self, error: Error) -> Response {
        let text = match error.kind {
            ErrorKind::Unauthenticated => "missing or invalid Authorization header".to_string(),
            _ => error.message,
        };
        plain(status_of(error.kind), &text).into_response()
    }

    fn refused(&self, presented: Option<&str>, error: Error) -> Response {
        if presented.is_some_and(is_cloud_credential) {
            return plain(
                StatusCode::UNAUTHORIZED,
                "unable parsing credentials. Error: cloud credentials are not accepted here; \
                 send an overcast token instead: Authorization: Bearer <token>",
            )
            .into_response();
        }
        self.error(error)
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/vm", get(list).post(create))
        .route("/vm/{id}/start", get(start))
        .route("/vm/{id}/stop", get(stop))
        .route("/vm/{id}", axum::routing::delete(delete))
}

/// Whether a bearer is the tool's own credential: base64 of `access:secret`, or of a JSON
/// object with `access_key` (its older form).
fn is_cloud_credential(bearer: &str) -> bool {
    let Some(bytes) = decode_base64(bearer) else {
        return false;
    };
    let Ok(text) = String::from_utf8(bytes) else {
        return false;
    };
    let text = text.trim_end_matches(['\n', '\r']);
    text.split_once(':')
        .is_some_and(|(access, _)| !access.is_empty() && !access.contains('"'))
        || serde_json::from_str::<Value>(text).is_ok_and(|v| v.get("access_key").is_some())
}

/// Base64 as people pipe it through `base64`: lines wrapped, padding missing, either
/// alphabet.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let mut compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.is_empty() {
        return None;
    }
    while !compact.len().is_multiple_of(4) {
        compact.push('=');
    }
    let engines = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::URL_SAFE,
    ];
    engines.iter().find_map(|e| e.decode(&compact).ok())
}

/// The tool's error: `text/plain`, the message and a newline, as Go's `http.Error` wrote.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    text: String,
}

fn plain(status: StatusCode, text: &str) -> Refusal {
    Refusal {
        status,
        text: text.to_string(),
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = (self.status, format!("{}\n", self.text)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert(
            "x-content-type-options",
            HeaderValue::from_static("nosniff"),
        );
        response
    }
}

/// The tool's JSON answer: Go's encoder ended it with a newline.
fn json_answer(value: &Value) -> Response {
    let mut text = value.to_string();
    text.push('\n');
    let mut response = (StatusCode::OK, text).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// An answer, or a refusal as the tool wrote it.
type Answer = Result<Response, Refusal>;

fn respond(outcome: Answer) -> Response {
    outcome.unwrap_or_else(IntoResponse::into_response)
}

/// The environment a request names, checked as the tool checked it.
fn environment(state: &AppState, named: Option<String>) -> Result<String, Refusal> {
    let Some(name) = named.filter(|n| !n.is_empty()) else {
        return Err(plain(
            StatusCode::BAD_REQUEST,
            "missing environment parameter",
        ));
    };
    if state.core.config().environments.contains_key(&name) {
        Ok(name)
    } else {
        Err(plain(
            StatusCode::BAD_REQUEST,
            &format!("environment with name {name} not found"),
        ))
    }
}

/// `?environment=` of a request.
fn environment_param(query: Option<&str>) -> Option<String> {
    let mut fields = Fields::default();
    fields.add_pairs(query.unwrap_or("")).ok()?;
    fields.text("environment")
}

/// CloudMuX's status words.
fn status_word(state: InstanceState) -> &'static str {
    match state {
        InstanceState::Running => "running",
        InstanceState::Pending | InstanceState::Rebooting => "starting",
        InstanceState::Stopping => "stopping",
        InstanceState::Stopped => "ready",
        _ => "unknown",
    }
}

fn vm_view(instance: &Instance) -> Value {
    json!({
        "id": instance.id,
        "name": instance.name.clone().unwrap_or_default(),
        "status": status_word(instance.state),
    })
}

async fn list(
    State(state): State<AppState>,
    Caller(principal): Caller,
    RawQuery(query): RawQuery,
) -> Response {
    respond(
        async {
            let env = environment(&state, environment_param(query.as_deref()))?;
            let mut query = InstanceQuery {
                limit: 500,
                ..InstanceQuery::default()
            };
            let mut vms = Vec::new();
            loop {
                let page = state
                    .core
                    .instances(&principal, &env, query.clone())
                    .await
                    .map_err(|e| failed("Failed to list VMs", &e))?;
                vms.extend(
                    page.items
                        .iter()
                        .filter(|i| i.state != InstanceState::Terminated)
                        .map(vm_view),
                );
                match page.next_page_token {
                    Some(token) => query.page_token = Some(token),
                    None => break,
                }
            }
            Ok(json_answer(&Value::Array(vms)))
        }
        .await,
    )
}

/// A failure as the tool reported it: `<what>: <why>`, 500 for the backend's faults and
/// the error's own status for the caller's.
fn failed(what: &str, error: &Error) -> Refusal {
    let status = match error.kind {
        ErrorKind::InvalidInput
        | ErrorKind::Forbidden
        | ErrorKind::Conflict
        | ErrorKind::Unsupported => status_of(error.kind),
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    plain(status, &format!("{what}: {}", error.message))
}

async fn create(
    State(state): State<AppState>,
    Caller(principal): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(
        async {
            let value = lenient::parse_json(&body).map_err(|e| {
                plain(
                    StatusCode::BAD_REQUEST,
                    &format!("Invalid request body: {e}"),
                )
            })?;
            let fields = Fields::from_json(value);
            let env = environment(&state, fields.text("environment"))?;
            let request = create_request(state.core.config(), &env, &fields)?;
            let cx = ChangeContext::new(&state, &principal, &headers, &Method::POST, "/vm", &body)
                .map_err(|e| plain(StatusCode::BAD_REQUEST, &e.message))?;
            let launch = state
                .core
                .create_instances(&principal, &env, &request, cx.idempotency.as_ref())
                .await
                .map_err(|e| failed("Create VM failed", &e))?;
            let Launch::Started(operation) = launch else {
                return Err(plain(
                    StatusCode::BAD_REQUEST,
                    "Create VM failed: a dry run",
                ));
            };
            let operation = cx
                .settle(&operation, timeout(&state))
                .await
                .map_err(|e| failed("Create VM failed", &e))?;
            let created = operation
                .results
                .first()
                .and_then(|r| r.detail.clone())
                .and_then(|d| serde_json::from_value::<Instance>(d).ok());
            let response = match (operation.status, created) {
                (OperationStatus::Succeeded, Some(instance)) => json_answer(&vm_view(&instance)),
                _ => unfinished("Create VM failed", &operation),
            };
            Ok(audited(response, &operation))
        }
        .await,
    )
}

/// A create request from the tool's body: `name`, `machinetype` (an overcast machine type
/// with a size for the environment's provider) and base64 `cloud_init`.
fn create_request(
    config: &Config,
    env: &str,
    fields: &Fields,
) -> Result<CreateInstancesRequest, Refusal> {
    let invalid = |why: String| {
        plain(
            StatusCode::BAD_REQUEST,
            &format!("Invalid machinetype for this cloud: {why}"),
        )
    };
    let machine = fields.text("machinetype").unwrap_or_default();
    let Some(machine_type) = config.machine_types.get(&machine) else {
        return Err(invalid(format!("machinetype {machine} not found")));
    };
    let provider = &config.environments[env].provider;
    if !machine_type.sizes.contains_key(provider) {
        return Err(invalid(format!(
            "cloud {provider} not found for machinetype {machine}"
        )));
    }
    let user_data = match fields.text("cloud_init").filter(|c| !c.trim().is_empty()) {
        None => None,
        Some(text) => {
            let bytes = decode_base64(&text).ok_or_else(|| {
                plain(
                    StatusCode::BAD_REQUEST,
                    "Invalid request body: cloud_init is not base64",
                )
            })?;
            // Canonical base64, which overcast passes to EC2 as it is and decodes for a
            // NoCloud seed.
            Some(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
    };
    Ok(CreateInstancesRequest {
        name: fields.text("name").filter(|n| !n.is_empty()),
        machine_type: Some(machine),
        user_data,
        ..CreateInstancesRequest::default()
    })
}

/// A change that did not succeed in time, as the tool reported failures: `<what>:
/// <why>`, with the operation that says what was and was not done.
fn unfinished(what: &str, operation: &Operation) -> Response {
    let why = match (&operation.error, operation.status.is_final()) {
        (_, false) => "timeout".to_string(),
        (Some(error), true) => error.message.clone(),
        (None, true) => format!("it was {}", operation.status.as_str()),
    };
    let text = format!("{what}: {why} (operation {})", operation.id);
    plain(StatusCode::INTERNAL_SERVER_ERROR, &text).into_response()
}

/// How long start, stop, delete and create wait.
fn timeout(state: &AppState) -> Duration {
    Duration::from_secs(state.core.config().compat.vm_api.timeout_secs)
}

/// Start, stop or delete one VM and wait until it got there: 204, or the tool's texts.
async fn act(
    state: &AppState,
    principal: &Principal,
    id: Result<ApiPath<String>, ApiError>,
    query: Option<String>,
    headers: &HeaderMap,
    (method, action, what): (Method, BulkAction, &str),
) -> Response {
    respond(
        async {
            let env = environment(state, environment_param(query.as_deref()))?;
            let ApiPath(id) = id.map_err(|e| plain(StatusCode::BAD_REQUEST, &e.0.message))?;
            let path = match action {
                BulkAction::Terminate => format!("/vm/{id}"),
                _ => format!("/vm/{id}/{}", action.name()),
            };
            let cx = ChangeContext::new(state, principal, headers, &method, &path, &[])
                .map_err(|e| plain(StatusCode::BAD_REQUEST, &e.message))?;
            let request = InstanceActionRequest {
                action,
                // CloudMuX always forced a stop.
                force: action == BulkAction::Stop,
                to_stage: None,
            };
            let started = state
                .core
                .instance_action(principal, &env, &id, request, cx.idempotency.as_ref())
                .await;
            let operation = match started {
                Ok(operation) => operation,
                Err(e) if e.kind == ErrorKind::NotFound => {
                    return Err(plain(StatusCode::NOT_FOUND, "VM not found"))
                }
                Err(e) => return Err(failed(what, &e)),
            };
            let operation = cx
                .settle(&operation, timeout(state))
                .await
                .map_err(|e| failed(what, &e))?;
            let response = match operation.status {
                OperationStatus::Succeeded => StatusCode::NO_CONTENT.into_response(),
                _ => unfinished(what, &operation),
            };
            Ok(audited(response, &operation))
        }
        .await,
    )
}

async fn start(
    State(state): State<AppState>,
    Caller(principal): Caller,
    id: Result<ApiPath<String>, ApiError>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let action = (Method::GET, BulkAction::Start, "Failed to start VM");
    act(&state, &principal, id, query, &headers, action).await
}

async fn stop(
    State(state): State<AppState>,
    Caller(principal): Caller,
    id: Result<ApiPath<String>, ApiError>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let action = (Method::GET, BulkAction::Stop, "Failed to stop VM");
    act(&state, &principal, id, query, &headers, action).await
}

async fn delete(
    State(state): State<AppState>,
    Caller(principal): Caller,
    id: Result<ApiPath<String>, ApiError>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let action = (Method::DELETE, BulkAction::Terminate, "Failed to delete VM");
    act(&state, &principal, id, query, &headers, action).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_read_as_people_write_it() {
        let script = "#cloud-config\nruncmd:\n  - echo hello from a long enough line to be wrapped by base64\n";
        let b64 = base64::engine::general_purpose::STANDARD.encode(script);
        let wrapped: String = b64
            .as_bytes()
            .chunks(76)
            .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
            .collect();
        assert_eq!(decode_base64(&wrapped).unwrap(), script.as_bytes());
        let unpadded = b64.trim_end_matches('=');
        assert_ne!(
            unpadded, b64,
            "the example needs padding to test its absence"
        );
        assert_eq!(decode_base64(unpadded).unwrap(), script.as_bytes());
        assert_eq!(decode_base64("not base64!"), None);
    }

    #[test]
    fn cloud_credentials_are_told_from_tokens() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert!(is_cloud_credential(&b64("AKIAEXAMPLE:secret\n")));
        assert!(is_cloud_credential(&b64(
            r#"{"access_key": "AKIA", "secret": "s"}"#
        )));
        assert!(!is_cloud_credential(&overcast_core::auth::new_secret()));
        assert!(!is_cloud_credential(&b64("no colon here")));
    }

    #[test]
    fn states_read_as_cloudmux_words() {
        assert_eq!(status_word(InstanceState::Pending), "starting");
        assert_eq!(status_word(InstanceState::Stopped), "ready");
        assert_eq!(status_word(InstanceState::Terminating), "unknown");
    }
}
