//! Image references read as docker/distribution reads them (`reference.ParseNormalizedNamed`):
//! `nginx` is `docker.io/library/nginx:latest`, a first path component with a dot or a port
//! (or `localhost`) names the registry, and a digest names the manifest exactly.

use std::fmt;

/// Docker Hub's name in references.
pub const DOCKER_HUB: &str = "docker.io";

/// Where Docker Hub's registry API answers: not at `docker.io` itself.
const DOCKER_HUB_REGISTRY: &str = "registry-1.docker.io";

/// The tag a reference without tag or digest means.
const DEFAULT_TAG: &str = "latest";

/// The longest name (registry and repository) distribution accepts.
const MAX_NAME: usize = 255;

/// The longest tag distribution accepts.
const MAX_TAG: usize = 128;

/// A parsed, normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    domain: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// Why a text is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not an image reference: {reason}")]
pub struct ReferenceError {
    text: String,
    reason: String,
}

impl ReferenceError {
    fn new(text: &str, reason: impl Into<String>) -> Self {
        ReferenceError {
            text: text.into(),
            reason: reason.into(),
        }
    }
}

impl Reference {
    /// Parses `[registry/]repository[:tag][@digest]`. Without a registry the image is Docker
    /// Hub's (one-component names under `library/`); without tag or digest the tag is
    /// `latest`. A digest is kept beside a tag and is what gets checked.
    pub fn parse(text: &str) -> Result<Reference, ReferenceError> {
        let refuse = |reason: &str| Err(ReferenceError::new(text, reason));
        if text.is_empty() {
            return refuse("it is empty");
        }
        if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return refuse("a 64-hex image id names a local image, not one in a registry");
        }
        let (named, digest) = match text.split_once('@') {
            Some((named, digest)) => {
                check_digest(digest).map_err(|reason| ReferenceError::new(text, reason))?;
                (named, Some(digest.to_string()))
            }
            None => (text, None),
        };
        // A colon after the last slash starts the tag; one before it is a registry's port.
        let last_slash = named.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match named[last_slash..].rfind(':') {
            Some(i) => (&named[..last_slash + i], Some(&named[last_slash + i + 1..])),
            None => (named, None),
        };
        if let Some(tag) = tag {
            check_tag(tag).map_err(|reason| ReferenceError::new(text, reason))?;
        }
        let (domain, repository) = split_domain(name);
        check_domain(&domain).map_err(|reason| ReferenceError::new(text, reason))?;
        check_repository(&repository).map_err(|reason| ReferenceError::new(text, reason))?;
        if domain.len() + 1 + repository.len() > MAX_NAME {
            return refuse(&format!("the name is longer than {MAX_NAME} characters"));
        }
        let tag = match (tag, &digest) {
            (Some(tag), _) => Some(tag.to_string()),
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            domain,
            repository,
            tag,
            digest,
        })
    }

    /// The registry as references name it (`docker.io`, `ghcr.io`, `localhost:5000`): the key
    /// of its settings.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Where the registry's API answers: the domain, except Docker Hub's.
    pub fn registry_host(&self) -> &str {
        if self.domain == DOCKER_HUB {
            DOCKER_HUB_REGISTRY
        } else {
            &self.domain
        }
    }

    /// The repository in the registry, e.g. `library/nginx`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// What the manifest request names: the digest when there is one, else the tag.
    pub fn manifest_reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or(DEFAULT_TAG)
    }
}

/// `docker.io/library/nginx:alpine`, `host:5000/app@sha256:…`.
impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Splits a name into its registry and repository as distribution's `splitDockerDomain`:
/// the first component is a registry when it holds a dot or a colon, is `localhost`, or has
/// upper case (repositories cannot); otherwise the name is Docker Hub's.
fn split_domain(name: &str) -> (String, String) {
    let (domain, rest) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_lowercase() != first =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DOCKER_HUB.to_string(), name.to_string()),
    };
    let domain = if domain == "index.docker.io" {
        DOCKER_HUB.to_string()
    } else {
        domain
    };
    let repository = if domain == DOCKER_HUB && !rest.contains('/') {
        format!("library/{rest}")
    } else {
        rest
    };
    (domain, repository)
}

