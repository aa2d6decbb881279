//! Route families: the native `/v1` API and, beside it, the compatibility families of the
//! tools overcast replaces and the console. Each family says how its callers present a
//! token, which role each of its routes needs and whether a call is audited (decided per
//! route, since some families change state on GET and some reads disclose secrets), and
//! how an error looks to its clients. One middleware applies any family.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use overcast_core::auth::Principal;
use overcast_core::config::Config;
use overcast_core::AuditRecord;
use overcast_types::{Error, Role};
use std::sync::Arc;

use super::request_id::current_request_id;
use crate::{console, AppState};

/// Where a family's callers put their overcast token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthScheme {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// `Authorization: Bearer <token>`, or the token alone in the named header, as the
    /// tool the family stands in for sent its key.
    BearerOrHeader(&'static str),
    /// An AWS SigV4 signature by an access key of a token, over the whole request.
    SigV4,
    /// A console session's cookie; a change also carries the session's CSRF token.
    Session,
    /// `Authorization: Bearer <token>`, or else a console session, as for [`Self::Session`].
    BearerOrSession,
}

impl AuthScheme {
    /// The token secret the request carries, if it carries one this way.
    pub fn secret(self, headers: &HeaderMap) -> Option<&str> {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, secret)| {
                scheme.eq_ignore_ascii_case("bearer") && !secret.trim().is_empty()
            })
            .map(|(_, secret)| secret.trim());
        match self {
            AuthScheme::Bearer | AuthScheme::BearerOrSession => bearer,
            AuthScheme::SigV4 | AuthScheme::Session => None,
            AuthScheme::BearerOrHeader(name) => bearer.or_else(|| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
            }),
        }
    }

    /// What to tell a caller that sent no token.
    pub fn missing(self) -> String {
        match self {
            AuthScheme::Bearer => {
                "this route needs a token: send `Authorization: Bearer <token>`".into()
            }
            AuthScheme::BearerOrSession => {
                "this route needs a token: send `Authorization: Bearer <token>`, or sign in to the console".into()
            }
            AuthScheme::Session => "this route needs a console session: sign in first".into(),
            AuthScheme::SigV4 => {
                "this route needs a SigV4 signature by an overcast access key".into()
            }
            AuthScheme::BearerOrHeader(name) => format!(
                "this route needs a token: send `Authorization: Bearer <token>` or `{name}: <token>`"
            ),
        }
    }
}

/// Who may call a route, and whether each call of it goes to the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoutePolicy {
    /// The weakest role that may call it; `None`: anyone, without a token.
    pub role: Option<Role>,
    /// Every call, allowed or denied, is recorded: every change, and every read that
    /// discloses a secret.
    pub audited: bool,
}

impl RoutePolicy {
    pub const PUBLIC: RoutePolicy = RoutePolicy {
        role: None,
        audited: false,
    };

    /// A read for `role` and up, not audited.
    pub fn read(role: Role) -> Self {
        RoutePolicy {
            role: Some(role),
            audited: false,
        }
    }

    /// A change (or an audited read) for `role` and up.
    pub fn audited(role: Role) -> Self {
        RoutePolicy {
            role: Some(role),
            audited: true,
        }
    }
}

/// A family of routes: its authentication, its per-route policy and its error body.
pub trait Family: Send + Sync + 'static {
    fn auth(&self) -> AuthScheme;

    /// The policy of a route, by method and route as declared (`/v1/tokens/{id}`).
    fn policy(&self, method: &Method, route: &str, config: &Config) -> RoutePolicy;

    /// An error as this family's clients expect it; the status comes from
    /// [`super::status::status_of`], the body is the family's own.
    fn error(&self, error: Error) -> Response;

    /// The answer to a caller that presented no usable token (`presented` is what it sent
    /// in the token's place, if anything); by default the family's error. A family may say
    /// more, e.g. that what was sent is a cloud credential, not a token.
    fn refused(&self, presented: Option<&str>, error: Error) -> Response {
        let _ = presented;
        self.error(error)
    }
}

/// What the family middleware runs with.
#[derive(Clone)]
pub struct FamilyState {
    pub app: AppState,
    pub family: Arc<dyn Family>,
}

/// The operation a change started, set by its handler for the audit log.
#[derive(Debug, Clone)]
pub struct AuditedOperation(pub String);

/// Set by the handler of a route that carries reads and changes alike (one action
/// route): this call changed nothing, so it is not audited.
#[derive(Debug, Clone, Copy)]
pub struct NotAChange;

