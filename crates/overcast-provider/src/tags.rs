//! The `Tags` capability: setting and removing tags on any kind of resource a provider has,
//! so tagging is not tied to virtual machines.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::ProviderError;

/// A kind of resource that takes tags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    #[default]
    Instance,
    Image,
    SecurityGroup,
    Bucket,
    Secret,
    /// By its full name, org root included.
    Parameter,
    /// A container cluster, by its ARN.
    Cluster,
    /// A container service, by its ARN.
    ContainerService,
}

impl ResourceKind {
    /// The name overcast uses for it in operation kinds and errors.
    pub fn name(self) -> &'static str {
        match self {
            ResourceKind::Instance => "instance",
            ResourceKind::Image => "image",
            ResourceKind::SecurityGroup => "security_group",
            ResourceKind::Bucket => "bucket",
            ResourceKind::Secret => "secret",
            ResourceKind::Parameter => "parameter",
            ResourceKind::Cluster => "cluster",
            ResourceKind::ContainerService => "container_service",
        }
    }
}

/// Tags of one environment's resources.
#[async_trait]
pub trait Tags: Send + Sync {
    /// Sets tags on resources of one kind in one region, keeping their other tags.
    async fn set_tags(
        &self,
        region: &str,
        kind: ResourceKind,
        ids: &[String],
        tags: &BTreeMap<String, String>,
    ) -> Result<(), ProviderError>;

    /// Removes tags by key from resources of one kind in one region.
    async fn remove_tags(
        &self,
        region: &str,
        kind: ResourceKind,
        ids: &[String],
        keys: &[String],
    ) -> Result<(), ProviderError>;
}
