//! The console family: the browser console's assets, compiled into the binary, and its
//! sign-in. A sign-in exchanges a token for a session cookie (HttpOnly, SameSite=Strict,
//! Secure under TLS); the console then calls the public `/v1` API with that cookie, and
//! every change it makes carries the session's CSRF token in `X-CSRF-Token`.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use overcast_core::config::Config;
use overcast_core::sessions::Session;
use overcast_types::{Error, ErrorKind, Role};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::http::family::{AuthScheme, Family, RoutePolicy};
use crate::native::error::ApiError;
use crate::native::extract::parse_json;
use crate::native::system::WhoAmI;
use crate::AppState;

/// The cookie that carries a session's secret.
const COOKIE: &str = "overcast_session";

/// The header every change through a session carries.
const CSRF_HEADER: &str = "x-csrf-token";

/// The page may load only its own script, style and images, and no other site may frame it.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
     script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

const INDEX_HTML: &str = include_str!("../console/index.html");
const APP_JS: &str = include_str!("../console/app.js");
const APP_CSS: &str = include_str!("../console/app.css");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(index))
        .route("/console/", get(index))
        .route("/console/app.js", get(script))
        .route("/console/app.css", get(style))
        .route(
            "/console/session",
            get(session_view).post(sign_in).delete(sign_out),
        )
}

/// The console's routes: the assets and the sign-in are open to all (a sign-in brings its
/// own token); the session itself needs one, and a sign-out is audited.
pub struct Console;

impl Family for Console {
    fn auth(&self) -> AuthScheme {
        AuthScheme::Session
    }

    fn policy(&self, method: &Method, route: &str, _: &Config) -> RoutePolicy {
        match (method.as_str(), route) {
            ("GET", "/console/session") => RoutePolicy::read(Role::Viewer),
            // A sign-in brings its own token; a good one is audited as that token's.
            ("POST", "/console/session") => RoutePolicy {
                role: None,
                audited: true,
            },
            (_, "/console/session") => RoutePolicy::audited(Role::Viewer),
            _ => RoutePolicy::PUBLIC,
        }
    }

    fn error(&self, error: Error) -> Response {
        ApiError(error).into_response()
    }
}

/// The secret in the session cookie, if the request carries one.
pub fn session_secret(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// Why a request through a session is refused, if it is: a change (any method but GET,
/// HEAD and OPTIONS) must carry the session's CSRF token, so a page of another site that
/// got the browser to send the cookie still cannot change anything.
pub fn csrf_refusal(session: &Session, method: &Method, headers: &HeaderMap) -> Option<Error> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return None;
    }
    let presented = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    if session.accepts_csrf(presented) {
        return None;
    }
    Some(Error::new(
        ErrorKind::Forbidden,
        "csrf_token_invalid",
        match presented {
            None => {
                "a change through a console session needs the X-CSRF-Token header its sign-in gave"
            }
            Some(_) => "the X-CSRF-Token header is not this console session's",
        },
    ))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    let mut response = asset("text/html; charset=utf-8", INDEX_HTML);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignInRequest {
    token: String,
}

/// A session as the console's script sees it: never its secret, which only the cookie
/// holds.
#[derive(Serialize)]
struct SessionView {
    csrf_token: String,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    whoami: WhoAmI,
}

impl From<Session> for SessionView {
    fn from(session: Session) -> Self {
        SessionView {
            csrf_token: session.csrf_token,
            expires_at: session.expires_at,
            whoami: WhoAmI::from(session.principal),
        }
    }
}

/// The `Set-Cookie` value of a session: sent back only to this server, never to a script,
/// never on a request another site starts, and only over TLS when the server has it.
fn cookie(value: &str, max_age_secs: i64, tls: bool) -> HeaderValue {
    let secure = if tls { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"
    ))
    .expect("a session secret is hex")
}

/// Signs in with a token. The answer names the token's principal, so the family audits
/// the sign-in as the token's.
async fn sign_in(State(state): State<AppState>, request: Request) -> Response {
    let result = async {
        // JSON only: a form on another site cannot send it without asking first, which
        // this server never allows, so no other site can sign a browser in.
        let json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !json {
            return Err(Error::invalid(
                "content-type",
                "a sign-in is a JSON body: send `Content-Type: application/json`",
            ));
        }
        let bytes = axum::body::to_bytes(request.into_body(), 64 * 1024)
            .await
            .map_err(|e| Error::invalid("body", format!("cannot be read: {e}")))?;
        let body: SignInRequest = parse_json(&bytes)?;
        state.core.sign_in(body.token.trim()).await
    }
    .await;
    let signed_in = match result {
        Ok(signed_in) => signed_in,
        Err(e) => return ApiError(e).into_response(),
    };
    let principal = signed_in.session.principal.clone();
    let max_age = (signed_in.session.expires_at - OffsetDateTime::now_utc()).whole_seconds();
    let tls = state.core.config().tls.is_some();
    let mut response = Json(SessionView::from(signed_in.session)).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cookie(&signed_in.secret, max_age, tls));
    response.extensions_mut().insert(principal);
    response
}

/// The session the cookie stands for, with its CSRF token: how the console learns, on
/// load, whether it is signed in.
async fn session_view(Extension(session): Extension<Session>) -> Json<SessionView> {
    Json(SessionView::from(session))
}

/// Ends the session and clears its cookie.
async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let ended = match session_secret(&headers) {
        Some(secret) => state.core.sign_out(secret).await,
        None => Err(Error::unauthenticated("no console session to end")),
    };
    match ended {
        Ok(()) => {
            let tls = state.core.config().tls.is_some();
            (
                [(header::SET_COOKIE, cookie("", 0, tls))],
                StatusCode::NO_CONTENT,
            )
                .into_response()
        }
        Err(e) => ApiError(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_read_among_others_and_set_strictly() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; overcast_session=abc ; b=2".parse().unwrap(),
        );
        assert_eq!(session_secret(&headers), Some("abc"));
        headers.insert(header::COOKIE, "overcast_session=".parse().unwrap());
        assert_eq!(session_secret(&headers), None);
        let set = cookie("abc", 60, true);
        let set = set.to_str().unwrap();
        for part in [
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Max-Age=60",
            "Path=/",
        ] {
            assert!(set.contains(part), "{set} lacks {part}");
        }
        assert!(!cookie("abc", 60, false)
            .to_str()
            .unwrap()
            .contains("Secure"));
    }
}
