//! Secrets of an environment's secrets store, per org: listings and descriptions without
//! values, the value by its own read (operators only, audited), and changes as operations
//! whose value reaches the backend from memory, never from the store.

use async_trait::async_trait;
use base64::Engine;
use overcast_provider::{SecretSpec, VersionWanted};
use overcast_types::{
    tags, validate_secret_name, Error, Operation, Page, Role, Secret, SecretData, SecretValue,
    TargetResult,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

use crate::access::{made_by, owner_tags, visible_only, visible_or_404};
use crate::app::{Core, Idempotency, Target};
use crate::auth::Principal;
use crate::errors::provider_error;
use crate::operations::attempts::find_or_create;
use crate::operations::{Change, InEnvironment, OperationContext};
use crate::tags::{check_keys, check_tags};

/// The largest value Secrets Manager takes, held for every provider.
const MAX_VALUE: usize = 64 * 1024;

/// Which secrets a listing wants.
#[derive(Debug, Clone, Default)]
pub struct SecretQuery {
    pub region: Option<String>,
    /// Names that start with this.
    pub prefix: Option<String>,
    /// Secrets carrying every one of these tags.
    pub tags: BTreeMap<String, String>,
    pub limit: u32,
    /// The last name of the previous page.
    pub page_token: Option<String>,
}

/// A new secret.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSecretRequest {
    pub name: String,
    /// The value as text; or give `value_base64`.
    #[serde(default)]
    pub value: Option<String>,
    /// The value as base64-encoded bytes; or give `value`.
    #[serde(default)]
    pub value_base64: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub kms_key_id: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// A change to a secret: a new value (a new current version), tags, or both.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSecretRequest {
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub value_base64: Option<String>,
    /// Tags to set.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Tag keys to remove.
    #[serde(default)]
    pub remove_tags: Vec<String>,
}

/// What a secret change records: never the value, only whether one was given and its form.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub(crate) enum SecretChange {
    Create {
        region: String,
        name: String,
        description: Option<String>,
        kms_key_id: Option<String>,
        tags: BTreeMap<String, String>,
        binary: bool,
    },
    Update {
        region: String,
        name: String,
        /// Whether a value was given; its form if so.
        value: Option<ValueForm>,
        tags: BTreeMap<String, String>,
        remove_tags: Vec<String>,
    },
    Delete {
        region: String,
        name: String,
        window_days: u32,
    },
    Restore {
        region: String,
        name: String,
    },
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ValueForm {
    Text,
    Binary,
}

/// The value of a request: text, or bytes given as base64; exactly one.
fn value_of(
    value: &Option<String>,
    value_base64: &Option<String>,
) -> Result<Option<SecretData>, Error> {
    let data = match (value, value_base64) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                "value",
                "give value or value_base64, not both",
            ))
        }
        (Some(text), None) => SecretData::Text(text.clone()),
        (None, Some(encoded)) => SecretData::Binary(
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|_| Error::invalid("value_base64", "is not valid base64"))?,
        ),
        (None, None) => return Ok(None),
    };
    let size = match &data {
        SecretData::Text(t) => t.len(),
        SecretData::Binary(b) => b.len(),
    };
    if size == 0 || size > MAX_VALUE {
        let field = if value.is_some() {
            "value"
        } else {
            "value_base64"
        };
        return Err(Error::invalid(field, "must be 1 byte to 64 KiB"));
    }
    Ok(Some(data))
}

/// A value as it travels to the change in memory: text as is, bytes as base64.
fn to_given(data: &SecretData) -> (String, ValueForm) {
    match data {
        SecretData::Text(text) => (text.clone(), ValueForm::Text),
        SecretData::Binary(bytes) => (
            base64::engine::general_purpose::STANDARD.encode(bytes),
            ValueForm::Binary,
        ),
    }
}

fn from_given(given: String, form: ValueForm) -> Result<SecretData, Error> {
    match form {
        ValueForm::Text => Ok(SecretData::Text(given)),
        ValueForm::Binary => base64::engine::general_purpose::STANDARD
            .decode(given)
            .map(SecretData::Binary)
            .map_err(|e| Error::internal(format!("a given value did not decode: {e}"))),
    }
}

/// Checks a recovery window: 0 (delete at once) or 7–30 days.
pub fn check_window(window_days: u32) -> Result<(), Error> {
    if window_days == 0 || (7..=30).contains(&window_days) {
        Ok(())
    } else {
        Err(Error::invalid(
            "window",
            "must be 0 (delete at once) or from 7 to 30 days",
        ))
    }
}

