//! Secrets Manager secrets and SSM parameters. Values pass through and are never logged:
//! errors carry AWS's message, which names the secret, not its value.

use async_trait::async_trait;
use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_ssm::types::{ParameterStringFilter, ParameterType as SsmType, ResourceTypeForTagging};
use overcast_provider::{
    ParameterPage, ParameterSpec, Parameters, ProviderError, SecretSpec, Secrets, VersionWanted,
};
use overcast_types::{Parameter, ParameterType, Secret, SecretData, SecretValue};
use std::collections::BTreeMap;

use crate::errors::from_sdk;
use crate::{one_attempt_secrets, AwsProvider};

/// SSM's largest page of DescribeParameters, and the most names one DeleteParameters takes.
const PARAMETER_PAGE: u32 = 50;
const PARAMETERS_PER_DELETE: usize = 10;

fn sm_tags(tags: &BTreeMap<String, String>) -> Vec<aws_sdk_secretsmanager::types::Tag> {
    tags.iter()
        .map(|(k, v)| {
            aws_sdk_secretsmanager::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
        })
        .collect()
}

fn ssm_tags(tags: &BTreeMap<String, String>) -> Vec<aws_sdk_ssm::types::Tag> {
    tags.iter()
        .filter_map(|(k, v)| {
            aws_sdk_ssm::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .ok()
        })
        .collect()
}

