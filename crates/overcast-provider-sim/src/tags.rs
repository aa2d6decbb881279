//! Tags on every kind of resource as the `Tags` capability: EC2's CreateTags and DeleteTags
//! for instances, images (and their snapshots) and security groups, in batches of the
//! environment's `max_ids_per_call`, each all or nothing; S3's whole-set bucket tagging,
//! read, merged and written back; Secrets Manager's TagResource and UntagResource for
//! secrets by name, and SSM's AddTagsToResource and RemoveTagsFromResource for parameters
//! by full name, and ECS's TagResource and UntagResource for clusters and services by ARN,
//! one resource a call.

use async_trait::async_trait;
use overcast_provider::{ProviderError, ResourceKind, Tags};
use std::collections::BTreeMap;

use crate::compute::check_tags;
use crate::errors::{group_not_found, image_not_found, instance_not_found};
use crate::storage::bucket_in;
use crate::world::{Region, World};
use crate::SimProvider;

/// Whether a tag call sets tags or removes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tagging {
    Set,
    Remove,
}

impl Tagging {
    /// The call that changes tags of a kind (buckets have their own two).
    fn action(self, kind: ResourceKind) -> &'static str {
        match (kind, self) {
            (ResourceKind::Secret, Tagging::Set) => "TagResource",
            (ResourceKind::Secret, Tagging::Remove) => "UntagResource",
            (ResourceKind::Parameter, Tagging::Set) => "AddTagsToResource",
            (ResourceKind::Parameter, Tagging::Remove) => "RemoveTagsFromResource",
            (ResourceKind::Cluster | ResourceKind::ContainerService, Tagging::Set) => "TagResource",
            (ResourceKind::Cluster | ResourceKind::ContainerService, Tagging::Remove) => {
                "UntagResource"
            }
            (_, Tagging::Set) => "CreateTags",
            (_, Tagging::Remove) => "DeleteTags",
        }
    }
}

/// The tag set of one EC2 resource of a kind, or the refusal EC2 gives for a missing one.
fn tags_of<'a>(
    region: &'a mut Region,
    kind: ResourceKind,
    id: &str,
) -> Result<&'a mut BTreeMap<String, String>, ProviderError> {
    match kind {
        ResourceKind::Instance => region
            .instances
            .get_mut(id)
            .map(|i| &mut i.tags)
            .ok_or_else(|| instance_not_found(id)),
        ResourceKind::Image => match region.images.get_mut(id) {
            Some(image) => Ok(&mut image.tags),
            None => region
                .snapshots
                .get_mut(id)
                .map(|s| &mut s.tags)
                .ok_or_else(|| image_not_found(id)),
        },
        ResourceKind::SecurityGroup => region
            .groups
            .get_mut(id)
            .map(|g| &mut g.tags)
            .ok_or_else(|| group_not_found(id)),
        // Buckets, secrets, parameters and container resources are other services', tagged
        // by their own calls.
        ResourceKind::Bucket
        | ResourceKind::Secret
        | ResourceKind::Parameter
        | ResourceKind::Cluster
        | ResourceKind::ContainerService => Err(ProviderError::new(
            overcast_provider::ProviderErrorKind::InvalidInput,
            "invalid_input",
            format!("{} tags are not EC2's", kind.name()),
        )),
    }
}

impl SimProvider {
    /// Changes the tags of a batch of EC2 resources in one call: every id is checked, and
    /// every new tag set, before any is changed.
    fn change_ec2_tags(
        &self,
        world: &mut World,
        region_name: &str,
        kind: ResourceKind,
        ids: &[String],
        change: &dyn Fn(&mut BTreeMap<String, String>),
    ) -> Result<(), ProviderError> {
        let region = world.region_mut(region_name)?;
        let mut changed = Vec::with_capacity(ids.len());
        for id in ids {
            let mut tags = tags_of(region, kind, id)?.clone();
            change(&mut tags);
            check_tags(&tags)?;
            changed.push((id, tags));
        }
        for (id, tags) in changed {
            *tags_of(region, kind, id)? = tags;
        }
        Ok(())
    }

