//! What a `proxmox` environment says in the config: the cluster's URL, how to trust its
//! certificate (a CA file or the certificate's pinned SHA-256 fingerprint; never "accept
//! anything"), and how to sign in (an API token, or a user and password for tickets), its
//! secret read from a file or an environment variable, never from the config itself; and
//! where VMs and their cloud-init seeds go.

use overcast_provider::{check_settings, SettingProblem, SettingsCheck, Table};
use serde::Deserialize;
use std::path::PathBuf;

/// A `proxmox` environment's settings.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// `https://pve.example.com:8006`.
    #[serde(default)]
    pub url: String,
    /// The CA that signed the cluster's certificate (PEM).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The SHA-256 fingerprint of the cluster's certificate, as PVE shows it
    /// (`AB:CD:...`), for a self-signed one.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// An API token, `user@realm!id`; its secret comes from `secret_file` or `secret_env`.
    #[serde(default)]
    pub token_id: Option<String>,
    /// A user, `user@realm`, signing in for tickets; its password comes from
    /// `secret_file` or `secret_env`.
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    #[serde(default)]
    pub secret_env: Option<String>,
    /// The node new VMs go to when a request names no zone; without it, the least-loaded
    /// online node that holds the template.
    #[serde(default)]
    pub node: Option<String>,
    /// The storage a full clone's disks are made on; without it, the template's own.
    #[serde(default)]
    pub storage: Option<String>,
    /// The storage (for `iso` content) cloud-init seeds are uploaded to.
    #[serde(default = "default_iso_storage")]
    pub iso_storage: String,
    /// Linked clones (fast, sharing the template's disks) rather than full ones.
    #[serde(default)]
    pub linked_clones: bool,
    /// The bridge new VMs' first NIC is put on; without it, the template's.
    #[serde(default)]
    pub bridge: Option<String>,
}

/// Where new VMs and their seeds go, and how they are cloned.
#[derive(Debug, Clone)]
pub struct Placement {
    pub node: Option<String>,
    pub storage: Option<String>,
    pub iso_storage: String,
    pub linked_clones: bool,
    pub bridge: Option<String>,
}

fn default_iso_storage() -> String {
    "local".into()
}

pub const KEYS: &[&str] = &[
    "url",
    "ca_file",
    "fingerprint",
    "token_id",
    "user",
    "secret_file",
    "secret_env",
    "node",
    "storage",
    "iso_storage",
    "linked_clones",
    "bridge",
];

/// How overcast signs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Token(String),
    User(String),
}

/// How overcast trusts the cluster's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    CaFile(PathBuf),
    /// The certificate's SHA-256, 32 bytes.
    Fingerprint(Vec<u8>),
}

impl Settings {
    pub fn problems(&self) -> Vec<SettingProblem> {
        let mut problems = Vec::new();
        if !self.url.starts_with("https://") {
            problems.push(SettingProblem::new(
                "url",
                "give the cluster's https:// URL, e.g. https://pve.example.com:8006",
            ));
        }
        if let Err(e) = self.trust() {
            problems.push(e);
        }
        if let Err(e) = self.identity() {
            problems.push(e);
        }
        match (&self.secret_file, &self.secret_env) {
            (None, None) => problems.push(SettingProblem::new(
                "secret_file",
                "give secret_file or secret_env: where the token's secret or the password is (never in this file)",
            )),
            (Some(_), Some(_)) => problems.push(SettingProblem::new(
                "secret_env",
                "give secret_file or secret_env, not both",
            )),
            _ => {}
        }
        problems
    }

    pub fn trust(&self) -> Result<Trust, SettingProblem> {
        match (&self.ca_file, &self.fingerprint) {
            (Some(ca), None) => Ok(Trust::CaFile(ca.clone())),
            (None, Some(fingerprint)) => parse_fingerprint(fingerprint).map(Trust::Fingerprint),
            (None, None) => Err(SettingProblem::new(
                "fingerprint",
                "give ca_file, or the fingerprint of the cluster's certificate (Datacenter > Node > Certificates in PVE's UI)",
            )),
            (Some(_), Some(_)) => Err(SettingProblem::new(
                "fingerprint",
                "give ca_file or fingerprint, not both",
            )),
        }
    }

