//! How the native family answers an [`Error`]: the status from the one status policy and
//! the JSON shape `{"error": {"code", "message", "field", "request_id"}}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use overcast_types::{Error, Operation};
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::request_id::current_request_id;
use crate::http::status::status_of;

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable, e.g. `invalid_input`, `operation_not_found`.
    pub code: String,
    pub message: String,
    /// For bad input: the field at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The request's id, as in the `x-request-id` header and the server log.
    pub request_id: String,
    /// When a change failed while the request waited: its operation, which says what was
    /// and was not done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(self.0, None)
    }
}

/// The answer to a change whose operation failed while the request waited: the failure's
/// own status and error, with the operation's id.
pub fn operation_failed(operation: &Operation) -> Option<Response> {
    let failure = operation.error.as_ref()?;
    Some(error_response(failure.into(), Some(operation.id.clone())))
}

impl ErrorBody {
    fn of(e: Error, operation_id: Option<String>) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: e.code,
                message: e.message,
                field: e.field,
                request_id: current_request_id(),
                operation_id,
            },
        }
    }
}

impl From<Error> for ErrorBody {
    fn from(e: Error) -> Self {
        ErrorBody::of(e, None)
    }
}

fn error_response(e: Error, operation_id: Option<String>) -> Response {
    {
        let status = status_of(e.kind);
        let retry_after_secs = e.retry_after_secs;
        let body = ErrorBody::of(e, operation_id);
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
