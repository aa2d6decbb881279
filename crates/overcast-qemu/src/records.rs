//! The provider's own records, kept beside what they describe under its data dir:
//! `images/ID/image.json` next to the image's files and `instances/ID/vm.json` next to the
//! VM's disk, seed, serial log, QMP socket and pid file. Each is written whole to a
//! temporary file and renamed, so a crash never leaves half a record.

use overcast_provider::{MachineSize, ProviderError, ProviderErrorKind};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where everything lives.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: PathBuf) -> Layout {
        Layout { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn images(&self) -> PathBuf {
        self.root.join("images")
    }

    pub fn image_dir(&self, id: &str) -> PathBuf {
        self.images().join(id)
    }

    pub fn instances(&self) -> PathBuf {
        self.root.join("instances")
    }

    pub fn vm_dir(&self, id: &str) -> PathBuf {
        self.instances().join(id)
    }
}

/// An image: a base disk, a kernel and initrd for direct boot, or both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub created_at: String,
    /// `available` once its files are complete.
    pub state: String,
    /// The disk's file name in the image's directory, and its format (`qcow2`, `raw`).
    #[serde(default)]
    pub disk: Option<(String, String)>,
    #[serde(default)]
    pub kernel: Option<String>,
    #[serde(default)]
    pub initrd: Option<String>,
    #[serde(default)]
    pub cmdline: Option<String>,
    /// Of the disk, or of the kernel for a kernel image.
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// What the VM should be doing, as overcast last asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Desired {
    Running,
    Stopped,
    Terminated,
}

/// A VM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmRecord {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    pub image: String,
    pub size: MachineSize,
    /// The machine type it was made from, or `custom`.
    pub machine_type: String,
    pub created_at: String,
    /// The host port forwarded to the guest's SSH.
    pub ssh_port: u16,
    pub desired: Desired,
    /// The launch's client token: a repeated launch finds its VMs instead of making more.
    pub client_token: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub terminated_at: Option<String>,
}

/// Reads a record; `None` when the file is not there.
pub fn read<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, ProviderError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io_error(&format!("the record {} is unreadable: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(&format!("cannot read {}: {e}", path.display()))),
    }
}

/// Writes a record whole: to a temporary file, then renamed over the old one.
pub fn write<T: Serialize>(path: &Path, record: &T) -> Result<(), ProviderError> {
    let text = serde_json::to_vec_pretty(record).map_err(|e| io_error(&e.to_string()))?;
    let temporary = path.with_extension("json.tmp");
    std::fs::write(&temporary, text)
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|e| io_error(&format!("cannot write {}: {e}", path.display())))
}

/// Every record named `file` in the directories under `dir`.
pub fn all<T: DeserializeOwned>(dir: &Path, file: &str) -> Result<Vec<T>, ProviderError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(&format!("cannot list {}: {e}", dir.display()))),
    };
    let mut records = Vec::new();
    for entry in entries.flatten() {
        if let Some(record) = read(&entry.path().join(file))? {
            records.push(record);
        }
    }
    Ok(records)
}

/// A fault of the host's files, not of the request.
pub fn io_error(message: &str) -> ProviderError {
    ProviderError::new(ProviderErrorKind::Unavailable, "host_io_error", message)
}

/// A new id with a prefix: `vm-3f9c…`, `img-…`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}

/// Now, as RFC 3339.
pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_listing_skips_directories_without_one() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().to_path_buf());
        let record = ImageRecord {
            id: "img-1".into(),
            name: "base".into(),
            description: None,
            created_at: now(),
            state: "available".into(),
            disk: Some(("disk.qcow2".into(), "qcow2".into())),
            kernel: None,
            initrd: None,
            cmdline: None,
            sha256: None,
            tags: BTreeMap::new(),
        };
        std::fs::create_dir_all(layout.image_dir("img-1")).unwrap();
        std::fs::create_dir_all(layout.image_dir("half-made")).unwrap();
        write(&layout.image_dir("img-1").join("image.json"), &record).unwrap();
        let listed: Vec<ImageRecord> = all(&layout.images(), "image.json").unwrap();
        assert_eq!(listed, vec![record]);
        assert!(read::<ImageRecord>(&dir.path().join("nope.json"))
            .unwrap()
            .is_none());
    }
}
