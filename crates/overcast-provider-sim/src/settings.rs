//! What a `sim` environment and a machine type's `sim` entry say in the config: parsed with
//! serde, checked (every problem named by its key), and the factory that makes a
//! [`SimProvider`] of them and keeps it within reach of tests.

use overcast_provider::{
    check_settings, parse_settings, LaunchSize, MachineSize, Provider, ProviderContext,
    ProviderError, ProviderErrorKind, ProviderFactory, SettingProblem, SettingsCheck, SizeRequest,
    Table,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::compute::{Timing, BASE_IMAGE, DEFAULT_INSTANCE_TYPE};
use crate::faults::is_action;
use crate::{lock, Faults, SimProvider};

/// The longest a simulated transition may take: an hour.
const MAX_SECS: f64 = 3600.0;

/// The longest simulated latency: a minute.
const MAX_LATENCY_MS: u64 = 60_000;

/// The largest fleet made at start.
const MAX_FLEET: u32 = 1_000_000;

/// The settings of a `sim` environment. Every key is optional.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The regions the environment spans; the first is the default for creates.
    pub regions: Vec<String>,
    /// Seconds a launch, start or reboot takes to reach running (0: at once); a container
    /// task likewise.
    pub pending_secs: f64,
    /// Seconds a stop or terminate takes to reach stopped or terminated (0: at once); a
    /// container task's stop likewise.
    pub stopping_secs: f64,
    /// Seconds an image takes to become available (0: at once).
    pub image_secs: f64,
    /// Running instances made at start, spread over the regions, each with a `Name` and a
    /// `stage` tag cycling dev, test, prod: a fleet for benchmarks and demos.
    pub instances: u32,
    /// The most live instances a region holds; a launch beyond it gets what fits, or
    /// none below its `min_count`. Default: no limit.
    pub capacity: Option<u32>,
    /// The most ids one action or tag call takes (EC2: 1,000).
    pub max_ids_per_call: usize,
    /// Launch anew on every call, as moto does, instead of answering a repeated client
    /// token with its first launch's instances, as EC2 does. Secrets alike: a repeated
    /// create is refused as a duplicate and a repeated value update adds a version. ECS
    /// alike: a repeated service create is refused as a duplicate and a repeated run starts
    /// more tasks.
    pub ignore_client_token: bool,
    /// Defaults for creates that name none.
    pub key_pair: Option<String>,
    pub security_groups: Vec<String>,
    /// Share of calls answered "throttled", 0 to 1.
    pub throttle_rate: f64,
    /// Share of calls answered with a transient error (503), 0 to 1.
    pub error_rate: f64,
    /// Share of calls refused for good (EC2's `UnauthorizedOperation`), 0 to 1.
    pub deny_rate: f64,
    /// Share of calls that take effect, then answer an error (a lost answer), 0 to 1.
    pub act_then_fail_rate: f64,
    /// Milliseconds every call waits.
    pub latency_ms: u64,
    /// Faults hit only these actions (EC2's, S3's, Secrets Manager's, SSM's and ECS's names,
    /// e.g. `StopInstances`, `PutParameter`, `RunTask`).
    pub fault_actions: Vec<String>,
    /// Faults hit only these regions.
    pub fault_regions: Vec<String>,
    /// Seeds the faults' dice, so they repeat from run to run.
    pub seed: Option<u64>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            regions: vec!["sim-1".into(), "sim-2".into()],
            pending_secs: 0.5,
            stopping_secs: 0.5,
            image_secs: 1.0,
            instances: 0,
            capacity: None,
            max_ids_per_call: 1000,
            ignore_client_token: false,
            key_pair: None,
            security_groups: Vec::new(),
            throttle_rate: 0.0,
            error_rate: 0.0,
            deny_rate: 0.0,
            act_then_fail_rate: 0.0,
            latency_ms: 0,
            fault_actions: Vec::new(),
            fault_regions: Vec::new(),
            seed: None,
        }
    }
}

/// Every key of [`Settings`], for `config check` to say which provider a key belongs to.
const KEYS: &[&str] = &[
    "regions",
    "pending_secs",
    "stopping_secs",
    "image_secs",
    "instances",
    "capacity",
    "max_ids_per_call",
    "ignore_client_token",
    "key_pair",
    "security_groups",
    "throttle_rate",
    "error_rate",
    "deny_rate",
    "act_then_fail_rate",
    "latency_ms",
    "fault_actions",
    "fault_regions",
    "seed",
];

