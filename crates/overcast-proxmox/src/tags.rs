//! Tags (and so stages and owners) as PVE tags: each overcast `key=value` is one PVE tag
//! `KEY-VALUE`, both written in PVE's tag alphabet (lower-case letters and digits, every
//! other byte `_xx`), so any key and value survive the round trip.

use async_trait::async_trait;
use overcast_provider::{ProviderError, ProviderErrorKind, ResourceKind, Tags};
use serde_json::Value;
use std::collections::BTreeMap;

use crate::ProxmoxProvider;

/// A text in PVE's tag alphabet: lower-case letters and digits as they are, every other
/// byte `_xx` (hex), so `-` never appears and can join a key to its value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("_{b:02x}"),
        })
        .collect()
}

fn decode(text: &str) -> Option<String> {
    let mut bytes = Vec::new();
    let mut chars = text.bytes();
    while let Some(b) = chars.next() {
        if b == b'_' {
            let hex = [chars.next()?, chars.next()?];
            bytes.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            bytes.push(b);
        }
    }
    String::from_utf8(bytes).ok()
}

/// overcast's tags as one PVE tag each, `KEY-VALUE`.
pub fn to_pve_tags(tags: &BTreeMap<String, String>) -> String {
    tags.iter()
        .map(|(k, v)| format!("{}-{}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join(";")
}

/// PVE's tags as overcast's: `KEY-VALUE` decoded; a tag someone set by hand (`web`) is a
/// key with an empty value.
pub fn from_pve_tags(tags: &str) -> BTreeMap<String, String> {
    tags.split([';', ',', ' '])
        .filter(|t| !t.is_empty())
        .map(|tag| {
            let decoded = tag
                .split_once('-')
                .and_then(|(k, v)| Some((decode(k)?, decode(v)?)));
            decoded.unwrap_or_else(|| (tag.to_string(), String::new()))
        })
        .collect()
}

impl ProxmoxProvider {
    /// Changes the tags of VMs (instances) or templates (images), one config write each.
    async fn change_tags(
        &self,
        kind: ResourceKind,
        ids: &[String],
        change: impl Fn(&mut BTreeMap<String, String>),
    ) -> Result<(), ProviderError> {
        let (templates, code, what) = match kind {
            ResourceKind::Instance => (false, "instance_not_found", "VM"),
            ResourceKind::Image => (true, "image_not_found", "template"),
            _ => return Err(crate::unsupported(&format!("tagging a {}", kind.name()))),
        };
        let guests = self.guests().await?;
        for id in ids {
            let guest = guests
                .iter()
                .find(|g| &g.id() == id && g.template == templates)
                .ok_or_else(|| {
                    ProviderError::new(
                        ProviderErrorKind::NotFound,
                        code,
                        format!("PVE has no {what} {id}"),
                    )
                })?;
            let mut tags = guest.tags.clone();
            change(&mut tags);
            let form = if tags.is_empty() {
                [("delete", "tags".to_string())]
            } else {
                [("tags", to_pve_tags(&tags))]
            };
            let _: Value = self
                .client
                .put(&format!("/nodes/{}/qemu/{id}/config", guest.node), &form)
                .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Tags for ProxmoxProvider {
    async fn set_tags(
        &self,
        _region: &str,
        kind: ResourceKind,
        ids: &[String],
        tags: &BTreeMap<String, String>,
    ) -> Result<(), ProviderError> {
        self.change_tags(kind, ids, |existing| {
            existing.extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())))
        })
        .await
    }

    async fn remove_tags(
        &self,
        _region: &str,
        kind: ResourceKind,
        ids: &[String],
        keys: &[String],
    ) -> Result<(), ProviderError> {
        self.change_tags(kind, ids, |existing| {
            existing.retain(|k, _| !keys.contains(k))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_through_pves_alphabet() {
        let tags = BTreeMap::from([
            ("overcast:org".to_string(), "acme".to_string()),
            ("stage".to_string(), "dev".to_string()),
            ("Team".to_string(), "web-1".to_string()),
        ]);
        let written = to_pve_tags(&tags);
        assert_eq!(written, "_54eam-web_2d1;overcast_3aorg-acme;stage-dev");
        assert!(written
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-;".contains(c)));
        assert_eq!(from_pve_tags(&written), tags);
        let by_hand = from_pve_tags("web;stage-prod");
        assert_eq!(by_hand["web"], "");
        assert_eq!(by_hand["stage"], "prod");
    }
}
