//! Access keys of the EC2-compatible endpoint: issued per token and environment as
//! recorded operations, revoked the same way. A key's secret is derived from its id under
//! the server's master key, a file outside the database, so the store keeps nothing that
//! can sign a request and the secret is shown once, when the key is made.

use async_trait::async_trait;
use base64::Engine;
use hmac::{Hmac, Mac};
use overcast_types::{AccessKey, Error, Operation, Role, TargetResult};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::path::Path;
use utoipa::ToSchema;

use crate::app::{Core, Idempotency, Target};
use crate::auth::Principal;
use crate::errors::store_error;
use crate::ids::now;
use crate::operations::{Change, OperationContext};

/// The key every access key's secret is derived from.
pub struct MasterKey([u8; 32]);

impl MasterKey {
    /// Reads the master key file, making it (mode 0600, 256 random bits) when absent.
    pub fn load_or_create(path: &Path) -> Result<MasterKey, Error> {
        let unreadable = |e: std::io::Error| {
            Error::internal(format!(
                "the EC2 master key file {} cannot be read or made: {e}",
                path.display()
            ))
        };
        if !path.exists() {
            let mut key = [0u8; 32];
            rand::rng().fill_bytes(&mut key);
            crate::app::write_private_file(path, &hex::encode(key)).map_err(unreadable)?;
        }
        let text = std::fs::read_to_string(path).map_err(unreadable)?;
        let bytes = hex::decode(text.trim()).ok().filter(|b| b.len() == 32);
        let key = bytes.ok_or_else(|| {
            Error::internal(format!(
                "the EC2 master key file {} does not hold 64 hex digits",
                path.display()
            ))
        })?;
        Ok(MasterKey(key.try_into().expect("checked to be 32 bytes")))
    }

    /// The secret of an access key: 40 characters, as AWS's are.
    pub fn secret_of(&self, access_key_id: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key");
        mac.update(b"overcast ec2 access key ");
        mac.update(access_key_id.as_bytes());
        let encoded = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        encoded[..40].to_string()
    }
}

/// A new access key id: `AKOC` and 16 characters of A–Z and 2–7, 20 in all.
fn new_access_key_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    let tail: String = bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    format!("AKOC{tail}")
}

/// A request for an access key of a token.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccessKeyRequest {
    /// The environment its requests act in.
    pub environment: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CreateInput {
    pub key: AccessKey,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RevokeInput {
    pub id: String,
}

/// `access_key.create` and `.revoke`.
pub(crate) struct AccessKeyChanges;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub(crate) enum AccessKeyChange {
    Create(CreateInput),
    Revoke(RevokeInput),
}

#[async_trait]
impl Change for AccessKeyChanges {
    const KINDS: &'static [&'static str] = &["access_key.create", "access_key.revoke"];
    type Input = AccessKeyChange;

    fn kind(input: &AccessKeyChange) -> &'static str {
        match input {
            AccessKeyChange::Create(_) => "access_key.create",
            AccessKeyChange::Revoke(_) => "access_key.revoke",
        }
    }

    async fn run(&self, input: AccessKeyChange, step: &mut OperationContext) -> Result<(), Error> {
        step.set_total(1).await?;
        let result = match input {
            AccessKeyChange::Create(CreateInput { key }) => {
                step.store()
                    .insert_access_key(&key)
                    .await
                    .map_err(store_error)?;
                TargetResult::done(&key.id).with_detail(&key)?
            }
            AccessKeyChange::Revoke(RevokeInput { id }) => {
                let found = step
                    .store()
                    .revoke_access_key(&id, now())
                    .await
                    .map_err(store_error)?;
                if !found {
                    return Err(Error::not_found("access_key", &id));
                }
                TargetResult::done(id).with_message("revoked")
            }
        };
        step.record(result).await
    }
}