impl Settings {
    fn problems(&self) -> Vec<SettingProblem> {
        let mut problems = Vec::new();
        if self.regions.is_empty() {
            problems.push(SettingProblem::new(
                "regions",
                "a sim environment needs at least one region",
            ));
        }
        for (i, region) in self.regions.iter().enumerate() {
            if !is_region_name(region) {
                problems.push(SettingProblem::new(
                    format!("regions[{i}]"),
                    format!("`{region}` is not a region name like sim-1 (lowercase letters, digits and hyphens)"),
                ));
            } else if self.regions[..i].contains(region) {
                problems.push(SettingProblem::new(
                    format!("regions[{i}]"),
                    format!("region `{region}` is listed twice"),
                ));
            }
        }
        for (key, secs) in [
            ("pending_secs", self.pending_secs),
            ("stopping_secs", self.stopping_secs),
            ("image_secs", self.image_secs),
        ] {
            if !(0.0..=MAX_SECS).contains(&secs) {
                problems.push(SettingProblem::new(
                    key,
                    format!("must be from 0 to {MAX_SECS} seconds"),
                ));
            }
        }
        for (key, rate) in [
            ("throttle_rate", self.throttle_rate),
            ("error_rate", self.error_rate),
            ("deny_rate", self.deny_rate),
            ("act_then_fail_rate", self.act_then_fail_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                problems.push(SettingProblem::new(key, "must be from 0 to 1"));
            }
        }
        if self.throttle_rate + self.error_rate + self.deny_rate > 1.0 {
            problems.push(SettingProblem::new(
                "error_rate",
                "throttle_rate, error_rate and deny_rate share the calls: together at most 1",
            ));
        }
        if self.latency_ms > MAX_LATENCY_MS {
            problems.push(SettingProblem::new(
                "latency_ms",
                format!("must be at most {MAX_LATENCY_MS}"),
            ));
        }
        if self.instances > MAX_FLEET {
            problems.push(SettingProblem::new(
                "instances",
                format!("must be at most {MAX_FLEET}"),
            ));
        }
        if let Some(capacity) = self.capacity {
            let per_region = self
                .instances
                .div_ceil(u32::try_from(self.regions.len()).unwrap_or(1).max(1));
            if capacity < per_region {
                problems.push(SettingProblem::new(
                    "capacity",
                    format!("is below the {per_region} instances per region made at start"),
                ));
            }
        }
        if self.max_ids_per_call == 0 {
            problems.push(SettingProblem::new(
                "max_ids_per_call",
                "must be at least 1",
            ));
        }
        if self
            .key_pair
            .as_deref()
            .is_some_and(|k| k.trim().is_empty())
        {
            problems.push(SettingProblem::new("key_pair", "must not be empty"));
        }
        for (i, action) in self.fault_actions.iter().enumerate() {
            if !is_action(action) {
                problems.push(SettingProblem::new(
                    format!("fault_actions[{i}]"),
                    format!("`{action}` is not a call the sim provider answers (e.g. RunInstances, StopInstances, PutObject)"),
                ));
            }
        }
        for (i, region) in self.fault_regions.iter().enumerate() {
            if !self.regions.contains(region) {
                problems.push(SettingProblem::new(
                    format!("fault_regions[{i}]"),
                    format!("`{region}` is not one of the environment's regions"),
                ));
            }
        }
        problems
    }

    /// The faults the environment starts with.
    pub fn faults(&self) -> Faults {
        Faults {
            throttle_rate: self.throttle_rate,
            error_rate: self.error_rate,
            deny_rate: self.deny_rate,
            act_then_fail_rate: self.act_then_fail_rate,
            latency: Duration::from_millis(self.latency_ms),
            actions: self.fault_actions.clone(),
            regions: self.fault_regions.clone(),
        }
    }

    pub(crate) fn timing(&self) -> Timing {
        // Checked settings are within range; anything else counts as no time.
        let secs = |s: f64| Duration::try_from_secs_f64(s).unwrap_or(Duration::ZERO);
        Timing {
            pending: secs(self.pending_secs),
            stopping: secs(self.stopping_secs),
            image: secs(self.image_secs),
        }
    }
}

fn is_region_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.len() <= 32
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// A machine type's `sim` entry: an instance type, or a size in numbers, and optionally an
/// image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct SimMachine {
    pub instance_type: Option<String>,
    pub cpus: Option<u32>,
    pub memory_mb: Option<u64>,
    pub disk_gb: Option<u64>,
    pub image: Option<String>,
}

