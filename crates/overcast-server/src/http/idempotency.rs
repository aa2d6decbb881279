//! Idempotency keys, for every family alike: a retried change with the same key answers
//! the operation the first one started, and the same key on another request is refused.

use axum::http::{HeaderMap, Method};
use overcast_core::Idempotency;
use overcast_types::Error;
use sha2::{Digest, Sha256};

/// The `Idempotency-Key` header, checked.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Error> {
    let Some(value) = headers.get("idempotency-key") else {
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
pub fn request_hash(method: &Method, path: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(method.as_str().as_bytes());
    hasher.update(b" ");
    hasher.update(path.as_bytes());
    hasher.update(b"\n");
    hasher.update(body);
    hex::encode(hasher.finalize())
}

/// The idempotency of a change: its key, and the hash of what the request asked.
pub fn idempotency_of(
    headers: &HeaderMap,
    method: &Method,
    path: &str,
    body: &[u8],
) -> Result<Option<Idempotency>, Error> {
    Ok(idempotency_key(headers)?.map(|key| Idempotency {
        key,
        request_hash: request_hash(method, path, body),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_hash_by_method_path_and_body() {
        let a = request_hash(&Method::POST, "/v1/tokens", b"{}");
        assert_eq!(a, request_hash(&Method::POST, "/v1/tokens", b"{}"));
        assert_ne!(a, request_hash(&Method::POST, "/v1/tokens", b"{ }"));
        assert_ne!(a, request_hash(&Method::DELETE, "/v1/tokens", b"{}"));
    }
}
