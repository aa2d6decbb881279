//! Request metrics: each request counted and timed by its declared route, method and status.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;

use crate::AppState;

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
