//! What this host offers QEMU: the programs the backend runs, found on `PATH`, and the
//! accelerator. KVM is used only when it can really work: `/dev/kvm` must open for
//! reading and writing and the CPU must have virtualisation extensions (vmx or svm), since
//! a `/dev/kvm` without them makes QEMU hang or abort.

use overcast_provider::{cloud_init, MachineSize, ProviderError, ProviderErrorKind};
use std::path::{Path, PathBuf};

use crate::records::Layout;

/// The command that installs what the backend needs on Debian and Ubuntu.
pub const INSTALL_HINT: &str =
    "install QEMU and genisoimage: `sudo apt-get install qemu-system-x86 qemu-utils genisoimage`";

/// How QEMU runs guest code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accelerator {
    Kvm,
    /// Software emulation, with the reason KVM is not used.
    Tcg {
        why_not_kvm: String,
    },
}

impl Accelerator {
    /// The value of QEMU's `-accel`.
    pub fn name(&self) -> &'static str {
        match self {
            Accelerator::Kvm => "kvm",
            Accelerator::Tcg { .. } => "tcg",
        }
    }
}

/// The programs and accelerator found on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub qemu: PathBuf,
    pub qemu_img: PathBuf,
    /// Makes the NoCloud seed images that carry user data.
    pub genisoimage: PathBuf,
    pub accelerator: Accelerator,
}

impl Host {
    /// Looks for the programs on `path` (a `PATH`-style list) and probes the accelerator.
    /// A missing program is an error naming it, with the install hint.
    pub fn probe(path: &std::ffi::OsStr) -> Result<Host, String> {
        let find = |program: &str| {
            cloud_init::find_program(path, program)
                .ok_or_else(|| format!("`{program}` is not on this host's PATH: {INSTALL_HINT}"))
        };
        Ok(Host {
            qemu: find("qemu-system-x86_64")?,
            qemu_img: find("qemu-img")?,
            genisoimage: find("genisoimage")?,
            accelerator: probe_accelerator(Path::new("/dev/kvm"), Path::new("/proc/cpuinfo")),
        })
    }
}

/// Checks a machine size against this host: more than the host has at all is bad input
/// (400 naming the field); more than it has free now, for `count` machines, is no room
/// (507).
pub fn check_size(layout: &Layout, size: MachineSize, count: u32) -> Result<(), ProviderError> {
    let invalid = |field: &'static str, message: String| {
        ProviderError::new(ProviderErrorKind::InvalidInput, "invalid_input", message)
            .with_field(field)
    };
    let no_room = |message: String| {
        ProviderError::new(ProviderErrorKind::NoRoom, "insufficient_capacity", message)
    };
    let count = u64::from(count.max(1));
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    if size.cpus == 0 || size.cpus > cpus {
        return Err(invalid(
            "cpus",
            format!("{} is not from 1 to this host's {cpus} CPUs", size.cpus),
        ));
    }
    let (total_mb, available_mb) = memory_mb();
    if size.memory_mb < 64 || size.memory_mb > total_mb {
        return Err(invalid(
            "memory_mb",
            format!(
                "{} is not from 64 to this host's {total_mb} MB",
                size.memory_mb
            ),
        ));
    }
    if size.memory_mb * count > available_mb {
        return Err(no_room(format!(
            "{count} machine(s) of {} MB do not fit in the {available_mb} MB this host has free",
            size.memory_mb
        )));
    }
    let (total_gb, free_gb) = disk_gb(layout.root());
    if size.disk_gb == 0 || size.disk_gb > total_gb {
        return Err(invalid(
            "disk_gb",
            format!(
                "{} is not from 1 to the {total_gb} GB of {}",
                size.disk_gb,
                layout.root().display()
            ),
        ));
    }
    if size.disk_gb * count > free_gb {
        return Err(no_room(format!(
            "{count} disk(s) of {} GB do not fit in the {free_gb} GB free in {}",
            size.disk_gb,
            layout.root().display()
        )));
    }
    Ok(())
}

/// Total and available memory, in MB, from `/proc/meminfo`.
fn memory_mb() -> (u64, u64) {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb / 1024)
    };
    (field("MemTotal:"), field("MemAvailable:"))
}

/// Total and free space of the file system holding `dir`, in GB.
fn disk_gb(dir: &Path) -> (u64, u64) {
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return (0, 0);
    };
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid C string and `stat` a valid, writable statvfs.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return (0, 0);
    }
    let block = stat.f_frsize as u64;
    (
        (stat.f_blocks as u64 * block) >> 30,
        (stat.f_bavail as u64 * block) >> 30,
    )
}

/// KVM when the device opens and the CPU can virtualise; TCG, saying why, otherwise.
fn probe_accelerator(kvm: &Path, cpuinfo: &Path) -> Accelerator {
    let tcg = |why: &str| Accelerator::Tcg {
        why_not_kvm: why.to_string(),
    };
    if let Err(e) = std::fs::OpenOptions::new().read(true).write(true).open(kvm) {
        return tcg(&format!("{} cannot be opened: {e}", kvm.display()));
    }
    let flags = std::fs::read_to_string(cpuinfo).unwrap_or_default();
    let extensions = flags
        .lines()
        .filter(|l| l.starts_with("flags"))
        .flat_map(|l| l.split_whitespace())
        .any(|flag| flag == "vmx" || flag == "svm");
    if !extensions {
        return tcg("the CPU has no virtualisation extensions (vmx or svm)");
    }
    Accelerator::Kvm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kvm_needs_both_the_device_and_the_cpu_extensions() {
        let dir = tempfile::tempdir().unwrap();
        let device = dir.path().join("kvm");
        let cpuinfo = dir.path().join("cpuinfo");
        std::fs::write(&device, "").unwrap();
        std::fs::write(&cpuinfo, "flags\t\t: fpu sse2 vmx\n").unwrap();
        assert_eq!(probe_accelerator(&device, &cpuinfo), Accelerator::Kvm);

        std::fs::write(&cpuinfo, "flags\t\t: fpu sse2 hypervisor\n").unwrap();
        let Accelerator::Tcg { why_not_kvm } = probe_accelerator(&device, &cpuinfo) else {
            panic!("KVM without vmx or svm");
        };
        assert!(why_not_kvm.contains("vmx or svm"));

        let missing = dir.path().join("no-kvm");
        let Accelerator::Tcg { why_not_kvm } = probe_accelerator(&missing, &cpuinfo) else {
            panic!("KVM without /dev/kvm");
        };
        assert!(why_not_kvm.contains("cannot be opened"));
    }

    #[test]
    fn a_missing_program_is_named_with_the_install_hint() {
        let empty = tempfile::tempdir().unwrap();
        let err = Host::probe(empty.path().as_os_str()).unwrap_err();
        assert!(
            err.contains("qemu-system-x86_64") && err.contains("apt-get install"),
            "{err}"
        );
    }
}
