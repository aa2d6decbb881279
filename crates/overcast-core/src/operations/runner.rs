//! The operation runner: runs recorded operations, saves their progress as they go, lets
//! callers wait for them or cancel them, and resumes unfinished ones after a restart.
//!
//! An operation is in the store before its change runs. A change is a sequence of
//! idempotent steps: after a crash the whole change runs again, and every step it had
//! already done either finds its result among the saved ones or does no harm when redone.

use overcast_store::Store;
use overcast_types::{Error, ErrorKind, Operation, OperationError, OperationStatus};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Semaphore};

use super::accounting::counting;
use super::change::Registry;
use super::context::{Handovers, OperationContext};
use crate::environments::Environments;
use crate::errors::store_error;
use crate::ids::now;
use crate::metrics::Metrics;

/// How many operations run at once; the rest wait as `pending`.
const MAX_RUNNING: usize = 64;

/// What the runner knows of an operation it drives.
struct Running {
    finished: watch::Sender<bool>,
    cancelled: Arc<AtomicBool>,
}

/// Drives operations. Cheap to clone.
#[derive(Clone)]
pub struct Runner {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    metrics: Arc<Metrics>,
    environments: Arc<Environments>,
    registry: Registry,
    running: Mutex<HashMap<String, Running>>,
    slots: Semaphore,
    handovers: Handovers,
    given: Handovers,
}

impl Runner {
    pub fn new(
        store: Store,
        metrics: Arc<Metrics>,
        environments: Arc<Environments>,
        registry: Registry,
    ) -> Runner {
        Runner {
            inner: Arc::new(Inner {
                store,
                metrics,
                environments,
                registry,
                running: Mutex::new(HashMap::new()),
                slots: Semaphore::new(MAX_RUNNING),
                handovers: Handovers::default(),
                given: Handovers::default(),
            }),
        }
    }

