//! EC2 images (AMIs) as the `Images` capability.

use async_trait::async_trait;
use aws_sdk_ec2::types::{ResourceType, TagSpecification};
use futures::future::try_join_all;
use overcast_provider::{ImageSpec, Images, ProviderError};
use overcast_types::Image;

use crate::compute::to_tags;
use crate::errors::from_sdk;
use crate::{one_attempt_ec2, AwsProvider};

#[async_trait]
impl Images for AwsProvider {
    async fn list_images(
        &self,
        region: Option<&str>,
        ids: &[String],
    ) -> Result<Vec<Image>, ProviderError> {
        let regions = match region {
            Some(region) => vec![region.to_string()],
            None => self.settings.regions.clone(),
        };
        let per_region =
            try_join_all(regions.iter().map(|region| self.images_of(region, ids))).await?;
        Ok(per_region.into_iter().flatten().collect())
    }

    async fn create_image(&self, spec: &ImageSpec) -> Result<Image, ProviderError> {
        let ec2 = self.ec2(&spec.region).await?;
        let mut request = ec2
            .create_image()
            .instance_id(&spec.instance_id)
            .name(&spec.name)
            .set_description(spec.description.clone())
            .no_reboot(spec.no_reboot);
        if !spec.tags.is_empty() {
            request = request.tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Image)
                    .set_tags(Some(to_tags(&spec.tags)))
                    .build(),
            );
        }
        let result = request
            .customize()
            .config_override(one_attempt_ec2())
            .send()
            .await;
        let created = self.observe("CreateImage", &spec.region, result.map_err(from_sdk))?;
        let id = created.image_id().unwrap_or_default().to_string();
        let image = self
            .images_of(&spec.region, std::slice::from_ref(&id))
            .await?
            .pop()
            .ok_or_else(|| {
                ProviderError::new(
                    overcast_provider::ProviderErrorKind::Refused,
                    "backend_refused",
                    format!("image {id} was created but cannot be found"),
                )
            })?;
        // Snapshots get their tags in a second call: EC2 takes snapshot tags in CreateImage,
        // but not every AWS-compatible endpoint does, and tags are idempotent.
        if !spec.tags.is_empty() && !image.snapshots.is_empty() {
            self.ec2_set_tags(&spec.region, &image.snapshots, &spec.tags)
                .await?;
        }
        Ok(image)
    }

    async fn deregister_image(&self, region: &str, id: &str) -> Result<(), ProviderError> {
        let ec2 = self.ec2(region).await?;
        let result = ec2.deregister_image().image_id(id).send().await;
        match self.observe("DeregisterImage", region, result.map_err(from_sdk)) {
            Err(e) if e.code == "image_not_found" => Ok(()),
            other => other.map(|_| ()),
        }
    }

    async fn delete_snapshot(&self, region: &str, id: &str) -> Result<(), ProviderError> {
        let ec2 = self.ec2(region).await?;
        let result = ec2.delete_snapshot().snapshot_id(id).send().await;
        match self.observe("DeleteSnapshot", region, result.map_err(from_sdk)) {
            Err(e)
                if e.backend_code
                    .as_deref()
                    .is_some_and(|c| c.starts_with("InvalidSnapshot.NotFound")) =>
            {
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }
}

impl AwsProvider {
    async fn images_of(&self, region: &str, ids: &[String]) -> Result<Vec<Image>, ProviderError> {
        let ec2 = self.ec2(region).await?;
        let mut request = ec2.describe_images().owners("self");
        if !ids.is_empty() {
            request = request.set_image_ids(Some(ids.to_vec()));
        }
        let answer = match self.observe(
            "DescribeImages",
            region,
            request.send().await.map_err(from_sdk),
        ) {
            Ok(answer) => answer,
            // Asked for ids, a region that lacks one answers "not found": not here.
            Err(e) if !ids.is_empty() && e.code == "image_not_found" => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(answer
            .images()
            .iter()
            .map(|image| Image {
                id: image.image_id().unwrap_or_default().to_string(),
                name: image.name().unwrap_or_default().to_string(),
                description: image.description().map(str::to_string),
                region: region.to_string(),
                state: image
                    .state()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_else(|| "unknown".into()),
                created_at: image.creation_date().map(str::to_string),
                snapshots: image
                    .block_device_mappings()
                    .iter()
                    .filter_map(|m| m.ebs().and_then(|e| e.snapshot_id()))
                    .map(str::to_string)
                    .collect(),
                tags: image
                    .tags()
                    .iter()
                    .filter_map(|t| {
                        Some((
                            t.key()?.to_string(),
                            t.value().unwrap_or_default().to_string(),
                        ))
                    })
                    .collect(),
                org: None,
            })
            .collect())
    }
}
