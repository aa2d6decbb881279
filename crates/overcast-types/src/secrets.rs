//! Secrets and parameters: what is known of them without their values, their values apart
//! (so a value is only ever in a type that says it is one), and the rules for their names.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use utoipa::ToSchema;

use crate::Error;

/// A secret's description: never its value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Secret {
    pub name: String,
    /// The backend's id (an ARN on AWS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_changed_at: Option<String>,
    /// When a secret scheduled for deletion goes for good; while set, it can be restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_date: Option<String>,
    #[serde(default)]
    pub rotation_enabled: bool,
    /// Version ids and their stages (`AWSCURRENT`, `AWSPREVIOUS`, ...).
    #[serde(default)]
    pub versions: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
}

crate::owned_by_tags!(Secret);

/// A secret's or parameter's value. Its `Debug` shows no bytes, so it cannot reach a log
/// by accident.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretData {
    Text(String),
    Binary(Vec<u8>),
}

impl fmt::Debug for SecretData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretData::Text(t) => write!(f, "Text(<{} bytes>)", t.len()),
            SecretData::Binary(b) => write!(f, "Binary(<{} bytes>)", b.len()),
        }
    }
}

/// One version of a secret's value, as its own route answers it. Its `Debug` shows no
/// value.
#[derive(Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SecretValue {
    pub name: String,
    pub version_id: String,
    pub stages: Vec<String>,
    /// The value, when it is text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The value, base64-encoded, when it is binary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_base64: Option<String>,
}

impl SecretValue {
    pub fn new(name: String, version_id: String, stages: Vec<String>, data: SecretData) -> Self {
        let (value, value_base64) = match data {
            SecretData::Text(text) => (Some(text), None),
            SecretData::Binary(bytes) => {
                use base64::Engine;
                let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
                (None, Some(encoded))
            }
        };
        SecretValue {
            name,
            version_id,
            stages,
            value,
            value_base64,
        }
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretValue")
            .field("name", &self.name)
            .field("version_id", &self.version_id)
            .field("stages", &self.stages)
            .finish_non_exhaustive()
    }
}

/// A parameter's type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum ParameterType {
    #[default]
    String,
    StringList,
    /// Encrypted with a KMS key; its value is shown only when asked for, to operators.
    SecureString,
}

impl ParameterType {
    pub fn as_str(self) -> &'static str {
        match self {
            ParameterType::String => "String",
            ParameterType::StringList => "StringList",
            ParameterType::SecureString => "SecureString",
        }
    }

    pub fn parse(s: &str) -> Option<ParameterType> {
        [
            ParameterType::String,
            ParameterType::StringList,
            ParameterType::SecureString,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

/// A parameter. Its name here is the caller's: below its org's `/{org}` root. Its `Debug`
/// shows no value.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Parameter {
    pub name: String,
    /// The backend's id (an ARN on AWS), where a description gives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    #[serde(rename = "type")]
    pub kind: ParameterType,
    pub version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified_at: Option<String>,
    /// The value: always for `String` and `StringList`, for a `SecureString` only when
    /// asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

impl fmt::Debug for Parameter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Parameter")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("version", &self.version)
            .field("has_value", &self.value.is_some())
            .finish_non_exhaustive()
    }
}

/// Checks a secret's name as Secrets Manager does: 1–512 of letters, digits and `/_+=.@-`.
pub fn validate_secret_name(field: &str, name: &str) -> Result<(), Error> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c);
    if name.is_empty() || name.len() > 512 || !name.chars().all(allowed) {
        return Err(Error::invalid(
            field,
            "must be 1 to 512 letters, digits or /_+=.@- characters",
        ));
    }
    Ok(())
}

/// Checks a parameter's name or path below an org's root: starts with `/`, segments of
/// letters, digits and `_.-`, at most 15 levels and 1,011 characters (SSM's 1,011 less
/// room for the org).
pub fn validate_parameter_path(field: &str, path: &str, is_prefix: bool) -> Result<(), Error> {
    let invalid = |why: &str| Err(Error::invalid(field, why));
    if !path.starts_with('/') {
        return invalid("must start with /");
    }
    if path.len() > 900 {
        return invalid("must be at most 900 characters");
    }
    let segments: Vec<&str> = path[1..].split('/').collect();
    let trailing = is_prefix && path.ends_with('/');
    let named = if trailing {
        &segments[..segments.len() - 1]
    } else {
        &segments[..]
    };
    if named.len() > 14 {
        return invalid("must have at most 14 levels");
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_.-".contains(c);
    let empty_root = is_prefix && path == "/";
    // `.` and `..` mean nothing to the backend, but they read as a way out of a root.
    let bad = |s: &&str| s.is_empty() || *s == "." || *s == ".." || !s.chars().all(allowed);
    if !empty_root && named.iter().any(bad) {
        return invalid(
            "must be /-separated segments of letters, digits and _.- characters (not . or ..)",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths_follow_the_backend_rules() {
        assert!(validate_secret_name("name", "prod/db-password").is_ok());
        assert!(validate_secret_name("name", "").is_err());
        assert!(validate_secret_name("name", "has space").is_err());
        assert!(validate_parameter_path("name", "/app/db/url", false).is_ok());
        assert!(validate_parameter_path("path", "/", true).is_ok());
        assert!(validate_parameter_path("path", "/app/", true).is_ok());
        assert!(validate_parameter_path("name", "app", false).is_err());
        assert!(validate_parameter_path("name", "/app//x", false).is_err());
        assert!(validate_parameter_path("name", "/app/", false).is_err());
        assert!(validate_parameter_path("name", "/a b", false).is_err());
        assert!(validate_parameter_path("name", "/../other/db", false).is_err());
    }

    #[test]
    fn a_value_does_not_show_in_debug_output() {
        let text = format!("{:?}", SecretData::Text("hunter2".into()));
        assert!(!text.contains("hunter2"), "{text}");
    }
}
