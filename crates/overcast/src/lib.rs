//! What this build of overcast is made of: the providers it can run (`overcast serve`,
//! `config check` and the tests build their servers with [`providers`]), and the import of
//! the Cloud VM API's config files.

pub mod import_vm_api;

use overcast_aws::AwsFactory;
use overcast_provider::{factories, ProviderFactories};
use overcast_provider_sim::SimFactory;
use overcast_proxmox::ProxmoxFactory;
use overcast_qemu::QemuFactory;
use std::sync::Arc;

/// A factory for every provider built in. Environments of other providers are refused by
/// `config check` and listed as unavailable by a server that is given them anyway.
pub fn providers() -> ProviderFactories {
    factories(vec![
        Arc::new(AwsFactory),
        Arc::new(QemuFactory),
        Arc::new(ProxmoxFactory),
        Arc::new(SimFactory::new()),
    ])
}
