//! Calls to an overcast server's HTTP API, as a client makes them, and the one operation
//! poller.

use crate::ADMIN;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The statuses an operation ends in.
pub const FINAL_STATUSES: [&str; 3] = ["succeeded", "failed", "cancelled"];

/// How long the operation poller waits for an operation before it gives up.
pub const OPERATION_LIMIT: Duration = Duration::from_secs(120);

/// An overcast server's API: its base URL and a client. [`crate::TestServer`] and
/// [`crate::process::Served`] both dereference to it.
#[derive(Clone)]
pub struct Api {
    /// `http://127.0.0.1:PORT`, or `https://` when the server has TLS.
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(base: impl Into<String>) -> Api {
        // Tests trust the self-signed certificate of a TLS test server.
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()
            .unwrap();
        Api {
            base: base.into(),
            http,
        }
    }

    /// A request to `path`, carrying `token` as its bearer token when there is one.
    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let mut builder = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            builder = builder.bearer_auth(token);
        }
        builder
    }

    /// Sends a request with an optional JSON body; answers the status and the body, parsed
    /// when it is JSON and as a string otherwise.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut builder = self.request(method, path, token);
        if let Some(body) = body {
            builder = builder.json(&body);
        }
        let response = builder.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Sends a change as the admin that waits up to 3 minutes for its operation; asserts that
    /// it succeeded and answers the operation.
    pub async fn change(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let sep = if path.contains('?') { '&' } else { '?' };
        let waiting = format!("{path}{sep}timeout=180");
        let (status, op) = self.call(method.clone(), &waiting, Some(ADMIN), body).await;
        assert!(status.is_success(), "{method} {path}: {status} {op}");
        assert_eq!(op["status"], "succeeded", "{method} {path}: {op}");
        op
    }

    /// Creates a token as the admin; answers its secret.
    pub async fn token(&self, org: &str, role: &str) -> String {
        self.token_with(org, role, None).await.1
    }

    /// Creates a token as the admin, expiring after `expires_in` (`30d`, `1s`) when given;
    /// answers its id and secret.
    pub async fn token_with(
        &self,
        org: &str,
        role: &str,
        expires_in: Option<&str>,
    ) -> (String, String) {
        let mut body = json!({"org": org, "role": role});
        if let Some(expires_in) = expires_in {
            body["expires_in"] = json!(expires_in);
        }
        let (status, answer) = self
            .call(Method::POST, "/v1/tokens", Some(ADMIN), Some(body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        (
            answer["token"]["id"].as_str().unwrap().to_string(),
            answer["secret"].as_str().unwrap().to_string(),
        )
    }

    /// Makes an access key of the EC2 endpoint, as the admin, for a new token of `org` and
    /// `role`, bound to `env`; answers its id and secret.
    pub async fn access_key(&self, env: &str, org: &str, role: &str) -> (String, String) {
        let (token_id, _) = self.token_with(org, role, None).await;
        let (status, made) = self
            .call(
                Method::POST,
                &format!("/v1/tokens/{token_id}/access-keys"),
                Some(ADMIN),
                Some(json!({"environment": env})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{made}");
        (
            made["access_key"]["id"].as_str().unwrap().to_string(),
            made["secret_access_key"].as_str().unwrap().to_string(),
        )
    }

    /// The server's `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.request(Method::GET, "/metrics", Some(ADMIN))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Polls an operation as the admin until it ends (any of [`FINAL_STATUSES`]) or
    /// [`OPERATION_LIMIT`] passes; answers its last state.
    pub async fn operation_end(&self, id: &str) -> Value {
        self.operation_until(id, Duration::from_millis(100), ended)
            .await
    }

    /// Polls an operation as the admin every `every` until `until` holds for it or
    /// [`OPERATION_LIMIT`] passes; answers its last state.
    pub async fn operation_until(
        &self,
        id: &str,
        every: Duration,
        mut until: impl FnMut(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + OPERATION_LIMIT;
        loop {
            let (_, operation) = self
                .call(
                    Method::GET,
                    &format!("/v1/operations/{id}"),
                    Some(ADMIN),
                    None,
                )
                .await;
            if until(&operation) || Instant::now() >= deadline {
                return operation;
            }
            tokio::time::sleep(every).await;
        }
    }
}

/// Whether an operation (as the API shows it) has ended.
pub fn ended(operation: &Value) -> bool {
    FINAL_STATUSES
        .iter()
        .any(|status| operation["status"] == *status)
}
