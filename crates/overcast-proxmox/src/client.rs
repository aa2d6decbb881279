//! The PVE API over HTTPS: the certificate checked against a CA file or a pinned
//! fingerprint, requests signed with an API token or a ticket (signed in for, kept until it
//! nears its two hours), answers read from PVE's `{"data": ...}` envelope, and PVE's
//! refusals mapped to overcast's error kinds with PVE's own text.

use overcast_provider::{ProviderError, ProviderErrorKind};
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

pub struct Client {
    http: reqwest::Client,
    /// `https://host:8006/api2/json`.
    api: String,
    identity: Identity,
    secret: String,
    /// The ticket cookie of a user sign-in, and when it was had.
    ticket: Mutex<Option<(String, Instant)>>,
}

#[derive(Deserialize)]
struct Envelope<T> {
    data: T,
}

#[derive(Deserialize)]
struct Ticket {
    ticket: String,
}

impl Client {
    /// A client for an environment whose settings passed their check.
    pub fn new(settings: &Settings) -> Result<Client, String> {
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
        })
    }

    /// A GET of `path` (below `/api2/json`), its `data` read as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ProviderError> {
        let request = self.http.get(format!("{}{path}", self.api));
        let request = self.signed(request).await?;
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
                    format!("PVE answered GET {path} with what overcast cannot read: {e}"),
                )
            })
    }

    async fn signed(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        match &self.identity {
            Identity::Token(token) => Ok(request.header(
                "Authorization",
                format!("PVEAPIToken={token}={}", self.secret),
            )),
            Identity::User(user) => {
                let ticket = self.ticket(user).await?;
                Ok(request.header("Cookie", format!("PVEAuthCookie={ticket}")))
            }
        }
    }

    /// A valid ticket for `user`, signing in when there is none or it is old.
    async fn ticket(&self, user: &str) -> Result<String, ProviderError> {
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
            .data
            .ticket;
        *kept = Some((ticket.clone(), Instant::now()));
        Ok(ticket)
    }
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

/// PVE's refusal: its status and its own text (PVE puts it in the HTTP reason and, for
/// parameter errors, in `errors`).
fn refusal(status: reqwest::StatusCode, body: &str) -> ProviderError {
    let errors = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("errors").cloned())
        .filter(|e| !e.is_null());
    let reason = status.canonical_reason().unwrap_or("");
    let text = match errors {
        Some(errors) => format!("{} {reason}: {errors}", status.as_u16()),
        None if body.trim().is_empty() || body.trim() == "{\"data\":null}" => {
            format!("{} {reason}", status.as_u16())
        }
        None => format!("{} {reason}: {}", status.as_u16(), body.trim()),
    };
    let (kind, code) = match status.as_u16() {
        401 => (ProviderErrorKind::Denied, "authentication_failed"),
        403 => (ProviderErrorKind::Denied, "permission_denied"),
        400 => (ProviderErrorKind::InvalidInput, "invalid_input"),
        404 => (ProviderErrorKind::NotFound, "not_found"),
        500..=599 => (ProviderErrorKind::Unavailable, "backend_error"),
        _ => (ProviderErrorKind::Refused, "backend_refused"),
    };
    ProviderError::new(kind, code, format!("PVE refused: {text}"))
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
        assert_eq!(e.kind, ProviderErrorKind::InvalidInput);
        assert!(e.message.contains("cores"), "{}", e.message);
        assert_eq!(colon_hex(&[0xab, 0x01]), "AB:01");
    }
}
