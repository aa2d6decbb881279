//! Image verification: whether a container image reference exists in its registry, asked
//! with the access the config gives that registry (`[registries."HOST"]`). A read any
//! token may make; nothing is recorded, and credentials are read when a check needs them
//! and never logged.

use overcast_registry::{Access, Checker, Credentials, Reference, RegistryError};
use overcast_types::{Error, ErrorKind, Role};

use crate::auth::Principal;
use crate::config::RegistryConfig;
use crate::Core;

pub use overcast_registry::{ImageCheck, Platform};

/// How long a caller is told to wait before asking a busy or unreachable registry again.
const RETRY_AFTER_SECS: u64 = 5;

impl Core {
    /// What the registry of `image` says of it: present with its digest and media type (and
    /// an index's platforms), or a 404 when it is absent. A bad reference is a 400 naming
    /// `image`; a registry that cannot be reached, fails or throttles is a 503, 502 or 504,
    /// and one that denies overcast access a 403.
    pub async fn check_image(
        &self,
        principal: &Principal,
        image: &str,
    ) -> Result<ImageCheck, Error> {
        principal.require(Role::Viewer)?;
        let reference =
            Reference::parse(image).map_err(|e| Error::invalid("image", e.to_string()))?;
        let access = match self.config.registries.get(reference.domain()) {
            Some(config) => access(reference.domain(), config)?,
            None => Access::default(),
        };
        let check = Checker::new()
            .map_err(registry_error)?
            .check(&reference, &access)
            .await
            .map_err(registry_error)?;
        if check.exists {
            Ok(check)
        } else {
            Err(Error::new(
                ErrorKind::NotFound,
                "image_not_found",
                format!(
                    "image `{}` not found in {}",
                    check.reference, check.registry
                ),
            ))
        }
    }
}

/// The access a registry's settings give, its password read now (so a rotated one is
/// used at once). A password that cannot be read is a fault of this server's setup.
fn access(domain: &str, config: &RegistryConfig) -> Result<Access, Error> {
    let unreadable = |what: String| {
        Error::new(
            ErrorKind::Internal,
            "registry_credentials_unreadable",
            format!("the password of registry `{domain}` cannot be read: {what}"),
        )
    };
    let password =
        match (&config.password_file, &config.password_env) {
            (Some(path), _) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| unreadable(format!("{}: {e}", path.display())))?;
                let text = text.strip_suffix('\n').unwrap_or(&text);
                Some(text.strip_suffix('\r').unwrap_or(text).to_string())
            }
            (None, Some(variable)) => Some(std::env::var(variable).map_err(|_| {
                unreadable(format!("the environment variable {variable} is not set"))
            })?),
            (None, None) => None,
        };
    let credentials = match (&config.username, password) {
        (Some(username), Some(password)) => Some(Credentials {
            username: username.clone(),
            password,
        }),
        _ => None,
    };
    Ok(Access {
        insecure: config.insecure,
        credentials,
    })
}

