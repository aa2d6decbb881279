//! What this build of overcast is made of: the providers it can run. `overcast serve` and
//! the tests build their servers with [`providers`].

use overcast_aws::{AwsProvider, Settings};
use overcast_core::config::ProviderKind;
use overcast_core::environments::{ProviderContext, ProviderFactory};
use overcast_provider::Provider;
use overcast_qemu::QemuProvider;
use std::collections::HashMap;
use std::sync::Arc;

/// A factory for every provider built in. Environments of other providers are listed as
/// unavailable.
pub fn providers() -> HashMap<ProviderKind, ProviderFactory> {
    let aws: ProviderFactory = Box::new(|context: ProviderContext| {
        let env = context.config;
        let settings = Settings {
            environment: context.name.to_string(),
            regions: env.regions.clone(),
            endpoint_url: env.endpoint_url.clone(),
            profile: env.profile.clone(),
            role_arn: env.role_arn.clone(),
            external_id: env.external_id.clone(),
            session_name: env.session_name.clone(),
        };
        Arc::new(AwsProvider::new(settings, context.observer)) as Arc<dyn Provider>
    });
    let qemu: ProviderFactory =
        Box::new(|context: ProviderContext| QemuProvider::open(context.name, context.data_dir));
    HashMap::from([(ProviderKind::Aws, aws), (ProviderKind::Qemu, qemu)])
}
