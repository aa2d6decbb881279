//! The PVE API over HTTPS: the certificate checked against a CA file or a pinned
//! fingerprint, requests signed with an API token or a ticket (signed in for, kept until it
//! nears its two hours), answers read from PVE's `{"data": ...}` envelope, and PVE's
//! refusals mapped to overcast's error kinds with PVE's own text.

use overcast_provider::{Attempt, AttemptOutcome, CallObserver, ProviderError, ProviderErrorKind};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

use crate::settings::{Identity, Settings, Trust};

/// PVE's tickets last two hours; one is renewed well before.
const TICKET_LIFE: Duration = Duration::from_secs(90 * 60);
/// How many times a GET or PUT is tried when PVE cannot be reached.
const ATTEMPTS: u32 = 4;
/// The pause before the second attempt; it doubles for each one after.
const RETRY_PAUSE: Duration = Duration::from_millis(250);

/// What a request carries.
enum Payload<'a> {
    Form(&'a [(&'a str, String)]),
    Multipart { boundary: String, body: Vec<u8> },
}

pub struct Client {
    http: reqwest::Client,
    /// `https://host:8006/api2/json`.
    api: String,
    identity: Identity,
    secret: String,
    /// A user sign-in's ticket, and when it was had.
    ticket: Mutex<Option<(Ticket, Instant)>>,
    /// Told of every call, for the metrics and the running operation's count.
    observer: Arc<dyn CallObserver>,
}

#[derive(Deserialize)]
struct Envelope<T> {
    data: T,
}

/// A ticket and the CSRF token every change made under it carries.
#[derive(Clone, Deserialize)]
struct Ticket {
    ticket: String,
    #[serde(rename = "CSRFPreventionToken")]
    csrf: String,
}

impl Client {
    /// A client for an environment whose settings passed their check.
    pub fn new(settings: &Settings, observer: Arc<dyn CallObserver>) -> Result<Client, String> {
        let trust = settings.trust().map_err(|p| p.message)?;
        let identity = settings.identity().map_err(|p| p.message)?;
        let secret = settings.secret()?;
        let tls = tls_config(&trust)?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| format!("cannot make an HTTPS client: {e}"))?;
        Ok(Client {
            http,
            api: format!("{}/api2/json", settings.url.trim_end_matches('/')),
            identity,
            secret,
            ticket: Mutex::new(None),
            observer,
        })
    }

    /// A GET of `path` (below `/api2/json`), its `data` read as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ProviderError> {
        self.call(reqwest::Method::GET, path, &[]).await
    }

    /// A POST of a form to `path`, its `data` read as `T` (a change's task UPID).
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        form: &[(&str, String)],
    ) -> Result<T, ProviderError> {
        self.call(reqwest::Method::POST, path, form).await
    }

    /// A PUT of a form to `path`, its `data` read as `T`.
    pub async fn put<T: DeserializeOwned>(
        &self,
        path: &str,
        form: &[(&str, String)],
    ) -> Result<T, ProviderError> {
        self.call(reqwest::Method::PUT, path, form).await
    }

    /// A DELETE of `path` (its query says how), its `data` read as `T` (a task UPID).
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ProviderError> {
        self.call(reqwest::Method::DELETE, path, &[]).await
    }

    /// Uploads a file to a storage of a node as `content` (`iso`), as PVE's upload form
    /// takes it; answers the import task's UPID.
    pub async fn upload(
        &self,
        node: &str,
        storage: &str,
        content: &str,
        filename: &str,
        bytes: &[u8],
    ) -> Result<String, ProviderError> {
        let path = format!("/nodes/{node}/storage/{storage}/upload");
        let boundary = format!("overcast-{:016x}", rand::random::<u64>());
        let mut body = Vec::with_capacity(bytes.len() + 512);
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"content\"\r\n\r\n{content}\r\n\
                 --{boundary}\r\nContent-Disposition: form-data; name=\"filename\"; filename=\"{filename}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let payload = Payload::Multipart { boundary, body };
        self.observed_attempt(reqwest::Method::POST, &path, &payload, 1)
            .await
    }

    /// One call; a GET or PUT (which change nothing twice) that did not reach PVE is made
    /// again, up to [`ATTEMPTS`] times, waiting a little longer each time.
    async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        form: &[(&str, String)],
    ) -> Result<T, ProviderError> {
        let payload = Payload::Form(form);
        let repeatable = matches!(method, reqwest::Method::GET | reqwest::Method::PUT);
        let mut number = 1;
        loop {
            let result = self
                .observed_attempt(method.clone(), path, &payload, number)
                .await;
            match result {
                Err(e) if repeatable && e.code == "backend_unreachable" && number < ATTEMPTS => {
                    tokio::time::sleep(RETRY_PAUSE * 2u32.pow(number - 1)).await;
                    number += 1;
                }
                result => return result,
            }
        }
    }

    /// One attempt, reported to the observer under its action (`POST qemu/status/start`).
    async fn observed_attempt<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        payload: &Payload<'_>,
        number: u32,
    ) -> Result<T, ProviderError> {
        let action = action_of(&method, path);
        let result = self.send(method, path, payload).await;
        let (outcome, attempt) = match &result {
            Ok(_) => ("ok", AttemptOutcome::Ok),
            Err(e) => (e.code, AttemptOutcome::of_error(e)),
        };
        self.observer.backend_attempt(&Attempt {
            provider: "proxmox",
            action: &action,
            region: crate::REGION,
            number,
            outcome: attempt,
        });
        self.observer
            .backend_call("proxmox", &action, crate::REGION, outcome);
        result
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        payload: &Payload<'_>,
    ) -> Result<T, ProviderError> {
        let changes = method != reqwest::Method::GET;
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.api));
        match payload {
            Payload::Form([]) => {}
            Payload::Form(form) => request = request.form(form),
            Payload::Multipart { boundary, body } => {
                request = request
                    .header(
                        "Content-Type",
                        format!("multipart/form-data; boundary={boundary}"),
                    )
                    .body(body.clone());
            }
        }
        let request = self.signed(request, changes).await?;
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let text = response.text().await.map_err(unreachable)?;
        if !status.is_success() {
            return Err(refusal(status, &text));
        }
        serde_json::from_str::<Envelope<T>>(&text)
            .map(|e| e.data)
            .map_err(|e| {
                ProviderError::new(
                    ProviderErrorKind::Refused,
                    "unexpected_answer",
                    format!("PVE answered {method} {path} with what overcast cannot read: {e}"),
                )
            })
    }

    /// Signs a request: the API token, or the ticket (and, for a change, its CSRF token).
    async fn signed(
        &self,
        request: reqwest::RequestBuilder,
        changes: bool,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        match &self.identity {
            Identity::Token(token) => Ok(request.header(
                "Authorization",
                format!("PVEAPIToken={token}={}", self.secret),
            )),
            Identity::User(user) => {
                let ticket = self.ticket(user).await?;
                let request = request.header("Cookie", format!("PVEAuthCookie={}", ticket.ticket));
                Ok(if changes {
                    request.header("CSRFPreventionToken", ticket.csrf)
                } else {
                    request
                })
            }
        }
    }

    /// A valid ticket for `user`, signing in when there is none or it is old.
    async fn ticket(&self, user: &str) -> Result<Ticket, ProviderError> {
        let mut kept = self.ticket.lock().await;
        if let Some((ticket, at)) = kept.as_ref() {
            if at.elapsed() < TICKET_LIFE {
                return Ok(ticket.clone());
            }
        }
        let response = self
            .http
            .post(format!("{}/access/ticket", self.api))
            .form(&[("username", user), ("password", self.secret.as_str())])
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        let text = response.text().await.map_err(unreachable)?;
        if !status.is_success() {
            return Err(refusal(status, &text));
        }
        let ticket = serde_json::from_str::<Envelope<Ticket>>(&text)
            .map_err(|_| refusal(status, &text))?
            .data;
        *kept = Some((ticket.clone(), Instant::now()));
        Ok(ticket)
    }
}

