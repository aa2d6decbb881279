//! The local backend: virtual machines on this host, with QEMU started directly and driven
//! over QMP, the way Proxmox, Incus and Lima do it. The only crate that starts QEMU or
//! speaks QMP. Images and VMs live under the environment's data dir, each in a directory
//! with its record; VMs run detached, so they outlive the server, which finds them again
//! through their pid files and sockets. One server at a time drives a data dir (a lock).

mod compute;
pub mod host;
mod images;
pub mod qmp;
mod records;
mod settings;
mod vm;

pub use settings::{QemuFactory, QemuMachine};

use async_trait::async_trait;
use overcast_provider::{Compute, Images, Provider, ProviderStatus, Tags, Unavailable};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use host::{Accelerator, Host, INSTALL_HINT};
use records::Layout;

/// The one region a local environment has: this host.
pub(crate) const REGION: &str = "local";

/// How long a graceful stop waits for the guest to power off before QEMU is ended.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(30);

/// The `qemu` provider of one environment.
pub struct QemuProvider {
    environment: String,
    host: Host,
    layout: Layout,
    /// Held while the provider lives: no second server drives these VMs.
    _lock: std::fs::File,
}

impl QemuProvider {
    /// The provider of environment `environment` keeping its images and VMs in `data_dir`,
    /// or an unavailable one that says why: QEMU is missing (with the install hint), the
    /// data dir cannot be made, or another server holds it.
    pub fn open(environment: &str, data_dir: PathBuf) -> Arc<dyn Provider> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        match Self::try_open(environment, data_dir, &path) {
            Ok(provider) => Arc::new(provider),
            Err(reason) => Arc::new(Unavailable::new("qemu", reason)),
        }
    }

    fn try_open(
        environment: &str,
        data_dir: PathBuf,
        path: &std::ffi::OsStr,
    ) -> Result<QemuProvider, String> {
        let host = Host::probe(path)?;
        let layout = Layout::new(data_dir);
        for dir in [layout.images(), layout.instances()] {
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
        }
        let lock_path = layout.root().join("server.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)
            .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
        if lock.try_lock().is_err() {
            let holder = std::fs::read_to_string(&lock_path).unwrap_or_default();
            return Err(format!(
                "another overcast server (pid {}) drives the VMs in {}",
                holder.trim(),
                layout.root().display()
            ));
        }
        let _ = std::fs::write(&lock_path, std::process::id().to_string());
        Ok(QemuProvider {
            environment: environment.to_string(),
            host,
            layout,
            _lock: lock,
        })
    }
}

#[async_trait]
impl Provider for QemuProvider {
    fn kind(&self) -> &str {
        "qemu"
    }

    /// One region, the host: `local`.
    fn regions(&self) -> Vec<String> {
        vec![REGION.into()]
    }

    async fn status(&self) -> ProviderStatus {
        let mut status = ProviderStatus {
            reachable: true,
            reason: None,
            details: Default::default(),
        };
        let details = &mut status.details;
        details.insert("accelerator".into(), self.host.accelerator.name().into());
        if let Accelerator::Tcg { why_not_kvm } = &self.host.accelerator {
            details.insert("why_not_kvm".into(), why_not_kvm.clone());
        }
        details.insert("qemu".into(), self.host.qemu.display().to_string());
        details.insert("data_dir".into(), self.layout.root().display().to_string());
        status
    }

    fn compute(&self) -> Option<&dyn Compute> {
        Some(self)
    }

    fn images(&self) -> Option<&dyn Images> {
        Some(self)
    }

    fn tags(&self) -> Option<&dyn Tags> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_server_on_the_same_data_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = std::env::var_os("PATH").unwrap_or_default();
        let first = QemuProvider::try_open("local", dir.path().to_path_buf(), &path)
            .expect("QEMU is installed (./scripts/test installs it)");
        let second = QemuProvider::try_open("local", dir.path().to_path_buf(), &path);
        let reason = second.err().expect("the data dir is locked");
        assert!(reason.contains("another overcast server"), "{reason}");
        drop(first);
        assert!(QemuProvider::try_open("local", dir.path().to_path_buf(), &path).is_ok());
    }
}
