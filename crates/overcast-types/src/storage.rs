//! Object storage: buckets, and the bucket-name rules of S3.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

use crate::Error;

/// A bucket of an environment's object store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Bucket {
    pub name: String,
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// `enabled`, `suspended`, or absent when never enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versioning: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
}

crate::owned_by_tags!(Bucket);

/// Checks a bucket name against S3's rules, naming the rule it breaks.
pub fn validate_bucket_name(name: &str) -> Result<(), Error> {
    let bad = |rule: &str| {
        Err(Error::invalid(
            "name",
            format!("`{name}` is not a valid bucket name: {rule}"),
        ))
    };
    if !(3..=63).contains(&name.len()) {
        return bad("it must have 3 to 63 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
    {
        return bad("only lowercase letters, digits, dots and hyphens are allowed");
    }
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !edge_ok(name.chars().next()) || !edge_ok(name.chars().last()) {
        return bad("it must begin and end with a letter or digit");
    }
    if name.contains("..") {
        return bad("it must not have two dots in a row");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return bad("it must not look like an IP address");
    }
    for prefix in ["xn--", "sthree-", "amzn-s3-demo-"] {
        if name.starts_with(prefix) {
            return bad(&format!("it must not start with `{prefix}`"));
        }
    }
    for suffix in ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"] {
        if name.ends_with(suffix) {
            return bad(&format!("it must not end with `{suffix}`"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_s3_rules() {
        for good in ["logs", "my-bucket.eu", "a1b", "0-data-9"] {
            validate_bucket_name(good).unwrap();
        }
        for (bad, rule) in [
            ("ab", "3 to 63"),
            ("Bad_Name", "lowercase"),
            ("-edge", "begin and end"),
            ("a..b", "two dots"),
            ("192.168.1.1", "IP address"),
            ("xn--punycode", "xn--"),
            ("data-s3alias", "-s3alias"),
        ] {
            let err = validate_bucket_name(bad).unwrap_err();
            assert_eq!(err.field.as_deref(), Some("name"));
            assert!(err.message.contains(rule), "{bad}: {}", err.message);
        }
    }
}
