//! Instances as the `Compute` capability: each a QEMU process with a qcow2 overlay on its
//! image's disk, a NoCloud seed and a serial log. States are read from the process and QMP,
//! never assumed: a VM whose QEMU ended without being asked to is reported stopped, saying
//! so.

use async_trait::async_trait;
use futures::future::join_all;
use overcast_provider::{
    cloud_init, Action, Compute, InstanceChange, InstanceFilter, LaunchSize, LaunchSpec,
    MachineSize, ProviderError, ProviderErrorKind, ResourceKind, SizeRequest, Tags,
};
use overcast_types::{tags, Instance, InstanceState};
use std::collections::BTreeMap;
use std::time::Duration;

use crate::records::{self, Desired, ImageRecord, VmRecord};
use crate::vm::{self, VmFiles};
use crate::{QemuProvider, REGION, STOP_GRACE};

/// A terminated VM stays listed this long, like EC2's, then its record goes.
const TERMINATED_KEPT: Duration = Duration::from_secs(3600);

fn not_found(id: &str) -> ProviderError {
    ProviderError::new(
        ProviderErrorKind::NotFound,
        "instance_not_found",
        format!("no instance {id}"),
    )
}

/// `what` (a plural) is not offered here; `instead` says what to do.
fn unsupported(field: &'static str, what: &str, instead: &str) -> ProviderError {
    ProviderError::new(
        ProviderErrorKind::Unsupported,
        "not_supported",
        format!("{what} are not supported by provider qemu{instead}"),
    )
    .with_field(field)
}

fn invalid(field: &'static str, message: String) -> ProviderError {
    ProviderError::new(ProviderErrorKind::InvalidInput, "invalid_input", message).with_field(field)
}

impl QemuProvider {
    fn vm_record(&self, id: &str) -> Result<VmRecord, ProviderError> {
        records::read(&VmFiles::new(&self.layout, id).record())?.ok_or_else(|| not_found(id))
    }

    pub(crate) fn vm_records(&self) -> Result<Vec<VmRecord>, ProviderError> {
        records::all(&self.layout.instances(), "vm.json")
    }

    /// The image of that id, else the one of that name, if there is one.
    pub(crate) fn find_image(
        &self,
        id_or_name: &str,
    ) -> Result<Option<ImageRecord>, ProviderError> {
        // Only a plain id names a directory: a name is never read as a path.
        let plain = id_or_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if plain {
            let path = self.layout.image_dir(id_or_name).join("image.json");
            if let Some(record) = records::read(&path)? {
                return Ok(Some(record));
            }
        }
        let all: Vec<ImageRecord> = records::all(&self.layout.images(), "image.json")?;
        Ok(all.into_iter().find(|r| r.name == id_or_name))
    }

    pub(crate) fn image_record(&self, id: &str) -> Result<ImageRecord, ProviderError> {
        records::read(&self.layout.image_dir(id).join("image.json"))?.ok_or_else(|| {
            ProviderError::new(
                ProviderErrorKind::NotFound,
                "image_not_found",
                format!("no image {id} in environment {}", self.environment),
            )
            .with_field("image")
        })
    }

    fn save(&self, record: &VmRecord) -> Result<(), ProviderError> {
        records::write(&VmFiles::new(&self.layout, &record.id).record(), record)
    }

