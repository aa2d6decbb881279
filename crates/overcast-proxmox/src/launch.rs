//! Making VMs: each one a clone of a template (full, or linked where the environment says)
//! on the node a request names, else the environment's, else the least-loaded online node
//! that holds the template; then sized (cores, memory, a grown boot disk), put on the
//! environment's bridge, tagged, given its cloud-init seed as a cdrom, and started. A clone
//! that fails on the way is destroyed again, so a failed launch leaves nothing behind; a
//! launch tried again with the same client token finds the VMs it made already.

use overcast_provider::{cloud_init, LaunchSpec, MachineSize, ProviderError, ProviderErrorKind};
use overcast_types::{Instance, InstanceState};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::cluster::{self, Guest, Node};
use crate::compute::TASK_WAIT;
use crate::tags::to_pve_tags;
use crate::{invalid, ProxmoxProvider};

/// The tag carrying a launch's client token, so a launch tried again (a resumed
/// operation) makes only what the first try did not.
pub const LAUNCH_TAG: &str = "overcast:launch";
/// The cdrom slot a cloud-init seed goes in (PVE's own cloud-init drive is usually ide2).
pub const SEED_SLOT: &str = "ide3";

/// The seed file of a VM on the ISO storage.
fn seed_file(vmid: &str) -> String {
    format!("overcast-seed-{vmid}.iso")
}

/// The templates `wanted` names (by VM id, or by name, which may be on several nodes).
pub fn templates_named<'a>(
    guests: &'a [Guest],
    wanted: &str,
) -> Result<Vec<&'a Guest>, ProviderError> {
    let templates: Vec<&Guest> = guests
        .iter()
        .filter(|g| g.template && g.is_named(wanted))
        .collect();
    if templates.is_empty() {
        return Err(ProviderError::new(
            ProviderErrorKind::NotFound,
            "image_not_found",
            format!("PVE has no template `{wanted}`"),
        )
        .with_field("image"));
    }
    Ok(templates)
}

impl ProxmoxProvider {
    /// genisoimage, when the launch carries user data (its seed is made with it); a
    /// launch with user data that is not base64 is refused here.
    pub(crate) fn check_seed(&self, spec: &LaunchSpec) -> Result<Option<PathBuf>, ProviderError> {
        if spec.user_data.is_none() {
            return Ok(None);
        }
        cloud_init::decode_user_data(spec.user_data.as_deref())?;
        let path = std::env::var_os("PATH").unwrap_or_default();
        cloud_init::find_program(&path, cloud_init::GENISOIMAGE)
            .map(Some)
            .ok_or_else(|| {
                ProviderError::new(
                    ProviderErrorKind::Unavailable,
                    "seed_tool_missing",
                    format!(
                        "user data reaches a Proxmox VM on a cloud-init seed overcast makes with genisoimage, which is not on the server's PATH: {}",
                        cloud_init::GENISOIMAGE_HINT
                    ),
                )
            })
    }

    /// Makes the VMs of a launch (see the module's comment).
    pub(crate) async fn launch(&self, spec: &LaunchSpec) -> Result<Vec<Instance>, ProviderError> {
        let seed_tool = self.check_seed(spec)?;
        let user_data = cloud_init::decode_user_data(spec.user_data.as_deref())?;
        let size = spec
            .size
            .ok_or_else(|| invalid("size", "a Proxmox VM is sized in numbers"))?;
        let guests = self.guests().await?;
        let templates = templates_named(&guests, &spec.image)?;
        let disk = self.disk_to_grow(templates[0], size).await?;
        let listing: Vec<Value> = self.client.get("/nodes").await?;
        let nodes = cluster::nodes(&listing);

        let mut made = Vec::new();
        for guest in guests.iter().filter(|g| {
            !g.template
                && !spec.client_token.is_empty()
                && g.tags.get(LAUNCH_TAG) == Some(&spec.client_token)
        }) {
            if guest.status != "running" && guest.lock.is_none() {
                let upid: String = self
                    .client
                    .post(
                        &format!("/nodes/{}/qemu/{}/status/start", guest.node, guest.vmid),
                        &[],
                    )
                    .await?;
                self.client.finish(&upid, TASK_WAIT).await?;
            }
            made.push(Instance {
                state: InstanceState::Running,
                ..self.instance_of(guest)
            });
        }
        let mut placed: BTreeMap<String, u64> = BTreeMap::new();
        while made.len() < spec.max_count as usize {
            let (template, node) = self.place(&templates, &nodes, spec.zone.as_deref(), &placed)?;
            *placed.entry(node.clone()).or_default() += size.memory_mb << 20;
            let clone = NewVm {
                spec,
                size,
                template,
                node: &node,
                number: made.len() + 1,
                disk: disk.as_deref(),
                seed: seed_tool
                    .as_deref()
                    .map(|tool| (tool, user_data.as_slice())),
            };
            made.push(self.make_vm(&clone).await?);
        }
        Ok(made)
    }