/// A call's action for the metrics: its method and path without the node, VM and task it
/// names, e.g. `POST qemu/status/start`.
fn action_of(method: &reqwest::Method, path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    let mut parts = Vec::new();
    let mut segments = path.split('/').filter(|s| !s.is_empty()).peekable();
    while let Some(segment) = segments.next() {
        match segment {
            "nodes" => {
                segments.next();
            }
            "tasks" => {
                segments.next();
                parts.push("tasks");
            }
            s if s.chars().all(|c| c.is_ascii_digit()) => {}
            s => parts.push(s),
        }
    }
    format!("{method} {}", parts.join("/"))
}

/// A request that did not reach PVE, or whose answer was cut off.
fn unreachable(e: reqwest::Error) -> ProviderError {
    // The cause is at the bottom of the chain (a refused certificate, a closed port).
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        detail.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    let kind = if e.is_timeout() {
        ProviderErrorKind::Timeout
    } else {
        ProviderErrorKind::Unavailable
    };
    ProviderError::new(
        kind,
        "backend_unreachable",
        format!("cannot reach PVE: {detail}"),
    )
}

/// What a PVE text says went wrong, in overcast's kinds: a locked VM, one not in the state
/// the action needs, or a guest that did not power off in time is a conflict; any other
/// timeout (a config lock another task holds) a timeout, which passes.
pub(crate) fn kind_of(text: &str) -> Option<(ProviderErrorKind, &'static str)> {
    let lower = text.to_ascii_lowercase();
    if lower.contains("locked") {
        Some((ProviderErrorKind::Conflict, "instance_locked"))
    } else if lower.contains("already running") || lower.contains("not running") {
        Some((ProviderErrorKind::Conflict, "incorrect_instance_state"))
    } else if lower.contains("powerdown failed") {
        // The guest did not power off in the time given (it may ignore ACPI): asking again
        // will not help, a forced stop will.
        Some((ProviderErrorKind::Conflict, "shutdown_timeout"))
    } else if lower.contains("timeout") {
        Some((ProviderErrorKind::Timeout, "task_timeout"))
    } else {
        None
    }
}