    /// The instance as overcast shows it, with its state read from QEMU.
    async fn instance_of(&self, record: VmRecord) -> Instance {
        let files = VmFiles::new(&self.layout, &record.id);
        let (state, reason) = match record.desired {
            Desired::Terminated => (InstanceState::Terminated, None),
            desired => match vm::running_pid(&files, &record.id) {
                Some(_) => match vm::connect(&files).await {
                    Ok(mut qmp) => match qmp.query_status().await {
                        Ok(status) if status.running && desired == Desired::Stopped => {
                            (InstanceState::Stopping, None)
                        }
                        Ok(status) if status.running => (InstanceState::Running, None),
                        Ok(status) if status.status == "shutdown" => {
                            (InstanceState::Stopping, None)
                        }
                        Ok(status) => (
                            InstanceState::Pending,
                            Some(format!("QEMU reports `{}`", status.status)),
                        ),
                        Err(e) => (InstanceState::Pending, Some(e.to_string())),
                    },
                    Err(e) => (InstanceState::Pending, Some(e.message)),
                },
                None if desired == Desired::Running => (
                    InstanceState::Stopped,
                    Some("QEMU is not running: the guest powered itself off or QEMU ended".into()),
                ),
                None => (InstanceState::Stopped, None),
            },
        };
        let mut tags = record.tags.clone();
        if let Some(name) = &record.name {
            tags.entry(tags::NAME.into())
                .or_insert_with(|| name.clone());
        }
        Instance {
            id: record.id.clone(),
            name: record.name.clone(),
            environment: self.environment.clone(),
            region: REGION.into(),
            zone: None,
            stage: None,
            state,
            instance_type: Some(record.machine_type.clone()),
            image: Some(record.image.clone()),
            private_ip: None,
            public_ip: None,
            ssh_address: (state == InstanceState::Running)
                .then(|| format!("127.0.0.1:{}", record.ssh_port)),
            state_reason: reason,
            key_pair: None,
            security_groups: Vec::new(),
            launched_at: time::OffsetDateTime::parse(
                &record.created_at,
                &time::format_description::well_known::Rfc3339,
            )
            .ok(),
            tags,
            org: None,
        }
    }

    /// Checks what a launch asks for against what this provider and host can give.
    async fn check(&self, spec: &LaunchSpec) -> Result<(MachineSize, ImageRecord), ProviderError> {
        if !spec.security_groups.is_empty() {
            return Err(unsupported("security_groups", "security groups", ""));
        }
        if spec.key_pair.is_some() {
            return Err(unsupported(
                "key_pair",
                "key pairs",
                ": put an SSH key in the user data's cloud-config",
            ));
        }
        if spec.subnet.is_some() {
            return Err(unsupported("subnet", "subnets", ""));
        }
        if spec.region != REGION {
            return Err(invalid(
                "region",
                format!("a local environment has one region, `{REGION}`"),
            ));
        }
        let size = spec.size.ok_or_else(|| {
            invalid(
                "machine_type",
                "give a machine_type with a qemu size, or cpus, memory_mb and disk_gb".into(),
            )
        })?;
        let image = self.image_record(&spec.image)?;
        crate::host::check_size(&self.layout, size, spec.min_count)?;
        if let Some((file, _)) = &image.disk {
            // The overlay must be at least as large as the disk it covers.
            let base = self.layout.image_dir(&image.id).join(file);
            let info = vm::run(
                &self.host.qemu_img,
                &["info".as_ref(), "--output=json".as_ref(), base.as_os_str()],
            )
            .await?;
            let needed = serde_json::from_str::<serde_json::Value>(&info)
                .ok()
                .and_then(|v| v["virtual-size"].as_u64())
                .unwrap_or(0);
            if needed > size.disk_gb << 30 {
                return Err(invalid(
                    "disk_gb",
                    format!(
                        "image {} needs at least {} GB",
                        image.id,
                        needed.div_ceil(1 << 30)
                    ),
                ));
            }
        }
        Ok((size, image))
    }

