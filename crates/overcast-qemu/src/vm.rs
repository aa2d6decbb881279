//! One VM's QEMU process: started detached (`-daemonize`, its own session, so it outlives
//! the server), found again through its pid file, and driven over its QMP socket.

use overcast_provider::{ProviderError, ProviderErrorKind};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use crate::host::Host;
use crate::qmp::Qmp;
use crate::records::{ImageRecord, Layout, VmRecord};

/// The kernel command line of a kernel image that names none: the console on the serial
/// port, where overcast reads it.
const DEFAULT_CMDLINE: &str = "console=ttyS0";

/// The files of one VM.
pub struct VmFiles {
    pub dir: PathBuf,
}

impl VmFiles {
    pub fn new(layout: &Layout, id: &str) -> VmFiles {
        VmFiles {
            dir: layout.vm_dir(id),
        }
    }

    pub fn record(&self) -> PathBuf {
        self.dir.join("vm.json")
    }

    pub fn disk(&self) -> PathBuf {
        self.dir.join("disk.qcow2")
    }

    pub fn seed(&self) -> PathBuf {
        self.dir.join("seed.iso")
    }

    pub fn serial(&self) -> PathBuf {
        self.dir.join("serial.log")
    }

    pub fn qmp(&self) -> PathBuf {
        self.dir.join("qmp.sock")
    }

    pub fn pid(&self) -> PathBuf {
        self.dir.join("qemu.pid")
    }
}

/// The name QEMU runs under, which tells its process apart from a reused pid.
fn process_name(id: &str) -> String {
    format!("overcast-{id}")
}

/// The pid of the VM's QEMU if it is running.
pub fn running_pid(files: &VmFiles, id: &str) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(files.pid())
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let name = process_name(id);
    cmdline
        .split(|b| *b == 0)
        .any(|arg| arg == name.as_bytes())
        .then_some(pid)
}

/// Starts the VM's QEMU, detached. Answers once QEMU has set the machine up (or failed
/// to, with its own words).
pub async fn launch(
    host: &Host,
    layout: &Layout,
    record: &VmRecord,
    image: &ImageRecord,
) -> Result<(), ProviderError> {
    let files = VmFiles::new(layout, &record.id);
    let _ = std::fs::remove_file(files.qmp());
    let mut command = tokio::process::Command::new(&host.qemu);
    command
        .arg("-name")
        .arg(process_name(&record.id))
        .args(["-accel", host.accelerator.name()])
        .args(["-smp", &record.size.cpus.to_string()])
        .args(["-m", &record.size.memory_mb.to_string()])
        .args([
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-daemonize",
        ])
        .arg("-pidfile")
        .arg(files.pid())
        .arg("-qmp")
        .arg(format!("unix:{},server=on,wait=off", files.qmp().display()))
        .arg("-chardev")
        .arg(format!(
            "file,id=serial0,path={},append=on",
            files.serial().display()
        ))
        .args(["-serial", "chardev:serial0"])
        .arg("-drive")
        .arg(format!(
            "file={},if=virtio,format=qcow2",
            files.disk().display()
        ))
        .arg("-drive")
        .arg(format!(
            "file={},if=virtio,format=raw,readonly=on",
            files.seed().display()
        ))
        .arg("-netdev")
        .arg(format!(
            "user,id=net0,hostfwd=tcp:127.0.0.1:{}-:22",
            record.ssh_port
        ))
        .args(["-device", "virtio-net-pci,netdev=net0"]);
    if let (Some(kernel), Some(initrd)) = (&image.kernel, &image.initrd) {
        let dir = layout.image_dir(&image.id);
        command
            .arg("-kernel")
            .arg(dir.join(kernel))
            .arg("-initrd")
            .arg(dir.join(initrd))
            .arg("-append")
            .arg(image.cmdline.as_deref().unwrap_or(DEFAULT_CMDLINE));
    }
    let output = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .await
        .map_err(|e| {
            ProviderError::new(
                ProviderErrorKind::Unavailable,
                "qemu_failed",
                format!("cannot run {}: {e}", host.qemu.display()),
            )
        })?;
    if !output.status.success() {
        return Err(ProviderError::new(
            ProviderErrorKind::Refused,
            "qemu_failed",
            format!(
                "QEMU did not start {}: {}",
                record.id,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        ));
    }
    Ok(())
}

/// A QMP connection to the VM, if its socket answers within a few seconds.
pub async fn connect(files: &VmFiles) -> Result<Qmp, ProviderError> {
    match tokio::time::timeout(Duration::from_secs(3), Qmp::connect(&files.qmp())).await {
        Ok(Ok(qmp)) => Ok(qmp),
        Ok(Err(e)) => Err(qmp_error(&e.to_string())),
        Err(_) => Err(qmp_error("the QMP socket did not answer within 3 s")),
    }
}

pub fn qmp_error(why: &str) -> ProviderError {
    ProviderError::new(
        ProviderErrorKind::Unavailable,
        "qemu_unreachable",
        format!("QEMU's control socket: {why}"),
    )
}

/// Waits up to `timeout` for the VM's QEMU to end; answers whether it did.
pub async fn wait_exit(files: &VmFiles, id: &str, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if running_pid(files, id).is_none() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Ends the VM's QEMU at once: QMP `quit`, else SIGKILL; waits for it to be gone.
pub async fn kill(files: &VmFiles, id: &str) {
    let Some(pid) = running_pid(files, id) else {
        return;
    };
    if let Ok(mut qmp) = connect(files).await {
        // QEMU may close the socket before it answers `quit`; the wait below decides.
        let _ = qmp.quit().await;
    }
    if !wait_exit(files, id, Duration::from_secs(5)).await {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        wait_exit(files, id, Duration::from_secs(5)).await;
    }
}

/// Everything the serial console has printed, as text.
pub fn serial_output(files: &VmFiles) -> String {
    std::fs::read(files.serial())
        .map(|raw| String::from_utf8_lossy(&raw).into_owned())
        .unwrap_or_default()
}

pub use overcast_provider::cloud_init::run_program as run;