    pub fn identity(&self) -> Result<Identity, SettingProblem> {
        match (&self.token_id, &self.user) {
            (Some(token), None) => {
                let valid = token
                    .split_once('!')
                    .is_some_and(|(user, id)| user.contains('@') && !id.is_empty());
                if valid {
                    Ok(Identity::Token(token.clone()))
                } else {
                    Err(SettingProblem::new(
                        "token_id",
                        "an API token is named user@realm!id, e.g. overcast@pve!ci",
                    ))
                }
            }
            (None, Some(user)) if user.contains('@') => Ok(Identity::User(user.clone())),
            (None, Some(_)) => Err(SettingProblem::new(
                "user",
                "a user is named user@realm, e.g. overcast@pve",
            )),
            (None, None) => Err(SettingProblem::new(
                "token_id",
                "give token_id (an API token, user@realm!id) or user (user@realm)",
            )),
            (Some(_), Some(_)) => Err(SettingProblem::new(
                "user",
                "give token_id or user, not both",
            )),
        }
    }

    pub fn placement(&self) -> Placement {
        Placement {
            node: self.node.clone(),
            storage: self.storage.clone(),
            iso_storage: self.iso_storage.clone(),
            linked_clones: self.linked_clones,
            bridge: self.bridge.clone(),
        }
    }

    /// The token's secret or the password, from where the settings say.
    pub fn secret(&self) -> Result<String, String> {
        match (&self.secret_file, &self.secret_env) {
            (Some(path), _) => std::fs::read_to_string(path)
                .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|e| format!("cannot read secret_file {}: {e}", path.display())),
            (None, Some(name)) => std::env::var(name)
                .map_err(|_| format!("the environment variable {name} (secret_env) is not set")),
            (None, None) => Err("no secret_file or secret_env".into()),
        }
    }
}

/// `AB:CD:...` (or without colons, any case) as 32 bytes.
fn parse_fingerprint(text: &str) -> Result<Vec<u8>, SettingProblem> {
    let compact: String = text.chars().filter(|c| *c != ':').collect();
    match hex::decode(&compact) {
        Ok(bytes) if bytes.len() == 32 => Ok(bytes),
        _ => Err(SettingProblem::new(
            "fingerprint",
            "a SHA-256 fingerprint is 32 bytes in hex, e.g. AB:CD:...:EF",
        )),
    }
}

pub fn check(table: &Table) -> SettingsCheck {
    check_settings::<Settings>(table, Settings::problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(toml_text: &str) -> Settings {
        let table: Table = toml_text.parse().unwrap();
        overcast_provider::parse_settings::<Settings>(&table)
            .unwrap()
            .0
    }

    #[test]
    fn a_complete_environment_passes_and_every_gap_is_named() {
        let fingerprint = ["ab"; 32].join(":");
        let good = settings(&format!(
            "url = \"https://pve:8006\"\nfingerprint = \"{fingerprint}\"\ntoken_id = \"overcast@pve!ci\"\nsecret_env = \"PVE_SECRET\"\n"
        ));
        assert!(good.problems().is_empty(), "{:?}", good.problems());
        assert_eq!(good.trust().unwrap(), Trust::Fingerprint(vec![0xab; 32]));
        assert_eq!(
            good.identity().unwrap(),
            Identity::Token("overcast@pve!ci".into())
        );

        let keys =
            |s: &Settings| -> Vec<String> { s.problems().into_iter().map(|p| p.key).collect() };
        assert_eq!(
            keys(&settings("url = \"http://pve:8006\"\n")),
            ["url", "fingerprint", "token_id", "secret_file"]
        );
        let both = settings(
            "url = \"https://pve\"\nca_file = \"/ca.pem\"\nfingerprint = \"00\"\nuser = \"root\"\nsecret_file = \"/s\"\nsecret_env = \"S\"\n",
        );
        assert_eq!(keys(&both), ["fingerprint", "user", "secret_env"]);
        let short = settings("url = \"https://pve\"\nfingerprint = \"ab:cd\"\ntoken_id = \"nobang\"\nsecret_env = \"S\"\n");
        assert_eq!(keys(&short), ["fingerprint", "token_id"]);
    }
}
