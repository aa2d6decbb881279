//! Console sessions: a token exchanged for a session whose secret lives in the browser's
//! HttpOnly cookie, so the console's script never holds the token. The store keeps only
//! the secret's hash. The CSRF token is derived from the secret, so it needs no storage
//! and cannot be made without the cookie the browser will not show to any script.

use overcast_types::Error;
use rand::RngCore;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use crate::app::Core;
use crate::auth::{hash_secret, Principal};
use crate::errors::store_error;
use crate::ids::now;

/// A live console session.
#[derive(Debug, Clone)]
pub struct Session {
    pub principal: Principal,
    /// What every change made through the session must carry beside its cookie.
    pub csrf_token: String,
    pub expires_at: OffsetDateTime,
}

impl Session {
    fn of(secret: &str, principal: Principal, expires_at: OffsetDateTime) -> Session {
        Session {
            principal,
            csrf_token: csrf_token_of(secret),
            expires_at,
        }
    }

    /// Whether a change presented the session's CSRF token. Digests are compared, so the
    /// comparison's time says nothing about the token.
    pub fn accepts_csrf(&self, presented: Option<&str>) -> bool {
        presented.is_some_and(|p| Sha256::digest(p) == Sha256::digest(&self.csrf_token))
    }
}

/// What a sign-in made: the secret for the cookie (shown nowhere else) and the session.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub secret: String,
    pub session: Session,
}

fn csrf_token_of(secret: &str) -> String {
    hex::encode(Sha256::digest(format!("overcast console csrf {secret}")))
}

fn ended() -> Error {
    Error::unauthenticated("the console session has ended; sign in again")
}

impl Core {
    /// Exchanges a usable token for a console session, which lasts `console_session_secs`
    /// or until the token expires, whichever is sooner.
    pub async fn sign_in(&self, token_secret: &str) -> Result<SignedIn, Error> {
        let token = self
            .store
            .token_by_hash(&hash_secret(token_secret))
            .await
            .map_err(store_error)?
            .ok_or_else(|| Error::unauthenticated("the token is not valid"))?;
        let token_expires = token.expires_at;
        let principal = self.usable(token)?;
        let started = now();
        let lasts = Duration::seconds(
            i64::try_from(self.config().console_session_secs).unwrap_or(i64::MAX / 2),
        );
        let expires_at = token_expires.map_or(started + lasts, |t| t.min(started + lasts));
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let secret = hex::encode(bytes);
        self.store
            .insert_session(
                &hash_secret(&secret),
                &principal.token_id,
                started,
                expires_at,
            )
            .await
            .map_err(store_error)?;
        Ok(SignedIn {
            session: Session::of(&secret, principal, expires_at),
            secret,
        })
    }

    /// The session a cookie's secret stands for, while both it and its token last.
    pub async fn session(&self, secret: &str) -> Result<Session, Error> {
        let hash = hash_secret(secret);
        let (token, expires_at) = self
            .store
            .session_token(&hash)
            .await
            .map_err(store_error)?
            .ok_or_else(ended)?;
        if expires_at <= now() {
            self.store
                .delete_session(&hash)
                .await
                .map_err(store_error)?;
            return Err(ended());
        }
        let principal = self.usable(token)?;
        Ok(Session::of(secret, principal, expires_at))
    }

    /// Ends a session at once, whatever its expiry.
    pub async fn sign_out(&self, secret: &str) -> Result<(), Error> {
        if self
            .store
            .delete_session(&hash_secret(secret))
            .await
            .map_err(store_error)?
        {
            Ok(())
        } else {
            Err(Error::unauthenticated("no such console session"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_are_the_sessions_own() {
        let principal = Principal {
            token_id: "t".into(),
            token_name: "n".into(),
            org: "o".into(),
            role: overcast_types::Role::Operator,
        };
        let session = Session::of("secret-a", principal.clone(), now());
        assert!(session.accepts_csrf(Some(&csrf_token_of("secret-a"))));
        assert!(!session.accepts_csrf(Some(&csrf_token_of("secret-b"))));
        assert!(!session.accepts_csrf(Some("")));
        assert!(!session.accepts_csrf(None));
        // Not the secret itself, nor its stored hash.
        assert_ne!(session.csrf_token, "secret-a");
        assert_ne!(session.csrf_token, hash_secret("secret-a"));
    }
}
