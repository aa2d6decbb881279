//! The Flint AWS-EC2 connector's action route: `POST /flint/aws-ec2` (and `/sync`,
//! `/sync/<ms>`) taking `{"action": ..., ...}` with dashed or underscored keys, answering
//! `{"exitcode", "message", <result key>}` with the connector's own result and item keys.
//! A change waits `timeout` milliseconds (60,000 by default); `"async": true`, or a change
//! still going when the wait ends, answers Flint's `meta` block with the operation as its
//! job, pollable at `GET /flint/jobs/{job-id}` (CONTRACTS.md §4, §6.5). Actions run in the
//! environment `[compat.flint]` names; `access-key` and `security-key` are ignored.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use overcast_core::compute::{
    BulkAction, BulkOutcome, BulkRequest, CreateInstancesRequest, InstanceQuery, Launch,
    ModifyInstanceRequest, Plan,
};
use overcast_core::config::Config;
use overcast_core::security_groups::{CreateGroupRequest, RuleChange};
use overcast_core::tags::TagRequest;
use overcast_provider::ResourceKind;
use overcast_types::{
    Direction, Error, ErrorKind, Instance, InstanceState, Operation, OperationStatus, Protocol,
    Role, Rule, SecurityGroup, TargetOutcome, TargetResult,
};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

use super::lenient::{self, Fields};
use super::{audited, ChangeContext};
use crate::http::family::{AuthScheme, Family, RoutePolicy};
use crate::http::status::status_of;
use crate::native::error::ApiError;
use crate::native::extract::{ApiPath, Caller};
use crate::AppState;

/// The connector's default timeout, in milliseconds.
const DEFAULT_TIMEOUT_MS: u64 = 60_000;
/// The connector's default region.
const DEFAULT_REGION: &str = "us-east-1";
/// The most instances one describe or list renders.
const PAGE: u32 = 500;

/// Flint's family: an overcast token in `Authorization: Bearer` or Flint's own `flint-key`
/// header. Every action call is audited; reads need a viewer, and changes an operator
/// (core checks that per action, since one route carries both).
pub struct Flint;

impl Family for Flint {
    fn auth(&self) -> AuthScheme {
        AuthScheme::BearerOrHeader("flint-key")
    }

    fn policy(&self, method: &Method, _route: &str, _config: &Config) -> RoutePolicy {
        if *method == Method::GET {
            RoutePolicy::read(Role::Viewer)
        } else {
            RoutePolicy::audited(Role::Viewer)
        }
    }

