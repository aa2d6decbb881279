//! What the sim's container services lean on: log groups (its containers log nothing, so
//! every stream reads empty), the execution role, and Cloud Map services in the one
//! namespace every region has, [`SIM_NAMESPACE`].

use async_trait::async_trait;
use overcast_provider::{
    ContainerSupport, LogPage, LogQuery, ProviderError, ProviderErrorKind, RegistrySpec,
    ServiceDiscovery,
};
use overcast_types::Registry;
use std::collections::BTreeMap;

use crate::SimProvider;

/// The service discovery namespace of every sim region.
pub const SIM_NAMESPACE: &str = "ns-sim";
/// The DNS domain of [`SIM_NAMESPACE`].
pub const SIM_DOMAIN: &str = "sim.internal";

#[async_trait]
impl ContainerSupport for SimProvider {
    async fn ensure_log_group(
        &self,
        region: &str,
        group: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<bool, ProviderError> {
        self.run("CreateLogGroup", region, |world| {
            let groups = &mut world.region_mut(region)?.log_groups;
            if groups.contains_key(group) {
                return Ok(false);
            }
            groups.insert(group.to_string(), tags.clone());
            Ok(true)
        })
        .await
    }

    async fn log_group_tags(
        &self,
        region: &str,
        group: &str,
    ) -> Result<Option<BTreeMap<String, String>>, ProviderError> {
        self.run("ListTagsLogGroup", region, |world| {
            Ok(world.region(region)?.log_groups.get(group).cloned())
        })
        .await
    }

    async fn delete_log_group(&self, region: &str, group: &str) -> Result<(), ProviderError> {
        self.run("DeleteLogGroup", region, |world| {
            world.region_mut(region)?.log_groups.remove(group);
            Ok(())
        })
        .await
    }

    async fn log_events(
        &self,
        region: &str,
        _group: &str,
        _stream: &str,
        _query: &LogQuery,
    ) -> Result<LogPage, ProviderError> {
        self.run("GetLogEvents", region, |_| Ok(LogPage::default()))
            .await
    }

    async fn ensure_execution_role(&self, name: &str) -> Result<String, ProviderError> {
        let region = self.settings.regions.first().cloned().unwrap_or_default();
        self.run("CreateRole", &region, |world| {
            world.roles.insert(name.to_string());
            Ok(format!("arn:aws:iam::000000000000:role/{name}"))
        })
        .await
    }
}

#[async_trait]
impl ServiceDiscovery for SimProvider {
    async fn namespace_name(
        &self,
        region: &str,
        namespace: &str,
    ) -> Result<Option<String>, ProviderError> {
        self.run("servicediscovery:GetNamespace", region, |_| {
            Ok((namespace == SIM_NAMESPACE).then(|| SIM_DOMAIN.to_string()))
        })
        .await
    }

    async fn list_registries(
        &self,
        region: &str,
        namespace: Option<&str>,
    ) -> Result<Vec<Registry>, ProviderError> {
        self.run("servicediscovery:ListServices", region, |world| {
            Ok(world
                .region(region)?
                .registries
                .values()
                .map(|(registry, _)| registry)
                .filter(|r| namespace.is_none_or(|n| r.namespace == n))
                .cloned()
                .collect())
        })
        .await
    }

    async fn registry(&self, region: &str, id: &str) -> Result<Option<Registry>, ProviderError> {
        self.run("servicediscovery:GetService", region, |world| {
            Ok(world
                .region(region)?
                .registries
                .get(id)
                .map(|(registry, _)| registry.clone()))
        })
        .await
    }

