//! Tags on every kind of AWS resource overcast manages: EC2's CreateTags and DeleteTags for
//! instances, images (and their snapshots) and security groups, in batches of EC2's
//! 1,000 ids; S3's whole-set bucket tagging, read, merged and written back; Secrets
//! Manager's, SSM's and ECS's tag calls, one resource each.

use async_trait::async_trait;
use aws_sdk_ec2::types::Tag;
use overcast_provider::{ProviderError, ResourceKind, Tags};
use std::collections::BTreeMap;

use crate::compute::{to_tags, IDS_PER_CALL};
use crate::errors::from_sdk;
use crate::AwsProvider;

#[async_trait]
impl Tags for AwsProvider {
    async fn set_tags(
        &self,
        region: &str,
        kind: ResourceKind,
        ids: &[String],
        tags: &BTreeMap<String, String>,
    ) -> Result<(), ProviderError> {
        match kind {
            ResourceKind::Secret => return self.tag_secrets(region, ids, tags).await,
            ResourceKind::Parameter => return self.tag_parameters(region, ids, tags).await,
            ResourceKind::Cluster | ResourceKind::ContainerService => {
                return self.tag_ecs_resources(region, ids, tags).await
            }
            ResourceKind::Bucket => {}
            _ => return self.ec2_set_tags(region, ids, tags).await,
        }
        for bucket in ids {
            let mut all = self.bucket_tags(region, bucket).await?;
            all.extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
            self.put_bucket_tags(region, bucket, &all).await?;
        }
        Ok(())
    }

    async fn remove_tags(
        &self,
        region: &str,
        kind: ResourceKind,
        ids: &[String],
        keys: &[String],
    ) -> Result<(), ProviderError> {
        match kind {
            ResourceKind::Secret => return self.untag_secrets(region, ids, keys).await,
            ResourceKind::Parameter => return self.untag_parameters(region, ids, keys).await,
            ResourceKind::Cluster | ResourceKind::ContainerService => {
                return self.untag_ecs_resources(region, ids, keys).await
            }
            _ => {}
        }
        if kind == ResourceKind::Bucket {
            for bucket in ids {
                let mut all = self.bucket_tags(region, bucket).await?;
                all.retain(|k, _| !keys.contains(k));
                self.put_bucket_tags(region, bucket, &all).await?;
            }
            return Ok(());
        }
        let ec2 = self.ec2(region).await?;
        let tags: Vec<Tag> = keys.iter().map(|k| Tag::builder().key(k).build()).collect();
        for batch in ids.chunks(IDS_PER_CALL) {
            let result = ec2
                .delete_tags()
                .set_resources(Some(batch.to_vec()))
                .set_tags(Some(tags.clone()))
                .send()
                .await;
            self.observe("DeleteTags", region, result.map_err(from_sdk))?;
        }
        Ok(())
    }
}

impl AwsProvider {
    /// Sets tags on ECS clusters and services, one ARN a call.
    async fn tag_ecs_resources(
        &self,
        region: &str,
        arns: &[String],
        tags: &BTreeMap<String, String>,
    ) -> Result<(), ProviderError> {
        let ecs = self.ecs(region).await?;
        let tags: Vec<aws_sdk_ecs::types::Tag> = tags
            .iter()
            .map(|(k, v)| aws_sdk_ecs::types::Tag::builder().key(k).value(v).build())
            .collect();
        for arn in arns {
            let result = ecs
                .tag_resource()
                .resource_arn(arn)
                .set_tags(Some(tags.clone()))
                .send()
                .await;
            self.observe("TagResource", region, result.map_err(from_sdk))?;
        }
        Ok(())
    }

    /// Removes tags from ECS clusters and services by key, one ARN a call.
    async fn untag_ecs_resources(
        &self,
        region: &str,
        arns: &[String],
        keys: &[String],
    ) -> Result<(), ProviderError> {
        let ecs = self.ecs(region).await?;
        for arn in arns {
            let result = ecs
                .untag_resource()
                .resource_arn(arn)
                .set_tag_keys(Some(keys.to_vec()))
                .send()
                .await;
            self.observe("UntagResource", region, result.map_err(from_sdk))?;
        }
        Ok(())
    }

    /// Sets tags on EC2 resources of any kind (instances, images, snapshots, groups).
    pub(crate) async fn ec2_set_tags(
        &self,
        region: &str,
        ids: &[String],
        tags: &BTreeMap<String, String>,
    ) -> Result<(), ProviderError> {
        let ec2 = self.ec2(region).await?;
        for batch in ids.chunks(IDS_PER_CALL) {
            let result = ec2
                .create_tags()
                .set_resources(Some(batch.to_vec()))
                .set_tags(Some(to_tags(tags)))
                .send()
                .await;
            self.observe("CreateTags", region, result.map_err(from_sdk))?;
        }
        Ok(())
    }
}