    /// Flint reports failure in band; only a refused caller gets another status.
    fn error(&self, error: Error) -> Response {
        let status = match error.kind {
            ErrorKind::Unauthenticated | ErrorKind::Forbidden => status_of(error.kind),
            _ => StatusCode::OK,
        };
        (status, Json(failure(&error.message))).into_response()
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/flint/aws-ec2", post(action))
        .route("/flint/aws-ec2/sync", post(action))
        .route("/flint/aws-ec2/sync/{timeout_ms}", post(action_within))
        .route("/flint/jobs/{job_id}", get(job))
}

fn failure(message: &str) -> Value {
    json!({"exitcode": 1, "message": message})
}

fn success(result: Option<(&str, Value)>) -> Value {
    let mut answer = json!({"exitcode": 0, "message": "success"});
    if let Some((key, value)) = result {
        answer[key] = value;
    }
    answer
}

/// What an action led to.
enum Outcome {
    /// Done at once: the result key and value, if the action has one.
    Answered(Option<(&'static str, Value)>),
    /// A change under way: its operation, and how its result reads when it ends.
    Started(Box<Operation>, Render),
}

/// How a change's result is read from its operation.
#[derive(Debug, Clone)]
enum Render {
    /// `instance-info` of the launched instances.
    Launched,
    /// A lifecycle action's list: each instance's current and previous state.
    States {
        key: &'static str,
        action: BulkAction,
        previous: BTreeMap<String, InstanceState>,
    },
    /// `reboot-instance-id`: the ids.
    Rebooted,
    /// `group-id` of the made group.
    GroupId,
    /// No result key.
    Nothing,
}

impl Render {
    /// How a lifecycle action's result reads, given the states before it.
    fn lifecycle(action: BulkAction, previous: BTreeMap<String, InstanceState>) -> Render {
        let key = match action {
            BulkAction::Start => "started-instances-set",
            BulkAction::Stop => "stop-instance-list",
            BulkAction::Terminate => "terminated-instance-set",
            _ => return Render::Rebooted,
        };
        Render::States {
            key,
            action,
            previous,
        }
    }

    /// How a job found by its id reads: from its kind alone (the states before it ran are
    /// not recorded).
    fn of_kind(kind: &str) -> Render {
        if kind == "instance.create" {
            return Render::Launched;
        }
        BulkAction::ALL
            .into_iter()
            .find(|a| a.kind() == kind && a.target_state().is_some())
            .map_or(Render::Nothing, |a| Render::lifecycle(a, BTreeMap::new()))
    }

    fn result(&self, results: &[TargetResult]) -> Option<(&'static str, Value)> {
        match self {
            Render::Launched => {
                let launched: Vec<Value> = results
                    .iter()
                    .filter_map(|r| r.detail.clone())
                    .filter_map(|d| serde_json::from_value::<Instance>(d).ok())
                    .map(|i| {
                        json!({
                            "instance-id": i.id,
                            "instance-type": i.instance_type,
                            "public-ip": i.public_ip,
                            "private-ip": i.private_ip,
                        })
                    })
                    .collect();
                Some(("instance-info", Value::Array(launched)))
            }
            Render::States {
                key,
                action,
                previous,
            } => {
                let now = action
                    .target_state()
                    .map(|s| ec2_state(s).0)
                    .unwrap_or("unknown");
                let mut listed: Vec<Value> = results
                    .iter()
                    .map(|r| {
                        let current = match r.outcome {
                            TargetOutcome::Done => now.to_string(),
                            _ => previous
                                .get(&r.target)
                                .map_or("unknown", |s| ec2_state(*s).0)
                                .to_string(),
                        };
                        json!({
                            "instance-id": r.target,
                            "current-state": current,
                            "previous-state": previous.get(&r.target).map(|s| ec2_state(*s).0),
                        })
                    })
                    .collect();
                // Instances already where the action leads were left alone; EC2 lists
                // them with their unchanged state.
                for (id, state) in previous {
                    if !results.iter().any(|r| &r.target == id) {
                        listed.push(json!({
                            "instance-id": id,
                            "current-state": ec2_state(*state).0,
                            "previous-state": ec2_state(*state).0,
                        }));
                    }
                }
                Some((key, Value::Array(listed)))
            }
            Render::Rebooted => Some((
                "reboot-instance-id",
                json!(results.iter().map(|r| r.target.clone()).collect::<Vec<_>>()),
            )),
            Render::GroupId => Some((
                "group-id",
                results
                    .first()
                    .and_then(|r| r.detail.as_ref())
                    .and_then(|d| d.get("id").cloned())
                    .unwrap_or(Value::Null),
            )),
            Render::Nothing => None,
        }
    }

    /// The connector's answer for an operation that ended.
    fn output(&self, operation: &Operation) -> Value {
        match operation.status {
            OperationStatus::Succeeded => success(self.result(&operation.results)),
            _ => failure(
                &operation
                    .error
                    .as_ref()
                    .map(|e| e.message.clone())
                    .unwrap_or_else(|| format!("the operation was {}", operation.status.as_str())),
            ),
        }
    }
}

/// An EC2 state name and code, as the connector passed EC2's through.
fn ec2_state(state: InstanceState) -> (&'static str, u16) {
    match state {
        InstanceState::Pending => ("pending", 0),
        InstanceState::Running | InstanceState::Rebooting => ("running", 16),
        InstanceState::Terminating => ("shutting-down", 32),
        InstanceState::Terminated => ("terminated", 48),
        InstanceState::Stopping => ("stopping", 64),
        InstanceState::Stopped => ("stopped", 80),
        InstanceState::Error => ("unknown", 0),
    }
}

/// Flint's `meta` block for a job (an operation) that has not ended or was asked for
/// asynchronously.
fn meta(operation: &Operation, action: &str, timeout_ms: u64) -> Value {
    let (status, exit) = match operation.status {
        OperationStatus::Pending => ("submitted", Value::Null),
        OperationStatus::Running => ("running", Value::Null),
        OperationStatus::Succeeded => ("complete", json!(0)),
        OperationStatus::Failed => ("error", json!(1)),
        OperationStatus::Cancelled => ("aborted", json!(1)),
    };
    json!({
        "job-id": operation.id,
        "exit-code": exit,
        "context": format!("aws-ec2:{action}"),
        "message": status,
        "timeout": timeout_ms,
        "timestamp": operation.created_at.unix_timestamp_nanos() / 1_000_000,
        "status": status,
        "content-type": "application/json",
    })
}

async fn action(
    State(state): State<AppState>,
    Caller(principal): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    run(&state, &principal, &headers, &body, None).await
}

async fn action_within(
    State(state): State<AppState>,
    Caller(principal): Caller,
    timeout_ms: Result<ApiPath<u64>, ApiError>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match timeout_ms {
        Ok(ApiPath(ms)) => run(&state, &principal, &headers, &body, Some(ms)).await,
        Err(_) => Flint.error(Error::invalid(
            "timeout",
            "the timeout in the path is a number of milliseconds",
        )),
    }
}

async fn run(
    state: &AppState,
    principal: &overcast_core::auth::Principal,
    headers: &HeaderMap,
    body: &Bytes,
    path_timeout: Option<u64>,
) -> Response {
    let call = async {
        let value = lenient::parse_json(body)
            .map_err(|e| Error::invalid("body", format!("the body is not JSON: {e}")))?;
        let fields = Fields::from_json(value);
        let action = fields.text("action").ok_or_else(|| {
            Error::invalid("action", "give the action to run, e.g. \"start-instances\"")
        })?;
        let timeout_ms = match path_timeout {
            Some(ms) => ms,
            None => fields
                .number("timeout")?
                .map_or(Ok(DEFAULT_TIMEOUT_MS), |ms| {
                    u64::try_from(ms)
                        .map_err(|_| Error::invalid("timeout", "must be 0 or more milliseconds"))
                })?,
        };
        let is_async = fields.flag("async")?.unwrap_or(false);
        let cx = ChangeContext::new(
            state,
            principal,
            headers,
            &Method::POST,
            "/flint/aws-ec2",
            body,
        )?;
        let env = state
            .core
            .config()
            .compat
            .flint
            .as_ref()
            .map(|m| m.environment.clone())
            .ok_or_else(|| {
                Error::invalid(
                    "action",
                    "Flint's connector is not set up on this server: name an environment in [compat.flint]",
                )
            })?;
        let region = region(state, &env, &fields)?;
        let call = Call {
            cx: &cx,
            env: &env,
            region: &region,
            fields: &fields,
        };
        let outcome = call.run(&action).await?;
        let (operation, render) = match outcome {
            Outcome::Answered(result) => return Ok(Json(success(result)).into_response()),
            Outcome::Started(operation, render) => (operation, render),
        };
        let wait = if is_async {
            Duration::ZERO
        } else {
            Duration::from_millis(timeout_ms)
        };
        let operation = cx.settle(&operation, wait).await?;
        let answer = if is_async || !operation.status.is_final() {
            json!({ "meta": meta(&operation, &action, timeout_ms) })
        } else {
            render.output(&operation)
        };
        Ok(audited(Json(answer).into_response(), &operation))
    };
    call.await.unwrap_or_else(|e: Error| Flint.error(e))
}

/// The environment's region for the call's `region` (default `us-east-1`).
fn region(state: &AppState, env: &str, fields: &Fields) -> Result<String, Error> {
    let asked = fields
        .text("region")
        .unwrap_or_else(|| DEFAULT_REGION.to_string());
    let served = state.core.region_names(env)?;
    let mapping = state.core.config().compat.flint.as_ref();
    mapping
        .and_then(|m| m.region(&asked, &served))
        .ok_or_else(|| {
            Error::invalid(
                "region",
                format!(
                    "region {asked} is not served here; environment {env} serves {}",
                    served.join(", ")
                ),
            )
        })
}

/// One action call: where it runs and what it was given.
struct Call<'a> {
    cx: &'a ChangeContext<'a>,
    env: &'a str,
    region: &'a str,
    fields: &'a Fields,
}

impl Call<'_> {
    fn required(&self, key: &str) -> Result<String, Error> {
        self.fields
            .text(key)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Error::invalid(key, format!("{key} is required")))
    }

