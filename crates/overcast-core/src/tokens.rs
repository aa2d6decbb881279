//! API tokens: creating and revoking them as recorded operations (never the last usable
//! admin token), and minting an admin token on the server's host when all are lost. The
//! secret is shown once; the store and the operation record keep only its hash.

use async_trait::async_trait;
use overcast_store::{Revoked, Store};
use overcast_types::{validate_name, AuditEntry, Error, Operation, Role, TargetResult, TokenInfo};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::app::{Core, Idempotency, Target, ADMIN_ORG};
use crate::auth::{hash_secret, new_secret, Principal};
use crate::config::Config;
use crate::errors::store_error;
use crate::ids::{new_id, now};
use crate::operations::{Change, OperationContext};

/// The longest a token may live.
const MAX_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// A request for a new token.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// The org the token acts for.
    pub org: String,
    pub role: Role,
    /// A name for people and the audit log; default `ORG-ROLE`.
    #[serde(default)]
    pub name: Option<String>,
    /// How long until it expires, e.g. `30d`, `12h`; default: never.
    #[serde(default)]
    pub expires_in: Option<String>,
}

impl CreateTokenRequest {
    /// Checks the request and makes the token it asks for.
    pub fn validate(&self, id: String, created_by: &str) -> Result<TokenInfo, Error> {
        validate_name("org", &self.org)?;
        let name = match &self.name {
            Some(name) => {
                validate_name("name", name)?;
                name.clone()
            }
            None => format!("{}-{}", self.org, self.role),
        };
        let created_at = now();
        let expires_at = match &self.expires_in {
            None => None,
            Some(text) => {
                let lifetime = humantime::parse_duration(text).map_err(|_| {
                    Error::invalid(
                        "expires_in",
                        format!("`{text}` is not a duration like 30d, 12h or 90m"),
                    )
                })?;
                if lifetime.is_zero() || lifetime > MAX_LIFETIME {
                    return Err(Error::invalid(
                        "expires_in",
                        "must be more than zero and at most 10 years",
                    ));
                }
                Some(created_at + lifetime)
            }
        };
        Ok(TokenInfo {
            id,
            name,
            org: self.org.clone(),
            role: self.role,
            created_at,
            expires_at,
            revoked_at: None,
            created_by: created_by.into(),
        })
    }
}

/// What a `token.create` operation records: the token and the hash of its secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CreateInput {
    pub token: TokenInfo,
    pub secret_hash: String,
}

/// What a `token.revoke` operation records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RevokeInput {
    pub token_id: String,
}

/// `token.create`: recording the same token again is a no-op, so a resumed run does no harm.
pub(crate) struct CreateToken;

#[async_trait]
impl Change for CreateToken {
    const KINDS: &'static [&'static str] = &["token.create"];
    type Input = CreateInput;

    async fn run(&self, input: CreateInput, step: &mut OperationContext) -> Result<(), Error> {
        step.set_total(1).await?;
        step.store()
            .insert_token(&input.token, &input.secret_hash)
            .await
            .map_err(store_error)?;
        step.record(TargetResult::done(&input.token.id).with_detail(&input.token)?)
            .await
    }
}

/// `token.revoke`.
pub(crate) struct RevokeToken;

#[async_trait]
impl Change for RevokeToken {
    const KINDS: &'static [&'static str] = &["token.revoke"];
    type Input = RevokeInput;

    async fn run(&self, input: RevokeInput, step: &mut OperationContext) -> Result<(), Error> {
        step.set_total(1).await?;
        // The store decides again, atomically: another revoke may have run since the
        // request was taken, or run right beside this one.
        let revoked = step
            .store()
            .revoke_token(&input.token_id, now())
            .await
            .map_err(store_error)?;
        match revoked {
            Revoked::Revoked => {}
            Revoked::NotFound => return Err(Error::not_found("token", &input.token_id)),
            Revoked::LastAdmin => return Err(last_admin(&input.token_id)),
        }
        step.record(TargetResult::done(input.token_id).with_message("revoked"))
            .await
    }
}

/// Whether a token can be used now: not revoked, not expired.
fn is_active(token: &TokenInfo, at: OffsetDateTime) -> bool {
    token.revoked_at.is_none() && token.expires_at.is_none_or(|expires| expires > at)
}

/// Refuses to revoke the last admin token that can still be used: nobody could then
/// manage tokens again (the recovery is `overcast recover-admin` on the server's host).
/// Asked when the request comes, for a 409 before any operation; the store's revoke
/// decides for good.
async fn check_not_last_admin(store: &Store, id: &str) -> Result<(), Error> {
    let tokens = store.tokens(None).await.map_err(store_error)?;
    let at = now();
    let Some(token) = tokens.iter().find(|t| t.id == id) else {
        return Ok(());
    };
    let other_admins = tokens
        .iter()
        .filter(|t| t.id != id && t.role == Role::Admin && is_active(t, at))
        .count();
    if token.role == Role::Admin && is_active(token, at) && other_admins == 0 {
        return Err(last_admin(&token.name));
    }
    Ok(())
}

