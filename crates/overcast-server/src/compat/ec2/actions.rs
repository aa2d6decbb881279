//! The actions the EC2 family answers, each translated into the core call `/v1` makes:
//! instances (run, describe with filters and pages, start, stop, reboot, terminate,
//! attributes), instance types (the machine types), tags, and STS `GetCallerIdentity`.
//! Ids of local VMs are shown in EC2's shape and read back (`vm-…` ↔ `i-0…`).

use axum::http::Method;
use overcast_core::auth::Principal;
use overcast_core::compute::{
    BulkAction, BulkOutcome, BulkRequest, CreateInstancesRequest, InstanceQuery, Launch,
    ModifyInstanceRequest,
};
use overcast_core::tags::TagRequest;
use overcast_core::Idempotency;
use overcast_provider::ResourceKind;
use overcast_types::{
    tags, Direction, Error, Instance, InstanceState, Operation, OperationStatus, Role,
};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::xml::Xml;
use super::{fault, groups, Answer, Params, Signed};
use crate::http::idempotency::request_hash;
use crate::AppState;

/// One call: who signs, with which key, and its parameters.
pub struct Call<'a> {
    pub state: &'a AppState,
    pub principal: &'a Principal,
    pub signed: &'a Signed,
    pub params: &'a Params,
}

impl Call<'_> {
    pub(super) fn env(&self) -> &str {
        &self.signed.key.environment
    }

    /// The region the client signed for when the environment has it (boto2 signs for
    /// the host's name), else the environment's first.
    pub(super) fn region(&self) -> Result<String, Error> {
        let regions = self.state.core.region_names(self.env())?;
        if regions.contains(&self.signed.region) {
            return Ok(self.signed.region.clone());
        }
        regions
            .into_iter()
            .next()
            .ok_or_else(|| fault("InvalidParameterValue", "the environment has no region"))
    }

    /// How this environment's ids read in EC2's shape.
    fn ids(&self) -> Result<IdShape, Error> {
        let (provider, _) = self.state.core.provider_and_stages(self.env())?;
        Ok(IdShape {
            local: provider == "qemu",
        })
    }

    fn dry_run(&self) -> Result<bool, Error> {
        Ok(self.params.bool("DryRun")?.unwrap_or(false))
    }

    /// Refuses a caller below `role` as EC2 does, then answers a dry run's success.
    pub(super) fn check_dry_run(&self, role: Role) -> Result<(), Error> {
        self.principal.require(role)?;
        if self.dry_run()? {
            return Err(dry_run_ok());
        }
        Ok(())
    }
}

fn dry_run_ok() -> Error {
    fault(
        "DryRunOperation",
        "Request would have succeeded, but DryRun flag is set.",
    )
}

/// Whether an action changes anything, and so is audited.
pub fn changes(action: &str) -> bool {
    !(action.starts_with("Describe") || action == "GetCallerIdentity")
}

pub async fn run(cx: &Call<'_>, action: &str) -> Result<Answer, Error> {
    match action {
        "" => Err(fault(
            "MissingAction",
            "The request must contain the parameter Action",
        )),
        "GetCallerIdentity" => Ok(caller_identity(cx)),
        "DescribeInstances" => describe_instances(cx).await,
        "RunInstances" => run_instances(cx).await,
        "StartInstances" => lifecycle(cx, BulkAction::Start).await,
        "StopInstances" => lifecycle(cx, BulkAction::Stop).await,
        "RebootInstances" => lifecycle(cx, BulkAction::Reboot).await,
        "TerminateInstances" => lifecycle(cx, BulkAction::Terminate).await,
        "DescribeInstanceTypes" => instance_types(cx),
        "CreateTags" => change_tags(cx, true).await,
        "DeleteTags" => change_tags(cx, false).await,
        "DescribeTags" => describe_tags(cx).await,
        "DescribeInstanceAttribute" => instance_attribute(cx).await,
        "ModifyInstanceAttribute" => modify_attribute(cx).await,
        "CreateSecurityGroup" => groups::create(cx).await,
        "DescribeSecurityGroups" => groups::describe(cx).await,
        "AuthorizeSecurityGroupIngress" => groups::change_rules(cx, Direction::Ingress, true).await,
        "RevokeSecurityGroupIngress" => groups::change_rules(cx, Direction::Ingress, false).await,
        "AuthorizeSecurityGroupEgress" => groups::change_rules(cx, Direction::Egress, true).await,
        "RevokeSecurityGroupEgress" => groups::change_rules(cx, Direction::Egress, false).await,
        "DeleteSecurityGroup" => groups::delete(cx).await,
        other => Err(fault(
            "InvalidAction",
            format!("The action {other} is not valid for this web service."),
        )),
    }
}