    fn instance_ids(&self) -> Result<Vec<String>, Error> {
        self.fields
            .texts("instance-id")?
            .filter(|ids| !ids.is_empty())
            .ok_or_else(|| Error::invalid("instance-id", "instance-id is required"))
    }

    async fn run(&self, action: &str) -> Result<Outcome, Error> {
        match action {
            "create-instance" => self.create_instance().await,
            "start-instances" => self.lifecycle(BulkAction::Start).await,
            "stop-instances" => self.lifecycle(BulkAction::Stop).await,
            "terminate-instances" => self.lifecycle(BulkAction::Terminate).await,
            "reboot-instances" => self.lifecycle(BulkAction::Reboot).await,
            "describe-instances" => self.describe_instances().await,
            "list" | "list-instances" => self.list_instances().await,
            "create-security-group" => self.create_group().await,
            "describe-security-group" => self.describe_group().await,
            "delete-security-group" => self.delete_group().await,
            "list-security-group" => self.list_groups().await,
            "security-group-add-rule" => self.change_rule(true).await,
            "revoke-security-group-rule" => self.change_rule(false).await,
            "create-tags" => self.tags(true).await,
            "delete-tags" => self.tags(false).await,
            "describe-tags" => self.describe_tags().await,
            "modify-instance-attribute" => self.modify_attribute().await,
            "allocate-address"
            | "release-address"
            | "associate-address"
            | "disassociate-address"
            | "describe-addresses" => Err(Error::invalid(
                "action",
                format!("overcast does not manage Elastic IP addresses; `{action}` is not served"),
            )),
            other => Err(Error::invalid(
                "action",
                format!("overcast does not serve the action `{other}`"),
            )),
        }
    }

