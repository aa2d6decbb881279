//! Instances: create, list, get, act on, tag and read the console of virtual machines, with
//! org scoping and stages derived from tags. Every change is an operation whose executor
//! can be re-run after a crash without acting twice.

use crate::auth::Principal;
use crate::bulk::{make_plan, BulkAction, BulkRequest};
use crate::{environments, visible, Launch, Tagged};
use crate::{to_input, Core, Idempotency};
use async_trait::async_trait;
use base64::Engine;
use overcast_provider::{Compute, InstanceChange, InstanceFilter, LaunchSpec, MachineSize};
use overcast_types::Role;
use overcast_types::{
    tags, Error, ErrorKind, Instance, InstanceState, Owned, TargetOutcome, TargetResult,
};
use overcast_types::{Operation, Page};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use utoipa::ToSchema;

use crate::config::{ProviderKind, QemuMachine};
use crate::environments::{Environment, Environments};
use crate::operations::{Cancellation, Executor, Step};
use crate::provider_error;

pub const CREATE_KIND: &str = "instance.create";
pub const MODIFY_KIND: &str = "instance.modify";

/// The most instances one create may launch.
pub const MAX_COUNT: u32 = 1000;
/// EC2's limit on user data, after base64.
const MAX_USER_DATA: usize = 16 * 1024;
/// How long an action may take to reach its state before the operation fails.
const STATE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// A request to launch instances.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInstancesRequest {
    /// The `Name` tag.
    #[serde(default)]
    pub name: Option<String>,
    /// A configured machine type; `image` and `instance_type` override its parts.
    #[serde(default)]
    pub machine_type: Option<String>,
    /// The provider's image id, e.g. `ami-...`.
    #[serde(default)]
    pub image: Option<String>,
    /// The provider's size, e.g. `t3.small`.
    #[serde(default)]
    pub instance_type: Option<String>,
    /// qemu: virtual CPUs; with `memory_mb` and `disk_gb`, overrides the machine type's.
    #[serde(default)]
    pub cpus: Option<u32>,
    /// qemu: memory in MB.
    #[serde(default)]
    pub memory_mb: Option<u64>,
    /// qemu: disk size in GB.
    #[serde(default)]
    pub disk_gb: Option<u64>,
    /// Exactly this many (default 1). Or give `min_count` and `max_count`.
    #[serde(default)]
    pub count: Option<u32>,
    #[serde(default)]
    pub min_count: Option<u32>,
    #[serde(default)]
    pub max_count: Option<u32>,
    /// Default: the environment's first stage.
    #[serde(default)]
    pub stage: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// A shell script or `#cloud-config` as plain text, or the same in base64.
    #[serde(default)]
    pub user_data: Option<String>,
    #[serde(default)]
    pub key_pair: Option<String>,
    #[serde(default)]
    pub security_groups: Vec<String>,
    #[serde(default)]
    pub subnet: Option<String>,
    /// An availability zone, e.g. `eu-west-1a`.
    #[serde(default)]
    pub zone: Option<String>,
    /// Default: the environment's first region.
    #[serde(default)]
    pub region: Option<String>,
    /// Ask the backend whether the launch would be allowed; launch nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// Attributes to change on an instance. Instance type and user data need the instance
/// stopped, as EC2 requires.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModifyInstanceRequest {
    #[serde(default)]
    pub instance_type: Option<String>,
    /// While on, terminate is refused.
    #[serde(default)]
    pub termination_protection: Option<bool>,
    /// A script or `#cloud-config` as text, or base64.
    #[serde(default)]
    pub user_data: Option<String>,
    /// Replaces the instance's security groups.
    #[serde(default)]
    pub security_groups: Option<Vec<String>>,
}

impl ModifyInstanceRequest {
    /// Checks the request against the instance's state and makes the change.
    pub fn change_for(&self, instance: &Instance) -> Result<InstanceChange, Error> {
        if self.instance_type.is_none()
            && self.termination_protection.is_none()
            && self.user_data.is_none()
            && self.security_groups.is_none()
        {
            return Err(Error::invalid("body", "give at least one of instance_type, termination_protection, user_data, security_groups"));
        }
        if instance.state.is_gone() {
            return Err(Error::conflict(
                "wrong_state",
                format!("instance {} is {}", instance.id, instance.state.as_str()),
            ));
        }
        for (field, given) in [
            ("instance_type", self.instance_type.is_some()),
            ("user_data", self.user_data.is_some()),
        ] {
            if given && instance.state != InstanceState::Stopped {
                return Err(Error::conflict(
                    "instance_not_stopped",
                    format!(
                        "instance {} is {}: stop it before changing {field}",
                        instance.id,
                        instance.state.as_str()
                    ),
                ));
            }
        }
        if let Some(t) = &self.instance_type {
            if t.trim().is_empty() {
                return Err(Error::invalid("instance_type", "must not be empty"));
            }
        }
        if let Some(groups) = &self.security_groups {
            if groups.is_empty() {
                return Err(Error::invalid(
                    "security_groups",
                    "an instance needs at least one security group",
                ));
            }
        }
        Ok(InstanceChange {
            instance_type: self.instance_type.clone(),
            termination_protection: self.termination_protection,
            user_data: self
                .user_data
                .as_deref()
                .map(encode_user_data)
                .transpose()?,
            security_groups: self.security_groups.clone(),
        })
    }
}

