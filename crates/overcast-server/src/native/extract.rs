//! Request extractors that answer bad input the overcast way: a 400 naming the field.

use axum::body::Bytes;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use overcast_core::auth::Principal;
use overcast_core::Idempotency;
use overcast_types::{Error, Operation, OperationStatus};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::http::family::AuditedOperation;
use crate::http::idempotency::{idempotency_key, request_hash};
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
        let (parts, body) = req.into_parts();
        let respond_async = prefers_async(&parts);
        let wait = if respond_async {
            Duration::ZERO
        } else {
            wait_from(&parts, state, state.core.config().operation_timeout_secs)?
        };
        let key = idempotency_key(&parts.headers)?;
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

/// Parses JSON, naming the field at fault (`body.role`) when it cannot, or when a string in
/// it holds what text may not (see [`body_text_char`]).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let tree: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::invalid("body", format!("not valid JSON: {e}")))?;
    check_body_text(&tree, "body")?;
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = match e.path().to_string() {
            path if path == "." => "body".to_string(),
            path => format!("body.{path}"),
        };
        Error::invalid(field, e.into_inner().to_string())
    })
}

/// Every string of a body, keys too, holds only [`body_text_char`]s; a refusal names the
/// field (`body.tags.team`, `body.ids[2]`).
fn check_body_text(value: &serde_json::Value, field: &str) -> Result<(), Error> {
    use serde_json::Value;
    let refuse = |field: &str| {
        Err(Error::invalid(
            field,
            "must not hold control characters (other than tab and line breaks) or Unicode noncharacters",
        ))
    };
    match value {
        Value::String(text) if !text.chars().all(body_text_char) => refuse(field),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| check_body_text(item, &format!("{field}[{i}]"))),
        Value::Object(members) => members.iter().try_for_each(|(key, member)| {
            let field = format!("{field}.{key}");
            if key.chars().all(body_text_char) {
                check_body_text(member, &field)
            } else {
                refuse(&field)
            }
        }),
        _ => Ok(()),
    }
}

/// Whether a character may stand in a body's text. Backends speak XML or put text in
/// URLs and headers, which cannot carry control characters (XML keeps tab and line
/// breaks) or Unicode noncharacters; refused here, they are a 400 naming the field rather
/// than a backend's fault.
fn body_text_char(c: char) -> bool {
    (!c.is_control() || matches!(c, '\t' | '\n' | '\r')) && !is_noncharacter(c)
}

/// Whether a character may stand in a name or an id (a path or query parameter): as in a
/// body, and no line breaks or tabs either.
fn name_char(c: char) -> bool {
    !c.is_control() && !is_noncharacter(c)
}

/// U+FDD0 to U+FDEF and the last two code points of every plane.
fn is_noncharacter(c: char) -> bool {
    matches!(c as u32, 0xFDD0..=0xFDEF) || (c as u32) & 0xFFFE == 0xFFFE
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

/// How long a request waits for its operation: `?timeout=SECONDS` (up to the configured
/// max), else `default_secs`.
fn wait_from(parts: &Parts, state: &AppState, default_secs: u64) -> Result<Duration, ApiError> {
    let config = state.core.config();
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
        .map_err(|e| Error::invalid("query", format!("cannot read the query: {e}")))?;
    let timeout = pairs
        .into_iter()
        .find(|(k, _)| k == "timeout")
        .map(|(_, v)| v);
    let secs = match timeout {
        None => default_secs,
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

/// How long a read of an operation waits for it to end: `?timeout=SECONDS` (up to the
/// configured max), else not at all. It ends the wait wherever the operation runs.
pub struct WaitFor(pub Duration);

impl FromRequestParts<AppState> for WaitFor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(WaitFor(wait_from(parts, state, 0)?))
    }
}

/// Query parameters, refusing unknown ones, and values holding a character that is not a
/// [`name_char`], with a 400. `timeout` belongs to every change (see [`Mutation`]) and is
/// left to it.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
                .map_err(|e| Error::invalid("query", format!("cannot read the query: {e}")))?;
        for (key, value) in &pairs {
            check_name_text(key, key)?;
            check_name_text(key, value)?;
        }
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

/// Path parameters, refusing with a 400 naming the parameter what no name or id holds:
/// bytes that are not UTF-8, nothing at all, or a character that is not a [`name_char`].
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    // The one place that reads axum's `Path`, which clippy.toml keeps handlers from.
    #[allow(clippy::disallowed_types)]
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        // axum's `Path` answers its refusals as plain text; here they take the family's
        // shape.
        let value = match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => value,
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                return Err(match e.kind() {
                    ErrorKind::InvalidUtf8InPathParam { key } => {
                        Error::invalid(key, "is not UTF-8 once percent-decoded")
                    }
                    _ => Error::invalid("path", e.body_text()),
                }
                .into())
            }
            Err(e) => return Err(Error::invalid("path", e.body_text()).into()),
        };
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| Error::invalid("path", e.body_text()))?;
        for (name, value) in &params {
            check_path_param(name, value)?;
        }
        Ok(ApiPath(value))
    }
}

/// A path parameter's value as a name or id: not empty, and only [`name_char`]s.
fn check_path_param(name: &str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        Err(Error::invalid(name, "must not be empty"))
    } else {
        check_name_text(name, value)
    }
}

/// A parameter's value holds only [`name_char`]s.
fn check_name_text(name: &str, value: &str) -> Result<(), Error> {
    if value.chars().all(name_char) {
        Ok(())
    } else {
        Err(Error::invalid(
            name,
            "must not hold control characters or Unicode noncharacters",
        ))
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
        assert_eq!(err.field.as_deref(), Some("body"));
    }

    #[test]
    fn text_no_backend_can_carry_is_refused_naming_the_field() {
        let field = |body: &str| {
            parse_json::<serde_json::Value>(body.as_bytes())
                .unwrap_err()
                .field
                .unwrap()
        };
        assert_eq!(field(r#"{"name": "a\u0016b"}"#), "body.name");
        assert_eq!(field(r#"{"ids": ["i-1", "i-\ufffe"]}"#), "body.ids[1]");
        assert_eq!(field(r#"{"tags": {"a\u0085": "x"}}"#), "body.tags.a\u{85}");
        parse_json::<serde_json::Value>(br##"{"user_data": "#!/bin/sh\n\techo hi\r\n"}"##).unwrap();

        assert!(check_path_param("id", "i-0123 ¼").is_ok());
        for refused in [
            "",
            "i-\t",
            "i-\u{1b}",
            "i-\u{7f}",
            "i-\u{85}",
            "i-\u{fdd0}",
            "i-\u{1fffe}",
        ] {
            let e = check_path_param("id", refused).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("id"), "{refused:?}");
        }
    }
}

/// A read answered from the inventory unless the caller asks for the backend.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FreshQuery {
    /// Read the backend now rather than answer from the inventory; a listing's `as_of`
    /// says when it was read.
    #[serde(default)]
    pub fresh: bool,
}

/// A listing answered from the inventory: of one region or all, or read afresh.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InventoryQuery {
    /// Only this region; default: all of the environment's.
    pub region: Option<String>,
    /// Read the backend now rather than answer from the inventory; the answer's `as_of`
    /// says when it was read.
    #[serde(default)]
    pub fresh: bool,
}