    async fn create_instance(&self) -> Result<Outcome, Error> {
        let count = |key: &str| -> Result<Option<u32>, Error> {
            self.fields
                .number(key)?
                .map(|n| u32::try_from(n).map_err(|_| Error::invalid(key, "must be 1 or more")))
                .transpose()
        };
        let max = count("max-instance")?
            .ok_or_else(|| Error::invalid("max-instance", "max-instance is required"))?;
        let request = CreateInstancesRequest {
            image: Some(self.required("image-id")?),
            instance_type: Some(self.required("instance-type")?),
            min_count: Some(count("min-instance")?.unwrap_or(max).min(max)),
            max_count: Some(max),
            zone: self.fields.text("availability-zone"),
            key_pair: self.fields.text("key-name"),
            subnet: self.fields.text("subnet-id"),
            security_groups: self.fields.texts("security-group")?.unwrap_or_default(),
            region: Some(self.region.to_string()),
            ..CreateInstancesRequest::default()
        };
        let launch = self
            .cx
            .state
            .core
            .create_instances(
                self.cx.principal,
                self.env,
                &request,
                self.cx.idempotency.as_ref(),
            )
            .await?;
        match launch {
            Launch::Started(operation) => Ok(Outcome::Started(operation, Render::Launched)),
            Launch::DryRun => Ok(Outcome::Answered(None)),
        }
    }

