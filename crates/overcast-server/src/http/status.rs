//! The one status policy: the HTTP status of each kind of error, for every family alike.

use axum::http::StatusCode;
use overcast_types::ErrorKind;

pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Unsupported => StatusCode::BAD_REQUEST,
        ErrorKind::BackendRefused => StatusCode::BAD_GATEWAY,
        ErrorKind::BackendUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::BackendTimeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
        ErrorKind::InsufficientCapacity => StatusCode::INSUFFICIENT_STORAGE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}
