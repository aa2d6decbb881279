//! VMs of a PVE cluster as overcast's instances: listed across the cluster's nodes
//! (`/cluster/resources`, templates left out, addresses from the guest agent when one VM
//! is looked at), started, shut down (ACPI, then stopped when the guest does not go within
//! the timeout) or stopped at once, rebooted, and destroyed with their disks and seed, each
//! change followed to its task's end. A call whose answer was lost is settled by the VM's
//! state before it is tried again. Making VMs is in [`crate::launch`].

use async_trait::async_trait;
use overcast_provider::{
    Action, Compute, InstanceChange, InstanceFilter, LaunchSize, LaunchSpec, MachineSize,
    ProviderError, ProviderErrorKind, SettingProblem, SizeRequest,
};
use overcast_types::{Instance, InstanceState};
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

use crate::cluster::{self, Guest};
use crate::launch::{LAUNCH_TAG, SEED_SLOT};
use crate::{invalid, unsupported, ProxmoxProvider, REGION};

/// How long a guest has to power off by ACPI before it is stopped.
const SHUTDOWN_SECS: u64 = 60;
/// How long one task may take.
pub const TASK_WAIT: Duration = Duration::from_secs(SHUTDOWN_SECS + 60);
/// VMs acted on per [`Compute::act`] (PVE acts on one VM a call).
const PER_CALL: usize = 10;
/// How many times an action whose answer was lost is asked for.
const ACT_ATTEMPTS: u32 = 4;

fn state_of(status: &str) -> InstanceState {
    match status {
        "running" => InstanceState::Running,
        "stopped" | "paused" | "suspended" => InstanceState::Stopped,
        _ => InstanceState::Error,
    }
}