fn from_sm_tags(tags: &[aws_sdk_secretsmanager::types::Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

fn stages(
    map: Option<&std::collections::HashMap<String, Vec<String>>>,
) -> BTreeMap<String, Vec<String>> {
    map.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

fn to_ssm_type(kind: ParameterType) -> SsmType {
    match kind {
        ParameterType::String => SsmType::String,
        ParameterType::StringList => SsmType::StringList,
        ParameterType::SecureString => SsmType::SecureString,
    }
}

fn from_ssm_type(kind: Option<&SsmType>) -> ParameterType {
    kind.and_then(|k| ParameterType::parse(k.as_str()))
        .unwrap_or_default()
}

/// A DescribeParameters filter.
fn string_filter(
    key: &str,
    option: &str,
    value: &str,
) -> Result<ParameterStringFilter, ProviderError> {
    ParameterStringFilter::builder()
        .key(key)
        .option(option)
        .values(value)
        .build()
        .map_err(|e| {
            ProviderError::new(
                overcast_provider::ProviderErrorKind::InvalidInput,
                "invalid_input",
                e.to_string(),
            )
        })
}

#[async_trait]
impl Secrets for AwsProvider {
    async fn list_secrets(&self, region: &str) -> Result<Vec<Secret>, ProviderError> {
        let sm = self.secretsmanager(region).await?;
        let mut secrets = Vec::new();
        let mut next_token = None;
        loop {
            let result = sm
                .list_secrets()
                .include_planned_deletion(true)
                .max_results(100)
                .set_next_token(next_token)
                .send()
                .await;
            let page = self.observe("ListSecrets", region, result.map_err(from_sdk))?;
            for entry in page.secret_list() {
                secrets.push(Secret {
                    name: entry.name().unwrap_or_default().to_string(),
                    arn: entry.arn().map(str::to_string),
                    region: region.to_string(),
                    description: entry.description().map(str::to_string),
                    kms_key_id: entry.kms_key_id().map(str::to_string),
                    created_at: entry.created_date().map(|t| t.to_string()),
                    last_changed_at: entry.last_changed_date().map(|t| t.to_string()),
                    deletion_date: entry.deleted_date().map(|t| t.to_string()),
                    rotation_enabled: entry.rotation_enabled().unwrap_or(false),
                    versions: stages(entry.secret_versions_to_stages()),
                    tags: from_sm_tags(entry.tags()),
                    org: None,
                });
            }
            next_token = page.next_token().map(str::to_string);
            if next_token.is_none() {
                return Ok(secrets);
            }
        }
    }

    async fn secret(&self, region: &str, name: &str) -> Result<Option<Secret>, ProviderError> {
        let sm = self.secretsmanager(region).await?;
        let result = sm.describe_secret().secret_id(name).send().await;
        let secret = match self.observe("DescribeSecret", region, result.map_err(from_sdk)) {
            Ok(secret) => secret,
            Err(e) if e.code == "secret_not_found" => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(Some(Secret {
            name: secret.name().unwrap_or(name).to_string(),
            arn: secret.arn().map(str::to_string),
            region: region.to_string(),
            description: secret.description().map(str::to_string),
            kms_key_id: secret.kms_key_id().map(str::to_string),
            created_at: secret.created_date().map(|t| t.to_string()),
            last_changed_at: secret.last_changed_date().map(|t| t.to_string()),
            deletion_date: secret.deleted_date().map(|t| t.to_string()),
            rotation_enabled: secret.rotation_enabled().unwrap_or(false),
            versions: stages(secret.version_ids_to_stages()),
            tags: from_sm_tags(secret.tags()),
            org: None,
        }))
    }

    async fn create_secret(&self, spec: &SecretSpec) -> Result<Secret, ProviderError> {
        let sm = self.secretsmanager(&spec.region).await?;
        let mut request = sm
            .create_secret()
            .name(&spec.name)
            .set_description(spec.description.clone())
            .set_kms_key_id(spec.kms_key_id.clone())
            .set_tags(Some(sm_tags(&spec.tags)))
            .client_request_token(&spec.client_token);
        request = match &spec.value {
            SecretData::Text(text) => request.secret_string(text),
            SecretData::Binary(bytes) => request.secret_binary(Blob::new(bytes.clone())),
        };
        let result = request
            .customize()
            .config_override(one_attempt_secrets())
            .send()
            .await;
        self.observe("CreateSecret", &spec.region, result.map_err(from_sdk))?;
        self.secret(&spec.region, &spec.name).await?.ok_or_else(|| {
            ProviderError::new(
                overcast_provider::ProviderErrorKind::Refused,
                "backend_refused",
                format!("secret {} was created but cannot be found", spec.name),
            )
        })
    }

    async fn put_secret_value(
        &self,
        region: &str,
        name: &str,
        value: &SecretData,
        client_token: &str,
    ) -> Result<String, ProviderError> {
        let sm = self.secretsmanager(region).await?;
        let request = sm
            .put_secret_value()
            .secret_id(name)
            .client_request_token(client_token);
        let request = match value {
            SecretData::Text(text) => request.secret_string(text),
            SecretData::Binary(bytes) => request.secret_binary(Blob::new(bytes.clone())),
        };
        let result = request.send().await;
        let put = self.observe("PutSecretValue", region, result.map_err(from_sdk))?;
        Ok(put.version_id().unwrap_or_default().to_string())
    }

    async fn secret_value(
        &self,
        region: &str,
        name: &str,
        wanted: &VersionWanted,
    ) -> Result<SecretValue, ProviderError> {
        let sm = self.secretsmanager(region).await?;
        let result = sm
            .get_secret_value()
            .secret_id(name)
            .set_version_id(wanted.version_id.clone())
            .set_version_stage(wanted.stage.clone())
            .send()
            .await;
        let value = self.observe("GetSecretValue", region, result.map_err(from_sdk))?;
        let data = match (value.secret_string(), value.secret_binary()) {
            (Some(text), _) => SecretData::Text(text.to_string()),
            (None, Some(blob)) => SecretData::Binary(blob.as_ref().to_vec()),
            (None, None) => SecretData::Text(String::new()),
        };
        Ok(SecretValue::new(
            value.name().unwrap_or(name).to_string(),
            value.version_id().unwrap_or_default().to_string(),
            value.version_stages().to_vec(),
            data,
        ))
    }

    async fn delete_secret(
        &self,
        region: &str,
        name: &str,
        window_days: u32,
    ) -> Result<Option<String>, ProviderError> {
        let sm = self.secretsmanager(region).await?;
        let request = sm.delete_secret().secret_id(name);
        let request = if window_days == 0 {
            request.force_delete_without_recovery(true)
        } else {
            request.recovery_window_in_days(i64::from(window_days))
        };
        let result = request.send().await;
        let deleted = self.observe("DeleteSecret", region, result.map_err(from_sdk))?;
        Ok(deleted.deletion_date().map(|t| t.to_string()))
    }

    async fn restore_secret(&self, region: &str, name: &str) -> Result<(), ProviderError> {
        let sm = self.secretsmanager(region).await?;
        let result = sm.restore_secret().secret_id(name).send().await;
        self.observe("RestoreSecret", region, result.map_err(from_sdk))?;
        Ok(())
    }
}

impl AwsProvider {
    /// Sets tags on secrets (Secrets Manager's TagResource, one secret a call).
    pub(crate) async fn tag_secrets(
        &self,
        region: &str,
        names: &[String],
        tags: &BTreeMap<String, String>,
    ) -> Result<(), ProviderError> {
        let sm = self.secretsmanager(region).await?;
        for name in names {
            let result = sm
                .tag_resource()
                .secret_id(name)
                .set_tags(Some(sm_tags(tags)))
                .send()
                .await;
            self.observe("TagResource", region, result.map_err(from_sdk))?;
        }
        Ok(())
    }

    pub(crate) async fn untag_secrets(
        &self,
        region: &str,
        names: &[String],
        keys: &[String],
    ) -> Result<(), ProviderError> {
        let sm = self.secretsmanager(region).await?;
        for name in names {
            let result = sm
                .untag_resource()
                .secret_id(name)
                .set_tag_keys(Some(keys.to_vec()))
                .send()
                .await;
            self.observe("UntagResource", region, result.map_err(from_sdk))?;
        }
        Ok(())
    }

    /// Sets tags on parameters by full name (SSM's AddTagsToResource, one a call).
    pub(crate) async fn tag_parameters(
        &self,
        region: &str,
        names: &[String],
        tags: &BTreeMap<String, String>,
    ) -> Result<(), ProviderError> {
        let ssm = self.ssm(region).await?;
        for name in names {
            let result = ssm
                .add_tags_to_resource()
                .resource_type(ResourceTypeForTagging::Parameter)
                .resource_id(name)
                .set_tags(Some(ssm_tags(tags)))
                .send()
                .await;
            self.observe("AddTagsToResource", region, result.map_err(from_sdk))?;
        }
        Ok(())
    }

    pub(crate) async fn untag_parameters(
        &self,
        region: &str,
        names: &[String],
        keys: &[String],
    ) -> Result<(), ProviderError> {
        let ssm = self.ssm(region).await?;
        for name in names {
            let result = ssm
                .remove_tags_from_resource()
                .resource_type(ResourceTypeForTagging::Parameter)
                .resource_id(name)
                .set_tag_keys(Some(keys.to_vec()))
                .send()
                .await;
            self.observe("RemoveTagsFromResource", region, result.map_err(from_sdk))?;
        }
        Ok(())
    }

    async fn parameter_tags(
        &self,
        region: &str,
        name: &str,
    ) -> Result<BTreeMap<String, String>, ProviderError> {
        let ssm = self.ssm(region).await?;
        let result = ssm
            .list_tags_for_resource()
            .resource_type(ResourceTypeForTagging::Parameter)
            .resource_id(name)
            .send()
            .await;
        let listed = self.observe("ListTagsForResource", region, result.map_err(from_sdk))?;
        Ok(listed
            .tag_list()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect())
    }
}

#[async_trait]
impl Parameters for AwsProvider {
    fn limits(&self) -> (u32, usize) {
        (PARAMETER_PAGE, PARAMETERS_PER_DELETE)
    }

    async fn list_parameters(
        &self,
        region: &str,
        path: &str,
        recursive: bool,
        limit: u32,
        page_token: Option<&str>,
    ) -> Result<ParameterPage, ProviderError> {
        let ssm = self.ssm(region).await?;
        // DescribeParameters pages by 50 where GetParametersByPath pages by 10, and it
        // carries no values, which a listing never shows.
        let option = if recursive { "Recursive" } else { "OneLevel" };
        let filter = string_filter("Path", option, path.trim_end_matches('/'))?;
        let result = ssm
            .describe_parameters()
            .parameter_filters(filter)
            .max_results(limit.clamp(1, PARAMETER_PAGE) as i32)
            .set_next_token(page_token.map(str::to_string))
            .send()
            .await;
        let page = self.observe("DescribeParameters", region, result.map_err(from_sdk))?;
        Ok(ParameterPage {
            items: page
                .parameters()
                .iter()
                .map(|p| Parameter {
                    name: p.name().unwrap_or_default().to_string(),
                    arn: p.arn().map(str::to_string),
                    kind: from_ssm_type(p.r#type()),
                    version: p.version(),
                    description: p.description().map(str::to_string),
                    kms_key_id: p.key_id().map(str::to_string),
                    last_modified_at: p.last_modified_date().map(|t| t.to_string()),
                    value: None,
                    tags: BTreeMap::new(),
                })
                .collect(),
            next_page_token: page
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_string),
        })
    }

    async fn parameter(
        &self,
        region: &str,
        name: &str,
        decrypt: bool,
    ) -> Result<Option<Parameter>, ProviderError> {
        let ssm = self.ssm(region).await?;
        let filter = string_filter("Name", "Equals", name)?;
        let result = ssm
            .describe_parameters()
            .parameter_filters(filter)
            .max_results(1)
            .send()
            .await;
        let described = self.observe("DescribeParameters", region, result.map_err(from_sdk))?;
        let Some(meta) = described.parameters().first() else {
            return Ok(None);
        };
        let kind = from_ssm_type(meta.r#type());
        // A SecureString's value is read only when asked for: even encrypted, it is
        // nothing a listing or a description needs. The parameter is read also when the
        // description lacks its ARN (moto's does), for the ARN alone.
        let wants_value = kind != ParameterType::SecureString || decrypt;
        let (value, arn) = if wants_value || meta.arn().is_none() {
            let result = ssm
                .get_parameter()
                .name(name)
                .with_decryption(decrypt)
                .send()
                .await;
            let got = self.observe("GetParameter", region, result.map_err(from_sdk))?;
            let parameter = got.parameter();
            (
                parameter
                    .and_then(|p| p.value())
                    .filter(|_| wants_value)
                    .map(str::to_string),
                meta.arn()
                    .or(parameter.and_then(|p| p.arn()))
                    .map(str::to_string),
            )
        } else {
            (None, meta.arn().map(str::to_string))
        };
        Ok(Some(Parameter {
            name: name.to_string(),
            arn,
            kind,
            version: meta.version(),
            description: meta.description().map(str::to_string),
            kms_key_id: meta.key_id().map(str::to_string),
            last_modified_at: meta.last_modified_date().map(|t| t.to_string()),
            value,
            tags: self.parameter_tags(region, name).await?,
        }))
    }

    async fn put_parameter(&self, spec: &ParameterSpec) -> Result<i64, ProviderError> {
        let ssm = self.ssm(&spec.region).await?;
        let mut request = ssm
            .put_parameter()
            .name(&spec.name)
            .value(&spec.value)
            .r#type(to_ssm_type(spec.kind))
            .set_description(spec.description.clone())
            .set_key_id(spec.kms_key_id.clone())
            .overwrite(spec.overwrite);
        // SSM refuses tags together with an overwrite: an overwrite tags in a second call.
        if !spec.overwrite {
            request = request.set_tags(Some(ssm_tags(&spec.tags)));
        }
        let result = request.send().await;
        let put = self.observe("PutParameter", &spec.region, result.map_err(from_sdk))?;
        if spec.overwrite && !spec.tags.is_empty() {
            self.tag_parameters(&spec.region, std::slice::from_ref(&spec.name), &spec.tags)
                .await?;
        }
        Ok(put.version())
    }

    async fn parameter_history(
        &self,
        region: &str,
        name: &str,
    ) -> Result<Vec<Parameter>, ProviderError> {
        let ssm = self.ssm(region).await?;
        let mut versions = Vec::new();
        let mut next_token = None;
        loop {
            let result = ssm
                .get_parameter_history()
                .name(name)
                .with_decryption(false)
                .max_results(50)
                .set_next_token(next_token)
                .send()
                .await;
            let page = self.observe("GetParameterHistory", region, result.map_err(from_sdk))?;
            versions.extend(page.parameters().iter().map(|p| Parameter {
                name: name.to_string(),
                arn: None,
                kind: from_ssm_type(p.r#type()),
                version: p.version(),
                description: p.description().map(str::to_string),
                kms_key_id: p.key_id().map(str::to_string),
                last_modified_at: p.last_modified_date().map(|t| t.to_string()),
                value: None,
                tags: BTreeMap::new(),
            }));
            next_token = page
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_string);
            if next_token.is_none() {
                return Ok(versions);
            }
        }
    }

    async fn delete_parameters(
        &self,
        region: &str,
        names: &[String],
    ) -> Result<Vec<String>, ProviderError> {
        let ssm = self.ssm(region).await?;
        let result = ssm
            .delete_parameters()
            .set_names(Some(names.to_vec()))
            .send()
            .await;
        let deleted = self.observe("DeleteParameters", region, result.map_err(from_sdk))?;
        Ok(deleted.invalid_parameters().to_vec())
    }
}
