//! Instances as the `Compute` capability. An instance's state is read from its transition
//! (the state it shows while changing, the state it changes to, from when and for how
//! long), so states move with the clock and nothing runs in the background. Launches honour
//! client tokens and min/max counts; actions are all or nothing and refused where EC2
//! refuses them.

use async_trait::async_trait;
use base64::Engine;
use overcast_provider::{
    Action, Compute, InstanceChange, InstanceFilter, LaunchDefaults, LaunchSize, LaunchSpec,
    ProviderError, ProviderErrorKind as Kind, SizeRequest,
};
use overcast_types::{tags, Instance, InstanceState, StagePolicy};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use time::OffsetDateTime;

use crate::errors::{self, instance_not_found, invalid, refusal, wrong_state};
use crate::world::{Region, World};
use crate::SimProvider;

/// The image every region offers besides the ones made there, so a launch needs nothing
/// made first.
pub const BASE_IMAGE: &str = "ami-sim-base";

/// The type of a launch that names no type or size.
pub const DEFAULT_INSTANCE_TYPE: &str = "sim.small";

/// A terminated instance stays listed this long, as EC2's do.
const TERMINATED_KEPT: Duration = Duration::from_secs(3600);

/// EC2's limit on user data, before base64.
const MAX_USER_DATA: usize = 16 * 1024;

/// EC2's limit on tags per resource.
const MAX_TAGS: usize = 50;

/// How long the simulated cloud takes for each kind of change.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// Launch, start and reboot; a container task from asked for to running.
    pub pending: Duration,
    /// Stop and terminate; a container task from asked to stop to stopped.
    pub stopping: Duration,
    /// An image from pending to available.
    pub image: Duration,
}

/// Where an instance's state stands: `during` from `from` for `takes`, then `then`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Transition {
    during: InstanceState,
    then: InstanceState,
    from: Duration,
    takes: Duration,
}

impl Transition {
    /// In `state` since the cloud began.
    fn settled(state: InstanceState) -> Transition {
        Transition::new(state, state, Duration::ZERO, Duration::ZERO)
    }

    pub fn new(
        during: InstanceState,
        then: InstanceState,
        from: Duration,
        takes: Duration,
    ) -> Transition {
        Transition {
            during,
            then,
            from,
            takes,
        }
    }

    fn state(&self, now: Duration) -> InstanceState {
        if now < self.from + self.takes {
            self.during
        } else {
            self.then
        }
    }
}

/// A launch recorded under its client token.
pub(crate) struct Launch {
    spec: LaunchSpec,
    ids: Vec<String>,
}

pub(crate) struct InstanceRecord {
    id: String,
    zone: String,
    image: String,
    instance_type: String,
    key_pair: Option<String>,
    security_groups: Vec<String>,
    user_data: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// Set again by every start, as EC2 does.
    launched_at: OffsetDateTime,
    private_ip: String,
    termination_protection: bool,
    pub transition: Transition,
}

impl InstanceRecord {
    pub fn state(&self, now: Duration) -> InstanceState {
        self.transition.state(now)
    }

    /// Terminated so long ago that EC2 would no longer list it.
    pub fn expired(&self, now: Duration) -> bool {
        self.state(now) == InstanceState::Terminated
            && now >= self.transition.from + self.transition.takes + TERMINATED_KEPT
    }

    /// Whether it holds on to a security group: a terminated instance no longer does.
    pub fn uses_group(&self, group: &str, now: Duration) -> bool {
        self.state(now) != InstanceState::Terminated
            && self.security_groups.iter().any(|g| g == group)
    }

    fn to_instance(&self, environment: &str, region: &str, now: Duration) -> Instance {
        let state = self.state(now);
        let state_reason = match state {
            InstanceState::Stopping
            | InstanceState::Stopped
            | InstanceState::Terminating
            | InstanceState::Terminated => Some("User initiated shutdown".to_string()),
            _ => None,
        };
        Instance {
            id: self.id.clone(),
            name: self.tags.get(tags::NAME).cloned(),
            environment: environment.to_string(),
            region: region.to_string(),
            zone: Some(self.zone.clone()),
            stage: None,
            state,
            instance_type: Some(self.instance_type.clone()),
            image: Some(self.image.clone()),
            private_ip: Some(self.private_ip.clone()),
            public_ip: None,
            ssh_address: None,
            state_reason,
            key_pair: self.key_pair.clone(),
            security_groups: self.security_groups.clone(),
            launched_at: Some(self.launched_at),
            tags: self.tags.clone(),
            org: None,
        }
    }

    /// A serial console's worth of lines for the state the instance is in.
    fn console(&self, now: Duration) -> String {
        let mut out = format!(
            "[    0.000000] Linux version 6.1.0-sim (overcast simulated instance {})\n",
            self.id
        );
        let state = self.state(now);
        if state != InstanceState::Pending {
            out.push_str("[    1.250000] cloud-init: modules:final finished\n");
            out.push_str(&format!("{} login:\n", self.id));
        }
        if matches!(
            state,
            InstanceState::Stopping
                | InstanceState::Stopped
                | InstanceState::Terminating
                | InstanceState::Terminated
        ) {
            out.push_str("[   42.000000] reboot: Power down\n");
        }
        out
    }
}