/// Whether `domain` can name a registry in a reference: `host[:port]`, the host a DNS name,
/// an IPv4 address or a bracketed IPv6 address.
pub fn check_domain(domain: &str) -> Result<(), String> {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("`{domain}` opens an IPv6 address it does not close"))?;
        if inside.is_empty() || !inside.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return Err(format!("`{domain}` is not a bracketed IPv6 address"));
        }
        match after {
            "" => (None, None),
            port => (
                None,
                Some(port.strip_prefix(':').ok_or_else(|| {
                    format!("`{domain}`: only a port may follow an IPv6 address")
                })?),
            ),
        }
    } else {
        match domain.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(domain), None),
        }
    };
    if let Some(host) = host {
        let component = |c: &str| {
            !c.is_empty()
                && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-')
                && !c.starts_with('-')
                && !c.ends_with('-')
        };
        if !host.split('.').all(component) {
            return Err(format!(
                "`{host}` is not a registry host: letters, digits and inner dashes between dots"
            ));
        }
    }
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("`{port}` is not a port number"));
        }
    }
    Ok(())
}

/// A repository: `/`-separated components of lower-case letters and digits, joined inside by
/// `.`, `_`, `__` or dashes.
fn check_repository(repository: &str) -> Result<(), String> {
    if repository.is_empty() {
        return Err("it names no repository".into());
    }
    if repository.chars().any(|c| c.is_ascii_uppercase()) {
        return Err("repository names are lower case".into());
    }
    for component in repository.split('/') {
        if !path_component(component) {
            return Err(format!(
                "`{component}` is not a repository path component: lower-case letters and \
                 digits, joined by `.`, `_`, `__` or dashes"
            ));
        }
    }
    Ok(())
}

fn path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !bytes.first().is_some_and(alnum) || !bytes.last().is_some_and(alnum) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(&bytes[i]) {
            i += 1;
            continue;
        }
        // A separator between two alphanumerics: `.`, `_`, `__`, or any run of dashes.
        let start = i;
        while i < bytes.len() && !alnum(&bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let dashes = separator.bytes().all(|b| b == b'-');
        if !(dashes || matches!(separator, "." | "_" | "__")) {
            return false;
        }
    }
    true
}

/// A tag: a word character, then up to 127 word characters, dots and dashes.
fn check_tag(tag: &str) -> Result<(), String> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = tag.chars();
    let well_formed =
        chars.next().is_some_and(word) && chars.all(|c| word(c) || matches!(c, '.' | '-'));
    if !well_formed {
        return Err(format!(
            "`{tag}` is not a tag: letters, digits and `_`, then also `.` and `-`"
        ));
    }
    if tag.len() > MAX_TAG {
        return Err(format!("the tag is longer than {MAX_TAG} characters"));
    }
    Ok(())
}

