//! Request extractors that answer bad input the overcast way: a 400 naming the field.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use overcast_core::auth::Principal;
use overcast_core::Idempotency;
use overcast_types::{Error, Operation, OperationStatus};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Duration;

use crate::http::family::AuditedOperation;
use crate::native::error::{operation_failed, ApiError};
use crate::AppState;

/// A JSON body for a change, with its idempotency key and how long to wait for the
/// operation it starts. An empty body reads as `{}`.
pub struct Mutation<T> {
    pub body: T,
    pub idempotency: Option<Idempotency>,
    pub wait: Duration,
    /// `Prefer: respond-async`: answer 202 at once, however fast the operation is.
    pub respond_async: bool,
}

impl<T> Mutation<T> {
    /// Waits for the operation as this request asked, then answers by it.
    pub async fn answer(
        &self,
        state: &AppState,
        principal: &Principal,
        operation: Operation,
        success_status: StatusCode,
    ) -> Result<Response, ApiError> {
        let operation = state.core.wait(principal, &operation.id, self.wait).await?;
        Ok(self.respond(&operation, success_status, &operation))
    }

    /// Answers this change by its operation: 202 Accepted with `Location` while it goes on
    /// (always, under `Prefer: respond-async`), `success_status` once it has succeeded,
    /// the failure's own status and error (with the operation id) once it has failed, and
    /// 200 with the operation once it has been cancelled.
    pub fn respond(
        &self,
        operation: &Operation,
        success_status: StatusCode,
        body: impl Serialize,
    ) -> Response {
        let status = match operation.status {
            _ if self.respond_async => StatusCode::ACCEPTED,
            OperationStatus::Succeeded => success_status,
            OperationStatus::Failed | OperationStatus::Cancelled => StatusCode::OK,
            OperationStatus::Pending | OperationStatus::Running => StatusCode::ACCEPTED,
        };
        let failed = (status == StatusCode::OK && operation.status == OperationStatus::Failed)
            .then(|| operation_failed(operation))
            .flatten();
        let mut response = failed.unwrap_or_else(|| (status, Json(body)).into_response());
        if status == StatusCode::ACCEPTED {
            if let Ok(location) = HeaderValue::from_str(&format!("/v1/operations/{}", operation.id))
            {
                response.headers_mut().insert(header::LOCATION, location);
            }
        }
        response
            .extensions_mut()
            .insert(AuditedOperation(operation.id.clone()));
        response
    }
}

/// The body of a change that takes none.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoBody {}

impl<T: DeserializeOwned> FromRequest<AppState> for Mutation<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let (mut parts, body) = req.into_parts();
        let respond_async = prefers_async(&parts);
        let wait = if respond_async {
            Duration::ZERO
        } else {
            wait_from(&mut parts, state).await?
        };
        let key = idempotency_key(&parts)?;
        if let Some(content_type) = parts.headers.get(header::CONTENT_TYPE) {
            let ok = content_type
                .to_str()
                .is_ok_and(|v| v.trim_start().starts_with("application/json"));
            if !ok {
                return Err(
                    Error::invalid("content-type", "send the body as application/json").into(),
                );
            }
        }
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|e| Error::invalid("body", format!("cannot read the body: {e}")))?;
        let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        let body = parse_json(text)?;
        let idempotency = key.map(|key| Idempotency {
            key,
            request_hash: request_hash(&parts.method, parts.uri.path(), &bytes),
        });
        Ok(Mutation {
            body,
            idempotency,
            wait,
            respond_async,
        })
    }
}

/// Parses JSON, naming the field at fault (`body.role`) when it cannot.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "body".to_string()
        } else {
            format!("body.{path}")
        };
        let inner = e.into_inner();
        let message = if inner.is_syntax() || inner.is_eof() {
            format!("not valid JSON: {inner}")
        } else {
            inner.to_string()
        };
        Error::invalid(field, message)
    })
}

/// Whether the client asked for `Prefer: respond-async`.
fn prefers_async(parts: &Parts) -> bool {
    parts
        .headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("respond-async"))
        })
}

