//! The `Images` capability: machine images made from instances.

use async_trait::async_trait;
use overcast_types::Image;
use std::collections::BTreeMap;

use crate::ProviderError;

/// What to make an image from.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ImageSpec {
    pub region: String,
    pub instance_id: String,
    pub name: String,
    pub description: Option<String>,
    /// Do not reboot the instance first (the image may then be inconsistent).
    pub no_reboot: bool,
    /// Applied at creation to the image and its snapshots.
    pub tags: BTreeMap<String, String>,
}

/// An image to bring in from outside.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ImportSpec {
    pub name: String,
    pub source: ImportSource,
    /// The SHA-256 the source must have (of the disk, or of the kernel).
    #[serde(default)]
    pub sha256: Option<String>,
    pub tags: BTreeMap<String, String>,
}

/// Where an imported image's bytes come from: `http(s)://` or `file://` URLs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportSource {
    /// A disk image, qcow2 or raw.
    Disk { url: String },
    /// A kernel and initrd for direct kernel boot.
    Kernel {
        kernel_url: String,
        initrd_url: String,
        cmdline: Option<String>,
    },
}

/// Told how far a long transfer has got: bytes done, and the total when known.
pub type Progress<'a> = &'a (dyn Fn(u64, Option<u64>) + Send + Sync);

/// Machine images the environment's account owns.
#[async_trait]
pub trait Images: Send + Sync {
    /// Own images of one region (or all), optionally only these ids.
    async fn list_images(
        &self,
        region: Option<&str>,
        ids: &[String],
    ) -> Result<Vec<Image>, ProviderError>;

    /// Makes an image of an instance, tagged, in one attempt (see
    /// [`crate::Compute::run_instances`]: the caller looks for the image by its operation
    /// tag before trying again).
    async fn create_image(&self, spec: &ImageSpec) -> Result<Image, ProviderError>;

    /// Deregisters an image; a missing one is no error.
    async fn deregister_image(&self, region: &str, id: &str) -> Result<(), ProviderError>;

    /// Deletes a snapshot; a missing one is no error.
    async fn delete_snapshot(&self, region: &str, id: &str) -> Result<(), ProviderError>;

    /// Brings in an image from a URL, reporting progress. Only some providers can.
    async fn import_image(
        &self,
        spec: &ImportSpec,
        progress: Progress<'_>,
    ) -> Result<Image, ProviderError> {
        let _ = (spec, progress);
        Err(ProviderError::new(
            crate::ProviderErrorKind::Unsupported,
            "not_supported",
            "importing images is not supported by this provider: create one from an instance",
        ))
    }
}