    /// Start, stop, terminate or reboot the given instances: planned first, for the
    /// states before (and the count a terminate confirms, which the connector's callers
    /// cannot send), then carried out as one operation.
    async fn lifecycle(&self, action: BulkAction) -> Result<Outcome, Error> {
        let ids = self.instance_ids()?;
        let mut request = BulkRequest {
            ids: ids.clone(),
            region: Some(self.region.to_string()),
            dry_run: true,
            ..BulkRequest::default()
        };
        let plan = match self.bulk(action, &request).await? {
            BulkOutcome::Planned(plan) => plan,
            // The same Idempotency-Key again: the first call's operation.
            BulkOutcome::Started(operation) => {
                let render = Render::of_kind(&operation.kind);
                return Ok(Outcome::Started(operation, render));
            }
        };
        if let Some(missing) = plan.skipped.iter().find(|s| s.state.is_none()) {
            return Err(Error::invalid(
                "instance-id",
                format!(
                    "InvalidInstanceID.NotFound: The instance ID '{}' does not exist",
                    missing.id
                ),
            ));
        }
        let render = Render::lifecycle(action, previous_states(&plan, &ids));
        if plan.targets.is_empty() {
            // Nothing needs the action: EC2 answers the unchanged states at once.
            return Ok(Outcome::Answered(render.result(&[])));
        }
        request.dry_run = false;
        request.confirm = Some(format!("{}/{}", self.env, plan.targets.len()));
        match self.bulk(action, &request).await? {
            BulkOutcome::Started(operation) => Ok(Outcome::Started(operation, render)),
            // The instances got there since the plan: nothing is left to do.
            BulkOutcome::Planned(_) => Ok(Outcome::Answered(render.result(&[]))),
        }
    }

    async fn bulk(&self, action: BulkAction, request: &BulkRequest) -> Result<BulkOutcome, Error> {
        self.cx
            .state
            .core
            .bulk(
                self.cx.principal,
                self.env,
                action,
                request,
                self.cx.idempotency.as_ref(),
            )
            .await
    }

    async fn describe_instances(&self) -> Result<Outcome, Error> {
        let core = &self.cx.state.core;
        let instances = match self.fields.texts("instance-id")? {
            Some(ids) if !ids.is_empty() => {
                let mut found = Vec::new();
                for id in ids {
                    found.push(core.instance(self.cx.principal, self.env, &id).await?);
                }
                found
            }
            _ => self.all_instances().await?,
        };
        let described: Vec<Value> = instances.iter().map(describe_instance).collect();
        Ok(Outcome::Answered(Some((
            "instances-info",
            Value::Array(described),
        ))))
    }

    async fn all_instances(&self) -> Result<Vec<Instance>, Error> {
        let mut query = InstanceQuery {
            region: Some(self.region.to_string()),
            limit: PAGE,
            ..InstanceQuery::default()
        };
        let mut instances = Vec::new();
        loop {
            let page = self
                .cx
                .state
                .core
                .instances(self.cx.principal, self.env, query.clone())
                .await?;
            instances.extend(page.items);
            match page.next_page_token {
                Some(token) => query.page_token = Some(token),
                None => return Ok(instances),
            }
        }
    }

    async fn list_instances(&self) -> Result<Outcome, Error> {
        let ids: Vec<String> = self
            .all_instances()
            .await?
            .into_iter()
            .map(|i| i.id)
            .collect();
        Ok(Outcome::Answered(Some(("instance-list", json!(ids)))))
    }

    async fn create_group(&self) -> Result<Outcome, Error> {
        let request = CreateGroupRequest {
            name: self.required("group-name")?,
            description: self.required("group-description")?,
            region: Some(self.region.to_string()),
            vpc_id: self.fields.text("vpc-id"),
            tags: BTreeMap::new(),
        };
        let operation = self
            .cx
            .state
            .core
            .create_security_group(
                self.cx.principal,
                self.env,
                &request,
                self.cx.idempotency.as_ref(),
            )
            .await?;
        Ok(Outcome::Started(Box::new(operation), Render::GroupId))
    }

    /// The group the call names by id or by name.
    async fn group(&self) -> Result<SecurityGroup, Error> {
        let core = &self.cx.state.core;
        if let Some(id) = self
            .fields
            .text("security-group-id")
            .or(self.fields.text("group-id"))
        {
            return core.security_group(self.cx.principal, self.env, &id).await;
        }
        let name = self
            .fields
            .text("group-name")
            .or(self.fields.text("security-group-name"))
            .ok_or_else(|| Error::invalid("group-name", "give group-name or security-group-id"))?;
        core.security_groups(self.cx.principal, self.env, Some(self.region), false)
            .await?
            .items
            .into_iter()
            .find(|g| g.name == name)
            .ok_or_else(|| Error::not_found("security_group", &name))
    }

