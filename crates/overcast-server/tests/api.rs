//! End to end through HTTP: a real server on a free loopback port with a temp store,
//! called as a client would.

use overcast_core::Core;
use overcast_provider::ProviderFactories;
use overcast_server::Server;
use overcast_test_utils::server::config;
use overcast_test_utils::{TestServer, ADMIN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn every_route_in_the_openapi_document_needs_a_valid_token_and_the_right_role() {
    let server = TestServer::start().await;
    let viewer = server.token("acme", "viewer").await;
    let operator = server.token("acme", "operator").await;
    let (revoked_id, revoked) = server.token_with("acme", "admin", None).await;
    let (status, _) = server
        .call(
            Method::DELETE,
            &format!("/v1/tokens/{revoked_id}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, expired) = server.token_with("acme", "admin", Some("1s")).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let document = serde_json::to_value(overcast_server::openapi()).unwrap();
    let mut walked = 0;
    let mut routes: Vec<(String, String, bool)> = vec![];
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let public = op["security"].as_array().is_some_and(|s| {
                s.iter()
                    .all(|r| r.as_object().is_some_and(|o| o.is_empty()))
            });
            routes.push((method.to_uppercase(), path.clone(), public));
        }
    }
    routes.push(("GET".into(), "/openapi.json".into(), false));
    routes.push(("GET".into(), "/docs/".into(), false));
    for (method, template, public) in routes {
        let path = template
            .replace("{env}", "local")
            .replace("{id}", "x-test")
            .replace("{action}", "start");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let status_with = |token: Option<String>| {
            let server = &server;
            let method = method.clone();
            let path = path.clone();
            async move {
                server
                    .request(method, &path, token.as_deref())
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
        };
        if public {
            let status = status_with(None).await;
            assert!(
                status.is_success(),
                "{method} {path} is public but answered {status}"
            );
            continue;
        }
        walked += 1;
        for (who, token) in [
            ("no", None),
            ("a wrong", Some("oc_nope".to_string())),
            ("a revoked", Some(revoked.clone())),
            ("an expired", Some(expired.clone())),
        ] {
            let status = status_with(token).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {who} token"
            );
        }
        let as_viewer = status_with(Some(viewer.clone())).await;
        let as_operator = status_with(Some(operator.clone())).await;
        // Access keys are self-service: any token handles its own, and another's are
        // not found to it.
        let self_service = template.contains("access-keys");
        if self_service {
            for (who, status) in [("viewer", as_viewer), ("operator", as_operator)] {
                assert!(
                    [
                        StatusCode::OK,
                        StatusCode::BAD_REQUEST,
                        StatusCode::NOT_FOUND
                    ]
                    .contains(&status),
                    "{method} {path} as {who}: {status}"
                );
            }
        } else if template.starts_with("/v1/tokens") {
            assert_eq!(
                as_viewer,
                StatusCode::FORBIDDEN,
                "{method} {path} as viewer"
            );
            assert_eq!(
                as_operator,
                StatusCode::FORBIDDEN,
                "{method} {path} as operator"
            );
        } else if method != Method::GET && method != Method::HEAD {
            assert_eq!(
                as_viewer,
                StatusCode::FORBIDDEN,
                "{method} {path} as viewer"
            );
        }
        for status in [as_viewer, as_operator] {
            assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{method} {path}");
        }
    }
    assert!(walked >= 10, "walked only {walked} routes");
}

#[tokio::test]
async fn public_routes_answer_without_a_token_and_echo_request_ids() {
    let server = TestServer::start().await;
    let (status, body) = server.call(Method::GET, "/healthz", None, None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    let (status, body) = server.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["store"], json!(true));
    assert_eq!(body["environments"][0]["name"], "local");
    let (_, body) = server.call(Method::GET, "/version", None, None).await;
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));

    let response = server
        .request(Method::GET, "/v1/operations", None)
        .header("x-request-id", "trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-42");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["request_id"], "trace-42");
    assert_eq!(body["error"]["code"], "unauthenticated");
}

