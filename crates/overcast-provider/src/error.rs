//! The error a provider reports: a class the core maps to the public error, overcast's
//! code for it, and the backend's own code and request id for the operation record.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderErrorKind {
    NotFound,
    InvalidInput,
    /// Wrong state or a clash, e.g. an instance that is not stopped.
    Conflict,
    /// The backend's credentials may not do this.
    Denied,
    /// The backend throttled us past the retries.
    Throttled,
    /// The backend has no capacity for the request.
    Capacity,
    /// The host has no room for the request (memory, disk) and will not by retrying.
    NoRoom,
    /// The backend cannot be reached.
    Unavailable,
    /// The backend did not answer in time.
    Timeout,
    /// The backend refused for another reason.
    Refused,
    /// A byte range outside the object.
    RangeNotSatisfiable,
    /// The provider does not offer this.
    Unsupported,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderError {
    pub kind: ProviderErrorKind,
    /// overcast's stable code, e.g. `instance_not_found`.
    pub code: &'static str,
    /// A message for people; never credentials.
    pub message: String,
    /// For bad input: the field of the overcast request at fault.
    pub field: Option<&'static str>,
    /// The backend's own error code, e.g. `InvalidInstanceID.NotFound`.
    pub backend_code: Option<String>,
    /// The backend's request id, for support cases.
    pub request_id: Option<String>,
}

impl ProviderError {
    pub fn new(kind: ProviderErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        ProviderError {
            kind,
            code,
            message: message.into(),
            field: None,
            backend_code: None,
            request_id: None,
        }
    }

    pub fn with_field(mut self, field: &'static str) -> Self {
        self.field = Some(field);
        self
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(code) = &self.backend_code {
            write!(f, " ({code}")?;
            if let Some(id) = &self.request_id {
                write!(f, ", request {id}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl std::error::Error for ProviderError {}
