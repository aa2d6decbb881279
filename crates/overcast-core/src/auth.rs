//! Who is calling and what they may do: token secrets and their hashes, and the principal
//! a token stands for, with its org and role.

use overcast_types::{Error, Role, TokenInfo};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Every secret starts with this, so leaked tokens are easy to find in code and logs.
pub const SECRET_PREFIX: &str = "oc_";

/// The caller behind a valid token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub token_id: String,
    pub token_name: String,
    pub org: String,
    pub role: Role,
}

impl From<TokenInfo> for Principal {
    fn from(token: TokenInfo) -> Self {
        Principal {
            token_id: token.id,
            token_name: token.name,
            org: token.org,
            role: token.role,
        }
    }
}

impl Principal {
    /// Admins see every org; everyone else only their own. What they cannot see answers
    /// 404, never 403, so a token cannot probe another org's ids.
    pub fn can_see(&self, org: &str) -> bool {
        self.role == Role::Admin || self.org == org
    }

    /// The org to filter listings by: none for admins.
    pub fn org_filter(&self) -> Option<String> {
        (self.role != Role::Admin).then(|| self.org.clone())
    }

    pub fn require(&self, role: Role) -> Result<(), Error> {
        if self.role >= role {
            Ok(())
        } else {
            Err(Error::forbidden(format!(
                "this needs the {role} role; the token `{}` is {}",
                self.token_name, self.role
            )))
        }
    }
}

/// A new random secret: the prefix and 256 bits in hex.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", hex::encode(bytes))
}

/// What the store keeps instead of a secret. Secrets carry 256 random bits, so a plain
/// SHA-256 cannot be reversed or guessed; a slow password hash would only slow every request.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_hashed() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert!(a.starts_with("oc_") && a.len() == 3 + 64);
        assert_eq!(hash_secret(&a), hash_secret(&a));
        assert_ne!(hash_secret(&a), hash_secret(&b));
        assert!(!hash_secret(&a).contains(&a[3..]));
    }

    #[test]
    fn principals_see_their_org_and_admins_see_all() {
        let viewer = Principal {
            token_id: "t".into(),
            token_name: "ci".into(),
            org: "acme".into(),
            role: Role::Viewer,
        };
        assert!(viewer.can_see("acme") && !viewer.can_see("other"));
        assert_eq!(viewer.org_filter().as_deref(), Some("acme"));
        let err = viewer.require(Role::Operator).unwrap_err();
        assert_eq!(
            err.message,
            "this needs the operator role; the token `ci` is viewer"
        );
        let admin = Principal {
            role: Role::Admin,
            ..viewer
        };
        assert!(admin.can_see("other") && admin.org_filter().is_none());
    }
}
