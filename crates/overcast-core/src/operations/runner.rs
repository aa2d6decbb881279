//! The operation runner: runs recorded operations, saves their progress as they go, lets
//! callers wait for them or cancel them from any server, and takes over unfinished ones.
//!
//! An operation is in the store before its change runs. A change is a sequence of
//! idempotent steps: after a crash the whole change runs again, and every step it had
//! already done either finds its result among the saved ones or does no harm when redone.
//!
//! Several servers may share one database. Each operation is held by one server at a time
//! under a lease it renews by heartbeat; a server claims operations nobody holds and ones
//! whose holder's lease ran out (a dead or stuck server's). Every save names the hold's
//! fencing token, so a server whose hold was taken over cannot write, and a run checks its
//! hold before every step, so it stops rather than act again. Cancels and ends travel
//! between servers through the store (PostgreSQL's `LISTEN/NOTIFY` wakes the others at
//! once; a bounded poll covers a missed wake-up).

use overcast_store::{Hold, Store};
use overcast_types::{Error, ErrorKind, Operation, OperationError, OperationStatus};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, Notify, Semaphore};

use super::accounting::counting;
use super::change::Registry;
use super::context::{monotonic_ms, Handovers, OperationContext, RunFlags};
use crate::environments::Environments;
use crate::errors::store_error;
use crate::ids::now;
use crate::metrics::{LeaseEvent, Metrics};

/// How many operations run at once; the rest wait as `pending`.
const MAX_RUNNING: usize = 64;
/// How often a wait looks at the store when no wake-up came.
const WAIT_POLL: Duration = Duration::from_secs(1);

/// This server among those sharing its database.
#[derive(Debug, Clone)]
pub struct Membership {
    /// Unique per server process.
    pub id: String,
    /// How long a hold lasts without renewal; a dead server's operations are taken over
    /// about this long after its last heartbeat.
    pub lease: Duration,
    /// The only server on its database (SQLite): at its start it takes over every
    /// unfinished operation at once, since no other server can be running one.
    pub alone: bool,
    /// Environments another server drives: their operations are never claimed here.
    pub elsewhere: Vec<String>,
}

/// What the runner knows of an operation it drives.
struct Running {
    flags: Arc<RunFlags>,
    hold: Hold,
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
    membership: Membership,
    running: Mutex<HashMap<String, Running>>,
    slots: Semaphore,
    handovers: Handovers,
    given: Handovers,
    /// Ids of operations that ended, here or (through the listener) on another server.
    ended: broadcast::Sender<String>,
    /// Wakes the heartbeat early (a slot came free).
    wake: Notify,
    /// Set when the server leaves: its heartbeat stops.
    leaving: std::sync::atomic::AtomicBool,
}

