//! What a change sees of its operation while it runs: the record and its saved results, the
//! environments and the store, and the means to save progress (under this server's hold),
//! take a value its request gave it, hand a secret to the waiting request and notice a
//! cancel or a hold taken over.

use overcast_store::{Hold, Store, StoreError};
use overcast_types::{Error, ErrorKind, Operation, TargetResult};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::environments::{Environment, Environments};
use crate::errors::store_error;

/// How long a handed-over secret waits for its request before it is dropped.
const HANDOVER_TTL: Duration = Duration::from_secs(300);

/// Secrets passed between a request and its operation's change, by operation id, one way
/// each: a value the request gives the change (a secret's value to store), or one the
/// change hands the request (a private key made by the backend). Kept in memory only,
/// taken once, dropped after a few minutes.
#[derive(Clone, Default)]
pub(crate) struct Handovers(Arc<Mutex<HashMap<String, (Instant, String)>>>);

impl Handovers {
    pub(crate) fn put(&self, operation_id: &str, secret: String) {
        let mut kept = self.0.lock().unwrap_or_else(|p| p.into_inner());
        kept.retain(|_, (at, _)| at.elapsed() < HANDOVER_TTL);
        kept.insert(operation_id.to_string(), (Instant::now(), secret));
    }

    pub(crate) fn take(&self, operation_id: &str) -> Option<String> {
        let mut kept = self.0.lock().unwrap_or_else(|p| p.into_inner());
        kept.remove(operation_id)
            .filter(|(at, _)| at.elapsed() < HANDOVER_TTL)
            .map(|(_, secret)| secret)
    }
}

/// One run of one operation, as its change sees it.
pub struct OperationContext {
    pub(crate) operation: Operation,
    pub(crate) store: Store,
    pub(crate) environments: Arc<Environments>,
    /// This server's hold on the operation; every save is fenced by it.
    pub(crate) hold: Option<Hold>,
    pub(crate) flags: Arc<RunFlags>,
    pub(crate) handovers: Handovers,
    /// Values requests gave their operations' changes.
    pub(crate) given: Handovers,
    /// Backend calls made so far, counted by the call accounting.
    pub(crate) calls: Arc<AtomicU64>,
}

impl OperationContext {
    pub fn operation(&self) -> &Operation {
        &self.operation
    }

    /// The operation's id, which its change writes as the `overcast:operation` tag on what
    /// it makes, so a re-run finds it.
    pub fn operation_id(&self) -> &str {
        &self.operation.id
    }

    /// The environment of that name, as the change's input recorded it.
    pub fn environment(&self, name: &str) -> Result<Arc<Environment>, Error> {
        self.environments.shared(name).cloned()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The operation's input, as its use case recorded it.
    pub(crate) fn input<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_value(self.operation.input.clone()).map_err(|e| {
            Error::internal(format!(
                "operation {} has an unreadable input: {e}",
                self.operation.id
            ))
        })
    }

    /// The saved result for `target`, if an earlier run got that far.
    pub fn result_for(&self, target: &str) -> Option<&TargetResult> {
        self.operation.results.iter().find(|r| r.target == target)
    }

    /// Sets how much of a long transfer is done, in its own units (bytes, say).
    pub async fn set_progress(&mut self, done: u64, total: u64) -> Result<(), Error> {
        self.operation.progress.done = done;
        self.operation.progress.total = total;
        self.save().await
    }

    pub async fn set_total(&mut self, total: u64) -> Result<(), Error> {
        self.operation.progress.total = total;
        self.save().await
    }

    /// Saves one target's result (replacing an earlier one for the same target) and counts
    /// it as done.
    pub async fn record(&mut self, result: TargetResult) -> Result<(), Error> {
        self.record_many(vec![result]).await
    }

    /// Saves several targets' results with one write: a bulk action records a whole batch
    /// at once rather than rewriting the results for every target.
    pub async fn record_many(&mut self, new: Vec<TargetResult>) -> Result<(), Error> {
        let results = &mut self.operation.results;
        for result in new {
            match results.iter_mut().find(|r| r.target == result.target) {
                Some(existing) => *existing = result,
                None => results.push(result),
            }
        }
        let done = results.len() as u64;
        let progress = &mut self.operation.progress;
        progress.done = done;
        progress.total = progress.total.max(done);
        self.save().await
    }