/// How ids are shown: a local VM's `vm-<16 hex>` as `i-0<16 hex>` and its image's
/// `img-<16 hex>` as `ami-0<16 hex>`, reversibly; every other provider's as they are.
#[derive(Debug, Clone, Copy)]
struct IdShape {
    local: bool,
}

impl IdShape {
    fn shown(self, id: &str) -> String {
        for (own, ec2) in [("vm-", "i-0"), ("img-", "ami-0")] {
            if let Some(hex) = id.strip_prefix(own).filter(|h| is_hex16(h)) {
                return format!("{ec2}{hex}");
            }
        }
        id.to_string()
    }

    fn own(self, id: &str) -> String {
        if self.local {
            for (own, ec2) in [("vm-", "i-0"), ("img-", "ami-0")] {
                if let Some(hex) = id.strip_prefix(ec2).filter(|h| is_hex16(h)) {
                    return format!("{own}{hex}");
                }
            }
        }
        id.to_string()
    }
}

fn is_hex16(text: &str) -> bool {
    text.len() == 16 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A stable 12-digit account number for an org, as `ownerId` and STS's `Account`.
pub(super) fn account_of(org: &str) -> String {
    let digest = Sha256::digest(org.as_bytes());
    let n = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    format!("{:012}", n % 1_000_000_000_000)
}

fn caller_identity(cx: &Call<'_>) -> Answer {
    let account = account_of(&cx.principal.org);
    let mut body = Xml::new();
    body.text(
        "Arn",
        format!("arn:aws:iam::{account}:user/{}", cx.principal.token_name),
    )
    .text("UserId", &cx.signed.key.id)
    .text("Account", account);
    Answer::sts(body)
}

// ---- instances ---------------------------------------------------------------------------

/// EC2's name and code of an instance state. EC2 has no `rebooting` (a rebooting
/// instance is running) and no `error` (a VM that failed is not running: stopped).
fn ec2_state(state: InstanceState) -> (&'static str, u16) {
    match state {
        InstanceState::Pending => ("pending", 0),
        InstanceState::Running | InstanceState::Rebooting => ("running", 16),
        InstanceState::Terminating => ("shutting-down", 32),
        InstanceState::Terminated => ("terminated", 48),
        InstanceState::Stopping => ("stopping", 64),
        InstanceState::Stopped | InstanceState::Error => ("stopped", 80),
    }
}

fn state_name(state: InstanceState) -> &'static str {
    ec2_state(state).0
}

fn write_state(xml: &mut Xml, name: &str, state: InstanceState) {
    let (ec2_name, code) = ec2_state(state);
    xml.node(name, |xml| {
        xml.text("code", code).text("name", ec2_name);
    });
}

/// The tags an EC2 client sees: overcast's own (`overcast:org`, `overcast:operation`, …)
/// are overcast's business, as `aws:` ones are AWS's, and a client may not set them; shown,
/// they would read as drift to Terraform.
fn client_tags(tags: &BTreeMap<String, String>) -> impl Iterator<Item = (&String, &String)> {
    tags.iter()
        .filter(|(key, _)| !key.starts_with(tags::PREFIX))
}

fn write_tags(xml: &mut Xml, tags: &BTreeMap<String, String>) {
    xml.set("tagSet", client_tags(tags), |xml, (key, value)| {
        xml.text("key", key).text("value", value);
    });
}

/// One instance as `instancesSet/item` shows it: no VPC, subnet, block device or network
/// interface elements, which a local VM does not have.
fn write_instance(xml: &mut Xml, shape: IdShape, instance: &Instance) {
    xml.text("instanceId", shape.shown(&instance.id))
        .maybe("imageId", instance.image.as_deref().map(|i| shape.shown(i)));
    write_state(xml, "instanceState", instance.state);
    xml.text(
        "privateDnsName",
        instance.private_ip.as_deref().unwrap_or_default(),
    )
    .text("dnsName", instance.public_ip.as_deref().unwrap_or_default())
    .maybe("keyName", instance.key_pair.as_deref())
    .text("amiLaunchIndex", 0)
    .maybe("instanceType", instance.instance_type.as_deref())
    .maybe(
        "launchTime",
        instance.launched_at.map(|at| {
            at.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        }),
    )
    .node("placement", |xml| {
        xml.text(
            "availabilityZone",
            instance.zone.as_deref().unwrap_or(&instance.region),
        )
        .text("tenancy", "default");
    })
    .node("monitoring", |xml| {
        xml.text("state", "disabled");
    })
    .maybe("privateIpAddress", instance.private_ip.as_deref())
    .maybe("ipAddress", instance.public_ip.as_deref())
    .set("groupSet", &instance.security_groups, |xml, group| {
        xml.text("groupId", group);
    });
    if let Some(reason) = &instance.state_reason {
        xml.node("stateReason", |xml| {
            xml.text("code", "Client.UserInitiatedShutdown")
                .text("message", reason);
        });
    }
    xml.text("architecture", "x86_64")
        .text("rootDeviceType", "instance-store")
        .text("virtualizationType", "hvm")
        .text("hypervisor", "xen");
    write_tags(xml, &instance.tags);
}