    /// The boot disk to grow to the size asked for, if it is larger than the template's;
    /// a smaller one is refused (PVE grows disks, never shrinks them).
    async fn disk_to_grow(
        &self,
        template: &Guest,
        size: MachineSize,
    ) -> Result<Option<String>, ProviderError> {
        if size.disk_gb == 0 {
            return Ok(None);
        }
        let config: Value = self
            .client
            .get(&format!(
                "/nodes/{}/qemu/{}/config",
                template.node, template.vmid
            ))
            .await?;
        match cluster::boot_disk(&config) {
            None => Err(invalid(
                "disk_gb",
                format!("template {} has no disk to grow", template.vmid),
            )),
            Some((_, Some(gb))) if size.disk_gb < gb => Err(invalid(
                "disk_gb",
                format!(
                    "{} GiB is smaller than template {}'s {gb} GiB disk; a clone's disk can grow, not shrink",
                    size.disk_gb, template.vmid
                ),
            )),
            Some((_, Some(gb))) if size.disk_gb == gb => Ok(None),
            Some((key, _)) => Ok(Some(key)),
        }
    }

    /// Where the next VM goes: the node asked for (cloning a template there if one is,
    /// else the first with `target`, which PVE allows from shared storage), or the
    /// least-loaded online node that holds the template.
    fn place<'a>(
        &self,
        templates: &[&'a Guest],
        nodes: &[Node],
        zone: Option<&str>,
        placed: &BTreeMap<String, u64>,
    ) -> Result<(&'a Guest, String), ProviderError> {
        if let Some(node) = zone.or(self.placement.node.as_deref()) {
            if !nodes.iter().any(|n| n.name == node) {
                let known: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
                return Err(invalid(
                    "zone",
                    format!("PVE has no node `{node}` (its nodes: {})", known.join(", ")),
                ));
            }
            let template = templates
                .iter()
                .find(|t| t.node == node)
                .unwrap_or(&templates[0]);
            return Ok((template, node.to_string()));
        }
        let holders: Vec<Node> = nodes
            .iter()
            .filter(|n| templates.iter().any(|t| t.node == n.name))
            .cloned()
            .collect();
        let node = cluster::least_loaded(&holders, placed).ok_or_else(|| {
            ProviderError::new(
                ProviderErrorKind::Unavailable,
                "no_node_online",
                format!(
                    "no node that holds template {} is online",
                    templates[0].vmid
                ),
            )
        })?;
        let template = templates
            .iter()
            .find(|t| t.node == node.name)
            .unwrap_or(&templates[0]);
        Ok((template, node.name.clone()))
    }

    /// Clones, configures and starts one VM; a failure after the clone destroys it again.
    async fn make_vm(&self, clone: &NewVm<'_>) -> Result<Instance, ProviderError> {
        let vmid = self.next_vmid().await?;
        let name = match (&clone.spec.name, clone.spec.max_count) {
            (Some(name), 1) => name.clone(),
            (Some(name), _) => format!("{name}-{}", clone.number),
            (None, _) => format!("vm-{vmid}"),
        };
        let linked = self.placement.linked_clones;
        let mut form = vec![
            ("newid", vmid.clone()),
            ("name", name.clone()),
            ("full", if linked { "0" } else { "1" }.to_string()),
        ];
        if clone.template.node != clone.node {
            form.push(("target", clone.node.to_string()));
        }
        if let (false, Some(storage)) = (linked, &self.placement.storage) {
            form.push(("storage", storage.clone()));
        }
        let upid: String = self
            .client
            .post(
                &format!(
                    "/nodes/{}/qemu/{}/clone",
                    clone.template.node, clone.template.vmid
                ),
                &form,
            )
            .await?;
        self.client.finish(&upid, TASK_WAIT).await?;
        match self.set_up(clone, &vmid, &name).await {
            Ok(instance) => Ok(instance),
            Err(e) => {
                // Nothing is left half made: the clone goes, with its seed.
                self.undo_clone(&vmid).await;
                Err(e)
            }
        }
    }