/// The availability zones of a region: `a`, `b` and `c`, as most EC2 regions have.
fn zones_of(region: &str) -> Vec<String> {
    ["a", "b", "c"]
        .iter()
        .map(|z| format!("{region}{z}"))
        .collect()
}

/// A private address from an instance's number, unique within a cloud of 16 million.
fn private_ip(number: u64) -> String {
    format!(
        "10.{}.{}.{}",
        (number >> 16) & 0xff,
        (number >> 8) & 0xff,
        number & 0xff
    )
}

/// Makes `count` running instances at start, spread over the regions, with stages cycling
/// through the default stage policy's and a `Name` each: what benchmarks and demos act on.
pub(crate) fn add_fleet(world: &mut World, regions: &[String], count: u32) {
    if regions.is_empty() {
        return;
    }
    let policy = StagePolicy::default();
    let launched_at = world.clock.wall();
    for i in 0..count as usize {
        let Some(region_name) = regions.get(i % regions.len()) else {
            return;
        };
        let zones = zones_of(region_name);
        let id = world.ids.next("i");
        let number = world.ids.issued();
        let mut tags = BTreeMap::from([(tags::NAME.to_string(), format!("sim-{i:05}"))]);
        if let Some(stage) = policy.stages.get(i % policy.stages.len().max(1)) {
            tags.insert(policy.tag_key.clone(), stage.clone());
        }
        let record = InstanceRecord {
            id: id.clone(),
            zone: zones[i % zones.len()].clone(),
            image: BASE_IMAGE.into(),
            instance_type: DEFAULT_INSTANCE_TYPE.into(),
            key_pair: None,
            security_groups: Vec::new(),
            user_data: None,
            tags,
            launched_at,
            private_ip: private_ip(number),
            termination_protection: false,
            transition: Transition::settled(InstanceState::Running),
        };
        if let Some(region) = world.regions.get_mut(region_name) {
            region.instances.insert(id, record);
        }
    }
}

/// What `action` does to an instance in `state`: nothing when it is so already, a
/// transition (shown, becomes, takes), or EC2's refusal, as the verb its message needs.
fn change_for(
    state: InstanceState,
    action: Action,
    timing: &Timing,
) -> Result<Option<(InstanceState, InstanceState, Duration)>, &'static str> {
    use InstanceState::*;
    match (action, state) {
        (Action::Start, Pending | Running | Rebooting) => Ok(None),
        (Action::Start, Stopped) => Ok(Some((Pending, Running, timing.pending))),
        (Action::Start, _) => Err("started"),
        (Action::Stop { .. }, Stopped) | (Action::Stop { force: false }, Stopping) => Ok(None),
        // A forced stop gives the guest no time to shut down.
        (Action::Stop { force: true }, Running | Rebooting | Stopping) => {
            Ok(Some((Stopping, Stopped, Duration::ZERO)))
        }
        (Action::Stop { force: false }, Running | Rebooting) => {
            Ok(Some((Stopping, Stopped, timing.stopping)))
        }
        (Action::Stop { .. }, _) => Err("stopped"),
        (Action::Reboot, Rebooting) => Ok(None),
        (Action::Reboot, Running) => Ok(Some((Rebooting, Running, timing.pending))),
        (Action::Reboot, _) => Err("rebooted"),
        (Action::Terminate, Terminating | Terminated) => Ok(None),
        (Action::Terminate, _) => Ok(Some((Terminating, Terminated, timing.stopping))),
    }
}

/// Checks user data as EC2 does: base64 of at most 16 KiB.
fn check_user_data(user_data: Option<&str>) -> Result<(), ProviderError> {
    let Some(encoded) = user_data else {
        return Ok(());
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| invalid("user_data", "user data is not base64"))?;
    if raw.len() > MAX_USER_DATA {
        return Err(invalid(
            "user_data",
            format!(
                "user data has {} bytes; at most 16 KiB are allowed",
                raw.len()
            ),
        ));
    }
    Ok(())
}

/// Checks a resource's whole tag set against EC2's limits.
pub(crate) fn check_tags(tags: &BTreeMap<String, String>) -> Result<(), ProviderError> {
    if tags.len() > MAX_TAGS {
        return Err(refusal(
            Kind::InvalidInput,
            "invalid_input",
            "TagLimitExceeded",
            format!("{} tags; a resource takes at most {MAX_TAGS}", tags.len()),
        )
        .with_field("tags"));
    }
    if let Some((key, _)) = tags
        .iter()
        .find(|(k, v)| k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256)
    {
        return Err(invalid(
            "tags",
            format!("tag `{key}`: keys have 1 to 128 characters, values at most 256"),
        ));
    }
    Ok(())
}

