//! PVE's tasks: every change answers a UPID, and its outcome is the task's. A task is
//! followed to its end; a failed one is reported with its exit status and the last lines
//! of its log, mapped to overcast's error kinds (a locked VM or one already in the state
//! asked for is a conflict, a timeout a timeout).

use overcast_provider::{ProviderError, ProviderErrorKind};
use serde::Deserialize;
use std::time::{Duration, Instant};

use crate::client::{kind_of, Client};

/// How often a running task is looked at.
const POLL: Duration = Duration::from_millis(200);
/// How many of a failed task's last log lines its error carries.
const LOG_LINES: usize = 5;

#[derive(Deserialize)]
struct TaskStatus {
    status: String,
    #[serde(default)]
    exitstatus: Option<String>,
}

#[derive(Deserialize)]
struct LogLine {
    t: String,
}

/// The node a UPID names (`UPID:NODE:...`).
fn node_of(upid: &str) -> Option<&str> {
    upid.split(':').nth(1).filter(|n| !n.is_empty())
}

impl Client {
    /// Follows a task until it ends, for at most `within`.
    pub async fn finish(&self, upid: &str, within: Duration) -> Result<(), ProviderError> {
        let node = node_of(upid).ok_or_else(|| {
            ProviderError::new(
                ProviderErrorKind::Refused,
                "unexpected_answer",
                format!("PVE answered a change with `{upid}`, which is no task id"),
            )
        })?;
        let deadline = Instant::now() + within;
        loop {
            let status: TaskStatus = self
                .get(&format!("/nodes/{node}/tasks/{upid}/status"))
                .await?;
            if status.status == "stopped" {
                let exit = status.exitstatus.unwrap_or_default();
                if exit == "OK" || exit.starts_with("WARNINGS") {
                    return Ok(());
                }
                let log: Vec<LogLine> = self
                    .get(&format!("/nodes/{node}/tasks/{upid}/log?limit=500"))
                    .await
                    .unwrap_or_default();
                let last: Vec<&str> = log
                    .iter()
                    .rev()
                    .take(LOG_LINES)
                    .rev()
                    .map(|l| l.t.as_str())
                    .collect();
                return Err(task_failed(&exit, &last));
            }
            if Instant::now() >= deadline {
                return Err(ProviderError::new(
                    ProviderErrorKind::Timeout,
                    "task_timeout",
                    format!("PVE task {upid} did not end within {} s", within.as_secs()),
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// A failed task as overcast's error: its exit status, then its last log lines.
fn task_failed(exit: &str, last: &[&str]) -> ProviderError {
    let (kind, code) = kind_of(exit).unwrap_or((ProviderErrorKind::Refused, "task_failed"));
    ProviderError::new(
        kind,
        code,
        format!("PVE task failed: {exit} (log: {})", last.join(" | ")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_tasks_say_why_in_pves_words() {
        assert_eq!(
            node_of("UPID:pve1:0000ABCD:00012345:6553F00D:qmstart:100:root@pam:"),
            Some("pve1")
        );
        assert_eq!(node_of("nonsense"), None);
        let e = task_failed(
            "VM is locked (backup)",
            &["TASK ERROR: VM is locked (backup)"],
        );
        assert_eq!(
            (e.kind, e.code),
            (ProviderErrorKind::Conflict, "instance_locked")
        );
        assert!(e.message.contains("VM is locked (backup)"));
        let e = task_failed("VM 100 already running", &[]);
        assert_eq!(e.code, "incorrect_instance_state");
        let e = task_failed("VM quit/powerdown failed - got timeout", &[]);
        assert_eq!(
            (e.kind, e.code),
            (ProviderErrorKind::Conflict, "shutdown_timeout")
        );
        let e = task_failed(
            "can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout",
            &[],
        );
        assert_eq!(e.kind, ProviderErrorKind::Timeout);
    }
}
