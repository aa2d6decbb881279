//! Container services as the `Containers` capability, after ECS on Fargate: clusters per
//! region; task definition families whose revisions are numbered once, never again after a
//! deregistration; services whose scheduler keeps their desired count of tasks, rolls a new
//! deployment out (its tasks first, then the ones it replaces stopped) and says so in its
//! events; tasks that go PROVISIONING → PENDING → RUNNING over the pending time and
//! STOPPING → DEPROVISIONING → STOPPED over the stopping time. Nothing runs in the
//! background: the scheduler acts at once on what a call changes, and what it did since
//! (replaced tasks stopped, deployments completed, steady states) is worked out, at the
//! times it happened, whenever a call looks. Services and runs honour client tokens. The
//! simulator has no subnets: tasks need none, and naming one is refused, as for instances.

use async_trait::async_trait;
use overcast_provider::{
    ClusterSpec, Containers, ProviderError, ProviderErrorKind as Kind, RunTaskSpec, ServiceSpec,
    ServiceUpdate, TaskDefinitionSpec, TaskFilter,
};
use overcast_types::{
    validate_container_name, CapacityShare, Cluster, Container, ContainerService, Deployment,
    ServiceEvent, Task, TaskContainer, TaskDefinition,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use crate::compute::{check_tags, Timing};
use crate::errors::{invalid, refusal};
use crate::firewall::GroupRecord;
use crate::world::{Clock, Ids, Region, World};
use crate::SimProvider;

/// The account every ARN names.
const ACCOUNT: &str = "000000000000";

/// The capacity providers every account has: Fargate's own.
const FARGATE_PROVIDERS: [&str; 2] = ["FARGATE", "FARGATE_SPOT"];

/// ECS's largest page of ListClusters, ListTaskDefinitions, ListServices and ListTasks.
const LIST_PAGE: usize = 100;

/// The most clusters or tasks one Describe call takes.
const DESCRIBE_BATCH: usize = 100;

/// The most services one DescribeServices call takes.
const SERVICES_BATCH: usize = 10;

/// The events a service keeps, newest first: as many as the AWS backend answers.
const RECENT_EVENTS: usize = 20;

/// The most tasks one RunTask starts.
const MAX_RUN_COUNT: u32 = 10;

/// The longest client token CreateService takes.
const SERVICE_TOKEN_MAX: usize = 36;

/// The longest client token RunTask takes.
const RUN_TOKEN_MAX: usize = 64;

/// A stopped task stays listed this long, as ECS keeps one at least an hour.
const STOPPED_KEPT: Duration = Duration::from_secs(3600);

fn cluster_not_found() -> ProviderError {
    refusal(
        Kind::NotFound,
        "cluster_not_found",
        "ClusterNotFoundException",
        "Cluster not found.",
    )
}

fn service_not_found() -> ProviderError {
    refusal(
        Kind::NotFound,
        "service_not_found",
        "ServiceNotFoundException",
        "Service not found.",
    )
}

/// ECS's refusal of a request it finds malformed or impossible (`ClientException`).
fn client_error(field: &'static str, message: impl Into<String>) -> ProviderError {
    refusal(
        Kind::InvalidInput,
        "invalid_input",
        "ClientException",
        message,
    )
    .with_field(field)
}

/// ECS's refusal of one parameter (`InvalidParameterException`).
fn invalid_parameter(field: &'static str, message: impl Into<String>) -> ProviderError {
    refusal(
        Kind::InvalidInput,
        "invalid_input",
        "InvalidParameterException",
        message,
    )
    .with_field(field)
}

/// A cluster that still holds services or tasks (`what`), which ECS will not delete.
fn cluster_in_use(backend_code: &str, what: &str) -> ProviderError {
    refusal(
        Kind::Conflict,
        "cluster_in_use",
        backend_code,
        format!("The Cluster cannot be deleted while {what} are active."),
    )
}

/// Tags as ECS takes them: EC2's limits, ECS's refusal.
fn check_ecs_tags(tags: &BTreeMap<String, String>) -> Result<(), ProviderError> {
    check_tags(tags).map_err(|mut e| {
        e.backend_code = Some("InvalidParameterException".into());
        e
    })
}

/// The last part of a name or an ARN (`.../cluster/web` → `web`), as ECS takes either.
fn last_part(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Checks a capacity provider strategy against the providers it may use, as ECS does.
fn check_strategy(
    field: &'static str,
    strategy: &[CapacityShare],
    providers: &[String],
) -> Result<(), ProviderError> {
    if let Some(share) = strategy.iter().find(|s| !providers.contains(&s.provider)) {
        return Err(invalid_parameter(
            field,
            format!(
                "The specified capacity provider strategy cannot contain a capacity provider that is not associated with the cluster: {}",
                share.provider
            ),
        ));
    }
    if strategy.iter().filter(|s| s.base > 0).count() > 1 {
        return Err(invalid_parameter(
            field,
            "Only one capacity provider in a capacity provider strategy can have a base defined.",
        ));
    }
    Ok(())
}

/// A task's CPU as ECS takes it: units (`256`) or vCPUs (`0.25 vCPU`).
fn cpu_units(cpu: &str) -> Option<u32> {
    let cpu = cpu.trim();
    match cpu.strip_suffix("vCPU") {
        Some(vcpus) => scaled(vcpus, 1024.0),
        None => cpu.parse().ok(),
    }
}

/// A task's memory as ECS takes it: MiB (`512`) or GB (`0.5 GB`).
fn mebibytes(memory: &str) -> Option<u32> {
    let memory = memory.trim();
    match memory.strip_suffix("GB") {
        Some(gb) => scaled(gb, 1024.0),
        None => memory.parse().ok(),
    }
}

fn scaled(number: &str, by: f64) -> Option<u32> {
    let scaled = (number.trim().parse::<f64>().ok()? * by).round();
    (0.0..=f64::from(u32::MAX))
        .contains(&scaled)
        .then_some(scaled as u32)
}

/// Whether Fargate offers a task of these CPU units and MiB; `None` when it offers no task
/// of these CPU units at all.
fn fargate_offers(cpu: u32, memory: u32) -> Option<bool> {
    let (from, to, step) = match cpu {
        256 => return Some([512, 1024, 2048].contains(&memory)),
        512 => (1024, 4096, 1024),
        1024 => (2048, 8192, 1024),
        2048 => (4096, 16384, 1024),
        4096 => (8192, 30720, 1024),
        8192 => (16384, 61440, 4096),
        16384 => (32768, 122880, 8192),
        _ => return None,
    };
    Some((from..=to).contains(&memory) && (memory - from).is_multiple_of(step))
}

/// Checks a task definition as ECS checks one for Fargate; answers its CPU units and MiB.
fn check_definition(spec: &TaskDefinitionSpec) -> Result<(u32, u32), ProviderError> {
    validate_container_name("family", &spec.family)
        .map_err(|e| client_error("family", e.message))?;
    let cpu = cpu_units(&spec.cpu).ok_or_else(|| {
        client_error(
            "cpu",
            format!("Invalid 'cpu' setting for task: {}", spec.cpu),
        )
    })?;
    let memory = mebibytes(&spec.memory).ok_or_else(|| {
        client_error(
            "memory",
            format!("Invalid 'memory' setting for task: {}", spec.memory),
        )
    })?;
    match fargate_offers(cpu, memory) {
        Some(true) => {}
        offered => {
            return Err(client_error(
                if offered.is_none() { "cpu" } else { "memory" },
                format!("No Fargate configuration exists for given values: {cpu} CPU, {memory} memory. See the Amazon ECS documentation for the valid values."),
            ))
        }
    }
    if spec.containers.is_empty() {
        return Err(client_error(
            "containers",
            "Container list cannot be empty.",
        ));
    }
    let mut names = BTreeSet::new();
    let mut container_cpu = 0u32;
    for c in &spec.containers {
        validate_container_name("containers", &c.name).map_err(|e| {
            client_error(
                "containers",
                format!("container `{}`: {}", c.name, e.message),
            )
        })?;
        if !names.insert(c.name.as_str()) {
            return Err(client_error(
                "containers",
                format!("Container names must be unique: {}", c.name),
            ));
        }
        if c.image.trim().is_empty() {
            return Err(client_error(
                "containers",
                format!("Container.image should not be null or empty: {}", c.name),
            ));
        }
        if c.memory_mb.is_some_and(|m| m > memory) {
            return Err(client_error(
                "containers",
                format!(
                    "The 'memory' setting for container '{}' is greater than for the task.",
                    c.name
                ),
            ));
        }
        if let Some(port) = c
            .ports
            .iter()
            .find(|p| p.container_port == 0 || !["tcp", "udp"].contains(&p.protocol.as_str()))
        {
            return Err(invalid_parameter(
                "containers",
                format!(
                    "container '{}': port {}/{} is not a port and protocol (tcp or udp)",
                    c.name, port.container_port, port.protocol
                ),
            ));
        }
        // Fargate pulls secrets, private images and logs with the execution role.
        let needs_role =
            c.log.is_some() || !c.secrets.is_empty() || c.repository_credentials.is_some();
        if needs_role && spec.execution_role.is_none() {
            return Err(client_error(
                "execution_role",
                format!("Fargate requires task definition to have execution role ARN to support container '{}' (its logs, secrets or registry credentials).", c.name),
            ));
        }
        container_cpu = container_cpu.saturating_add(c.cpu.unwrap_or(0));
    }
    if container_cpu > cpu {
        return Err(client_error(
            "containers",
            format!("The containers' 'cpu' settings add up to {container_cpu}, more than the task's {cpu}."),
        ));
    }
    if !spec.containers.iter().any(|c| c.essential) {
        return Err(client_error(
            "containers",
            "A task definition must have at least one essential container.",
        ));
    }
    Ok((cpu, memory))
}

/// A new task's id: 32 hex digits, as ECS's, in the order tasks were made.
fn task_id(ids: &mut Ids) -> String {
    format!("{:032x}", ids.number())
}

/// A new deployment's id, in ECS's shape (`ecs-svc/` and 19 digits).
fn deployment_id(ids: &mut Ids) -> String {
    format!("ecs-svc/{:019}", ids.number())
}

/// Tasks as a service's events name them: `(task ID) (task ID)`.
fn task_list(ids: &[String]) -> String {
    ids.iter()
        .map(|id| format!("(task {id})"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Where a Fargate task stands: its `lastStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TaskStatus {
    Provisioning,
    Pending,
    Running,
    Stopping,
    Deprovisioning,
    Stopped,
}

impl TaskStatus {
    fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Provisioning => "PROVISIONING",
            TaskStatus::Pending => "PENDING",
            TaskStatus::Running => "RUNNING",
            TaskStatus::Stopping => "STOPPING",
            TaskStatus::Deprovisioning => "DEPROVISIONING",
            TaskStatus::Stopped => "STOPPED",
        }
    }

    /// Counted as pending in a cluster's, service's and deployment's counts.
    fn is_pending(self) -> bool {
        matches!(self, TaskStatus::Provisioning | TaskStatus::Pending)
    }
}

/// What the scheduler acts with in one call: the region, the moment of the call, the clock
/// that dates what happens, the ids of new things, and how long tasks take.
struct Scheduler<'a> {
    region: &'a str,
    now: Duration,
    clock: &'a Clock,
    ids: &'a mut Ids,
    timing: Timing,
}

/// Which service, and which of its deployments, a task was started for.
struct ServiceTask {
    service: String,
    deployment: String,
}

/// A task asked to stop: when, how long it takes, and why.
struct TaskStop {
    at: Duration,
    takes: Duration,
    reason: String,
}

pub(crate) struct TaskRecord {
    arn: String,
    /// `family:revision`.
    task_definition: String,
    /// Its containers' names.
    containers: Vec<String>,
    /// The service that started it, if one did.
    started_by: Option<ServiceTask>,
    tags: BTreeMap<String, String>,
    /// When it was asked to run, by the simulated clock, and how long it takes to run.
    asked: Duration,
    starts_in: Duration,
    stop: Option<TaskStop>,
}

impl TaskRecord {
    fn new(
        id: &str,
        cluster: &str,
        task_definition: String,
        containers: Vec<String>,
        started_by: Option<ServiceTask>,
        tags: BTreeMap<String, String>,
        s: &Scheduler,
    ) -> TaskRecord {
        TaskRecord {
            arn: format!("arn:aws:ecs:{}:{ACCOUNT}:task/{cluster}/{id}", s.region),
            task_definition,
            containers,
            started_by,
            tags,
            asked: s.now,
            starts_in: s.timing.pending,
            stop: None,
        }
    }

    fn running_from(&self) -> Duration {
        self.asked + self.starts_in
    }

    fn stopped_from(&self) -> Option<Duration> {
        self.stop.as_ref().map(|s| s.at + s.takes)
    }

    /// Whether it is meant to run: its desired status is RUNNING.
    fn is_wanted(&self) -> bool {
        self.stop.is_none()
    }

    fn status(&self, now: Duration) -> TaskStatus {
        match &self.stop {
            Some(stop) if now >= stop.at + stop.takes => TaskStatus::Stopped,
            Some(stop) if now >= stop.at + stop.takes / 2 => TaskStatus::Deprovisioning,
            Some(_) => TaskStatus::Stopping,
            None if now >= self.running_from() => TaskStatus::Running,
            None if now >= self.asked + self.starts_in / 2 => TaskStatus::Pending,
            None => TaskStatus::Provisioning,
        }
    }

    /// Whether it got to run before it was asked to stop.
    fn ran(&self, now: Duration) -> bool {
        let until = self.stop.as_ref().map_or(now, |s| s.at.min(now));
        self.running_from() <= until
    }

    /// Stopped so long ago that ECS no longer lists it.
    fn expired(&self, now: Duration) -> bool {
        self.stopped_from()
            .is_some_and(|stopped| now >= stopped + STOPPED_KEPT)
    }

    fn of_service(&self, service: &str) -> bool {
        self.started_by
            .as_ref()
            .is_some_and(|by| by.service == service)
    }

    fn of_deployment(&self, service: &str, deployment: &str) -> bool {
        self.started_by
            .as_ref()
            .is_some_and(|by| by.service == service && by.deployment == deployment)
    }

    fn family(&self) -> &str {
        self.task_definition
            .rsplit_once(':')
            .map_or(self.task_definition.as_str(), |(family, _)| family)
    }

    /// Asks it to stop, unless it was asked already: a stop is not moved by another.
    fn ask_to_stop(&mut self, at: Duration, takes: Duration, reason: String) {
        if self.stop.is_none() {
            self.stop = Some(TaskStop { at, takes, reason });
        }
    }

    /// Stops it for its service's scheduler, as ECS says when it scales a deployment in.
    fn stop_for_scaling(&mut self, at: Duration, takes: Duration) {
        let deployment = self
            .started_by
            .as_ref()
            .map(|by| by.deployment.clone())
            .unwrap_or_default();
        self.ask_to_stop(
            at,
            takes,
            format!("Scaling activity initiated by (deployment {deployment})"),
        );
    }

    fn to_task(&self, id: &str, cluster: &str, s: &Scheduler) -> Task {
        let status = self.status(s.now);
        let ran = self.ran(s.now);
        let container_status = match status {
            TaskStatus::Stopped => "STOPPED",
            _ if ran => "RUNNING",
            _ => "PENDING",
        };
        Task {
            id: id.to_string(),
            arn: Some(self.arn.clone()),
            cluster: cluster.to_string(),
            region: s.region.to_string(),
            task_definition: self.task_definition.clone(),
            service: self.started_by.as_ref().map(|by| by.service.clone()),
            last_status: status.as_str().to_string(),
            desired_status: if self.is_wanted() {
                "RUNNING"
            } else {
                "STOPPED"
            }
            .to_string(),
            started_at: ran.then(|| s.clock.timestamp_at(self.running_from())),
            stopped_at: self
                .stopped_from()
                .filter(|_| status == TaskStatus::Stopped)
                .map(|at| s.clock.timestamp_at(at)),
            stopped_reason: self.stop.as_ref().map(|stop| stop.reason.clone()),
            containers: self
                .containers
                .iter()
                .map(|name| TaskContainer {
                    name: name.clone(),
                    last_status: Some(container_status.to_string()),
                    // The simulated containers end cleanly when asked to stop.
                    exit_code: (status == TaskStatus::Stopped && ran).then_some(0),
                    reason: None,
                })
                .collect(),
            tags: self.tags.clone(),
            org: None,
        }
    }
}

/// One rollout of a service's task definition.
struct DeploymentRecord {
    id: String,
    /// `family:revision`.
    task_definition: String,
    /// Its containers' names, which its tasks run.
    containers: Vec<String>,
    desired_count: u32,
    created: Duration,
    /// Whether its rollout completed: its tasks all ran and the ones it replaced stopped.
    completed: bool,
}

pub(crate) struct ServiceRecord {
    arn: String,
    launch_type: String,
    capacity_strategy: Vec<CapacityShare>,
    subnets: Vec<String>,
    security_groups: Vec<String>,
    public_ip: bool,
    registries: Vec<String>,
    tags: BTreeMap<String, String>,
    created: Duration,
    /// The newest first: the primary, then those it replaces until their tasks stopped.
    /// Never empty.
    deployments: Vec<DeploymentRecord>,
    /// The newest first.
    events: Vec<ServiceEvent>,
    /// When it last changed or its scheduler last acted: nothing it does after is dated
    /// earlier.
    changed: Duration,
    /// Whether it was said to have reached a steady state since it last changed.
    steady: bool,
    /// The client token it was made under, with the create that made it.
    made_under: Option<(String, ServiceSpec)>,
}

impl ServiceRecord {
    fn desired_count(&self) -> u32 {
        self.deployments.first().map_or(0, |d| d.desired_count)
    }

    fn record(&mut self, s: &mut Scheduler, at: Duration, message: String) {
        self.events.insert(
            0,
            ServiceEvent {
                id: s.ids.uuid(),
                at: s.clock.timestamp_at(at),
                message,
            },
        );
        self.events.truncate(RECENT_EVENTS);
    }

    /// What the scheduler does at once when the service changed or lost a task: it starts
    /// tasks of the primary deployment up to the desired count, or stops those past it
    /// (the ones furthest from running first).
    fn schedule(
        &mut self,
        name: &str,
        cluster: &str,
        tasks: &mut BTreeMap<String, TaskRecord>,
        s: &mut Scheduler,
    ) {
        let Some(primary) = self.deployments.first() else {
            return;
        };
        let desired = primary.desired_count as usize;
        let mut wanted: Vec<(Duration, String)> = tasks
            .iter()
            .filter(|(_, t)| t.is_wanted() && t.of_deployment(name, &primary.id))
            .map(|(id, t)| (t.running_from(), id.clone()))
            .collect();
        let message = if wanted.len() < desired {
            let mut started = Vec::new();
            for _ in wanted.len()..desired {
                let id = task_id(s.ids);
                let by = ServiceTask {
                    service: name.to_string(),
                    deployment: primary.id.clone(),
                };
                // A service's tasks carry its tags, as ECS gives them when asked to
                // propagate them (the AWS backend asks).
                let task = TaskRecord::new(
                    &id,
                    cluster,
                    primary.task_definition.clone(),
                    primary.containers.clone(),
                    Some(by),
                    self.tags.clone(),
                    s,
                );
                tasks.insert(id.clone(), task);
                started.push(id);
            }
            format!(
                "(service {name}) has started {} tasks: {}.",
                started.len(),
                task_list(&started)
            )
        } else if wanted.len() > desired {
            wanted.sort();
            let stopped: Vec<String> = wanted
                .split_off(desired)
                .into_iter()
                .map(|(_, id)| id)
                .collect();
            for id in &stopped {
                if let Some(task) = tasks.get_mut(id) {
                    task.stop_for_scaling(s.now, s.timing.stopping);
                }
            }
            format!(
                "(service {name}) has stopped {} running tasks: {}.",
                stopped.len(),
                task_list(&stopped)
            )
        } else {
            return;
        };
        let now = s.now;
        self.record(s, now, message);
        self.changed = now;
        self.steady = false;
    }

    /// Works out what the scheduler did since it last acted, at the times it did it: the
    /// deployments a new one replaces are stopped once all of its tasks run, a replaced one
    /// goes once its tasks have stopped, and the service reaches a steady state once only
    /// its primary is left, with its tasks all running.
    fn settle(&mut self, name: &str, tasks: &mut BTreeMap<String, TaskRecord>, s: &mut Scheduler) {
        let Some(primary) = self.deployments.first() else {
            return;
        };
        let primary_id = primary.id.clone();
        let desired = primary.desired_count as usize;
        if self.deployments.len() > 1 {
            let running: Vec<Duration> = tasks
                .values()
                .filter(|t| t.is_wanted() && t.of_deployment(name, &primary_id))
                .map(TaskRecord::running_from)
                .collect();
            let ready_at = running.iter().copied().fold(self.changed, Duration::max);
            if running.len() >= desired && ready_at <= s.now {
                let mut stopped = Vec::new();
                for old in &mut self.deployments[1..] {
                    old.desired_count = 0;
                    for (id, task) in tasks.iter_mut() {
                        if task.is_wanted() && task.of_deployment(name, &old.id) {
                            task.stop_for_scaling(ready_at, s.timing.stopping);
                            stopped.push(id.clone());
                        }
                    }
                }
                if !stopped.is_empty() {
                    let message = format!(
                        "(service {name}) has stopped {} running tasks: {}.",
                        stopped.len(),
                        task_list(&stopped)
                    );
                    self.record(s, ready_at, message);
                }
            }
            let now = s.now;
            self.deployments.retain(|d| {
                d.id == primary_id
                    || tasks.values().any(|t| {
                        t.of_deployment(name, &d.id) && t.status(now) != TaskStatus::Stopped
                    })
            });
        }
        if self.deployments.len() > 1 || self.steady {
            return;
        }
        let mine: Vec<&TaskRecord> = tasks.values().filter(|t| t.of_service(name)).collect();
        let wanted = mine.iter().filter(|t| t.is_wanted()).count();
        let settled_at = mine
            .iter()
            .map(|t| t.stopped_from().unwrap_or_else(|| t.running_from()))
            .fold(self.changed, Duration::max);
        if wanted != desired || settled_at > s.now {
            return;
        }
        let completed = self
            .deployments
            .first_mut()
            .filter(|d| !d.completed)
            .map(|d| {
                d.completed = true;
                format!(
                    "(service {name}) (deployment {}) deployment completed.",
                    d.id
                )
            });
        if let Some(message) = completed {
            self.record(s, settled_at, message);
        }
        self.record(
            s,
            settled_at,
            format!("(service {name}) has reached a steady state."),
        );
        self.steady = true;
    }

    /// The scheduler's answer to a change, then whatever that settles at once (with no
    /// pending or stopping time, a steady state).
    fn react(
        &mut self,
        name: &str,
        cluster: &str,
        tasks: &mut BTreeMap<String, TaskRecord>,
        s: &mut Scheduler,
    ) {
        self.schedule(name, cluster, tasks, s);
        self.settle(name, tasks, s);
    }

    fn to_service(
        &self,
        name: &str,
        cluster: &str,
        tasks: &BTreeMap<String, TaskRecord>,
        s: &Scheduler,
    ) -> ContainerService {
        let deployments: Vec<Deployment> = self
            .deployments
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let statuses = tasks
                    .values()
                    .filter(|t| t.of_deployment(name, &d.id))
                    .map(|t| t.status(s.now));
                let (running, pending) = statuses.fold((0, 0), |(running, pending), status| {
                    (
                        running + u32::from(status == TaskStatus::Running),
                        pending + u32::from(status.is_pending()),
                    )
                });
                Deployment {
                    id: d.id.clone(),
                    status: if i == 0 { "PRIMARY" } else { "ACTIVE" }.to_string(),
                    task_definition: d.task_definition.clone(),
                    desired_count: d.desired_count,
                    running_count: running,
                    pending_count: pending,
                    rollout_state: Some(
                        if d.completed {
                            "COMPLETED"
                        } else {
                            "IN_PROGRESS"
                        }
                        .to_string(),
                    ),
                    created_at: Some(s.clock.timestamp_at(d.created)),
                }
            })
            .collect();
        ContainerService {
            name: name.to_string(),
            arn: Some(self.arn.clone()),
            cluster: cluster.to_string(),
            region: s.region.to_string(),
            status: "ACTIVE".into(),
            task_definition: deployments
                .first()
                .map(|d| d.task_definition.clone())
                .unwrap_or_default(),
            desired_count: self.desired_count(),
            running_count: deployments.iter().map(|d| d.running_count).sum(),
            pending_count: deployments.iter().map(|d| d.pending_count).sum(),
            launch_type: self.launch_type.clone(),
            capacity_strategy: self.capacity_strategy.clone(),
            subnets: self.subnets.clone(),
            security_groups: self.security_groups.clone(),
            public_ip: self.public_ip,
            registries: self.registries.clone(),
            deployments,
            events: self.events.clone(),
            created_at: Some(s.clock.timestamp_at(self.created)),
            tags: self.tags.clone(),
            org: None,
        }
    }
}

/// A run recorded under its client token.
struct Run {
    spec: RunTaskSpec,
    tasks: Vec<String>,
}

pub(crate) struct ClusterRecord {
    arn: String,
    capacity_providers: Vec<String>,
    default_strategy: Vec<CapacityShare>,
    tags: BTreeMap<String, String>,
    /// Its active services by name. A deleted service has all its tasks stopping, which
    /// makes it inactive at once, as ECS makes a draining one: it is forgotten.
    services: BTreeMap<String, ServiceRecord>,
    /// Its tasks by id, stopped ones until they expire.
    tasks: BTreeMap<String, TaskRecord>,
    /// Runs by client token, so a repeated run answers the first one's tasks.
    runs: HashMap<String, Run>,
}

impl ClusterRecord {
    fn to_cluster(&self, name: &str, region: &str, now: Duration) -> Cluster {
        let statuses: Vec<TaskStatus> = self.tasks.values().map(|t| t.status(now)).collect();
        Cluster {
            name: name.to_string(),
            arn: Some(self.arn.clone()),
            region: region.to_string(),
            status: "ACTIVE".into(),
            capacity_providers: self.capacity_providers.clone(),
            default_strategy: self.default_strategy.clone(),
            active_services: count(self.services.len()),
            running_tasks: count(
                statuses
                    .iter()
                    .filter(|s| **s == TaskStatus::Running)
                    .count(),
            ),
            pending_tasks: count(statuses.iter().filter(|s| s.is_pending()).count()),
            tags: self.tags.clone(),
            org: None,
        }
    }
}

/// The revisions of one task definition family.
#[derive(Default)]
pub(crate) struct FamilyRecord {
    /// Revisions registered so far: the next one is numbered after them all, deregistered
    /// or not.
    registered: u32,
    revisions: BTreeMap<u32, RevisionRecord>,
}

struct RevisionRecord {
    arn: String,
    cpu: String,
    memory: String,
    containers: Vec<Container>,
    execution_role: Option<String>,
    task_role: Option<String>,
    tags: BTreeMap<String, String>,
    /// Deregistered revisions stay describable, INACTIVE, as ECS keeps them.
    active: bool,
}

impl RevisionRecord {
    fn to_task_definition(&self, family: &str, revision: u32, region: &str) -> TaskDefinition {
        TaskDefinition {
            family: family.to_string(),
            revision,
            arn: Some(self.arn.clone()),
            region: region.to_string(),
            status: if self.active { "ACTIVE" } else { "INACTIVE" }.to_string(),
            cpu: self.cpu.clone(),
            memory: self.memory.clone(),
            containers: self.containers.clone(),
            execution_role: self.execution_role.clone(),
            task_role: self.task_role.clone(),
            tags: self.tags.clone(),
            org: None,
        }
    }
}

/// A region's container services, with what their schedulers did until the call worked
/// out, and what changing them needs.
struct Ecs<'a> {
    scheduler: Scheduler<'a>,
    honour_tokens: bool,
    clusters: &'a mut BTreeMap<String, ClusterRecord>,
    families: &'a mut BTreeMap<String, FamilyRecord>,
    /// The region's security groups, which tasks may be placed in.
    groups: &'a BTreeMap<String, GroupRecord>,
}

impl SimProvider {
    /// A region's container services as a call finds them.
    fn ecs<'a>(&self, world: &'a mut World, region: &'a str) -> Result<Ecs<'a>, ProviderError> {
        let now = world.clock.now();
        let World {
            clock,
            ids,
            regions,
            ..
        } = world;
        let Region {
            clusters,
            task_definitions,
            groups,
            ..
        } = regions
            .get_mut(region)
            .ok_or_else(|| invalid("region", format!("no region {region}")))?;
        let mut ecs = Ecs {
            scheduler: Scheduler {
                region,
                now,
                clock,
                ids,
                timing: self.timing,
            },
            honour_tokens: !self.settings.ignore_client_token,
            clusters,
            families: task_definitions,
            groups,
        };
        ecs.settle();
        Ok(ecs)
    }
}

impl Ecs<'_> {
    /// The tags of the cluster or service with this ARN.
    fn tags_of(&mut self, arn: &str) -> Result<&mut BTreeMap<String, String>, ProviderError> {
        for cluster in self.clusters.values_mut() {
            if cluster.arn == arn {
                return Ok(&mut cluster.tags);
            }
            if let Some(service) = cluster.services.values_mut().find(|s| s.arn == arn) {
                return Ok(&mut service.tags);
            }
        }
        Err(refusal(
            Kind::NotFound,
            "resource_not_found",
            "InvalidParameterException",
            format!("The specified resource is not found: {arn}"),
        ))
    }

    /// Works out what every scheduler of the region did until now, and forgets the tasks
    /// stopped long ago.
    fn settle(&mut self) {
        let s = &mut self.scheduler;
        for cluster in self.clusters.values_mut() {
            cluster.tasks.retain(|_, t| !t.expired(s.now));
            for (name, service) in &mut cluster.services {
                service.settle(name, &mut cluster.tasks, s);
            }
        }
    }

    fn cluster(&self, name: &str) -> Result<&ClusterRecord, ProviderError> {
        self.clusters
            .get(last_part(name))
            .ok_or_else(cluster_not_found)
    }

    /// The client token a create or run is made under, if one counts: none when none was
    /// given, or when the settings ignore tokens.
    fn token<'t>(&self, token: &'t str, longest: usize) -> Result<Option<&'t str>, ProviderError> {
        if !self.honour_tokens || token.is_empty() {
            return Ok(None);
        }
        if token.len() > longest || !token.is_ascii() {
            return Err(invalid_parameter(
                "client_token",
                format!("a client token has at most {longest} ASCII characters"),
            ));
        }
        Ok(Some(token))
    }

    /// The revision a name gives: `family:revision`, a family's latest active revision, or
    /// an ARN of either.
    fn definition(&self, name: &str) -> Option<(&str, u32, &RevisionRecord)> {
        let short = last_part(name);
        let (family, revision) = match short.split_once(':') {
            Some((family, revision)) => (family, Some(revision.parse::<u32>().ok()?)),
            None => (short, None),
        };
        let (family, record) = self.families.get_key_value(family)?;
        let (revision, definition) = match revision {
            Some(revision) => (revision, record.revisions.get(&revision)?),
            None => record
                .revisions
                .iter()
                .rev()
                .find(|(_, r)| r.active)
                .map(|(n, r)| (*n, r))?,
        };
        Some((family.as_str(), revision, definition))
    }

    /// A revision to start tasks of, as `family:revision` with its containers' names. ECS
    /// refuses an unknown one as a client error, a deregistered one with `inactive_code`.
    fn runnable(
        &self,
        name: &str,
        inactive_code: &str,
    ) -> Result<(String, Vec<String>), ProviderError> {
        let (family, revision, definition) = self.definition(name).ok_or_else(|| {
            client_error("task_definition", "Unable to describe task definition.")
        })?;
        if !definition.active {
            return Err(refusal(
                Kind::InvalidInput,
                "invalid_input",
                inactive_code,
                "TaskDefinition is inactive",
            )
            .with_field("task_definition"));
        }
        let containers = definition
            .containers
            .iter()
            .map(|c| c.name.clone())
            .collect();
        Ok((format!("{family}:{revision}"), containers))
    }

    /// Checks where tasks are to be placed: the region's security groups only, and no
    /// subnet, as the simulator has none.
    fn check_placement(&self, subnets: &[String], groups: &[String]) -> Result<(), ProviderError> {
        if let Some(subnet) = subnets.first() {
            return Err(invalid_parameter(
                "subnets",
                format!("Error retrieving subnet information for [{subnet}]: The subnet ID '{subnet}' does not exist (the simulator has no subnets; give none)"),
            ));
        }
        if let Some(group) = groups.iter().find(|g| !self.groups.contains_key(*g)) {
            return Err(invalid_parameter(
                "security_groups",
                format!("Error retrieving security group information for [{group}]: The security group '{group}' does not exist"),
            ));
        }
        Ok(())
    }

    /// Every cluster by name, with its ARN to describe it by.
    fn cluster_listing(&self) -> Vec<(String, String)> {
        self.clusters
            .iter()
            .map(|(name, c)| (name.clone(), c.arn.clone()))
            .collect()
    }

    fn describe_clusters(&self, names: &[String]) -> Vec<Cluster> {
        let s = &self.scheduler;
        names
            .iter()
            .filter_map(|name| {
                let name = last_part(name);
                let cluster = self.clusters.get(name)?;
                Some(cluster.to_cluster(name, s.region, s.now))
            })
            .collect()
    }

    fn create_cluster(&mut self, spec: &ClusterSpec) -> Result<Cluster, ProviderError> {
        validate_container_name("name", &spec.name)
            .map_err(|e| invalid_parameter("name", e.message))?;
        if let Some(unknown) = spec
            .capacity_providers
            .iter()
            .find(|p| !FARGATE_PROVIDERS.contains(&p.as_str()))
        {
            return Err(invalid_parameter(
                "capacity_providers",
                format!("The specified capacity provider '{unknown}' does not exist; the simulator has FARGATE and FARGATE_SPOT."),
            ));
        }
        check_strategy(
            "default_strategy",
            &spec.default_strategy,
            &spec.capacity_providers,
        )?;
        check_ecs_tags(&spec.tags)?;
        let s = &self.scheduler;
        if let Some(existing) = self.clusters.get(&spec.name) {
            // CreateCluster is idempotent: the same request again answers the cluster.
            if existing.capacity_providers == spec.capacity_providers
                && existing.default_strategy == spec.default_strategy
                && existing.tags == spec.tags
            {
                return Ok(existing.to_cluster(&spec.name, s.region, s.now));
            }
            return Err(invalid_parameter(
                "name",
                "Arguments on this idempotent request are inconsistent with arguments used in previous request(s).",
            ));
        }
        let record = ClusterRecord {
            arn: format!("arn:aws:ecs:{}:{ACCOUNT}:cluster/{}", s.region, spec.name),
            capacity_providers: spec.capacity_providers.clone(),
            default_strategy: spec.default_strategy.clone(),
            tags: spec.tags.clone(),
            services: BTreeMap::new(),
            tasks: BTreeMap::new(),
            runs: HashMap::new(),
        };
        let cluster = record.to_cluster(&spec.name, s.region, s.now);
        self.clusters.insert(spec.name.clone(), record);
        Ok(cluster)
    }

    fn delete_cluster(&mut self, name: &str) -> Result<(), ProviderError> {
        let name = last_part(name);
        let cluster = self.cluster(name)?;
        if !cluster.services.is_empty() {
            return Err(cluster_in_use(
                "ClusterContainsServicesException",
                "Services",
            ));
        }
        // Tasks still stopping count: only stopped ones let the cluster go.
        let now = self.scheduler.now;
        if cluster
            .tasks
            .values()
            .any(|t| t.status(now) != TaskStatus::Stopped)
        {
            return Err(cluster_in_use("ClusterContainsTasksException", "Tasks"));
        }
        self.clusters.remove(name);
        Ok(())
    }

    fn register(&mut self, spec: &TaskDefinitionSpec) -> Result<TaskDefinition, ProviderError> {
        let (cpu, memory) = check_definition(spec)?;
        check_ecs_tags(&spec.tags)?;
        let region = self.scheduler.region;
        let family = self.families.entry(spec.family.clone()).or_default();
        family.registered += 1;
        let revision = family.registered;
        let record = RevisionRecord {
            arn: format!(
                "arn:aws:ecs:{region}:{ACCOUNT}:task-definition/{}:{revision}",
                spec.family
            ),
            // ECS answers sizes given in vCPU or GB in units and MiB.
            cpu: cpu.to_string(),
            memory: memory.to_string(),
            containers: spec.containers.clone(),
            execution_role: spec.execution_role.clone(),
            task_role: spec.task_role.clone(),
            tags: spec.tags.clone(),
            active: true,
        };
        let definition = record.to_task_definition(&spec.family, revision, region);
        family.revisions.insert(revision, record);
        Ok(definition)
    }

    /// The active revisions, of one family or all, by family and number, as
    /// `family:revision`.
    fn definition_listing(&self, family: Option<&str>) -> Vec<((String, u32), String)> {
        self.families
            .iter()
            .filter(|(name, _)| family.is_none_or(|f| f == name.as_str()))
            .flat_map(|(name, record)| {
                record
                    .revisions
                    .iter()
                    .filter(|(_, r)| r.active)
                    .map(move |(n, _)| ((name.clone(), *n), format!("{name}:{n}")))
            })
            .collect()
    }

    fn describe_definition(&self, name: &str) -> Option<TaskDefinition> {
        self.definition(name).map(|(family, revision, record)| {
            record.to_task_definition(family, revision, self.scheduler.region)
        })
    }

    fn deregister(&mut self, name: &str) -> Result<(), ProviderError> {
        let short = last_part(name);
        let Some((family, revision)) = short.split_once(':') else {
            return Err(client_error(
                "name",
                format!("A revision is deregistered by family:revision or ARN, not by `{short}`."),
            ));
        };
        let revision = revision
            .parse::<u32>()
            .ok()
            .and_then(|n| self.families.get_mut(family)?.revisions.get_mut(&n))
            .ok_or_else(|| client_error("name", "The specified task definition does not exist."))?;
        // Deregistering an inactive revision again changes nothing, as on ECS.
        revision.active = false;
        Ok(())
    }

    fn create_service(&mut self, spec: &ServiceSpec) -> Result<ContainerService, ProviderError> {
        let token = self.token(&spec.client_token, SERVICE_TOKEN_MAX)?;
        let cluster_name = last_part(&spec.cluster);
        let cluster = self.cluster(cluster_name)?;
        validate_container_name("name", &spec.name)
            .map_err(|e| invalid_parameter("name", e.message))?;
        if let Some(existing) = cluster.services.get(&spec.name) {
            // The same create under its client token answers the service it made.
            return match (&existing.made_under, token) {
                (Some((made, made_spec)), Some(token)) if made == token && made_spec == spec => Ok(
                    existing.to_service(&spec.name, cluster_name, &cluster.tasks, &self.scheduler),
                ),
                _ => Err(invalid_parameter(
                    "name",
                    "Creation of service was not idempotent.",
                )),
            };
        }
        let (task_definition, containers) =
            self.runnable(&spec.task_definition, "InvalidParameterException")?;
        check_strategy(
            "capacity_strategy",
            &spec.capacity_strategy,
            &cluster.capacity_providers,
        )?;
        self.check_placement(&spec.subnets, &spec.security_groups)?;
        if let Some(registry) = spec.registries.iter().find(|r| !r.starts_with("arn:")) {
            return Err(invalid_parameter(
                "registries",
                format!("The service registry '{registry}' is not an ARN."),
            ));
        }
        check_ecs_tags(&spec.tags)?;
        let s = &mut self.scheduler;
        let deployment = DeploymentRecord {
            id: deployment_id(s.ids),
            task_definition,
            containers,
            desired_count: spec.desired_count,
            created: s.now,
            completed: false,
        };
        let mut service = ServiceRecord {
            arn: format!(
                "arn:aws:ecs:{}:{ACCOUNT}:service/{cluster_name}/{}",
                s.region, spec.name
            ),
            // The AWS backend asks for Fargate unless a capacity strategy chooses.
            launch_type: if spec.capacity_strategy.is_empty() {
                "FARGATE".into()
            } else {
                String::new()
            },
            capacity_strategy: spec.capacity_strategy.clone(),
            subnets: spec.subnets.clone(),
            security_groups: spec.security_groups.clone(),
            public_ip: spec.public_ip,
            registries: spec.registries.clone(),
            tags: spec.tags.clone(),
            created: s.now,
            deployments: vec![deployment],
            events: Vec::new(),
            changed: s.now,
            steady: false,
            made_under: token.map(|token| (token.to_string(), spec.clone())),
        };
        let cluster = self
            .clusters
            .get_mut(cluster_name)
            .ok_or_else(cluster_not_found)?;
        // ECS answers the service as made; its scheduler starts the tasks right after.
        let made = service.to_service(&spec.name, cluster_name, &cluster.tasks, s);
        service.react(&spec.name, cluster_name, &mut cluster.tasks, s);
        cluster.services.insert(spec.name.clone(), service);
        Ok(made)
    }

    /// The services of a cluster by name, with their ARNs to describe them by.
    fn service_listing(&self, cluster: &str) -> Result<Vec<(String, String)>, ProviderError> {
        Ok(self
            .cluster(cluster)?
            .services
            .iter()
            .map(|(name, s)| (name.clone(), s.arn.clone()))
            .collect())
    }

    fn describe_services(
        &self,
        cluster: &str,
        names: &[String],
    ) -> Result<Vec<ContainerService>, ProviderError> {
        let cluster_name = last_part(cluster);
        let record = self.cluster(cluster_name)?;
        Ok(names
            .iter()
            .filter_map(|name| {
                let name = last_part(name);
                let service = record.services.get(name)?;
                Some(service.to_service(name, cluster_name, &record.tasks, &self.scheduler))
            })
            .collect())
    }

    fn update_service(
        &mut self,
        cluster: &str,
        name: &str,
        update: &ServiceUpdate,
    ) -> Result<ContainerService, ProviderError> {
        let wanted = match &update.task_definition {
            Some(name) => Some(self.runnable(name, "InvalidParameterException")?),
            None => None,
        };
        let (cluster_name, name) = (last_part(cluster), last_part(name));
        let s = &mut self.scheduler;
        let ClusterRecord {
            services, tasks, ..
        } = self
            .clusters
            .get_mut(cluster_name)
            .ok_or_else(cluster_not_found)?;
        let service = services.get_mut(name).ok_or_else(service_not_found)?;
        let Some(primary) = service.deployments.first_mut() else {
            return Err(service_not_found());
        };
        let desired = update.desired_count.unwrap_or(primary.desired_count);
        let scaled = desired != primary.desired_count;
        // A new deployment for another revision, or when forced; the same revision again
        // only scales.
        let redeployed = update.force_new_deployment
            || wanted
                .as_ref()
                .is_some_and(|(revision, _)| *revision != primary.task_definition);
        if redeployed {
            let (task_definition, containers) = wanted
                .unwrap_or_else(|| (primary.task_definition.clone(), primary.containers.clone()));
            let deployment = DeploymentRecord {
                id: deployment_id(s.ids),
                task_definition,
                containers,
                desired_count: desired,
                created: s.now,
                completed: false,
            };
            service.deployments.insert(0, deployment);
        } else {
            primary.desired_count = desired;
        }
        if redeployed || scaled {
            service.changed = s.now;
            service.steady = false;
        }
        let updated = service.to_service(name, cluster_name, tasks, s);
        service.react(name, cluster_name, tasks, s);
        Ok(updated)
    }

    /// Deletes a service as the AWS backend does, forced: every task of it is stopped.
    fn delete_service(&mut self, cluster: &str, name: &str) -> Result<(), ProviderError> {
        let s = &self.scheduler;
        let ClusterRecord {
            services, tasks, ..
        } = self
            .clusters
            .get_mut(last_part(cluster))
            .ok_or_else(cluster_not_found)?;
        let name = last_part(name);
        services.remove(name).ok_or_else(service_not_found)?;
        for task in tasks.values_mut().filter(|t| t.of_service(name)) {
            task.stop_for_scaling(s.now, s.timing.stopping);
        }
        Ok(())
    }

    fn run_task(&mut self, spec: &RunTaskSpec) -> Result<Vec<Task>, ProviderError> {
        if !(1..=MAX_RUN_COUNT).contains(&spec.count) {
            return Err(invalid_parameter(
                "count",
                format!("count must be from 1 to {MAX_RUN_COUNT}"),
            ));
        }
        let token = self.token(&spec.client_token, RUN_TOKEN_MAX)?;
        let cluster_name = last_part(&spec.cluster);
        let cluster = self.cluster(cluster_name)?;
        if let Some(earlier) = token.and_then(|t| cluster.runs.get(t)) {
            if earlier.spec != *spec {
                return Err(refusal(
                    Kind::Refused,
                    "backend_refused",
                    "ConflictException",
                    "The provided clientToken is already in use with a different RunTask request.",
                ));
            }
            return Ok(earlier
                .tasks
                .iter()
                .filter_map(|id| {
                    let task = cluster.tasks.get(id)?;
                    Some(task.to_task(id, cluster_name, &self.scheduler))
                })
                .collect());
        }
        let (task_definition, containers) =
            self.runnable(&spec.task_definition, "ClientException")?;
        if let Some(unknown) = spec.overrides.keys().find(|n| !containers.contains(n)) {
            return Err(invalid_parameter(
                "overrides",
                format!("Override for container named {unknown} is not a container in the TaskDefinition."),
            ));
        }
        self.check_placement(&spec.subnets, &spec.security_groups)?;
        check_ecs_tags(&spec.tags)?;
        let s = &mut self.scheduler;
        let cluster = self
            .clusters
            .get_mut(cluster_name)
            .ok_or_else(cluster_not_found)?;
        let mut ran = Vec::new();
        for _ in 0..spec.count {
            let id = task_id(s.ids);
            let task = TaskRecord::new(
                &id,
                cluster_name,
                task_definition.clone(),
                containers.clone(),
                None,
                spec.tags.clone(),
                s,
            );
            ran.push(task.to_task(&id, cluster_name, s));
            cluster.tasks.insert(id, task);
        }
        if let Some(token) = token {
            let run = Run {
                spec: spec.clone(),
                tasks: ran.iter().map(|t| t.id.clone()).collect(),
            };
            cluster.runs.insert(token.to_string(), run);
        }
        Ok(ran)
    }

    /// The tasks of a cluster a filter selects, by id, with their ARNs to describe them by.
    fn task_listing(
        &self,
        cluster: &str,
        filter: &TaskFilter,
    ) -> Result<Vec<(String, String)>, ProviderError> {
        let record = self.cluster(cluster)?;
        let service = filter.service.as_deref().map(last_part);
        if service.is_some_and(|s| !record.services.contains_key(s)) {
            return Err(service_not_found());
        }
        let wanted = match filter.desired_status.as_deref() {
            None | Some("RUNNING") => true,
            Some("STOPPED") => false,
            // ECS never wants a task pending, so none is listed as wanted so.
            Some("PENDING") => return Ok(Vec::new()),
            Some(other) => {
                return Err(invalid_parameter(
                    "desired_status",
                    format!("desiredStatus is RUNNING, PENDING or STOPPED, not {other}"),
                ))
            }
        };
        Ok(record
            .tasks
            .iter()
            .filter(|(_, t)| {
                t.is_wanted() == wanted
                    && service.is_none_or(|s| t.of_service(s))
                    && filter.family.as_deref().is_none_or(|f| t.family() == f)
            })
            .map(|(id, t)| (id.clone(), t.arn.clone()))
            .collect())
    }

    fn describe_tasks(&self, cluster: &str, ids: &[String]) -> Result<Vec<Task>, ProviderError> {
        let cluster_name = last_part(cluster);
        let record = self.cluster(cluster_name)?;
        Ok(ids
            .iter()
            .filter_map(|id| {
                let id = last_part(id);
                let task = record.tasks.get(id)?;
                Some(task.to_task(id, cluster_name, &self.scheduler))
            })
            .collect())
    }

    fn stop_task(&mut self, cluster: &str, id: &str, reason: &str) -> Result<Task, ProviderError> {
        let (cluster_name, id) = (last_part(cluster), last_part(id));
        let s = &mut self.scheduler;
        let ClusterRecord {
            services, tasks, ..
        } = self
            .clusters
            .get_mut(cluster_name)
            .ok_or_else(cluster_not_found)?;
        let task = tasks
            .get_mut(id)
            .ok_or_else(|| invalid_parameter("id", "The referenced task was not found."))?;
        let reason = if reason.is_empty() {
            "Task stopped by user"
        } else {
            reason
        };
        task.ask_to_stop(s.now, s.timing.stopping, reason.to_string());
        let stopped = task.to_task(id, cluster_name, s);
        // Its service's scheduler replaces a task it lost.
        if let Some((name, service)) = stopped
            .service
            .as_ref()
            .and_then(|name| Some((name, services.get_mut(name)?)))
        {
            service.react(name, cluster_name, tasks, s);
        }
        Ok(stopped)
    }
}

impl SimProvider {
    /// Changes the tags of ECS clusters and services by ARN, one call each (TagResource,
    /// UntagResource).
    pub(crate) async fn change_ecs_tags(
        &self,
        region: &str,
        arns: &[String],
        action: &'static str,
        change: &(dyn Fn(&mut BTreeMap<String, String>) + Sync),
    ) -> Result<(), ProviderError> {
        for arn in arns {
            self.run(action, region, |world| {
                let mut ecs = self.ecs(world, region)?;
                let tags = ecs.tags_of(arn)?;
                let mut changed = tags.clone();
                change(&mut changed);
                check_ecs_tags(&changed)?;
                *tags = changed;
                Ok(())
            })
            .await?;
        }
        Ok(())
    }

    /// A List call's answers page by page, one call each, as ECS pages them: `listing`
    /// gives every entry in order, each with the key the next page starts after.
    async fn pages<K, T>(
        &self,
        action: &'static str,
        region: &str,
        listing: impl Fn(&mut World) -> Result<Vec<(K, T)>, ProviderError> + Sync,
    ) -> Result<Vec<T>, ProviderError>
    where
        K: Ord + Clone + Send + Sync,
        T: Send,
    {
        let mut found = Vec::new();
        let mut after: Option<K> = None;
        loop {
            let (page, more) = self
                .run(action, region, |world| {
                    let mut page: Vec<(K, T)> = listing(world)?
                        .into_iter()
                        .filter(|(key, _)| after.as_ref().is_none_or(|after| key > after))
                        .take(LIST_PAGE + 1)
                        .collect();
                    let more = page.len() > LIST_PAGE;
                    page.truncate(LIST_PAGE);
                    Ok((page, more))
                })
                .await?;
            after = page.last().map(|(key, _)| key.clone());
            found.extend(page.into_iter().map(|(_, entry)| entry));
            if !more {
                return Ok(found);
            }
        }
    }

    /// A Describe call's answers for `names`, `batch` names a call, as ECS takes them.
    async fn in_batches<T: Send>(
        &self,
        action: &'static str,
        region: &str,
        names: &[String],
        batch: usize,
        describe: impl Fn(&mut World, &[String]) -> Result<Vec<T>, ProviderError> + Sync,
    ) -> Result<Vec<T>, ProviderError> {
        let mut found = Vec::new();
        for chunk in names.chunks(batch) {
            found.extend(
                self.run(action, region, |world| describe(world, chunk))
                    .await?,
            );
        }
        Ok(found)
    }
}

#[async_trait]
impl Containers for SimProvider {
    /// ListClusters page by page, then DescribeClusters in batches, as the AWS backend
    /// does.
    async fn list_clusters(&self, region: &str) -> Result<Vec<Cluster>, ProviderError> {
        let arns = self
            .pages("ListClusters", region, |world| {
                Ok(self.ecs(world, region)?.cluster_listing())
            })
            .await?;
        self.in_batches(
            "DescribeClusters",
            region,
            &arns,
            DESCRIBE_BATCH,
            |world, batch| Ok(self.ecs(world, region)?.describe_clusters(batch)),
        )
        .await
    }

    async fn cluster(&self, region: &str, name: &str) -> Result<Option<Cluster>, ProviderError> {
        self.run("DescribeClusters", region, |world| {
            Ok(self
                .ecs(world, region)?
                .describe_clusters(&[name.to_string()])
                .pop())
        })
        .await
    }

    async fn create_cluster(&self, spec: &ClusterSpec) -> Result<Cluster, ProviderError> {
        self.run("CreateCluster", &spec.region, |world| {
            self.ecs(world, &spec.region)?.create_cluster(spec)
        })
        .await
    }

    async fn delete_cluster(&self, region: &str, name: &str) -> Result<(), ProviderError> {
        self.run("DeleteCluster", region, |world| {
            self.ecs(world, region)?.delete_cluster(name)
        })
        .await
    }

    async fn register_task_definition(
        &self,
        spec: &TaskDefinitionSpec,
    ) -> Result<TaskDefinition, ProviderError> {
        self.run("RegisterTaskDefinition", &spec.region, |world| {
            self.ecs(world, &spec.region)?.register(spec)
        })
        .await
    }

    async fn list_task_definitions(
        &self,
        region: &str,
        family: Option<&str>,
    ) -> Result<Vec<String>, ProviderError> {
        self.pages("ListTaskDefinitions", region, |world| {
            Ok(self.ecs(world, region)?.definition_listing(family))
        })
        .await
    }

    async fn task_definition(
        &self,
        region: &str,
        name: &str,
    ) -> Result<Option<TaskDefinition>, ProviderError> {
        self.run("DescribeTaskDefinition", region, |world| {
            Ok(self.ecs(world, region)?.describe_definition(name))
        })
        .await
    }

    async fn deregister_task_definition(
        &self,
        region: &str,
        name: &str,
    ) -> Result<(), ProviderError> {
        self.run("DeregisterTaskDefinition", region, |world| {
            self.ecs(world, region)?.deregister(name)
        })
        .await
    }

    async fn create_service(&self, spec: &ServiceSpec) -> Result<ContainerService, ProviderError> {
        self.run("CreateService", &spec.region, |world| {
            self.ecs(world, &spec.region)?.create_service(spec)
        })
        .await
    }

    /// ListServices page by page, then DescribeServices ten at a time, as the AWS backend
    /// does.
    async fn list_services(
        &self,
        region: &str,
        cluster: &str,
    ) -> Result<Vec<ContainerService>, ProviderError> {
        let arns = self
            .pages("ListServices", region, |world| {
                self.ecs(world, region)?.service_listing(cluster)
            })
            .await?;
        self.in_batches(
            "DescribeServices",
            region,
            &arns,
            SERVICES_BATCH,
            |world, batch| self.ecs(world, region)?.describe_services(cluster, batch),
        )
        .await
    }

    async fn service(
        &self,
        region: &str,
        cluster: &str,
        name: &str,
    ) -> Result<Option<ContainerService>, ProviderError> {
        self.run("DescribeServices", region, |world| {
            Ok(self
                .ecs(world, region)?
                .describe_services(cluster, &[name.to_string()])?
                .pop())
        })
        .await
    }

    async fn update_service(
        &self,
        region: &str,
        cluster: &str,
        name: &str,
        update: &ServiceUpdate,
    ) -> Result<ContainerService, ProviderError> {
        self.run("UpdateService", region, |world| {
            self.ecs(world, region)?
                .update_service(cluster, name, update)
        })
        .await
    }

    async fn delete_service(
        &self,
        region: &str,
        cluster: &str,
        name: &str,
    ) -> Result<(), ProviderError> {
        self.run("DeleteService", region, |world| {
            self.ecs(world, region)?.delete_service(cluster, name)
        })
        .await
    }

    async fn run_task(&self, spec: &RunTaskSpec) -> Result<Vec<Task>, ProviderError> {
        self.run("RunTask", &spec.region, |world| {
            self.ecs(world, &spec.region)?.run_task(spec)
        })
        .await
    }

    /// ListTasks page by page, then DescribeTasks in batches, as the AWS backend does.
    async fn list_tasks(
        &self,
        region: &str,
        cluster: &str,
        filter: &TaskFilter,
    ) -> Result<Vec<Task>, ProviderError> {
        let arns = self
            .pages("ListTasks", region, |world| {
                self.ecs(world, region)?.task_listing(cluster, filter)
            })
            .await?;
        self.in_batches(
            "DescribeTasks",
            region,
            &arns,
            DESCRIBE_BATCH,
            |world, batch| self.ecs(world, region)?.describe_tasks(cluster, batch),
        )
        .await
    }

    async fn task(
        &self,
        region: &str,
        cluster: &str,
        id: &str,
    ) -> Result<Option<Task>, ProviderError> {
        self.run("DescribeTasks", region, |world| {
            Ok(self
                .ecs(world, region)?
                .describe_tasks(cluster, &[id.to_string()])?
                .pop())
        })
        .await
    }

    async fn stop_task(
        &self,
        region: &str,
        cluster: &str,
        id: &str,
        reason: &str,
    ) -> Result<Task, ProviderError> {
        self.run("StopTask", region, |world| {
            self.ecs(world, region)?.stop_task(cluster, id, reason)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{provider, settings};
    use crate::{Faults, Settings};
    use overcast_provider::{ContainerOverride, Firewall};
    use overcast_types::{LogSettings, PortMapping};

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn cluster_spec(name: &str) -> ClusterSpec {
        ClusterSpec {
            region: "sim-1".into(),
            name: name.into(),
            capacity_providers: FARGATE_PROVIDERS.map(String::from).to_vec(),
            default_strategy: vec![CapacityShare {
                provider: "FARGATE".into(),
                weight: 1,
                base: 0,
            }],
            tags: tags(&[("team", "web")]),
        }
    }

    fn container(name: &str) -> Container {
        Container {
            name: name.into(),
            image: "nginx:alpine".into(),
            cpu: None,
            memory_mb: None,
            essential: true,
            command: vec![],
            environment: BTreeMap::new(),
            ports: vec![PortMapping {
                container_port: 80,
                protocol: "tcp".into(),
            }],
            log: None,
            secrets: BTreeMap::new(),
            repository_credentials: None,
        }
    }

    fn definition(family: &str) -> TaskDefinitionSpec {
        TaskDefinitionSpec {
            region: "sim-1".into(),
            family: family.into(),
            cpu: "256".into(),
            memory: "512".into(),
            containers: vec![container("web")],
            execution_role: None,
            task_role: None,
            tags: tags(&[("team", "web")]),
        }
    }

    fn service_spec(name: &str, desired_count: u32, token: &str) -> ServiceSpec {
        ServiceSpec {
            region: "sim-1".into(),
            cluster: "main".into(),
            name: name.into(),
            task_definition: "web".into(),
            desired_count,
            capacity_strategy: vec![],
            subnets: vec![],
            security_groups: vec![],
            public_ip: false,
            registries: vec![],
            tags: tags(&[("app", name)]),
            client_token: token.into(),
        }
    }

    fn run_spec(count: u32, token: &str) -> RunTaskSpec {
        RunTaskSpec {
            region: "sim-1".into(),
            cluster: "main".into(),
            task_definition: "web:1".into(),
            count,
            subnets: vec![],
            security_groups: vec![],
            public_ip: false,
            overrides: BTreeMap::new(),
            tags: tags(&[("job", "migrate")]),
            client_token: token.into(),
        }
    }

    /// A cluster `main` and a task definition `web:1`.
    async fn setup(sim: &SimProvider) {
        sim.create_cluster(&cluster_spec("main")).await.unwrap();
        sim.register_task_definition(&definition("web"))
            .await
            .unwrap();
    }

    async fn service(sim: &SimProvider, name: &str) -> ContainerService {
        sim.service("sim-1", "main", name).await.unwrap().unwrap()
    }

    async fn task(sim: &SimProvider, id: &str) -> Task {
        sim.task("sim-1", "main", id).await.unwrap().unwrap()
    }

    fn filter(service: Option<&str>, desired_status: Option<&str>) -> TaskFilter {
        TaskFilter {
            service: service.map(String::from),
            family: None,
            desired_status: desired_status.map(String::from),
        }
    }

    async fn tasks(sim: &SimProvider, filter: &TaskFilter) -> Vec<Task> {
        sim.list_tasks("sim-1", "main", filter).await.unwrap()
    }

    fn messages(service: &ContainerService) -> Vec<&str> {
        service.events.iter().map(|e| e.message.as_str()).collect()
    }

    fn codes(e: &ProviderError) -> (Kind, &'static str, Option<&str>, Option<&'static str>) {
        (e.kind, e.code, e.backend_code.as_deref(), e.field)
    }

    #[tokio::test]
    async fn clusters_and_services_take_and_drop_tags_by_arn() {
        use overcast_provider::{ResourceKind, Tags};
        let (sim, calls) = provider(settings(0.0));
        setup(&sim).await;
        sim.create_service(&service_spec("api", 1, ""))
            .await
            .unwrap();
        let cluster = sim.cluster("sim-1", "main").await.unwrap().unwrap();
        let api = service(&sim, "api").await;
        let arns = [cluster.arn.clone().unwrap(), api.arn.clone().unwrap()];
        for (kind, arn) in [
            (ResourceKind::Cluster, &arns[0]),
            (ResourceKind::ContainerService, &arns[1]),
        ] {
            sim.set_tags(
                "sim-1",
                kind,
                std::slice::from_ref(arn),
                &tags(&[("MyKey", "v")]),
            )
            .await
            .unwrap();
        }
        let cluster = sim.cluster("sim-1", "main").await.unwrap().unwrap();
        assert_eq!(cluster.tags, tags(&[("team", "web"), ("MyKey", "v")]));
        assert_eq!(
            service(&sim, "api").await.tags,
            tags(&[("app", "api"), ("MyKey", "v")])
        );
        sim.remove_tags(
            "sim-1",
            ResourceKind::Cluster,
            &arns[..1],
            &["MyKey".to_string()],
        )
        .await
        .unwrap();
        let cluster = sim.cluster("sim-1", "main").await.unwrap().unwrap();
        assert_eq!(cluster.tags, tags(&[("team", "web")]));
        let missing = "arn:aws:ecs:sim-1:000000000000:cluster/nope".to_string();
        let e = sim
            .set_tags(
                "sim-1",
                ResourceKind::Cluster,
                &[missing],
                &tags(&[("a", "b")]),
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind, Kind::NotFound);
        assert_eq!(calls.count("TagResource", "ok"), 2);
        assert_eq!(calls.count("UntagResource", "ok"), 1);
    }

    #[tokio::test]
    async fn a_task_goes_from_provisioning_to_running_and_stops_with_its_reason() {
        let (sim, calls) = provider(settings(10.0));
        setup(&sim).await;
        let ran = sim.run_task(&run_spec(1, "run-1")).await.unwrap();
        let id = ran[0].id.clone();
        assert_eq!(id.len(), 32);
        assert_eq!(
            ran[0].arn.as_deref(),
            Some(format!("arn:aws:ecs:sim-1:000000000000:task/main/{id}").as_str())
        );
        assert_eq!(
            (ran[0].last_status.as_str(), ran[0].desired_status.as_str()),
            ("PROVISIONING", "RUNNING")
        );
        assert_eq!(ran[0].task_definition, "web:1");
        assert_eq!(
            (ran[0].service.as_deref(), ran[0].tags["job"].as_str()),
            (None, "migrate")
        );
        assert_eq!(ran[0].containers[0].last_status.as_deref(), Some("PENDING"));
        let cluster = sim.cluster("sim-1", "main").await.unwrap().unwrap();
        assert_eq!((cluster.pending_tasks, cluster.running_tasks), (1, 0));

        sim.advance_clock(Duration::from_secs(5));
        assert_eq!(task(&sim, &id).await.last_status, "PENDING");
        sim.advance_clock(Duration::from_secs(5));
        let running = task(&sim, &id).await;
        assert_eq!(running.last_status, "RUNNING");
        assert!(running.started_at.is_some() && running.stopped_at.is_none());
        assert_eq!(
            running.containers[0].last_status.as_deref(),
            Some("RUNNING")
        );
        let cluster = sim.cluster("sim-1", "main").await.unwrap().unwrap();
        assert_eq!((cluster.pending_tasks, cluster.running_tasks), (0, 1));

        let stopping = sim
            .stop_task("sim-1", "main", &id, "done for today")
            .await
            .unwrap();
        assert_eq!(
            (
                stopping.last_status.as_str(),
                stopping.desired_status.as_str()
            ),
            ("STOPPING", "STOPPED")
        );
        assert_eq!(stopping.stopped_reason.as_deref(), Some("done for today"));
        sim.advance_clock(Duration::from_secs(5));
        assert_eq!(task(&sim, &id).await.last_status, "DEPROVISIONING");
        sim.advance_clock(Duration::from_secs(5));
        let stopped = task(&sim, &id).await;
        assert_eq!(stopped.last_status, "STOPPED");
        assert!(stopped.stopped_at.is_some());
        assert_eq!(stopped.started_at, running.started_at, "dated once");
        assert_eq!(stopped.containers[0].exit_code, Some(0));
        // Stopped again, it keeps its first stop.
        let again = sim.stop_task("sim-1", "main", &id, "again").await.unwrap();
        assert_eq!(again.stopped_reason.as_deref(), Some("done for today"));

        assert!(tasks(&sim, &filter(None, None)).await.is_empty());
        assert_eq!(tasks(&sim, &filter(None, Some("STOPPED"))).await.len(), 1);
        assert!(tasks(&sim, &filter(None, Some("PENDING"))).await.is_empty());
        let bad = sim
            .list_tasks("sim-1", "main", &filter(None, Some("SLEEPING")))
            .await
            .unwrap_err();
        assert_eq!(bad.field, Some("desired_status"));

        // One stopped before it ran never started, and says so.
        let early = sim.run_task(&run_spec(1, "run-2")).await.unwrap()[0]
            .id
            .clone();
        sim.stop_task("sim-1", "main", &early, "").await.unwrap();
        sim.advance_clock(Duration::from_secs(10));
        let early = task(&sim, &early).await;
        assert_eq!(early.last_status, "STOPPED");
        assert_eq!(
            early.stopped_reason.as_deref(),
            Some("Task stopped by user")
        );
        assert!(early.started_at.is_none() && early.containers[0].exit_code.is_none());

        // A stopped task is listed for an hour, then forgotten.
        sim.advance_clock(Duration::from_secs(3600));
        assert!(sim.task("sim-1", "main", &id).await.unwrap().is_none());
        let gone = sim.stop_task("sim-1", "main", &id, "").await.unwrap_err();
        assert_eq!(
            codes(&gone),
            (
                Kind::InvalidInput,
                "invalid_input",
                Some("InvalidParameterException"),
                Some("id")
            )
        );
        assert_eq!(calls.count("RunTask", "ok"), 2);
        assert_eq!(calls.count("StopTask", "ok"), 3);
    }

    #[tokio::test]
    async fn a_service_keeps_its_desired_count_running_and_reaches_a_steady_state() {
        let (sim, _) = provider(settings(10.0));
        setup(&sim).await;
        let made = sim
            .create_service(&service_spec("api", 2, "svc-1"))
            .await
            .unwrap();
        assert_eq!(
            made.arn.as_deref(),
            Some("arn:aws:ecs:sim-1:000000000000:service/main/api")
        );
        assert_eq!(
            (made.status.as_str(), made.task_definition.as_str()),
            ("ACTIVE", "web:1")
        );
        assert_eq!(made.launch_type, "FARGATE");
        assert_eq!(made.tags["app"], "api");
        // Answered as made: the scheduler starts its tasks right after.
        assert_eq!(
            (made.desired_count, made.running_count, made.pending_count),
            (2, 0, 0)
        );
        assert!(made.events.is_empty());
        let deployment = &made.deployments[0];
        assert_eq!(
            (
                deployment.status.as_str(),
                deployment.rollout_state.as_deref()
            ),
            ("PRIMARY", Some("IN_PROGRESS"))
        );
        assert!(deployment.id.starts_with("ecs-svc/"));

        let starting = service(&sim, "api").await;
        assert_eq!((starting.running_count, starting.pending_count), (0, 2));
        assert!(messages(&starting)[0].starts_with("(service api) has started 2 tasks: (task "));
        let started = tasks(&sim, &filter(Some("api"), None)).await;
        assert_eq!(started.len(), 2);
        for task in &started {
            assert_eq!(task.service.as_deref(), Some("api"));
            assert_eq!(task.last_status, "PROVISIONING");
            assert_eq!(task.tags["app"], "api", "the service's tags, propagated");
        }
        let cluster = sim.cluster("sim-1", "main").await.unwrap().unwrap();
        assert_eq!((cluster.active_services, cluster.pending_tasks), (1, 2));

        sim.advance_clock(Duration::from_secs(10));
        let steady = service(&sim, "api").await;
        assert_eq!((steady.running_count, steady.pending_count), (2, 0));
        assert_eq!(
            steady.deployments[0].rollout_state.as_deref(),
            Some("COMPLETED")
        );
        let said = messages(&steady);
        assert_eq!(said.len(), 3, "{said:?}");
        assert_eq!(said[0], "(service api) has reached a steady state.");
        assert_eq!(
            said[1],
            format!(
                "(service api) (deployment {}) deployment completed.",
                deployment.id
            )
        );
        // Dated when the tasks came to run, not when someone looked.
        assert_eq!(
            Some(&steady.events[0].at),
            started_at(&sim, &started[1].id).await.as_ref()
        );
        // A steady state is said once.
        sim.advance_clock(Duration::from_secs(60));
        assert_eq!(service(&sim, "api").await.events.len(), 3);

        // A task it loses is replaced at once.
        let lost = &started[0].id;
        sim.stop_task("sim-1", "main", lost, "").await.unwrap();
        let replacing = service(&sim, "api").await;
        assert_eq!((replacing.running_count, replacing.pending_count), (1, 1));
        assert!(messages(&replacing)[0].starts_with("(service api) has started 1 tasks"));
        assert_eq!(tasks(&sim, &filter(Some("api"), None)).await.len(), 2);
        let stopped = tasks(&sim, &filter(Some("api"), Some("STOPPED"))).await;
        assert_eq!(stopped.len(), 1);
        assert_eq!(
            stopped[0].stopped_reason.as_deref(),
            Some("Task stopped by user")
        );
        sim.advance_clock(Duration::from_secs(10));
        let again = service(&sim, "api").await;
        assert_eq!((again.running_count, again.pending_count), (2, 0));
        assert_eq!(
            messages(&again)[0],
            "(service api) has reached a steady state."
        );
        let completions = messages(&again)
            .iter()
            .filter(|m| m.ends_with("deployment completed."))
            .count();
        assert_eq!(completions, 1);
    }

    async fn started_at(sim: &SimProvider, id: &str) -> Option<String> {
        task(sim, id).await.started_at
    }

    #[tokio::test]
    async fn an_update_rolls_a_new_revision_out_then_scales() {
        let (sim, _) = provider(settings(10.0));
        setup(&sim).await;
        sim.create_service(&service_spec("api", 2, "svc-1"))
            .await
            .unwrap();
        sim.advance_clock(Duration::from_secs(10));
        let first = service(&sim, "api").await.deployments[0].id.clone();
        let old_tasks = tasks(&sim, &filter(Some("api"), None)).await;
        sim.register_task_definition(&definition("web"))
            .await
            .unwrap();

        let to_web_2 = ServiceUpdate {
            task_definition: Some("web:2".into()),
            ..ServiceUpdate::default()
        };
        let updated = sim
            .update_service("sim-1", "main", "api", &to_web_2)
            .await
            .unwrap();
        assert_eq!(updated.task_definition, "web:2");
        let rollout: Vec<_> = updated
            .deployments
            .iter()
            .map(|d| {
                (
                    d.status.as_str(),
                    d.task_definition.as_str(),
                    d.rollout_state.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            rollout,
            [
                ("PRIMARY", "web:2", Some("IN_PROGRESS")),
                ("ACTIVE", "web:1", Some("COMPLETED"))
            ]
        );
        let rolling = service(&sim, "api").await;
        assert_eq!((rolling.running_count, rolling.pending_count), (2, 2));

        // Looked at only once it is all over, it is told in order and dated as it happened.
        sim.advance_clock(Duration::from_secs(25));
        let done = service(&sim, "api").await;
        assert_eq!(done.deployments.len(), 1);
        let primary = &done.deployments[0];
        assert_eq!(
            (
                primary.task_definition.as_str(),
                primary.rollout_state.as_deref()
            ),
            ("web:2", Some("COMPLETED"))
        );
        assert_eq!((done.running_count, done.pending_count), (2, 0));
        let said = messages(&done);
        assert_eq!(said[0], "(service api) has reached a steady state.");
        assert_eq!(
            said[1],
            format!(
                "(service api) (deployment {}) deployment completed.",
                primary.id
            )
        );
        assert!(
            said[2].starts_with("(service api) has stopped 2 running tasks"),
            "{said:?}"
        );
        assert!(
            said[3].starts_with("(service api) has started 2 tasks"),
            "{said:?}"
        );
        let new_tasks = tasks(&sim, &filter(Some("api"), None)).await;
        assert!(new_tasks.iter().all(|t| t.task_definition == "web:2"));
        let old = task(&sim, &old_tasks[0].id).await;
        assert_eq!(
            old.stopped_reason,
            Some(format!(
                "Scaling activity initiated by (deployment {first})"
            ))
        );
        assert_eq!(Some(&done.events[2].at), new_tasks[0].started_at.as_ref());
        assert_eq!(Some(&done.events[0].at), old.stopped_at.as_ref());

        let scale = |n| ServiceUpdate {
            desired_count: Some(n),
            ..ServiceUpdate::default()
        };
        let up = sim
            .update_service("sim-1", "main", "api", &scale(3))
            .await
            .unwrap();
        assert_eq!((up.desired_count, up.deployments.len()), (3, 1));
        let growing = service(&sim, "api").await;
        assert_eq!((growing.running_count, growing.pending_count), (2, 1));
        assert!(messages(&growing)[0].starts_with("(service api) has started 1 tasks"));
        // Scaled in, the task furthest from running goes first.
        sim.update_service("sim-1", "main", "api", &scale(1))
            .await
            .unwrap();
        let shrunk = service(&sim, "api").await;
        assert_eq!(
            (
                shrunk.desired_count,
                shrunk.running_count,
                shrunk.pending_count
            ),
            (1, 1, 0)
        );
        assert!(messages(&shrunk)[0].starts_with("(service api) has stopped 2 running tasks"));
        sim.advance_clock(Duration::from_secs(10));
        assert_eq!(
            messages(&service(&sim, "api").await)[0],
            "(service api) has reached a steady state."
        );

        // The same revision again only scales; a forced deployment redeploys it.
        let same = ServiceUpdate {
            task_definition: Some("web:2".into()),
            desired_count: Some(2),
            ..ServiceUpdate::default()
        };
        let scaled = sim
            .update_service("sim-1", "main", "api", &same)
            .await
            .unwrap();
        assert_eq!((scaled.desired_count, scaled.deployments.len()), (2, 1));
        let forced = ServiceUpdate {
            force_new_deployment: true,
            ..ServiceUpdate::default()
        };
        let redeployed = sim
            .update_service("sim-1", "main", "api", &forced)
            .await
            .unwrap();
        assert_eq!(redeployed.deployments.len(), 2);
        assert_eq!(redeployed.deployments[0].task_definition, "web:2");
    }

    #[tokio::test]
    async fn client_tokens_make_a_repeated_create_or_run_one() {
        let (sim, _) = provider(settings(0.0));
        setup(&sim).await;
        let first = sim
            .create_service(&service_spec("api", 1, "svc-1"))
            .await
            .unwrap();
        let again = sim
            .create_service(&service_spec("api", 1, "svc-1"))
            .await
            .unwrap();
        assert_eq!(again.arn, first.arn);
        assert_eq!(again.running_count, 1, "the service as it is now");
        assert_eq!(sim.list_services("sim-1", "main").await.unwrap().len(), 1);
        assert_eq!(tasks(&sim, &filter(Some("api"), None)).await.len(), 1);
        let changed = sim
            .create_service(&service_spec("api", 2, "svc-1"))
            .await
            .unwrap_err();
        assert_eq!(
            codes(&changed),
            (
                Kind::InvalidInput,
                "invalid_input",
                Some("InvalidParameterException"),
                Some("name")
            )
        );
        let other = sim
            .create_service(&service_spec("api", 1, "svc-2"))
            .await
            .unwrap_err();
        assert!(
            other.message.contains("not idempotent"),
            "{}",
            other.message
        );
        let long = sim
            .create_service(&service_spec("web", 1, &"t".repeat(37)))
            .await
            .unwrap_err();
        assert_eq!(long.field, Some("client_token"));

        let ran = sim.run_task(&run_spec(2, "run-1")).await.unwrap();
        let rerun = sim.run_task(&run_spec(2, "run-1")).await.unwrap();
        let ids = |tasks: &[Task]| tasks.iter().map(|t| t.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&rerun), ids(&ran));
        let family = TaskFilter {
            family: Some("web".into()),
            ..TaskFilter::default()
        };
        assert_eq!(
            tasks(&sim, &family).await.len(),
            3,
            "two run, one of the service"
        );
        let clash = sim.run_task(&run_spec(1, "run-1")).await.unwrap_err();
        assert_eq!(
            codes(&clash),
            (
                Kind::Refused,
                "backend_refused",
                Some("ConflictException"),
                None
            )
        );

        // Tokens ignored, as moto does: a repeated run starts more, a repeated create clashes.
        let (moto_like, _) = provider(Settings {
            ignore_client_token: true,
            ..settings(0.0)
        });
        setup(&moto_like).await;
        let first = moto_like.run_task(&run_spec(1, "run-1")).await.unwrap();
        let second = moto_like.run_task(&run_spec(1, "run-1")).await.unwrap();
        assert_ne!(first[0].id, second[0].id);
        moto_like
            .create_service(&service_spec("api", 1, "svc-1"))
            .await
            .unwrap();
        let twice = moto_like
            .create_service(&service_spec("api", 1, "svc-1"))
            .await
            .unwrap_err();
        assert_eq!(twice.field, Some("name"));
    }

    #[tokio::test]
    async fn a_cluster_is_deleted_only_once_its_services_and_tasks_are_gone() {
        let (sim, _) = provider(settings(10.0));
        setup(&sim).await;
        // CreateCluster is idempotent; the same name with other arguments is refused.
        let made = sim.cluster("sim-1", "main").await.unwrap().unwrap();
        let again = sim.create_cluster(&cluster_spec("main")).await.unwrap();
        assert_eq!(again.arn, made.arn);
        assert_eq!(
            made.arn.as_deref(),
            Some("arn:aws:ecs:sim-1:000000000000:cluster/main")
        );
        let other = ClusterSpec {
            capacity_providers: vec!["FARGATE".into()],
            ..cluster_spec("main")
        };
        assert_eq!(
            sim.create_cluster(&other).await.unwrap_err().code,
            "invalid_input"
        );

        sim.create_service(&service_spec("api", 1, "svc-1"))
            .await
            .unwrap();
        let run = sim.run_task(&run_spec(1, "run-1")).await.unwrap()[0]
            .id
            .clone();
        let busy = sim.delete_cluster("sim-1", "main").await.unwrap_err();
        assert_eq!(
            codes(&busy),
            (
                Kind::Conflict,
                "cluster_in_use",
                Some("ClusterContainsServicesException"),
                None
            )
        );
        sim.delete_service("sim-1", "main", "api").await.unwrap();
        assert!(sim.service("sim-1", "main", "api").await.unwrap().is_none());
        assert!(sim.list_services("sim-1", "main").await.unwrap().is_empty());
        let draining = tasks(&sim, &filter(None, Some("STOPPED"))).await;
        assert_eq!(draining.len(), 1);
        assert_eq!(draining[0].last_status, "STOPPING");
        let tasks_left = sim.delete_cluster("sim-1", "main").await.unwrap_err();
        assert_eq!(
            tasks_left.backend_code.as_deref(),
            Some("ClusterContainsTasksException")
        );
        assert_eq!(tasks_left.code, "cluster_in_use");
        sim.stop_task("sim-1", "main", &run, "").await.unwrap();
        sim.advance_clock(Duration::from_secs(5));
        // Tasks still stopping hold the cluster.
        assert!(sim.delete_cluster("sim-1", "main").await.is_err());
        sim.advance_clock(Duration::from_secs(5));
        sim.delete_cluster("sim-1", "main").await.unwrap();
        assert!(sim.cluster("sim-1", "main").await.unwrap().is_none());
        assert!(sim.list_clusters("sim-1").await.unwrap().is_empty());
        let gone = sim.delete_cluster("sim-1", "main").await.unwrap_err();
        assert_eq!(
            codes(&gone),
            (
                Kind::NotFound,
                "cluster_not_found",
                Some("ClusterNotFoundException"),
                None
            )
        );
        // Its name is free again, and the new cluster holds nothing of the old one.
        sim.create_cluster(&cluster_spec("main")).await.unwrap();
        assert!(tasks(&sim, &filter(None, Some("STOPPED"))).await.is_empty());
    }

    #[tokio::test]
    async fn revisions_are_numbered_per_family_and_deregistered_ones_leave_the_listings() {
        let (sim, _) = provider(settings(0.0));
        let first = sim
            .register_task_definition(&definition("web"))
            .await
            .unwrap();
        assert_eq!(
            (
                first.name(),
                first.status.as_str(),
                first.tags["team"].as_str()
            ),
            ("web:1".to_string(), "ACTIVE", "web")
        );
        assert_eq!(
            first.arn.as_deref(),
            Some("arn:aws:ecs:sim-1:000000000000:task-definition/web:1")
        );
        sim.register_task_definition(&definition("web"))
            .await
            .unwrap();
        sim.register_task_definition(&definition("api"))
            .await
            .unwrap();
        let list = |family: Option<&'static str>| {
            let sim = &sim;
            async move { sim.list_task_definitions("sim-1", family).await.unwrap() }
        };
        assert_eq!(list(None).await, ["api:1", "web:1", "web:2"]);
        assert_eq!(list(Some("web")).await, ["web:1", "web:2"]);
        assert!(list(Some("we")).await.is_empty(), "a family, not a prefix");
        let describe = |name: &'static str| {
            let sim = &sim;
            async move { sim.task_definition("sim-1", name).await.unwrap() }
        };
        assert_eq!(describe("web").await.unwrap().revision, 2);
        let by_arn = describe("arn:aws:ecs:sim-1:000000000000:task-definition/web:1").await;
        assert_eq!(by_arn.unwrap().name(), "web:1");
        assert!(describe("nope").await.is_none());
        assert!(describe("web:x").await.is_none());
        assert!(describe("web:9").await.is_none());

        sim.deregister_task_definition("sim-1", "web:2")
            .await
            .unwrap();
        assert_eq!(list(Some("web")).await, ["web:1"]);
        assert_eq!(describe("web").await.unwrap().revision, 1);
        assert_eq!(describe("web:2").await.unwrap().status, "INACTIVE");
        sim.deregister_task_definition("sim-1", "web:2")
            .await
            .unwrap();
        let no_revision = sim
            .deregister_task_definition("sim-1", "web")
            .await
            .unwrap_err();
        assert_eq!(no_revision.field, Some("name"));
        let unknown = sim
            .deregister_task_definition("sim-1", "web:9")
            .await
            .unwrap_err();
        assert_eq!(
            codes(&unknown),
            (
                Kind::InvalidInput,
                "invalid_input",
                Some("ClientException"),
                Some("name")
            )
        );
        // Numbers are never reused.
        let third = sim
            .register_task_definition(&definition("web"))
            .await
            .unwrap();
        assert_eq!(third.revision, 3);

        // A deregistered revision runs nothing new.
        sim.create_cluster(&cluster_spec("main")).await.unwrap();
        let inactive = ServiceSpec {
            task_definition: "web:2".into(),
            ..service_spec("api", 1, "")
        };
        let refused = sim.create_service(&inactive).await.unwrap_err();
        assert_eq!(
            codes(&refused),
            (
                Kind::InvalidInput,
                "invalid_input",
                Some("InvalidParameterException"),
                Some("task_definition")
            )
        );
        let run = RunTaskSpec {
            task_definition: "web:2".into(),
            ..run_spec(1, "")
        };
        let refused = sim.run_task(&run).await.unwrap_err();
        assert_eq!(refused.backend_code.as_deref(), Some("ClientException"));

        // Sizes in vCPU and GB are answered in units and MiB.
        let sized = TaskDefinitionSpec {
            cpu: "1 vCPU".into(),
            memory: "2 GB".into(),
            ..definition("big")
        };
        let big = sim.register_task_definition(&sized).await.unwrap();
        assert_eq!((big.cpu.as_str(), big.memory.as_str()), ("1024", "2048"));
    }

    #[tokio::test]
    async fn bad_specs_are_refused_as_ecs_refuses_them() {
        let (sim, _) = provider(settings(0.0));
        let refused = |spec: TaskDefinitionSpec| {
            let sim = &sim;
            async move { sim.register_task_definition(&spec).await.unwrap_err() }
        };
        let cases = [
            (
                TaskDefinitionSpec {
                    memory: "4096".into(),
                    ..definition("web")
                },
                "memory",
            ),
            (
                TaskDefinitionSpec {
                    cpu: "300".into(),
                    ..definition("web")
                },
                "cpu",
            ),
            (
                TaskDefinitionSpec {
                    cpu: "lots".into(),
                    ..definition("web")
                },
                "cpu",
            ),
            (definition("web api"), "family"),
            (
                TaskDefinitionSpec {
                    containers: vec![],
                    ..definition("web")
                },
                "containers",
            ),
            (
                TaskDefinitionSpec {
                    containers: vec![container("web"), container("web")],
                    ..definition("web")
                },
                "containers",
            ),
            (
                TaskDefinitionSpec {
                    containers: vec![Container {
                        memory_mb: Some(1024),
                        ..container("web")
                    }],
                    ..definition("web")
                },
                "containers",
            ),
            (
                TaskDefinitionSpec {
                    containers: vec![Container {
                        essential: false,
                        ..container("web")
                    }],
                    ..definition("web")
                },
                "containers",
            ),
            (
                TaskDefinitionSpec {
                    containers: vec![Container {
                        log: Some(LogSettings {
                            group: "/web".into(),
                            stream_prefix: "web".into(),
                        }),
                        ..container("web")
                    }],
                    ..definition("web")
                },
                "execution_role",
            ),
            (
                TaskDefinitionSpec {
                    tags: (0..51)
                        .map(|i| (format!("k{i}"), "v".to_string()))
                        .collect(),
                    ..definition("web")
                },
                "tags",
            ),
        ];
        for (spec, field) in cases {
            let e = refused(spec).await;
            assert_eq!((e.code, e.field), ("invalid_input", Some(field)), "{e}");
        }
        assert!(sim
            .list_task_definitions("sim-1", None)
            .await
            .unwrap()
            .is_empty());

        let cluster_refused = |spec: ClusterSpec| {
            let sim = &sim;
            async move { sim.create_cluster(&spec).await.unwrap_err().field }
        };
        let ec2 = ClusterSpec {
            capacity_providers: vec!["EC2".into()],
            ..cluster_spec("main")
        };
        assert_eq!(cluster_refused(ec2).await, Some("capacity_providers"));
        let share = |provider: &str, base| CapacityShare {
            provider: provider.into(),
            weight: 1,
            base,
        };
        let elsewhere = ClusterSpec {
            capacity_providers: vec!["FARGATE".into()],
            default_strategy: vec![share("FARGATE_SPOT", 0)],
            ..cluster_spec("main")
        };
        assert_eq!(cluster_refused(elsewhere).await, Some("default_strategy"));
        let two_bases = ClusterSpec {
            default_strategy: vec![share("FARGATE", 1), share("FARGATE_SPOT", 1)],
            ..cluster_spec("main")
        };
        assert_eq!(cluster_refused(two_bases).await, Some("default_strategy"));

        setup(&sim).await;
        let group = sim
            .create_group("sim-1", "web", "web tier", None, &BTreeMap::new())
            .await
            .unwrap();
        let service_refused = |spec: ServiceSpec| {
            let sim = &sim;
            async move { sim.create_service(&spec).await.unwrap_err().field }
        };
        let in_subnet = ServiceSpec {
            subnets: vec!["subnet-1".into()],
            ..service_spec("api", 1, "")
        };
        assert_eq!(service_refused(in_subnet).await, Some("subnets"));
        let unknown_group = ServiceSpec {
            security_groups: vec!["sg-nope".into()],
            ..service_spec("api", 1, "")
        };
        assert_eq!(
            service_refused(unknown_group).await,
            Some("security_groups")
        );
        let not_an_arn = ServiceSpec {
            registries: vec!["web.local".into()],
            ..service_spec("api", 1, "")
        };
        assert_eq!(service_refused(not_an_arn).await, Some("registries"));
        let unknown_provider = ServiceSpec {
            capacity_strategy: vec![share("EC2", 0)],
            ..service_spec("api", 1, "")
        };
        assert_eq!(
            service_refused(unknown_provider).await,
            Some("capacity_strategy")
        );
        let bad_name = service_spec("api/v2", 1, "");
        assert_eq!(service_refused(bad_name).await, Some("name"));
        // The region's own groups are taken; a strategy leaves the launch type empty.
        let placed = ServiceSpec {
            security_groups: vec![group.id.clone()],
            capacity_strategy: vec![share("FARGATE_SPOT", 0)],
            ..service_spec("api", 1, "")
        };
        let made = sim.create_service(&placed).await.unwrap();
        assert_eq!(made.security_groups, [group.id]);
        assert_eq!(made.launch_type, "");

        for count in [0, 11] {
            let e = sim.run_task(&run_spec(count, "")).await.unwrap_err();
            assert_eq!(e.field, Some("count"));
        }
        let unknown_container = RunTaskSpec {
            overrides: BTreeMap::from([("db".to_string(), ContainerOverride::default())]),
            ..run_spec(1, "")
        };
        let e = sim.run_task(&unknown_container).await.unwrap_err();
        assert_eq!(e.field, Some("overrides"));
    }

    #[tokio::test]
    async fn unknown_names_answer_none_or_ecs_errors() {
        let (sim, _) = provider(settings(0.0));
        setup(&sim).await;
        assert!(sim.cluster("sim-1", "nope").await.unwrap().is_none());
        assert!(
            sim.cluster("sim-2", "main").await.unwrap().is_none(),
            "per region"
        );
        let no_cluster = |e: ProviderError| {
            assert_eq!(
                codes(&e),
                (
                    Kind::NotFound,
                    "cluster_not_found",
                    Some("ClusterNotFoundException"),
                    None
                )
            )
        };
        no_cluster(sim.list_services("sim-1", "nope").await.unwrap_err());
        no_cluster(sim.service("sim-1", "nope", "api").await.unwrap_err());
        no_cluster(sim.task("sim-1", "nope", "0").await.unwrap_err());
        no_cluster(
            sim.list_tasks("sim-1", "nope", &TaskFilter::default())
                .await
                .unwrap_err(),
        );
        let elsewhere = RunTaskSpec {
            cluster: "nope".into(),
            ..run_spec(1, "")
        };
        no_cluster(sim.run_task(&elsewhere).await.unwrap_err());
        let elsewhere = ServiceSpec {
            cluster: "nope".into(),
            ..service_spec("api", 1, "")
        };
        no_cluster(sim.create_service(&elsewhere).await.unwrap_err());

        assert!(sim
            .service("sim-1", "main", "nope")
            .await
            .unwrap()
            .is_none());
        assert!(sim.task("sim-1", "main", "0").await.unwrap().is_none());
        let no_service = |e: ProviderError| {
            assert_eq!(
                codes(&e),
                (
                    Kind::NotFound,
                    "service_not_found",
                    Some("ServiceNotFoundException"),
                    None
                )
            )
        };
        let update = ServiceUpdate {
            desired_count: Some(0),
            ..ServiceUpdate::default()
        };
        no_service(
            sim.update_service("sim-1", "main", "nope", &update)
                .await
                .unwrap_err(),
        );
        no_service(
            sim.delete_service("sim-1", "main", "nope")
                .await
                .unwrap_err(),
        );
        no_service(
            sim.list_tasks("sim-1", "main", &filter(Some("nope"), None))
                .await
                .unwrap_err(),
        );
        let unknown_definition = ServiceSpec {
            task_definition: "db".into(),
            ..service_spec("api", 1, "")
        };
        let e = sim.create_service(&unknown_definition).await.unwrap_err();
        assert_eq!(
            codes(&e),
            (
                Kind::InvalidInput,
                "invalid_input",
                Some("ClientException"),
                Some("task_definition")
            )
        );
        // ARNs name what names do.
        let made = sim
            .create_service(&service_spec("api", 1, ""))
            .await
            .unwrap();
        let cluster_arn = "arn:aws:ecs:sim-1:000000000000:cluster/main";
        let by_arn = sim
            .service("sim-1", cluster_arn, made.arn.as_deref().unwrap())
            .await
            .unwrap();
        assert_eq!(by_arn.unwrap().name, "api");
    }

    #[tokio::test]
    async fn listings_page_and_faults_hit_container_calls_with_ecs_codes() {
        let (sim, calls) = provider(settings(0.0));
        for i in 0..(LIST_PAGE + 5) {
            sim.create_cluster(&cluster_spec(&format!("c{i:03}")))
                .await
                .unwrap();
        }
        let clusters = sim.list_clusters("sim-1").await.unwrap();
        assert_eq!(clusters.len(), LIST_PAGE + 5);
        assert!(clusters.windows(2).all(|w| w[0].name < w[1].name));
        assert!(clusters.iter().all(|c| c.tags["team"] == "web"));
        assert_eq!(calls.count("ListClusters", "ok"), 2);
        assert_eq!(calls.count("DescribeClusters", "ok"), 2);
        assert!(sim.list_clusters("sim-2").await.unwrap().is_empty());

        setup(&sim).await;
        for i in 0..12 {
            sim.create_service(&service_spec(&format!("s{i:02}"), 0, ""))
                .await
                .unwrap();
        }
        let services = sim.list_services("sim-1", "main").await.unwrap();
        assert_eq!(services.len(), 12);
        assert_eq!(calls.count("DescribeServices", "ok"), 2);
        // A service of none is steady at once.
        assert_eq!(
            messages(&services[0])[0],
            "(service s00) has reached a steady state."
        );

        sim.set_faults(Faults {
            throttle_rate: 1.0,
            actions: vec!["DescribeServices".into()],
            ..Faults::default()
        });
        let throttled = sim.service("sim-1", "main", "s00").await.unwrap_err();
        assert_eq!(
            (throttled.code, throttled.backend_code.as_deref()),
            ("backend_throttled", Some("ThrottlingException"))
        );
        assert!(throttled.message.starts_with("sim DescribeServices: "));
        assert_eq!(calls.count("DescribeServices", "backend_throttled"), 1);
        sim.set_faults(Faults {
            error_rate: 1.0,
            actions: vec!["RunTask".into()],
            ..Faults::default()
        });
        let unavailable = sim.run_task(&run_spec(1, "run-1")).await.unwrap_err();
        assert_eq!(unavailable.backend_code.as_deref(), Some("ServerException"));
        assert!(
            tasks(&sim, &TaskFilter::default()).await.is_empty(),
            "refused before it acted"
        );

        // A create whose answer is lost has made its service; its repeat answers it.
        sim.set_faults(Faults {
            act_then_fail_rate: 1.0,
            actions: vec!["CreateService".into()],
            ..Faults::default()
        });
        let lost = sim
            .create_service(&service_spec("api", 1, "svc-1"))
            .await
            .unwrap_err();
        assert_eq!(lost.code, "backend_timeout");
        sim.set_faults(Faults::default());
        assert!(sim.service("sim-1", "main", "api").await.unwrap().is_some());
        let repeated = sim
            .create_service(&service_spec("api", 1, "svc-1"))
            .await
            .unwrap();
        assert_eq!(repeated.running_count, 1);
    }
}
