//! What every route family shares: request ids, request metrics, the one status policy,
//! and families themselves (how callers authenticate, the role and audit each route
//! needs, and the error body the family's clients expect).

pub mod family;
pub mod idempotency;
pub mod metrics;
pub mod request_id;
pub mod status;
