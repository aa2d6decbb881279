//! Backend-call accounting: every call a provider reports goes to the metrics (by provider,
//! action, region and outcome) and to the counter of the operation whose change made it;
//! every attempt on the wire goes to the metrics.

use overcast_provider::{Attempt, CallObserver};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::metrics::Metrics;

tokio::task_local! {
    /// The backend-call counter of the operation the current task runs.
    static CALLS: Arc<AtomicU64>;
}

/// Runs a change with `calls` as its operation's counter.
pub(crate) async fn counting<F: Future>(calls: Arc<AtomicU64>, work: F) -> F::Output {
    CALLS.scope(calls, work).await
}

/// What providers report their calls to: the metrics, and the running operation's counter.
pub struct CallCounter {
    metrics: Arc<Metrics>,
}

impl CallCounter {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        CallCounter { metrics }
    }
}

impl CallObserver for CallCounter {
    fn backend_call(&self, provider: &str, action: &str, region: &str, outcome: &str) {
        self.metrics.backend_call(provider, action, region, outcome);
        // Calls made outside an operation (a listing, a plan) count only in the metrics.
        let _ = CALLS.try_with(|calls| calls.fetch_add(1, Ordering::SeqCst));
    }

    fn backend_attempt(&self, attempt: &Attempt<'_>) {
        self.metrics.backend_attempt(attempt);
    }
}
