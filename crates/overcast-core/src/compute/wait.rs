//! Waiting for instances to reach a state: polling with a backoff until all are there,
//! one of them is lost, the deadline passes or the operation is cancelled.

use overcast_provider::{Compute, InstanceFilter};
use overcast_types::{Error, ErrorKind, Instance, InstanceState};
use std::time::{Duration, Instant};

use crate::errors::provider_error;
use crate::operations::attempts::{is_passing, Backoff};
use crate::operations::Cancellation;

/// How long an action may take to reach its state before the operation fails.
const STATE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Waits until every instance is in `target` (or gone, or no longer listed, for a
/// terminate), polling with a
/// backoff, or fails at the deadline saying where each stood. A look that fails for a
/// passing reason (throttled, unreachable, slow) says nothing about the instances, so the
/// wait goes on through it until the deadline.
pub(crate) async fn wait_for(
    compute: &dyn Compute,
    region: &str,
    ids: &[String],
    target: InstanceState,
    cancellation: &Cancellation,
) -> Result<Vec<Instance>, Error> {
    let deadline = Instant::now() + STATE_TIMEOUT;
    let mut backoff = Backoff::new();
    loop {
        let filter = InstanceFilter {
            region: Some(region.to_string()),
            ids: ids.to_vec(),
            ..InstanceFilter::default()
        };
        let instances = match compute.list_instances(&filter).await {
            Ok(instances) => instances,
            Err(e) if is_passing(&e) && Instant::now() < deadline => {
                tracing::warn!(region, error = %e, "a look at the instances failed; looking again");
                backoff.wait(cancellation).await?;
                continue;
            }
            Err(e) => return Err(provider_error(e)),
        };
        let reached = |i: &Instance| {
            i.state == target || (target == InstanceState::Terminated && i.state.is_gone())
        };
        // A terminated machine may leave the backend's list at once (a destroyed Proxmox
        // VM does): one no longer listed has gone.
        let all_listed = instances.len() >= ids.len() || target == InstanceState::Terminated;
        if all_listed && instances.iter().all(reached) {
            return Ok(instances);
        }
        if let Some(lost) = instances
            .iter()
            .find(|i| target != InstanceState::Terminated && i.state.is_gone())
        {
            return Err(Error::conflict(
                "instance_terminated",
                format!(
                    "instance {} was terminated while waiting for it to be {}",
                    lost.id,
                    target.as_str()
                ),
            ));
        }
        if Instant::now() >= deadline {
            let states: Vec<String> = instances
                .iter()
                .map(|i| format!("{} {}", i.id, i.state.as_str()))
                .collect();
            return Err(Error::new(
                ErrorKind::BackendTimeout,
                "state_timeout",
                format!(
                    "not {} after {}s: {}",
                    target.as_str(),
                    STATE_TIMEOUT.as_secs(),
                    states.join(", ")
                ),
            ));
        }
        backoff.wait(cancellation).await?;
    }
}