/// `secret.create`, `.update`, `.delete` and `.restore`. A create or value update takes the
/// value its request gave it in memory; a run that finds none (resumed after a restart)
/// fails without writing, telling the client to send the request again. A create finds a
/// secret an earlier try made by its operation tag.
pub(crate) struct SecretChanges;

#[async_trait]
impl Change for SecretChanges {
    const KINDS: &'static [&'static str] = &[
        "secret.create",
        "secret.update",
        "secret.delete",
        "secret.restore",
    ];
    type Input = InEnvironment<SecretChange>;

    fn kind(input: &InEnvironment<SecretChange>) -> &'static str {
        match input.change {
            SecretChange::Create { .. } => "secret.create",
            SecretChange::Update { .. } => "secret.update",
            SecretChange::Delete { .. } => "secret.delete",
            SecretChange::Restore { .. } => "secret.restore",
        }
    }

    async fn run(
        &self,
        input: InEnvironment<SecretChange>,
        step: &mut OperationContext,
    ) -> Result<(), Error> {
        let env = step.environment(&input.environment)?;
        let secrets = env.secrets()?;
        step.set_total(1).await?;
        let operation_id = step.operation_id().to_string();
        let result = match input.change {
            SecretChange::Create {
                region,
                name,
                description,
                kms_key_id,
                mut tags,
                binary,
            } => {
                tags.insert(tags::OPERATION.into(), operation_id.clone());
                let find = || async {
                    let found = secrets.secret(&region, &name).await?;
                    Ok(found.filter(made_by(&operation_id)))
                };
                // A secret this operation made already needs no value: found first.
                let secret = match find().await.map_err(provider_error)? {
                    Some(secret) => secret,
                    None => {
                        let form = if binary {
                            ValueForm::Binary
                        } else {
                            ValueForm::Text
                        };
                        let spec = SecretSpec {
                            region: region.clone(),
                            name: name.clone(),
                            value: from_given(step.take_given()?, form)?,
                            description,
                            kms_key_id,
                            tags,
                            client_token: client_token(&operation_id),
                        };
                        find_or_create("secret", &step.cancellation(), find, || {
                            secrets.create_secret(&spec)
                        })
                        .await?
                    }
                };
                let secret = env.with_owner(secret);
                TargetResult::done(&secret.name).with_detail(&secret)?
            }
            SecretChange::Update {
                region,
                name,
                value,
                tags,
                remove_tags,
            } => {
                let mut message = Vec::new();
                if let Some(form) = value {
                    let data = from_given(step.take_given()?, form)?;
                    let version = secrets
                        .put_secret_value(&region, &name, &data, &client_token(&operation_id))
                        .await
                        .map_err(provider_error)?;
                    message.push(format!("version {version} is current"));
                }
                let tagging = env.tags()?;
                let ids = [name.clone()];
                if !tags.is_empty() {
                    tagging
                        .set_tags(
                            &region,
                            overcast_provider::ResourceKind::Secret,
                            &ids,
                            &tags,
                        )
                        .await
                        .map_err(provider_error)?;
                    message.push(format!("{} tag(s) set", tags.len()));
                }
                if !remove_tags.is_empty() {
                    tagging
                        .remove_tags(
                            &region,
                            overcast_provider::ResourceKind::Secret,
                            &ids,
                            &remove_tags,
                        )
                        .await
                        .map_err(provider_error)?;
                    message.push(format!("{} tag(s) removed", remove_tags.len()));
                }
                TargetResult::done(&name).with_message(message.join("; "))
            }
            SecretChange::Delete {
                region,
                name,
                window_days,
            } => {
                let message = match secrets.delete_secret(&region, &name, window_days).await {
                    Ok(Some(date)) if window_days > 0 => format!("deleted for good on {date}"),
                    Ok(_) => "deleted".to_string(),
                    // Gone already: a re-run after the delete was done.
                    Err(e) if e.code == "secret_not_found" => "already deleted".to_string(),
                    Err(e) => return Err(provider_error(e)),
                };
                TargetResult::done(&name).with_message(message)
            }
            SecretChange::Restore { region, name } => {
                secrets
                    .restore_secret(&region, &name)
                    .await
                    .map_err(provider_error)?;
                TargetResult::done(&name).with_message("restored")
            }
        };
        step.record(result).await
    }
}

/// Secrets Manager wants 32–64 characters; an operation id is shorter, so it is padded
/// the same way every time.
fn client_token(operation_id: &str) -> String {
    format!("{operation_id:0<32}")
}