/// A region of an environment and its zones.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RegionView {
    pub name: String,
    pub zones: Vec<String>,
}

/// What an `instance.modify` operation records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ModifyInput {
    pub environment: String,
    pub region: String,
    pub id: String,
    pub change: InstanceChange,
}

/// Runs `instance.modify`: setting an attribute to a value is idempotent.
pub(crate) struct ModifyExecutor {
    pub environments: Arc<Environments>,
}

#[async_trait]
impl Executor for ModifyExecutor {
    async fn run(&self, step: &mut Step) -> Result<(), Error> {
        let input: ModifyInput = step.input()?;
        let env = self.environments.require(&input.environment)?;
        let compute = env.compute()?;
        step.set_total(1).await?;
        compute
            .modify_instance(&input.region, &input.id, &input.change)
            .await
            .map_err(provider_error)?;
        step.record(TargetResult {
            target: input.id.clone(),
            outcome: TargetOutcome::Done,
            message: None,
            detail: None,
        })
        .await
    }
}

/// Which instances to list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceQuery {
    pub stage: Option<String>,
    pub state: Option<InstanceState>,
    pub name: Option<String>,
    pub region: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub limit: u32,
    pub page_token: Option<String>,
}

/// What an `instance.create` operation records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LaunchInput {
    pub environment: String,
    pub spec: LaunchSpec,
}

/// What an `instance.tag` operation records: tags to set and keys to remove.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TagInput {
    pub environment: String,
    pub region: String,
    pub ids: Vec<String>,
    pub set: BTreeMap<String, String>,
    pub remove: Vec<String>,
}

/// How long a listing stays for its later pages.
const SNAPSHOT_TTL: Duration = Duration::from_secs(60);
/// The most listings kept at once; the oldest go first.
const MAX_SNAPSHOTS: usize = 256;

/// Listings kept for their later pages. A backend cannot sort by id or filter by org across
/// regions, so a listing is fetched whole; keeping it for a minute makes paging through N
/// instances cost one backend listing instead of one per page, and makes the pages of one
/// listing consistent. A listing is kept for the token and query that made it, never
/// shown to another caller.
#[derive(Default)]
pub struct Snapshots {
    kept: std::sync::Mutex<HashMap<String, Snapshot>>,
}

struct Snapshot {
    owner: String,
    taken: Instant,
    instances: Arc<Vec<Instance>>,
}

impl Snapshots {
    /// The listing `id`, if it is still kept for `owner`.
    pub fn get(&self, id: &str, owner: &str) -> Option<Arc<Vec<Instance>>> {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.get(id)
            .filter(|s| s.owner == owner && s.taken.elapsed() < SNAPSHOT_TTL)
            .map(|s| s.instances.clone())
    }

    /// Keeps a listing for `owner`; returns its id.
    pub fn keep(&self, owner: String, instances: Arc<Vec<Instance>>) -> String {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.retain(|_, s| s.taken.elapsed() < SNAPSHOT_TTL);
        if kept.len() >= MAX_SNAPSHOTS {
            if let Some(oldest) = kept
                .iter()
                .min_by_key(|(_, s)| s.taken)
                .map(|(id, _)| id.clone())
            {
                kept.remove(&oldest);
            }
        }
        let id = crate::new_id("ls");
        kept.insert(
            id.clone(),
            Snapshot {
                owner,
                taken: Instant::now(),
                instances,
            },
        );
        id
    }
}

/// One page of a sorted listing after the id `after`, and the token of the next page:
/// `SNAPSHOT.LAST_ID`. The last id alone still pages correctly once the snapshot is gone.
pub fn page_of(
    all: &[Instance],
    after: Option<&str>,
    limit: u32,
    snapshot: impl FnOnce() -> String,
) -> (Vec<Instance>, Option<String>) {
    let start = after.map_or(0, |a| all.partition_point(|i| i.id.as_str() <= a));
    let end = (start + limit.max(1) as usize).min(all.len());
    let page = all[start..end].to_vec();
    let next = (end < all.len()).then(|| format!("{}.{}", snapshot(), all[end - 1].id));
    (page, next)
}

impl Environment {
    /// Fills in what overcast derives from tags: stage and org.
    pub fn decorate(&self, instance: Instance) -> Instance {
        let mut instance = self.own(instance);
        instance.stage = instance.tags.get(&self.stages.tag_key).cloned();
        instance
    }