    /// Makes one VM: its directory, disk, seed and record, then starts it.
    async fn make_vm(
        &self,
        spec: &LaunchSpec,
        size: MachineSize,
        image: &ImageRecord,
        user_data: &[u8],
    ) -> Result<VmRecord, ProviderError> {
        let id = records::new_id("vm");
        let files = VmFiles::new(&self.layout, &id);
        std::fs::create_dir_all(&files.dir)
            .map_err(|e| records::io_error(&format!("cannot make {}: {e}", files.dir.display())))?;
        let record = VmRecord {
            id: id.clone(),
            name: spec.name.clone(),
            image: image.id.clone(),
            size,
            machine_type: spec.instance_type.clone(),
            created_at: records::now(),
            ssh_port: free_port()?,
            desired: Desired::Running,
            client_token: spec.client_token.clone(),
            tags: spec.tags.clone(),
            terminated_at: None,
        };
        let disk = files.disk();
        let disk_size = format!("{}G", size.disk_gb);
        match &image.disk {
            Some((file, format)) => {
                let base = self.layout.image_dir(&image.id).join(file);
                vm::run(
                    &self.host.qemu_img,
                    &[
                        "create".as_ref(),
                        "-q".as_ref(),
                        "-f".as_ref(),
                        "qcow2".as_ref(),
                        "-F".as_ref(),
                        format.as_ref(),
                        "-b".as_ref(),
                        base.as_os_str(),
                        disk.as_os_str(),
                        disk_size.as_ref(),
                    ],
                )
                .await?;
            }
            None => {
                vm::run(
                    &self.host.qemu_img,
                    &[
                        "create".as_ref(),
                        "-q".as_ref(),
                        "-f".as_ref(),
                        "qcow2".as_ref(),
                        disk.as_os_str(),
                        disk_size.as_ref(),
                    ],
                )
                .await?;
            }
        }
        let hostname = record.name.clone().unwrap_or_else(|| record.id.clone());
        cloud_init::write_seed(
            &self.host.genisoimage,
            &files.seed(),
            &record.id,
            &hostname,
            user_data,
        )
        .await?;
        self.save(&record)?;
        vm::launch(&self.host, &self.layout, &record, image).await?;
        Ok(record)
    }

    /// Carries out one action on one VM.
    async fn act_on(&self, id: &str, action: Action) -> Result<(), ProviderError> {
        let mut record = self.vm_record(id)?;
        let files = VmFiles::new(&self.layout, id);
        let running = vm::running_pid(&files, id).is_some();
        if record.desired == Desired::Terminated {
            return match action {
                Action::Terminate => Ok(()),
                _ => Err(ProviderError::new(
                    ProviderErrorKind::Conflict,
                    "wrong_state",
                    format!("instance {id} is terminated"),
                )),
            };
        }
        match action {
            Action::Start => {
                record.desired = Desired::Running;
                self.save(&record)?;
                if !running {
                    let image = self.image_record(&record.image)?;
                    vm::launch(&self.host, &self.layout, &record, &image).await?;
                }
            }
            Action::Stop { force } => {
                record.desired = Desired::Stopped;
                self.save(&record)?;
                if running && force {
                    vm::kill(&files, id).await;
                } else if running {
                    let mut qmp = vm::connect(&files).await?;
                    qmp.system_powerdown()
                        .await
                        .map_err(|e| vm::qmp_error(&e.to_string()))?;
                    // The guest gets a grace period to power off; then QEMU is ended.
                    let id = id.to_string();
                    tokio::spawn(async move {
                        if !vm::wait_exit(&files, &id, STOP_GRACE).await {
                            vm::kill(&files, &id).await;
                        }
                    });
                }
            }
            Action::Reboot => {
                if !running {
                    return Err(ProviderError::new(
                        ProviderErrorKind::Conflict,
                        "wrong_state",
                        format!("instance {id} is not running"),
                    ));
                }
                let mut qmp = vm::connect(&files).await?;
                qmp.system_reset()
                    .await
                    .map_err(|e| vm::qmp_error(&e.to_string()))?;
            }
            Action::Terminate => {
                record.desired = Desired::Terminated;
                record.terminated_at = Some(records::now());
                self.save(&record)?;
                vm::kill(&files, id).await;
                for file in [files.disk(), files.seed(), files.qmp(), files.pid()] {
                    let _ = std::fs::remove_file(file);
                }
            }
        }
        Ok(())
    }

    /// Forgets VMs terminated longer ago than [`TERMINATED_KEPT`].
    fn purge_terminated(&self, records: &mut Vec<VmRecord>) {
        let now = time::OffsetDateTime::now_utc();
        records.retain(|r| {
            let expired = r.terminated_at.as_deref().is_some_and(|at| {
                time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                    .is_ok_and(|at| now - at > TERMINATED_KEPT)
            });
            if expired {
                let _ = std::fs::remove_dir_all(self.layout.vm_dir(&r.id));
            }
            !expired
        });
    }

