//! EC2 key pairs as the `KeyPairs` capability.

use async_trait::async_trait;
use aws_sdk_ec2::primitives::Blob;
use aws_sdk_ec2::types::{KeyFormat, KeyPairInfo, KeyType, ResourceType, TagSpecification};
use futures::future::try_join_all;
use overcast_provider::{KeyPair, KeyPairs, ProviderError};
use std::collections::BTreeMap;

use crate::compute::to_tags;
use crate::errors::from_sdk;
use crate::AwsProvider;

fn tag_spec(tags: &BTreeMap<String, String>) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(ResourceType::KeyPair)
        .set_tags(Some(to_tags(tags)))
        .build()
}

#[async_trait]
impl KeyPairs for AwsProvider {
    async fn list_key_pairs(&self, region: Option<&str>) -> Result<Vec<KeyPair>, ProviderError> {
        let regions = match region {
            Some(region) => vec![region.to_string()],
            None => self.settings.regions.clone(),
        };
        let per_region = try_join_all(regions.iter().map(|region| async move {
            let ec2 = self.ec2(region).await?;
            let result = ec2.describe_key_pairs().send().await;
            let answer = self.observe("DescribeKeyPairs", region, result.map_err(from_sdk))?;
            Ok::<_, ProviderError>(
                answer
                    .key_pairs()
                    .iter()
                    .map(|k| to_key_pair(region, k))
                    .collect::<Vec<_>>(),
            )
        }))
        .await?;
        Ok(per_region.into_iter().flatten().collect())
    }

    async fn create_key_pair(
        &self,
        region: &str,
        name: &str,
        key_type: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(KeyPair, String), ProviderError> {
        let ec2 = self.ec2(region).await?;
        let result = ec2
            .create_key_pair()
            .key_name(name)
            .key_type(KeyType::from(key_type))
            .key_format(KeyFormat::Pem)
            .tag_specifications(tag_spec(tags))
            .send()
            .await;
        let created = self.observe("CreateKeyPair", region, result.map_err(from_sdk))?;
        let key_pair = KeyPair {
            name: created.key_name().unwrap_or(name).to_string(),
            region: region.to_string(),
            id: created.key_pair_id().map(str::to_string),
            fingerprint: created.key_fingerprint().map(str::to_string),
            key_type: Some(key_type.to_string()),
            tags: tags.clone(),
            org: None,
        };
        Ok((
            key_pair,
            created.key_material().unwrap_or_default().to_string(),
        ))
    }

    async fn import_key_pair(
        &self,
        region: &str,
        name: &str,
        public_key: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<KeyPair, ProviderError> {
        let ec2 = self.ec2(region).await?;
        let result = ec2
            .import_key_pair()
            .key_name(name)
            .public_key_material(Blob::new(public_key.as_bytes()))
            .tag_specifications(tag_spec(tags))
            .send()
            .await;
        let imported = self.observe("ImportKeyPair", region, result.map_err(from_sdk))?;
        Ok(KeyPair {
            name: imported.key_name().unwrap_or(name).to_string(),
            region: region.to_string(),
            id: imported.key_pair_id().map(str::to_string),
            fingerprint: imported.key_fingerprint().map(str::to_string),
            key_type: None,
            tags: tags.clone(),
            org: None,
        })
    }

    async fn delete_key_pair(&self, region: &str, name: &str) -> Result<(), ProviderError> {
        let ec2 = self.ec2(region).await?;
        let result = ec2.delete_key_pair().key_name(name).send().await;
        match self.observe("DeleteKeyPair", region, result.map_err(from_sdk)) {
            Err(e) if e.code == "key_pair_not_found" => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

fn to_key_pair(region: &str, info: &KeyPairInfo) -> KeyPair {
    KeyPair {
        name: info.key_name().unwrap_or_default().to_string(),
        region: region.to_string(),
        id: info.key_pair_id().map(str::to_string),
        fingerprint: info.key_fingerprint().map(str::to_string),
        key_type: info.key_type().map(|t| t.as_str().to_string()),
        tags: info
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
    }
}