    /// Sets the org that owns a resource: its `overcast:org` tag, else the default org.
    pub fn own<T: Owned>(&self, mut resource: T) -> T {
        let org = resource
            .tags()
            .get(tags::ORG)
            .cloned()
            .or_else(|| self.config.default_org.clone());
        resource.set_org(org);
        resource
    }

    /// A region of this environment: the one asked for (checked), else the first.
    pub fn region_or_first(&self, region: Option<&str>) -> Result<String, Error> {
        self.check_region(self.compute()?, region)
    }

    fn check_region(&self, compute: &dyn Compute, region: Option<&str>) -> Result<String, Error> {
        let regions = compute.regions();
        match region {
            None => regions
                .first()
                .cloned()
                .ok_or_else(|| Error::invalid("region", "the environment has no region")),
            Some(r) if regions.iter().any(|known| known == r) => Ok(r.to_string()),
            Some(r) => Err(Error::invalid(
                "region",
                format!(
                    "`{r}` is not one of this environment's regions ({})",
                    regions.join(", ")
                ),
            )),
        }
    }

    /// Turns a create request into a launch spec: machine type, defaults, stage, tags.
    pub(crate) fn launch_spec(
        &self,
        request: &CreateInstancesRequest,
        machine_types: &BTreeMap<String, crate::config::MachineType>,
        org: &str,
        created_by: &str,
    ) -> Result<LaunchSpec, Error> {
        let compute = self.compute()?;
        let region = self.check_region(compute, request.region.as_deref())?;
        let machine = match &request.machine_type {
            None => None,
            Some(name) => Some(machine_types.get(name).ok_or_else(|| {
                Error::invalid("machine_type", format!("no machine type `{name}`"))
            })?),
        };
        let lacks_size = |name: &str, provider: &str| {
            Error::invalid(
                "machine_type",
                format!("machine type `{name}` has no size for provider {provider}"),
            )
        };
        let numbers = [
            ("cpus", request.cpus.is_some()),
            ("memory_mb", request.memory_mb.is_some()),
            ("disk_gb", request.disk_gb.is_some()),
        ];
        let (image, instance_type, size) = match self.config.provider {
            ProviderKind::Aws => {
                if let Some((field, _)) = numbers.iter().find(|(_, given)| *given) {
                    return Err(Error::invalid(
                        *field,
                        "sizes in numbers are for provider qemu; give an instance_type",
                    ));
                }
                let sized = match (&request.machine_type, machine) {
                    (Some(name), Some(machine)) => {
                        Some(machine.aws.clone().ok_or_else(|| lacks_size(name, "aws"))?)
                    }
                    _ => None,
                };
                let image = request
                    .image
                    .clone()
                    .or_else(|| sized.as_ref().and_then(|m| m.image.clone()))
                    .ok_or_else(|| {
                        Error::invalid("image", "give an image, or a machine_type that has one")
                    })?;
                let instance_type = request
                    .instance_type
                    .clone()
                    .or_else(|| sized.as_ref().map(|m| m.instance_type.clone()))
                    .ok_or_else(|| {
                        Error::invalid("instance_type", "give an instance_type, or a machine_type")
                    })?;
                (image, instance_type, None)
            }
            ProviderKind::Qemu => {
                if request.instance_type.is_some() {
                    return Err(Error::invalid(
                        "instance_type",
                        "instance types are for provider aws; give a machine_type, or cpus, memory_mb and disk_gb",
                    ));
                }
                let sized = match (&request.machine_type, machine) {
                    (Some(name), Some(machine)) => Some(
                        machine
                            .qemu
                            .clone()
                            .ok_or_else(|| lacks_size(name, "qemu"))?,
                    ),
                    _ => None,
                };
                let pick = |given: Option<u64>, field: &str, from: fn(&QemuMachine) -> u64| {
                    given.or_else(|| sized.as_ref().map(from)).ok_or_else(|| {
                        Error::invalid(field, "give a machine_type, or cpus, memory_mb and disk_gb")
                    })
                };
                let size = MachineSize {
                    cpus: pick(request.cpus.map(u64::from), "cpus", |m| u64::from(m.cpus))? as u32,
                    memory_mb: pick(request.memory_mb, "memory_mb", |m| m.memory_mb)?,
                    disk_gb: pick(request.disk_gb, "disk_gb", |m| m.disk_gb)?,
                };
                let image = request
                    .image
                    .clone()
                    .or_else(|| sized.as_ref().and_then(|m| m.image.clone()))
                    .ok_or_else(|| {
                        Error::invalid(
                            "image",
                            "give an image (see `overcast image list`), or a machine_type that has one",
                        )
                    })?;
                let instance_type = match (&request.machine_type, numbers.iter().any(|(_, g)| *g)) {
                    (Some(name), false) => name.clone(),
                    _ => "custom".to_string(),
                };
                (image, instance_type, Some(size))
            }
        };
        let (min_count, max_count) = counts(request)?;
        let stage = match &request.stage {
            None => self.stages.first().to_string(),
            Some(stage) if self.stages.stages.contains(stage) => stage.clone(),
            Some(stage) => {
                return Err(Error::invalid(
                    "stage",
                    format!(
                        "`{stage}` is not a stage of {} ({})",
                        self.name,
                        self.stages.stages.join(", ")
                    ),
                ))
            }
        };
        check_tags(&request.tags)?;
        let mut all_tags = request.tags.clone();
        if let Some(name) = &request.name {
            if name.is_empty() || name.len() > 255 {
                return Err(Error::invalid("name", "must be 1 to 255 characters"));
            }
            all_tags.insert(tags::NAME.into(), name.clone());
        }
        all_tags.insert(self.stages.tag_key.clone(), stage);
        all_tags.insert(tags::ORG.into(), org.into());
        all_tags.insert(tags::CREATED_BY.into(), created_by.into());
        let security_groups = if request.security_groups.is_empty() {
            self.config.security_groups.clone()
        } else {
            request.security_groups.clone()
        };
        Ok(LaunchSpec {
            region,
            image,
            instance_type,
            min_count,
            max_count,
            key_pair: request
                .key_pair
                .clone()
                .or_else(|| self.config.key_pair.clone()),
            security_groups,
            subnet: request
                .subnet
                .clone()
                .or_else(|| self.config.subnet.clone()),
            zone: request.zone.clone(),
            user_data: request
                .user_data
                .as_deref()
                .map(encode_user_data)
                .transpose()?,
            tags: all_tags,
            client_token: String::new(),
            size,
            name: request.name.clone(),
        })
    }