fn last_admin(token: &str) -> Error {
    Error::conflict(
        "last_admin",
        format!("token `{token}` is the last admin token: create another admin token before revoking it"),
    )
}

/// Mints an admin token straight into the store `config` names, for the operator of the
/// server's host who has lost every admin token: no server or token is needed, and the
/// audit log records it. Answers the token and its secret, shown once.
pub async fn recover_admin(config: &Config, name: &str) -> Result<(TokenInfo, String), Error> {
    validate_name("name", name)?;
    let store = Store::connect(&config.database_url())
        .await
        .map_err(|e| Error::internal(format!("cannot open the database: {e}")))?;
    let token = TokenInfo {
        id: new_id("tok"),
        name: name.to_string(),
        org: ADMIN_ORG.into(),
        role: Role::Admin,
        created_at: now(),
        expires_at: None,
        revoked_at: None,
        created_by: "recovery".into(),
    };
    let secret = new_secret();
    store
        .insert_token(&token, &hash_secret(&secret))
        .await
        .map_err(store_error)?;
    let entry = AuditEntry {
        id: new_id("au"),
        at: now(),
        token_id: token.id.clone(),
        token_name: token.name.clone(),
        org: token.org.clone(),
        role: Role::Admin,
        method: "RECOVER".into(),
        route: "overcast recover-admin".into(),
        target: token.id.clone(),
        operation_id: None,
        outcome: "succeeded".into(),
        status_code: 201,
        request_id: new_id("req"),
    };
    store.append_audit(&entry).await.map_err(store_error)?;
    store.close().await;
    Ok((token, secret))
}

impl Core {
    /// Starts a `token.create` operation. The secret comes back only when this call made
    /// the operation, never on an idempotent replay: it is not stored anywhere.
    pub async fn create_token(
        &self,
        principal: &Principal,
        request: &CreateTokenRequest,
        idempotency: Option<&Idempotency>,
    ) -> Result<(Operation, Option<String>), Error> {
        principal.require(Role::Admin)?;
        let token = request.validate(new_id("tok"), &principal.token_name)?;
        let secret = new_secret();
        let input = CreateInput {
            token: token.clone(),
            secret_hash: hash_secret(&secret),
        };
        let target = Target::global(&token.id).owned_by(Some(&token.org));
        let (operation, created) = self
            .record::<CreateToken>(principal, target, &input, idempotency, None)
            .await?;
        Ok((operation, created.then_some(secret)))
    }

    pub async fn revoke_token(
        &self,
        principal: &Principal,
        id: &str,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        principal.require(Role::Admin)?;
        if let Some(operation) = self.replayed(principal, idempotency).await? {
            return Ok(operation);
        }
        let token = self
            .store
            .token(id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| Error::not_found("token", id))?;
        check_not_last_admin(&self.store, id).await?;
        let input = RevokeInput {
            token_id: id.into(),
        };
        let target = Target::global(id).owned_by(Some(&token.org));
        self.start::<RevokeToken>(principal, target, &input, idempotency)
            .await
    }

    pub async fn tokens(&self, principal: &Principal) -> Result<Vec<TokenInfo>, Error> {
        principal.require(Role::Admin)?;
        self.store.tokens(None).await.map_err(store_error)
    }

    /// The token a `token.create` operation made, once it has.
    pub async fn created_token(&self, operation: &Operation) -> Result<Option<TokenInfo>, Error> {
        self.store
            .token(&operation.target)
            .await
            .map_err(store_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(expires_in: Option<&str>, name: Option<&str>) -> CreateTokenRequest {
        CreateTokenRequest {
            org: "acme".into(),
            role: Role::Operator,
            name: name.map(Into::into),
            expires_in: expires_in.map(Into::into),
        }
    }

    #[test]
    fn a_request_becomes_a_token() {
        let token = request(Some("30d"), None)
            .validate("tok_1".into(), "admin")
            .unwrap();
        assert_eq!(token.name, "acme-operator");
        let lifetime = token.expires_at.unwrap() - token.created_at;
        assert_eq!(lifetime.whole_days(), 30);
    }

    #[test]
    fn bad_requests_name_the_field() {
        let field = |r: CreateTokenRequest| r.validate("t".into(), "a").unwrap_err().field.unwrap();
        assert_eq!(field(request(Some("soon"), None)), "expires_in");
        assert_eq!(field(request(Some("0s"), None)), "expires_in");
        assert_eq!(field(request(None, Some("Bad Name"))), "name");
        assert_eq!(
            field(CreateTokenRequest {
                org: "".into(),
                ..request(None, None)
            }),
            "org"
        );
    }
}