/// PVE's refusal: its status and its own text (its `message`, and for parameter errors
/// `errors`, which name the fields). PVE answers 500 for refusals of the request itself (a
/// locked VM), which are not worth repeating; a gateway's 502–504 are.
fn refusal(status: reqwest::StatusCode, body: &str) -> ProviderError {
    let parsed = serde_json::from_str::<serde_json::Value>(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| v["message"].as_str())
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty());
    let errors = parsed
        .as_ref()
        .map(|v| v["errors"].clone())
        .filter(|e| !e.is_null());
    let reason = status.canonical_reason().unwrap_or("");
    let mut text = match &message {
        Some(message) => format!("{} {message}", status.as_u16()),
        None => format!("{} {reason}", status.as_u16()),
    };
    if let Some(errors) = &errors {
        text.push_str(&format!(": {errors}"));
    }
    let field = errors
        .as_ref()
        .and_then(|e| e.as_object())
        .and_then(|e| e.keys().find_map(|key| overcast_field(key)));
    let (kind, code) = match status.as_u16() {
        401 => (ProviderErrorKind::Denied, "authentication_failed"),
        403 => (ProviderErrorKind::Denied, "permission_denied"),
        400 => (ProviderErrorKind::InvalidInput, "invalid_input"),
        404 => (ProviderErrorKind::NotFound, "not_found"),
        501 => (ProviderErrorKind::Unsupported, "unsupported"),
        502..=504 => (ProviderErrorKind::Unavailable, "backend_unavailable"),
        _ => message
            .as_deref()
            .and_then(kind_of)
            .unwrap_or((ProviderErrorKind::Refused, "backend_refused")),
    };
    let error = ProviderError::new(kind, code, format!("PVE refused: {text}"));
    match field {
        Some(field) => error.with_field(field),
        None => error,
    }
}

/// The request field of overcast's a PVE parameter comes from, for a 400 that names it.
fn overcast_field(parameter: &str) -> Option<&'static str> {
    Some(match parameter {
        "name" | "newid" => "name",
        "cores" => "cpus",
        "memory" => "memory_mb",
        "size" | "disk" => "disk_gb",
        "tags" => "tags",
        "target" => "zone",
        _ => return None,
    })
}

/// TLS that trusts exactly what the settings say: a CA file's certificates, or the one
/// certificate with the pinned fingerprint.
fn tls_config(trust: &Trust) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = match trust {
        Trust::CaFile(path) => {
            let mut roots = rustls::RootCertStore::empty();
            let certificates = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("cannot read ca_file {}: {e}", path.display()))?;
            for certificate in certificates {
                let certificate = certificate
                    .map_err(|e| format!("ca_file {} is not PEM: {e}", path.display()))?;
                roots
                    .add(certificate)
                    .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::Fingerprint(fingerprint) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned {
                fingerprint: fingerprint.clone(),
                provider,
            }))
            .with_no_client_auth(),
    };
    Ok(config)
}

/// Trusts the one certificate whose SHA-256 is pinned (a self-signed cluster's), checking
/// that the server holds its key as TLS always does.
#[derive(Debug)]
struct Pinned {
    fingerprint: Vec<u8>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen = Sha256::digest(end_entity.as_ref());
        if seen.as_slice() == self.fingerprint.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the certificate's fingerprint {} is not the pinned one",
                colon_hex(&seen)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Bytes as PVE shows a fingerprint: `AB:CD:...`.
pub fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_keep_pves_text_and_map_to_kinds() {
        let e = refusal(reqwest::StatusCode::UNAUTHORIZED, "");
        assert_eq!(
            (e.kind, e.code),
            (ProviderErrorKind::Denied, "authentication_failed")
        );
        let e = refusal(
            reqwest::StatusCode::BAD_REQUEST,
            r#"{"errors":{"cores":"value must have a minimum value of 1"},"data":null}"#,
        );
        assert_eq!(
            (e.kind, e.field),
            (ProviderErrorKind::InvalidInput, Some("cpus"))
        );
        assert!(e.message.contains("minimum value of 1"), "{}", e.message);
        assert_eq!(colon_hex(&[0xab, 0x01]), "AB:01");
        let post = reqwest::Method::POST;
        assert_eq!(
            action_of(&post, "/nodes/pve1/qemu/101/status/start"),
            "POST qemu/status/start"
        );
        let get = reqwest::Method::GET;
        assert_eq!(
            action_of(
                &get,
                "/nodes/pve1/tasks/UPID:pve1:1:2:3:qmstart:101:root@pam:/status"
            ),
            "GET tasks/status"
        );
        assert_eq!(
            action_of(&get, "/cluster/resources?type=vm"),
            "GET cluster/resources"
        );
    }
}
