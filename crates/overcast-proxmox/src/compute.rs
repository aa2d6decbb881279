//! VMs of a PVE cluster as overcast's instances: listed across the cluster's nodes
//! (`/cluster/resources`, templates left out), started, shut down (ACPI, then stopped when
//! the guest does not go within the timeout) or stopped at once, and rebooted, each action
//! followed to its task's end. Tags (and so stages and owners) are
//! PVE tags, each overcast `key=value` written `KEY-VALUE` in PVE's tag alphabet.

use async_trait::async_trait;
use overcast_provider::{
    Action, Compute, InstanceChange, InstanceFilter, LaunchSize, LaunchSpec, ProviderError,
    ProviderErrorKind, ResourceKind, SizeRequest, Tags,
};
use overcast_types::{Instance, InstanceState};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

use crate::{ProxmoxProvider, REGION};

/// How long a guest has to power off by ACPI before it is stopped.
const SHUTDOWN_SECS: u64 = 60;
/// How long one action's task may take.
const TASK_WAIT: Duration = Duration::from_secs(SHUTDOWN_SECS + 60);
/// VMs acted on per [`Compute::act`] (PVE acts on one VM a call).
const PER_CALL: usize = 10;

fn unsupported(what: &str) -> ProviderError {
    ProviderError::new(
        ProviderErrorKind::Unsupported,
        "unsupported",
        format!("{what} is not supported by provider proxmox yet"),
    )
}

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
fn to_pve_tags(tags: &BTreeMap<String, String>) -> String {
    tags.iter()
        .map(|(k, v)| format!("{}-{}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join(";")
}

/// PVE's tags as overcast's: `KEY-VALUE` decoded; a tag someone set by hand (`web`) is a
/// key with an empty value.
fn from_pve_tags(tags: &str) -> BTreeMap<String, String> {
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

/// A number PVE sends as a number or as a string.
fn number(value: &Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}

fn state_of(status: &str) -> InstanceState {
    match status {
        "running" => InstanceState::Running,
        "stopped" | "paused" | "suspended" => InstanceState::Stopped,
        _ => InstanceState::Error,
    }
}

impl ProxmoxProvider {
    /// Every VM of the cluster (not templates), with its node.
    async fn vms(&self) -> Result<Vec<(Instance, String)>, ProviderError> {
        let resources: Vec<Value> = self.client.get("/cluster/resources?type=vm").await?;
        Ok(resources
            .iter()
            .filter(|r| r["type"] == "qemu" && number(&r["template"]).unwrap_or(0) == 0)
            .filter_map(|r| {
                let vmid = number(&r["vmid"])?;
                let node = r["node"].as_str()?.to_string();
                let status = r["status"].as_str().unwrap_or("unknown");
                let instance = Instance {
                    name: r["name"].as_str().map(str::to_string),
                    zone: Some(node.clone()),
                    state_reason: r["lock"].as_str().map(|lock| format!("locked ({lock})")),
                    tags: r["tags"].as_str().map(from_pve_tags).unwrap_or_default(),
                    ..Instance::new(
                        &vmid.to_string(),
                        &self.environment,
                        REGION,
                        state_of(status),
                    )
                };
                Some((instance, node))
            })
            .collect())
    }

    /// Asks for one action on one VM and follows its task to the end.
    async fn act_on(&self, node: &str, vmid: &str, action: Action) -> Result<(), ProviderError> {
        let vm = format!("/nodes/{node}/qemu/{vmid}");
        let upid: String = match action {
            Action::Start => self.client.post(&format!("{vm}/status/start"), &[]).await?,
            Action::Stop { force: true } => {
                self.client.post(&format!("{vm}/status/stop"), &[]).await?
            }
            Action::Stop { force: false } => {
                let form = [
                    ("timeout", SHUTDOWN_SECS.to_string()),
                    ("forceStop", "1".to_string()),
                ];
                self.client
                    .post(&format!("{vm}/status/shutdown"), &form)
                    .await?
            }
            Action::Reboot => {
                self.client
                    .post(&format!("{vm}/status/reboot"), &[])
                    .await?
            }
            // A destroyed VM leaves PVE's lists, where overcast looks for it to have gone:
            // terminating comes with the VMs' own records.
            Action::Terminate => return Err(unsupported("terminating VMs")),
        };
        self.client.finish(&upid, TASK_WAIT).await
    }
}

impl ProxmoxProvider {
    /// Changes the tags of VMs, one config write each.
    async fn change_tags(
        &self,
        kind: ResourceKind,
        ids: &[String],
        change: impl Fn(&mut BTreeMap<String, String>),
    ) -> Result<(), ProviderError> {
        if kind != ResourceKind::Instance {
            return Err(unsupported(&format!("tagging a {}", kind.name())));
        }
        let vms: BTreeMap<String, (Instance, String)> = self
            .vms()
            .await?
            .into_iter()
            .map(|(i, node)| (i.id.clone(), (i, node)))
            .collect();
        for id in ids {
            let (vm, node) = vms.get(id).ok_or_else(|| {
                ProviderError::new(
                    ProviderErrorKind::NotFound,
                    "instance_not_found",
                    format!("PVE has no VM {id}"),
                )
            })?;
            let mut tags = vm.tags.clone();
            change(&mut tags);
            let form = if tags.is_empty() {
                [("delete", "tags".to_string())]
            } else {
                [("tags", to_pve_tags(&tags))]
            };
            let _: Value = self
                .client
                .put(&format!("/nodes/{node}/qemu/{id}/config"), &form)
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

#[async_trait]
impl Compute for ProxmoxProvider {
    fn size_launch(&self, _request: &SizeRequest<'_>) -> Result<LaunchSize, ProviderError> {
        Err(unsupported("creating VMs"))
    }

    async fn list_instances(
        &self,
        filter: &InstanceFilter,
    ) -> Result<Vec<Instance>, ProviderError> {
        if filter.region.as_deref().is_some_and(|r| r != REGION) {
            return Ok(Vec::new());
        }
        Ok(self
            .vms()
            .await?
            .into_iter()
            .map(|(instance, _)| instance)
            .filter(|i| filter.ids.is_empty() || filter.ids.contains(&i.id))
            .filter(|i| filter.states.is_empty() || filter.states.contains(&i.state))
            .filter(|i| filter.tags.iter().all(|(k, v)| i.tags.get(k) == Some(v)))
            .collect())
    }

    async fn check_launch(&self, _spec: &LaunchSpec) -> Result<(), ProviderError> {
        Err(unsupported("creating VMs"))
    }

    async fn run_instances(&self, _spec: &LaunchSpec) -> Result<Vec<Instance>, ProviderError> {
        Err(unsupported("creating VMs"))
    }

    fn max_ids_per_call(&self) -> usize {
        PER_CALL
    }

    async fn act(
        &self,
        _region: &str,
        ids: &[String],
        action: Action,
    ) -> Result<(), ProviderError> {
        let nodes: BTreeMap<String, String> = self
            .vms()
            .await?
            .into_iter()
            .map(|(i, node)| (i.id, node))
            .collect();
        for id in ids {
            let Some(node) = nodes.get(id) else {
                return Err(ProviderError::new(
                    ProviderErrorKind::NotFound,
                    "instance_not_found",
                    format!("PVE has no VM {id}"),
                ));
            };
            self.act_on(node, id, action).await?;
        }
        Ok(())
    }

    /// The cluster's nodes.
    async fn zones(&self, _region: &str) -> Result<Vec<String>, ProviderError> {
        let nodes: Vec<Value> = self.client.get("/nodes").await?;
        let mut names: Vec<String> = nodes
            .iter()
            .filter_map(|n| n["node"].as_str().map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    async fn modify_instance(
        &self,
        _region: &str,
        _id: &str,
        _change: &InstanceChange,
    ) -> Result<(), ProviderError> {
        Err(unsupported("changing a VM's attributes"))
    }

    async fn console_output(&self, _region: &str, _id: &str) -> Result<String, ProviderError> {
        Err(unsupported("reading a VM's console"))
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
        assert_eq!(number(&serde_json::json!("4")), Some(4));
    }
}
