//! Local VMs in tests: the test image (`scripts/test-image.py`; `OVERCAST_TEST_IMAGE` names
//! its directory), a server's VM directories, their QEMU processes and QMP sockets, and a
//! reaper for the VMs a test leaves behind.

use crate::Api;
use overcast_qemu::qmp::Qmp;
use reqwest::Method;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The `local` environment's routes.
pub const LOCAL: &str = "/v1/environments/local";

/// The directory of the test image: `vmlinuz` and `initrd.img`.
pub fn test_image() -> PathBuf {
    PathBuf::from(
        std::env::var_os("OVERCAST_TEST_IMAGE").expect(
            "OVERCAST_TEST_IMAGE is not set: run ./scripts/test, which builds the test image",
        ),
    )
}

/// Imports the test image's kernel and initrd into the server's `local` environment;
/// answers the image id.
pub async fn import_test_image(api: &Api) -> String {
    let image = test_image();
    let body = json!({
        "name": "test-kernel",
        "kernel_url": format!("file://{}", image.join("vmlinuz").display()),
        "initrd_url": format!("file://{}", image.join("initrd.img").display()),
        "cmdline": "console=ttyS0 quiet panic=-1",
    });
    let op = api
        .change(Method::POST, &format!("{LOCAL}/images/import"), Some(body))
        .await;
    op["results"][0]["target"].as_str().unwrap().to_string()
}

/// The serial console of a VM so far, as the API shows it.
pub async fn console(api: &Api, id: &str) -> String {
    let (_, answer) = api
        .call(
            Method::GET,
            &format!("{LOCAL}/instances/{id}/console"),
            Some(crate::ADMIN),
            None,
        )
        .await;
    answer["output"].as_str().unwrap_or_default().to_string()
}

/// Waits up to 90 s for `marker` to appear `times` times in the VM's console (polled every
/// 50 ms); panics with the console otherwise.
pub async fn console_shows(api: &Api, id: &str, marker: &str, times: usize) {
    for _ in 0..1800 {
        if console(api, id).await.matches(marker).count() >= times {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "`{marker}` x{times} never appeared:\n{}",
        console(api, id).await
    );
}

/// A VM's directory under a server's `data_dir` parent (`dir/data`, as the config writers
/// of [`crate::process`] place it).
pub fn vm_dir(dir: &Path, id: &str) -> PathBuf {
    dir.join("data/environments/local/instances").join(id)
}

/// The pid of the VM's QEMU, if the process is alive.
pub fn qemu_pid(dir: &Path, id: &str) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(vm_dir(dir, id).join("qemu.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

/// What QEMU itself says of the VM (QMP `query-status`).
pub async fn qmp_status(dir: &Path, id: &str) -> String {
    let mut qmp = Qmp::connect(&vm_dir(dir, id).join("qmp.sock"))
        .await
        .unwrap();
    qmp.query_status().await.unwrap().status
}

/// Kills every VM under a test's dir (as [`vm_dir`] finds them) when dropped, passed or
/// failed: VMs run detached and would outlive the test.
pub struct Reaper(pub PathBuf);

impl Drop for Reaper {
    fn drop(&mut self) {
        let instances = self.0.join("data/environments/local/instances");
        for entry in std::fs::read_dir(instances).into_iter().flatten().flatten() {
            let Ok(pid) = std::fs::read_to_string(entry.path().join("qemu.pid")) else {
                continue;
            };
            // Only that VM's QEMU, not a process that got its pid later.
            let name = format!("overcast-{}", entry.file_name().to_string_lossy());
            let cmdline =
                std::fs::read(format!("/proc/{}/cmdline", pid.trim())).unwrap_or_default();
            if cmdline.split(|b| *b == 0).any(|arg| arg == name.as_bytes()) {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", pid.trim()])
                    .status();
            }
        }
    }
}
