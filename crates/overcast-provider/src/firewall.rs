//! The `Firewall` capability: security groups and their rules.

use async_trait::async_trait;
use overcast_types::{Rule, SecurityGroup};
use std::collections::BTreeMap;

use crate::ProviderError;

/// Security groups of one environment.
#[async_trait]
pub trait Firewall: Send + Sync {
    /// Groups of one region (or all regions), optionally only these ids, with their rules.
    async fn list_groups(
        &self,
        region: Option<&str>,
        ids: &[String],
    ) -> Result<Vec<SecurityGroup>, ProviderError>;

    /// Creates a group, tagged at creation, in one attempt (see [`crate::Compute::run_instances`]:
    /// the caller looks for the group by its operation tag before trying again).
    async fn create_group(
        &self,
        region: &str,
        name: &str,
        description: &str,
        vpc_id: Option<&str>,
        tags: &BTreeMap<String, String>,
    ) -> Result<SecurityGroup, ProviderError>;

    /// Deletes a group; the caller has checked that nothing uses it.
    async fn delete_group(&self, region: &str, id: &str) -> Result<(), ProviderError>;

    /// Adds a rule; a rule that is already there is no error.
    async fn add_rule(
        &self,
        region: &str,
        group_id: &str,
        rule: &Rule,
    ) -> Result<(), ProviderError>;

    /// Removes a rule; a rule that is not there is no error.
    async fn remove_rule(
        &self,
        region: &str,
        group_id: &str,
        rule: &Rule,
    ) -> Result<(), ProviderError>;
}