    /// A fresh clone's size, bridge, tags and seed, then its start.
    async fn set_up(
        &self,
        clone: &NewVm<'_>,
        vmid: &str,
        name: &str,
    ) -> Result<Instance, ProviderError> {
        let vm = format!("/nodes/{}/qemu/{vmid}", clone.node);
        let mut tags = clone.spec.tags.clone();
        if !clone.spec.client_token.is_empty() {
            tags.insert(LAUNCH_TAG.into(), clone.spec.client_token.clone());
        }
        let mut config = vec![
            ("cores", clone.size.cpus.to_string()),
            ("memory", clone.size.memory_mb.to_string()),
            ("tags", to_pve_tags(&tags)),
        ];
        if let Some(bridge) = &self.placement.bridge {
            config.push(("net0", format!("virtio,bridge={bridge}")));
        }
        if let Some((tool, user_data)) = clone.seed {
            let volume = self
                .upload_seed(tool, clone.node, vmid, name, user_data)
                .await?;
            config.push((SEED_SLOT, format!("{volume},media=cdrom")));
        }
        let _: Value = self.client.put(&format!("{vm}/config"), &config).await?;
        if let Some(disk) = clone.disk {
            let form = [
                ("disk", disk.to_string()),
                ("size", format!("{}G", clone.size.disk_gb)),
            ];
            // PVE 8 and later answer a resize with a task; earlier ones resize at once.
            let answer: Value = self.client.put(&format!("{vm}/resize"), &form).await?;
            if let Some(upid) = answer.as_str() {
                self.client.finish(upid, TASK_WAIT).await?;
            }
        }
        let upid: String = self.client.post(&format!("{vm}/status/start"), &[]).await?;
        self.client.finish(&upid, TASK_WAIT).await?;
        tags.remove(LAUNCH_TAG);
        Ok(Instance {
            name: Some(name.to_string()),
            zone: Some(clone.node.to_string()),
            image: Some(clone.template.id()),
            tags,
            ..Instance::new(
                vmid,
                &self.environment,
                crate::REGION,
                InstanceState::Running,
            )
        })
    }

    /// The VM id PVE offers for a new guest.
    pub(crate) async fn next_vmid(&self) -> Result<String, ProviderError> {
        let next: Value = self.client.get("/cluster/nextid").await?;
        cluster::number(&next)
            .map(|n| n.to_string())
            .ok_or_else(|| {
                ProviderError::new(
                    ProviderErrorKind::Refused,
                    "unexpected_answer",
                    format!("PVE answered /cluster/nextid with {next}"),
                )
            })
    }

    /// Destroys a clone whose setting up failed; a failure to do so is logged, since the
    /// error worth reporting is the one that made the clone go.
    pub(crate) async fn undo_clone(&self, vmid: &str) {
        let clone = self
            .guests()
            .await
            .ok()
            .and_then(|guests| guests.into_iter().find(|g| g.id() == vmid));
        if let Some(clone) = clone {
            if let Err(undo) = self.destroy(&clone).await {
                tracing::warn!(vmid, error = %undo, "a failed clone could not be destroyed");
            }
        }
    }

    /// Makes a VM's NoCloud seed and uploads it as an ISO; answers its volume id.
    async fn upload_seed(
        &self,
        tool: &std::path::Path,
        node: &str,
        vmid: &str,
        hostname: &str,
        user_data: &[u8],
    ) -> Result<String, ProviderError> {
        let staging = tempfile::tempdir().map_err(|e| {
            ProviderError::new(
                ProviderErrorKind::Unavailable,
                "host_io_error",
                format!("cannot make a directory for a seed: {e}"),
            )
        })?;
        let file = seed_file(vmid);
        let iso = staging.path().join(&file);
        cloud_init::write_seed(tool, &iso, vmid, hostname, user_data).await?;
        let bytes = std::fs::read(&iso).map_err(|e| {
            ProviderError::new(
                ProviderErrorKind::Unavailable,
                "host_io_error",
                format!("cannot read the seed just made: {e}"),
            )
        })?;
        let storage = &self.placement.iso_storage;
        let upid = self
            .client
            .upload(node, storage, "iso", &file, &bytes)
            .await?;
        self.client.finish(&upid, TASK_WAIT).await?;
        Ok(format!("{storage}:iso/{file}"))
    }
}

/// One VM to make.
struct NewVm<'a> {
    spec: &'a LaunchSpec,
    size: MachineSize,
    template: &'a Guest,
    node: &'a str,
    /// Its place in the launch, from 1 (names the VM when the launch names several).
    number: usize,
    /// The boot disk to grow to the size's `disk_gb`.
    disk: Option<&'a str>,
    /// genisoimage and the user data, when the VM gets a seed.
    seed: Option<(&'a std::path::Path, &'a [u8])>,
}
