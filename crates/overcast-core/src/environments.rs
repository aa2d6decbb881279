//! Environments: the configured targets, each with the provider that serves it, and how
//! they are shown to callers.

use overcast_provider::{
    CallObserver, Capability, Compute, ContainerSupport, Containers, Firewall, Images, KeyPairs,
    ObjectStore, Parameters, Provider, ProviderContext, ProviderFactories, Secrets,
    ServiceDiscovery, Tags, Unavailable,
};
use overcast_types::{tags, Error, ErrorKind, Owned, StagePolicy};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use utoipa::ToSchema;

use crate::access::check_referenced;
use crate::auth::Principal;
use crate::config::{Config, EnvironmentConfig, MachineType};
use crate::errors::provider_error;
use crate::inventory::Inventory;

/// A configured environment and its provider.
pub struct Environment {
    pub name: String,
    /// The other server that drives it, when this one does not.
    pub served_by: Option<String>,
    pub config: EnvironmentConfig,
    pub stages: StagePolicy,
    pub provider: Arc<dyn Provider>,
    /// Its instances as last read or written (see [`crate::inventory`]).
    pub inventory: Inventory,
}

/// An environment as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EnvironmentView {
    pub name: String,
    /// The provider's kind: `aws`, `qemu`, `sim`.
    pub provider: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub regions: Vec<String>,
    pub stages: StagePolicy,
    /// Whether the backend answers now.
    pub reachable: bool,
    /// Why it does not, and what to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
    pub capabilities: Vec<Capability>,
    /// The other server that drives it (this one refuses its requests).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub served_by: Option<String>,
}

/// A machine type as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MachineTypeView {
    pub name: String,
    #[serde(flatten)]
    pub machine: MachineType,
}

/// Every environment of the server, by name.
#[derive(Default)]
pub struct Environments {
    by_name: BTreeMap<String, Arc<Environment>>,
}

impl Environments {
    /// Builds each environment's provider. Providers not part of this build are listed as
    /// unavailable with the reason, so the rest of overcast works on.
    pub fn from_config(
        config: &Config,
        providers: &ProviderFactories,
        observer: Arc<dyn CallObserver>,
    ) -> Environments {
        let by_name = config
            .environments
            .iter()
            .map(|(name, env)| {
                let served_by = env.served_by.clone().filter(|_| !config.serves(env));
                let provider = match providers.get(env.provider.as_str()) {
                    // Never opened here: another server drives it.
                    Some(_) if served_by.is_some() => Arc::new(Unavailable::new(
                        env.provider.as_str(),
                        format!(
                            "served by server {}, where its resources are",
                            env.served_by.as_deref().unwrap_or_default()
                        ),
                    )) as Arc<dyn Provider>,
                    Some(factory) => factory.build(ProviderContext {
                        name,
                        settings: &env.settings,
                        observer: observer.clone(),
                        data_dir: config.data_dir().join("environments").join(name),
                    }),
                    None => Arc::new(Unavailable::new(
                        env.provider.as_str(),
                        format!(
                            "the {} provider is not part of this build of overcast",
                            env.provider
                        ),
                    )) as Arc<dyn Provider>,
                };
                let environment = Environment {
                    name: name.clone(),
                    served_by,
                    config: env.clone(),
                    stages: config.stage_policy(name).clone(),
                    provider,
                    inventory: Inventory::new(name),
                };
                (name.clone(), Arc::new(environment))
            })
            .collect();
        Environments { by_name }
    }

    /// The environment of that name; 404 if there is none.
    pub fn require(&self, name: &str) -> Result<&Environment, Error> {
        self.shared(name).map(|env| &**env)
    }

    /// The environment of that name, as a handle of its own (for work that outlives the
    /// borrow of the registry, such as a running operation).
    pub fn shared(&self, name: &str) -> Result<&Arc<Environment>, Error> {
        self.by_name
            .get(name)
            .ok_or_else(|| Error::not_found("environment", name))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Environment> {
        self.by_name.values().map(|env| &**env)
    }
}

impl Environment {
    /// 503 with the reason when the provider cannot run here.
    fn available(&self) -> Result<&dyn Provider, Error> {
        if let Some(server) = &self.served_by {
            return Err(Error {
                field: Some("environment".into()),
                ..Error::conflict(
                    "served_elsewhere",
                    format!(
                        "environment {} is driven by server {server}, where its resources are: send its requests there",
                        self.name
                    ),
                )
            });
        }
        match self.provider.unavailable_reason() {
            Some(reason) => Err(Error::unavailable(
                "environment_unavailable",
                format!("environment {} is unavailable: {reason}", self.name),
                30,
            )),
            None => Ok(self.provider.as_ref()),
        }
    }

