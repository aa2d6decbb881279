//! Images as the `Images` capability: made from an instance, pending until the clock says
//! available, each backed by a snapshot that stays until it is deleted itself, as on EC2.
//! Importing is not simulated.

use async_trait::async_trait;
use overcast_provider::{ImageSpec, Images, ProviderError, ProviderErrorKind as Kind};
use overcast_types::{Image, InstanceState};
use std::collections::BTreeMap;
use std::time::Duration;

use crate::compute::{check_tags, Transition};
use crate::errors::{instance_not_found, invalid, refusal, wrong_state};
use crate::world::World;
use crate::SimProvider;

pub(crate) struct ImageRecord {
    id: String,
    name: String,
    description: Option<String>,
    created_at: String,
    /// When it was made, by the simulated clock.
    made: Duration,
    snapshots: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

pub(crate) struct SnapshotRecord {
    pub tags: BTreeMap<String, String>,
}

impl ImageRecord {
    pub fn is_available(&self, now: Duration, takes: Duration) -> bool {
        now >= self.made + takes
    }

    fn to_image(&self, region: &str, now: Duration, takes: Duration) -> Image {
        Image {
            id: self.id.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            region: region.to_string(),
            state: if self.is_available(now, takes) {
                "available"
            } else {
                "pending"
            }
            .to_string(),
            created_at: Some(self.created_at.clone()),
            snapshots: self.snapshots.clone(),
            tags: self.tags.clone(),
            org: None,
        }
    }
}

impl SimProvider {
    fn make_image(&self, world: &mut World, spec: &ImageSpec) -> Result<Image, ProviderError> {
        let now = world.clock.now();
        let created_at = world.clock.timestamp();
        let World { ids, regions, .. } = world;
        let region = regions
            .get_mut(&spec.region)
            .ok_or_else(|| invalid("region", format!("no region {}", spec.region)))?;
        let state = region
            .instances
            .get(&spec.instance_id)
            .filter(|i| !i.expired(now))
            .ok_or_else(|| instance_not_found(&spec.instance_id))?
            .state(now);
        if matches!(
            state,
            InstanceState::Pending | InstanceState::Terminating | InstanceState::Terminated
        ) {
            return Err(wrong_state(&spec.instance_id, state.as_str(), "imaged"));
        }
        if spec.name.trim().is_empty() {
            return Err(invalid("name", "an image needs a name"));
        }
        if region.images.values().any(|i| i.name == spec.name) {
            return Err(refusal(
                Kind::Conflict,
                "image_exists",
                "InvalidAMIName.Duplicate",
                format!("AMI name {} is already in use by an image", spec.name),
            )
            .with_field("name"));
        }
        check_tags(&spec.tags)?;
        // The image is taken from a rebooted instance unless asked not to, as EC2 does.
        if !spec.no_reboot && state == InstanceState::Running {
            if let Some(instance) = region.instances.get_mut(&spec.instance_id) {
                instance.transition = Transition::new(
                    InstanceState::Rebooting,
                    InstanceState::Running,
                    now,
                    self.timing.pending,
                );
            }
        }
        let snapshot = ids.next("snap");
        let id = ids.next("ami");
        region.snapshots.insert(
            snapshot.clone(),
            SnapshotRecord {
                tags: spec.tags.clone(),
            },
        );
        let record = ImageRecord {
            id: id.clone(),
            name: spec.name.clone(),
            description: spec.description.clone(),
            created_at,
            made: now,
            snapshots: vec![snapshot],
            tags: spec.tags.clone(),
        };
        let image = record.to_image(&spec.region, now, self.timing.image);
        region.images.insert(id, record);
        Ok(image)
    }
}

#[async_trait]
impl Images for SimProvider {
    async fn list_images(
        &self,
        region: Option<&str>,
        ids: &[String],
    ) -> Result<Vec<Image>, ProviderError> {
        let mut images = Vec::new();
        for region in self.regions_of(region) {
            let found = self
                .run("DescribeImages", &region, |world| {
                    let now = world.clock.now();
                    Ok(world
                        .region(&region)?
                        .images
                        .values()
                        .filter(|i| ids.is_empty() || ids.contains(&i.id))
                        .map(|i| i.to_image(&region, now, self.timing.image))
                        .collect::<Vec<_>>())
                })
                .await?;
            images.extend(found);
        }
        Ok(images)
    }

