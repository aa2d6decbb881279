//! The Proxmox VE provider: VMs on an on-prem PVE cluster through its REST API
//! (`/api2/json`). So far: its connection (the certificate trusted as configured, API token
//! or ticket sign-in, the cluster's reachability and version as the environment's status)
//! and its VMs listed and acted on, each change followed to its task's end.

mod client;
mod compute;
mod settings;
mod tasks;

use async_trait::async_trait;
use overcast_provider::{
    parse_settings, Provider, ProviderContext, ProviderFactory, ProviderStatus, SettingsCheck,
    Table, Unavailable,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

pub use client::colon_hex;

/// The one region of a PVE cluster: the cluster itself (its nodes are where VMs run).
const REGION: &str = "pve";

/// Makes `proxmox` environments.
pub struct ProxmoxFactory;

impl ProviderFactory for ProxmoxFactory {
    fn kind(&self) -> &'static str {
        "proxmox"
    }

    fn environment_keys(&self) -> &'static [&'static str] {
        settings::KEYS
    }

    fn check_environment(&self, settings: &Table) -> SettingsCheck {
        settings::check(settings)
    }

    fn check_machine(&self, machine: &Table) -> SettingsCheck {
        overcast_provider::check_settings::<compute::ProxmoxMachine>(
            machine,
            compute::ProxmoxMachine::problems,
        )
    }

    fn build(&self, context: ProviderContext<'_>) -> Arc<dyn Provider> {
        let client = parse_settings::<settings::Settings>(context.settings)
            .map_err(|p| format!("{}: {}", p.key, p.message))
            .and_then(|(settings, _)| client::Client::new(&settings, context.observer.clone()));
        match client {
            Ok(client) => Arc::new(ProxmoxProvider {
                environment: context.name.to_string(),
                client,
            }),
            Err(reason) => Arc::new(Unavailable::new("proxmox", reason)),
        }
    }
}

/// One PVE cluster.
pub struct ProxmoxProvider {
    /// The environment's name, put on every instance overcast reports.
    environment: String,
    client: client::Client,
}

/// `GET /version`.
#[derive(Deserialize)]
struct Version {
    version: String,
    #[serde(default)]
    release: Option<String>,
}

#[async_trait]
impl Provider for ProxmoxProvider {
    fn kind(&self) -> &str {
        "proxmox"
    }

    fn regions(&self) -> Vec<String> {
        vec![REGION.into()]
    }

    fn compute(&self) -> Option<&dyn overcast_provider::Compute> {
        Some(self)
    }

    fn tags(&self) -> Option<&dyn overcast_provider::Tags> {
        Some(self)
    }

    /// Reachable when the cluster answers its version to overcast's credentials.
    async fn status(&self) -> ProviderStatus {
        match self.client.get::<Version>("/version").await {
            Ok(version) => {
                let mut details = BTreeMap::from([("version".to_string(), version.version)]);
                if let Some(release) = version.release {
                    details.insert("release".into(), release);
                }
                ProviderStatus {
                    reachable: true,
                    reason: None,
                    details,
                }
            }
            Err(e) => ProviderStatus::unreachable(e.message),
        }
    }
}