    /// Changes each bucket's tags as S3 only can: read the whole set, write it back whole.
    async fn change_bucket_tags(
        &self,
        region: &str,
        buckets: &[String],
        change: &(dyn Fn(&mut BTreeMap<String, String>) + Sync),
    ) -> Result<(), ProviderError> {
        for bucket in buckets {
            let mut tags = self
                .run("GetBucketTagging", region, |world| {
                    Ok(bucket_in(world, region, bucket)?.tags.clone())
                })
                .await?;
            change(&mut tags);
            check_tags(&tags)?;
            let action = if tags.is_empty() {
                "DeleteBucketTagging"
            } else {
                "PutBucketTagging"
            };
            self.run(action, region, |world| {
                bucket_in(world, region, bucket)?.tags = tags;
                Ok(())
            })
            .await?;
        }
        Ok(())
    }

    async fn change_tags(
        &self,
        region: &str,
        kind: ResourceKind,
        ids: &[String],
        tagging: Tagging,
        change: &(dyn Fn(&mut BTreeMap<String, String>) + Sync),
    ) -> Result<(), ProviderError> {
        let action = tagging.action(kind);
        match kind {
            ResourceKind::Bucket => return self.change_bucket_tags(region, ids, change).await,
            ResourceKind::Secret => {
                return self.change_secret_tags(region, ids, action, change).await
            }
            ResourceKind::Parameter => {
                return self
                    .change_parameter_tags(region, ids, action, change)
                    .await
            }
            ResourceKind::Cluster | ResourceKind::ContainerService => {
                return self.change_ecs_tags(region, ids, action, change).await
            }
            ResourceKind::Instance | ResourceKind::Image | ResourceKind::SecurityGroup => {}
        }
        for batch in ids.chunks(self.settings.max_ids_per_call.max(1)) {
            self.run(action, region, |world| {
                self.change_ec2_tags(world, region, kind, batch, change)
            })
            .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Tags for SimProvider {
    async fn set_tags(
        &self,
        region: &str,
        kind: ResourceKind,
        ids: &[String],
        tags: &BTreeMap<String, String>,
    ) -> Result<(), ProviderError> {
        let change = |existing: &mut BTreeMap<String, String>| {
            existing.extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())))
        };
        self.change_tags(region, kind, ids, Tagging::Set, &change)
            .await
    }

