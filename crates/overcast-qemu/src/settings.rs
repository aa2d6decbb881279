//! What a `qemu` environment and a machine type's `qemu` entry say in the config: a local
//! environment has no settings of its own; a machine type gives a size in numbers and,
//! optionally, an image. Also how a create is sized here, and the factory.

use overcast_provider::{
    check_settings, LaunchSize, MachineSize, Provider, ProviderContext, ProviderError,
    ProviderErrorKind, ProviderFactory, SettingProblem, SettingsCheck, SizeRequest, Table,
};
use serde::Deserialize;
use std::sync::Arc;

use crate::QemuProvider;

/// A VM booted from a kernel and initrd has no image disk to cover; without a size asked
/// for, it gets a small scratch disk.
const KERNEL_IMAGE_DISK_GB: u64 = 1;

/// A local environment's settings: none besides the common ones.
#[derive(Debug, Clone, Default, Deserialize)]
struct Settings {}

/// A machine type's `qemu` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct QemuMachine {
    pub cpus: u32,
    pub memory_mb: u64,
    pub disk_gb: u64,
    #[serde(default)]
    pub image: Option<String>,
}

impl QemuMachine {
    fn problems(&self) -> Vec<SettingProblem> {
        let mut problems = Vec::new();
        if self.cpus == 0 {
            problems.push(SettingProblem::new("cpus", "must be at least 1"));
        }
        if self.memory_mb < 64 {
            problems.push(SettingProblem::new("memory_mb", "must be at least 64"));
        }
        if self.disk_gb == 0 {
            problems.push(SettingProblem::new("disk_gb", "must be at least 1"));
        }
        problems
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> ProviderError {
    ProviderError::new(ProviderErrorKind::InvalidInput, "invalid_input", message).with_field(field)
}

impl QemuProvider {
    /// Sizes a launch: the request's numbers and image over the machine type's. An image is
    /// named by id or by name; a kernel image needs no disk size.
    pub(crate) fn size(&self, request: &SizeRequest<'_>) -> Result<LaunchSize, ProviderError> {
        if request.instance_type.is_some() {
            return Err(invalid(
                "instance_type",
                "instance types are for provider aws; give a machine_type, or cpus, memory_mb and disk_gb",
            ));
        }
        let machine = request.machine_entry::<QemuMachine>("qemu")?;
        let image = request
            .image
            .map(str::to_string)
            .or_else(|| machine.as_ref().and_then(|m| m.image.clone()))
            .ok_or_else(|| {
                invalid(
                    "image",
                    "give an image (see `overcast image list`), or a machine_type that has one",
                )
            })?;
        // A name is turned into its image's id; an unknown image is refused when the
        // launch runs, like one that went away in between.
        let record = self.find_image(&image)?;
        let image = record.as_ref().map_or(image, |r| r.id.clone());
        let needed = |field: &'static str| {
            invalid(field, "give a machine_type, or cpus, memory_mb and disk_gb")
        };
        let kernel_only = record.as_ref().is_some_and(|r| r.disk.is_none());
        let size = MachineSize {
            cpus: request
                .cpus
                .or(machine.as_ref().map(|m| m.cpus))
                .ok_or_else(|| needed("cpus"))?,
            memory_mb: request
                .memory_mb
                .or(machine.as_ref().map(|m| m.memory_mb))
                .ok_or_else(|| needed("memory_mb"))?,
            disk_gb: request
                .disk_gb
                .or(machine.as_ref().map(|m| m.disk_gb))
                .or(kernel_only.then_some(KERNEL_IMAGE_DISK_GB))
                .ok_or_else(|| needed("disk_gb"))?,
        };
        let instance_type = match request.machine_type {
            Some((name, _)) if request.numbers_given().is_empty() => name.to_string(),
            _ => "custom".to_string(),
        };
        Ok(LaunchSize {
            image,
            instance_type,
            size: Some(size),
        })
    }
}

/// Makes `qemu` environments: VMs on this host.
pub struct QemuFactory;

impl ProviderFactory for QemuFactory {
    fn kind(&self) -> &'static str {
        "qemu"
    }

    fn environment_keys(&self) -> &'static [&'static str] {
        &[]
    }

    fn check_environment(&self, settings: &Table) -> SettingsCheck {
        check_settings::<Settings>(settings, |_| vec![])
    }

    fn check_machine(&self, machine: &Table) -> SettingsCheck {
        check_settings(machine, QemuMachine::problems)
    }

    fn build(&self, context: ProviderContext<'_>) -> Arc<dyn Provider> {
        QemuProvider::open(context.name, context.data_dir)
    }
}