/// The reservation an instance belongs to: one per launch operation.
fn reservation_of(instance: &Instance) -> String {
    let launch = instance
        .tags
        .get(tags::OPERATION)
        .map_or(instance.id.as_str(), String::as_str);
    let digest = Sha256::digest(launch.as_bytes());
    format!("r-0{}", &hex::encode(digest)[..16])
}

/// `reservationSet`: instances grouped by the launch that made them, in listing order.
fn write_reservations(xml: &mut Xml, cx: &Call<'_>, shape: IdShape, instances: &[Instance]) {
    let mut groups: Vec<(String, Vec<&Instance>)> = Vec::new();
    for instance in instances {
        let reservation = reservation_of(instance);
        match groups.iter_mut().find(|(r, _)| *r == reservation) {
            Some((_, members)) => members.push(instance),
            None => groups.push((reservation, vec![instance])),
        }
    }
    let owner = account_of(&cx.principal.org);
    xml.set("reservationSet", groups, |xml, (reservation, members)| {
        write_reservation(xml, &reservation, &owner, shape, &members);
    });
}

fn write_reservation(
    xml: &mut Xml,
    reservation: &str,
    owner: &str,
    shape: IdShape,
    members: &[&Instance],
) {
    xml.text("reservationId", reservation)
        .text("ownerId", owner)
        .set("groupSet", Vec::<()>::new(), |_, ()| {})
        .set("instancesSet", members, |xml, instance| {
            write_instance(xml, shape, instance);
        });
}

/// A filter of DescribeInstances, checked: an unknown name is refused, never ignored, so a
/// selection is never wider than asked.
enum Filter {
    Ids(Vec<String>),
    States(Vec<String>),
    Tag(String, Vec<String>),
    TagKey(Vec<String>),
    Types(Vec<String>),
    Images(Vec<String>),
    KeyNames(Vec<String>),
}

impl Filter {
    fn parse(name: &str, values: Vec<String>, shape: IdShape) -> Result<Filter, Error> {
        let own = |values: Vec<String>| values.iter().map(|v| shape.own(v)).collect();
        Ok(match name {
            "instance-id" => Filter::Ids(own(values)),
            "instance-state-name" => Filter::States(values),
            "tag-key" => Filter::TagKey(values),
            "instance-type" => Filter::Types(values),
            "image-id" => Filter::Images(own(values)),
            "key-name" => Filter::KeyNames(values),
            _ => match name.strip_prefix("tag:") {
                Some(key) if !key.is_empty() => Filter::Tag(key.to_string(), values),
                _ => {
                    return Err(fault(
                        "InvalidParameterValue",
                        format!(
                            "The filter '{name}' is invalid; this endpoint filters by instance-id, \
                             instance-state-name, tag:KEY, tag-key, instance-type, image-id and key-name"
                        ),
                    ))
                }
            },
        })
    }

    fn keeps(&self, instance: &Instance) -> bool {
        let any = |values: &[String], value: Option<&str>| {
            value.is_some_and(|v| values.iter().any(|w| w == v))
        };
        match self {
            Filter::Ids(ids) => ids.contains(&instance.id),
            Filter::States(states) => any(states, Some(state_name(instance.state))),
            Filter::Tag(key, values) => any(values, instance.tags.get(key).map(String::as_str)),
            Filter::TagKey(keys) => keys.iter().any(|k| instance.tags.contains_key(k)),
            Filter::Types(types) => any(types, instance.instance_type.as_deref()),
            Filter::Images(images) => any(images, instance.image.as_deref()),
            Filter::KeyNames(names) => any(names, instance.key_pair.as_deref()),
        }
    }
}

/// The ids `InstanceId.N` names, as overcast knows them.
fn instance_ids(cx: &Call<'_>, shape: IdShape) -> Result<Vec<String>, Error> {
    Ok(cx
        .params
        .list("InstanceId")?
        .iter()
        .map(|id| shape.own(id))
        .collect())
}

/// The instances named, each as the caller may see it; any unknown id refuses the call,
/// as EC2 does.
async fn named_instances(cx: &Call<'_>, ids: &[String]) -> Result<Vec<Instance>, Error> {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for id in ids {
        match cx.state.core.instance(cx.principal, cx.env(), id).await {
            Ok(instance) => found.push(instance),
            Err(e) if e.kind == overcast_types::ErrorKind::NotFound => missing.push(id.clone()),
            Err(e) => return Err(e),
        }
    }
    if missing.is_empty() {
        return Ok(found);
    }
    let shape = cx.ids()?;
    let shown: Vec<String> = missing.iter().map(|id| shape.shown(id)).collect();
    Err(fault(
        "InvalidInstanceID.NotFound",
        format!("The instance IDs '{}' do not exist", shown.join(", ")),
    ))
}