    /// Applies `change` to the tags of each VM or image in `ids`, kept in its record.
    fn change_tags(
        &self,
        kind: ResourceKind,
        ids: &[String],
        change: impl Fn(&mut BTreeMap<String, String>),
    ) -> Result<(), ProviderError> {
        for id in ids {
            match kind {
                ResourceKind::Instance => {
                    let mut record = self.vm_record(id)?;
                    change(&mut record.tags);
                    self.save(&record)?;
                }
                ResourceKind::Image => {
                    let mut image = self.image_record(id)?;
                    change(&mut image.tags);
                    records::write(&self.layout.image_dir(id).join("image.json"), &image)?;
                }
                other => {
                    return Err(ProviderError::new(
                        ProviderErrorKind::Unsupported,
                        "not_supported",
                        format!("{} tags are not supported by provider qemu", other.name()),
                    ))
                }
            }
        }
        Ok(())
    }
}

/// A free TCP port on loopback for the guest's SSH.
fn free_port() -> Result<u16, ProviderError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| records::io_error(&format!("no free port for SSH forwarding: {e}")))
}

#[async_trait]
impl Compute for QemuProvider {
    async fn list_instances(
        &self,
        filter: &InstanceFilter,
    ) -> Result<Vec<Instance>, ProviderError> {
        if filter.region.as_deref().is_some_and(|r| r != REGION) {
            return Ok(Vec::new());
        }
        let mut records = self.vm_records()?;
        self.purge_terminated(&mut records);
        records.retain(|r| {
            (filter.ids.is_empty() || filter.ids.contains(&r.id))
                && filter.tags.iter().all(|(k, v)| r.tags.get(k) == Some(v))
        });
        let mut instances = join_all(records.into_iter().map(|r| self.instance_of(r))).await;
        if !filter.states.is_empty() {
            instances.retain(|i| filter.states.contains(&i.state));
        }
        instances.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(instances)
    }

    async fn check_launch(&self, spec: &LaunchSpec) -> Result<(), ProviderError> {
        self.check(spec).await.map(|_| ())
    }

    async fn run_instances(&self, spec: &LaunchSpec) -> Result<Vec<Instance>, ProviderError> {
        let (size, image) = self.check(spec).await?;
        // A repeated launch (a resumed operation) finds the VMs the first one made.
        let mut made: Vec<VmRecord> = self
            .vm_records()?
            .into_iter()
            .filter(|r| !spec.client_token.is_empty() && r.client_token == spec.client_token)
            .collect();
        let user_data = cloud_init::decode_user_data(spec.user_data.as_deref())?;
        while made.len() < spec.max_count as usize {
            let room = crate::host::check_size(&self.layout, size, 1);
            if room.is_err() && made.len() >= spec.min_count as usize {
                break;
            }
            room?;
            made.push(self.make_vm(spec, size, &image, &user_data).await?);
        }
        Ok(join_all(made.into_iter().map(|r| self.instance_of(r))).await)
    }

    fn size_launch(&self, request: &SizeRequest<'_>) -> Result<LaunchSize, ProviderError> {
        self.size(request)
    }

    /// Each VM is acted on by itself, so there is no backend limit; a batch of 1,000 bounds
    /// how many are acted on at once and how many outcomes are recorded in one write.
    fn max_ids_per_call(&self) -> usize {
        1000
    }

    async fn act(&self, region: &str, ids: &[String], action: Action) -> Result<(), ProviderError> {
        if region != REGION {
            return Err(invalid(
                "region",
                format!("a local environment has one region, `{REGION}`"),
            ));
        }
        for result in join_all(ids.iter().map(|id| self.act_on(id, action))).await {
            result?;
        }
        Ok(())
    }

    async fn zones(&self, _region: &str) -> Result<Vec<String>, ProviderError> {
        Ok(Vec::new())
    }

    async fn modify_instance(
        &self,
        _region: &str,
        _id: &str,
        _change: &InstanceChange,
    ) -> Result<(), ProviderError> {
        Err(ProviderError::new(
            ProviderErrorKind::Unsupported,
            "not_supported",
            "changing an instance is not supported by provider qemu: make an image of it and create a new one",
        ))
    }

    async fn console_output(&self, _region: &str, id: &str) -> Result<String, ProviderError> {
        self.vm_record(id)?;
        Ok(vm::serial_output(&VmFiles::new(&self.layout, id)))
    }
}

#[async_trait]
impl Tags for QemuProvider {
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
    }
}