/// A digest: `sha256:` and 64 lower-case hex digits (or sha384's 96, sha512's 128).
fn check_digest(digest: &str) -> Result<(), String> {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return Err(format!(
            "`{digest}` is not a digest like sha256:<64 hex digits>"
        ));
    };
    let length = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        other => {
            return Err(format!(
                "`{other}` is not a digest algorithm (sha256, sha384, sha512)"
            ))
        }
    };
    let lower_hex = hex
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if hex.len() != length || !lower_hex {
        return Err(format!(
            "a {algorithm} digest is {length} lower-case hex digits"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> (String, String, String, Option<String>, Option<String>) {
        let r = Reference::parse(text).unwrap_or_else(|e| panic!("{e}"));
        (
            r.to_string(),
            r.registry_host().to_string(),
            r.repository().to_string(),
            r.tag().map(str::to_string),
            r.digest().map(str::to_string),
        )
    }

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn docker_hub_short_names_are_normalized() {
        let latest = Some("latest".to_string());
        assert_eq!(
            parsed("nginx"),
            (
                "docker.io/library/nginx:latest".into(),
                "registry-1.docker.io".into(),
                "library/nginx".into(),
                latest.clone(),
                None
            )
        );
        assert_eq!(parsed("nginx:alpine").0, "docker.io/library/nginx:alpine");
        assert_eq!(parsed("bitnami/redis").0, "docker.io/bitnami/redis:latest");
        assert_eq!(
            parsed("docker.io/nginx").0,
            "docker.io/library/nginx:latest"
        );
        assert_eq!(
            parsed("index.docker.io/nginx").0,
            "docker.io/library/nginx:latest"
        );
        assert_eq!(parsed("docker.io/library/nginx").2, "library/nginx");
        assert_eq!(Reference::parse("nginx").unwrap().domain(), "docker.io");
    }

    #[test]
    fn any_registry_host_with_a_dot_a_port_or_localhost() {
        let (text, host, repo, tag, _) = parsed("ghcr.io/org/app:1.2");
        assert_eq!(
            (text.as_str(), host.as_str(), repo.as_str()),
            ("ghcr.io/org/app:1.2", "ghcr.io", "org/app")
        );
        assert_eq!(tag.as_deref(), Some("1.2"));
        let (text, host, repo, tag, _) = parsed("localhost:5000/app:tag");
        assert_eq!(
            (text.as_str(), host.as_str(), repo.as_str()),
            ("localhost:5000/app:tag", "localhost:5000", "app")
        );
        assert_eq!(tag.as_deref(), Some("tag"));
        assert_eq!(parsed("localhost/app").1, "localhost");
        assert_eq!(parsed("127.0.0.1:5000/a/b/c").2, "a/b/c");
        assert_eq!(parsed("[::1]:5000/app:v1").1, "[::1]:5000");
        assert_eq!(
            parsed("registry.example.com:5000/team/app").3.as_deref(),
            Some("latest")
        );
        // No dot, no port, lower case: a Docker Hub organisation, not a host.
        assert_eq!(parsed("myorg/app").0, "docker.io/myorg/app:latest");
    }

    #[test]
    fn a_digest_is_what_gets_checked() {
        let (text, host, repo, tag, digest) = parsed(&format!("host.example/app@{DIGEST}"));
        assert_eq!(text, format!("host.example/app@{DIGEST}"));
        assert_eq!(
            (host.as_str(), repo.as_str(), tag),
            ("host.example", "app", None)
        );
        assert_eq!(digest.as_deref(), Some(DIGEST));
        let both = Reference::parse(&format!("nginx:alpine@{DIGEST}")).unwrap();
        assert_eq!(both.tag(), Some("alpine"));
        assert_eq!(both.manifest_reference(), DIGEST);
        assert_eq!(
            Reference::parse("nginx:alpine")
                .unwrap()
                .manifest_reference(),
            "alpine"
        );
    }

    #[test]
    fn malformed_references_say_why() {
        let reason = |text: &str| Reference::parse(text).unwrap_err().to_string();
        for (text, why) in [
            ("", "empty"),
            ("Nginx", "lower case"),
            ("nginx:", "is not a tag"),
            ("nginx:-x", "is not a tag"),
            ("nginx:alpine:3", "is not a repository path component"),
            ("nginx@sha256:abc", "64 lower-case hex"),
            ("nginx@md5:0123", "not a digest algorithm"),
            ("nginx@latest", "not a digest like"),
            (
                &format!("nginx@{}", DIGEST.to_uppercase().replace("SHA", "sha")),
                "lower-case hex",
            ),
            ("ghcr.io/", "names no repository"),
            ("ghcr.io/org//app", "not a repository path component"),
            ("ghcr.io/org/app-", "not a repository path component"),
            ("-bad.io/app", "not a registry host"),
            ("host:port/app", "not a port number"),
            ("[::1/app", "does not close"),
            ("a b", "not a repository path component"),
            (&"0123456789abcdef".repeat(4), "image id"),
            (&format!("nginx:{}", "a".repeat(129)), "longer than 128"),
            (&format!("ghcr.io/{}", "a".repeat(250)), "longer than 255"),
        ] {
            let got = reason(text);
            assert!(got.contains(why), "{text:?}: {got}");
            assert!(
                got.starts_with(&format!("`{text}` is not an image reference")),
                "{got}"
            );
        }
    }

    #[test]
    fn repository_separators_follow_distribution() {
        for good in ["a.b", "a_b", "a__b", "a-b", "a---b", "a1/b2.c3"] {
            assert!(Reference::parse(good).is_ok(), "{good}");
        }
        for bad in ["a..b", "a___b", "a._b", ".a", "a_", "a/-b"] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn registry_hosts_for_settings_keys() {
        for good in [
            "docker.io",
            "localhost",
            "registry.example.com:5000",
            "127.0.0.1:5000",
            "[::1]:5000",
            "[fe80::1]",
        ] {
            assert!(check_domain(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "a..b",
            "host:",
            "host:x",
            "-a.io",
            "a_b.io",
            "[::1]5000",
            "[zz]",
        ] {
            assert!(check_domain(bad).is_err(), "{bad}");
        }
    }
}
