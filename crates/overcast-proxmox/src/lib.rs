//! The Proxmox VE provider: VMs on an on-prem PVE cluster through its REST API
//! (`/api2/json`): its connection (the certificate trusted as configured, API token or
//! ticket sign-in), VMs made from templates and acted on, templates as images, tags as PVE
//! tags, each change followed to its task's end.

mod client;
mod cluster;
mod compute;
mod images;
mod launch;
mod settings;
mod tags;
mod tasks;

use async_trait::async_trait;
use overcast_provider::{
    parse_settings, Provider, ProviderContext, ProviderError, ProviderErrorKind, ProviderFactory,
    ProviderStatus, SettingsCheck, Table, Unavailable,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

pub use client::colon_hex;

/// The one region of a PVE cluster: the cluster itself (its nodes are where VMs run).
const REGION: &str = "pve";

pub(crate) fn unsupported(what: &str) -> ProviderError {
    ProviderError::new(
        ProviderErrorKind::Unsupported,
        "unsupported",
        format!("{what} is not supported by provider proxmox"),
    )
}

pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> ProviderError {
    ProviderError::new(ProviderErrorKind::InvalidInput, "invalid_input", message).with_field(field)
}

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
        let built = parse_settings::<settings::Settings>(context.settings)
            .map_err(|p| format!("{}: {}", p.key, p.message))
            .and_then(|(settings, _)| {
                let client = client::Client::new(&settings, context.observer.clone())?;
                Ok((client, settings.placement()))
            });
        match built {
            Ok((client, placement)) => Arc::new(ProxmoxProvider {
                environment: context.name.to_string(),
                client,
                placement,
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
    /// Where new VMs and their seeds go.
    placement: settings::Placement,
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

    fn images(&self) -> Option<&dyn overcast_provider::Images> {
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