#[tokio::test]
async fn a_token_works_until_it_is_revoked_and_its_secret_is_shown_once() {
    let server = TestServer::start().await;
    let (id, secret) = server.token_with("acme", "operator", Some("30d")).await;
    let (status, me) = server
        .call(Method::GET, "/v1/whoami", Some(&secret), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        me,
        json!({"token_id": id, "token_name": "acme-operator", "org": "acme", "role": "operator"})
    );

    let (_, tokens) = server
        .call(Method::GET, "/v1/tokens", Some(ADMIN), None)
        .await;
    let listed = tokens["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == json!(id))
        .unwrap();
    assert!(listed.get("secret").is_none() && !listed.to_string().contains(&secret));
    assert!(listed["expires_at"].is_string());

    let (status, op) = server
        .call(
            Method::DELETE,
            &format!("/v1/tokens/{id}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(op["status"], "succeeded");
    assert_eq!(op["kind"], "token.revoke");
    let (status, body) = server
        .call(Method::GET, "/v1/whoami", Some(&secret), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["message"], "the token has been revoked");

    let (status, body) = server
        .call(Method::DELETE, "/v1/tokens/tok_missing", Some(ADMIN), None)
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "token_not_found")
    );
}

/// Signs in to the console with a token: the session secret its cookie holds, and the
/// session's CSRF token.
async fn sign_in(server: &TestServer, token: &str) -> (String, String) {
    let response = server
        .request(Method::POST, "/console/session", None)
        .json(&json!({"token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(cookie.contains(part), "{cookie} lacks {part}");
    }
    assert!(!cookie.contains(token), "the cookie is not the token");
    let secret = cookie
        .strip_prefix("overcast_session=")
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_string();
    let body: Value = response.json().await.unwrap();
    assert!(!body.to_string().contains(token), "the token is not echoed");
    (secret, body["csrf_token"].as_str().unwrap().to_string())
}

/// A request with a console session's cookie, and its CSRF token when given.
async fn with_session(
    server: &TestServer,
    method: Method,
    path: &str,
    secret: &str,
    csrf: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = server
        .request(method, path, None)
        .header("cookie", format!("overcast_session={secret}"));
    if let Some(csrf) = csrf {
        request = request.header("x-csrf-token", csrf);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn console_sessions_stand_for_their_token_until_signed_out_revoked_or_expired() {
    let server = TestServer::start_with(|c| c.console_session_secs = 2).await;
    let (id, token) = server.token_with("acme", "operator", None).await;
    let (status, body) = server
        .call(
            Method::POST,
            "/console/session",
            None,
            Some(json!({"token": "oc_wrong"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = server
        .call(
            Method::POST,
            "/console/session",
            None,
            Some(json!({"token": token, "role": "admin"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("body.role")),
        "{body}"
    );

    // The page loads only its own code, and no other site may frame it.
    let page = server
        .request(Method::GET, "/console/", None)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let policy = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"));
    assert!(page.text().await.unwrap().contains("/console/app.js"));

    // A form of another site can only send text: a sign-in takes JSON alone.
    let response = server
        .request(Method::POST, "/console/session", None)
        .header("content-type", "text/plain")
        .body(json!({"token": token}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get("set-cookie").is_none());

    let (secret, csrf) = sign_in(&server, &token).await;
    let (status, me) = with_session(&server, Method::GET, "/v1/whoami", &secret, None, None).await;
    assert_eq!(
        (status, me["token_id"].as_str()),
        (StatusCode::OK, Some(id.as_str()))
    );
    let (_, session) = with_session(
        &server,
        Method::GET,
        "/console/session",
        &secret,
        None,
        None,
    )
    .await;
    assert_eq!(session["csrf_token"], csrf.as_str());
    assert_eq!(session["whoami"]["role"], "operator");

    // A change needs the session's CSRF token; with it, the change is the token's own.
    let idempotent = json!({"dry_run": true, "ids": ["i-1"]});
    let (status, body) = with_session(
        &server,
        Method::POST,
        "/v1/environments/local/instances/stop",
        &secret,
        None,
        Some(idempotent.clone()),
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::FORBIDDEN, "csrf_token_invalid")
    );
    let (status, body) = with_session(
        &server,
        Method::POST,
        "/v1/environments/local/instances/stop",
        &secret,
        Some("0f00"),
        Some(idempotent.clone()),
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::FORBIDDEN, "csrf_token_invalid")
    );
    let (status, body) = with_session(
        &server,
        Method::DELETE,
        "/v1/access-keys/AKOCNOTAKEY",
        &secret,
        Some(&csrf),
        None,
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "access_key_not_found"),
        "past the CSRF check"
    );
    let (_, audit) = server
        .call(Method::GET, "/v1/audit?limit=10", Some(ADMIN), None)
        .await;
    let entries = audit["items"].as_array().unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e["route"] == "/console/session" && e["token_id"] == id.as_str()),
        "the sign-in is audited: {audit}"
    );
    assert!(
        entries
            .iter()
            .any(|e| e["route"] == "/v1/environments/{env}/instances/stop"
                && e["outcome"] == "denied"),
        "the refused change is audited: {audit}"
    );

    // Signed out: the cookie is worth nothing.
    let (status, _) = with_session(
        &server,
        Method::DELETE,
        "/console/session",
        &secret,
        Some(&csrf),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) =
        with_session(&server, Method::GET, "/v1/whoami", &secret, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // A session ends with its token's revocation, and on its own after console_session_secs.
    let (revoked, _) = sign_in(&server, &token).await;
    let (expiring, _) = sign_in(&server, &token).await;
    let (other_id, other) = server.token_with("acme", "viewer", None).await;
    let (kept, _) = sign_in(&server, &other).await;
    server
        .change(Method::DELETE, &format!("/v1/tokens/{id}"), None)
        .await;
    let (status, body) =
        with_session(&server, Method::GET, "/v1/whoami", &revoked, None, None).await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("the token has been revoked"))
    );
    let (status, me) = with_session(&server, Method::GET, "/v1/whoami", &kept, None, None).await;
    assert_eq!(
        (status, me["token_id"].as_str()),
        (StatusCode::OK, Some(other_id.as_str()))
    );
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    for secret in [&expiring, &kept] {
        let (status, body) =
            with_session(&server, Method::GET, "/v1/whoami", secret, None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
}

/// Reads every byte the database holds, for looking for secrets in it.
async fn database_bytes(server: &TestServer, database_url: Option<&str>) -> Vec<u8> {
    match database_url {
        None => {
            let mut bytes = vec![];
            for entry in std::fs::read_dir(server.dir.path()).unwrap() {
                let path = entry.unwrap().path();
                if path
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("overcast.db")
                {
                    bytes.extend(std::fs::read(path).unwrap());
                }
            }
            assert!(!bytes.is_empty());
            bytes
        }
        Some(url) => {
            let output = std::process::Command::new(pg_dump())
                .arg(url)
                .output()
                .expect("pg_dump runs");
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            output.stdout
        }
    }
}

fn pg_dump() -> String {
    let dirs = std::fs::read_dir("/usr/lib/postgresql").expect("PostgreSQL is installed");
    let mut bins: Vec<_> = dirs
        .map(|d| d.unwrap().path().join("bin/pg_dump"))
        .filter(|p| p.exists())
        .collect();
    bins.sort();
    bins.pop().unwrap().display().to_string()
}

async fn fresh_postgres_database() -> String {
    let admin = std::env::var("OVERCAST_TEST_POSTGRES_URL")
        .expect("OVERCAST_TEST_POSTGRES_URL is not set: run ./scripts/test, which starts a throwaway PostgreSQL");
    let name = format!("overcast_api_{}", std::process::id());
    let psql = pg_dump().replace("pg_dump", "psql");
    let status = std::process::Command::new(psql)
        .args([admin.as_str(), "-qc", &format!("CREATE DATABASE {name}")])
        .status()
        .unwrap();
    assert!(status.success());
    let (base, _) = admin.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

async fn secrets_never_reach_the_database(database_url: Option<String>) {
    let url = database_url.clone();
    let server = TestServer::start_with(|c| c.database_url = url).await;
    let secret = server.token("acme", "operator").await;
    // A replayed create does not show the secret again.
    let secret2 = server.token("acme", "viewer").await;
    // A console sign-in's cookie holds a session secret, which the store keeps hashed too.
    let session = sign_in(&server, &secret2).await.0;
    let bytes = database_bytes(&server, database_url.as_deref()).await;
    for s in [secret, secret2, ADMIN.to_string(), session] {
        let hex = s.trim_start_matches("oc_").as_bytes().to_vec();
        assert!(
            !bytes.windows(hex.len()).any(|w| w == hex.as_slice()),
            "a secret is stored in clear"
        );
    }
    let hash = overcast_core::auth::hash_secret(ADMIN);
    assert!(
        bytes.windows(hash.len()).any(|w| w == hash.as_bytes()),
        "the hash is what is stored"
    );
}

#[tokio::test]
async fn token_secrets_are_stored_only_as_hashes_in_sqlite() {
    secrets_never_reach_the_database(None).await;
}

#[tokio::test]
async fn token_secrets_are_stored_only_as_hashes_in_postgres() {
    secrets_never_reach_the_database(Some(fresh_postgres_database().await)).await;
}

#[tokio::test]
async fn one_idempotency_key_makes_one_operation() {
    let server = TestServer::start().await;
    let body = json!({"org": "acme", "role": "viewer", "name": "retry-me"});
    let send = |key: &'static str, body: Value| {
        let server = &server;
        async move {
            let response = server
                .request(Method::POST, "/v1/tokens", Some(ADMIN))
                .header("idempotency-key", key)
                .json(&body)
                .send()
                .await
                .unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    let ((s1, a1), (s2, a2)) = tokio::join!(send("k-1", body.clone()), send("k-1", body.clone()));
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(
        a1["operation"]["id"], a2["operation"]["id"],
        "one operation for one key"
    );
    assert_eq!(
        a1["secret"].is_string() as u8 + a2["secret"].is_string() as u8,
        1,
        "only the request that created the token sees its secret"
    );
    let (s3, a3) = send("k-1", body.clone()).await;
    assert_eq!(
        (s3, &a3["operation"]["id"]),
        (StatusCode::CREATED, &a1["operation"]["id"])
    );

    let (status, conflict) = send("k-1", json!({"org": "acme", "role": "admin"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_code(&conflict), "idempotency_key_reused");

    let (_, tokens) = server
        .call(Method::GET, "/v1/tokens", Some(ADMIN), None)
        .await;
    let named = tokens["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["name"] == "retry-me")
        .count();
    assert_eq!(named, 1, "the token was created once");
}

#[tokio::test]
async fn respond_async_answers_202_with_the_operation_to_follow() {
    let server = TestServer::start().await;
    let response = server
        .request(Method::POST, "/v1/tokens", Some(ADMIN))
        .header("prefer", "respond-async")
        .json(&json!({"org": "acme", "role": "viewer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let body: Value = response.json().await.unwrap();
    assert!(
        body["secret"].as_str().unwrap().starts_with("oc_"),
        "the secret comes with the 202"
    );
    assert_eq!(
        location,
        format!(
            "/v1/operations/{}",
            body["operation"]["id"].as_str().unwrap()
        )
    );
    let op = server
        .operation_end(body["operation"]["id"].as_str().unwrap())
        .await;
    assert_eq!(op["status"], "succeeded");
    assert_eq!(op["progress"], json!({"done": 1, "total": 1}));
}

#[tokio::test]
async fn bad_requests_get_a_400_naming_the_field() {
    let server = TestServer::start().await;
    let cases: Vec<(Method, &str, Option<Value>, &str)> = vec![
        (
            Method::POST,
            "/v1/tokens",
            Some(json!({"org": "acme", "role": "root"})),
            "body.role",
        ),
        (
            Method::POST,
            "/v1/tokens",
            Some(json!({"org": "Acme Corp", "role": "viewer"})),
            "org",
        ),
        (
            Method::POST,
            "/v1/tokens",
            Some(json!({"org": "acme", "role": "viewer", "expires_in": "soon"})),
            "expires_in",
        ),
        (
            Method::POST,
            "/v1/tokens",
            Some(json!({"role": "viewer"})),
            "body",
        ),
        (
            Method::POST,
            "/v1/tokens?timeout=forever",
            Some(json!({"org": "acme", "role": "viewer"})),
            "timeout",
        ),
        (Method::GET, "/v1/operations?limit=0", None, "limit"),
        (Method::GET, "/v1/operations?status=done", None, "status"),
        (Method::GET, "/v1/operations?since=yesterday", None, "since"),
        (Method::GET, "/v1/operations?colour=blue", None, "query"),
        (Method::GET, "/v1/operations?kind=a%0Ab", None, "kind"),
        (
            Method::DELETE,
            "/v1/environments/local/buckets/b-test?force=perhaps",
            None,
            "force",
        ),
        (Method::GET, "/v1/audit?limit=9999", None, "limit"),
    ];
    for (method, path, body, field) in cases {
        let (status, answer) = server.call(method.clone(), path, Some(ADMIN), body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {path}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{method} {path}: {answer}");
        assert!(!answer["error"]["message"].as_str().unwrap().is_empty());
    }
    let response = server
        .request(Method::POST, "/v1/tokens", Some(ADMIN))
        .header("content-type", "text/plain")
        .body("org=acme")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let (status, answer) = server
        .call(Method::GET, "/v1/nowhere", Some(ADMIN), None)
        .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::NOT_FOUND, "route_not_found")
    );
    let (status, answer) = server
        .call(Method::PUT, "/v1/operations", Some(ADMIN), None)
        .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    let (status, answer) = server
        .call(Method::GET, "/v1/environments/mars", Some(ADMIN), None)
        .await;
    assert_eq!(
        (status, error_code(&answer)),
        (StatusCode::NOT_FOUND, "environment_not_found")
    );
}

/// A malformed request, and the field its answer should name.
struct Malformed {
    /// What is wrong with it, for the failure message.
    what: String,
    /// Its path and query.
    path: String,
    header: Option<(&'static str, &'static str)>,
    body: Option<&'static str>,
    field: String,
}

impl Malformed {
    fn new(what: impl Into<String>, path: String, field: impl Into<String>) -> Malformed {
        Malformed {
            what: what.into(),
            path,
            header: None,
            body: None,
            field: field.into(),
        }
    }
}

/// Malformed input of every kind a route reads (a path parameter, the query, a header, the
/// body) answers 400 in the error shape, naming what was wrong, and the document states it.
#[tokio::test]
async fn malformed_input_on_every_route_is_a_documented_400_naming_the_field() {
    let server = TestServer::start().await;
    let document = serde_json::to_value(overcast_server::openapi()).unwrap();
    let usual = |name: &str| match name {
        "env" => "local",
        "action" => "start",
        "key" => "some/key",
        _ => "x-test",
    };
    let mut tried = 0;
    for (template, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let parameters = operation["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let named = |place: &str| {
                parameters
                    .iter()
                    .filter(|p| p["in"] == place)
                    .map(|p| p["name"].as_str().unwrap().to_string())
                    .collect::<Vec<_>>()
            };
            let path_with = |bad: Option<(&str, &str)>| {
                named("path").iter().fold(template.clone(), |path, name| {
                    let value = match bad {
                        Some((which, value)) if which == name => value,
                        _ => usual(name),
                    };
                    path.replace(&format!("{{{name}}}"), value)
                })
            };
            let mut cases = vec![];
            for name in named("path") {
                for (what, value) in [("not UTF-8", "%FF"), ("a control character", "a%01")] {
                    let path = path_with(Some((&name, value)));
                    cases.push(Malformed::new(format!("{name}: {what}"), path, &name));
                }
            }
            let query = named("query");
            if query.iter().any(|q| q == "timeout") {
                let path = format!("{}?timeout=never", path_with(None));
                cases.push(Malformed::new("timeout", path, "timeout"));
            }
            if let Some(name) = query.iter().find(|q| *q != "timeout") {
                let path = format!("{}?{name}=a%01", path_with(None));
                cases.push(Malformed::new(
                    format!("{name}: a control character"),
                    path,
                    name,
                ));
                let path = format!("{}?colour=blue", path_with(None));
                cases.push(Malformed::new("an unknown parameter", path, "query"));
            }
            if named("header").iter().any(|h| h == "Idempotency-Key") {
                cases.push(Malformed {
                    header: Some(("Idempotency-Key", "two words")),
                    ..Malformed::new("Idempotency-Key", path_with(None), "Idempotency-Key")
                });
            }
            if operation["requestBody"]["content"]["application/json"].is_object() {
                let bodies = [
                    ("not JSON", "{oops", "body"),
                    ("a control character", r#"{"name": "a\u0001"}"#, "body.name"),
                ];
                for (what, body, field) in bodies {
                    cases.push(Malformed {
                        body: Some(body),
                        ..Malformed::new(format!("body: {what}"), path_with(None), field)
                    });
                }
            }
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            for case in cases {
                tried += 1;
                let mut request = server.request(method.clone(), &case.path, Some(ADMIN));
                if let Some((name, value)) = case.header {
                    request = request.header(name, value);
                }
                if let Some(body) = case.body {
                    request = request
                        .header("content-type", "application/json")
                        .body(body);
                }
                let response = request.send().await.unwrap();
                let status = response.status();
                let what = format!("{method} {template} with {}", case.what);
                assert_eq!(status, StatusCode::BAD_REQUEST, "{what}");
                assert!(
                    operation["responses"]["400"].is_object(),
                    "{what}: 400 is not in the document"
                );
                if method == Method::HEAD {
                    continue;
                }
                let answer: Value = response.json().await.unwrap();
                assert_eq!(
                    answer["error"]["field"],
                    case.field.as_str(),
                    "{what}: {answer}"
                );
                assert!(
                    !answer["error"]["request_id"].as_str().unwrap().is_empty(),
                    "{what}"
                );
            }
        }
    }
    assert!(tried >= 150, "tried only {tried} malformed requests");
}

#[tokio::test]
async fn orgs_see_only_their_own_operations_and_audit() {
    let server = TestServer::start().await;
    let acme = server.token("acme", "operator").await;
    let other = server.token("other", "viewer").await;
    // Creating the acme token is an operation of org acme.
    let (_, ops) = server
        .call(
            Method::GET,
            "/v1/operations?kind=token.create",
            Some(&acme),
            None,
        )
        .await;
    let items = ops["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["org"], "acme");
    let id = items[0]["id"].as_str().unwrap();
    let (status, _) = server
        .call(
            Method::GET,
            &format!("/v1/operations/{id}"),
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = server
        .call(
            Method::GET,
            &format!("/v1/operations/{id}"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "operation_not_found")
    );
    let (status, body) = server
        .call(
            Method::POST,
            &format!("/v1/operations/{id}/cancel"),
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "operation_finished")
    );
    let (_, all) = server
        .call(Method::GET, "/v1/operations", Some(ADMIN), None)
        .await;
    assert_eq!(
        all["items"].as_array().unwrap().len(),
        2,
        "admins see every org"
    );

    // The operator's denied and failed changes are in acme's audit log; other sees none.
    let (status, _) = server
        .call(
            Method::POST,
            "/v1/tokens",
            Some(&acme),
            Some(json!({"org": "acme", "role": "admin"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, audit) = server
        .call(Method::GET, "/v1/audit", Some(&acme), None)
        .await;
    let entries = audit["items"].as_array().unwrap();
    let outcomes: Vec<_> = entries
        .iter()
        .map(|e| {
            (
                e["route"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
                e["status_code"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("/v1/tokens", "denied", 403),
            ("/v1/operations/{id}/cancel", "failed", 409)
        ]
    );
    assert_eq!(entries[0]["token_name"], "acme-operator");
    assert!(entries[0]["request_id"]
        .as_str()
        .unwrap()
        .starts_with("req_"));
    let (_, audit) = server
        .call(Method::GET, "/v1/audit", Some(&other), None)
        .await;
    assert!(audit["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn the_audit_log_links_each_change_to_its_operation_and_request() {
    let server = TestServer::start().await;
    let response = server
        .request(Method::POST, "/v1/tokens", Some(ADMIN))
        .header("x-request-id", "audit-me")
        .json(&json!({"org": "acme", "role": "viewer"}))
        .send()
        .await
        .unwrap();
    let created: Value = response.json().await.unwrap();
    let op_id = created["operation"]["id"].as_str().unwrap();
    let (_, audit) = server
        .call(
            Method::GET,
            &format!("/v1/audit?operation_id={op_id}"),
            Some(ADMIN),
            None,
        )
        .await;
    let entry = &audit["items"][0];
    assert_eq!(entry["request_id"], "audit-me");
    assert_eq!(entry["method"], "POST");
    assert_eq!(entry["outcome"], "succeeded");
    assert_eq!(entry["token_name"], "bootstrap-admin");
    assert_eq!(entry["role"], "admin");
    // No route changes or deletes the log.
    let (status, _) = server
        .call(Method::DELETE, "/v1/audit", Some(ADMIN), None)
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn metrics_count_requests_and_operations() {
    let server = TestServer::start().await;
    server.token("acme", "viewer").await;
    let response = server
        .request(Method::GET, "/metrics", Some(ADMIN))
        .send()
        .await
        .unwrap();
    let text = response.text().await.unwrap();
    assert!(
        text.contains(
            r#"overcast_http_requests_total{method="POST",route="/v1/tokens",status="201"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"overcast_operations_total{kind="token.create",status="succeeded"} 1"#),
        "{text}"
    );
    assert!(text.contains("overcast_http_request_duration_seconds_bucket"));
}

#[tokio::test]
async fn environments_and_machine_types_are_listed() {
    let server = TestServer::start().await;
    let (status, envs) = server
        .call(Method::GET, "/v1/environments", Some(ADMIN), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let local = &envs["items"][0];
    assert_eq!(local["name"], "local");
    assert_eq!(local["provider"], "qemu");
    assert_eq!(local["reachable"], false);
    assert!(local["reason"].as_str().unwrap().contains("qemu provider"));
    assert_eq!(local["stages"]["stages"], json!(["dev", "test", "prod"]));
    let (_, types) = server
        .call(Method::GET, "/v1/machine-types", Some(ADMIN), None)
        .await;
    let names: Vec<_> = types["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["medium", "small", "tiny"]);
    assert_eq!(
        types["items"][2]["qemu"],
        json!({"cpus": 1, "memory_mb": 256, "disk_gb": 2})
    );
}

#[tokio::test]
async fn the_docs_page_is_served_from_the_binary() {
    let server = TestServer::start_with(|c| c.public_docs = true).await;
    let (status, html) = server.call(Method::GET, "/docs/", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let html = html.as_str().unwrap();
    assert!(html.contains("swagger-ui-bundle.js"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the page loads nothing from the internet"
    );
    for asset in [
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "swagger-initializer.js",
    ] {
        let response = server
            .request(Method::GET, &format!("/docs/{asset}"), None)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
    }
    let (status, document) = server.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(document["openapi"], "3.1.0");
    // The API itself still needs a token.
    let (status, _) = server.call(Method::GET, "/v1/operations", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn tls_serves_https_with_the_configured_certificate() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let pem_dir = tempfile::tempdir().unwrap();
    let cert = pem_dir.path().join("tls.crt");
    let key = pem_dir.path().join("tls.key");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let server =
        TestServer::start_with(|c| c.tls = Some(overcast_core::config::TlsConfig { cert, key }))
            .await;
    assert!(server.base.starts_with("https://"));
    let (status, body) = server.call(Method::GET, "/healthz", None, None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    let plain = server.base.replace("https://", "http://");
    assert!(
        reqwest::get(format!("{plain}/healthz")).await.is_err(),
        "plain HTTP is not served on a TLS port"
    );
}

#[tokio::test]
async fn a_missing_certificate_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.tls = Some(overcast_core::config::TlsConfig {
        cert: dir.path().join("none.crt"),
        key: dir.path().join("none.key"),
    });
    config.fill_defaults();
    let (core, _) = Core::open(config, &ProviderFactories::new(), Some(ADMIN.into()))
        .await
        .unwrap();
    let err = Server::bind(core).await.err().unwrap();
    assert_eq!(err.field.as_deref(), Some("tls"));
    assert!(
        err.message
            .starts_with("cannot load the certificate or key"),
        "{}",
        err.message
    );
}

#[test]
fn the_checked_in_openapi_document_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.json");
    let current = serde_json::to_string_pretty(&overcast_server::openapi()).unwrap() + "\n";
    if std::env::var_os("OVERCAST_UPDATE_OPENAPI").is_some() {
        std::fs::write(path, &current).unwrap();
    }
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        checked_in == current,
        "openapi.json is stale: run `OVERCAST_UPDATE_OPENAPI=1 cargo test -p overcast-server --test api` and commit it"
    );
}