impl SimMachine {
    fn size(&self) -> Option<MachineSize> {
        Some(MachineSize {
            cpus: self.cpus?,
            memory_mb: self.memory_mb?,
            disk_gb: self.disk_gb?,
        })
    }

    fn numbers_given(&self) -> Vec<&'static str> {
        [
            ("cpus", self.cpus.is_some()),
            ("memory_mb", self.memory_mb.is_some()),
            ("disk_gb", self.disk_gb.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect()
    }

    fn problems(&self) -> Vec<SettingProblem> {
        let numbers = self.numbers_given();
        let mut problems = Vec::new();
        match (&self.instance_type, numbers.is_empty()) {
            (Some(t), _) if t.trim().is_empty() => {
                problems.push(SettingProblem::new("instance_type", "must not be empty"))
            }
            (Some(_), false) => problems.push(SettingProblem::new(
                numbers[0],
                "give an instance_type or cpus, memory_mb and disk_gb, not both",
            )),
            (None, true) => problems.push(SettingProblem::new(
                "instance_type",
                "give an instance_type, or cpus, memory_mb and disk_gb",
            )),
            (None, false) => {
                for missing in ["cpus", "memory_mb", "disk_gb"] {
                    if !numbers.contains(&missing) {
                        problems.push(SettingProblem::new(
                            missing,
                            "a size in numbers needs cpus, memory_mb and disk_gb",
                        ));
                    }
                }
            }
            (Some(_), true) => {}
        }
        for (key, zero) in [
            ("cpus", self.cpus == Some(0)),
            ("memory_mb", self.memory_mb == Some(0)),
            ("disk_gb", self.disk_gb == Some(0)),
        ] {
            if zero {
                problems.push(SettingProblem::new(key, "must be at least 1"));
            }
        }
        problems
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> ProviderError {
    ProviderError::new(ProviderErrorKind::InvalidInput, "invalid_input", message).with_field(field)
}

/// Sizes a launch: the request's own values over the machine type's. A launch that names
/// nothing gets [`BASE_IMAGE`] and [`DEFAULT_INSTANCE_TYPE`], so trying overcast needs no
/// setup. Sizes in numbers are taken too, with the machine type's name (or `custom`) as
/// their type.
pub(crate) fn size_launch(request: &SizeRequest<'_>) -> Result<LaunchSize, ProviderError> {
    let numbers = request.numbers_given();
    if let (Some(field), Some(_)) = (numbers.first(), request.instance_type) {
        return Err(invalid(
            field,
            "give an instance_type or a size in numbers, not both",
        ));
    }
    let machine = match request.machine_type {
        None => SimMachine::default(),
        Some((name, entry)) => {
            let entry = entry.ok_or_else(|| {
                invalid(
                    "machine_type",
                    format!("machine type `{name}` has no size for provider sim"),
                )
            })?;
            parse_settings::<SimMachine>(entry)
                .map_err(|p| {
                    invalid(
                        "machine_type",
                        format!("machine type `{name}`: {}", p.message),
                    )
                })?
                .0
        }
    };
    let image = request
        .image
        .map(str::to_string)
        .or_else(|| machine.image.clone())
        .unwrap_or_else(|| BASE_IMAGE.to_string());
    let machine_name = request.machine_type.map(|(name, _)| name);
    let (instance_type, size) = if let Some(instance_type) = request.instance_type {
        (instance_type.to_string(), None)
    } else if !numbers.is_empty() {
        let needed = |field: &'static str| {
            invalid(field, "a size in numbers needs cpus, memory_mb and disk_gb")
        };
        let size = MachineSize {
            cpus: request
                .cpus
                .or(machine.cpus)
                .ok_or_else(|| needed("cpus"))?,
            memory_mb: request
                .memory_mb
                .or(machine.memory_mb)
                .ok_or_else(|| needed("memory_mb"))?,
            disk_gb: request
                .disk_gb
                .or(machine.disk_gb)
                .ok_or_else(|| needed("disk_gb"))?,
        };
        ("custom".to_string(), Some(size))
    } else if let Some(instance_type) = &machine.instance_type {
        (instance_type.clone(), None)
    } else if let Some(size) = machine.size() {
        (machine_name.unwrap_or("custom").to_string(), Some(size))
    } else {
        (DEFAULT_INSTANCE_TYPE.to_string(), None)
    };
    Ok(LaunchSize {
        image,
        instance_type,
        size,
    })
}

/// Makes `sim` environments, and keeps the provider last built for each, so tests can
/// switch its faults and move its clock while core drives it. An environment built again
/// with the same settings (a server restarted over the same factory) gets the same
/// simulated cloud, as a real cloud outlives a restart.
#[derive(Default)]
pub struct SimFactory {
    built: Mutex<BTreeMap<String, Arc<SimProvider>>>,
}

impl SimFactory {
    pub fn new() -> SimFactory {
        SimFactory::default()
    }

    /// The provider last built for an environment.
    pub fn provider(&self, environment: &str) -> Option<Arc<SimProvider>> {
        lock(&self.built).get(environment).cloned()
    }
}

impl ProviderFactory for SimFactory {
    fn kind(&self) -> &'static str {
        "sim"
    }

    fn environment_keys(&self) -> &'static [&'static str] {
        KEYS
    }

