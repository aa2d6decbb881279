//! How the layers below core report failure, as the API shows it: a provider's error keeps
//! its class, code and field; a store fault is logged and answered without internals.

use overcast_provider::{ProviderError, ProviderErrorKind};
use overcast_store::StoreError;
use overcast_types::{Error, ErrorKind};

/// A provider error as the API shows it: the class decides the status; the message keeps
/// the backend's code and request id.
pub(crate) fn provider_error(e: ProviderError) -> Error {
    let message = e.to_string();
    let mut error = match e.kind {
        ProviderErrorKind::NotFound => Error::new(ErrorKind::NotFound, e.code, message),
        ProviderErrorKind::InvalidInput => Error::new(ErrorKind::InvalidInput, e.code, message),
        ProviderErrorKind::Conflict => Error::new(ErrorKind::Conflict, e.code, message),
        ProviderErrorKind::Denied => Error::new(ErrorKind::Forbidden, e.code, message),
        ProviderErrorKind::Throttled | ProviderErrorKind::Unavailable => {
            Error::unavailable(e.code, message, 5)
        }
        ProviderErrorKind::Capacity => Error::unavailable(e.code, message, 30),
        ProviderErrorKind::NoRoom => Error::new(ErrorKind::InsufficientCapacity, e.code, message),
        ProviderErrorKind::Timeout => Error::new(ErrorKind::BackendTimeout, e.code, message),
        ProviderErrorKind::Refused => Error::new(ErrorKind::BackendRefused, e.code, message),
        ProviderErrorKind::Unsupported => Error::new(ErrorKind::Unsupported, e.code, message),
        ProviderErrorKind::RangeNotSatisfiable => {
            Error::new(ErrorKind::RangeNotSatisfiable, e.code, message)
        }
    };
    error.field = e.field.map(str::to_string);
    error
}

/// A store fault as the API shows it: logged in full, answered without internals.
pub(crate) fn store_error(e: StoreError) -> Error {
    tracing::error!(error = %e, "store error");
    Error::internal("the database failed; see the server log")
}
