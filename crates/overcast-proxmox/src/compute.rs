//! VMs of a PVE cluster as overcast's instances: made by cloning a template (sized and
//! tagged, then started), listed across the cluster's nodes (`/cluster/resources`,
//! templates left out), started, shut down (ACPI, then stopped when the guest does not go
//! within the timeout) or stopped at once, and rebooted, each change followed to its task's
//! end. Tags (and so stages and owners) are
//! PVE tags, each overcast `key=value` written `KEY-VALUE` in PVE's tag alphabet.

use async_trait::async_trait;
use overcast_provider::{
    Action, Compute, InstanceChange, InstanceFilter, LaunchSize, LaunchSpec, MachineSize,
    ProviderError, ProviderErrorKind, ResourceKind, SettingProblem, SizeRequest, Tags,
};
use overcast_types::{Instance, InstanceState};
use serde::Deserialize;
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

/// A machine type's `proxmox` entry.
#[derive(Debug, Clone, Deserialize)]
pub struct ProxmoxMachine {
    pub cores: u32,
    pub memory_mb: u64,
    #[serde(default)]
    pub disk_gb: Option<u64>,
    /// The template to clone, by VM id or name.
    pub template: String,
}

impl ProxmoxMachine {
    pub fn problems(&self) -> Vec<SettingProblem> {
        let mut problems = Vec::new();
        if self.cores == 0 {
            problems.push(SettingProblem::new("cores", "must be at least 1"));
        }
        if self.memory_mb < 64 {
            problems.push(SettingProblem::new("memory_mb", "must be at least 64"));
        }
        if self.template.trim().is_empty() {
            problems.push(SettingProblem::new(
                "template",
                "name a template, by VM id or name",
            ));
        }
        problems
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> ProviderError {
    ProviderError::new(ProviderErrorKind::InvalidInput, "invalid_input", message).with_field(field)
}

impl ProxmoxProvider {
    /// A template by VM id or name: its id and its node.
    async fn template(&self, wanted: &str) -> Result<(String, String), ProviderError> {
        let resources: Vec<Value> = self.client.get("/cluster/resources?type=vm").await?;
        resources
            .iter()
            .filter(|r| number(&r["template"]).unwrap_or(0) == 1)
            .find(|r| {
                number(&r["vmid"]).is_some_and(|id| id.to_string() == wanted)
                    || r["name"].as_str() == Some(wanted)
            })
            .and_then(|r| {
                Some((
                    number(&r["vmid"])?.to_string(),
                    r["node"].as_str()?.to_string(),
                ))
            })
            .ok_or_else(|| {
                ProviderError::new(
                    ProviderErrorKind::NotFound,
                    "image_not_found",
                    format!("PVE has no template `{wanted}`"),
                )
                .with_field("image")
            })
    }

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
    /// A template (by VM id or name) and a size: the request's over the machine type's.
    fn size_launch(&self, request: &SizeRequest<'_>) -> Result<LaunchSize, ProviderError> {
        if request.instance_type.is_some() {
            return Err(invalid(
                "instance_type",
                "instance types are for provider aws; give a machine_type, or cpus, memory_mb and disk_gb",
            ));
        }
        let machine = request.machine_entry::<ProxmoxMachine>("proxmox")?;
        let template = request
            .image
            .map(str::to_string)
            .or_else(|| machine.as_ref().map(|m| m.template.clone()))
            .ok_or_else(|| {
                invalid(
                    "image",
                    "give a template (by VM id or name), or a machine_type that has one",
                )
            })?;
        let needed = |field: &'static str| {
            invalid(field, "give a machine_type, or cpus, memory_mb and disk_gb")
        };
        let cpus = request
            .cpus
            .or(machine.as_ref().map(|m| m.cores))
            .ok_or_else(|| needed("cpus"))?;
        let memory_mb = request
            .memory_mb
            .or(machine.as_ref().map(|m| m.memory_mb))
            .ok_or_else(|| needed("memory_mb"))?;
        let disk_gb = request
            .disk_gb
            .or(machine.as_ref().and_then(|m| m.disk_gb))
            .unwrap_or(0);
        Ok(LaunchSize {
            image: template,
            instance_type: request
                .machine_type
                .map_or("custom".to_string(), |(name, _)| name.to_string()),
            size: Some(MachineSize {
                cpus,
                memory_mb,
                disk_gb,
            }),
        })
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

    async fn check_launch(&self, spec: &LaunchSpec) -> Result<(), ProviderError> {
        if spec.user_data.is_some() {
            return Err(unsupported("user data (cloud-init) on a VM"));
        }
        self.template(&spec.image).await.map(|_| ())
    }

    /// Clones the template once per VM (a full clone, on the template's node), sizes and
    /// tags each clone, and starts it.
    async fn run_instances(&self, spec: &LaunchSpec) -> Result<Vec<Instance>, ProviderError> {
        if spec.user_data.is_some() {
            return Err(unsupported("user data (cloud-init) on a VM"));
        }
        let (template, node) = self.template(&spec.image).await?;
        let size = spec
            .size
            .ok_or_else(|| invalid("size", "a Proxmox VM is sized in numbers"))?;
        let mut made = Vec::new();
        for n in 0..spec.max_count {
            let vmid: String = self
                .client
                .get("/cluster/nextid")
                .await
                .map(|v: Value| number(&v).map(|n| n.to_string()).unwrap_or_default())?;
            let name = match (&spec.name, spec.max_count) {
                (Some(name), 1) => name.clone(),
                (Some(name), _) => format!("{name}-{}", n + 1),
                (None, _) => format!("vm-{vmid}"),
            };
            let form = [
                ("newid", vmid.clone()),
                ("name", name.clone()),
                ("full", "1".to_string()),
            ];
            let upid: String = self
                .client
                .post(&format!("/nodes/{node}/qemu/{template}/clone"), &form)
                .await?;
            self.client.finish(&upid, TASK_WAIT).await?;
            let config = [
                ("cores", size.cpus.to_string()),
                ("memory", size.memory_mb.to_string()),
                ("tags", to_pve_tags(&spec.tags)),
            ];
            let vm = format!("/nodes/{node}/qemu/{vmid}");
            let _: Value = self.client.put(&format!("{vm}/config"), &config).await?;
            let upid: String = self.client.post(&format!("{vm}/status/start"), &[]).await?;
            self.client.finish(&upid, TASK_WAIT).await?;
            made.push(Instance {
                name: Some(name),
                zone: Some(node.clone()),
                image: Some(template.clone()),
                tags: spec.tags.clone(),
                ..Instance::new(&vmid, &self.environment, REGION, InstanceState::Running)
            });
        }
        Ok(made)
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