impl Core {
    /// Starts an `access_key.create` operation for a token: an admin's for any token, any
    /// other caller's for its own. The secret comes back only when this call made the
    /// operation, never on an idempotent replay.
    pub async fn create_access_key(
        &self,
        principal: &Principal,
        token_id: &str,
        request: &CreateAccessKeyRequest,
        idempotency: Option<&Idempotency>,
    ) -> Result<(Operation, Option<String>), Error> {
        if principal.role != Role::Admin && principal.token_id != token_id {
            return Err(Error::not_found("token", token_id));
        }
        let token = self
            .store
            .token(token_id)
            .await
            .map_err(store_error)?
            .filter(|t| t.revoked_at.is_none())
            .ok_or_else(|| Error::not_found("token", token_id))?;
        if self.environments.require(&request.environment).is_err() {
            return Err(Error::invalid(
                "environment",
                format!("there is no environment {}", request.environment),
            ));
        }
        let key = AccessKey {
            id: new_access_key_id(),
            token_id: token.id.clone(),
            org: token.org.clone(),
            environment: request.environment.clone(),
            created_at: now(),
            revoked_at: None,
        };
        let secret = self.master_key.secret_of(&key.id);
        let target = Target::global(&key.id).owned_by(Some(&token.org));
        let input = AccessKeyChange::Create(CreateInput { key });
        let (operation, created) = self
            .record::<AccessKeyChanges>(principal, target, &input, idempotency, None)
            .await?;
        Ok((operation, created.then_some(secret)))
    }

    /// The access keys the caller may see: every one for admins, its own token's for
    /// anyone else.
    pub async fn access_keys(&self, principal: &Principal) -> Result<Vec<AccessKey>, Error> {
        let mut keys = self
            .store
            .access_keys(principal.org_filter().as_deref())
            .await
            .map_err(store_error)?;
        if principal.role != Role::Admin {
            keys.retain(|k| k.token_id == principal.token_id);
        }
        Ok(keys)
    }

    /// The access key an `access_key.create` operation made, once it has.
    pub async fn created_access_key(
        &self,
        operation: &Operation,
    ) -> Result<Option<AccessKey>, Error> {
        self.store
            .access_key(&operation.target)
            .await
            .map_err(store_error)
    }

    /// Revokes an access key the caller may see, as an operation: it stops working at once.
    pub async fn revoke_access_key(
        &self,
        principal: &Principal,
        id: &str,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        if let Some(operation) = self.replayed(principal, idempotency).await? {
            return Ok(operation);
        }
        let key = self
            .store
            .access_key(id)
            .await
            .map_err(store_error)?
            .filter(|k| principal.role == Role::Admin || k.token_id == principal.token_id)
            .ok_or_else(|| Error::not_found("access_key", id))?;
        let target = Target::global(id).owned_by(Some(&key.org));
        let input = AccessKeyChange::Revoke(RevokeInput { id: id.to_string() });
        self.start::<AccessKeyChanges>(principal, target, &input, idempotency)
            .await
    }

    /// Who signs with an access key, in which environment, and the secret to check the
    /// signature with; 401 for an unknown or revoked key or an unusable token.
    pub async fn access_key_signer(
        &self,
        id: &str,
    ) -> Result<(Principal, AccessKey, String), Error> {
        let key = self
            .store
            .access_key(id)
            .await
            .map_err(store_error)?
            .filter(|k| k.revoked_at.is_none())
            .ok_or_else(|| Error::unauthenticated("the access key is not valid"))?;
        let token = self
            .store
            .token(&key.token_id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| Error::unauthenticated("the access key's token is gone"))?;
        let principal = self.usable(token)?;
        let secret = self.master_key.secret_of(&key.id);
        Ok((principal, key, secret))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_come_from_the_master_key_and_the_id_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master");
        let key = MasterKey::load_or_create(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = MasterKey::load_or_create(&path).unwrap();
        let id = new_access_key_id();
        assert_eq!(id.len(), 20);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
        let secret = key.secret_of(&id);
        assert_eq!(secret.len(), 40);
        assert_eq!(secret, again.secret_of(&id), "stable across restarts");
        assert_ne!(secret, key.secret_of(&new_access_key_id()));
        let other = MasterKey::load_or_create(&dir.path().join("other")).unwrap();
        assert_ne!(secret, other.secret_of(&id), "another deployment's differs");
        std::fs::write(&path, "not hex").unwrap();
        assert!(MasterKey::load_or_create(&path).is_err());
    }
}