    fn check_environment(&self, settings: &Table) -> SettingsCheck {
        check_settings(settings, Settings::problems)
    }

    fn check_machine(&self, machine: &Table) -> SettingsCheck {
        check_settings(machine, SimMachine::problems)
    }

    fn build(&self, context: ProviderContext<'_>) -> Arc<dyn Provider> {
        // The settings passed the check before any environment is built.
        let settings = parse_settings::<Settings>(context.settings)
            .map(|(settings, _)| settings)
            .unwrap_or_default();
        let mut built = lock(&self.built);
        let provider = match built.get(context.name) {
            Some(earlier) if earlier.settings == settings => {
                earlier.sharing_cloud(context.observer)
            }
            _ => SimProvider::new(context.name, settings, context.observer),
        };
        let provider = Arc::new(provider);
        built.insert(context.name.to_string(), provider.clone());
        provider
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Calls;
    use overcast_provider::InstanceFilter;

    fn table(text: &str) -> Table {
        text.parse().unwrap()
    }

    #[test]
    fn an_empty_table_is_clean_and_gives_the_defaults() {
        assert!(SimFactory::new()
            .check_environment(&Table::new())
            .is_clean());
        let (settings, unknown) = parse_settings::<Settings>(&Table::new()).unwrap();
        assert!(unknown.is_empty());
        assert_eq!(settings, Settings::default());
        assert_eq!(settings.regions, ["sim-1", "sim-2"]);
        assert_eq!(settings.max_ids_per_call, 1000);
        assert!(settings.faults().is_none());
    }

    #[test]
    fn every_key_of_the_settings_is_listed() {
        let all = table(
            r#"
            regions = ["a-1"]
            pending_secs = 0
            stopping_secs = 1.5
            image_secs = 2
            instances = 10
            capacity = 100
            max_ids_per_call = 500
            ignore_client_token = true
            key_pair = "deploy"
            security_groups = ["sg-1"]
            throttle_rate = 0.1
            error_rate = 0.1
            deny_rate = 0.1
            act_then_fail_rate = 0.1
            latency_ms = 5
            fault_actions = ["StopInstances", "PutParameter", "GetSecretValue", "RunTask"]
            fault_regions = ["a-1"]
            seed = 42
            "#,
        );
        assert_eq!(all.len(), KEYS.len());
        assert!(all.keys().all(|k| KEYS.contains(&k.as_str())));
        let check = SimFactory::new().check_environment(&all);
        assert!(check.is_clean(), "{check:?}");
        let (settings, _) = parse_settings::<Settings>(&all).unwrap();
        assert_eq!(settings.pending_secs, 0.0);
        assert_eq!(settings.seed, Some(42));
    }

    #[test]
    fn settings_problems_name_their_keys() {
        let check = SimFactory::new().check_environment(&table(
            r#"
            regions = ["sim-1", "Mars", "sim-1"]
            pending_secs = -1
            throttle_rate = 0.7
            error_rate = 0.5
            act_then_fail_rate = 2
            max_ids_per_call = 0
            instances = 10
            capacity = 2
            fault_actions = ["StopInstances", "StopEverything"]
            fault_regions = ["sim-9"]
            regionz = []
            "#,
        ));
        assert_eq!(check.unknown, ["regionz"]);
        let keys: Vec<_> = check.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "regions[1]",
                "regions[2]",
                "pending_secs",
                "act_then_fail_rate",
                "error_rate",
                "capacity",
                "max_ids_per_call",
                "fault_actions[1]",
                "fault_regions[0]",
            ]
        );
        let wrong_type = SimFactory::new().check_environment(&table("instances = \"many\""));
        assert_eq!(wrong_type.problems.len(), 1);
    }

    #[test]
    fn machine_entries_are_a_type_or_numbers() {
        let clean = |text: &str| SimFactory::new().check_machine(&table(text)).is_clean();
        assert!(clean("instance_type = \"sim.large\""));
        assert!(clean(
            "cpus = 2\nmemory_mb = 2048\ndisk_gb = 20\nimage = \"ami-1\""
        ));
        let keys = |text: &str| -> Vec<String> {
            SimFactory::new()
                .check_machine(&table(text))
                .problems
                .into_iter()
                .map(|p| p.key)
                .collect()
        };
        assert_eq!(keys(""), ["instance_type"]);
        assert_eq!(keys("cpus = 2"), ["memory_mb", "disk_gb"]);
        assert_eq!(keys("instance_type = \"x\"\ncpus = 0"), ["cpus", "cpus"]);
        assert_eq!(
            SimFactory::new().check_machine(&table("size = 1")).unknown,
            ["size"]
        );
    }

    #[test]
    fn launches_are_sized_from_the_request_over_the_machine_type() {
        let named = table("instance_type = \"sim.medium\"\nimage = \"ami-1\"");
        let request = SizeRequest {
            machine_type: Some(("medium", Some(&named))),
            ..SizeRequest::default()
        };
        let size = size_launch(&request).unwrap();
        assert_eq!(
            (size.image.as_str(), size.instance_type.as_str(), size.size),
            ("ami-1", "sim.medium", None)
        );
        let numbers = table("cpus = 2\nmemory_mb = 2048\ndisk_gb = 20");
        let request = SizeRequest {
            machine_type: Some(("small", Some(&numbers))),
            ..SizeRequest::default()
        };
        let size = size_launch(&request).unwrap();
        assert_eq!(
            (size.image.as_str(), size.instance_type.as_str()),
            (BASE_IMAGE, "small")
        );
        assert_eq!(size.size.map(|s| s.cpus), Some(2));
        let bigger = SizeRequest {
            memory_mb: Some(4096),
            ..request
        };
        let size = size_launch(&bigger).unwrap();
        assert_eq!(size.instance_type, "custom");
        assert_eq!(size.size.map(|s| s.memory_mb), Some(4096));
        let nothing = size_launch(&SizeRequest::default()).unwrap();
        assert_eq!(nothing.instance_type, DEFAULT_INSTANCE_TYPE);
        let both = SizeRequest {
            instance_type: Some("sim.large"),
            cpus: Some(2),
            ..SizeRequest::default()
        };
        assert_eq!(size_launch(&both).unwrap_err().field, Some("cpus"));
        let partial = SizeRequest {
            cpus: Some(2),
            ..SizeRequest::default()
        };
        assert_eq!(size_launch(&partial).unwrap_err().field, Some("memory_mb"));
        let none = SizeRequest {
            machine_type: Some(("tiny", None)),
            ..SizeRequest::default()
        };
        assert_eq!(size_launch(&none).unwrap_err().field, Some("machine_type"));
    }

    fn build(factory: &SimFactory, name: &str, settings: &Table) -> Arc<dyn Provider> {
        factory.build(ProviderContext {
            name,
            settings,
            observer: Arc::new(Calls::default()),
            data_dir: std::env::temp_dir(),
        })
    }

    #[tokio::test]
    async fn the_factory_keeps_built_providers_and_a_rebuild_keeps_the_cloud() {
        let factory = SimFactory::new();
        let settings = table("instances = 3\npending_secs = 0");
        let first = build(&factory, "demo", &settings);
        assert!(factory.provider("other").is_none());
        let sim = factory.provider("demo").unwrap();
        sim.set_faults(Faults {
            error_rate: 1.0,
            ..Faults::default()
        });
        let all = InstanceFilter::default();
        assert!(first.compute().unwrap().list_instances(&all).await.is_err());
        sim.set_faults(Faults::default());
        let compute = first.compute().unwrap();
        let ids: Vec<String> = compute
            .list_instances(&InstanceFilter {
                region: Some("sim-1".into()),
                ..InstanceFilter::default()
            })
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.id)
            .collect();
        compute
            .act("sim-1", &ids, overcast_provider::Action::Terminate)
            .await
            .unwrap();
        // Built again, as a restarted server would: the same cloud, terminations and all.
        let again = build(&factory, "demo", &settings);
        let listed = again.compute().unwrap().list_instances(&all).await.unwrap();
        assert_eq!(listed.len(), 3);
        assert_eq!(listed.iter().filter(|i| i.state.is_gone()).count(), 2);
        // Other settings make another cloud.
        let changed = build(&factory, "demo", &table("instances = 1"));
        let listed = changed
            .compute()
            .unwrap()
            .list_instances(&all)
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
    }
}
