//! API tokens: creating and revoking them as recorded operations. The secret is shown once,
//! in the answer to its creation; the store and the operation record keep only its hash.

use crate::auth::Principal;
use crate::auth::{hash_secret, new_secret};
use crate::new_id;
use crate::{to_input, Core, Idempotency};
use async_trait::async_trait;
use overcast_store::Store;
use overcast_types::Operation;
use overcast_types::{validate_name, Error, Role, TargetOutcome, TargetResult, TokenInfo};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::operations::{Executor, Step};
use crate::{now, store_error};

pub const CREATE_KIND: &str = "token.create";
pub const REVOKE_KIND: &str = "token.revoke";

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

pub(crate) struct CreateExecutor {
    pub store: Store,
}

#[async_trait]
impl Executor for CreateExecutor {
    async fn run(&self, step: &mut Step) -> Result<(), Error> {
        let input: CreateInput = step.input()?;
        step.set_total(1).await?;
        // Recording the same token again is a no-op, so a resumed run does no harm.
        self.store
            .insert_token(&input.token, &input.secret_hash)
            .await
            .map_err(store_error)?;
        step.record(TargetResult {
            target: input.token.id.clone(),
            outcome: TargetOutcome::Done,
            message: None,
            detail: Some(
                serde_json::to_value(&input.token).map_err(|e| Error::internal(e.to_string()))?,
            ),
        })
        .await
    }
}

pub(crate) struct RevokeExecutor {
    pub store: Store,
}

#[async_trait]
impl Executor for RevokeExecutor {
    async fn run(&self, step: &mut Step) -> Result<(), Error> {
        let input: RevokeInput = step.input()?;
        step.set_total(1).await?;
        let at: OffsetDateTime = now();
        if !self
            .store
            .revoke_token(&input.token_id, at)
            .await
            .map_err(store_error)?
        {
            return Err(Error::not_found("token", &input.token_id));
        }
        step.record(TargetResult {
            target: input.token_id.clone(),
            outcome: TargetOutcome::Done,
            message: Some("revoked".into()),
            detail: None,
        })
        .await
    }
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
        let input = to_input(&input)?;
        let (operation, created) = self
            .start_operation(
                principal,
                CREATE_KIND,
                &token.org,
                None,
                token.id.clone(),
                input,
                idempotency,
            )
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
        let token = self
            .store
            .token(id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| Error::not_found("token", id))?;
        let input = to_input(&RevokeInput {
            token_id: id.into(),
        })?;
        let (operation, _) = self
            .start_operation(
                principal,
                REVOKE_KIND,
                &token.org,
                None,
                id.into(),
                input,
                idempotency,
            )
            .await?;
        Ok(operation)
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
