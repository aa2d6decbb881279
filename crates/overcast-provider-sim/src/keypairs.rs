//! Key pairs as the `KeyPairs` capability: names per region, a made key answered with a
//! private key that looks like one but opens nothing, imports checked for OpenSSH's format.

use async_trait::async_trait;
use base64::Engine;
use overcast_provider::{KeyPair, KeyPairs, ProviderError, ProviderErrorKind as Kind};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

use crate::compute::check_tags;
use crate::errors::{invalid, refusal};
use crate::world::World;
use crate::SimProvider;

pub(crate) struct KeyPairRecord {
    id: String,
    fingerprint: String,
    key_type: String,
    tags: BTreeMap<String, String>,
}

impl KeyPairRecord {
    fn to_key_pair(&self, name: &str, region: &str) -> KeyPair {
        KeyPair {
            name: name.to_string(),
            region: region.to_string(),
            id: Some(self.id.clone()),
            fingerprint: Some(self.fingerprint.clone()),
            key_type: Some(self.key_type.clone()),
            tags: self.tags.clone(),
            org: None,
        }
    }
}

/// A fingerprint in EC2's colon-separated hex.
fn fingerprint(material: &[u8]) -> String {
    Sha256::digest(material)[..20]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The key type of an OpenSSH public key line, if it is one EC2 takes.
fn public_key_type(public_key: &str) -> Option<&'static str> {
    let mut parts = public_key.split_whitespace();
    let key_type = match parts.next()? {
        "ssh-rsa" => "rsa",
        "ssh-ed25519" => "ed25519",
        _ => return None,
    };
    let body = parts.next()?;
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()
        .map(|_| key_type)
}

impl SimProvider {
    fn add_key_pair(
        &self,
        world: &mut World,
        region_name: &str,
        name: &str,
        record: impl FnOnce(String) -> KeyPairRecord,
        tags: &BTreeMap<String, String>,
    ) -> Result<KeyPair, ProviderError> {
        let World { ids, regions, .. } = world;
        let region = regions
            .get_mut(region_name)
            .ok_or_else(|| invalid("region", format!("no region {region_name}")))?;
        if name.trim().is_empty() {
            return Err(invalid("name", "a key pair needs a name"));
        }
        if region.key_pairs.contains_key(name) {
            return Err(refusal(
                Kind::Conflict,
                "key_pair_exists",
                "InvalidKeyPair.Duplicate",
                format!("The keypair '{name}' already exists."),
            )
            .with_field("name"));
        }
        check_tags(tags)?;
        let record = record(ids.next("key"));
        let key_pair = record.to_key_pair(name, region_name);
        region.key_pairs.insert(name.to_string(), record);
        Ok(key_pair)
    }
}

#[async_trait]
impl KeyPairs for SimProvider {
    async fn list_key_pairs(&self, region: Option<&str>) -> Result<Vec<KeyPair>, ProviderError> {
        let mut key_pairs = Vec::new();
        for region in self.regions_of(region) {
            let found = self
                .run("DescribeKeyPairs", &region, |world| {
                    Ok(world
                        .region(&region)?
                        .key_pairs
                        .iter()
                        .map(|(name, k)| k.to_key_pair(name, &region))
                        .collect::<Vec<_>>())
                })
                .await?;
            key_pairs.extend(found);
        }
        Ok(key_pairs)
    }

    async fn create_key_pair(
        &self,
        region: &str,
        name: &str,
        key_type: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(KeyPair, String), ProviderError> {
        let label = match key_type {
            "rsa" => "RSA PRIVATE KEY",
            "ed25519" => "OPENSSH PRIVATE KEY",
            other => {
                return Err(invalid(
                    "key_type",
                    format!("`{other}` is not a key type; use rsa or ed25519"),
                ))
            }
        };
        let mut material = [0u8; 48];
        rand::rng().fill_bytes(&mut material);
        let body = base64::engine::general_purpose::STANDARD.encode(material);
        let private_key = format!("-----BEGIN {label}-----\n{body}\n-----END {label}-----\n");
        let key_pair = self
            .run("CreateKeyPair", region, |world| {
                let record = |id| KeyPairRecord {
                    id,
                    fingerprint: fingerprint(&material),
                    key_type: key_type.to_string(),
                    tags: tags.clone(),
                };
                self.add_key_pair(world, region, name, record, tags)
            })
            .await?;
        Ok((key_pair, private_key))
    }

    async fn import_key_pair(
        &self,
        region: &str,
        name: &str,
        public_key: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<KeyPair, ProviderError> {
        self.run("ImportKeyPair", region, |world| {
            let key_type = public_key_type(public_key).ok_or_else(|| {
                refusal(
                    Kind::InvalidInput,
                    "invalid_public_key",
                    "InvalidKeyPair.Format",
                    "Key is not in valid OpenSSH public key format (ssh-rsa or ssh-ed25519)",
                )
                .with_field("public_key")
            })?;
            let record = |id| KeyPairRecord {
                id,
                fingerprint: fingerprint(public_key.trim().as_bytes()),
                key_type: key_type.to_string(),
                tags: tags.clone(),
            };
            self.add_key_pair(world, region, name, record, tags)
        })
        .await
    }

    async fn delete_key_pair(&self, region: &str, name: &str) -> Result<(), ProviderError> {
        self.run("DeleteKeyPair", region, |world| {
            world.region_mut(region)?.key_pairs.remove(name);
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{provider, settings};

    #[tokio::test]
    async fn key_pairs_are_made_imported_and_deleted_per_region() {
        let (sim, _) = provider(settings(0.0));
        let tags = BTreeMap::from([("overcast:org".to_string(), "acme".to_string())]);
        let (made, private_key) = sim
            .create_key_pair("sim-1", "deploy", "ed25519", &tags)
            .await
            .unwrap();
        assert!(private_key.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"));
        assert_eq!(made.key_type.as_deref(), Some("ed25519"));
        assert_eq!(made.tags, tags);
        let taken = sim
            .create_key_pair("sim-1", "deploy", "rsa", &tags)
            .await
            .unwrap_err();
        assert_eq!((taken.code, taken.field), ("key_pair_exists", Some("name")));
        let bad_type = sim
            .create_key_pair("sim-1", "x", "dsa", &tags)
            .await
            .unwrap_err();
        assert_eq!(bad_type.field, Some("key_type"));
        let imported = sim
            .import_key_pair("sim-2", "deploy", "ssh-rsa AAAAB3NzaC1yc2E= me@host", &tags)
            .await
            .unwrap();
        assert_eq!(imported.key_type.as_deref(), Some("rsa"));
        let bad = sim
            .import_key_pair("sim-2", "other", "not a key", &tags)
            .await
            .unwrap_err();
        assert_eq!(
            (bad.code, bad.field),
            ("invalid_public_key", Some("public_key"))
        );
        assert_eq!(sim.list_key_pairs(None).await.unwrap().len(), 2);
        sim.delete_key_pair("sim-1", "deploy").await.unwrap();
        sim.delete_key_pair("sim-1", "deploy").await.unwrap();
        let left = sim.list_key_pairs(None).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].region, "sim-2");
    }
}
