//! What this build of overcast is made of: the providers it can run. `overcast serve` and
//! the tests build their servers with [`providers`].

use overcast_aws::{AwsProvider, Settings};
use overcast_core::config::{EnvironmentConfig, ProviderKind};
use overcast_core::environments::ProviderFactory;
use overcast_provider::{CallObserver, Provider};
use std::collections::HashMap;
use std::sync::Arc;

/// A factory for every provider built in. Environments of other providers are listed as
/// unavailable.
pub fn providers() -> HashMap<ProviderKind, ProviderFactory> {
    let aws: ProviderFactory = Box::new(
        |name: &str, env: &EnvironmentConfig, observer: Arc<dyn CallObserver>| {
            let settings = Settings {
                environment: name.to_string(),
                regions: env.regions.clone(),
                endpoint_url: env.endpoint_url.clone(),
                profile: env.profile.clone(),
                role_arn: env.role_arn.clone(),
                external_id: env.external_id.clone(),
                session_name: env.session_name.clone(),
            };
            Arc::new(AwsProvider::new(settings, observer)) as Arc<dyn Provider>
        },
    );
    HashMap::from([(ProviderKind::Aws, aws)])
}
