//! The kinds of resource the inventory keeps, and for each how it is keyed, in which part
//! of the backend one listing reads it, how it is listed, and which of its fields are
//! watched for drift.

use overcast_provider::InstanceFilter;
use overcast_types::{Bucket, ContainerService, Error, Image, Instance, Owned, SecurityGroup};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::future::Future;

use super::shelf::Shelf;
use super::Inventory;
use crate::environments::Environment;
use crate::errors::provider_error;

/// The part buckets are listed in: the whole account, in one listing.
pub const WHOLE_ACCOUNT: &str = "*";

/// Every kind the inventory keeps, as events name them.
pub const KINDS: [&str; 5] = [
    <Instance as Held>::KIND,
    <Image as Held>::KIND,
    <SecurityGroup as Held>::KIND,
    <Bucket as Held>::KIND,
    <ContainerService as Held>::KIND,
];

/// A kind of resource the inventory keeps.
pub trait Held: Owned + Clone + Send + Sync + Sized + 'static {
    /// The kind as events name it.
    const KIND: &'static str;

    /// Its shelf in an inventory.
    fn shelf(inventory: &Inventory) -> &Shelf<Self>;

    /// What identifies it in its environment.
    fn key(&self) -> String;

    /// Its tags, for overcast's own changes of them.
    fn tags_mut(&mut self) -> &mut BTreeMap<String, String>;

    /// The part of the backend one listing reads it in: its region, or [`WHOLE_ACCOUNT`].
    fn part(&self) -> &str;

    /// The resource as an event shows one created or deleted.
    fn describe(&self) -> Value;

    /// The fields whose change outside overcast is drift.
    fn watched(&self) -> Value {
        self.describe()
    }

    /// Whether it is on its way out, so that leaving the listing is no drift.
    fn is_gone(&self) -> bool {
        false
    }

    /// The parts an environment lists this kind in; an error when it has none of them.
    fn parts(env: &Environment) -> Result<Vec<String>, Error>;

    /// Every resource of this kind in one part, with what overcast derives from tags.
    fn list_part<'a>(
        env: &'a Environment,
        part: &'a str,
    ) -> impl Future<Output = Result<Vec<Self>, Error>> + Send + 'a;
}

impl Held for Instance {
    const KIND: &'static str = "instance";

    fn shelf(inventory: &Inventory) -> &Shelf<Self> {
        &inventory.instances
    }

    fn key(&self) -> String {
        self.id.clone()
    }

    fn tags_mut(&mut self) -> &mut BTreeMap<String, String> {
        &mut self.tags
    }

    fn part(&self) -> &str {
        &self.region
    }

    fn describe(&self) -> Value {
        json!({
            "region": self.region,
            "state": self.state,
            "stage": self.stage,
            "name": self.name,
            "instance_type": self.instance_type,
            "tags": self.tags,
        })
    }

    fn watched(&self) -> Value {
        json!({"state": self.state, "stage": self.stage, "tags": self.tags})
    }

    fn is_gone(&self) -> bool {
        self.state.is_gone()
    }

    fn parts(env: &Environment) -> Result<Vec<String>, Error> {
        env.compute()?;
        env.regions()
    }

    async fn list_part(env: &Environment, part: &str) -> Result<Vec<Self>, Error> {
        let filter = InstanceFilter {
            region: Some(part.to_string()),
            ..InstanceFilter::default()
        };
        let listed = env.compute()?.list_instances(&filter).await;
        let listed = listed.map_err(provider_error)?;
        Ok(listed.into_iter().map(|i| env.decorate(i)).collect())
    }
}

impl Held for Image {
    const KIND: &'static str = "image";

    fn shelf(inventory: &Inventory) -> &Shelf<Self> {
        &inventory.images
    }

    fn key(&self) -> String {
        self.id.clone()
    }

    fn tags_mut(&mut self) -> &mut BTreeMap<String, String> {
        &mut self.tags
    }

    fn part(&self) -> &str {
        &self.region
    }

    fn describe(&self) -> Value {
        json!({"region": self.region, "name": self.name, "state": self.state, "tags": self.tags})
    }

    fn watched(&self) -> Value {
        json!({"name": self.name, "state": self.state, "tags": self.tags})
    }

    fn parts(env: &Environment) -> Result<Vec<String>, Error> {
        env.images()?;
        env.regions()
    }

    async fn list_part(env: &Environment, part: &str) -> Result<Vec<Self>, Error> {
        let listed = env.images()?.list_images(Some(part), &[]).await;
        let listed = listed.map_err(provider_error)?;
        Ok(listed.into_iter().map(|i| env.with_owner(i)).collect())
    }
}