    /// Starts driving a recorded operation in the background.
    pub fn submit(&self, operation: Operation) {
        let (finished, _) = watch::channel(false);
        let cancelled = Arc::new(AtomicBool::new(operation.cancel_requested));
        self.lock().insert(
            operation.id.clone(),
            Running {
                finished,
                cancelled: cancelled.clone(),
            },
        );
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let id = operation.id.clone();
            let kind = operation.kind.clone();
            let outcome = drive(&inner, operation, cancelled).await;
            if let Err(e) = outcome {
                // The store failed while ending the operation: it stays unfinished in the
                // store and the next start resumes it.
                tracing::error!(operation_id = %id, kind = %kind, error = %e, "operation could not be recorded as ended");
            }
            let running = inner
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            if let Some(running) = running {
                let _ = running.finished.send(true);
            }
        });
    }

    /// Resumes every operation a previous run left pending or running.
    pub async fn resume_unfinished(&self) -> Result<usize, Error> {
        let unfinished = self
            .inner
            .store
            .unfinished_operations()
            .await
            .map_err(store_error)?;
        let n = unfinished.len();
        for operation in unfinished {
            tracing::info!(operation_id = %operation.id, kind = %operation.kind, status = operation.status.as_str(), "resuming operation");
            self.submit(operation);
        }
        Ok(n)
    }

    /// Waits until the operation ends or `timeout` passes, then returns it as it stands.
    pub async fn wait(&self, id: &str, timeout: Duration) -> Result<Operation, Error> {
        // Subscribe before reading, so an end between the two is not missed.
        let mut finished = self.lock().get(id).map(|r| r.finished.subscribe());
        let operation = self.load(id).await?;
        if operation.status.is_final() || timeout.is_zero() {
            return Ok(operation);
        }
        if let Some(rx) = finished.as_mut() {
            let _ = tokio::time::timeout(timeout, rx.wait_for(|done| *done)).await;
        }
        self.load(id).await
    }

    /// Asks an operation to stop. A pending one ends at once; a running one at its
    /// change's next step. An ended one is a conflict.
    pub async fn cancel(&self, id: &str) -> Result<Operation, Error> {
        let requested = self
            .inner
            .store
            .request_cancel(id)
            .await
            .map_err(store_error)?;
        if !requested {
            let operation = self.load(id).await?;
            return Err(Error::conflict(
                "operation_finished",
                format!(
                    "operation {id} has already ended ({})",
                    operation.status.as_str()
                ),
            ));
        }
        if let Some(running) = self.lock().get(id) {
            running.cancelled.store(true, Ordering::SeqCst);
        }
        self.load(id).await
    }

    /// Gives an operation's change a value before the operation is submitted; see
    /// [`OperationContext::take_given`].
    pub(crate) fn give(&self, id: &str, value: String) {
        self.inner.given.put(id, value);
    }

    /// Takes back a value given to an operation that was not made after all.
    pub(crate) fn take_back(&self, id: &str) {
        self.inner.given.take(id);
    }

    /// The secret an operation's change handed over, once.
    pub fn take_handover(&self, id: &str) -> Option<String> {
        self.inner.handovers.take(id)
    }

    async fn load(&self, id: &str) -> Result<Operation, Error> {
        self.inner
            .store
            .operation(id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| Error::not_found("operation", id))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        self.inner.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs one operation to its end and records how it ended.
async fn drive(
    inner: &Inner,
    operation: Operation,
    cancelled: Arc<AtomicBool>,
) -> Result<(), Error> {
    let _slot = inner.slots.acquire().await;
    let id = operation.id.clone();
    let kind = operation.kind.clone();
    let store = &inner.store;
    if cancelled.load(Ordering::SeqCst) && operation.status == OperationStatus::Pending {
        let error = OperationError::from(&Error::cancelled());
        store
            .finish_operation(&id, OperationStatus::Cancelled, Some(&error), now())
            .await
            .map_err(store_error)?;
        inner
            .metrics
            .operation(&kind, OperationStatus::Cancelled.as_str());
        return Ok(());
    }
    if !store.mark_running(&id, now()).await.map_err(store_error)? {
        return Ok(());
    }
    inner
        .metrics
        .operation(&kind, OperationStatus::Running.as_str());
    let Some(executor) = inner.registry.executor(&kind) else {
        let error = OperationError::from(&Error::internal(format!(
            "this server cannot run operations of kind `{kind}`"
        )));
        store
            .finish_operation(&id, OperationStatus::Failed, Some(&error), now())
            .await
            .map_err(store_error)?;
        inner
            .metrics
            .operation(&kind, OperationStatus::Failed.as_str());
        return Ok(());
    };
    let calls = Arc::new(AtomicU64::new(operation.backend_calls));
    let mut cx = OperationContext {
        operation,
        store: store.clone(),
        environments: inner.environments.clone(),
        cancelled,
        handovers: inner.handovers.clone(),
        given: inner.given.clone(),
        calls: calls.clone(),
    };
    let result = counting(calls, executor.run(&mut cx)).await;
    // The last calls may have come after the last saved progress.
    cx.save().await?;
    let (status, error) = match &result {
        Ok(()) => (OperationStatus::Succeeded, None),
        Err(e) if e.is_cancelled() => (OperationStatus::Cancelled, Some(OperationError::from(e))),
        Err(e) => {
            if e.kind == ErrorKind::Internal {
                tracing::error!(operation_id = %id, kind = %kind, error = %e, "operation failed");
            }
            (OperationStatus::Failed, Some(OperationError::from(e)))
        }
    };
    store
        .finish_operation(&id, status, error.as_ref(), now())
        .await
        .map_err(store_error)?;
    inner.metrics.operation(&kind, status.as_str());
    tracing::info!(operation_id = %id, kind = %kind, status = status.as_str(), "operation ended");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operations::Change;
    use overcast_types::{Progress, TargetResult};

    /// Acts on three targets, one step each, counting how often each was acted on. With
    /// `hang_after: n` it stops answering after its n-th step, as a killed process would:
    /// the store keeps the operation `running` with the results saved so far.
    struct ThreeSteps {
        acted: Arc<Mutex<HashMap<String, usize>>>,
        hang_after: usize,
        gate: Option<Arc<tokio::sync::Notify>>,
    }

    #[async_trait::async_trait]
    impl Change for ThreeSteps {
        const KINDS: &'static [&'static str] = &["test.three"];
        type Input = serde_json::Value;

        async fn run(&self, _: Self::Input, step: &mut OperationContext) -> Result<(), Error> {
            step.set_total(3).await?;
            for i in 0..3 {
                let target = format!("t{i}");
                if step.result_for(&target).is_some() {
                    continue;
                }
                if let Some(gate) = &self.gate {
                    gate.notified().await;
                }
                step.check_cancelled()?;
                *self
                    .acted
                    .lock()
                    .unwrap()
                    .entry(target.clone())
                    .or_default() += 1;
                step.record(TargetResult::done(target)).await?;
                if self.hang_after == i + 1 {
                    std::future::pending::<()>().await;
                }
            }
            Ok(())
        }
    }

    async fn store() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        (Store::connect(&url).await.unwrap(), dir)
    }

    fn pending(id: &str) -> Operation {
        let input = serde_json::Value::Null;
        Operation::pending(
            id.into(),
            "test.three",
            "acme",
            "t".into(),
            "ci",
            now(),
            input,
        )
    }

    fn runner(store: &Store, executor: ThreeSteps) -> Runner {
        Runner::new(
            store.clone(),
            Arc::new(Metrics::new()),
            Arc::new(Environments::default()),
            Registry::default().with(executor),
        )
    }

    fn executor(
        hang_after: usize,
        gate: Option<Arc<tokio::sync::Notify>>,
    ) -> (ThreeSteps, Arc<Mutex<HashMap<String, usize>>>) {
        let acted = Arc::new(Mutex::new(HashMap::new()));
        (
            ThreeSteps {
                acted: acted.clone(),
                hang_after,
                gate,
            },
            acted,
        )
    }

    async fn wait_for_done(store: &Store, id: &str, done: u64) {
        for _ in 0..200 {
            if store.operation(id).await.unwrap().unwrap().progress.done == done {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{id} never reached {done} done");
    }

    #[tokio::test]
    async fn an_operation_runs_to_success_and_saves_each_result() {
        let (store, _dir) = store().await;
        let (exec, acted) = executor(0, None);
        let runner = runner(&store, exec);
        store
            .create_operation(&pending("op_1"), None)
            .await
            .unwrap();
        runner.submit(pending("op_1"));
        let op = runner.wait("op_1", Duration::from_secs(5)).await.unwrap();
        assert_eq!(op.status, OperationStatus::Succeeded);
        assert_eq!(op.progress, Progress { done: 3, total: 3 });
        assert_eq!(op.results.len(), 3);
        assert!(op.started_at.is_some() && op.finished_at.is_some());
        assert_eq!(acted.lock().unwrap().values().sum::<usize>(), 3);
    }

    #[tokio::test]
    async fn a_restart_resumes_where_the_crash_left_off_without_redoing_steps() {
        let (store, _dir) = store().await;
        store
            .create_operation(&pending("op_1"), None)
            .await
            .unwrap();
        let (exec, acted) = executor(2, None);
        let crashed = runner(&store, exec);
        crashed.submit(pending("op_1"));
        wait_for_done(&store, "op_1", 2).await;
        let op = store.operation("op_1").await.unwrap().unwrap();
        assert_eq!(op.status, OperationStatus::Running);

        // A new server on the same store finds the operation and finishes it.
        let (exec, acted_again) = executor(0, None);
        let restarted = runner(&store, exec);
        assert_eq!(restarted.resume_unfinished().await.unwrap(), 1);
        let op = restarted
            .wait("op_1", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(op.status, OperationStatus::Succeeded);
        assert_eq!(op.progress, Progress { done: 3, total: 3 });
        let mut first: Vec<_> = acted.lock().unwrap().keys().cloned().collect();
        first.sort();
        assert_eq!(first, ["t0", "t1"]);
        let redone: Vec<_> = acted_again.lock().unwrap().keys().cloned().collect();
        assert_eq!(redone, ["t2"], "the resumed run did only what was left");
    }

    #[tokio::test]
    async fn cancel_stops_a_running_operation_at_its_next_step() {
        let (store, _dir) = store().await;
        let gate = Arc::new(tokio::sync::Notify::new());
        let (exec, acted) = executor(0, Some(gate.clone()));
        let runner = runner(&store, exec);
        store
            .create_operation(&pending("op_1"), None)
            .await
            .unwrap();
        runner.submit(pending("op_1"));
        gate.notify_one();
        wait_for_done(&store, "op_1", 1).await;
        let op = runner.cancel("op_1").await.unwrap();
        assert!(op.cancel_requested);
        gate.notify_one();
        let op = runner.wait("op_1", Duration::from_secs(5)).await.unwrap();
        assert_eq!(op.status, OperationStatus::Cancelled);
        assert_eq!(op.progress.done, 1);
        assert_eq!(acted.lock().unwrap().len(), 1);
        let err = runner.cancel("op_1").await.unwrap_err();
        assert_eq!(err.code, "operation_finished");
    }

    #[tokio::test]
    async fn a_pending_operation_cancelled_before_it_starts_never_runs() {
        let (store, _dir) = store().await;
        let mut op = pending("op_1");
        op.cancel_requested = true;
        store.create_operation(&op, None).await.unwrap();
        let (exec, acted) = executor(0, None);
        let runner = runner(&store, exec);
        runner.resume_unfinished().await.unwrap();
        let op = runner.wait("op_1", Duration::from_secs(5)).await.unwrap();
        assert_eq!(op.status, OperationStatus::Cancelled);
        assert!(acted.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_wait_that_times_out_returns_the_operation_as_it_stands() {
        let (store, _dir) = store().await;
        let gate = Arc::new(tokio::sync::Notify::new());
        let (exec, _) = executor(0, Some(gate.clone()));
        let runner = runner(&store, exec);
        store
            .create_operation(&pending("op_1"), None)
            .await
            .unwrap();
        runner.submit(pending("op_1"));
        let op = runner
            .wait("op_1", Duration::from_millis(100))
            .await
            .unwrap();
        assert!(!op.status.is_final());
        let err = runner.wait("op_404", Duration::ZERO).await.unwrap_err();
        assert_eq!(err.code, "operation_not_found");
    }
}
