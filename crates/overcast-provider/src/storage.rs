//! The `ObjectStore` capability: buckets (and, with them, their objects).

use async_trait::async_trait;
use overcast_types::Bucket;
use std::collections::BTreeMap;

use crate::ProviderError;

/// One page of object keys.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyPage {
    pub keys: Vec<String>,
    pub next: Option<String>,
}

#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Every bucket the credentials own, with region, tags and versioning.
    async fn list_buckets(&self) -> Result<Vec<Bucket>, ProviderError>;

    /// One bucket, if it exists and the credentials own it.
    async fn bucket(&self, name: &str) -> Result<Option<Bucket>, ProviderError>;

    /// Creates a bucket in a region, tagged.
    async fn create_bucket(
        &self,
        region: &str,
        name: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<Bucket, ProviderError>;

    /// Deletes an empty bucket; a missing one is no error.
    async fn delete_bucket(&self, region: &str, name: &str) -> Result<(), ProviderError>;

    /// One page (at most 1,000) of a bucket's keys.
    async fn list_keys(
        &self,
        region: &str,
        bucket: &str,
        after: Option<&str>,
    ) -> Result<KeyPage, ProviderError>;

    /// Deletes up to 1,000 keys in one call.
    async fn delete_keys(
        &self,
        region: &str,
        bucket: &str,
        keys: &[String],
    ) -> Result<(), ProviderError>;
}