impl Held for SecurityGroup {
    const KIND: &'static str = "security_group";

    fn shelf(inventory: &Inventory) -> &Shelf<Self> {
        &inventory.security_groups
    }

    fn key(&self) -> String {
        self.id.clone()
    }

    fn tags_mut(&mut self) -> &mut BTreeMap<String, String> {
        &mut self.tags
    }

    fn part(&self) -> &str {
        &self.region
    }

    fn describe(&self) -> Value {
        json!({"region": self.region, "name": self.name, "rules": sorted_rules(self), "tags": self.tags})
    }

    fn watched(&self) -> Value {
        json!({"rules": sorted_rules(self), "tags": self.tags})
    }

    fn parts(env: &Environment) -> Result<Vec<String>, Error> {
        env.firewall()?;
        env.regions()
    }

    async fn list_part(env: &Environment, part: &str) -> Result<Vec<Self>, Error> {
        let listed = env.firewall()?.list_groups(Some(part), &[]).await;
        let listed = listed.map_err(provider_error)?;
        Ok(listed.into_iter().map(|g| env.with_owner(g)).collect())
    }
}

/// A group's rules in one order, whatever order a backend lists them in.
fn sorted_rules(group: &SecurityGroup) -> Vec<Value> {
    let mut rules: Vec<Value> = group.rules.iter().map(|r| json!(r)).collect();
    rules.sort_by_cached_key(Value::to_string);
    rules
}

impl Held for Bucket {
    const KIND: &'static str = "bucket";

    fn shelf(inventory: &Inventory) -> &Shelf<Self> {
        &inventory.buckets
    }

    fn key(&self) -> String {
        self.name.clone()
    }

    fn tags_mut(&mut self) -> &mut BTreeMap<String, String> {
        &mut self.tags
    }

    fn part(&self) -> &str {
        WHOLE_ACCOUNT
    }

    fn describe(&self) -> Value {
        json!({"region": self.region, "versioning": self.versioning, "tags": self.tags})
    }

    fn watched(&self) -> Value {
        json!({"versioning": self.versioning, "tags": self.tags})
    }

    fn parts(env: &Environment) -> Result<Vec<String>, Error> {
        env.object_store()?;
        Ok(vec![WHOLE_ACCOUNT.to_string()])
    }

    async fn list_part(env: &Environment, _: &str) -> Result<Vec<Self>, Error> {
        let listed = env.object_store()?.list_buckets().await;
        let listed = listed.map_err(provider_error)?;
        Ok(listed.into_iter().map(|b| env.with_owner(b)).collect())
    }
}

impl Held for ContainerService {
    const KIND: &'static str = "container_service";

    fn shelf(inventory: &Inventory) -> &Shelf<Self> {
        &inventory.container_services
    }

    /// Its ARN, by which the backend tags it; else where it is.
    fn key(&self) -> String {
        self.arn
            .clone()
            .unwrap_or_else(|| format!("{}/{}/{}", self.region, self.cluster, self.name))
    }

    fn tags_mut(&mut self) -> &mut BTreeMap<String, String> {
        &mut self.tags
    }

    fn part(&self) -> &str {
        &self.region
    }

    fn describe(&self) -> Value {
        json!({
            "region": self.region,
            "cluster": self.cluster,
            "name": self.name,
            "status": self.status,
            "task_definition": self.task_definition,
            "desired_count": self.desired_count,
            "tags": self.tags,
        })
    }

    /// What a person sets; counts of running tasks move on their own.
    fn watched(&self) -> Value {
        json!({
            "status": self.status,
            "task_definition": self.task_definition,
            "desired_count": self.desired_count,
            "tags": self.tags,
        })
    }

    fn is_gone(&self) -> bool {
        self.status != "ACTIVE"
    }

    fn parts(env: &Environment) -> Result<Vec<String>, Error> {
        env.containers()?;
        env.regions()
    }

    /// Every cluster's services: one listing of clusters, then one of each's services.
    async fn list_part(env: &Environment, part: &str) -> Result<Vec<Self>, Error> {
        let containers = env.containers()?;
        let clusters = containers.list_clusters(part).await;
        let mut services = Vec::new();
        for cluster in clusters.map_err(provider_error)? {
            let listed = containers.list_services(part, &cluster.name).await;
            services.extend(
                listed
                    .map_err(provider_error)?
                    .into_iter()
                    .map(|s| env.with_owner(s)),
            );
        }
        Ok(services)
    }
}
