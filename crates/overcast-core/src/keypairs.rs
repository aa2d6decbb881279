//! SSH key pairs: created by the backend (the private key goes to the caller once, through
//! the runner's in-memory handover, and is never stored), imported from a public key, or
//! deleted.

use async_trait::async_trait;
use overcast_provider::{KeyPair, KeyPairs};
use overcast_types::{tags, Error, ErrorKind, TargetOutcome, TargetResult};
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
    pub fn key_pairs(&self) -> Result<&dyn KeyPairs, Error> {
        self.compute()?;
        self.provider.key_pairs().ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                "not_supported",
                format!(
                    "key pairs are not supported by provider {}",
                    self.provider.kind()
                ),
            )
        })
    }

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
