//! Tags: the rules every tag set follows (EC2's limits; overcast's own keys reserved), and
//! setting or removing the tags of one resource of any kind (instance, image, security
//! group, bucket, parameter, container cluster or service) as an operation, through the
//! provider's `Tags` capability.

use async_trait::async_trait;
use overcast_types::{tags, Error, Operation, Role, TargetResult};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::app::{Core, Idempotency, Target};
use crate::auth::Principal;
use crate::inventory::{Held, Shelf};
use crate::operations::attempts::repeatable;
use crate::operations::{Change, OperationContext};

const RESERVED: &str = "keys starting with overcast: or aws: are reserved";

/// Tag keys and values as EC2 allows them, never overcast's own keys.
pub fn check_tags(tags: &BTreeMap<String, String>) -> Result<(), Error> {
    for (key, value) in tags {
        let field = format!("tags.{key}");
        if key.is_empty() || key.chars().count() > 128 {
            return Err(Error::invalid(field, "a tag key has 1 to 128 characters"));
        }
        if tags::is_reserved(key) {
            return Err(Error::invalid(field, RESERVED));
        }
        if value.chars().count() > 256 {
            return Err(Error::invalid(
                field,
                "a tag value has at most 256 characters",
            ));
        }
    }
    Ok(())
}

/// Tag keys to remove: never overcast's own.
pub fn check_keys(keys: &[String]) -> Result<(), Error> {
    match keys.iter().position(|k| tags::is_reserved(k)) {
        Some(i) => Err(Error::invalid(format!("keys[{i}]"), RESERVED)),
        None => Ok(()),
    }
}

pub use overcast_provider::ResourceKind;

/// The operation kind of a tag change on one resource of `kind`.
fn tag_kind(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::Instance => "instance.tag",
        ResourceKind::Image => "image.tag",
        ResourceKind::SecurityGroup => "security_group.tag",
        ResourceKind::Bucket => "bucket.tag",
        ResourceKind::Secret => "secret.tag",
        ResourceKind::Parameter => "parameter.tag",
        ResourceKind::Cluster => "cluster.tag",
        ResourceKind::ContainerService => "container_service.tag",
    }
}

/// Tags to set and keys to remove on one resource.
#[derive(Debug, Clone)]
pub struct TagRequest {
    pub target: ResourceKind,
    pub id: String,
    pub set: BTreeMap<String, String>,
    pub remove: Vec<String>,
}

/// What a tag operation records: tags to set and keys to remove.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TagInput {
    pub environment: String,
    /// Recorded since the kinds moved into one change; older records are instances'.
    #[serde(default)]
    pub target: ResourceKind,
    pub region: String,
    pub ids: Vec<String>,
    pub set: BTreeMap<String, String>,
    pub remove: Vec<String>,
}

/// `instance.tag`, `image.tag`, `security_group.tag`, `bucket.tag`: setting and removing
/// tags are idempotent, so a re-run is safe.
pub(crate) struct Tag;

#[async_trait]
impl Change for Tag {
    const KINDS: &'static [&'static str] = &[
        "instance.tag",
        "image.tag",
        "security_group.tag",
        "bucket.tag",
        "secret.tag",
        "parameter.tag",
        "cluster.tag",
        "container_service.tag",
    ];
    type Input = TagInput;

    fn kind(input: &TagInput) -> &'static str {
        tag_kind(input.target)
    }

    async fn run(&self, input: TagInput, cx: &mut OperationContext) -> Result<(), Error> {
        let env = cx.environment(&input.environment)?;
        let tags = env.tags()?;
        let (region, kind, ids) = (&input.region, input.target, &input.ids);
        cx.set_total(ids.len() as u64).await?;
        let cancellation = cx.cancellation();
        if !input.set.is_empty() {
            repeatable("tag", &cancellation, || {
                tags.set_tags(region, kind, ids, &input.set)
            })
            .await?;
        }
        if !input.remove.is_empty() {
            repeatable("untag", &cancellation, || {
                tags.remove_tags(region, kind, ids, &input.remove)
            })
            .await?;
        }
        // What overcast set, as it will read back, so the next refresh sees no drift.
        let retag = |tags: &mut BTreeMap<String, String>| {
            tags.extend(input.set.clone());
            tags.retain(|k, _| !input.remove.contains(k));
        };
        let inventory = &env.inventory;
        match kind {
            ResourceKind::Instance => inventory.instances.update(ids, |instance| {
                retag(&mut instance.tags);
                env.redecorate(instance);
            }),
            ResourceKind::Image => retag_held(&inventory.images, ids, retag),
            ResourceKind::SecurityGroup => retag_held(&inventory.security_groups, ids, retag),
            ResourceKind::Bucket => retag_held(&inventory.buckets, ids, retag),
            ResourceKind::ContainerService => retag_held(&inventory.container_services, ids, retag),
            // Not kept in the inventory.
            ResourceKind::Secret | ResourceKind::Parameter | ResourceKind::Cluster => {}
        }
        cx.record_many(input.ids.iter().map(TargetResult::done).collect())
            .await
    }
}