    /// Every instance the caller may see that matches the query, sorted by id.
    pub async fn list(
        &self,
        visible: impl Fn(&Instance) -> bool,
        query: &InstanceQuery,
    ) -> Result<Vec<Instance>, Error> {
        let compute = self.compute()?;
        let region = match &query.region {
            Some(r) => Some(self.check_region(compute, Some(r))?),
            None => None,
        };
        let mut tag_filter = query.tags.clone();
        if let Some(stage) = &query.stage {
            tag_filter.insert(self.stages.tag_key.clone(), stage.clone());
        }
        if let Some(name) = &query.name {
            tag_filter.insert(tags::NAME.into(), name.clone());
        }
        let filter = InstanceFilter {
            region,
            ids: vec![],
            tags: tag_filter,
            states: query.state.into_iter().collect(),
        };
        let mut instances: Vec<Instance> = compute
            .list_instances(&filter)
            .await
            .map_err(provider_error)?
            .into_iter()
            .map(|i| self.decorate(i))
            .filter(|i| visible(i))
            .filter(|i| query.state.is_none_or(|s| i.state == s))
            .collect();
        instances.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(instances)
    }

    /// One instance, from whichever region has it.
    pub async fn find(&self, id: &str) -> Result<Option<Instance>, Error> {
        let compute = self.compute()?;
        let filter = InstanceFilter {
            ids: vec![id.to_string()],
            ..InstanceFilter::default()
        };
        let found = compute
            .list_instances(&filter)
            .await
            .map_err(provider_error)?;
        Ok(found.into_iter().next().map(|i| self.decorate(i)))
    }
}

fn counts(request: &CreateInstancesRequest) -> Result<(u32, u32), Error> {
    let (min, max) = match (request.count, request.min_count, request.max_count) {
        (Some(n), None, None) => (n, n),
        (Some(_), _, _) => {
            return Err(Error::invalid(
                "count",
                "give count, or min_count and max_count, not both",
            ))
        }
        (None, min, max) => {
            let min = min.unwrap_or(1);
            (min, max.unwrap_or(min))
        }
    };
    let field = if request.count.is_some() {
        "count"
    } else {
        "min_count"
    };
    if min == 0 || min > MAX_COUNT {
        return Err(Error::invalid(
            field,
            format!("must be from 1 to {MAX_COUNT}"),
        ));
    }
    if max < min || max > MAX_COUNT {
        return Err(Error::invalid(
            "max_count",
            format!("must be from min_count to {MAX_COUNT}"),
        ));
    }
    Ok((min, max))
}

/// Tag keys and values as EC2 allows them, never overcast's own keys.
pub fn check_tags(tags: &BTreeMap<String, String>) -> Result<(), Error> {
    for (key, value) in tags {
        let field = format!("tags.{key}");
        if key.is_empty() || key.chars().count() > 128 {
            return Err(Error::invalid(field, "a tag key has 1 to 128 characters"));
        }
        if tags::is_reserved(key) {
            return Err(Error::invalid(
                field,
                "keys starting with overcast: or aws: are reserved",
            ));
        }
        if value.chars().count() > 256 {
            return Err(Error::invalid(
                field,
                "a tag value has at most 256 characters",
            ));
        }
    }
    Ok(())
}

