//! The native `/v1` routes and the always-there system routes. Handlers parse, call the
//! core, and shape the answer; they decide nothing themselves.

pub mod audit;
pub mod environments;
pub mod operations;
pub mod system;
pub mod tokens;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use overcast_types::{Error, Operation, OperationStatus};
use serde::Serialize;
use time::OffsetDateTime;

use crate::extract::parse_param;
use crate::middleware::AuditedOperation;

/// Listings return this many items unless `limit` says otherwise.
const DEFAULT_PAGE: u32 = 50;

/// Answers a change by its operation: `success_status` once it has succeeded, 200 once it
/// has failed or been cancelled (the body says which and why), else 202 Accepted with
/// `Location: /v1/operations/{id}` while it goes on.
pub fn operation_response(
    operation: &Operation,
    success_status: StatusCode,
    body: impl Serialize,
) -> Response {
    let status = match operation.status {
        OperationStatus::Succeeded => success_status,
        OperationStatus::Failed | OperationStatus::Cancelled => StatusCode::OK,
        OperationStatus::Pending | OperationStatus::Running => StatusCode::ACCEPTED,
    };
    let mut response = (status, Json(body)).into_response();
    if status == StatusCode::ACCEPTED {
        if let Ok(location) = HeaderValue::from_str(&format!("/v1/operations/{}", operation.id)) {
            response.headers_mut().insert(header::LOCATION, location);
        }
    }
    response
        .extensions_mut()
        .insert(AuditedOperation(operation.id.clone()));
    response
}

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