impl Core {
    /// Sets and removes tags of one resource, as an operation.
    pub async fn tag_resource(
        &self,
        principal: &Principal,
        env: &str,
        request: TagRequest,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        principal.require(Role::Operator)?;
        if let Some(operation) = self.replayed(principal, idempotency).await? {
            return Ok(operation);
        }
        check_tags(&request.set)?;
        check_keys(&request.remove)?;
        if request.set.is_empty() && request.remove.is_empty() {
            return Err(Error::invalid("tags", "give at least one tag"));
        }
        let id = request.id.as_str();
        // What the backend knows the resource by, where that is not the caller's id.
        let mut backend_id = request.id.clone();
        let (region, org) = match request.target {
            ResourceKind::Instance => {
                let found = self.instance(principal, env, id).await?;
                (found.region, found.org)
            }
            ResourceKind::Image => {
                let found = self.image(principal, env, id).await?;
                (found.region, found.org)
            }
            ResourceKind::SecurityGroup => {
                let found = self.security_group(principal, env, id).await?;
                (found.region, found.org)
            }
            ResourceKind::Bucket => {
                let found = self.bucket(principal, env, id).await?;
                (found.region, found.org)
            }
            // A parameter by the caller's name, below its org's root.
            ResourceKind::Parameter => {
                self.parameter(principal, env, None, id).await?;
                backend_id = crate::parameters::full_name(principal, "id", id)?;
                let region = self.environments.require(env)?.region_or_first(None)?;
                (region, Some(principal.org.clone()))
            }
            // A cluster by its name, a service as `CLUSTER/SERVICE`; both by ARN at the backend.
            ResourceKind::Cluster => {
                let found = self.cluster(principal, env, None, id).await?;
                backend_id = arn_of(found.arn, id)?;
                (found.region, found.org)
            }
            ResourceKind::ContainerService => {
                let (cluster, name) = id
                    .split_once('/')
                    .ok_or_else(|| Error::invalid("id", "name a service as CLUSTER/SERVICE"))?;
                let found = self
                    .container_service(principal, env, None, cluster, name)
                    .await?;
                backend_id = arn_of(found.arn, id)?;
                (found.region, found.org)
            }
            // Secrets change their tags through their own update route.
            ResourceKind::Secret => {
                return Err(Error::invalid(
                    "target",
                    "tag secrets through their own update route",
                ))
            }
        };
        let input = TagInput {
            environment: env.to_string(),
            target: request.target,
            region,
            ids: vec![backend_id],
            set: request.set,
            remove: request.remove,
        };
        let target = Target::new(env, format!("{env}/{id}")).owned_by(org.as_deref());
        self.start::<Tag>(principal, target, &input, idempotency)
            .await
    }
}

/// Changes the tags of the resources of one kind the inventory holds.
fn retag_held<T: Held>(
    shelf: &Shelf<T>,
    ids: &[String],
    retag: impl Fn(&mut BTreeMap<String, String>),
) {
    shelf.update(ids, |item| retag(item.tags_mut()));
}

/// A container resource's ARN, which its backend tags it by.
fn arn_of(arn: Option<String>, id: &str) -> Result<String, Error> {
    arn.ok_or_else(|| Error::internal(format!("{id} has no ARN to tag it by")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_and_oversized_tags_are_refused() {
        let tags = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        assert!(check_tags(&tags("team", "web")).is_ok());
        assert_eq!(
            check_tags(&tags("overcast:org", "x"))
                .unwrap_err()
                .field
                .as_deref(),
            Some("tags.overcast:org")
        );
        assert!(check_tags(&tags("", "x")).is_err());
        assert!(check_tags(&tags("k", &"v".repeat(257))).is_err());
        assert_eq!(
            check_keys(&["team".into(), "aws:x".into()])
                .unwrap_err()
                .field
                .as_deref(),
            Some("keys[1]")
        );
    }
}
