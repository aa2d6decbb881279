//! Middleware: request ids (kept or made, echoed, logged), metrics by declared route, and
//! authentication, authorization and the audit log for every route that needs a token.

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use overcast_core::auth::{required_role, Principal};
use overcast_core::{new_id, AuditRecord};
use overcast_types::Error;
use std::time::Instant;
use tracing::Instrument;

use crate::error::ApiError;
use crate::AppState;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled, for error bodies and logs.
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

/// Routes anyone may call.
const PUBLIC_ROUTES: [&str; 3] = ["/healthz", "/readyz", "/version"];

/// Routes anyone may call when `public_docs` is on.
fn is_docs_route(route: &str) -> bool {
    route == "/openapi.json" || route == "/docs" || route.starts_with("/docs/")
}

/// Keeps a sane `x-request-id` from the client or makes one, runs the request inside a
/// span carrying it, echoes it, and logs one line per request (never the query string,
/// headers or bodies, which may hold secrets).
pub async fn request_id(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| new_id("req"));
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let span = tracing::info_span!("request", request_id = %id);
    let started = Instant::now();
    let mut response = REQUEST_ID
        .scope(id.clone(), next.run(req))
        .instrument(span.clone())
        .await;
    span.in_scope(|| {
        tracing::info!(
            %method,
            %path,
            status = response.status().as_u16(),
            ms = started.elapsed().as_millis() as u64,
            "request"
        )
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// Counts each request by its declared route, method and status.
pub async fn metrics(
    State(state): State<AppState>,
    matched: MatchedPath,
    req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let response = next.run(req).await;
    state.core.metrics().http_request(
        matched.as_str(),
        method.as_str(),
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// The operation a change started, set by its handler for the audit log.
#[derive(Debug, Clone)]
pub struct AuditedOperation(pub String);

/// Checks the bearer token and the role the route needs, then records every
/// authenticated change (allowed or denied) in the audit log.
pub async fn authorize(
    State(state): State<AppState>,
    matched: MatchedPath,
    mut req: Request,
    next: Next,
) -> Response {
    let route = matched.as_str().to_string();
    if PUBLIC_ROUTES.contains(&route.as_str())
        || (state.core.config().public_docs && is_docs_route(&route))
    {
        return next.run(req).await;
    }
    let principal = match bearer(&req) {
        None => Err(Error::unauthenticated(
            "this route needs a token: send `Authorization: Bearer <token>`",
        )),
        Some(secret) => state.core.authenticate(secret).await,
    };
    let principal = match principal {
        Ok(principal) => principal,
        Err(e) => return ApiError(e).into_response(),
    };
    let method = req.method().clone();
    let target = req.uri().path().to_string();
    let response = match principal.require(required_role(method.as_str(), &route)) {
        Err(e) => ApiError(e).into_response(),
        Ok(()) => {
            req.extensions_mut().insert(principal.clone());
            next.run(req).await
        }
    };
    if !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS) {
        let record = AuditRecord {
            method: method.to_string(),
            route,
            target,
            operation_id: response
                .extensions()
                .get::<AuditedOperation>()
                .map(|o| o.0.clone()),
            status_code: response.status().as_u16(),
            request_id: current_request_id(),
        };
        if let Err(e) = state.core.record_audit(&principal, record).await {
            tracing::error!(error = %e, "the audit log could not record a change");
        }
    }
    response
}

fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, secret) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !secret.trim().is_empty()).then(|| secret.trim())
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

/// The method-not-allowed answer (405) in the overcast error shape.
pub async fn method_not_allowed(method: Method) -> Response {
    let mut response = ApiError(Error::new(
        overcast_types::ErrorKind::InvalidInput,
        "method_not_allowed",
        format!("{method} is not allowed on this route"),
    ))
    .into_response();
    *response.status_mut() = axum::http::StatusCode::METHOD_NOT_ALLOWED;
    response
}

/// The unknown-route answer in the overcast error shape.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError(Error::new(
        overcast_types::ErrorKind::NotFound,
        "route_not_found",
        format!("no route {}", uri.path()),
    ))
}
