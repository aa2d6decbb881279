//! The `Secrets` and `Parameters` capabilities: a secrets store with versions and a
//! recovery window (AWS Secrets Manager), and a hierarchical parameter store (SSM Parameter
//! Store). Values pass through as [`SecretData`] or `String` and are never kept.

use async_trait::async_trait;
use overcast_types::{Parameter, ParameterType, Secret, SecretData, SecretValue};
use std::collections::BTreeMap;

use crate::ProviderError;

/// What a new secret is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretSpec {
    pub region: String,
    pub name: String,
    pub value: SecretData,
    pub description: Option<String>,
    pub kms_key_id: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// Makes a repeated create or value update one version (Secrets Manager's
    /// `ClientRequestToken`, 32–64 characters).
    pub client_token: String,
}

/// Which version of a secret's value to read: the current one unless told.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionWanted {
    pub version_id: Option<String>,
    pub stage: Option<String>,
}

/// Secrets of one environment's account.
#[async_trait]
pub trait Secrets: Send + Sync {
    /// Every secret of a region, with its tags, those scheduled for deletion included.
    async fn list_secrets(&self, region: &str) -> Result<Vec<Secret>, ProviderError>;

    /// One secret, by name, scheduled for deletion or not; `None` if there is none.
    async fn secret(&self, region: &str, name: &str) -> Result<Option<Secret>, ProviderError>;

    /// Makes a secret with its first version, tagged, in one attempt (see
    /// [`crate::Compute::run_instances`]).
    async fn create_secret(&self, spec: &SecretSpec) -> Result<Secret, ProviderError>;

    /// Adds a version that becomes current; answers its id.
    async fn put_secret_value(
        &self,
        region: &str,
        name: &str,
        value: &SecretData,
        client_token: &str,
    ) -> Result<String, ProviderError>;

    /// One version's value.
    async fn secret_value(
        &self,
        region: &str,
        name: &str,
        wanted: &VersionWanted,
    ) -> Result<SecretValue, ProviderError>;

    /// Schedules a secret's deletion after `window_days` (7–30), or deletes it at once
    /// (0); answers it as it now stands.
    async fn delete_secret(
        &self,
        region: &str,
        name: &str,
        window_days: u32,
    ) -> Result<Option<String>, ProviderError>;

    /// Cancels a scheduled deletion.
    async fn restore_secret(&self, region: &str, name: &str) -> Result<(), ProviderError>;
}

/// What a parameter put writes.
#[derive(Debug, Clone, PartialEq)]
pub struct ParameterSpec {
    pub region: String,
    /// The full name, the org's root included.
    pub name: String,
    pub value: String,
    pub kind: ParameterType,
    pub description: Option<String>,
    pub kms_key_id: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// Replace an existing parameter (a new version) rather than refuse.
    pub overwrite: bool,
}

/// One page of parameters under a path.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParameterPage {
    /// Full names; no values, no tags.
    pub items: Vec<Parameter>,
    pub next_page_token: Option<String>,
}

/// Parameters of one environment's account. Names are full names, org root included.
#[async_trait]
pub trait Parameters: Send + Sync {
    /// The backend's largest page of [`Parameters::list_parameters`] (SSM: 50), and the
    /// most names one [`Parameters::delete_parameters`] takes (SSM: 10).
    fn limits(&self) -> (u32, usize);

    /// One page of the parameters under `path` (directly under it, or at any depth).
    async fn list_parameters(
        &self,
        region: &str,
        path: &str,
        recursive: bool,
        limit: u32,
        page_token: Option<&str>,
    ) -> Result<ParameterPage, ProviderError>;

    /// One parameter with its tags, and its value (a `SecureString` decrypted only when
    /// `decrypt`); `None` if there is none.
    async fn parameter(
        &self,
        region: &str,
        name: &str,
        decrypt: bool,
    ) -> Result<Option<Parameter>, ProviderError>;

    /// Writes a parameter; answers its new version.
    async fn put_parameter(&self, spec: &ParameterSpec) -> Result<i64, ProviderError>;

    /// The versions of a parameter, oldest first, without values.
    async fn parameter_history(
        &self,
        region: &str,
        name: &str,
    ) -> Result<Vec<Parameter>, ProviderError>;

    /// Deletes up to [`Parameters::limits`]' names in one call; answers the names that
    /// were not there.
    async fn delete_parameters(
        &self,
        region: &str,
        names: &[String],
    ) -> Result<Vec<String>, ProviderError>;
}