impl Core {
    /// The secrets the caller may see, by name, without values.
    pub async fn secrets(
        &self,
        principal: &Principal,
        env: &str,
        query: SecretQuery,
    ) -> Result<Page<Secret>, Error> {
        let environment = self.environments.require(env)?;
        let secrets = environment.secrets()?;
        let regions = match environment.region_if_given(query.region.as_deref())? {
            Some(region) => vec![region],
            None => environment.regions()?,
        };
        let mut all = Vec::new();
        for region in regions {
            all.extend(
                secrets
                    .list_secrets(&region)
                    .await
                    .map_err(provider_error)?,
            );
        }
        let mut all: Vec<Secret> = visible_only(principal, environment, all)
            .into_iter()
            .filter(|s| query.prefix.as_ref().is_none_or(|p| s.name.starts_with(p)))
            .filter(|s| query.tags.iter().all(|(k, v)| s.tags.get(k) == Some(v)))
            .filter(|s| {
                query
                    .page_token
                    .as_ref()
                    .is_none_or(|after| &s.name > after)
            })
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        let limit = query.limit.clamp(1, 1000) as usize;
        let next_page_token = (all.len() > limit).then(|| all[limit - 1].name.clone());
        all.truncate(limit);
        Ok(Page::of(all, next_page_token))
    }

    /// One secret the caller may see, without its value (404 for another org's).
    pub async fn secret(
        &self,
        principal: &Principal,
        env: &str,
        region: Option<&str>,
        name: &str,
    ) -> Result<Secret, Error> {
        let environment = self.environments.require(env)?;
        let region = environment.region_or_first(region)?;
        let found = environment
            .secrets()?
            .secret(&region, name)
            .await
            .map_err(provider_error)?
            .map(|secret| environment.with_owner(secret));
        visible_or_404(principal, found, "secret", name)
    }

    /// A secret's value: operators only. (The front end puts every read in the audit log,
    /// allowed or not; never the value.)
    pub async fn secret_value(
        &self,
        principal: &Principal,
        env: &str,
        region: Option<&str>,
        name: &str,
        wanted: &VersionWanted,
    ) -> Result<SecretValue, Error> {
        principal.require(Role::Operator)?;
        let secret = self.secret(principal, env, region, name).await?;
        refuse_if_deleted(&secret)?;
        self.environments
            .require(env)?
            .secrets()?
            .secret_value(&secret.region, name, wanted)
            .await
            .map_err(provider_error)
    }

    /// Makes a secret, as an operation; the value goes to the operation in memory only.
    pub async fn create_secret(
        &self,
        principal: &Principal,
        env: &str,
        request: &CreateSecretRequest,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        principal.require(Role::Operator)?;
        if let Some(operation) = self.replayed(principal, idempotency).await? {
            return Ok(operation);
        }
        validate_secret_name("name", &request.name)?;
        check_tags(&request.tags)?;
        let data = value_of(&request.value, &request.value_base64)?
            .ok_or_else(|| Error::invalid("value", "give value or value_base64"))?;
        let environment = self.environments.require(env)?;
        let region = environment.region_or_first(request.region.as_deref())?;
        let secrets = environment.secrets()?;
        if let Some(existing) = secrets
            .secret(&region, &request.name)
            .await
            .map_err(provider_error)?
        {
            let state = if existing.deletion_date.is_some() {
                " (scheduled for deletion: restore it, or wait)"
            } else {
                ""
            };
            return Err(Error {
                field: Some("name".into()),
                ..Error::conflict(
                    "secret_exists",
                    format!("secret `{}` exists{state}", request.name),
                )
            });
        }
        let tags = owner_tags(principal, &request.tags);
        let (given, form) = to_given(&data);
        let input = InEnvironment {
            environment: env.to_string(),
            change: SecretChange::Create {
                region,
                name: request.name.clone(),
                description: request.description.clone(),
                kms_key_id: request.kms_key_id.clone(),
                tags,
                binary: matches!(form, ValueForm::Binary),
            },
        };
        let target = Target::new(env, format!("{env}/{}", request.name));
        self.start_giving::<SecretChanges>(principal, target, &input, idempotency, given)
            .await
    }