/// One attribute a modify call changes, as EC2 changes one per call.
enum Attribute<'a> {
    InstanceType(&'a str),
    TerminationProtection(bool),
    UserData(&'a str),
    SecurityGroups(&'a [String]),
}

impl SimProvider {
    /// Checks a launch as EC2 would and says how many instances it gets: up to
    /// `max_count`, as many as the region has room for, and at least `min_count` or none.
    fn admit(
        &self,
        region_name: &str,
        region: &Region,
        spec: &LaunchSpec,
        now: Duration,
    ) -> Result<u32, ProviderError> {
        if spec.min_count == 0 {
            return Err(invalid("min_count", "min_count must be at least 1"));
        }
        if spec.max_count < spec.min_count {
            return Err(invalid(
                "max_count",
                "max_count must not be below min_count",
            ));
        }
        if spec.instance_type.trim().is_empty() {
            return Err(refusal(
                Kind::InvalidInput,
                "invalid_instance_type",
                "InvalidInstanceType",
                "the instance type is empty",
            )
            .with_field("instance_type"));
        }
        if spec.image != BASE_IMAGE {
            let image = region
                .images
                .get(&spec.image)
                .ok_or_else(|| errors::image_not_found(&spec.image))?;
            if !image.is_available(now, self.timing.image) {
                return Err(refusal(
                    Kind::InvalidInput,
                    "image_not_found",
                    "InvalidAMIID.Unavailable",
                    format!("The image '{}' is pending", spec.image),
                )
                .with_field("image"));
            }
        }
        if let Some(key_pair) = &spec.key_pair {
            if !region.key_pairs.contains_key(key_pair) {
                return Err(errors::key_pair_not_found(key_pair));
            }
        }
        if let Some(group) = spec
            .security_groups
            .iter()
            .find(|g| !region.groups.contains_key(*g))
        {
            return Err(errors::group_not_found(group));
        }
        if let Some(subnet) = &spec.subnet {
            return Err(refusal(
                Kind::InvalidInput,
                "subnet_not_found",
                "InvalidSubnetID.NotFound",
                format!("The subnet ID '{subnet}' does not exist: the simulator has no subnets"),
            )
            .with_field("subnet"));
        }
        if let Some(zone) = &spec.zone {
            let zones = zones_of(region_name);
            if !zones.contains(zone) {
                return Err(invalid(
                    "zone",
                    format!(
                        "zone `{zone}` is not in {region_name} ({})",
                        zones.join(", ")
                    ),
                ));
            }
        }
        check_user_data(spec.user_data.as_deref())?;
        check_tags(&spec.tags)?;
        let room = match self.settings.capacity {
            None => spec.max_count,
            Some(capacity) => {
                let live = region
                    .instances
                    .values()
                    .filter(|i| !i.state(now).is_gone())
                    .count();
                capacity.saturating_sub(u32::try_from(live).unwrap_or(u32::MAX))
            }
        };
        if room < spec.min_count {
            return Err(refusal(
                Kind::Capacity,
                "backend_capacity",
                "InsufficientInstanceCapacity",
                format!(
                    "{region_name} has room for {room} more instance(s); the launch needs at least {}",
                    spec.min_count
                ),
            ));
        }
        Ok(room.min(spec.max_count))
    }

    /// Launches, or answers the instances of the earlier launch with the same client token.
    fn launch(&self, world: &mut World, spec: &LaunchSpec) -> Result<Vec<Instance>, ProviderError> {
        let now = world.clock.now();
        let launched_at = world.clock.wall();
        let World { ids, regions, .. } = world;
        let region_name = spec.region.as_str();
        let region = regions
            .get_mut(region_name)
            .ok_or_else(|| invalid("region", format!("no region {region_name}")))?;
        let token = (!self.settings.ignore_client_token && !spec.client_token.is_empty())
            .then_some(&spec.client_token);
        if let Some(earlier) = token.and_then(|t| region.launches.get(t)) {
            if earlier.spec != *spec {
                return Err(refusal(
                    Kind::Refused,
                    "backend_refused",
                    "IdempotentParameterMismatch",
                    "the client token was used for a different launch",
                ));
            }
            return Ok(earlier
                .ids
                .iter()
                .filter_map(|id| region.instances.get(id))
                .map(|i| i.to_instance(&self.environment, region_name, now))
                .collect());
        }
        let count = self.admit(region_name, region, spec, now)?;
        region.instances.retain(|_, i| !i.expired(now));
        let zones = zones_of(region_name);
        let mut made = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let id = ids.next("i");
            let number = ids.issued();
            let record = InstanceRecord {
                id: id.clone(),
                zone: spec
                    .zone
                    .clone()
                    .unwrap_or_else(|| zones[number as usize % zones.len()].clone()),
                image: spec.image.clone(),
                instance_type: spec.instance_type.clone(),
                key_pair: spec.key_pair.clone(),
                security_groups: spec.security_groups.clone(),
                user_data: spec.user_data.clone(),
                tags: spec.tags.clone(),
                launched_at,
                private_ip: private_ip(number),
                termination_protection: false,
                transition: Transition::new(
                    InstanceState::Pending,
                    InstanceState::Running,
                    now,
                    self.timing.pending,
                ),
            };
            made.push(record.to_instance(&self.environment, region_name, now));
            region.instances.insert(id, record);
        }
        if let Some(token) = token {
            let ids = made.iter().map(|i| i.id.clone()).collect();
            region.launches.insert(
                token.clone(),
                Launch {
                    spec: spec.clone(),
                    ids,
                },
            );
        }
        Ok(made)
    }

    /// The instances of one region that match the filter, by id.
    fn listing(
        &self,
        world: &World,
        region_name: &str,
        filter: &InstanceFilter,
    ) -> Result<Vec<Instance>, ProviderError> {
        let now = world.clock.now();
        let region = world.region(region_name)?;
        let matches = |i: &InstanceRecord| {
            !i.expired(now)
                && filter.tags.iter().all(|(k, v)| i.tags.get(k) == Some(v))
                && (filter.states.is_empty() || filter.states.contains(&i.state(now)))
        };
        let instance = |i: &InstanceRecord| i.to_instance(&self.environment, region_name, now);
        Ok(if filter.ids.is_empty() {
            region
                .instances
                .values()
                .filter(|i| matches(i))
                .map(instance)
                .collect()
        } else {
            // Ids of other regions are not here; EC2 answers each id once.
            let ids: BTreeSet<&String> = filter.ids.iter().collect();
            ids.into_iter()
                .filter_map(|id| region.instances.get(id))
                .filter(|i| matches(i))
                .map(instance)
                .collect()
        })
    }

    /// Carries out an action on every instance or, when one refuses, on none, as EC2 does.
    fn apply(
        &self,
        world: &mut World,
        region_name: &str,
        ids: &[String],
        action: Action,
    ) -> Result<(), ProviderError> {
        if ids.is_empty() {
            return Err(invalid("ids", "no instance ids given"));
        }
        let most = self.settings.max_ids_per_call;
        if ids.len() > most {
            return Err(invalid(
                "ids",
                format!("{} instance ids; one call takes at most {most}", ids.len()),
            ));
        }
        let now = world.clock.now();
        let launched_at = world.clock.wall();
        let region = world.region_mut(region_name)?;
        let mut changes = Vec::new();
        for id in ids {
            let record = region
                .instances
                .get(id)
                .filter(|i| !i.expired(now))
                .ok_or_else(|| instance_not_found(id))?;
            if action == Action::Terminate && record.termination_protection {
                return Err(refusal(
                    Kind::Conflict,
                    "operation_not_permitted",
                    "OperationNotPermitted",
                    format!(
                        "The instance '{id}' may not be terminated. Modify its \
                         'disableApiTermination' instance attribute and try again."
                    ),
                ));
            }
            let state = record.state(now);
            match change_for(state, action, &self.timing) {
                Ok(Some(change)) => changes.push((id, change)),
                Ok(None) => {}
                Err(verb) => return Err(wrong_state(id, state.as_str(), verb)),
            }
        }
        for (id, (during, then, takes)) in changes {
            if let Some(record) = region.instances.get_mut(id) {
                record.transition = Transition::new(during, then, now, takes);
                if action == Action::Start {
                    record.launched_at = launched_at;
                }
            }
        }
        Ok(())
    }

    fn modify(
        &self,
        world: &mut World,
        region_name: &str,
        id: &str,
        attribute: Attribute<'_>,
    ) -> Result<(), ProviderError> {
        let now = world.clock.now();
        let Region {
            instances, groups, ..
        } = world.region_mut(region_name)?;
        let record = instances
            .get_mut(id)
            .filter(|i| !i.expired(now))
            .ok_or_else(|| instance_not_found(id))?;
        let state = record.state(now);
        let stopped = || {
            if state == InstanceState::Stopped {
                Ok(())
            } else {
                Err(wrong_state(id, state.as_str(), "modified"))
            }
        };
        if state.is_gone() {
            return Err(wrong_state(id, state.as_str(), "modified"));
        }
        match attribute {
            Attribute::InstanceType(instance_type) => {
                stopped()?;
                if instance_type.trim().is_empty() {
                    return Err(invalid("instance_type", "the instance type is empty"));
                }
                record.instance_type = instance_type.to_string();
            }
            Attribute::TerminationProtection(on) => record.termination_protection = on,
            Attribute::UserData(user_data) => {
                stopped()?;
                check_user_data(Some(user_data))?;
                record.user_data = Some(user_data.to_string());
            }
            Attribute::SecurityGroups(list) => {
                if list.is_empty() {
                    return Err(invalid(
                        "security_groups",
                        "an instance needs at least one security group",
                    ));
                }
                if let Some(group) = list.iter().find(|g| !groups.contains_key(*g)) {
                    return Err(errors::group_not_found(group));
                }
                record.security_groups = list.to_vec();
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Compute for SimProvider {
    fn size_launch(&self, request: &SizeRequest<'_>) -> Result<LaunchSize, ProviderError> {
        crate::settings::size_launch(request)
    }

    fn launch_defaults(&self) -> LaunchDefaults {
        LaunchDefaults {
            key_pair: self.settings.key_pair.clone(),
            security_groups: self.settings.security_groups.clone(),
            subnet: None,
        }
    }

    async fn list_instances(
        &self,
        filter: &InstanceFilter,
    ) -> Result<Vec<Instance>, ProviderError> {
        let mut instances = Vec::new();
        for region in self.regions_of(filter.region.as_deref()) {
            let found = self
                .run("DescribeInstances", &region, |world| {
                    self.listing(world, &region, filter)
                })
                .await?;
            instances.extend(found);
        }
        Ok(instances)
    }

    async fn check_launch(&self, spec: &LaunchSpec) -> Result<(), ProviderError> {
        self.run("RunInstances", &spec.region, |world| {
            let now = world.clock.now();
            let region = world.region(&spec.region)?;
            self.admit(&spec.region, region, spec, now).map(|_| ())
        })
        .await
    }

    async fn run_instances(&self, spec: &LaunchSpec) -> Result<Vec<Instance>, ProviderError> {
        self.run("RunInstances", &spec.region, |world| {
            self.launch(world, spec)
        })
        .await
    }

    fn max_ids_per_call(&self) -> usize {
        self.settings.max_ids_per_call
    }

    async fn act(&self, region: &str, ids: &[String], action: Action) -> Result<(), ProviderError> {
        let name = match action {
            Action::Start => "StartInstances",
            Action::Stop { .. } => "StopInstances",
            Action::Reboot => "RebootInstances",
            Action::Terminate => "TerminateInstances",
        };
        self.run(name, region, |world| self.apply(world, region, ids, action))
            .await
    }

    async fn zones(&self, region: &str) -> Result<Vec<String>, ProviderError> {
        self.run("DescribeAvailabilityZones", region, |_| {
            Ok(zones_of(region))
        })
        .await
    }

    /// One call per attribute, as EC2 takes them.
    async fn modify_instance(
        &self,
        region: &str,
        id: &str,
        change: &InstanceChange,
    ) -> Result<(), ProviderError> {
        let mut attributes = Vec::new();
        if let Some(instance_type) = &change.instance_type {
            attributes.push(Attribute::InstanceType(instance_type));
        }
        if let Some(on) = change.termination_protection {
            attributes.push(Attribute::TerminationProtection(on));
        }
        if let Some(user_data) = &change.user_data {
            attributes.push(Attribute::UserData(user_data));
        }
        if let Some(groups) = &change.security_groups {
            attributes.push(Attribute::SecurityGroups(groups));
        }
        for attribute in attributes {
            self.run("ModifyInstanceAttribute", region, |world| {
                self.modify(world, region, id, attribute)
            })
            .await?;
        }
        Ok(())
    }

    async fn console_output(&self, region: &str, id: &str) -> Result<String, ProviderError> {
        self.run("GetConsoleOutput", region, |world| {
            let now = world.clock.now();
            world
                .region(region)?
                .instances
                .get(id)
                .filter(|i| !i.expired(now))
                .map(|i| i.console(now))
                .ok_or_else(|| instance_not_found(id))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{provider, settings};
    use crate::{Faults, Settings};

    fn spec(count: u32) -> LaunchSpec {
        LaunchSpec {
            region: "sim-1".into(),
            image: BASE_IMAGE.into(),
            instance_type: DEFAULT_INSTANCE_TYPE.into(),
            min_count: count,
            max_count: count,
            key_pair: None,
            security_groups: vec![],
            subnet: None,
            zone: None,
            user_data: None,
            tags: BTreeMap::from([("stage".to_string(), "dev".to_string())]),
            client_token: "op_1".into(),
            size: None,
            name: None,
        }
    }

    async fn state_of(sim: &SimProvider, id: &str) -> InstanceState {
        let filter = InstanceFilter {
            ids: vec![id.to_string()],
            ..InstanceFilter::default()
        };
        sim.list_instances(&filter).await.unwrap()[0].state
    }

    #[tokio::test]
    async fn states_move_with_the_clock() {
        let (sim, _) = provider(settings(10.0));
        let launched = sim.run_instances(&spec(1)).await.unwrap();
        let id = launched[0].id.clone();
        assert_eq!(launched[0].state, InstanceState::Pending);
        assert_eq!(launched[0].zone.as_deref(), Some("sim-1b"));
        assert_eq!(state_of(&sim, &id).await, InstanceState::Pending);
        sim.advance_clock(Duration::from_secs(10));
        assert_eq!(state_of(&sim, &id).await, InstanceState::Running);
        let ids = vec![id.clone()];
        sim.act("sim-1", &ids, Action::Reboot).await.unwrap();
        assert_eq!(state_of(&sim, &id).await, InstanceState::Rebooting);
        sim.advance_clock(Duration::from_secs(10));
        sim.act("sim-1", &ids, Action::Stop { force: false })
            .await
            .unwrap();
        assert_eq!(state_of(&sim, &id).await, InstanceState::Stopping);
        // Stopping again is no error; starting while stopping is.
        sim.act("sim-1", &ids, Action::Stop { force: false })
            .await
            .unwrap();
        let refused = sim.act("sim-1", &ids, Action::Start).await.unwrap_err();
        assert_eq!(refused.code, "wrong_state");
        sim.advance_clock(Duration::from_secs(10));
        assert_eq!(state_of(&sim, &id).await, InstanceState::Stopped);
        sim.act("sim-1", &ids, Action::Start).await.unwrap();
        assert_eq!(state_of(&sim, &id).await, InstanceState::Pending);
        sim.advance_clock(Duration::from_secs(10));
        sim.act("sim-1", &ids, Action::Stop { force: true })
            .await
            .unwrap();
        assert_eq!(state_of(&sim, &id).await, InstanceState::Stopped);
        sim.act("sim-1", &ids, Action::Terminate).await.unwrap();
        assert_eq!(state_of(&sim, &id).await, InstanceState::Terminating);
        sim.advance_clock(Duration::from_secs(10));
        assert_eq!(state_of(&sim, &id).await, InstanceState::Terminated);
        let refused = sim.act("sim-1", &ids, Action::Start).await.unwrap_err();
        assert_eq!(
            (refused.kind, refused.code, refused.backend_code.as_deref()),
            (
                Kind::Conflict,
                "wrong_state",
                Some("IncorrectInstanceState")
            )
        );
        sim.act("sim-1", &ids, Action::Terminate).await.unwrap();
        // Terminated instances stay listed for an hour, then are gone.
        sim.advance_clock(TERMINATED_KEPT);
        let filter = InstanceFilter::default();
        assert!(sim.list_instances(&filter).await.unwrap().is_empty());
        let gone = sim.act("sim-1", &ids, Action::Terminate).await.unwrap_err();
        assert_eq!(gone.code, "instance_not_found");
    }

    #[tokio::test]
    async fn with_no_delay_a_launch_is_running_at_once() {
        let (sim, _) = provider(settings(0.0));
        let launched = sim.run_instances(&spec(2)).await.unwrap();
        assert!(launched.iter().all(|i| i.state == InstanceState::Running));
    }

    #[tokio::test]
    async fn actions_are_all_or_nothing_and_refused_as_ec2_refuses_them() {
        let (sim, _) = provider(settings(0.0));
        let ids: Vec<String> = sim
            .run_instances(&spec(2))
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.id)
            .collect();
        let with_missing = vec![ids[0].clone(), "i-404".to_string()];
        let error = sim
            .act("sim-1", &with_missing, Action::Stop { force: false })
            .await
            .unwrap_err();
        assert_eq!(error.code, "instance_not_found");
        assert_eq!(state_of(&sim, &ids[0]).await, InstanceState::Running);
        // Instances are found only in their own region.
        let elsewhere = sim.act("sim-2", &ids, Action::Reboot).await.unwrap_err();
        assert_eq!(elsewhere.code, "instance_not_found");
        let protect = InstanceChange {
            termination_protection: Some(true),
            ..InstanceChange::default()
        };
        sim.modify_instance("sim-1", &ids[1], &protect)
            .await
            .unwrap();
        let error = sim.act("sim-1", &ids, Action::Terminate).await.unwrap_err();
        assert_eq!(error.code, "operation_not_permitted");
        assert_eq!(state_of(&sim, &ids[0]).await, InstanceState::Running);
        let too_many = vec![ids[0].clone(); 1001];
        let error = sim
            .act("sim-1", &too_many, Action::Start)
            .await
            .unwrap_err();
        assert_eq!(error.field, Some("ids"));
    }

    #[tokio::test]
    async fn a_repeated_launch_with_the_same_client_token_answers_the_same_instances() {
        let (sim, calls) = provider(settings(0.0));
        let first = sim.run_instances(&spec(3)).await.unwrap();
        let again = sim.run_instances(&spec(3)).await.unwrap();
        assert_eq!(first.len(), 3);
        assert_eq!(
            first.iter().map(|i| &i.id).collect::<Vec<_>>(),
            again.iter().map(|i| &i.id).collect::<Vec<_>>()
        );
        let other = sim
            .run_instances(&LaunchSpec {
                client_token: "op_2".into(),
                ..spec(3)
            })
            .await
            .unwrap();
        assert!(other.iter().all(|i| !first.iter().any(|f| f.id == i.id)));
        let mismatch = sim.run_instances(&spec(4)).await.unwrap_err();
        assert_eq!(
            mismatch.backend_code.as_deref(),
            Some("IdempotentParameterMismatch")
        );
        assert_eq!(calls.count("RunInstances", "ok"), 3);
        let all = sim
            .list_instances(&InstanceFilter::default())
            .await
            .unwrap();
        assert_eq!(all.len(), 6);
    }

    #[tokio::test]
    async fn ignoring_client_tokens_launches_again_as_moto_does() {
        let (sim, _) = provider(Settings {
            ignore_client_token: true,
            ..settings(0.0)
        });
        sim.run_instances(&spec(2)).await.unwrap();
        sim.run_instances(&spec(2)).await.unwrap();
        let all = sim
            .list_instances(&InstanceFilter::default())
            .await
            .unwrap();
        assert_eq!(all.len(), 4);
    }

    #[tokio::test]
    async fn a_launch_gets_what_capacity_allows_between_min_and_max() {
        let (sim, _) = provider(Settings {
            capacity: Some(5),
            ..settings(0.0)
        });
        let some = LaunchSpec {
            min_count: 2,
            max_count: 4,
            ..spec(0)
        };
        assert_eq!(sim.run_instances(&some).await.unwrap().len(), 4);
        let more = LaunchSpec {
            client_token: "op_2".into(),
            ..some.clone()
        };
        let refused = sim.run_instances(&more).await.unwrap_err();
        assert_eq!(
            (refused.kind, refused.code),
            (Kind::Capacity, "backend_capacity")
        );
        assert!(sim.check_launch(&more).await.is_err());
        let one = LaunchSpec {
            min_count: 1,
            ..more
        };
        assert!(sim.check_launch(&one).await.is_ok());
        assert_eq!(sim.run_instances(&one).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn launches_are_checked_and_a_dry_run_launches_nothing() {
        let (sim, _) = provider(settings(0.0));
        let cases: Vec<(LaunchSpec, Option<&str>)> = vec![
            (
                LaunchSpec {
                    image: "ami-404".into(),
                    ..spec(1)
                },
                Some("image"),
            ),
            (
                LaunchSpec {
                    key_pair: Some("nobody".into()),
                    ..spec(1)
                },
                Some("key_pair"),
            ),
            (
                LaunchSpec {
                    security_groups: vec!["sg-404".into()],
                    ..spec(1)
                },
                Some("security_groups"),
            ),
            (
                LaunchSpec {
                    zone: Some("sim-2a".into()),
                    ..spec(1)
                },
                Some("zone"),
            ),
            (
                LaunchSpec {
                    user_data: Some("not base64!".into()),
                    ..spec(1)
                },
                Some("user_data"),
            ),
            (
                LaunchSpec {
                    subnet: Some("subnet-1".into()),
                    ..spec(1)
                },
                Some("subnet"),
            ),
            (spec(0), Some("min_count")),
        ];
        for (bad, field) in cases {
            assert_eq!(sim.check_launch(&bad).await.unwrap_err().field, field);
            assert_eq!(sim.run_instances(&bad).await.unwrap_err().field, field);
        }
        sim.check_launch(&spec(1)).await.unwrap();
        assert!(sim
            .list_instances(&InstanceFilter::default())
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn a_call_that_acts_then_fails_has_acted() {
        let (sim, calls) = provider(settings(0.0));
        let ids = vec![sim.run_instances(&spec(1)).await.unwrap()[0].id.clone()];
        sim.set_faults(Faults {
            act_then_fail_rate: 1.0,
            actions: vec!["StopInstances".into(), "RunInstances".into()],
            ..Faults::default()
        });
        let error = sim
            .act("sim-1", &ids, Action::Stop { force: false })
            .await
            .unwrap_err();
        assert_eq!((error.kind, error.code), (Kind::Timeout, "backend_timeout"));
        assert_eq!(state_of(&sim, &ids[0]).await, InstanceState::Stopped);
        assert_eq!(calls.count("StopInstances", "backend_timeout"), 1);
        // The launch whose answer was lost is found again by its client token.
        let lost = LaunchSpec {
            client_token: "op_lost".into(),
            ..spec(2)
        };
        sim.run_instances(&lost).await.unwrap_err();
        sim.set_faults(Faults::default());
        assert_eq!(sim.run_instances(&lost).await.unwrap().len(), 2);
        let all = sim
            .list_instances(&InstanceFilter::default())
            .await
            .unwrap();
        assert_eq!(all.len(), 3);
    }

    #[tokio::test]
    async fn a_refused_call_does_nothing() {
        let (sim, _) = provider(settings(0.0));
        let ids = vec![sim.run_instances(&spec(1)).await.unwrap()[0].id.clone()];
        sim.set_faults(Faults {
            error_rate: 1.0,
            actions: vec!["TerminateInstances".into()],
            ..Faults::default()
        });
        let error = sim.act("sim-1", &ids, Action::Terminate).await.unwrap_err();
        assert_eq!(error.code, "backend_unavailable");
        assert_eq!(state_of(&sim, &ids[0]).await, InstanceState::Running);
    }

    #[tokio::test]
    async fn listings_filter_by_region_ids_tags_and_states() {
        let (sim, _) = provider(settings(0.0));
        let a = sim.run_instances(&spec(2)).await.unwrap();
        let b = sim
            .run_instances(&LaunchSpec {
                region: "sim-2".into(),
                tags: BTreeMap::from([("stage".to_string(), "prod".to_string())]),
                ..spec(1)
            })
            .await
            .unwrap();
        let list = |filter: InstanceFilter| {
            let sim = &sim;
            async move {
                sim.list_instances(&filter)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|i| i.id)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(list(InstanceFilter::default()).await.len(), 3);
        let in_two = InstanceFilter {
            region: Some("sim-2".into()),
            ..InstanceFilter::default()
        };
        assert_eq!(list(in_two).await, [b[0].id.clone()]);
        let by_ids = InstanceFilter {
            ids: vec![b[0].id.clone(), a[0].id.clone(), a[0].id.clone()],
            ..InstanceFilter::default()
        };
        assert_eq!(list(by_ids).await, [a[0].id.clone(), b[0].id.clone()]);
        let prod = InstanceFilter {
            tags: BTreeMap::from([("stage".to_string(), "prod".to_string())]),
            ..InstanceFilter::default()
        };
        assert_eq!(list(prod).await, [b[0].id.clone()]);
        sim.act("sim-1", &[a[1].id.clone()], Action::Stop { force: true })
            .await
            .unwrap();
        let stopped = InstanceFilter {
            states: vec![InstanceState::Stopped],
            ..InstanceFilter::default()
        };
        assert_eq!(list(stopped).await, [a[1].id.clone()]);
    }

    #[tokio::test]
    async fn a_fleet_of_ten_thousand_lists_in_milliseconds_and_filters_by_stage() {
        let (sim, calls) = provider(Settings {
            instances: 10_000,
            ..settings(60.0)
        });
        let started = std::time::Instant::now();
        let all = sim
            .list_instances(&InstanceFilter::default())
            .await
            .unwrap();
        let took = started.elapsed();
        assert_eq!(all.len(), 10_000);
        assert!(all.iter().all(|i| i.state == InstanceState::Running));
        // Generous for an unoptimised test build; a release build takes a few ms.
        assert!(took < Duration::from_millis(500), "listing took {took:?}");
        assert_eq!(calls.count("DescribeInstances", "ok"), 2);
        let prod = InstanceFilter {
            tags: BTreeMap::from([("stage".to_string(), "prod".to_string())]),
            ..InstanceFilter::default()
        };
        let started = std::time::Instant::now();
        let found = sim.list_instances(&prod).await.unwrap();
        assert!(started.elapsed() < Duration::from_millis(500));
        assert_eq!(found.len(), 3_333);
        let dev_in_two = InstanceFilter {
            region: Some("sim-2".into()),
            tags: BTreeMap::from([("stage".to_string(), "dev".to_string())]),
            ..InstanceFilter::default()
        };
        let found = sim.list_instances(&dev_in_two).await.unwrap();
        // Instance i is in region i % 2 and stage i % 3: odd multiples of 3.
        assert_eq!(found.len(), 1_667);
        assert!(found.iter().all(|i| i.region == "sim-2"));
        let in_one: Vec<String> = all
            .iter()
            .filter(|i| i.region == "sim-1")
            .take(1000)
            .map(|i| i.id.clone())
            .collect();
        sim.act("sim-1", &in_one, Action::Stop { force: false })
            .await
            .unwrap();
        let stopping = InstanceFilter {
            states: vec![InstanceState::Stopping],
            ..InstanceFilter::default()
        };
        assert_eq!(sim.list_instances(&stopping).await.unwrap().len(), 1000);
    }

    #[tokio::test]
    async fn modify_changes_attributes_where_the_state_allows() {
        let (sim, calls) = provider(settings(0.0));
        let id = sim.run_instances(&spec(1)).await.unwrap()[0].id.clone();
        let resize = InstanceChange {
            instance_type: Some("sim.large".into()),
            user_data: Some("ZWNobyBoaQ==".into()),
            ..InstanceChange::default()
        };
        let refused = sim
            .modify_instance("sim-1", &id, &resize)
            .await
            .unwrap_err();
        assert_eq!(refused.code, "wrong_state");
        sim.act(
            "sim-1",
            std::slice::from_ref(&id),
            Action::Stop { force: true },
        )
        .await
        .unwrap();
        sim.modify_instance("sim-1", &id, &resize).await.unwrap();
        let filter = InstanceFilter {
            ids: vec![id.clone()],
            ..InstanceFilter::default()
        };
        let instance = sim.list_instances(&filter).await.unwrap().remove(0);
        assert_eq!(instance.instance_type.as_deref(), Some("sim.large"));
        assert_eq!(calls.count("ModifyInstanceAttribute", "ok"), 2);
        let groups = InstanceChange {
            security_groups: Some(vec!["sg-404".into()]),
            ..InstanceChange::default()
        };
        let refused = sim
            .modify_instance("sim-1", &id, &groups)
            .await
            .unwrap_err();
        assert_eq!(refused.code, "security_group_not_found");
        assert!(sim
            .console_output("sim-1", &id)
            .await
            .unwrap()
            .contains("Power down"));
        assert_eq!(
            sim.zones("sim-2").await.unwrap(),
            ["sim-2a", "sim-2b", "sim-2c"]
        );
    }
}
