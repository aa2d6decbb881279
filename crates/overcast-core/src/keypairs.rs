//! SSH key pairs: created by the backend (the private key goes to the caller once, through
//! the runner's in-memory handover, and is never stored), imported from a public key, or
//! deleted.

use crate::auth::Principal;
use crate::{to_input, visible_only, visible_org, Core, Idempotency};
use async_trait::async_trait;
use overcast_provider::KeyPair;
use overcast_types::Operation;
use overcast_types::Role;
use overcast_types::{tags, Error, TargetOutcome, TargetResult};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use utoipa::ToSchema;

use crate::environments::{Environment, Environments};
use crate::instances::check_tags;
use crate::operations::{Executor, Step};
use crate::provider_error;

pub const CREATE_KIND: &str = "key_pair.create";
pub const IMPORT_KIND: &str = "key_pair.import";
pub const DELETE_KIND: &str = "key_pair.delete";

/// A request for a key pair: made by the backend, or imported from `public_key`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyPairRequest {
    pub name: String,
    /// Default: the environment's first region.
    #[serde(default)]
    pub region: Option<String>,
    /// An OpenSSH public key (`ssh-ed25519 AAAA...`) to import instead of making one.
    #[serde(default)]
    pub public_key: Option<String>,
    /// For a new key: `rsa` (default) or `ed25519`.
    #[serde(default)]
    pub key_type: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl CreateKeyPairRequest {
    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.name.is_empty()
            || self.name.len() > 255
            || !self.name.chars().all(|c| c.is_ascii_graphic() || c == ' ')
        {
            return Err(Error::invalid(
                "name",
                "use 1 to 255 printable ASCII characters",
            ));
        }
        match (&self.public_key, self.key_type.as_deref()) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "key_type",
                    "only for a new key, not with public_key",
                ))
            }
            (None, Some(t)) if t != "rsa" && t != "ed25519" => {
                return Err(Error::invalid(
                    "key_type",
                    format!("`{t}` is not rsa or ed25519"),
                ))
            }
            (Some(key), None) => {
                let kind = key.split_whitespace().next().unwrap_or("");
                if !(kind == "ssh-rsa" || kind == "ssh-ed25519" || kind.starts_with("ecdsa-sha2-"))
                    || key.split_whitespace().count() < 2
                {
                    return Err(Error::invalid(
                        "public_key",
                        "is not an OpenSSH public key like `ssh-ed25519 AAAA...`",
                    ));
                }
            }
            _ => {}
        }
        check_tags(&self.tags)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub(crate) enum KeyPairChange {
    Create {
        region: String,
        name: String,
        key_type: String,
        tags: BTreeMap<String, String>,
    },
    Import {
        region: String,
        name: String,
        public_key: String,
        tags: BTreeMap<String, String>,
    },
    Delete {
        region: String,
        name: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct KeyPairInput {
    pub environment: String,
    pub change: KeyPairChange,
}

impl Environment {
    /// The key pair of that name in a region, if there is one.
    pub async fn find_key_pair(&self, region: &str, name: &str) -> Result<Option<KeyPair>, Error> {
        let found = self
            .key_pairs()?
            .list_key_pairs(Some(region))
            .await
            .map_err(provider_error)?;
        Ok(found
            .into_iter()
            .find(|k| k.name == name)
            .map(|k| self.own(k)))
    }
}

pub(crate) struct KeyPairExecutor {
    pub environments: Arc<Environments>,
}

#[async_trait]
impl Executor for KeyPairExecutor {
    async fn run(&self, step: &mut Step) -> Result<(), Error> {
        let input: KeyPairInput = step.input()?;
        let env = self.environments.require(&input.environment)?;
        let key_pairs = env.key_pairs()?;
        let operation_id = step.operation().id.clone();
        step.set_total(1).await?;
        let mine = |k: &KeyPair| k.tags.get(tags::OPERATION) == Some(&operation_id);
        let key_pair = match input.change {
            KeyPairChange::Create {
                region,
                name,
                key_type,
                mut tags,
            } => {
                if let Some(existing) = env.find_key_pair(&region, &name).await? {
                    if mine(&existing) {
                        // An earlier run made it, and its private key went with that run:
                        // no one can ever have it, so the key pair must not stay.
                        key_pairs
                            .delete_key_pair(&region, &name)
                            .await
                            .map_err(provider_error)?;
                        return Err(Error::conflict(
                            "private_key_lost",
                            format!("the server stopped while making key pair `{name}`; its private key was lost, so the key pair was deleted: create it again"),
                        ));
                    }
                    return Err(Error {
                        field: Some("name".into()),
                        ..Error::conflict(
                            "key_pair_exists",
                            format!("key pair `{name}` exists in {region}"),
                        )
                    });
                }
                tags.insert(tags::OPERATION.into(), operation_id.clone());
                let (key_pair, private_key) = key_pairs
                    .create_key_pair(&region, &name, &key_type, &tags)
                    .await
                    .map_err(provider_error)?;
                step.hand_over(private_key);
                key_pair
            }
            KeyPairChange::Import {
                region,
                name,
                public_key,
                mut tags,
            } => match env.find_key_pair(&region, &name).await? {
                Some(existing) if mine(&existing) => existing,
                _ => {
                    tags.insert(tags::OPERATION.into(), operation_id.clone());
                    key_pairs
                        .import_key_pair(&region, &name, &public_key, &tags)
                        .await
                        .map_err(provider_error)?
                }
            },
            KeyPairChange::Delete { region, name } => {
                key_pairs
                    .delete_key_pair(&region, &name)
                    .await
                    .map_err(provider_error)?;
                return step
                    .record(TargetResult {
                        target: name,
                        outcome: TargetOutcome::Done,
                        message: Some("deleted".into()),
                        detail: None,
                    })
                    .await;
            }
        };
        step.record(TargetResult {
            target: key_pair.name.clone(),
            outcome: TargetOutcome::Done,
            message: None,
            detail: Some(
                serde_json::to_value(&key_pair).map_err(|e| Error::internal(e.to_string()))?,
            ),
        })
        .await
    }
}

impl Core {
    /// Key pairs the caller may see, of one region or all.
    pub async fn key_pairs(
        &self,
        principal: &Principal,
        env: &str,
        region: Option<&str>,
    ) -> Result<Vec<overcast_provider::KeyPair>, Error> {
        let (environment, region) = self.region_of(env, region)?;
        let found = environment
            .key_pairs()?
            .list_key_pairs(region.as_deref())
            .await;
        Ok(visible_only(
            principal,
            environment,
            found.map_err(provider_error)?,
        ))
    }

    /// Makes or imports a key pair, as an operation. A made key's private half is taken
    /// from the runner with [`Core::take_private_key`] by the request that waits for it.
    pub async fn create_key_pair(
        &self,
        principal: &Principal,
        env: &str,
        request: &CreateKeyPairRequest,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        principal.require(Role::Operator)?;
        request.validate()?;
        let environment = self.environments.require(env)?;
        let region = environment.region_or_first(request.region.as_deref())?;
        if environment
            .find_key_pair(&region, &request.name)
            .await?
            .is_some()
        {
            return Err(Error {
                field: Some("name".into()),
                ..Error::conflict(
                    "key_pair_exists",
                    format!("key pair `{}` exists in {region}", request.name),
                )
            });
        }
        let mut key_tags = request.tags.clone();
        key_tags.insert(overcast_types::tags::ORG.into(), principal.org.clone());
        key_tags.insert(
            overcast_types::tags::CREATED_BY.into(),
            principal.token_name.clone(),
        );
        let name = request.name.clone();
        let (kind, change) = match &request.public_key {
            Some(public_key) => (
                IMPORT_KIND,
                KeyPairChange::Import {
                    region,
                    name,
                    public_key: public_key.clone(),
                    tags: key_tags,
                },
            ),
            None => (
                CREATE_KIND,
                KeyPairChange::Create {
                    region,
                    name,
                    key_type: request.key_type.clone().unwrap_or_else(|| "rsa".into()),
                    tags: key_tags,
                },
            ),
        };
        let input = to_input(&KeyPairInput {
            environment: env.to_string(),
            change,
        })?;
        let target = format!("{env}/key-pairs/{}", request.name);
        let (operation, _) = self
            .start_operation(
                principal,
                kind,
                &principal.org,
                Some(env),
                target,
                input,
                idempotency,
            )
            .await?;
        Ok(operation)
    }

    /// The private key a `key_pair.create` operation made, once, for the caller who may see
    /// that operation.
    pub async fn take_private_key(
        &self,
        principal: &Principal,
        operation_id: &str,
    ) -> Result<Option<String>, Error> {
        self.operation(principal, operation_id).await?;
        Ok(self.runner.take_handover(operation_id))
    }

    pub async fn delete_key_pair(
        &self,
        principal: &Principal,
        env: &str,
        name: &str,
        region: Option<&str>,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        principal.require(Role::Operator)?;
        let environment = self.environments.require(env)?;
        let region = environment.region_or_first(region)?;
        let key_pair = match environment.find_key_pair(&region, name).await? {
            Some(k) if visible_org(principal, k.org.as_deref()) => k,
            _ => return Err(Error::not_found("key_pair", name)),
        };
        let change = KeyPairChange::Delete {
            region,
            name: name.to_string(),
        };
        let input = to_input(&KeyPairInput {
            environment: env.to_string(),
            change,
        })?;
        let org = key_pair
            .org
            .clone()
            .unwrap_or_else(|| principal.org.clone());
        let (operation, _) = self
            .start_operation(
                principal,
                DELETE_KIND,
                &org,
                Some(env),
                format!("{env}/key-pairs/{name}"),
                input,
                idempotency,
            )
            .await?;
        Ok(operation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(public_key: Option<&str>, key_type: Option<&str>) -> CreateKeyPairRequest {
        CreateKeyPairRequest {
            name: "ops".into(),
            region: None,
            public_key: public_key.map(Into::into),
            key_type: key_type.map(Into::into),
            tags: BTreeMap::new(),
        }
    }

    #[test]
    fn requests_are_checked() {
        assert!(request(None, None).validate().is_ok());
        assert!(request(None, Some("ed25519")).validate().is_ok());
        assert!(request(Some("ssh-ed25519 AAAAC3Nza me@host"), None)
            .validate()
            .is_ok());
        let field = |r: CreateKeyPairRequest| r.validate().unwrap_err().field.unwrap();
        assert_eq!(field(request(None, Some("dsa"))), "key_type");
        assert_eq!(field(request(Some("not a key"), None)), "public_key");
        assert_eq!(
            field(request(Some("ssh-rsa AAAA"), Some("rsa"))),
            "key_type"
        );
    }
}