async fn describe_instances(cx: &Call<'_>) -> Result<Answer, Error> {
    let shape = cx.ids()?;
    let ids = instance_ids(cx, shape)?;
    let filters = cx
        .params
        .filters()?
        .into_iter()
        .map(|(name, values)| Filter::parse(&name, values, shape))
        .collect::<Result<Vec<_>, _>>()?;
    let max = cx.params.number("MaxResults", 5, 1000)?;
    if max.is_some() && !ids.is_empty() {
        return Err(fault(
            "InvalidParameterCombination",
            "The parameter instancesSet cannot be used with the parameter maxResults",
        ));
    }
    let keep = |i: &Instance| filters.iter().all(|f| f.keeps(i));
    let (instances, next) = if ids.is_empty() {
        let query = InstanceQuery {
            limit: max.map_or(1000, |m| m as u32),
            page_token: cx.params.text("NextToken").map(str::to_string),
            ..InstanceQuery::default()
        };
        let page = cx
            .state
            .core
            .instances(cx.principal, cx.env(), query)
            .await?;
        (page.items, page.next_page_token)
    } else {
        (named_instances(cx, &ids).await?, None)
    };
    let instances: Vec<Instance> = instances.into_iter().filter(keep).collect();
    let mut body = Xml::new();
    write_reservations(&mut body, cx, shape, &instances);
    body.maybe("nextToken", next);
    Ok(Answer::read(body))
}

