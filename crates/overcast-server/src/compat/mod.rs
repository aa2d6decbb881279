//! The compatibility families: the routes of the tools overcast replaces (CloudMan, the
//! Cloud VM API, the Flint EC2 connector, ecs-api), so their clients switch by changing only the URL
//! and the token. Each is a thin adapter: it reads its tool's request format, calls the
//! same core use cases as `/v1` (so every change is an operation, audited, idempotent and
//! scoped to the token's org), and answers in its tool's shapes and texts.

pub mod cloudman;
pub mod ec2;
pub mod ecs_api;
pub mod flint;
pub mod lenient;
pub mod vm_api;

use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::Router;
use overcast_core::auth::Principal;
use overcast_core::Idempotency;
use overcast_types::{Error, Operation};
use std::time::Duration;

use crate::http::family::AuditedOperation;
use crate::http::idempotency::idempotency_of;
use crate::{family_routes, AppState};

/// Every compatibility family's routes, each behind its own authentication and policy.
pub fn routes(state: &AppState) -> Router<AppState> {
    family_routes(cloudman::routes(), state, cloudman::CloudMan)
        .merge(family_routes(vm_api::routes(), state, vm_api::VmApi))
        .merge(family_routes(flint::routes(), state, flint::Flint))
        .merge(family_routes(ecs_api::routes(), state, ecs_api::EcsApi))
        .merge(family_routes(ec2::routes(), state, ec2::Ec2))
}

/// What a change through a compatibility route needs besides its own fields: who asks,
/// and the idempotency of the request (an `Idempotency-Key` header works here as on `/v1`).
pub struct ChangeContext<'a> {
    pub state: &'a AppState,
    pub principal: &'a Principal,
    pub idempotency: Option<Idempotency>,
}

impl<'a> ChangeContext<'a> {
    pub fn new(
        state: &'a AppState,
        principal: &'a Principal,
        headers: &HeaderMap,
        method: &Method,
        path: &str,
        body: &[u8],
    ) -> Result<Self, Error> {
        Ok(ChangeContext {
            state,
            principal,
            idempotency: idempotency_of(headers, method, path, body)?,
        })
    }

    /// The operation once it has ended, or as it stands after `wait`.
    pub async fn settle(&self, operation: &Operation, wait: Duration) -> Result<Operation, Error> {
        self.state
            .core
            .wait(self.principal, &operation.id, wait)
            .await
    }

    /// How long a change waits for its operation when its tool gives no timeout: the
    /// server's configured wait.
    pub fn default_wait(&self) -> Duration {
        Duration::from_secs(self.state.core.config().operation_timeout_secs)
    }
}

/// Links an answer to the operation it started, for the audit log.
pub fn audited(mut response: Response, operation: &Operation) -> Response {
    response
        .extensions_mut()
        .insert(AuditedOperation(operation.id.clone()));
    response
}

/// The targets an operation acted on, in its record's order.
pub fn targets_of(operation: &Operation) -> Vec<String> {
    operation.results.iter().map(|r| r.target.clone()).collect()
}
