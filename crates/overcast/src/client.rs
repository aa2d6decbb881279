//! The HTTP client of the CLI: where the server is, which token to send, and turning the
//! server's error answers into messages.

use anyhow::{anyhow, bail, Context};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::PathBuf;

pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// What `overcast login` saves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Profile {
    pub url: String,
    pub token: String,
}

impl Profile {
    /// `$XDG_CONFIG_HOME/overcast/profile.json`, else `~/.config/overcast/profile.json`.
    pub fn path() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
        Some(base.join("overcast").join("profile.json"))
    }

    pub fn load() -> Option<Profile> {
        let text = std::fs::read_to_string(Self::path()?).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Saves the profile readable by its owner only.
    pub fn save(&self) -> anyhow::Result<PathBuf> {
        let path = Self::path()
            .ok_or_else(|| anyhow!("no HOME or XDG_CONFIG_HOME to save the profile in"))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        write_private(&path, &serde_json::to_string_pretty(self)?, true)?;
        Ok(path)
    }
}

/// Writes a file only its owner can read, created with that mode so it is never readable
/// by others, even for a moment. Without `replace`, an existing file is an error.
pub fn write_private(path: &std::path::Path, contents: &str, replace: bool) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).mode(0o600);
    if replace {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}

pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// An answer the server gave: its status and JSON body.
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Client {
    /// Flags and `OVERCAST_URL` / `OVERCAST_TOKEN` win over the saved profile.
    pub fn new(url: Option<String>, token: Option<String>) -> anyhow::Result<Client> {
        let profile = Profile::load();
        let base = url
            .or_else(|| profile.as_ref().map(|p| p.url.clone()))
            .unwrap_or_else(|| DEFAULT_URL.to_string());
        let token = token.or_else(|| profile.map(|p| p.token));
        Ok(Client {
            base: base.trim_end_matches('/').to_string(),
            token,
            http: reqwest::Client::builder()
                .user_agent(concat!("overcast-cli/", env!("CARGO_PKG_VERSION")))
                .build()?,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Sends a request; a non-2xx answer becomes an error carrying the server's message.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Answer> {
        self.request(method, path, body, false).await
    }

    /// Sends a change with `Prefer: respond-async`: the answer is the operation, at once.
    pub async fn start(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        Ok(self.request(method, path, body, true).await?.body)
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        respond_async: bool,
    ) -> anyhow::Result<Answer> {
        let mut request = self.builder(method, path);
        if respond_async {
            request = request.header("prefer", "respond-async");
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = self.execute(request).await?;
        let status = response.status();
        let text = response.text().await?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Answer { status, body })
    }

    /// A request to `path` carrying the token, for bodies that are not JSON.
    pub fn builder(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends a request; a non-2xx answer becomes an error carrying the server's message.
    pub async fn execute(&self, request: RequestBuilder) -> anyhow::Result<Response> {
        let response = self.transmit(request).await?;
        self.check(response).await
    }

    /// Sends a request and answers whatever the server said.
    pub async fn transmit(&self, request: RequestBuilder) -> anyhow::Result<Response> {
        request
            .send()
            .await
            .with_context(|| format!("cannot reach overcast at {}", self.base))
    }

    /// A 2xx answer as it is; any other as an error carrying the server's message.
    pub async fn check(&self, response: Response) -> anyhow::Result<Response> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        bail!("{}", describe_error(status, &body, self.token.is_none()))
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self.send(Method::GET, path, None).await?.body)
    }
}

/// `the token is not valid (unauthenticated, HTTP 401, request req_...)`.
fn describe_error(status: StatusCode, body: &Value, no_token: bool) -> String {
    let error = &body["error"];
    let Some(message) = error["message"].as_str() else {
        return format!("the server answered HTTP {status}: {body}");
    };
    let mut text = match error["field"].as_str() {
        Some(field) => format!("{field}: {message}"),
        None => message.to_string(),
    };
    text += &format!(
        " ({}, HTTP {}, request {})",
        error["code"].as_str().unwrap_or("error"),
        status.as_u16(),
        error["request_id"].as_str().unwrap_or("-")
    );
    if status == StatusCode::UNAUTHORIZED && no_token {
        text += "\nhint: pass --token, set OVERCAST_TOKEN, or run `overcast login`";
    }
    text
}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Percent-encodes an object key for a path, keeping its slashes.
pub fn encode_key(key: &str) -> String {
    key.split('/').map(encode).collect::<Vec<_>>().join("/")
}

/// `?a=1&b=2` from the parts that are set.
pub fn query(params: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = params
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}