    /// Hands a secret to the request that started this operation, never to the store.
    /// The value the request gave this operation, once. A run resumed after a restart
    /// finds none: values are never stored to make resuming possible.
    pub fn take_given(&self) -> Result<String, Error> {
        self.given.take(&self.operation.id).ok_or_else(|| {
            Error::conflict(
                "value_lost",
                "the value this operation was to store was kept in memory only and is gone \
                 (the server restarted, or the operation waited too long): nothing was \
                 written; send the request again",
            )
        })
    }

    pub fn hand_over(&self, secret: String) {
        self.handovers.put(&self.operation.id, secret);
    }

    /// An error to return when the operation was asked to stop; call between steps.
    pub fn check_cancelled(&self) -> Result<(), Error> {
        self.cancellation().check()
    }

    /// A handle to check for a cancel (or a lost hold) from work that runs beside the
    /// change.
    pub fn cancellation(&self) -> Cancellation {
        Cancellation(self.flags.clone())
    }

    /// Saves the operation as it stands, under this server's hold: a save refused because
    /// another server holds the operation now stops this run; a cancel asked for on any
    /// server is learnt here.
    pub(crate) async fn save(&self) -> Result<(), Error> {
        let saved = self
            .store
            .save_progress(
                &self.operation.id,
                self.hold.as_ref(),
                self.operation.progress,
                &self.operation.results,
                self.calls.load(Ordering::SeqCst),
            )
            .await;
        match saved {
            Ok(saved) => {
                if saved.cancel_requested {
                    self.flags.cancelled.store(true, Ordering::SeqCst);
                }
                Ok(())
            }
            Err(StoreError::Fenced { .. }) => {
                self.flags.lost.store(true, Ordering::SeqCst);
                Err(lease_lost())
            }
            Err(e) => Err(store_error(e)),
        }
    }
}

/// Milliseconds since this process's first look at the clock: a monotonic time that a
/// paused process sees jump, so a hold that ran out meanwhile is noticed.
pub(crate) fn monotonic_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// What a run of an operation must stop for: a cancel, or this server's hold on it gone.
#[derive(Debug)]
pub(crate) struct RunFlags {
    pub(crate) cancelled: AtomicBool,
    /// Another server holds the operation now.
    pub(crate) lost: AtomicBool,
    /// Until when (by [`monotonic_ms`]) the hold lasts without another renewal.
    pub(crate) valid_until: AtomicU64,
}

impl RunFlags {
    /// Flags for a run held until `valid_until` (by [`monotonic_ms`]; `u64::MAX`: a run
    /// no other server can take).
    pub(crate) fn new(cancelled: bool, valid_until: u64) -> Arc<RunFlags> {
        Arc::new(RunFlags {
            cancelled: AtomicBool::new(cancelled),
            lost: AtomicBool::new(false),
            valid_until: AtomicU64::new(valid_until),
        })
    }

    /// Whether this server may no longer act for the operation.
    pub(crate) fn hold_gone(&self) -> bool {
        self.lost.load(Ordering::SeqCst) || monotonic_ms() > self.valid_until.load(Ordering::SeqCst)
    }
}

/// The error a run stops with when another server may hold its operation.
pub(crate) fn lease_lost() -> Error {
    Error::new(
        ErrorKind::Conflict,
        "lease_lost",
        "this server's hold on the operation ran out or was taken over: another server \
         goes on with it",
    )
}

/// Whether an operation was asked to stop, or its run must stop because this server's
/// hold on it is gone (checked before every step, so a paused server does not act again).
#[derive(Clone)]
pub struct Cancellation(pub(super) Arc<RunFlags>);

impl Cancellation {
    /// An error to return when the operation was asked to stop or is no longer this
    /// server's to run.
    pub fn check(&self) -> Result<(), Error> {
        if self.0.hold_gone() {
            Err(lease_lost())
        } else if self.0.cancelled.load(Ordering::SeqCst) {
            Err(Error::cancelled())
        } else {
            Ok(())
        }
    }
}
