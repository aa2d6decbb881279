//! Asks a container image registry whether an image reference exists, over the OCI
//! distribution API: references read as docker/distribution reads them ([`Reference`]), the
//! manifest asked for with Docker's and OCI's media types (HEAD, else GET), and the bearer
//! token and basic challenges registries answer with ([`challenge`]).

pub mod challenge;
mod check;
mod reference;

pub use check::Checker;
pub use reference::{check_domain, Reference, ReferenceError, DOCKER_HUB};

use serde::Serialize;
use std::fmt;
use utoipa::ToSchema;

/// Docker's image manifest (schema 2).
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker's manifest list: one manifest per platform.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// The OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The OCI image index: one manifest per platform.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Whether a manifest of `media_type` lists other manifests (one per platform).
pub fn is_index(media_type: &str) -> bool {
    media_type == DOCKER_MANIFEST_LIST || media_type == OCI_INDEX
}

/// How to reach one registry: the scheme, and credentials when it has any for overcast.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Speak plain HTTP rather than HTTPS (a registry on loopback or a trusted network).
    pub insecure: bool,
    pub credentials: Option<Credentials>,
}

/// A user name and password (or access token) for basic authentication, at the registry or
/// at its token service. Its `Debug` does not show the password.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// What a registry said of an image reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ImageCheck {
    /// The reference, normalized: `docker.io/library/nginx:alpine`.
    pub reference: String,
    /// The host whose API was asked: `registry-1.docker.io` for Docker Hub.
    pub registry: String,
    /// The repository in the registry: `library/nginx`.
    pub repository: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Whether the registry has a manifest for the reference.
    pub exists: bool,
    /// The manifest's digest (`Docker-Content-Digest`, else computed from its bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The manifest's media type, e.g. `application/vnd.oci.image.index.v1+json`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// For an index (or Docker manifest list): the platforms it has a manifest for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platforms: Option<Vec<Platform>>,
}

/// One platform of a multi-platform image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Platform {
    /// `linux`, `windows`, ...
    pub os: String,
    /// `amd64`, `arm64`, ...
    pub architecture: String,
    /// `v8` of `arm64`, `v7` of `arm`, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// The platform's own manifest.
    pub digest: String,
}

/// `linux/arm64/v8`.
impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// Why a check could not tell whether an image exists. Absence is not an error: it is an
/// [`ImageCheck`] with `exists: false`. (A reference that does not parse is a
/// [`ReferenceError`], before any check.)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// No connection: DNS, a refused connection, TLS.
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url} did not answer in time")]
    TimedOut { url: String },
    /// The registry (or its token service) throttles or is down for now (429, 503).
    #[error("{url} is not serving now (HTTP {status}); try again later")]
    Busy {
        url: String,
        status: u16,
        retry_after_secs: Option<u64>,
    },
    /// A failure of the registry or its token service (5xx), or an answer overcast cannot
    /// use.
    #[error("{url} failed: {reason}")]
    Failed { url: String, reason: String },
    /// The registry refused overcast access to the repository.
    #[error("{0}")]
    Denied(String),
    /// The HTTP client could not be made.
    #[error("cannot make an HTTP client: {0}")]
    Client(String),
}