    async fn create_image(&self, spec: &ImageSpec) -> Result<Image, ProviderError> {
        self.run("CreateImage", &spec.region, |world| {
            self.make_image(world, spec)
        })
        .await
    }

    async fn deregister_image(&self, region: &str, id: &str) -> Result<(), ProviderError> {
        self.run("DeregisterImage", region, |world| {
            world.region_mut(region)?.images.remove(id);
            Ok(())
        })
        .await
    }

    async fn delete_snapshot(&self, region: &str, id: &str) -> Result<(), ProviderError> {
        self.run("DeleteSnapshot", region, |world| {
            let region = world.region_mut(region)?;
            if let Some(image) = region
                .images
                .values()
                .find(|i| i.snapshots.iter().any(|s| s == id))
            {
                return Err(refusal(
                    Kind::Conflict,
                    "in_use",
                    "InvalidSnapshot.InUse",
                    format!("The snapshot {id} is in use by {}", image.id),
                ));
            }
            region.snapshots.remove(id);
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{provider, settings};
    use overcast_provider::{Compute, InstanceFilter, LaunchSpec};

    async fn running_instance(sim: &SimProvider) -> String {
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
            tags: BTreeMap::new(),
            client_token: String::new(),
            size: None,
            name: None,
        };
        let id = sim.run_instances(&spec).await.unwrap()[0].id.clone();
        sim.advance_clock(Duration::from_secs(5));
        id
    }

    fn image_spec(instance_id: &str, name: &str) -> ImageSpec {
        ImageSpec {
            region: "sim-1".into(),
            instance_id: instance_id.into(),
            name: name.into(),
            description: None,
            no_reboot: false,
            tags: BTreeMap::from([("team".to_string(), "web".to_string())]),
        }
    }

    #[tokio::test]
    async fn an_image_is_pending_then_available_and_its_snapshot_outlives_it() {
        let (sim, _) = provider(settings(5.0));
        let instance = running_instance(&sim).await;
        let image = sim
            .create_image(&image_spec(&instance, "web-1"))
            .await
            .unwrap();
        assert_eq!(image.state, "pending");
        assert_eq!(image.snapshots.len(), 1);
        // Made from a rebooted instance.
        let filter = InstanceFilter {
            ids: vec![instance.clone()],
            ..InstanceFilter::default()
        };
        let state = sim.list_instances(&filter).await.unwrap()[0].state;
        assert_eq!(state, InstanceState::Rebooting);
        let duplicate = sim
            .create_image(&image_spec(&instance, "web-1"))
            .await
            .unwrap_err();
        assert_eq!(
            (duplicate.code, duplicate.field),
            ("image_exists", Some("name"))
        );
        sim.advance_clock(Duration::from_secs(5));
        let listed = sim.list_images(None, &[]).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].state, "available");
        assert_eq!(listed[0].tags["team"], "web");
        let snapshot = &image.snapshots[0];
        let in_use = sim.delete_snapshot("sim-1", snapshot).await.unwrap_err();
        assert_eq!(in_use.code, "in_use");
        sim.deregister_image("sim-1", &image.id).await.unwrap();
        sim.deregister_image("sim-1", &image.id).await.unwrap();
        sim.delete_snapshot("sim-1", snapshot).await.unwrap();
        sim.delete_snapshot("sim-1", snapshot).await.unwrap();
        assert!(sim
            .list_images(Some("sim-1"), &[])
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn images_are_made_only_of_instances_that_can_be_imaged() {
        let (sim, _) = provider(settings(5.0));
        let missing = sim
            .create_image(&image_spec("i-404", "x"))
            .await
            .unwrap_err();
        assert_eq!(missing.code, "instance_not_found");
        let instance = running_instance(&sim).await;
        sim.act(
            "sim-1",
            std::slice::from_ref(&instance),
            overcast_provider::Action::Terminate,
        )
        .await
        .unwrap();
        let gone = sim
            .create_image(&image_spec(&instance, "x"))
            .await
            .unwrap_err();
        assert_eq!(gone.code, "wrong_state");
        let import = overcast_provider::ImportSpec {
            name: "x".into(),
            source: overcast_provider::ImportSource::Disk {
                url: "https://example.com/disk.qcow2".into(),
            },
            sha256: None,
            tags: BTreeMap::new(),
        };
        let unsupported = sim.import_image(&import, &|_, _| {}).await.unwrap_err();
        assert_eq!(unsupported.kind, Kind::Unsupported);
    }
}
