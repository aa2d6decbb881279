//! Launching instances: a create request checked and turned into a launch spec (machine
//! type, size, stage, tags, user data), and the change that launches it exactly once.

use async_trait::async_trait;
use base64::Engine;
use overcast_provider::{
    Compute, InstanceFilter, LaunchSpec, ProviderError, ProviderErrorKind, SizeRequest,
};
use overcast_types::{tags, Error, Instance, InstanceState, Operation, Role, TargetResult};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use utoipa::ToSchema;

use super::wait::wait_for;
use crate::access::owner_tags;
use crate::app::{Core, Idempotency, Target};
use crate::auth::Principal;
use crate::config::MachineType;
use crate::environments::Environment;
use crate::errors::provider_error;
use crate::operations::attempts::find_or_create;
use crate::operations::{Change, OperationContext};
use crate::tags::check_tags;

/// The most instances one create may launch.
pub const MAX_COUNT: u32 = 1000;
/// The most user data a create takes, after base64: EC2's limit, held for every provider
/// so a request that works on one works on all.
const MAX_USER_DATA: usize = 16 * 1024;

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
    /// For providers sized in numbers (qemu, sim): virtual CPUs; with `memory_mb` and
    /// `disk_gb`, overrides the machine type's.
    #[serde(default)]
    pub cpus: Option<u32>,
    /// For providers sized in numbers: memory in MB.
    #[serde(default)]
    pub memory_mb: Option<u64>,
    /// For providers sized in numbers: disk size in GB (a kernel image needs none).
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

/// What a create request led to.
#[derive(Debug, Clone)]
pub enum Launch {
    /// The backend says the launch would be allowed; nothing was launched.
    DryRun,
    /// The operation that launches the instances.
    Started(Box<Operation>),
}

/// What an `instance.create` operation records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LaunchInput {
    pub environment: String,
    pub spec: LaunchSpec,
}

impl Environment {
    /// Turns a create request into a launch spec: machine type, defaults, stage, tags.
    pub(crate) fn launch_spec(
        &self,
        request: &CreateInstancesRequest,
        machine_types: &BTreeMap<String, MachineType>,
        principal: &Principal,
    ) -> Result<LaunchSpec, Error> {
        let compute = self.compute()?;
        let region = self.check_region(request.region.as_deref())?;
        let machine_type = match &request.machine_type {
            None => None,
            Some(name) => {
                let machine = machine_types.get(name).ok_or_else(|| {
                    Error::invalid("machine_type", format!("no machine type `{name}`"))
                })?;
                Some((name.as_str(), machine.sizes.get(&self.config.provider)))
            }
        };
        let sized = compute
            .size_launch(&SizeRequest {
                machine_type,
                image: request.image.as_deref(),
                instance_type: request.instance_type.as_deref(),
                cpus: request.cpus,
                memory_mb: request.memory_mb,
                disk_gb: request.disk_gb,
            })
            .map_err(provider_error)?;
        let defaults = compute.launch_defaults();
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
        let mut all_tags = owner_tags(principal, &request.tags);
        if let Some(name) = &request.name {
            if name.is_empty() || name.len() > 255 {
                return Err(Error::invalid("name", "must be 1 to 255 characters"));
            }
            all_tags.insert(tags::NAME.into(), name.clone());
        }
        all_tags.insert(self.stages.tag_key.clone(), stage);
        let security_groups = if request.security_groups.is_empty() {
            defaults.security_groups
        } else {
            request.security_groups.clone()
        };
        Ok(LaunchSpec {
            region,
            image: sized.image,
            instance_type: sized.instance_type,
            min_count,
            max_count,
            key_pair: request.key_pair.clone().or(defaults.key_pair),
            security_groups,
            subnet: request.subnet.clone().or(defaults.subnet),
            zone: request.zone.clone(),
            user_data: request
                .user_data
                .as_deref()
                .map(encode_user_data)
                .transpose()?,
            tags: all_tags,
            client_token: String::new(),
            size: sized.size,
            name: request.name.clone(),
        })
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

/// Base64 for the backend: plain text (a script, `#cloud-config`) is encoded; text that is
/// already base64 is kept.
pub(super) fn encode_user_data(text: &str) -> Result<String, Error> {
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
            "is larger than 16 KiB once base64-encoded (EC2's limit, held for every provider)",
        ));
    }
    Ok(encoded)
}