/// What an `InstanceType` names: on AWS, itself; elsewhere a machine type, by its name or
/// its `aws.instance_type`, else (on a provider that has instance types of its own, the
/// simulated one) itself. boto2's implicit `m1.small` is the `small` machine type (else
/// the first).
fn resolve_type(cx: &Call<'_>, given: &str) -> Result<(Option<String>, Option<String>), Error> {
    let (provider, _) = cx.state.core.provider_and_stages(cx.env())?;
    if provider == "aws" {
        return Ok((None, Some(given.to_string())));
    }
    let types = cx.state.core.machine_types();
    let named = types
        .iter()
        .find(|t| t.name == given || aws_type(t) == Some(given));
    if let Some(machine) = named {
        return Ok((Some(machine.name.clone()), None));
    }
    if provider == "sim" {
        return Ok((None, Some(given.to_string())));
    }
    let default = (given == "m1.small")
        .then(|| types.iter().find(|t| t.name == "small").or(types.first()))
        .flatten();
    match default {
        Some(machine) => Ok((Some(machine.name.clone()), None)),
        None => Err(fault(
            "InvalidParameterValue",
            format!(
                "Value ({given}) for parameter instanceType is invalid: the machine types are {}",
                types
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

fn aws_type(machine: &overcast_core::environments::MachineTypeView) -> Option<&str> {
    machine
        .machine
        .sizes
        .get("aws")
        .and_then(|t| t.get("instance_type"))
        .and_then(|v| v.as_str())
}

/// The tags of `TagSpecification.N` for instances; `overcast:` and `aws:` keys refused.
fn launch_tags(params: &Params) -> Result<BTreeMap<String, String>, Error> {
    let mut all = BTreeMap::new();
    for spec in params.members("TagSpecification")? {
        let kind = params.text(&format!("{spec}.ResourceType"));
        if kind.is_some_and(|k| k != "instance") {
            continue;
        }
        all.extend(params.tags(&format!("{spec}.Tag"))?);
    }
    Ok(all)
}

async fn run_instances(cx: &Call<'_>) -> Result<Answer, Error> {
    let shape = cx.ids()?;
    let params = cx.params;
    let image = shape.own(params.required("ImageId")?);
    let min = params.number("MinCount", 1, 1000)?.unwrap_or(1);
    let max = params.number("MaxCount", 1, 1000)?.unwrap_or(min);
    let (machine_type, instance_type) =
        resolve_type(cx, params.text("InstanceType").unwrap_or("m1.small"))?;
    let mut groups = params.list("SecurityGroupId")?;
    let (provider, stages) = cx.state.core.provider_and_stages(cx.env())?;
    let named = params.list("SecurityGroup")?;
    if provider == "aws" {
        groups.extend(groups::ids_of_names(cx, &named).await?);
    } else if let Some(other) = named.iter().find(|n| *n != "default") {
        // A local VM has no groups: boto2's implicit `default` asks for none.
        return Err(fault(
            "UnsupportedOperation",
            format!("security groups ({other}) are not supported by provider {provider}"),
        ));
    }
    let mut launch_tags = launch_tags(params)?;
    let stage = launch_tags.remove(&stages.tag_key);
    let request = CreateInstancesRequest {
        region: Some(cx.region()?),
        image: Some(image),
        machine_type,
        instance_type,
        min_count: Some(min as u32),
        max_count: Some(max as u32),
        key_pair: params.text("KeyName").map(str::to_string),
        user_data: params.text("UserData").map(str::to_string),
        security_groups: groups,
        stage,
        tags: launch_tags,
        dry_run: cx.dry_run()?,
        ..CreateInstancesRequest::default()
    };
    let idempotency = params.text("ClientToken").map(|token| Idempotency {
        key: format!("ec2:{token}"),
        request_hash: request_hash(&Method::POST, "ec2:RunInstances", &canonical(params)),
    });
    let launch = cx
        .state
        .core
        .create_instances(cx.principal, cx.env(), &request, idempotency.as_ref())
        .await?;
    let operation = match launch {
        Launch::DryRun => return Err(dry_run_ok()),
        Launch::Started(operation) => *operation,
    };
    let instances = launched(cx, &operation, min as usize).await?;
    let mut body = Xml::new();
    let owner = account_of(&cx.principal.org);
    let members: Vec<&Instance> = instances.iter().collect();
    let reservation = members
        .first()
        .map(|i| reservation_of(i))
        .unwrap_or_default();
    write_reservation(&mut body, &reservation, &owner, shape, &members);
    Ok(Answer::changed(body, operation))
}

/// The parameters as one text, sorted, without what changes between retries of one call.
fn canonical(params: &Params) -> Vec<u8> {
    params.canonical(&["ClientToken", "Version"])
}

/// The instances a launch made, as soon as their ids exist (clients poll from there): in
/// the inventory, by the launch's operation tag. A launch that fails before says why.
async fn launched(
    cx: &Call<'_>,
    operation: &Operation,
    min: usize,
) -> Result<Vec<Instance>, Error> {
    let deadline =
        Instant::now() + Duration::from_secs(cx.state.core.config().operation_timeout_secs);
    loop {
        let query = InstanceQuery {
            tags: BTreeMap::from([(tags::OPERATION.to_string(), operation.id.clone())]),
            limit: 1000,
            ..InstanceQuery::default()
        };
        let page = cx
            .state
            .core
            .instances(cx.principal, cx.env(), query)
            .await?;
        if page.items.len() >= min {
            return Ok(page.items);
        }
        let now = cx.state.core.operation(cx.principal, &operation.id).await?;
        match now.status {
            // The launch's own failure, in EC2's terms (an image not found, no capacity).
            OperationStatus::Failed | OperationStatus::Cancelled => {
                return Err(now.error.as_ref().map_or_else(
                    || fault("InsufficientInstanceCapacity", "the launch failed"),
                    Error::from,
                ));
            }
            _ if Instant::now() >= deadline => {
                return Err(Error::unavailable(
                    "launch_pending",
                    format!(
                        "the launch {} has made no instance yet; it goes on",
                        operation.id
                    ),
                    5,
                ))
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Start, Stop (`Force`), Reboot, Terminate: a plan over the ids named, acted on as
/// `/v1`'s bulk actions are. Naming every id is the confirmation `/v1` asks for; an
/// instance of a protected stage is left to `/v1`, where its confirmation is given.
async fn lifecycle(cx: &Call<'_>, action: BulkAction) -> Result<Answer, Error> {
    let shape = cx.ids()?;
    let ids = instance_ids(cx, shape)?;
    if ids.is_empty() {
        return Err(fault(
            "MissingParameter",
            "The request must contain the parameter InstanceId",
        ));
    }
    let instances = named_instances(cx, &ids).await?;
    cx.check_dry_run(Role::Operator)?;
    let (_, stages) = cx.state.core.provider_and_stages(cx.env())?;
    if matches!(action, BulkAction::Stop | BulkAction::Terminate) {
        if let Some(protected) = instances
            .iter()
            .find(|i| i.stage.as_deref().is_some_and(|s| stages.is_protected(s)))
        {
            return Err(fault(
                "OperationNotPermitted",
                format!(
                    "The instance '{}' is in the protected stage {}: {} it through overcast's /v1 API with its confirmation",
                    shape.shown(&protected.id),
                    protected.stage.as_deref().unwrap_or_default(),
                    action.name()
                ),
            ));
        }
    }
    let request = BulkRequest {
        ids: ids.clone(),
        force: cx.params.bool("Force")?.unwrap_or(false),
        confirm: Some(format!("{}/{}", cx.env(), ids.len())),
        ..BulkRequest::default()
    };
    let outcome = cx
        .state
        .core
        .bulk(cx.principal, cx.env(), action, &request, None)
        .await?;
    let mut body = Xml::new();
    if action == BulkAction::Reboot {
        body.text("return", true);
    } else {
        let next = match action {
            BulkAction::Start => InstanceState::Pending,
            BulkAction::Stop => InstanceState::Stopping,
            _ => InstanceState::Terminating,
        };
        let planned: Vec<String> = match &outcome {
            BulkOutcome::Planned(plan) => plan.targets.iter().map(|t| t.id.clone()).collect(),
            BulkOutcome::Started(_) => ids.clone(),
        };
        body.set("instancesSet", &instances, |xml, instance| {
            xml.text("instanceId", shape.shown(&instance.id));
            let acted =
                matches!(outcome, BulkOutcome::Started(_)) && planned.contains(&instance.id);
            let current = if acted && !already(action, instance.state) {
                next
            } else {
                instance.state
            };
            write_state(xml, "currentState", current);
            write_state(xml, "previousState", instance.state);
        });
    }
    Ok(match outcome {
        BulkOutcome::Started(operation) => Answer::changed(body, *operation),
        BulkOutcome::Planned(_) => Answer::read(body),
    })
}

/// Whether an instance is already where an action leads.
fn already(action: BulkAction, state: InstanceState) -> bool {
    match action {
        BulkAction::Start => state == InstanceState::Running,
        BulkAction::Stop => state == InstanceState::Stopped,
        BulkAction::Terminate => state.is_gone(),
        _ => false,
    }
}

/// DescribeInstanceTypes, from the machine types: each with its vCPUs and memory, none
/// burstable (so Terraform asks for no credit specification).
fn instance_types(cx: &Call<'_>) -> Result<Answer, Error> {
    let asked = cx.params.list("InstanceType")?;
    let types = cx.state.core.machine_types();
    let mut shown = Vec::new();
    for machine in &types {
        let name = aws_type(machine).unwrap_or(&machine.name).to_string();
        let size = machine.machine.sizes.values().next();
        let number = |key: &str| size.and_then(|t| t.get(key)).and_then(|v| v.as_integer());
        if asked.is_empty() || asked.contains(&name) || asked.contains(&machine.name) {
            let shown_name = if asked.contains(&machine.name) {
                machine.name.clone()
            } else {
                name
            };
            shown.push((shown_name, number("cpus"), number("memory_mb")));
        }
    }
    if let Some(unknown) = asked
        .iter()
        .find(|a| !shown.iter().any(|(n, _, _)| n == *a))
    {
        return Err(fault(
            "InvalidInstanceType",
            format!("The following supplied instance types do not exist: [{unknown}]"),
        ));
    }
    let mut body = Xml::new();
    body.set("instanceTypeSet", shown, |xml, (name, cpus, memory)| {
        xml.text("instanceType", name)
            .text("currentGeneration", true)
            .text("burstablePerformanceSupported", false)
            .text("hypervisor", "xen");
        if let Some(cpus) = cpus {
            xml.node("vCpuInfo", |xml| {
                xml.text("defaultVCpus", cpus);
            });
        }
        if let Some(memory) = memory {
            xml.node("memoryInfo", |xml| {
                xml.text("sizeInMiB", memory);
            });
        }
    });
    Ok(Answer::read(body))
}

/// What kind of resource an EC2 id names.
fn resource_kind(id: &str) -> ResourceKind {
    if id.starts_with("ami-") || id.starts_with("img-") {
        ResourceKind::Image
    } else if id.starts_with("sg-") {
        ResourceKind::SecurityGroup
    } else {
        ResourceKind::Instance
    }
}

/// CreateTags and DeleteTags: one tag operation per resource, as on `/v1`.
async fn change_tags(cx: &Call<'_>, set: bool) -> Result<Answer, Error> {
    let shape = cx.ids()?;
    let resources = cx.params.list("ResourceId")?;
    if resources.is_empty() {
        return Err(fault(
            "MissingParameter",
            "The request must contain the parameter ResourceId",
        ));
    }
    let pairs = cx.params.tags("Tag")?;
    cx.check_dry_run(Role::Operator)?;
    let mut last = None;
    for resource in &resources {
        let id = shape.own(resource);
        let request = TagRequest {
            target: resource_kind(&id),
            id,
            set: if set {
                pairs.iter().cloned().collect()
            } else {
                BTreeMap::new()
            },
            remove: if set {
                Vec::new()
            } else {
                pairs.iter().map(|(k, _)| k.clone()).collect()
            },
        };
        let operation = cx
            .state
            .core
            .tag_resource(cx.principal, cx.env(), request, None)
            .await?;
        last = Some(operation);
    }
    let mut body = Xml::new();
    body.text("return", true);
    Ok(match last {
        Some(operation) => Answer::changed(body, operation),
        None => Answer::read(body),
    })
}

/// DescribeTags of instances: filters `resource-id`, `key` and `resource-type`.
async fn describe_tags(cx: &Call<'_>) -> Result<Answer, Error> {
    let shape = cx.ids()?;
    let mut ids = Vec::new();
    let mut keys = Vec::new();
    for (name, values) in cx.params.filters()? {
        match name.as_str() {
            "resource-id" => ids.extend(values.iter().map(|v| shape.own(v))),
            "key" => keys.extend(values),
            "resource-type" if values.iter().all(|v| v == "instance") => {}
            "resource-type" => return Ok(Answer::read(empty_tags())),
            other => {
                return Err(fault(
                    "InvalidParameterValue",
                    format!(
                        "The filter '{other}' is invalid; use resource-id, key or resource-type"
                    ),
                ))
            }
        }
    }
    let instances = if ids.is_empty() {
        let query = InstanceQuery {
            limit: 1000,
            ..InstanceQuery::default()
        };
        cx.state
            .core
            .instances(cx.principal, cx.env(), query)
            .await?
            .items
    } else {
        let mut found = Vec::new();
        for id in &ids {
            if let Ok(instance) = cx.state.core.instance(cx.principal, cx.env(), id).await {
                found.push(instance);
            }
        }
        found
    };
    let rows: Vec<(String, String, String)> = instances
        .iter()
        .flat_map(|i| {
            client_tags(&i.tags)
                .filter(|(k, _)| keys.is_empty() || keys.contains(k))
                .map(|(k, v)| (shape.shown(&i.id), k.clone(), v.clone()))
        })
        .collect();
    let mut body = Xml::new();
    body.set("tagSet", rows, |xml, (id, key, value)| {
        xml.text("resourceId", id)
            .text("resourceType", "instance")
            .text("key", key)
            .text("value", value);
    });
    Ok(Answer::read(body))
}

fn empty_tags() -> Xml {
    let mut body = Xml::new();
    body.set("tagSet", Vec::<()>::new(), |_, ()| {});
    body
}

/// DescribeInstanceAttribute of the attributes Terraform reads.
async fn instance_attribute(cx: &Call<'_>) -> Result<Answer, Error> {
    let shape = cx.ids()?;
    let id = shape.own(cx.params.required("InstanceId")?);
    let attribute = cx.params.required("Attribute")?.to_string();
    let instance = named_instances(cx, std::slice::from_ref(&id))
        .await?
        .remove(0);
    let value = match attribute.as_str() {
        "instanceType" => instance.instance_type.clone().unwrap_or_default(),
        "disableApiTermination" | "disableApiStop" => "false".into(),
        "instanceInitiatedShutdownBehavior" => "stop".into(),
        "userData" => String::new(),
        other => {
            return Err(fault(
                "InvalidParameterValue",
                format!("Value ({other}) for parameter attribute is invalid; this endpoint answers instanceType, userData, disableApiTermination, disableApiStop and instanceInitiatedShutdownBehavior"),
            ))
        }
    };
    let mut body = Xml::new();
    body.text("instanceId", shape.shown(&instance.id));
    if attribute == "userData" {
        body.node("userData", |_| {});
    } else {
        body.node(&attribute, |xml| {
            xml.text("value", value);
        });
    }
    Ok(Answer::read(body))
}

/// ModifyInstanceAttribute: termination protection, the instance type, user data.
async fn modify_attribute(cx: &Call<'_>) -> Result<Answer, Error> {
    let shape = cx.ids()?;
    let id = shape.own(cx.params.required("InstanceId")?);
    let params = cx.params;
    let attribute = params.text("Attribute");
    let value = |name: &str| {
        params
            .text(&format!("{name}.Value"))
            .or_else(|| {
                (attribute == Some(name_lower(name).as_str()))
                    .then(|| params.text("Value"))
                    .flatten()
            })
            .map(str::to_string)
    };
    let protection = value("DisableApiTermination")
        .map(|v| match v.as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(fault(
                "InvalidParameterValue",
                format!("Value ({v}) for parameter disableApiTermination is invalid"),
            )),
        })
        .transpose()?;
    let request = ModifyInstanceRequest {
        instance_type: value("InstanceType"),
        termination_protection: protection,
        user_data: value("UserData"),
        security_groups: None,
    };
    if request.instance_type.is_none()
        && request.termination_protection.is_none()
        && request.user_data.is_none()
    {
        return Err(fault(
            "MissingParameter",
            "give DisableApiTermination.Value, InstanceType.Value or UserData.Value",
        ));
    }
    named_instances(cx, std::slice::from_ref(&id)).await?;
    cx.check_dry_run(Role::Operator)?;
    let operation = cx
        .state
        .core
        .modify_instance(cx.principal, cx.env(), &id, &request, None)
        .await?;
    let mut body = Xml::new();
    body.text("return", true);
    Ok(Answer::changed(body, operation))
}

/// `DisableApiTermination` → `disableApiTermination`, as the `Attribute` form names it.
fn name_lower(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|c| c.to_ascii_lowercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_ids_round_trip_and_others_pass_through() {
        let local = IdShape { local: true };
        assert_eq!(local.shown("vm-0123456789abcdef"), "i-00123456789abcdef");
        assert_eq!(local.own("i-00123456789abcdef"), "vm-0123456789abcdef");
        assert_eq!(local.shown("img-00000000000000ff"), "ami-000000000000000ff");
        assert_eq!(local.own("ami-000000000000000ff"), "img-00000000000000ff");
        let aws = IdShape { local: false };
        assert_eq!(aws.own("i-00123456789abcdef"), "i-00123456789abcdef");
        assert_eq!(aws.shown("i-0abc"), "i-0abc");
    }

    #[test]
    fn unknown_filters_are_refused_and_known_ones_select() {
        let shape = IdShape { local: false };
        let err = Filter::parse("vpc-id", vec!["v".into()], shape)
            .err()
            .unwrap();
        assert_eq!(err.code, "InvalidParameterValue");
        assert!(err.message.contains("'vpc-id'"));
        let mut instance = Instance::new("i-1", "e", "r", InstanceState::Terminating);
        instance.tags.insert("stage".into(), "dev".into());
        let states = Filter::parse("instance-state-name", vec!["shutting-down".into()], shape);
        assert!(states.unwrap().keeps(&instance));
        let tag = Filter::parse("tag:stage", vec!["prod".into(), "dev".into()], shape);
        assert!(tag.unwrap().keeps(&instance));
        let key = Filter::parse("tag-key", vec!["team".into()], shape);
        assert!(!key.unwrap().keeps(&instance));
    }

    #[test]
    fn accounts_are_twelve_stable_digits_per_org() {
        let acme = account_of("acme");
        assert_eq!(acme.len(), 12);
        assert!(acme.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(acme, account_of("acme"));
        assert_ne!(acme, account_of("other"));
    }

    fn golden_instance() -> Instance {
        let mut instance = Instance::new(
            "vm-0123456789abcdef",
            "local",
            "local",
            InstanceState::Terminating,
        );
        instance.image = Some("img-00000000000000ff".into());
        instance.instance_type = Some("tiny".into());
        instance.private_ip = Some("10.0.2.15".into());
        instance.tags = BTreeMap::from([
            ("stage".to_string(), "dev".to_string()),
            ("overcast:operation".to_string(), "op_1".to_string()),
            ("overcast:org".to_string(), "acme".to_string()),
        ]);
        instance
    }

    #[test]
    fn a_reservation_reads_as_describe_instances_answers_it() {
        let mut xml = Xml::new();
        let instance = golden_instance();
        write_reservation(
            &mut xml,
            &reservation_of(&instance),
            "123456789012",
            IdShape { local: true },
            &[&instance],
        );
        assert_eq!(
            xml.into_string(),
            format!(
                "<reservationId>{}</reservationId><ownerId>123456789012</ownerId><groupSet/>\
                 <instancesSet><item><instanceId>i-00123456789abcdef</instanceId>\
                 <imageId>ami-000000000000000ff</imageId>\
                 <instanceState><code>32</code><name>shutting-down</name></instanceState>\
                 <privateDnsName>10.0.2.15</privateDnsName><dnsName></dnsName>\
                 <amiLaunchIndex>0</amiLaunchIndex><instanceType>tiny</instanceType>\
                 <placement><availabilityZone>local</availabilityZone><tenancy>default</tenancy></placement>\
                 <monitoring><state>disabled</state></monitoring>\
                 <privateIpAddress>10.0.2.15</privateIpAddress><groupSet/>\
                 <architecture>x86_64</architecture><rootDeviceType>instance-store</rootDeviceType>\
                 <virtualizationType>hvm</virtualizationType><hypervisor>xen</hypervisor>\
                 <tagSet><item><key>stage</key><value>dev</value></item></tagSet>\
                 </item></instancesSet>",
                reservation_of(&instance)
            )
        );
        // One launch is one reservation, whatever instance of it is asked for.
        let mut sibling = golden_instance();
        sibling.id = "vm-00000000000000aa".into();
        assert_eq!(reservation_of(&sibling), reservation_of(&instance));
        assert!(reservation_of(&instance).starts_with("r-0"));
    }

    #[test]
    fn states_read_as_ec2_names_and_codes() {
        let mut xml = Xml::new();
        write_state(&mut xml, "currentState", InstanceState::Stopping);
        write_state(&mut xml, "previousState", InstanceState::Rebooting);
        assert_eq!(
            xml.into_string(),
            "<currentState><code>64</code><name>stopping</name></currentState>\
             <previousState><code>16</code><name>running</name></previousState>"
        );
    }
}
