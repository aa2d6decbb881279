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

/// Machine images the environment's account owns.
#[async_trait]
pub trait Images: Send + Sync {
    /// Own images of one region (or all), optionally only these ids.
    async fn list_images(
        &self,
        region: Option<&str>,
        ids: &[String],
    ) -> Result<Vec<Image>, ProviderError>;

    async fn create_image(&self, spec: &ImageSpec) -> Result<Image, ProviderError>;

    /// Deregisters an image; a missing one is no error.
    async fn deregister_image(&self, region: &str, id: &str) -> Result<(), ProviderError>;

    /// Deletes a snapshot; a missing one is no error.
    async fn delete_snapshot(&self, region: &str, id: &str) -> Result<(), ProviderError>;
}