fn not_found(id: &str) -> ProviderError {
    ProviderError::new(
        ProviderErrorKind::NotFound,
        "instance_not_found",
        format!("PVE has no VM {id}"),
    )
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

impl ProxmoxProvider {
    /// Every QEMU guest of the cluster, VMs and templates.
    pub(crate) async fn guests(&self) -> Result<Vec<Guest>, ProviderError> {
        let resources: Vec<Value> = self.client.get("/cluster/resources?type=vm").await?;
        Ok(cluster::guests(&resources))
    }

    /// A guest as overcast's instance (the launch's own tag left out).
    pub(crate) fn instance_of(&self, guest: &Guest) -> Instance {
        let mut tags = guest.tags.clone();
        tags.remove(LAUNCH_TAG);
        let state_reason = match (&guest.lock, guest.status.as_str()) {
            (Some(lock), _) => Some(format!("locked ({lock})")),
            (None, "unknown") => Some("its node does not answer".to_string()),
            _ => None,
        };
        Instance {
            name: guest.name.clone(),
            zone: Some(guest.node.clone()),
            state_reason,
            tags,
            ..Instance::new(
                &guest.id(),
                &self.environment,
                REGION,
                state_of(&guest.status),
            )
        }
    }

    /// The state PVE reports for one VM now.
    async fn state_now(&self, guest: &Guest) -> Result<InstanceState, ProviderError> {
        let status: Value = self
            .client
            .get(&format!(
                "/nodes/{}/qemu/{}/status/current",
                guest.node, guest.vmid
            ))
            .await?;
        Ok(state_of(status["status"].as_str().unwrap_or("unknown")))
    }

    /// The address the guest agent reports, when it runs.
    async fn agent_address(&self, guest: &Guest) -> Option<String> {
        let answer: Value = self
            .client
            .get(&format!(
                "/nodes/{}/qemu/{}/agent/network-get-interfaces",
                guest.node, guest.vmid
            ))
            .await
            .ok()?;
        cluster::agent_address(&answer)
    }

    /// Asks for one state action on one VM (a task's UPID).
    async fn request(&self, guest: &Guest, action: Action) -> Result<String, ProviderError> {
        let vm = format!("/nodes/{}/qemu/{}", guest.node, guest.vmid);
        match action {
            Action::Start => self.client.post(&format!("{vm}/status/start"), &[]).await,
            // A VM is stopped at once before it is destroyed.
            Action::Stop { force: true } | Action::Terminate => {
                self.client.post(&format!("{vm}/status/stop"), &[]).await
            }
            Action::Stop { force: false } => {
                let form = [
                    ("timeout", SHUTDOWN_SECS.to_string()),
                    ("forceStop", "1".to_string()),
                ];
                self.client
                    .post(&format!("{vm}/status/shutdown"), &form)
                    .await
            }
            Action::Reboot => self.client.post(&format!("{vm}/status/reboot"), &[]).await,
        }
    }

    /// One action on one VM, followed to its task's end. When the answer was lost, or PVE
    /// says the VM is already where it should be, the VM's state settles whether the
    /// action happened; a lost one is asked for again. (A reboot is just asked again: a
    /// running VM says nothing about whether it rebooted.)
    async fn act_on(&self, guest: &Guest, action: Action) -> Result<(), ProviderError> {
        let mut attempt = 1;
        loop {
            let result = match self.request(guest, action).await {
                Ok(upid) => self.client.finish(&upid, TASK_WAIT).await,
                Err(e) => Err(e),
            };
            let error = match result {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            let lost = error.code == "backend_unreachable";
            if !(lost || error.code == "incorrect_instance_state") {
                return Err(error);
            }
            if action != Action::Reboot && self.state_now(guest).await? == action.target_state() {
                return Ok(());
            }
            if !lost || attempt >= ACT_ATTEMPTS {
                return Err(error);
            }
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Destroys a VM with everything PVE keeps of it (`purge`: backup jobs, HA, replication;
    /// its disks, also unreferenced ones), stopping it first, then the cloud-init seed
    /// overcast uploaded for it.
    pub(crate) async fn destroy(&self, guest: &Guest) -> Result<(), ProviderError> {
        let vm = format!("/nodes/{}/qemu/{}", guest.node, guest.vmid);
        if guest.status == "running" {
            self.act_on(guest, Action::Stop { force: true }).await?;
        }
        let config: Value = self.client.get(&format!("{vm}/config")).await?;
        let seed = config[SEED_SLOT]
            .as_str()
            .and_then(|drive| drive.split(',').next())
            .filter(|volume| volume.contains(":iso/overcast-seed-"))
            .map(str::to_string);
        let upid: String = self
            .client
            .delete(&format!("{vm}?purge=1&destroy-unreferenced-disks=1"))
            .await?;
        self.client.finish(&upid, TASK_WAIT).await?;
        if let Some(volume) = seed {
            self.remove_volume(&guest.node, &volume).await?;
        }
        Ok(())
    }

    /// Removes a storage volume (`local:iso/NAME`); one already gone is no error.
    pub(crate) async fn remove_volume(
        &self,
        node: &str,
        volume: &str,
    ) -> Result<(), ProviderError> {
        let storage = volume.split(':').next().unwrap_or_default();
        let path = format!(
            "/nodes/{node}/storage/{storage}/content/{}",
            volume.replace('/', "%2F")
        );
        match self.client.delete::<Option<String>>(&path).await {
            Ok(Some(upid)) => self.client.finish(&upid, TASK_WAIT).await,
            Ok(None) => Ok(()),
            Err(e) if e.kind == ProviderErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
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

    /// The VMs asked for; one VM asked for by id, when running, also gets the address its
    /// guest agent reports.
    async fn list_instances(
        &self,
        filter: &InstanceFilter,
    ) -> Result<Vec<Instance>, ProviderError> {
        if filter.region.as_deref().is_some_and(|r| r != REGION) {
            return Ok(Vec::new());
        }
        let guests: Vec<Guest> = self
            .guests()
            .await?
            .into_iter()
            .filter(|g| !g.template)
            .filter(|g| filter.ids.is_empty() || filter.ids.contains(&g.id()))
            .collect();
        // One VM looked at (a get, a single VM's action) is worth a call to its agent; a
        // batch's check or wait is not.
        let looked_at = filter.ids.len() == 1;
        let mut instances = Vec::new();
        for guest in &guests {
            let mut instance = self.instance_of(guest);
            if !filter.states.is_empty() && !filter.states.contains(&instance.state) {
                continue;
            }
            if !filter
                .tags
                .iter()
                .all(|(k, v)| instance.tags.get(k) == Some(v))
            {
                continue;
            }
            if looked_at && instance.state == InstanceState::Running {
                instance.private_ip = self.agent_address(guest).await;
            }
            instances.push(instance);
        }
        Ok(instances)
    }

    async fn check_launch(&self, spec: &LaunchSpec) -> Result<(), ProviderError> {
        self.check_seed(spec)?;
        let guests = self.guests().await?;
        crate::launch::templates_named(&guests, &spec.image).map(|_| ())
    }

    async fn run_instances(&self, spec: &LaunchSpec) -> Result<Vec<Instance>, ProviderError> {
        self.launch(spec).await
    }

    fn max_ids_per_call(&self) -> usize {
        PER_CALL
    }

    /// Acts on each VM in turn; a VM to terminate that is gone already is done.
    async fn act(
        &self,
        _region: &str,
        ids: &[String],
        action: Action,
    ) -> Result<(), ProviderError> {
        let guests = self.guests().await?;
        for id in ids {
            let guest = guests.iter().find(|g| !g.template && &g.id() == id);
            match (guest, action) {
                (None, Action::Terminate) => {}
                (None, _) => return Err(not_found(id)),
                (Some(guest), Action::Terminate) => self.destroy(guest).await?,
                (Some(guest), action) => self.act_on(guest, action).await?,
            }
        }
        Ok(())
    }

    /// The cluster's nodes.
    async fn zones(&self, _region: &str) -> Result<Vec<String>, ProviderError> {
        let listing: Vec<Value> = self.client.get("/nodes").await?;
        let mut names: Vec<String> = cluster::nodes(&listing)
            .into_iter()
            .map(|n| n.name)
            .collect();
        names.sort();
        Ok(names)
    }

    /// Termination protection is PVE's `protection` flag (which refuses a destroy);
    /// nothing else of a VM's is changed this way.
    async fn modify_instance(
        &self,
        _region: &str,
        id: &str,
        change: &InstanceChange,
    ) -> Result<(), ProviderError> {
        let unsupported_field = [
            ("instance_type", change.instance_type.is_some()),
            ("user_data", change.user_data.is_some()),
            ("security_groups", change.security_groups.is_some()),
        ]
        .into_iter()
        .find(|(_, asked)| *asked);
        if let Some((field, _)) = unsupported_field {
            return Err(unsupported(&format!("changing a VM's {field}")).with_field(field));
        }
        let Some(protected) = change.termination_protection else {
            return Ok(());
        };
        let guests = self.guests().await?;
        let guest = guests
            .iter()
            .find(|g| !g.template && g.id() == id)
            .ok_or_else(|| not_found(id))?;
        let form = [("protection", u8::from(protected).to_string())];
        let _: Value = self
            .client
            .put(
                &format!("/nodes/{}/qemu/{}/config", guest.node, guest.vmid),
                &form,
            )
            .await?;
        Ok(())
    }

    async fn console_output(&self, _region: &str, _id: &str) -> Result<String, ProviderError> {
        Err(unsupported("reading a VM's console"))
    }
}