    async fn describe_group(&self) -> Result<Outcome, Error> {
        let group = self.group().await?;
        Ok(Outcome::Answered(Some((
            "security-group-info",
            json!([describe_group(&group)]),
        ))))
    }

    async fn list_groups(&self) -> Result<Outcome, Error> {
        let groups = self
            .cx
            .state
            .core
            .security_groups(self.cx.principal, self.env, Some(self.region), false)
            .await?;
        let listed: Vec<Value> = groups.items.iter().map(describe_group).collect();
        Ok(Outcome::Answered(Some((
            "security-group-list",
            Value::Array(listed),
        ))))
    }

    async fn delete_group(&self) -> Result<Outcome, Error> {
        let group = self.group().await?;
        let operation = self
            .cx
            .state
            .core
            .delete_security_group(
                self.cx.principal,
                self.env,
                &group.id,
                self.cx.idempotency.as_ref(),
            )
            .await?;
        Ok(Outcome::Started(Box::new(operation), Render::Nothing))
    }

    /// Adds or revokes one rule: `direction` inbound or outbound, `protocol`, the ports,
    /// and `ip-range` or `cidr-block` (default `0.0.0.0/0`).
    async fn change_rule(&self, add: bool) -> Result<Outcome, Error> {
        let id = self.required("security-group-id")?;
        let direction = match self.fields.text("direction").as_deref() {
            None | Some("inbound" | "ingress") => Direction::Ingress,
            Some("outbound" | "egress") => Direction::Egress,
            Some(other) => {
                return Err(Error::invalid(
                    "direction",
                    format!("`{other}` is not inbound or outbound"),
                ))
            }
        };
        let protocol = match self.fields.text("protocol").as_deref() {
            Some("tcp" | "6") => Protocol::Tcp,
            Some("udp" | "17") => Protocol::Udp,
            Some("icmp" | "1") => Protocol::Icmp,
            None | Some("all" | "-1") => Protocol::All,
            Some(other) => {
                return Err(Error::invalid(
                    "protocol",
                    format!("`{other}` is not tcp, udp, icmp or all"),
                ))
            }
        };
        let port = |key: &str| -> Result<Option<i32>, Error> {
            self.fields
                .number(key)?
                .map(|n| i32::try_from(n).map_err(|_| Error::invalid(key, "is out of range")))
                .transpose()
        };
        let rule = Rule {
            direction,
            protocol,
            from_port: port("from-port")?,
            to_port: port("to-port")?,
            cidr: Some(
                self.fields
                    .text("ip-range")
                    .or(self.fields.text("cidr-block"))
                    .unwrap_or_else(|| "0.0.0.0/0".into()),
            ),
            source_group: None,
        };
        let change = if add {
            RuleChange::Add(rule)
        } else {
            RuleChange::Remove(rule)
        };
        let operation = self
            .cx
            .state
            .core
            .change_rule(
                self.cx.principal,
                self.env,
                &id,
                change,
                self.cx.idempotency.as_ref(),
            )
            .await?;
        Ok(Outcome::Started(Box::new(operation), Render::Nothing))
    }

    /// Sets or removes one tag (`tag-key`, `tag-value`) of the resource `resource-id`.
    async fn tags(&self, set: bool) -> Result<Outcome, Error> {
        let id = self.required("resource-id")?;
        let key = self.required("tag-key")?;
        let value = self.fields.text("tag-value").unwrap_or_default();
        let request = TagRequest {
            target: resource_kind(&id)?,
            id,
            set: if set {
                BTreeMap::from([(key.clone(), value)])
            } else {
                BTreeMap::new()
            },
            remove: if set { Vec::new() } else { vec![key] },
        };
        let operation = self
            .cx
            .state
            .core
            .tag_resource(
                self.cx.principal,
                self.env,
                request,
                self.cx.idempotency.as_ref(),
            )
            .await?;
        Ok(Outcome::Started(Box::new(operation), Render::Nothing))
    }