/// Runs `instance.create`. The launch is one call with the operation id as client token,
/// so a backend that honours the token (EC2) never launches twice. For backends that do not
/// (emulators), every try, of this run or an earlier one, first looks for instances
/// carrying the operation's `overcast:operation` tag: finding enough, it launches nothing;
/// finding some but fewer than `min_count`, an earlier launch is still landing, and it
/// waits for them instead of launching again.
pub(crate) struct CreateInstances;

/// How long a resumed create waits for an earlier launch to finish appearing.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);

#[async_trait]
impl Change for CreateInstances {
    const KINDS: &'static [&'static str] = &["instance.create"];
    type Input = LaunchInput;

    async fn run(&self, input: LaunchInput, step: &mut OperationContext) -> Result<(), Error> {
        let env = step.environment(&input.environment)?;
        let compute = env.compute()?;
        let operation_id = step.operation_id().to_string();
        let mut spec = input.spec;
        spec.tags
            .insert(tags::OPERATION.into(), operation_id.clone());
        spec.client_token = operation_id.clone();
        step.set_total(u64::from(spec.max_count)).await?;
        let instances = find_or_create(
            "instances",
            &step.cancellation(),
            || launched_by(compute, &spec, &operation_id),
            || compute.run_instances(&spec),
        )
        .await?;
        step.set_total(instances.len() as u64).await?;
        let ids: Vec<String> = instances.iter().map(|i| i.id.clone()).collect();
        // The ids exist now: in the inventory they show as pending at once, for callers
        // that poll rather than wait for the operation (the EC2 endpoint's clients).
        env.inventory
            .instances
            .record(instances.into_iter().map(|i| env.decorate(i)));
        for instance in wait_for(
            compute,
            &spec.region,
            &ids,
            InstanceState::Running,
            &step.cancellation(),
        )
        .await?
        {
            let instance = env.decorate(instance);
            env.inventory.instances.record([instance.clone()]);
            step.record(TargetResult::done(&instance.id).with_detail(&instance)?)
                .await?;
        }
        Ok(())
    }
}

/// The live instances an operation launched, found by its tag, or `None` if it launched
/// none. Finding fewer than the launch's `min_count`, an earlier launch is still landing:
/// it waits for the rest to appear rather than launch again.
async fn launched_by(
    compute: &dyn Compute,
    spec: &LaunchSpec,
    operation_id: &str,
) -> Result<Option<Vec<Instance>>, ProviderError> {
    let mine = InstanceFilter {
        region: Some(spec.region.clone()),
        tags: BTreeMap::from([(tags::OPERATION.to_string(), operation_id.to_string())]),
        ..InstanceFilter::default()
    };
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let instances: Vec<Instance> = compute
            .list_instances(&mine)
            .await?
            .into_iter()
            .filter(|i| !i.state.is_gone())
            .collect();
        if instances.is_empty() {
            return Ok(None);
        }
        if instances.len() as u32 >= spec.min_count {
            return Ok(Some(instances));
        }
        if Instant::now() >= deadline {
            return Err(ProviderError::new(
                ProviderErrorKind::Conflict,
                "launch_incomplete",
                format!(
                    "only {} of at least {} instances of this operation appeared",
                    instances.len(),
                    spec.min_count
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

impl Core {
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
        let spec = environment.launch_spec(request, &self.config.machine_types, principal)?;
        // What the body names, not the environment's own defaults, must be the caller's.
        environment
            .check_references(
                principal,
                &spec.region,
                // The image the provider resolved (a name becomes its id).
                request.image.as_ref().map(|_| spec.image.as_str()),
                request.key_pair.as_deref(),
                &request.security_groups,
            )
            .await?;
        if request.dry_run {
            environment
                .compute()?
                .check_launch(&spec)
                .await
                .map_err(provider_error)?;
            return Ok(Launch::DryRun);
        }
        let target = Target::new(env, format!("{env}/instances?count={}", spec.max_count));
        let input = LaunchInput {
            environment: env.to_string(),
            spec,
        };
        let operation = self
            .start::<CreateInstances>(principal, target, &input, idempotency)
            .await?;
        Ok(Launch::Started(Box::new(operation)))
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
}