/// Base64 for the backend: plain text (a script, `#cloud-config`) is encoded; text that is
/// already base64 is kept.
fn encode_user_data(text: &str) -> Result<String, Error> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let plain = text.starts_with("#!")
        || text.starts_with("#cloud-config")
        || text.contains(char::is_whitespace);
    let encoded = if !plain && !text.is_empty() && b64.decode(text).is_ok() {
        text.to_string()
    } else {
        b64.encode(text)
    };
    if encoded.len() > MAX_USER_DATA {
        return Err(Error::invalid(
            "user_data",
            "is larger than 16 KiB once base64-encoded (EC2's limit)",
        ));
    }
    Ok(encoded)
}

/// Waits until every instance is in `target` (or gone, for a terminate), polling with a
/// backoff, or fails at the deadline saying where each stood.
pub(crate) async fn wait_for(
    compute: &dyn Compute,
    region: &str,
    ids: &[String],
    target: InstanceState,
    cancellation: &Cancellation,
) -> Result<Vec<Instance>, Error> {
    let deadline = Instant::now() + STATE_TIMEOUT;
    let mut delay = Duration::from_millis(250);
    loop {
        let filter = InstanceFilter {
            region: Some(region.to_string()),
            ids: ids.to_vec(),
            ..InstanceFilter::default()
        };
        let instances = compute
            .list_instances(&filter)
            .await
            .map_err(provider_error)?;
        let reached = |i: &Instance| {
            i.state == target || (target == InstanceState::Terminated && i.state.is_gone())
        };
        if instances.len() >= ids.len() && instances.iter().all(reached) {
            return Ok(instances);
        }
        if let Some(lost) = instances
            .iter()
            .find(|i| target != InstanceState::Terminated && i.state.is_gone())
        {
            return Err(Error::conflict(
                "instance_terminated",
                format!(
                    "instance {} was terminated while waiting for it to be {}",
                    lost.id,
                    target.as_str()
                ),
            ));
        }
        if Instant::now() >= deadline {
            let states: Vec<String> = instances
                .iter()
                .map(|i| format!("{} {}", i.id, i.state.as_str()))
                .collect();
            return Err(Error::new(
                ErrorKind::BackendTimeout,
                "state_timeout",
                format!(
                    "not {} after {}s: {}",
                    target.as_str(),
                    STATE_TIMEOUT.as_secs(),
                    states.join(", ")
                ),
            ));
        }
        cancellation.check()?;
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

fn instance_result(instance: &Instance, message: Option<String>) -> Result<TargetResult, Error> {
    Ok(TargetResult {
        target: instance.id.clone(),
        outcome: TargetOutcome::Done,
        message,
        detail: Some(serde_json::to_value(instance).map_err(|e| Error::internal(e.to_string()))?),
    })
}

/// Runs `instance.create`. The launch is one call with the operation id as client token,
/// repeated identically if a run finds nothing launched yet, so a backend that honours the
/// token (EC2) never launches twice. For backends that do not (emulators), a run first looks
/// for instances carrying its `overcast:operation` tag: finding enough, it launches nothing;
/// finding some but fewer than `min_count`, an earlier launch is still landing, and it waits
/// for them instead of launching again.
pub(crate) struct CreateExecutor {
    pub environments: Arc<Environments>,
}

/// How long a resumed create waits for an earlier launch to finish appearing.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);

#[async_trait]
impl Executor for CreateExecutor {
    async fn run(&self, step: &mut Step) -> Result<(), Error> {
        let input: LaunchInput = step.input()?;
        let env = self.environments.require(&input.environment)?;
        let compute = env.compute()?;
        let operation_id = step.operation().id.clone();
        let mut spec = input.spec;
        spec.tags
            .insert(tags::OPERATION.into(), operation_id.clone());
        spec.client_token = operation_id.clone();
        step.set_total(u64::from(spec.max_count)).await?;
        let mut instances = launched_by(compute, &spec.region, &operation_id).await?;
        if instances.is_empty() {
            step.check_cancelled()?;
            instances = compute.run_instances(&spec).await.map_err(provider_error)?;
        } else if (instances.len() as u32) < spec.min_count {
            let deadline = Instant::now() + SETTLE_TIMEOUT;
            while (instances.len() as u32) < spec.min_count {
                if Instant::now() >= deadline {
                    return Err(Error::conflict(
                        "launch_incomplete",
                        format!(
                            "only {} of at least {} instances of this operation appeared",
                            instances.len(),
                            spec.min_count
                        ),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                instances = launched_by(compute, &spec.region, &operation_id).await?;
            }
        }
        step.set_total(instances.len() as u64).await?;
        let ids: Vec<String> = instances.iter().map(|i| i.id.clone()).collect();
        for instance in wait_for(
            compute,
            &spec.region,
            &ids,
            InstanceState::Running,
            &step.cancellation(),
        )
        .await?
        {
            step.record(instance_result(&env.decorate(instance), None)?)
                .await?;
        }
        Ok(())
    }
}

/// The live instances an operation launched, found by its tag.
async fn launched_by(
    compute: &dyn Compute,
    region: &str,
    operation_id: &str,
) -> Result<Vec<Instance>, Error> {
    let mine = InstanceFilter {
        region: Some(region.to_string()),
        tags: BTreeMap::from([(tags::OPERATION.to_string(), operation_id.to_string())]),
        ..InstanceFilter::default()
    };
    Ok(compute
        .list_instances(&mine)
        .await
        .map_err(provider_error)?
        .into_iter()
        .filter(|i| !i.state.is_gone())
        .collect())
}

/// Runs `instance.tag`, `image.tag` and `security_group.tag`: setting and removing tags
/// are idempotent, so a re-run is safe.
pub(crate) struct TagExecutor {
    pub environments: Arc<Environments>,
}

#[async_trait]
impl Executor for TagExecutor {
    async fn run(&self, step: &mut Step) -> Result<(), Error> {
        let input: TagInput = step.input()?;
        let env = self.environments.require(&input.environment)?;
        let compute = env.compute()?;
        step.set_total(input.ids.len() as u64).await?;
        if !input.set.is_empty() {
            compute
                .set_tags(&input.region, &input.ids, &input.set)
                .await
                .map_err(provider_error)?;
        }
        if !input.remove.is_empty() {
            compute
                .remove_tags(&input.region, &input.ids, &input.remove)
                .await
                .map_err(provider_error)?;
        }
        for id in &input.ids {
            step.record(TargetResult {
                target: id.clone(),
                outcome: TargetOutcome::Done,
                message: None,
                detail: None,
            })
            .await?;
        }
        Ok(())
    }
}

impl Core {
    /// Instances of an environment the caller may see, one page at a time. Later pages of
    /// a listing come from its snapshot (see [`Snapshots`]).
    pub async fn instances(
        &self,
        principal: &Principal,
        env: &str,
        query: InstanceQuery,
    ) -> Result<Page<Instance>, Error> {
        let environment = self.environments.require(env)?;
        let owner = format!(
            "{}|{env}|{:?}",
            principal.token_id,
            InstanceQuery {
                limit: 0,
                page_token: None,
                ..query.clone()
            }
        );
        let (snapshot, after) = match query.page_token.as_deref().map(|t| t.split_once('.')) {
            None => (None, None),
            Some(Some((snapshot, after))) => (Some(snapshot), Some(after)),
            Some(None) => {
                return Err(Error::invalid(
                    "page_token",
                    "is not a token this server gave",
                ))
            }
        };
        let kept = snapshot.and_then(|id| self.snapshots.get(id, &owner));
        let all = match &kept {
            Some(all) => all.clone(),
            None => Arc::new(environment.list(|i| visible(principal, i), &query).await?),
        };
        let (items, next_page_token) =
            page_of(&all, after, query.limit, || match (snapshot, &kept) {
                (Some(id), Some(_)) => id.to_string(),
                _ => self.snapshots.keep(owner.clone(), all.clone()),
            });
        Ok(Page {
            items,
            next_page_token,
        })
    }

    /// One instance, if it exists and the caller may see it.
    pub async fn instance(
        &self,
        principal: &Principal,
        env: &str,
        id: &str,
    ) -> Result<Instance, Error> {
        let environment = self.environments.require(env)?;
        match environment.find(id).await? {
            Some(instance) if visible(principal, &instance) => Ok(instance),
            _ => Err(Error::not_found("instance", id)),
        }
    }

    /// Launches instances as an operation, or with `dry_run` asks the backend whether it
    /// would be allowed.
    pub async fn create_instances(
        &self,
        principal: &Principal,
        env: &str,
        request: &CreateInstancesRequest,
        idempotency: Option<&Idempotency>,
    ) -> Result<Launch, Error> {
        principal.require(Role::Operator)?;
        let environment = self.environments.require(env)?;
        let spec = environment.launch_spec(
            request,
            &self.config.machine_types,
            &principal.org,
            &principal.token_name,
        )?;
        if request.dry_run {
            environment
                .compute()?
                .check_launch(&spec)
                .await
                .map_err(provider_error)?;
            return Ok(Launch::DryRun);
        }
        let target = format!("{env}/instances?count={}", spec.max_count);
        let input = to_input(&LaunchInput {
            environment: env.to_string(),
            spec,
        })?;
        let (operation, _) = self
            .start_operation(
                principal,
                CREATE_KIND,
                &principal.org,
                Some(env),
                target,
                input,
                idempotency,
            )
            .await?;
        Ok(Launch::Started(Box::new(operation)))
    }

    /// Starts, stops, reboots, terminates or promotes one instance, as an operation: a
    /// plan of one, carried out like any bulk action.
    #[allow(clippy::too_many_arguments)]
    pub async fn instance_action(
        &self,
        principal: &Principal,
        env: &str,
        id: &str,
        action: BulkAction,
        force: bool,
        to_stage: Option<String>,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        principal.require(Role::Operator)?;
        let instance = self.instance(principal, env, id).await?;
        if instance.state.is_gone() && action != BulkAction::Terminate {
            // EC2 refuses this; emulators may not, so overcast enforces it.
            return Err(Error::conflict(
                "wrong_state",
                format!(
                    "instance {id} is {} and cannot {}",
                    instance.state.as_str(),
                    action.name()
                ),
            ));
        }
        let environment = self.environments.require(env)?;
        let request = BulkRequest {
            ids: vec![id.to_string()],
            force,
            to_stage,
            ..BulkRequest::default()
        };
        let org = instance
            .org
            .clone()
            .unwrap_or_else(|| principal.org.clone());
        let plan = make_plan(env, &environment.stages, action, &request, vec![instance])?;
        if action == BulkAction::Promote {
            if let Some(skipped) = plan.skipped.first() {
                return Err(Error::conflict(
                    "cannot_promote",
                    format!("instance {id} cannot be promoted: {}", skipped.reason),
                ));
            }
        }
        let input = to_input(&plan)?;
        let (operation, _) = self
            .start_operation(
                principal,
                &action.kind(),
                &org,
                Some(env),
                format!("{env}/{id}"),
                input,
                idempotency,
            )
            .await?;
        Ok(operation)
    }

    /// Sets and removes tags of one instance, image or security group, as an operation.
    #[allow(clippy::too_many_arguments)]
    pub async fn tag_resource(
        &self,
        principal: &Principal,
        env: &str,
        kind: Tagged,
        id: &str,
        set: BTreeMap<String, String>,
        remove: Vec<String>,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        principal.require(Role::Operator)?;
        check_tags(&set)?;
        for (i, key) in remove.iter().enumerate() {
            if overcast_types::tags::is_reserved(key) {
                return Err(Error::invalid(
                    format!("keys[{i}]"),
                    "keys starting with overcast: or aws: are reserved",
                ));
            }
        }
        if set.is_empty() && remove.is_empty() {
            return Err(Error::invalid("tags", "give at least one tag"));
        }
        let (region, org) = match kind {
            Tagged::Instance => {
                let found = self.instance(principal, env, id).await?;
                (found.region, found.org)
            }
            Tagged::Image => {
                let found = self.image(principal, env, id).await?;
                (found.region, found.org)
            }
            Tagged::SecurityGroup => {
                let found = self.security_group(principal, env, id).await?;
                (found.region, found.org)
            }
        };
        let input = to_input(&TagInput {
            environment: env.to_string(),
            region,
            ids: vec![id.to_string()],
            set,
            remove,
        })?;
        let org = org.unwrap_or_else(|| principal.org.clone());
        let (operation, _) = self
            .start_operation(
                principal,
                kind.operation_kind(),
                &org,
                Some(env),
                format!("{env}/{id}"),
                input,
                idempotency,
            )
            .await?;
        Ok(operation)
    }

    /// Changes attributes of one instance, as an operation; EC2's preconditions are
    /// checked here, since an emulator may not check them.
    pub async fn modify_instance(
        &self,
        principal: &Principal,
        env: &str,
        id: &str,
        request: &ModifyInstanceRequest,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        principal.require(Role::Operator)?;
        let instance = self.instance(principal, env, id).await?;
        let change = request.change_for(&instance)?;
        let input = to_input(&ModifyInput {
            environment: env.to_string(),
            region: instance.region.clone(),
            id: id.to_string(),
            change,
        })?;
        let org = instance
            .org
            .clone()
            .unwrap_or_else(|| principal.org.clone());
        let (operation, _) = self
            .start_operation(
                principal,
                MODIFY_KIND,
                &org,
                Some(env),
                format!("{env}/{id}"),
                input,
                idempotency,
            )
            .await?;
        Ok(operation)
    }

    /// The regions of an environment and their zones.
    pub async fn regions(&self, env: &str) -> Result<Vec<RegionView>, Error> {
        let compute = self.environments.require(env)?.compute()?;
        let mut regions = Vec::new();
        for name in compute.regions() {
            let zones = compute.zones(&name).await.map_err(provider_error)?;
            regions.push(RegionView { name, zones });
        }
        Ok(regions)
    }

    /// The serial console output of one instance.
    pub async fn console(
        &self,
        principal: &Principal,
        env: &str,
        id: &str,
    ) -> Result<String, Error> {
        let instance = self.instance(principal, env, id).await?;
        let environment = self.environments.require(env)?;
        environment
            .compute()?
            .console_output(&instance.region, id)
            .await
            .map_err(provider_error)
    }

    /// An environment and, if one is asked for, one of its regions (checked).
    pub(crate) fn region_of(
        &self,
        env: &str,
        region: Option<&str>,
    ) -> Result<(&environments::Environment, Option<String>), Error> {
        let environment = self.environments.require(env)?;
        let region = region
            .map(|r| environment.region_or_first(Some(r)))
            .transpose()?;
        Ok((environment, region))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_is_encoded_unless_already_base64() {
        let script = "#!/bin/sh\necho hello\n";
        let b64 = base64::engine::general_purpose::STANDARD.encode(script);
        assert_eq!(encode_user_data(script).unwrap(), b64);
        assert_eq!(encode_user_data(&b64).unwrap(), b64);
        assert_eq!(
            encode_user_data("#cloud-config\npackages: [git]")
                .unwrap()
                .len()
                % 4,
            0
        );
        let huge = "x ".repeat(13_000);
        assert_eq!(
            encode_user_data(&huge).unwrap_err().field.as_deref(),
            Some("user_data")
        );
    }

    fn instance(id: &str) -> Instance {
        Instance {
            id: id.into(),
            name: None,
            environment: "e".into(),
            region: "r".into(),
            zone: None,
            stage: None,
            state: InstanceState::Running,
            instance_type: None,
            image: None,
            private_ip: None,
            public_ip: None,
            ssh_address: None,
            state_reason: None,
            key_pair: None,
            security_groups: vec![],
            launched_at: None,
            tags: BTreeMap::new(),
            org: None,
        }
    }

    #[test]
    fn pages_follow_the_last_id_and_name_their_snapshot() {
        let all: Vec<Instance> = ["i-1", "i-2", "i-3", "i-4", "i-5"]
            .into_iter()
            .map(instance)
            .collect();
        let ids = |page: &[Instance]| page.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
        let (first, next) = page_of(&all, None, 2, || "ls_x".into());
        assert_eq!(
            (ids(&first), next.as_deref()),
            (vec!["i-1".to_string(), "i-2".into()], Some("ls_x.i-2"))
        );
        let (second, _) = page_of(&all, Some("i-2"), 2, || "ls_x".into());
        assert_eq!(ids(&second), ["i-3", "i-4"]);
        let (last, next) = page_of(&all, Some("i-4"), 2, || unreachable!("no next page"));
        assert_eq!((ids(&last), next), (vec!["i-5".to_string()], None));
        // An id that has gone since still finds its place.
        let (after_gone, _) = page_of(&all, Some("i-25"), 2, || "ls_x".into());
        assert_eq!(ids(&after_gone), ["i-3", "i-4"]);
    }

    #[test]
    fn snapshots_are_kept_for_their_owner_only() {
        let snapshots = Snapshots::default();
        let id = snapshots.keep("tok_a|q".into(), Arc::new(vec![instance("i-1")]));
        assert_eq!(snapshots.get(&id, "tok_a|q").unwrap().len(), 1);
        assert!(snapshots.get(&id, "tok_b|q").is_none());
        assert!(snapshots.get("ls_unknown", "tok_a|q").is_none());
    }

    #[test]
    fn counts_are_checked() {
        let req = |count, min, max| CreateInstancesRequest {
            count,
            min_count: min,
            max_count: max,
            ..Default::default()
        };
        assert_eq!(counts(&req(None, None, None)).unwrap(), (1, 1));
        assert_eq!(counts(&req(Some(3), None, None)).unwrap(), (3, 3));
        assert_eq!(counts(&req(None, Some(2), Some(5))).unwrap(), (2, 5));
        assert_eq!(
            counts(&req(Some(0), None, None))
                .unwrap_err()
                .field
                .as_deref(),
            Some("count")
        );
        assert_eq!(
            counts(&req(None, Some(3), Some(2)))
                .unwrap_err()
                .field
                .as_deref(),
            Some("max_count")
        );
        assert_eq!(
            counts(&req(Some(2), Some(1), None))
                .unwrap_err()
                .field
                .as_deref(),
            Some("count")
        );
        assert_eq!(
            counts(&req(Some(1001), None, None))
                .unwrap_err()
                .field
                .as_deref(),
            Some("count")
        );
    }

    #[test]
    fn reserved_and_oversized_tags_are_refused() {
        let tags = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        assert!(check_tags(&tags("team", "web")).is_ok());
        assert_eq!(
            check_tags(&tags("overcast:org", "x"))
                .unwrap_err()
                .field
                .as_deref(),
            Some("tags.overcast:org")
        );
        assert!(check_tags(&tags("", "x")).is_err());
        assert!(check_tags(&tags("k", &"v".repeat(257))).is_err());
    }
}