/// A registry's failure as the API shows it: unreachable or busy 503, timed out 504, failed
/// 502, access denied 403.
fn registry_error(e: RegistryError) -> Error {
    let message = e.to_string();
    match e {
        RegistryError::Unreachable { .. } => {
            Error::unavailable("registry_unreachable", message, RETRY_AFTER_SECS)
        }
        RegistryError::Busy {
            retry_after_secs, ..
        } => Error::unavailable(
            "registry_busy",
            message,
            retry_after_secs.unwrap_or(RETRY_AFTER_SECS),
        ),
        RegistryError::TimedOut { .. } => {
            Error::new(ErrorKind::BackendTimeout, "registry_timeout", message)
        }
        RegistryError::Failed { .. } => {
            Error::new(ErrorKind::BackendRefused, "registry_failed", message)
        }
        RegistryError::Denied(_) => Error::new(ErrorKind::Forbidden, "registry_denied", message),
        RegistryError::Client(_) => Error::internal(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use overcast_provider::ProviderFactories;

    fn problems(text: &str) -> Vec<String> {
        match Config::parse("t.toml", text, &ProviderFactories::new()) {
            Ok(_) => vec![],
            Err(e) => e.problems.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn registry_settings_are_checked_with_clear_messages() {
        let good = r#"
[registries."registry.example.com:5000"]
insecure = true
username = "ci"
password_file = "/etc/overcast/registry-password"

[registries."docker.io"]
username = "ci"
password_env = "DOCKER_HUB_TOKEN"

[registries."localhost"]
insecure = true
"#;
        assert_eq!(problems(good), Vec::<String>::new());
        let config = Config::parse("t.toml", good, &ProviderFactories::new()).unwrap();
        assert!(config.registries["registry.example.com:5000"].insecure);

        let text = r#"
[registries."ghcr.io"]
username = "ci"
password = "hunter2"

[registries."quay.io"]
username = "ci"

[registries."a.example"]
password_env = "X"

[registries."b.example"]
username = "ci"
password_file = "/p"
password_env = "P"

[registries.myregistry]
insecure = true

[registries."index.docker.io"]
insecure = false

[registries."bad_host:x"]
insecure = true

[registries."c.example"]
username = "ci"
password_env = ""
"#;
        let found = problems(text);
        let expected = [
            r#"registries."a.example": a password needs a username"#,
            r#"registries."b.example": give password_file or password_env, not both"#,
            r#"registries."bad_host:x": `bad_host` is not a registry host: letters, digits and inner dashes between dots"#,
            r#"registries."c.example".password_env: must name an environment variable"#,
            r#"registries."ghcr.io".password: a password is never written in the config: give password_file or password_env"#,
            r#"registries."index.docker.io": Docker Hub is named `docker.io` here, as in image references"#,
            r#"registries."myregistry": `myregistry` cannot name a registry in an image reference: a registry host has a dot or a port, or is localhost"#,
            r#"registries."quay.io".username: needs a password: password_file or password_env"#,
        ];
        for problem in expected {
            assert!(
                found.iter().any(|f| f.ends_with(problem)),
                "{problem}\nnot in\n{}",
                found.join("\n")
            );
        }
        assert_eq!(found.len(), expected.len(), "{}", found.join("\n"));
        // The refused password is not kept, so no printout of the config can show it.
        let parsed: Config = toml::from_str(text).unwrap();
        assert!(!format!("{parsed:?}").contains("hunter2"));
        assert!(!toml::to_string(&parsed).unwrap().contains("hunter2"));
    }

    #[test]
    fn access_reads_the_password_when_asked_and_only_then() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("password");
        std::fs::write(&file, "s3cret\r\n").unwrap();
        let config = RegistryConfig {
            insecure: true,
            username: Some("ci".into()),
            password_file: Some(file.clone()),
            ..RegistryConfig::default()
        };
        let given = access("r.example", &config).unwrap();
        assert!(given.insecure);
        let credentials = given.credentials.unwrap();
        assert_eq!(
            (credentials.username.as_str(), credentials.password.as_str()),
            ("ci", "s3cret")
        );
        assert!(!format!("{credentials:?}").contains("s3cret"));

        std::fs::remove_file(&file).unwrap();
        let e = access("r.example", &config).unwrap_err();
        assert_eq!(e.code, "registry_credentials_unreadable");
        assert!(
            e.message
                .starts_with("the password of registry `r.example` cannot be read: "),
            "{}",
            e.message
        );

        let from_env = RegistryConfig {
            username: Some("ci".into()),
            password_env: Some("OVERCAST_IMAGE_CHECKS_TEST_UNSET_VARIABLE".into()),
            ..RegistryConfig::default()
        };
        let e = access("r.example", &from_env).unwrap_err();
        assert!(e.message.ends_with(
            "the environment variable OVERCAST_IMAGE_CHECKS_TEST_UNSET_VARIABLE is not set"
        ));
        assert!(access("r.example", &RegistryConfig::default())
            .unwrap()
            .credentials
            .is_none());
    }

    #[test]
    fn registry_faults_are_502_503_504_or_403_never_500() {
        let url = || "https://r.example/v2/a/manifests/1".to_string();
        let kind = |e: RegistryError| registry_error(e).kind;
        assert_eq!(
            kind(RegistryError::Unreachable {
                url: url(),
                reason: "refused".into()
            }),
            ErrorKind::BackendUnavailable
        );
        let busy = registry_error(RegistryError::Busy {
            url: url(),
            status: 429,
            retry_after_secs: Some(30),
        });
        assert_eq!(
            (busy.kind, busy.retry_after_secs),
            (ErrorKind::BackendUnavailable, Some(30))
        );
        assert_eq!(
            kind(RegistryError::TimedOut { url: url() }),
            ErrorKind::BackendTimeout
        );
        assert_eq!(
            kind(RegistryError::Failed {
                url: url(),
                reason: "HTTP 500".into()
            }),
            ErrorKind::BackendRefused
        );
        assert_eq!(
            kind(RegistryError::Denied("no".into())),
            ErrorKind::Forbidden
        );
    }
}