    /// A capability of this environment's provider, or why it cannot be had: the provider
    /// cannot run here (503 with the reason), or it lacks the capability (400).
    fn capability<'a, T: ?Sized>(
        &'a self,
        what: &str,
        get: impl FnOnce(&'a dyn Provider) -> Option<&'a T>,
    ) -> Result<&'a T, Error> {
        get(self.available()?).ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                "not_supported",
                format!(
                    "{what} are not supported by provider {}",
                    self.provider.kind()
                ),
            )
        })
    }

    /// The environment's virtual machines.
    pub fn compute(&self) -> Result<&dyn Compute, Error> {
        self.capability("instances", |p| p.compute())
    }

    pub fn images(&self) -> Result<&dyn Images, Error> {
        self.capability("images", |p| p.images())
    }

    pub fn firewall(&self) -> Result<&dyn Firewall, Error> {
        self.capability("security groups", |p| p.firewall())
    }

    pub fn key_pairs(&self) -> Result<&dyn KeyPairs, Error> {
        self.capability("key pairs", |p| p.key_pairs())
    }

    pub fn object_store(&self) -> Result<&dyn ObjectStore, Error> {
        self.capability("buckets", |p| p.object_store())
    }

    pub fn tags(&self) -> Result<&dyn Tags, Error> {
        self.capability("tags", |p| p.tags())
    }

    pub fn secrets(&self) -> Result<&dyn Secrets, Error> {
        self.capability("secrets", |p| p.secrets())
    }

    pub fn parameters(&self) -> Result<&dyn Parameters, Error> {
        self.capability("parameters", |p| p.parameters())
    }

    pub fn containers(&self) -> Result<&dyn Containers, Error> {
        self.capability("container services", |p| p.containers())
    }

    pub fn container_support(&self) -> Result<&dyn ContainerSupport, Error> {
        self.capability("container logs and roles", |p| p.container_support())
    }

    pub fn service_discovery(&self) -> Result<&dyn ServiceDiscovery, Error> {
        self.capability("service discovery", |p| p.service_discovery())
    }

    pub async fn view(&self) -> EnvironmentView {
        let status = self.provider.status().await;
        EnvironmentView {
            name: self.name.clone(),
            provider: self.config.provider.clone(),
            description: self.config.description.clone(),
            // The provider's own regions (a local environment's is `local`); none while it
            // cannot run here.
            regions: self.provider.regions(),
            stages: self.stages.clone(),
            reachable: status.reachable,
            reason: status.reason,
            details: status.details,
            capabilities: self.provider.capabilities(),
            served_by: self.served_by.clone(),
        }
    }
}

impl Environment {
    /// Sets the org that owns a resource: its `overcast:org` tag, else the default org.
    pub fn with_owner<T: Owned>(&self, mut resource: T) -> T {
        self.set_owner(&mut resource);
        resource
    }

    /// Sets a resource's org from its tags (else the environment's default org).
    pub fn set_owner<T: Owned>(&self, resource: &mut T) {
        let org = resource
            .tags()
            .get(tags::ORG)
            .cloned()
            .or_else(|| self.config.default_org.clone());
        resource.set_org(org);
    }

    /// Checks the image, key pair and security groups a request body names, where this
    /// provider has them: another org's answers 404 naming the field.
    pub(crate) async fn check_references(
        &self,
        principal: &Principal,
        region: &str,
        image: Option<&str>,
        key_pair: Option<&str>,
        security_groups: &[String],
    ) -> Result<(), Error> {
        if let (Some(id), Ok(images)) = (image, self.images()) {
            let found = images
                .list_images(Some(region), &[id.to_string()])
                .await
                .map_err(provider_error)?
                .into_iter()
                .next();
            check_referenced(principal, found, "image", id, "image".into())?;
        }
        if let (Some(name), Ok(key_pairs)) = (key_pair, self.key_pairs()) {
            let found = key_pairs
                .list_key_pairs(Some(region))
                .await
                .map_err(provider_error)?
                .into_iter()
                .find(|k| k.name == name);
            check_referenced(principal, found, "key_pair", name, "key_pair".into())?;
        }
        if let (false, Ok(firewall)) = (security_groups.is_empty(), self.firewall()) {
            let groups = firewall
                .list_groups(Some(region), &[])
                .await
                .map_err(provider_error)?;
            for (i, id) in security_groups.iter().enumerate() {
                let found = groups.iter().find(|g| &g.id == id).cloned();
                let field = format!("security_groups[{i}]");
                check_referenced(principal, found, "security_group", id, field)?;
            }
        }
        Ok(())
    }

    /// The regions the environment spans.
    pub fn regions(&self) -> Result<Vec<String>, Error> {
        Ok(self.available()?.regions())
    }

    /// A region of this environment: the one asked for (checked), else the first.
    pub fn region_or_first(&self, region: Option<&str>) -> Result<String, Error> {
        self.check_region(region)
    }

    /// The region asked for, checked; none when none was asked for.
    pub fn region_if_given(&self, region: Option<&str>) -> Result<Option<String>, Error> {
        region.map(|r| self.check_region(Some(r))).transpose()
    }

    pub(crate) fn check_region(&self, region: Option<&str>) -> Result<String, Error> {
        let regions = self.available()?.regions();
        match region {
            None => regions
                .first()
                .cloned()
                .ok_or_else(|| Error::invalid("region", "the environment has no region")),
            Some(r) if regions.iter().any(|known| known == r) => Ok(r.to_string()),
            Some(r) => Err(Error::invalid(
                "region",
                format!(
                    "`{r}` is not one of this environment's regions ({})",
                    regions.join(", ")
                ),
            )),
        }
    }
}