impl Runner {
    pub fn new(
        store: Store,
        metrics: Arc<Metrics>,
        environments: Arc<Environments>,
        registry: Registry,
        membership: Membership,
    ) -> Runner {
        Runner {
            inner: Arc::new(Inner {
                store,
                metrics,
                environments,
                registry,
                membership,
                running: Mutex::new(HashMap::new()),
                slots: Semaphore::new(MAX_RUNNING),
                handovers: Handovers::default(),
                given: Handovers::default(),
                ended: broadcast::channel(1024).0,
                wake: Notify::new(),
                leaving: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// This server's id and lease.
    pub fn membership(&self) -> &Membership {
        &self.inner.membership
    }

    /// When a hold taken now runs out.
    pub fn lease_until(&self) -> time::OffsetDateTime {
        now() + self.inner.membership.lease
    }

    /// Starts driving an operation this server holds, in the background.
    pub fn submit(&self, operation: Operation, hold: Hold) {
        let valid_until = monotonic_ms() + self.inner.membership.lease.as_millis() as u64;
        let flags = RunFlags::new(operation.cancel_requested, valid_until);
        self.lock().insert(
            operation.id.clone(),
            Running {
                flags: flags.clone(),
                hold: hold.clone(),
            },
        );
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let id = operation.id.clone();
            let kind = operation.kind.clone();
            let outcome = drive(&inner, operation, hold, flags).await;
            if let Err(e) = outcome {
                // The store failed while ending the operation: it stays unfinished in the
                // store, and it is taken over once its lease runs out.
                tracing::error!(operation_id = %id, kind = %kind, error = %e, "operation could not be recorded as ended");
            }
            inner
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            let _ = inner.ended.send(id);
            inner.wake.notify_one();
        });
    }

    /// Joins the servers on the store: records this one, takes what it may run (on its
    /// own, every unfinished operation; beside others, what nobody holds), and keeps its
    /// holds alive with a heartbeat from then on. Answers how many operations it took.
    pub async fn join(&self) -> Result<usize, Error> {
        let inner = &self.inner;
        let me = &inner.membership;
        let record = overcast_store::ServerRecord {
            id: me.id.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            host: crate::config::host_name(),
            pid: std::process::id(),
            started_at: now(),
            heartbeat_at: now(),
        };
        inner
            .store
            .register_server(&record)
            .await
            .map_err(store_error)?;
        let taken = self.claim(me.alone).await?;
        let heartbeat = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                let Some(inner) = heartbeat.upgrade() else {
                    return;
                };
                if inner.leaving.load(Ordering::SeqCst) {
                    return;
                }
                let tick = inner.membership.lease / 3;
                tokio::select! {
                    _ = tokio::time::sleep(tick) => {}
                    _ = inner.wake.notified() => {}
                }
                if inner.leaving.load(Ordering::SeqCst) {
                    return;
                }
                let runner = Runner { inner };
                if let Err(e) = runner.beat().await {
                    tracing::warn!(error = %e, "heartbeat failed: holds are not renewed until the store answers");
                }
            }
        });
        let listener = Arc::downgrade(&self.inner);
        tokio::spawn(async move { listen(listener).await });
        Ok(taken)
    }

    /// Lets go of everything this server holds, for the others to take at once, and leaves
    /// the servers' list (a server stopping). Its runs stop at their next step.
    pub async fn leave(&self) {
        self.inner.leaving.store(true, Ordering::SeqCst);
        self.inner.wake.notify_one();
        for running in self.lock().values() {
            running.flags.lost.store(true, Ordering::SeqCst);
        }
        let store = &self.inner.store;
        let id = &self.inner.membership.id;
        if let Err(e) = store.release_operations(id).await {
            tracing::warn!(error = %e, "could not release this server's operations: they are taken over when their leases run out");
        }
        let _ = store.remove_server(id).await;
    }

    /// One heartbeat: renew the holds (a hold not renewed was taken over: its run stops;
    /// a cancel asked for elsewhere reaches its run), say this server lives, and claim what
    /// the free slots can take.
    async fn beat(&self) -> Result<(), Error> {
        let inner = &self.inner;
        let me = &inner.membership;
        // Only the runs under way before the renewal are judged by it: a run that starts
        // meanwhile was not asked about.
        let runs: Vec<(String, Hold, Arc<RunFlags>)> = self
            .lock()
            .iter()
            .map(|(id, r)| (id.clone(), r.hold.clone(), r.flags.clone()))
            .collect();
        let ids: Vec<String> = runs.iter().map(|(id, _, _)| id.clone()).collect();
        let asked_at = monotonic_ms();
        let renewed = inner
            .store
            .renew_leases(&me.id, &ids, self.lease_until())
            .await
            .map_err(store_error)?;
        let renewed: HashMap<&str, (i64, bool)> = renewed
            .iter()
            .map(|r| (r.id.as_str(), (r.fence, r.cancel_requested)))
            .collect();
        for (id, hold, flags) in &runs {
            match renewed.get(id.as_str()) {
                Some((fence, cancel)) if *fence == hold.fence => {
                    flags
                        .valid_until
                        .store(asked_at + me.lease.as_millis() as u64, Ordering::SeqCst);
                    if *cancel {
                        flags.cancelled.store(true, Ordering::SeqCst);
                    }
                }
                _ => flags.lost.store(true, Ordering::SeqCst),
            }
        }
        inner
            .store
            .heartbeat(&me.id, now())
            .await
            .map_err(store_error)?;
        self.claim(false).await?;
        Ok(())
    }

    /// Claims what the free slots can take and runs it.
    async fn claim(&self, every: bool) -> Result<usize, Error> {
        let inner = &self.inner;
        let free = MAX_RUNNING.saturating_sub(self.lock().len());
        let claimed = inner
            .store
            .claim_operations(
                &inner.membership.id,
                now(),
                self.lease_until(),
                free,
                every,
                &inner.membership.elsewhere,
            )
            .await
            .map_err(store_error)?;
        let n = claimed.len();
        for claim in claimed {
            let event = match &claim.previous_owner {
                Some(previous) => {
                    tracing::info!(operation_id = %claim.operation.id, kind = %claim.operation.kind, from = %previous, "taking over operation");
                    LeaseEvent::Takeover
                }
                None => {
                    tracing::info!(operation_id = %claim.operation.id, kind = %claim.operation.kind, status = claim.operation.status.as_str(), "claimed operation");
                    LeaseEvent::Claim
                }
            };
            inner.metrics.lease(event);
            self.submit(claim.operation, claim.hold);
        }
        Ok(n)
    }

    /// Waits until the operation ends or `timeout` passes, then returns it as it stands.
    /// Works whichever server runs it: an end here or a wake-up from another server ends
    /// the wait at once, and the store is looked at every second in case one was missed.
    pub async fn wait(&self, id: &str, timeout: Duration) -> Result<Operation, Error> {
        // Subscribe before reading, so an end between the two is not missed.
        let mut ended = self.inner.ended.subscribe();
        let operation = self.load(id).await?;
        if operation.status.is_final() || timeout.is_zero() {
            return Ok(operation);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return self.load(id).await;
            }
            let wake = async {
                loop {
                    match ended.recv().await {
                        Ok(done) if done == id => return,
                        Ok(_) => continue,
                        Err(broadcast::error::RecvError::Lagged(_)) => return,
                        Err(broadcast::error::RecvError::Closed) => {
                            std::future::pending::<()>().await
                        }
                    }
                }
            };
            let _ = tokio::time::timeout(left.min(WAIT_POLL), wake).await;
            let operation = self.load(id).await?;
            if operation.status.is_final() {
                return Ok(operation);
            }
        }
    }

    /// Asks an operation to stop, whichever server runs it. A pending one ends at once; a
    /// running one at its change's next step (its server hears of it by a wake-up, its
    /// next save or its next heartbeat). An ended one is a conflict.
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
        self.heard_cancel(id);
        self.load(id).await
    }

    fn heard_cancel(&self, id: &str) {
        if let Some(running) = self.lock().get(id) {
            running.flags.cancelled.store(true, Ordering::SeqCst);
        }
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

/// Hears the other servers on PostgreSQL: an operation that ended there ends the waits
/// here, and a cancel asked there reaches a run here at once. Reconnects after a drop.
async fn listen(runner: std::sync::Weak<Inner>) {
    loop {
        let Some(inner) = runner.upgrade() else {
            return;
        };
        let listener = inner.store.listen().await;
        drop(inner);
        let mut listener = match listener {
            Ok(Some(listener)) => listener,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen to the other servers; waits fall back to polling");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        while let Ok(notification) = listener.recv().await {
            let Some(inner) = runner.upgrade() else {
                return;
            };
            let runner = Runner { inner };
            match notification.payload().split_once(':') {
                Some(("ended", id)) => {
                    let _ = runner.inner.ended.send(id.to_string());
                }
                Some(("cancel", id)) => runner.heard_cancel(id),
                _ => {}
            }
        }
    }
}

/// Runs one operation to its end and records how it ended, unless this server's hold on
/// it is gone first: then it stops and leaves the ending to the holder.
async fn drive(
    inner: &Inner,
    operation: Operation,
    hold: Hold,
    flags: Arc<RunFlags>,
) -> Result<(), Error> {
    let _slot = inner.slots.acquire().await;
    let id = operation.id.clone();
    let kind = operation.kind.clone();
    let store = &inner.store;
    let ended = |status: OperationStatus, error: Option<OperationError>| {
        let (id, kind, hold) = (id.clone(), kind.clone(), hold.clone());
        async move {
            let recorded = store
                .finish_operation(&id, Some(&hold), status, error.as_ref(), now())
                .await
                .map_err(store_error)?;
            if recorded {
                inner.metrics.operation(&kind, status.as_str());
                tracing::info!(operation_id = %id, kind = %kind, status = status.as_str(), "operation ended");
            }
            Ok::<(), Error>(())
        }
    };
    if flags.hold_gone() {
        return lost(inner, &id);
    }
    if flags.cancelled.load(Ordering::SeqCst) && operation.status == OperationStatus::Pending {
        return ended(
            OperationStatus::Cancelled,
            Some(OperationError::from(&Error::cancelled())),
        )
        .await;
    }
    if !store
        .mark_running(&id, Some(&hold), now())
        .await
        .map_err(store_error)?
    {
        return Ok(());
    }
    inner
        .metrics
        .operation(&kind, OperationStatus::Running.as_str());
    let Some(executor) = inner.registry.executor(&kind) else {
        let error = OperationError::from(&Error::internal(format!(
            "this server cannot run operations of kind `{kind}`"
        )));
        return ended(OperationStatus::Failed, Some(error)).await;
    };
    let calls = Arc::new(AtomicU64::new(operation.backend_calls));
    let mut cx = OperationContext {
        operation,
        store: store.clone(),
        environments: inner.environments.clone(),
        hold: Some(hold.clone()),
        flags: flags.clone(),
        handovers: inner.handovers.clone(),
        given: inner.given.clone(),
        calls: calls.clone(),
    };
    let result = counting(calls, executor.run(&mut cx)).await;
    if flags.hold_gone() || result.as_ref().is_err_and(|e| e.code == "lease_lost") {
        return lost(inner, &id);
    }
    // The last calls may have come after the last saved progress.
    match cx.save().await {
        Err(e) if e.code == "lease_lost" => return lost(inner, &id),
        other => other?,
    }
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
    ended(status, error).await
}

/// A run that stopped because another server holds its operation now: not a failure of
/// this server's, and not this server's to record.
fn lost(inner: &Inner, id: &str) -> Result<(), Error> {
    inner.metrics.lease(LeaseEvent::Lost);
    tracing::warn!(operation_id = %id, "this server's hold on the operation was taken over: it stopped before its next step");
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
        runner_as(store, executor, "srv_1", true)
    }

    /// A server `id` with a one-second lease; `alone`: the only one on its store.
    fn runner_as(store: &Store, executor: ThreeSteps, id: &str, alone: bool) -> Runner {
        let membership = Membership {
            id: id.into(),
            lease: Duration::from_secs(1),
            alone,
            elsewhere: Vec::new(),
        };
        Runner::new(
            store.clone(),
            Arc::new(Metrics::new()),
            Arc::new(Environments::default()),
            Registry::default().with(executor),
            membership,
        )
    }

    /// Records `id` as held by `runner` and starts it there, as a request would.
    async fn start_held(store: &Store, runner: &Runner, id: &str) {
        let owner = runner.membership().id.clone();
        store
            .create_held_operation(&pending(id), None, &owner, runner.lease_until())
            .await
            .unwrap();
        runner.submit(pending(id), Hold { owner, fence: 1 });
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
        start_held(&store, &runner, "op_1").await;
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
        let (exec, acted) = executor(2, None);
        let crashed = runner(&store, exec);
        start_held(&store, &crashed, "op_1").await;
        wait_for_done(&store, "op_1", 2).await;
        let op = store.operation("op_1").await.unwrap().unwrap();
        assert_eq!(op.status, OperationStatus::Running);

        // A new server on the same store finds the operation and finishes it.
        let (exec, acted_again) = executor(0, None);
        let restarted = runner_as(&store, exec, "srv_2", true);
        assert_eq!(restarted.join().await.unwrap(), 1);
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
        start_held(&store, &runner, "op_1").await;
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
        runner.join().await.unwrap();
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
        start_held(&store, &runner, "op_1").await;
        let op = runner
            .wait("op_1", Duration::from_millis(100))
            .await
            .unwrap();
        assert!(!op.status.is_final());
        let err = runner.wait("op_404", Duration::ZERO).await.unwrap_err();
        assert_eq!(err.code, "operation_not_found");
    }

    #[tokio::test]
    async fn a_run_whose_hold_was_taken_over_stops_before_its_next_step() {
        let (store, _dir) = store().await;
        let gate = Arc::new(tokio::sync::Notify::new());
        let (exec, acted_first) = executor(0, Some(gate.clone()));
        let first = runner_as(&store, exec, "srv_a", false);
        first.join().await.unwrap();
        start_held(&store, &first, "op_1").await;
        gate.notify_one();
        wait_for_done(&store, "op_1", 1).await;

        // Another server takes it over (as a lone server does at its start) and ends it.
        let (exec, acted_second) = executor(0, None);
        let second = runner_as(&store, exec, "srv_b", true);
        assert_eq!(second.join().await.unwrap(), 1);
        let op = second.wait("op_1", Duration::from_secs(5)).await.unwrap();
        assert_eq!(op.status, OperationStatus::Succeeded);

        // The first server's heartbeat finds its hold gone; let its run go on: it stops
        // without acting again, and its late save would have been refused anyway.
        tokio::time::sleep(Duration::from_millis(800)).await;
        gate.notify_one();
        gate.notify_one();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            acted_first.lock().unwrap().len(),
            1,
            "only t0, before the takeover"
        );
        let mut redone: Vec<_> = acted_second.lock().unwrap().keys().cloned().collect();
        redone.sort();
        assert_eq!(redone, ["t1", "t2"]);
        let stale = Hold {
            owner: "srv_a".into(),
            fence: 1,
        };
        let refused = store
            .save_progress("op_1", Some(&stale), op.progress, &op.results, 0)
            .await
            .unwrap_err();
        assert!(matches!(refused, overcast_store::StoreError::Fenced { .. }));
    }

    #[tokio::test]
    async fn a_cancel_asked_on_another_server_stops_the_run_where_it_runs() {
        let (store, _dir) = store().await;
        let gate = Arc::new(tokio::sync::Notify::new());
        let (exec, acted) = executor(0, Some(gate.clone()));
        let owner = runner_as(&store, exec, "srv_a", false);
        owner.join().await.unwrap();
        start_held(&store, &owner, "op_1").await;
        gate.notify_one();
        wait_for_done(&store, "op_1", 1).await;

        let (exec, _) = executor(0, None);
        let other = runner_as(&store, exec, "srv_b", false);
        other.join().await.unwrap();
        let op = other.cancel("op_1").await.unwrap();
        assert!(op.cancel_requested);
        // The owner hears of it at its next heartbeat, before its next step.
        tokio::time::sleep(Duration::from_millis(500)).await;
        gate.notify_one();
        let op = other.wait("op_1", Duration::from_secs(5)).await.unwrap();
        assert_eq!(op.status, OperationStatus::Cancelled);
        assert_eq!(acted.lock().unwrap().len(), 1);
    }
}