    async fn describe_tags(&self) -> Result<Outcome, Error> {
        let id = self.required("resource-id")?;
        let core = &self.cx.state.core;
        let principal = self.cx.principal;
        let (tags, kind) = match resource_kind(&id)? {
            ResourceKind::Instance => (
                core.instance(principal, self.env, &id).await?.tags,
                "instance",
            ),
            ResourceKind::Image => (core.image(principal, self.env, &id).await?.tags, "image"),
            _ => (
                core.security_group(principal, self.env, &id).await?.tags,
                "security-group",
            ),
        };
        let set: Vec<Value> = tags
            .iter()
            .map(|(k, v)| json!({"key": k, "value": v, "resource-id": id, "resource-type": kind}))
            .collect();
        Ok(Outcome::Answered(Some(("tag-set", Value::Array(set)))))
    }

    /// Changes one attribute by its EC2 name: `instanceType`, `disableApiTermination`,
    /// `userData` or `groupSet`.
    async fn modify_attribute(&self) -> Result<Outcome, Error> {
        let id = self.required("instance-id")?;
        let attribute = self.required("attribute")?;
        let value = self
            .fields
            .get("attribute-value")
            .cloned()
            .unwrap_or(Value::Null);
        let text = || {
            self.fields
                .text("attribute-value")
                .ok_or_else(|| Error::invalid("attribute-value", "attribute-value is required"))
        };
        let mut request = ModifyInstanceRequest::default();
        match attribute.as_str() {
            "instanceType" => request.instance_type = Some(text()?),
            "disableApiTermination" => {
                request.termination_protection = Some(
                    self.fields
                        .flag("attribute-value")?
                        .ok_or_else(|| Error::invalid("attribute-value", "give true or false"))?,
                )
            }
            "userData" => request.user_data = Some(text()?),
            "groupSet" => {
                request.security_groups = Some(match value {
                    Value::Array(_) => self.fields.texts("attribute-value")?.unwrap_or_default(),
                    _ => text()?.split(',').map(|s| s.trim().to_string()).collect(),
                })
            }
            other => {
                return Err(Error::invalid(
                    "attribute",
                    format!("overcast changes instanceType, disableApiTermination, userData or groupSet, not `{other}`"),
                ))
            }
        }
        let operation = self
            .cx
            .state
            .core
            .modify_instance(
                self.cx.principal,
                self.env,
                &id,
                &request,
                self.cx.idempotency.as_ref(),
            )
            .await?;
        Ok(Outcome::Started(Box::new(operation), Render::Nothing))
    }
}

/// The states of the named instances before the action, from its plan.
fn previous_states(plan: &Plan, ids: &[String]) -> BTreeMap<String, InstanceState> {
    let mut states: BTreeMap<String, InstanceState> = plan
        .targets
        .iter()
        .map(|t| (t.id.clone(), t.state))
        .collect();
    states.retain(|id, _| ids.contains(id));
    for skipped in &plan.skipped {
        // A skipped instance is already where the action leads, or gone.
        if let Some(state) = skipped.state {
            states.insert(skipped.id.clone(), state);
        }
    }
    states
}

/// The kind of resource an EC2 id names.
fn resource_kind(id: &str) -> Result<ResourceKind, Error> {
    if id.starts_with("i-") {
        Ok(ResourceKind::Instance)
    } else if id.starts_with("ami-") {
        Ok(ResourceKind::Image)
    } else if id.starts_with("sg-") {
        Ok(ResourceKind::SecurityGroup)
    } else {
        Err(Error::invalid(
            "resource-id",
            format!("`{id}` is not an instance, image or security group id"),
        ))
    }
}

