//! Environments: the configured targets, each with the provider that serves it, and how
//! they are shown to callers.

use overcast_provider::{
    CallObserver, Capability, Compute, Firewall, Images, KeyPairs, ObjectStore, Provider,
    Unavailable,
};
use overcast_types::{Error, ErrorKind, StagePolicy};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use utoipa::ToSchema;

use crate::config::{Config, EnvironmentConfig, MachineType, ProviderKind};

/// A configured environment and its provider.
pub struct Environment {
    pub name: String,
    pub config: EnvironmentConfig,
    pub stages: StagePolicy,
    pub provider: Arc<dyn Provider>,
}

/// An environment as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EnvironmentView {
    pub name: String,
    /// `aws` or `qemu`.
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
}

/// A machine type as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MachineTypeView {
    pub name: String,
    #[serde(flatten)]
    pub machine: MachineType,
}

/// Every environment of the server, by name.
pub struct Environments {
    by_name: BTreeMap<String, Environment>,
}

impl Environments {
    /// Builds each environment's provider. Providers not part of this build are listed as
    /// unavailable with the reason, so the rest of overcast works on.
    pub fn from_config(
        config: &Config,
        providers: &HashMap<ProviderKind, ProviderFactory>,
        observer: Arc<dyn CallObserver>,
    ) -> Environments {
        let by_name = config
            .environments
            .iter()
            .map(|(name, env)| {
                let provider = match providers.get(&env.provider) {
                    Some(factory) => factory(ProviderContext {
                        name,
                        config: env,
                        observer: observer.clone(),
                        data_dir: config.data_dir().join("environments").join(name),
                    }),
                    None => Arc::new(Unavailable::new(
                        env.provider.as_str(),
                        format!(
                            "the {} provider is not part of this build of overcast yet",
                            env.provider.as_str()
                        ),
                    )) as Arc<dyn Provider>,
                };
                let environment = Environment {
                    name: name.clone(),
                    config: env.clone(),
                    stages: config.stage_policy(name).clone(),
                    provider,
                };
                (name.clone(), environment)
            })
            .collect();
        Environments { by_name }
    }

    /// The environment of that name; 404 if there is none.
    pub fn require(&self, name: &str) -> Result<&Environment, Error> {
        self.by_name
            .get(name)
            .ok_or_else(|| Error::not_found("environment", name))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Environment> {
        self.by_name.values()
    }
}

/// Makes the provider of one environment from its name and config; the provider reports
/// its backend calls to the observer.
pub type ProviderFactory = Box<dyn Fn(ProviderContext) -> Arc<dyn Provider> + Send + Sync>;

/// What a provider is made from: its environment's name and config, where it reports its
/// backend calls, and a directory of its own under the server's data dir.
pub struct ProviderContext<'a> {
    pub name: &'a str,
    pub config: &'a EnvironmentConfig,
    pub observer: Arc<dyn CallObserver>,
    pub data_dir: std::path::PathBuf,
}

impl Environment {
    /// A capability of this environment's provider, or why it cannot be had: the provider
    /// cannot run here (503 with the reason), or it lacks the capability (400).
    fn capability<'a, T: ?Sized>(
        &'a self,
        what: &str,
        get: impl FnOnce(&'a dyn Provider) -> Option<&'a T>,
    ) -> Result<&'a T, Error> {
        if let Some(reason) = self.provider.unavailable_reason() {
            return Err(Error::unavailable(
                "environment_unavailable",
                format!("environment {} is unavailable: {reason}", self.name),
                30,
            ));
        }
        get(self.provider.as_ref()).ok_or_else(|| {
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

    pub async fn view(&self) -> EnvironmentView {
        let status = self.provider.status().await;
        EnvironmentView {
            name: self.name.clone(),
            provider: self.config.provider.as_str().into(),
            description: self.config.description.clone(),
            // The provider's own regions where it has them (a local environment's is
            // `local`), else the configured ones.
            regions: self
                .provider
                .compute()
                .map_or_else(|| self.config.regions.clone(), |c| c.regions()),
            stages: self.stages.clone(),
            reachable: status.reachable,
            reason: status.reason,
            details: status.details,
            capabilities: self.provider.capabilities(),
        }
    }
}
