//! SSH key pairs: created by the backend (the private key goes to the caller once, through
//! the runner's in-memory handover, and is never stored), imported from a public key, or
//! deleted.

use async_trait::async_trait;
use overcast_provider::KeyPair;
use overcast_types::{tags, Error, Operation, Role, TargetResult};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

use crate::access::{made_by, owner_tags, visible_only, visible_or_404};
use crate::app::{Core, Idempotency, Target};
use crate::auth::Principal;
use crate::environments::Environment;
use crate::errors::provider_error;
use crate::operations::{Change, InEnvironment, OperationContext};
use crate::tags::check_tags;

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
            .map(|k| self.with_owner(k)))
    }
}

/// `key_pair.create`, `.import` and `.delete`. A made key pair's private key goes to the
/// waiting request through the runner's handover; a re-run cannot deliver it, so it
/// deletes the key pair its earlier run made and fails saying so.
pub(crate) struct KeyPairChanges;

#[async_trait]
impl Change for KeyPairChanges {
    const KINDS: &'static [&'static str] =
        &["key_pair.create", "key_pair.import", "key_pair.delete"];
    type Input = InEnvironment<KeyPairChange>;

    fn kind(input: &InEnvironment<KeyPairChange>) -> &'static str {
        match input.change {
            KeyPairChange::Create { .. } => "key_pair.create",
            KeyPairChange::Import { .. } => "key_pair.import",
            KeyPairChange::Delete { .. } => "key_pair.delete",
        }
    }

    async fn run(
        &self,
        input: InEnvironment<KeyPairChange>,
        step: &mut OperationContext,
    ) -> Result<(), Error> {
        let env = step.environment(&input.environment)?;
        let key_pairs = env.key_pairs()?;
        let operation_id = step.operation_id().to_string();
        step.set_total(1).await?;
        let mine = made_by::<KeyPair>(&operation_id);
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
                    .record(TargetResult::done(name).with_message("deleted"))
                    .await;
            }
        };
        step.record(TargetResult::done(&key_pair.name).with_detail(&key_pair)?)
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
        let environment = self.environments.require(env)?;
        let region = environment.region_if_given(region)?;
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
        let tags = owner_tags(principal, &request.tags);
        let name = request.name.clone();
        let change = match &request.public_key {
            Some(public_key) => KeyPairChange::Import {
                region,
                name,
                public_key: public_key.clone(),
                tags,
            },
            None => KeyPairChange::Create {
                region,
                name,
                key_type: request.key_type.clone().unwrap_or_else(|| "rsa".into()),
                tags,
            },
        };
        let input = InEnvironment::new(env, change);
        let target = Target::new(env, format!("{env}/key-pairs/{}", request.name));
        self.start::<KeyPairChanges>(principal, target, &input, idempotency)
            .await
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
        if let Some(operation) = self.replayed(principal, idempotency).await? {
            return Ok(operation);
        }
        let environment = self.environments.require(env)?;
        let region = environment.region_or_first(region)?;
        let found = environment.find_key_pair(&region, name).await?;
        let key_pair = visible_or_404(principal, found, "key_pair", name)?;
        let change = KeyPairChange::Delete {
            region,
            name: name.to_string(),
        };
        let input = InEnvironment::new(env, change);
        let target =
            Target::new(env, format!("{env}/key-pairs/{name}")).owned_by(key_pair.org.as_deref());
        self.start::<KeyPairChanges>(principal, target, &input, idempotency)
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
