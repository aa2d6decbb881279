//! The `KeyPairs` capability: SSH key pairs the backend installs on machines.

use async_trait::async_trait;
use std::collections::BTreeMap;

use crate::ProviderError;

/// A key pair as the backend holds it: never its private key.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct KeyPair {
    pub name: String,
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// `rsa` or `ed25519`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_type: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Its `overcast:org` tag, else the environment's default org.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
}

overcast_types::owned_by_tags!(KeyPair);

#[async_trait]
pub trait KeyPairs: Send + Sync {
    /// Key pairs of one region (or all).
    async fn list_key_pairs(&self, region: Option<&str>) -> Result<Vec<KeyPair>, ProviderError>;

    /// Makes a key pair; the answer holds its private key, which the caller must not keep.
    async fn create_key_pair(
        &self,
        region: &str,
        name: &str,
        key_type: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(KeyPair, String), ProviderError>;

    /// Records a public key the caller holds the private half of.
    async fn import_key_pair(
        &self,
        region: &str,
        name: &str,
        public_key: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<KeyPair, ProviderError>;

    /// Deletes a key pair; a missing one is no error.
    async fn delete_key_pair(&self, region: &str, name: &str) -> Result<(), ProviderError>;
}