/// How long a change waits for its operation: `?timeout=SECONDS` (up to the configured
/// max), else the configured default.
async fn wait_from(parts: &mut Parts, state: &AppState) -> Result<Duration, ApiError> {
    let config = state.core.config();
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
        .map_err(|e| Error::invalid("query", format!("cannot read the query: {e}")))?;
    let timeout = pairs
        .into_iter()
        .find(|(k, _)| k == "timeout")
        .map(|(_, v)| v);
    let secs = match timeout {
        None => config.operation_timeout_secs,
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|s| *s <= config.max_operation_timeout_secs)
            .ok_or_else(|| {
                Error::invalid(
                    "timeout",
                    format!(
                        "`{text}` is not a number of seconds from 0 to {}",
                        config.max_operation_timeout_secs
                    ),
                )
            })?,
    };
    Ok(Duration::from_secs(secs))
}

fn idempotency_key(parts: &Parts) -> Result<Option<String>, Error> {
    let Some(value) = parts.headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or("");
    if key.is_empty() || key.len() > 255 || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(Error::invalid(
            "Idempotency-Key",
            "must be 1 to 255 visible ASCII characters",
        ));
    }
    Ok(Some(key.to_string()))
}

/// The same method, path and body bytes hash alike; anything else differs.
fn request_hash(method: &Method, path: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(method.as_str().as_bytes());
    hasher.update(b" ");
    hasher.update(path.as_bytes());
    hasher.update(b"\n");
    hasher.update(body);
    hex::encode(hasher.finalize())
}

/// Query parameters, refusing unknown ones with a 400. `timeout` belongs to every change
/// (see [`Mutation`]) and is left to it.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
                .map_err(|e| Error::invalid("query", format!("cannot read the query: {e}")))?;
        // Written back without `timeout` and read again, so values parse as
        // serde_urlencoded parses them (`true` into a bool, digits into a number).
        let own: Vec<(String, String)> =
            pairs.into_iter().filter(|(k, _)| k != "timeout").collect();
        let query =
            serde_urlencoded::to_string(&own).map_err(|e| Error::internal(e.to_string()))?;
        let value = serde_urlencoded::from_str(&query).map_err(|e| {
            Error::invalid("query", format!("Failed to deserialize query string: {e}"))
        })?;
        Ok(ApiQuery(value))
    }
}

/// Parses an optional query value, naming the parameter when it is malformed.
pub fn parse_param<T: std::str::FromStr>(
    name: &str,
    value: Option<&str>,
    expected: &str,
) -> Result<Option<T>, Error> {
    value
        .map(|v| {
            v.parse::<T>()
                .map_err(|_| Error::invalid(name, format!("`{v}` is not {expected}")))
        })
        .transpose()
}

/// The authenticated caller, for handlers.
pub struct Caller(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Caller)
            .ok_or_else(|| ApiError(Error::unauthenticated("this route needs a token")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use overcast_core::tokens::CreateTokenRequest;

    #[test]
    fn json_errors_name_the_field() {
        let err =
            parse_json::<CreateTokenRequest>(br#"{"org": "acme", "role": "root"}"#).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("body.role"));
        assert!(
            err.message.contains("unknown variant `root`"),
            "{}",
            err.message
        );
        let err = parse_json::<CreateTokenRequest>(br#"{"org": "acme"}"#).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("body"));
        assert!(err.message.contains("missing field `role`"));
        let err =
            parse_json::<CreateTokenRequest>(br#"{"org": "acme", "role": "viewer", "colour": 1}"#)
                .unwrap_err();
        assert!(err.message.contains("unknown field `colour`"));
        let err = parse_json::<CreateTokenRequest>(b"{oops").unwrap_err();
        assert!(err.message.starts_with("not valid JSON"));
    }

    #[test]
    fn requests_hash_by_method_path_and_body() {
        let a = request_hash(&Method::POST, "/v1/tokens", b"{}");
        assert_eq!(a, request_hash(&Method::POST, "/v1/tokens", b"{}"));
        assert_ne!(a, request_hash(&Method::POST, "/v1/tokens", b"{ }"));
        assert_ne!(a, request_hash(&Method::DELETE, "/v1/tokens", b"{}"));
    }
}