    /// Changes a secret's value (a new current version) and/or tags, as an operation.
    pub async fn update_secret(
        &self,
        principal: &Principal,
        env: &str,
        region: Option<&str>,
        name: &str,
        request: &UpdateSecretRequest,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        principal.require(Role::Operator)?;
        if let Some(operation) = self.replayed(principal, idempotency).await? {
            return Ok(operation);
        }
        check_tags(&request.tags)?;
        check_keys(&request.remove_tags)?;
        let data = value_of(&request.value, &request.value_base64)?;
        if data.is_none() && request.tags.is_empty() && request.remove_tags.is_empty() {
            return Err(Error::invalid(
                "value",
                "give a value, value_base64, tags or remove_tags",
            ));
        }
        let secret = self.secret(principal, env, region, name).await?;
        refuse_if_deleted(&secret)?;
        let given = data.as_ref().map(to_given);
        let input = InEnvironment {
            environment: env.to_string(),
            change: SecretChange::Update {
                region: secret.region.clone(),
                name: name.to_string(),
                value: given.as_ref().map(|(_, form)| *form),
                tags: request.tags.clone(),
                remove_tags: request.remove_tags.clone(),
            },
        };
        let target = Target::new(env, format!("{env}/{name}")).owned_by(secret.org.as_deref());
        match given {
            Some((value, _)) => {
                self.start_giving::<SecretChanges>(principal, target, &input, idempotency, value)
                    .await
            }
            None => {
                self.start::<SecretChanges>(principal, target, &input, idempotency)
                    .await
            }
        }
    }

    /// Deletes a secret after a recovery window (7–30 days), or at once (0), as an
    /// operation.
    pub async fn delete_secret(
        &self,
        principal: &Principal,
        env: &str,
        region: Option<&str>,
        name: &str,
        window_days: u32,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        principal.require(Role::Operator)?;
        if let Some(operation) = self.replayed(principal, idempotency).await? {
            return Ok(operation);
        }
        check_window(window_days)?;
        let secret = self.secret(principal, env, region, name).await?;
        if window_days > 0 {
            refuse_if_deleted(&secret)?;
        }
        let input = InEnvironment {
            environment: env.to_string(),
            change: SecretChange::Delete {
                region: secret.region.clone(),
                name: name.to_string(),
                window_days,
            },
        };
        let target = Target::new(env, format!("{env}/{name}")).owned_by(secret.org.as_deref());
        self.start::<SecretChanges>(principal, target, &input, idempotency)
            .await
    }

    /// Cancels a secret's scheduled deletion, as an operation.
    pub async fn restore_secret(
        &self,
        principal: &Principal,
        env: &str,
        region: Option<&str>,
        name: &str,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        principal.require(Role::Operator)?;
        if let Some(operation) = self.replayed(principal, idempotency).await? {
            return Ok(operation);
        }
        let secret = self.secret(principal, env, region, name).await?;
        if secret.deletion_date.is_none() {
            return Err(Error::conflict(
                "not_deleted",
                format!("secret `{name}` is not scheduled for deletion"),
            ));
        }
        let input = InEnvironment {
            environment: env.to_string(),
            change: SecretChange::Restore {
                region: secret.region.clone(),
                name: name.to_string(),
            },
        };
        let target = Target::new(env, format!("{env}/{name}")).owned_by(secret.org.as_deref());
        self.start::<SecretChanges>(principal, target, &input, idempotency)
            .await
    }
}

/// A secret scheduled for deletion takes no changes until it is restored.
fn refuse_if_deleted(secret: &Secret) -> Result<(), Error> {
    match &secret.deletion_date {
        Some(date) => Err(Error::conflict(
            "secret_deleted",
            format!(
                "secret `{}` is scheduled for deletion on {date}: restore it first",
                secret.name
            ),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_windows_are_checked() {
        assert_eq!(
            value_of(&Some("s3cret".into()), &None).unwrap(),
            Some(SecretData::Text("s3cret".into()))
        );
        assert_eq!(
            value_of(&None, &Some("AAEC".into())).unwrap(),
            Some(SecretData::Binary(vec![0, 1, 2]))
        );
        let both = value_of(&Some("a".into()), &Some("AA==".into())).unwrap_err();
        assert_eq!(both.field.as_deref(), Some("value"));
        let bad = value_of(&None, &Some("!!".into())).unwrap_err();
        assert_eq!(bad.field.as_deref(), Some("value_base64"));
        assert!(value_of(&Some("x".repeat(MAX_VALUE + 1)), &None).is_err());
        for ok in [0, 7, 30] {
            assert!(check_window(ok).is_ok());
        }
        for bad in [1, 6, 31] {
            assert_eq!(
                check_window(bad).unwrap_err().field.as_deref(),
                Some("window")
            );
        }
        assert_eq!(client_token("op_1").len(), 32);
    }
}
