//! The public error of overcast: a kind that decides the HTTP status, a stable code, a
//! message for people and, for bad input, the field at fault.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The class of an error. The server maps each kind to exactly one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request is malformed or a value is out of range (400).
    InvalidInput,
    /// No token, or a token that is unknown, revoked or expired (401).
    Unauthenticated,
    /// The token's role is too weak for the action (403).
    Forbidden,
    /// Unknown, or not visible to the caller's org (404).
    NotFound,
    /// Wrong state, or a clash with an earlier request (409).
    Conflict,
    /// Too many requests (429).
    RateLimited,
    /// The provider does not offer this capability (400: the request cannot work there).
    Unsupported,
    /// The backend refused the call (502).
    BackendRefused,
    /// The backend cannot be reached now (503, with Retry-After).
    BackendUnavailable,
    /// The backend did not answer in time (504).
    BackendTimeout,
    /// The requested byte range lies outside the object (416).
    RangeNotSatisfiable,
    /// The host has no room for the request (507).
    InsufficientCapacity,
    /// A fault of overcast itself (500). Never caused by bad input.
    Internal,
}

/// An error as the API reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Error {
    pub kind: ErrorKind,
    /// Stable, machine-readable, snake_case: `instance_not_found`, `invalid_input`, ...
    pub code: String,
    pub message: String,
    /// For bad input: the field at fault, as a dotted path (`tags.env`, `body.role`).
    pub field: Option<String>,
    /// For `BackendUnavailable` and `RateLimited`: when to try again.
    pub retry_after_secs: Option<u64>,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{field}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl Error {
    pub fn new(kind: ErrorKind, code: impl Into<String>, message: impl Into<String>) -> Self {
        Error {
            kind,
            code: code.into(),
            message: message.into(),
            field: None,
            retry_after_secs: None,
        }
    }

    /// Bad input in `field`, saying why.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error {
            field: Some(field.into()),
            ..Error::new(ErrorKind::InvalidInput, "invalid_input", reason)
        }
    }

    /// `what` (e.g. `operation`) with id `id` does not exist or is not the caller's.
    pub fn not_found(what: &str, id: &str) -> Self {
        Error::new(
            ErrorKind::NotFound,
            format!("{what}_not_found"),
            format!("{what} `{id}` not found"),
        )
    }

    pub fn conflict(code: impl Into<String>, message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Conflict, code, message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Unauthenticated, "unauthenticated", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Forbidden, "forbidden", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Internal, "internal", message)
    }

    /// The error an operation ends with when it was asked to stop.
    pub fn cancelled() -> Self {
        Error::conflict("operation_cancelled", "the operation was cancelled")
    }

    pub fn is_cancelled(&self) -> bool {
        self.code == "operation_cancelled"
    }

    pub fn unavailable(
        code: impl Into<String>,
        message: impl Into<String>,
        retry_after_secs: u64,
    ) -> Self {
        Error {
            retry_after_secs: Some(retry_after_secs),
            ..Error::new(ErrorKind::BackendUnavailable, code, message)
        }
    }
}
