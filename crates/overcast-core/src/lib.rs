//! The overcast application: [`Core`], the facade handlers call, and behind it config,
//! environments, authorization, the operation runner and every resource's use cases. It
//! calls providers and the store, and decides everything in between.

mod access;
pub mod access_keys;
mod app;
mod audit;
pub mod auth;
pub mod buckets;
pub mod compute;
pub mod config;
pub mod containers;
pub mod environments;
mod errors;
mod ids;
pub mod image_checks;
pub mod images;
pub mod inventory;
pub mod key_pairs;
pub mod metrics;
pub mod objects;
pub mod operations;
pub mod orchestration;
pub mod parameters;
pub mod secrets;
pub mod security_groups;
pub mod sessions;
#[cfg(test)]
mod sim_tests;
pub mod tags;
pub mod tokens;

pub use app::{
    Bootstrap, Core, EnvironmentReadiness, Idempotency, Readiness, ServerView, ADMIN_ORG,
};
pub use audit::AuditRecord;
pub use ids::{new_id, now};
pub use overcast_store::{AuditFilter, EventFilter, OperationFilter, PageRequest, MAX_PAGE};
