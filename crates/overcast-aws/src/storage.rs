//! S3 buckets as the `ObjectStore` capability. Path-style addressing, so S3-compatible
//! stores (MinIO, Ceph RGW, Garage) work through `endpoint_url` as well as AWS.

use async_trait::async_trait;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration, Delete,
    ObjectIdentifier, Tag, Tagging,
};
use futures::future::try_join_all;
use overcast_provider::{KeyPage, ObjectStore, ProviderError};
use overcast_types::Bucket;
use std::collections::BTreeMap;

use crate::errors::from_sdk;
use crate::AwsProvider;

#[async_trait]
impl ObjectStore for AwsProvider {
    async fn list_buckets(&self) -> Result<Vec<Bucket>, ProviderError> {
        let region = self.home_region()?;
        let s3 = self.s3(&region).await?;
        let result = s3.list_buckets().send().await;
        let listed = self.observe("ListBuckets", &region, result.map_err(from_sdk))?;
        let named: Vec<(String, Option<String>)> = listed
            .buckets()
            .iter()
            .filter_map(|b| {
                Some((
                    b.name()?.to_string(),
                    b.creation_date().map(|d| d.to_string()),
                ))
            })
            .collect();
        try_join_all(
            named
                .into_iter()
                .map(|(name, created)| self.details(name, created)),
        )
        .await
    }

    async fn bucket(&self, name: &str) -> Result<Option<Bucket>, ProviderError> {
        let region = self.home_region()?;
        let s3 = self.s3(&region).await?;
        let result = s3.head_bucket().bucket(name).send().await;
        // A HEAD's 404 has no body, so no error code: the SDK's typed error says it.
        if let Err(SdkError::ServiceError(service)) = &result {
            if service.err().is_not_found() {
                self.observe::<(), ProviderError>("HeadBucket", &region, Ok(()))?;
                return Ok(None);
            }
        }
        self.observe("HeadBucket", &region, result.map_err(from_sdk))?;
        Ok(Some(self.details(name.to_string(), None).await?))
    }

    async fn create_bucket(
        &self,
        region: &str,
        name: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<Bucket, ProviderError> {
        let s3 = self.s3(region).await?;
        let mut request = s3.create_bucket().bucket(name);
        // us-east-1 is the one region S3 wants no location constraint for.
        if region != "us-east-1" {
            request = request.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region))
                    .build(),
            );
        }
        let result = request.send().await;
        self.observe("CreateBucket", region, result.map_err(from_sdk))?;
        if !tags.is_empty() {
            let tag_set = tags
                .iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    ProviderError::new(
                        overcast_provider::ProviderErrorKind::InvalidInput,
                        "invalid_input",
                        e.to_string(),
                    )
                })?;
            let tagging = Tagging::builder()
                .set_tag_set(Some(tag_set))
                .build()
                .map_err(|e| {
                    ProviderError::new(
                        overcast_provider::ProviderErrorKind::InvalidInput,
                        "invalid_input",
                        e.to_string(),
                    )
                })?;
            let result = s3
                .put_bucket_tagging()
                .bucket(name)
                .tagging(tagging)
                .send()
                .await;
            self.observe("PutBucketTagging", region, result.map_err(from_sdk))?;
        }
        self.details(name.to_string(), None).await
    }

    async fn delete_bucket(&self, region: &str, name: &str) -> Result<(), ProviderError> {
        let s3 = self.s3(region).await?;
        let result = s3.delete_bucket().bucket(name).send().await;
        match self.observe("DeleteBucket", region, result.map_err(from_sdk)) {
            Err(e) if e.code == "bucket_not_found" => Ok(()),
            other => other.map(|_| ()),
        }
    }

    async fn list_keys(
        &self,
        region: &str,
        bucket: &str,
        after: Option<&str>,
    ) -> Result<KeyPage, ProviderError> {
        let s3 = self.s3(region).await?;
        let result = s3
            .list_objects_v2()
            .bucket(bucket)
            .max_keys(1000)
            .set_continuation_token(after.map(str::to_string))
            .send()
            .await;
        let page = self.observe("ListObjectsV2", region, result.map_err(from_sdk))?;
        Ok(KeyPage {
            keys: page
                .contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string))
                .collect(),
            next: page.next_continuation_token().map(str::to_string),
        })
    }

    async fn delete_keys(
        &self,
        region: &str,
        bucket: &str,
        keys: &[String],
    ) -> Result<(), ProviderError> {
        let s3 = self.s3(region).await?;
        let objects = keys
            .iter()
            .map(|k| ObjectIdentifier::builder().key(k).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                ProviderError::new(
                    overcast_provider::ProviderErrorKind::InvalidInput,
                    "invalid_input",
                    e.to_string(),
                )
            })?;
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| {
                ProviderError::new(
                    overcast_provider::ProviderErrorKind::InvalidInput,
                    "invalid_input",
                    e.to_string(),
                )
            })?;
        let result = s3
            .delete_objects()
            .bucket(bucket)
            .delete(delete)
            .send()
            .await;
        self.observe("DeleteObjects", region, result.map_err(from_sdk))?;
        Ok(())
    }
}

impl AwsProvider {
    /// The region bucket-wide calls go to: the environment's first.
    fn home_region(&self) -> Result<String, ProviderError> {
        self.settings.regions.first().cloned().ok_or_else(|| {
            ProviderError::new(
                overcast_provider::ProviderErrorKind::InvalidInput,
                "invalid_input",
                "the environment has no region",
            )
            .with_field("region")
        })
    }

    /// A bucket's region, tags and versioning.
    async fn details(
        &self,
        name: String,
        created_at: Option<String>,
    ) -> Result<Bucket, ProviderError> {
        let home = self.home_region()?;
        let s3 = self.s3(&home).await?;
        let result = s3.get_bucket_location().bucket(&name).send().await;
        let location = self.observe("GetBucketLocation", &home, result.map_err(from_sdk))?;
        let region = match location.location_constraint().map(|c| c.as_str()) {
            None | Some("") => "us-east-1".to_string(),
            Some("EU") => "eu-west-1".to_string(),
            Some(other) => other.to_string(),
        };
        let regional = self.s3(&region).await.unwrap_or(s3);
        let result = regional.get_bucket_tagging().bucket(&name).send().await;
        let tags = match self.observe("GetBucketTagging", &region, result.map_err(from_sdk)) {
            Ok(tagging) => tagging
                .tag_set()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect(),
            Err(e) if e.backend_code.as_deref() == Some("NoSuchTagSet") => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        let result = regional.get_bucket_versioning().bucket(&name).send().await;
        // Some S3-compatible stores answer this for a never-versioned bucket in a form the
        // SDK cannot read; versioning is then shown as unknown rather than failing the
        // bucket. Real refusals (denied, no such bucket) still fail.
        let versioning =
            match self.observe("GetBucketVersioning", &region, result.map_err(from_sdk)) {
                Ok(answer) => answer.status().map(|s| match s {
                    BucketVersioningStatus::Enabled => "enabled".to_string(),
                    other => other.as_str().to_lowercase(),
                }),
                Err(e) if e.code == "backend_refused" => None,
                Err(e) => return Err(e),
            };
        Ok(Bucket {
            name,
            region,
            created_at,
            versioning,
            tags,
            org: None,
        })
    }
}
