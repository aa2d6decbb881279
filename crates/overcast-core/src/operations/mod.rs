//! Operations: every change is a typed [`Change`] registered in one list, recorded in the
//! store before it acts, driven by the [`Runner`], resumable after a restart, and counted
//! in backend calls.

mod accounting;
pub(crate) mod attempts;
mod change;
pub(crate) mod context;
mod runner;

pub use accounting::CallCounter;
pub(crate) use change::register_changes;
pub use change::{Change, InEnvironment, Registered, Registry};
pub use context::{Cancellation, OperationContext};
pub use runner::{Membership, Runner};