    async fn remove_tags(
        &self,
        region: &str,
        kind: ResourceKind,
        ids: &[String],
        keys: &[String],
    ) -> Result<(), ProviderError> {
        let change =
            |existing: &mut BTreeMap<String, String>| existing.retain(|k, _| !keys.contains(k));
        self.change_tags(region, kind, ids, Tagging::Remove, &change)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{provider, settings};
    use crate::{Faults, Settings};
    use overcast_provider::{
        Compute, Firewall, ImageSpec, Images, InstanceFilter, LaunchSpec, ObjectStore,
        ParameterSpec, Parameters, SecretSpec, Secrets,
    };
    use overcast_types::{ParameterType, SecretData};

    fn tag(key: &str, value: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(key.to_string(), value.to_string())])
    }

    #[tokio::test]
    async fn every_kind_of_resource_takes_and_drops_tags() {
        let (sim, calls) = provider(Settings {
            instances: 4,
            max_ids_per_call: 3,
            ..settings(0.0)
        });
        let fleet = sim
            .list_instances(&InstanceFilter::default())
            .await
            .unwrap();
        let ids: Vec<String> = fleet
            .iter()
            .filter(|i| i.region == "sim-1")
            .map(|i| i.id.clone())
            .collect();
        sim.set_tags("sim-1", ResourceKind::Instance, &ids, &tag("team", "web"))
            .await
            .unwrap();
        let web = InstanceFilter {
            tags: tag("team", "web"),
            ..InstanceFilter::default()
        };
        assert_eq!(sim.list_instances(&web).await.unwrap().len(), 2);
        sim.remove_tags("sim-1", ResourceKind::Instance, &ids, &["team".to_string()])
            .await
            .unwrap();
        assert!(sim.list_instances(&web).await.unwrap().is_empty());
        // Promotion is a tag change: the stage moves, the rest stays.
        let first = vec![ids[0].clone()];
        sim.set_tags(
            "sim-1",
            ResourceKind::Instance,
            &first,
            &tag("stage", "prod"),
        )
        .await
        .unwrap();
        let filter = InstanceFilter {
            ids: first.clone(),
            ..InstanceFilter::default()
        };
        let promoted = sim.list_instances(&filter).await.unwrap().remove(0);
        assert_eq!(promoted.tags["stage"], "prod");
        assert_eq!(promoted.tags["Name"], "sim-00000");

        let group = sim
            .create_group("sim-1", "web", "web", None, &BTreeMap::new())
            .await
            .unwrap();
        sim.set_tags(
            "sim-1",
            ResourceKind::SecurityGroup,
            std::slice::from_ref(&group.id),
            &tag("team", "web"),
        )
        .await
        .unwrap();
        let groups = sim.list_groups(None, &[]).await.unwrap();
        assert_eq!(groups[0].tags, tag("team", "web"));

        let image = sim
            .create_image(&ImageSpec {
                region: "sim-1".into(),
                instance_id: ids[0].clone(),
                name: "web".into(),
                description: None,
                no_reboot: true,
                tags: BTreeMap::new(),
            })
            .await
            .unwrap();
        let image_and_snapshot = vec![image.id.clone(), image.snapshots[0].clone()];
        sim.set_tags(
            "sim-1",
            ResourceKind::Image,
            &image_and_snapshot,
            &tag("team", "web"),
        )
        .await
        .unwrap();
        assert_eq!(
            sim.list_images(None, &[]).await.unwrap()[0].tags["team"],
            "web"
        );

        sim.create_bucket("sim-2", "assets", &tag("a", "1"))
            .await
            .unwrap();
        let bucket = vec!["assets".to_string()];
        sim.set_tags("sim-2", ResourceKind::Bucket, &bucket, &tag("b", "2"))
            .await
            .unwrap();
        sim.remove_tags("sim-2", ResourceKind::Bucket, &bucket, &["a".to_string()])
            .await
            .unwrap();
        let tags = sim.bucket("assets").await.unwrap().unwrap().tags;
        assert_eq!(tags, tag("b", "2"));
        sim.remove_tags("sim-2", ResourceKind::Bucket, &bucket, &["b".to_string()])
            .await
            .unwrap();
        assert_eq!(calls.count("DeleteBucketTagging", "ok"), 1);
        assert_eq!(calls.count("GetBucketTagging", "ok"), 3);
    }

    #[tokio::test]
    async fn secrets_and_parameters_take_and_drop_tags_one_call_each() {
        let (sim, calls) = provider(settings(0.0));
        for name in ["db", "api"] {
            sim.create_secret(&SecretSpec {
                region: "sim-1".into(),
                name: name.into(),
                value: SecretData::Text("v".into()),
                description: None,
                kms_key_id: None,
                tags: tag("a", "1"),
                client_token: String::new(),
            })
            .await
            .unwrap();
        }
        let secrets = vec!["db".to_string(), "api".to_string()];
        sim.set_tags("sim-1", ResourceKind::Secret, &secrets, &tag("b", "2"))
            .await
            .unwrap();
        sim.remove_tags("sim-1", ResourceKind::Secret, &secrets, &["a".to_string()])
            .await
            .unwrap();
        for name in &secrets {
            let secret = sim.secret("sim-1", name).await.unwrap().unwrap();
            assert_eq!(secret.tags, tag("b", "2"));
        }
        assert_eq!(calls.count("TagResource", "ok"), 2);
        assert_eq!(calls.count("UntagResource", "ok"), 2);
        let missing = sim
            .set_tags(
                "sim-1",
                ResourceKind::Secret,
                &["nope".into()],
                &tag("b", "2"),
            )
            .await
            .unwrap_err();
        assert_eq!(missing.code, "secret_not_found");
        // A secret of another region is not here.
        let elsewhere = sim
            .set_tags("sim-2", ResourceKind::Secret, &secrets[..1], &tag("b", "2"))
            .await
            .unwrap_err();
        assert_eq!(elsewhere.code, "secret_not_found");

        let name = "/acme/app/db".to_string();
        sim.put_parameter(&ParameterSpec {
            region: "sim-1".into(),
            name: name.clone(),
            value: "v".into(),
            kind: ParameterType::String,
            description: None,
            kms_key_id: None,
            tags: tag("a", "1"),
            overwrite: false,
        })
        .await
        .unwrap();
        let names = std::slice::from_ref(&name);
        sim.set_tags("sim-1", ResourceKind::Parameter, names, &tag("b", "2"))
            .await
            .unwrap();
        sim.remove_tags("sim-1", ResourceKind::Parameter, names, &["a".to_string()])
            .await
            .unwrap();
        let parameter = sim.parameter("sim-1", &name, false).await.unwrap().unwrap();
        assert_eq!(parameter.tags, tag("b", "2"));
        assert_eq!(calls.count("AddTagsToResource", "ok"), 1);
        assert_eq!(calls.count("RemoveTagsFromResource", "ok"), 1);
        assert_eq!(calls.count("ListTagsForResource", "ok"), 1);
        let many: BTreeMap<String, String> =
            (0..51).map(|i| (format!("k{i}"), String::new())).collect();
        let error = sim
            .set_tags("sim-1", ResourceKind::Parameter, names, &many)
            .await
            .unwrap_err();
        assert_eq!((error.code, error.field), ("invalid_input", Some("tags")));
        assert_eq!(
            calls.count("CreateTags", "ok") + calls.count("DeleteTags", "ok"),
            0
        );
    }

    #[tokio::test]
    async fn a_batch_with_a_missing_id_tags_nothing_and_batches_follow_the_limit() {
        let (sim, calls) = provider(Settings {
            instances: 8,
            max_ids_per_call: 3,
            ..settings(0.0)
        });
        let filter = InstanceFilter {
            region: Some("sim-1".into()),
            ..InstanceFilter::default()
        };
        let mut ids: Vec<String> = sim
            .list_instances(&filter)
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.id)
            .collect();
        assert_eq!(ids.len(), 4);
        sim.set_tags("sim-1", ResourceKind::Instance, &ids, &tag("x", "1"))
            .await
            .unwrap();
        assert_eq!(calls.count("CreateTags", "ok"), 2);
        ids.push("i-404".into());
        let error = sim
            .set_tags("sim-1", ResourceKind::Instance, &ids[2..], &tag("y", "1"))
            .await
            .unwrap_err();
        assert_eq!(error.code, "instance_not_found");
        let tagged = InstanceFilter {
            tags: tag("y", "1"),
            ..InstanceFilter::default()
        };
        assert!(sim.list_instances(&tagged).await.unwrap().is_empty());
        let many: BTreeMap<String, String> =
            (0..51).map(|i| (format!("k{i}"), String::new())).collect();
        let error = sim
            .set_tags("sim-1", ResourceKind::Instance, &ids[..1], &many)
            .await
            .unwrap_err();
        assert_eq!(error.backend_code.as_deref(), Some("TagLimitExceeded"));
        // A tag call that takes effect and loses its answer has tagged.
        sim.set_faults(Faults {
            act_then_fail_rate: 1.0,
            ..Faults::default()
        });
        let lost = sim
            .set_tags("sim-1", ResourceKind::Instance, &ids[..1], &tag("z", "1"))
            .await
            .unwrap_err();
        assert_eq!(lost.code, "backend_timeout");
        sim.set_faults(Faults::default());
        let z = InstanceFilter {
            tags: tag("z", "1"),
            ..InstanceFilter::default()
        };
        assert_eq!(sim.list_instances(&z).await.unwrap().len(), 1);
        let spec_tags: BTreeMap<String, String> =
            (0..51).map(|i| (format!("k{i}"), String::new())).collect();
        let spec = LaunchSpec {
            region: "sim-1".into(),
            image: crate::BASE_IMAGE.into(),
            instance_type: "sim.small".into(),
            min_count: 1,
            max_count: 1,
            key_pair: None,
            security_groups: vec![],
            subnet: None,
            zone: None,
            user_data: None,
            tags: spec_tags,
            client_token: String::new(),
            size: None,
            name: None,
        };
        let error = sim.run_instances(&spec).await.unwrap_err();
        assert_eq!(error.field, Some("tags"));
    }
}