/// An instance as the connector described it: every key its flintbits read, `null` where
/// overcast keeps nothing.
fn describe_instance(instance: &Instance) -> Value {
    let (state, code) = ec2_state(instance.state);
    let launch_time = instance.launched_at.and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    });
    let mut described = Map::new();
    let mut put = |key: &str, value: Value| {
        described.insert(key.to_string(), value);
    };
    put("image-id", json!(instance.image));
    put("public-ip", json!(instance.public_ip));
    put("instance-type", json!(instance.instance_type));
    put("key-name", json!(instance.key_pair));
    put("private-ip", json!(instance.private_ip));
    put("instance-id", json!(instance.id));
    put("instance-state-code", json!(code));
    put("instance-state-name", json!(state));
    put("launch-time", json!(launch_time));
    put("placement-availability-zone", json!(instance.zone));
    for unknown in [
        "hypervisor",
        "kernel-id",
        "architecture",
        "client-token",
        "instance-lifecycle",
        "platform",
        "ramdisk-id",
        "ebs-optimized",
        "placement-tenancy",
        "placement-group-name",
        "public-DNSname",
        "root-device-name",
        "root-device-type",
        "subnet-id",
        "virtualization-type",
        "vpc-id",
        "ami-launch-index",
    ] {
        put(unknown, Value::Null);
    }
    Value::Object(described)
}

fn describe_group(group: &SecurityGroup) -> Value {
    let rules = |direction: Direction| -> Vec<Value> {
        group
            .rules
            .iter()
            .filter(|r| r.direction == direction)
            .map(|r| {
                json!({
                    "ip-protocol": serde_json::to_value(r.protocol).unwrap_or(Value::Null),
                    "from-port": r.from_port,
                    "to-port": r.to_port,
                    "ip-range": r.cidr,
                    "source-group": r.source_group,
                })
            })
            .collect()
    };
    json!({
        "owner-id": Value::Null,
        "group-name": group.name,
        "group-description": group.description,
        "vpc-id": group.vpc_id,
        "group-id": group.id,
        "ip-permissions-egress": rules(Direction::Egress),
        "tags": group.tags,
        "ip-permissions": rules(Direction::Ingress),
    })
}

/// A job: Flint's `meta` block, and once it has ended, its output as the action answered.
async fn job(
    State(state): State<AppState>,
    Caller(principal): Caller,
    id: Result<ApiPath<String>, ApiError>,
) -> Response {
    let found = async {
        let ApiPath(id) = id.map_err(|e| e.0)?;
        state.core.operation(&principal, &id).await
    };
    match found.await {
        Err(e) if e.kind == ErrorKind::NotFound => {
            (StatusCode::NOT_FOUND, Json(failure("no such job"))).into_response()
        }
        Err(e) => Flint.error(e),
        Ok(operation) => {
            let action = flint_action(&operation.kind);
            let mut answer = json!({ "meta": meta(&operation, action, DEFAULT_TIMEOUT_MS) });
            if operation.status.is_final() {
                answer["output"] = Render::of_kind(&operation.kind).output(&operation);
            }
            Json(answer).into_response()
        }
    }
}

/// The connector's action name for an operation kind.
fn flint_action(kind: &str) -> &str {
    match kind {
        "instance.create" => "create-instance",
        "instance.start" => "start-instances",
        "instance.stop" => "stop-instances",
        "instance.terminate" => "terminate-instances",
        "instance.reboot" => "reboot-instances",
        "instance.modify" => "modify-instance-attribute",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_as_ec2_names_and_codes() {
        assert_eq!(ec2_state(InstanceState::Running), ("running", 16));
        assert_eq!(ec2_state(InstanceState::Terminating), ("shutting-down", 32));
        assert_eq!(ec2_state(InstanceState::Stopped), ("stopped", 80));
    }

    #[test]
    fn resource_kinds_come_from_ids() {
        assert_eq!(resource_kind("i-0abc").unwrap(), ResourceKind::Instance);
        assert_eq!(resource_kind("sg-1").unwrap(), ResourceKind::SecurityGroup);
        assert_eq!(
            resource_kind("vol-1").unwrap_err().field.as_deref(),
            Some("resource-id")
        );
    }

    #[test]
    fn described_instances_carry_every_key_the_flintbits_read() {
        let described = describe_instance(&Instance::new(
            "i-1",
            "aws-dev",
            "eu-west-1",
            InstanceState::Stopped,
        ));
        for key in ["public-DNSname", "instance-state-code", "ami-launch-index"] {
            assert!(described.get(key).is_some(), "{key}");
        }
        assert_eq!(described["instance-state-name"], "stopped");
    }
}