/// Authenticates the caller as the family's scheme says, checks the role the route needs,
/// and records audited calls (allowed or denied) in the audit log.
pub async fn authorize(
    State(state): State<FamilyState>,
    matched: MatchedPath,
    mut req: Request,
    next: Next,
) -> Response {
    let route = matched.as_str().to_string();
    let family = state.family.as_ref();
    let policy = family.policy(req.method(), &route, state.app.core.config());
    let Some(role) = policy.role else {
        let (method, target) = (req.method().clone(), req.uri().path().to_string());
        let response = next.run(req).await;
        // A public route that authenticates its caller itself (the console's sign-in) names
        // whom it found in its answer, and an audited one is recorded as theirs.
        if let Some(principal) = response.extensions().get::<Principal>().cloned() {
            if policy.audited {
                let record = audit_record(&method, route, target, &response);
                audit(&state, &principal, record).await;
            }
        }
        return response;
    };
    let scheme = family.auth();
    // A known caller refused all the same (a console change without its CSRF token): the
    // refusal is audited like a missing role.
    let mut refusal = None;
    let (principal, mut req) = if scheme == AuthScheme::SigV4 {
        match crate::compat::ec2::authenticate(&state.app, req).await {
            Ok(signed) => signed,
            Err(e) => return family.refused(None, e),
        }
    } else {
        let presented = scheme.secret(req.headers()).map(str::to_string);
        let principal = match presented.as_deref() {
            Some(secret) => state.app.core.authenticate(secret).await,
            None if matches!(scheme, AuthScheme::Session | AuthScheme::BearerOrSession) => {
                let session = match console::session_secret(req.headers()) {
                    Some(secret) => state.app.core.session(secret).await,
                    None => Err(Error::unauthenticated(scheme.missing())),
                };
                match session {
                    Ok(session) => {
                        refusal = console::csrf_refusal(&session, req.method(), req.headers());
                        let principal = session.principal.clone();
                        req.extensions_mut().insert(session);
                        Ok(principal)
                    }
                    Err(e) => Err(e),
                }
            }
            None => Err(Error::unauthenticated(scheme.missing())),
        };
        match principal {
            Ok(principal) => (principal, req),
            Err(e) => return family.refused(presented.as_deref(), e),
        }
    };
    let method = req.method().clone();
    let target = req.uri().path().to_string();
    let allowed = principal
        .require(role)
        .and_then(|()| refusal.map_or(Ok(()), Err));
    let response = match allowed {
        Err(e) => family.error(e),
        Ok(()) => {
            req.extensions_mut().insert(principal.clone());
            next.run(req).await
        }
    };
    if policy.audited && response.extensions().get::<NotAChange>().is_none() {
        let record = audit_record(&method, route, target, &response);
        audit(&state, &principal, record).await;
    }
    response
}

/// What the audit log records of a finished call.
fn audit_record(
    method: &Method,
    route: String,
    target: String,
    response: &Response,
) -> AuditRecord {
    AuditRecord {
        method: method.to_string(),
        route,
        target,
        operation_id: response
            .extensions()
            .get::<AuditedOperation>()
            .map(|o| o.0.clone()),
        outcome: outcome_of(response.status()).into(),
        status_code: response.status().as_u16(),
        request_id: current_request_id(),
    }
}

/// Appends a finished call to the audit log as `principal`'s.
async fn audit(state: &FamilyState, principal: &Principal, record: AuditRecord) {
    if let Err(e) = state.app.core.record_audit(principal, record).await {
        tracing::error!(error = %e, "the audit log could not record a change");
    }
}

/// How an audited call ended, from its answer's status.
fn outcome_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        202 => "accepted",
        200..=299 => "succeeded",
        401 | 403 => "denied",
        _ => "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_read_from_the_family_scheme() {
        let mut headers = HeaderMap::new();
        headers.insert("x-key", "oc_from_header".parse().unwrap());
        assert_eq!(AuthScheme::Bearer.secret(&headers), None);
        let named = AuthScheme::BearerOrHeader("x-key");
        assert_eq!(named.secret(&headers), Some("oc_from_header"));
        headers.insert(header::AUTHORIZATION, "Bearer oc_bearer".parse().unwrap());
        assert_eq!(named.secret(&headers), Some("oc_bearer"));
        assert_eq!(AuthScheme::Bearer.secret(&headers), Some("oc_bearer"));
        assert!(named.missing().contains("`x-key: <token>`"));
    }

    #[test]
    fn outcomes_follow_the_answer() {
        assert_eq!(outcome_of(StatusCode::ACCEPTED), "accepted");
        assert_eq!(outcome_of(StatusCode::CREATED), "succeeded");
        assert_eq!(outcome_of(StatusCode::FORBIDDEN), "denied");
        assert_eq!(outcome_of(StatusCode::CONFLICT), "failed");
    }
}