    /// Cloud Map refuses a name taken in the namespace, unless the same client token asks
    /// again, which answers the first create's service.
    async fn create_registry(&self, spec: &RegistrySpec) -> Result<Registry, ProviderError> {
        self.run("servicediscovery:CreateService", &spec.region, |world| {
            if spec.namespace != SIM_NAMESPACE {
                return Err(ProviderError::new(
                    ProviderErrorKind::NotFound,
                    "namespace_not_found",
                    format!("namespace {} does not exist", spec.namespace),
                ));
            }
            let taken = world
                .region(&spec.region)?
                .registries
                .values()
                .find(|(r, _)| r.namespace == spec.namespace && r.name == spec.name)
                .cloned();
            match taken {
                Some((registry, token)) if token == spec.client_token => return Ok(registry),
                Some(_) => {
                    return Err(ProviderError::new(
                        ProviderErrorKind::Conflict,
                        "registry_exists",
                        format!("a service named {} exists in {}", spec.name, spec.namespace),
                    ))
                }
                None => {}
            }
            let id = world.ids.next("srv");
            let registry = Registry {
                arn: Some(format!(
                    "arn:aws:servicediscovery:{}:000000000000:service/{id}",
                    spec.region
                )),
                id: id.clone(),
                name: spec.name.clone(),
                region: spec.region.clone(),
                namespace: spec.namespace.clone(),
                dns_ttl: Some(spec.dns_ttl),
                instance_count: 0,
                tags: spec.tags.clone(),
                org: None,
            };
            world
                .region_mut(&spec.region)?
                .registries
                .insert(id, (registry.clone(), spec.client_token.clone()));
            Ok(registry)
        })
        .await
    }

    async fn delete_registry(&self, region: &str, id: &str) -> Result<(), ProviderError> {
        self.run("servicediscovery:DeleteService", region, |world| {
            world.region_mut(region)?.registries.remove(id);
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{provider, settings};

    fn sim() -> SimProvider {
        provider(settings(0.0)).0
    }

    #[tokio::test]
    async fn log_groups_are_made_once_and_roles_are_stable() {
        let sim = sim();
        let tags = BTreeMap::from([("overcast:org".to_string(), "acme".to_string())]);
        assert!(sim.ensure_log_group("sim-1", "/app", &tags).await.unwrap());
        assert!(!sim.ensure_log_group("sim-1", "/app", &tags).await.unwrap());
        assert_eq!(
            sim.log_group_tags("sim-1", "/app").await.unwrap(),
            Some(tags)
        );
        sim.delete_log_group("sim-1", "/app").await.unwrap();
        assert_eq!(sim.log_group_tags("sim-1", "/app").await.unwrap(), None);
        let role = sim.ensure_execution_role("exec").await.unwrap();
        assert_eq!(role, sim.ensure_execution_role("exec").await.unwrap());
    }

    #[tokio::test]
    async fn registries_live_in_the_one_namespace_and_tokens_make_one() {
        let sim = sim();
        assert_eq!(
            sim.namespace_name("sim-1", SIM_NAMESPACE)
                .await
                .unwrap()
                .as_deref(),
            Some(SIM_DOMAIN)
        );
        assert_eq!(sim.namespace_name("sim-1", "ns-other").await.unwrap(), None);
        let spec = RegistrySpec {
            region: "sim-1".into(),
            namespace: SIM_NAMESPACE.into(),
            name: "web".into(),
            dns_ttl: 30,
            tags: BTreeMap::new(),
            client_token: "token-1".into(),
        };
        let made = sim.create_registry(&spec).await.unwrap();
        assert_eq!(sim.create_registry(&spec).await.unwrap(), made);
        let other_token = RegistrySpec {
            client_token: "token-2".into(),
            ..spec.clone()
        };
        assert_eq!(
            sim.create_registry(&other_token).await.unwrap_err().kind,
            ProviderErrorKind::Conflict
        );
        assert_eq!(
            sim.list_registries("sim-1", Some(SIM_NAMESPACE))
                .await
                .unwrap(),
            std::slice::from_ref(&made)
        );
        sim.delete_registry("sim-1", &made.id).await.unwrap();
        assert_eq!(sim.registry("sim-1", &made.id).await.unwrap(), None);
    }
}
