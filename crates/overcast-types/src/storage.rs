//! Object storage: buckets and objects, S3's bucket-name and key rules, and byte ranges.

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

/// One object in a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ObjectSummary {
    pub key: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
}

/// One page of a bucket's objects. With a delimiter, keys that share a prefix up to the
/// delimiter are rolled up into `prefixes`, like directories.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ObjectListing {
    pub items: Vec<ObjectSummary>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// An object's description, without its bytes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    /// User metadata (`x-overcast-meta-*` headers on upload and download).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// How many parts an upload through overcast was sent in (1: a single request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<u32>,
}

/// A presigned link: anyone holding it may do `method` on the object until `expires_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PresignedUrl {
    pub method: String,
    pub url: String,
    pub expires_at: String,
}

/// One byte range of an HTTP `Range` header. Only single ranges are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=FIRST-LAST`, both included.
    Span { first: u64, last: u64 },
    /// `bytes=FIRST-`: from FIRST to the end.
    From { first: u64 },
    /// `bytes=-N`: the last N bytes.
    Last { length: u64 },
}

impl ByteRange {
    /// Parses a `Range` header value, naming what is wrong with it.
    pub fn parse(value: &str) -> Result<ByteRange, Error> {
        let bad = |why: &str| {
            Err(Error::invalid(
                "Range",
                format!("`{value}` is not a byte range: {why}"),
            ))
        };
        let Some(spec) = value.trim().strip_prefix("bytes=") else {
            return bad("it must start with `bytes=`");
        };
        if spec.contains(',') {
            return bad("only one range per request is served");
        }
        let Some((first, last)) = spec.split_once('-') else {
            return bad("expected FIRST-LAST, FIRST- or -LENGTH");
        };
        let number = |s: &str| s.trim().parse::<u64>().ok();
        match (first.trim().is_empty(), last.trim().is_empty()) {
            (true, true) => bad("expected FIRST-LAST, FIRST- or -LENGTH"),
            (true, false) => match number(last) {
                Some(0) => bad("a suffix range must ask for at least one byte"),
                Some(length) => Ok(ByteRange::Last { length }),
                None => bad("the length is not a number"),
            },
            (false, true) => match number(first) {
                Some(first) => Ok(ByteRange::From { first }),
                None => bad("the first byte is not a number"),
            },
            (false, false) => match (number(first), number(last)) {
                (Some(first), Some(last)) if first <= last => Ok(ByteRange::Span { first, last }),
                (Some(_), Some(_)) => bad("the last byte comes before the first"),
                _ => bad("the bounds are not numbers"),
            },
        }
    }

    /// The header value, as S3 takes it.
    pub fn header_value(&self) -> String {
        match self {
            ByteRange::Span { first, last } => format!("bytes={first}-{last}"),
            ByteRange::From { first } => format!("bytes={first}-"),
            ByteRange::Last { length } => format!("bytes=-{length}"),
        }
    }
}

/// Checks an object key: 1 to 1,024 bytes of UTF-8 without control characters, which
/// S3-compatible stores handle differently.
pub fn validate_object_key(field: &str, key: &str) -> Result<(), Error> {
    if key.is_empty() || key.len() > 1024 {
        return Err(Error::invalid(
            field,
            format!(
                "an object key has 1 to 1,024 bytes; this one has {}",
                key.len()
            ),
        ));
    }
    if key.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            "an object key must not hold control characters",
        ));
    }
    Ok(())
}

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
    fn byte_ranges_parse_as_http_says_and_bad_ones_name_the_header() {
        assert_eq!(
            ByteRange::parse("bytes=0-99").unwrap(),
            ByteRange::Span { first: 0, last: 99 }
        );
        assert_eq!(
            ByteRange::parse("bytes=100-").unwrap(),
            ByteRange::From { first: 100 }
        );
        assert_eq!(
            ByteRange::parse("bytes=-500").unwrap(),
            ByteRange::Last { length: 500 }
        );
        for (bad, why) in [
            ("0-99", "bytes="),
            ("bytes=0-1,5-6", "one range"),
            ("bytes=9-3", "before the first"),
            ("bytes=-", "expected"),
            ("bytes=-0", "at least one"),
            ("bytes=a-b", "not numbers"),
        ] {
            let err = ByteRange::parse(bad).unwrap_err();
            assert_eq!(err.field.as_deref(), Some("Range"));
            assert!(err.message.contains(why), "{bad}: {}", err.message);
        }
        for range in ["bytes=0-99", "bytes=100-", "bytes=-500"] {
            assert_eq!(ByteRange::parse(range).unwrap().header_value(), range);
        }
    }

    #[test]
    fn object_keys_are_checked() {
        validate_object_key("key", "logs/2026/11/22.gz").unwrap();
        assert!(validate_object_key("key", "").is_err());
        assert!(validate_object_key("key", &"k".repeat(1025)).is_err());
        let err = validate_object_key("source.key", "a\nb").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("source.key"));
    }

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
