//! Stages, promotion and actions on many instances: a selector is plan first (targets,
//! what is skipped and why, the backend calls in batches per region), the plan is recorded
//! in the operation, and one change carries out any plan, recording each target.

use async_trait::async_trait;
use futures::future::join_all;
use overcast_provider::{Action, Compute, InstanceFilter, ResourceKind};
use overcast_types::{Error, Instance, InstanceState, Operation, Role, StagePolicy, TargetResult};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;
use tokio::sync::mpsc;
use utoipa::ToSchema;

use super::listing::InstanceQuery;
use super::wait::wait_for;
use crate::access::visible_org;
use crate::app::{Core, Idempotency, Target};
use crate::auth::Principal;
use crate::environments::Environment;
use crate::ids::now;
use crate::inventory::Scope;
use crate::operations::attempts::repeatable;
use crate::operations::{Cancellation, Change, OperationContext};
use crate::tags::{check_keys, check_tags};

/// What to do with the selected instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BulkAction {
    Start,
    Stop,
    Reboot,
    Terminate,
    Promote,
    Tag,
    Untag,
}

impl BulkAction {
    pub fn parse(name: &str) -> Result<Self, Error> {
        Ok(match name {
            "start" => BulkAction::Start,
            "stop" => BulkAction::Stop,
            "reboot" => BulkAction::Reboot,
            "terminate" => BulkAction::Terminate,
            "promote" => BulkAction::Promote,
            "tag" => BulkAction::Tag,
            "untag" => BulkAction::Untag,
            other => {
                return Err(Error::invalid(
                    "action",
                    format!("`{other}` is not an action; use start, stop, reboot, terminate, promote, tag or untag"),
                ))
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            BulkAction::Start => "start",
            BulkAction::Stop => "stop",
            BulkAction::Reboot => "reboot",
            BulkAction::Terminate => "terminate",
            BulkAction::Promote => "promote",
            BulkAction::Tag => "tag",
            BulkAction::Untag => "untag",
        }
    }

    /// The operation kind that carries out a plan of this action.
    pub fn kind(self) -> &'static str {
        match self {
            BulkAction::Start => "instance.start",
            BulkAction::Stop => "instance.stop",
            BulkAction::Reboot => "instance.reboot",
            BulkAction::Terminate => "instance.terminate",
            BulkAction::Promote => "instance.promote",
            // `instance.tag` is one instance's tag change; these act on a selection.
            BulkAction::Tag => "instance.tag_selected",
            BulkAction::Untag => "instance.untag_selected",
        }
    }

    pub const ALL: [BulkAction; 7] = [
        BulkAction::Start,
        BulkAction::Stop,
        BulkAction::Reboot,
        BulkAction::Terminate,
        BulkAction::Promote,
        BulkAction::Tag,
        BulkAction::Untag,
    ];

    /// The state an action ends in, for the lifecycle actions.
    pub fn target_state(self) -> Option<InstanceState> {
        match self {
            BulkAction::Start | BulkAction::Reboot => Some(InstanceState::Running),
            BulkAction::Stop => Some(InstanceState::Stopped),
            BulkAction::Terminate => Some(InstanceState::Terminated),
            BulkAction::Promote | BulkAction::Tag | BulkAction::Untag => None,
        }
    }
}

/// Which instances, and how to act on them. Every given selector part must match.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    #[serde(default)]
    pub ids: Vec<String>,
    #[serde(default)]
    pub stage: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub state: Option<InstanceState>,
    /// Only instances of this region; it narrows a selector but is not one by itself.
    #[serde(default)]
    pub region: Option<String>,
    /// Return the plan; act on nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// `ENV/STAGE` (when the selector names a stage) or `ENV/COUNT`: needed to terminate,
    /// and to stop instances of a protected stage.
    #[serde(default)]
    pub confirm: Option<String>,
    /// stop: at once, without a graceful shutdown.
    #[serde(default)]
    pub force: bool,
    /// promote: a later stage to move to; default: the next one.
    #[serde(default)]
    pub to_stage: Option<String>,
    /// tag: the tags to set.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// untag: the keys to remove.
    #[serde(default)]
    pub keys: Vec<String>,
}

impl BulkRequest {
    pub fn selects_nothing(&self) -> bool {
        self.ids.is_empty()
            && self.stage.is_none()
            && self.tags.is_empty()
            && self.name.is_none()
            && self.state.is_none()
    }
}

/// One instance the plan acts on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PlannedTarget {
    pub id: String,
    pub region: String,
    pub state: InstanceState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// promote: the exact stage chosen now, so a re-run after a crash writes the same one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_stage: Option<String>,
}

/// One instance the selector matched that the plan leaves alone, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SkippedTarget {
    pub id: String,
    pub reason: String,
    /// Its state when planned; absent for an id that was not found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<InstanceState>,
}

/// One backend call the plan will make.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PlannedCall {
    pub region: String,
    pub action: String,
    pub instances: usize,
}

/// What a bulk action will do: recorded in its operation before anything is done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Plan {
    pub environment: String,
    pub action: BulkAction,
    pub targets: Vec<PlannedTarget>,
    pub skipped: Vec<SkippedTarget>,
    pub calls: Vec<PlannedCall>,
    #[serde(default)]
    pub force: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// The `confirm` text carrying the plan out needs, when it needs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm: Option<String>,
}

/// Plans an action on the matched instances: who is acted on, who is skipped and why, and
/// the backend calls in batches of at most `batch` ids per region (the provider's limit).
pub fn make_plan(
    environment: &str,
    policy: &StagePolicy,
    action: BulkAction,
    request: &BulkRequest,
    matched: Vec<Instance>,
    batch: usize,
) -> Result<Plan, Error> {
    if let Some(to) = &request.to_stage {
        if action != BulkAction::Promote {
            return Err(Error::invalid("to_stage", "only promote takes to_stage"));
        }
        if !policy.stages.contains(to) {
            return Err(Error::invalid(
                "to_stage",
                format!("`{to}` is not a stage ({})", policy.stages.join(", ")),
            ));
        }
    }
    if request.force && action != BulkAction::Stop {
        return Err(Error::invalid("force", "only stop takes force"));
    }
    if action == BulkAction::Tag && request.set.is_empty() {
        return Err(Error::invalid("set", "give the tags to set"));
    }
    if action == BulkAction::Untag && request.keys.is_empty() {
        return Err(Error::invalid("keys", "give the tag keys to remove"));
    }
    let mut targets = Vec::new();
    let mut skipped = Vec::new();
    for instance in matched {
        let skip = |reason: String| SkippedTarget {
            id: instance.id.clone(),
            reason,
            state: Some(instance.state),
        };
        if instance.state.is_gone() && action != BulkAction::Terminate {
            skipped.push(skip(format!("it is {}", instance.state.as_str())));
            continue;
        }
        match action.target_state() {
            Some(state) if state == instance.state && action != BulkAction::Reboot => {
                skipped.push(skip(format!("already {}", state.as_str())));
                continue;
            }
            Some(InstanceState::Terminated) if instance.state.is_gone() => {
                skipped.push(skip(format!("already {}", instance.state.as_str())));
                continue;
            }
            _ => {}
        }
        if action == BulkAction::Reboot && instance.state != InstanceState::Running {
            skipped.push(skip(format!(
                "it is {}, not running",
                instance.state.as_str()
            )));
            continue;
        }
        let to_stage = if action == BulkAction::Promote {
            match promotion(
                policy,
                instance.stage.as_deref(),
                request.to_stage.as_deref(),
            ) {
                Ok(to) => Some(to),
                Err(reason) => {
                    skipped.push(skip(reason));
                    continue;
                }
            }
        } else {
            None
        };
        targets.push(PlannedTarget {
            id: instance.id,
            region: instance.region,
            state: instance.state,
            stage: instance.stage,
            to_stage,
        });
    }
    targets.sort_by(|a, b| (&a.region, &a.id).cmp(&(&b.region, &b.id)));
    let mut per_region: BTreeMap<&str, usize> = BTreeMap::new();
    for target in &targets {
        *per_region.entry(target.region.as_str()).or_default() += 1;
    }
    let calls = per_region
        .into_iter()
        .flat_map(|(region, count)| {
            (0..count.div_ceil(batch)).map(move |call| PlannedCall {
                region: region.to_string(),
                action: action.name().to_string(),
                instances: (count - call * batch).min(batch),
            })
        })
        .collect();
    let mut plan = Plan {
        environment: environment.to_string(),
        action,
        targets,
        skipped,
        calls,
        force: request.force,
        set: request.set.clone(),
        keys: request.keys.clone(),
        confirm: None,
    };
    plan.confirm = needed_confirmation(policy, request, &plan);
    Ok(plan)
}

/// The stage a promotion moves to, or why it cannot.
fn promotion(policy: &StagePolicy, from: Option<&str>, to: Option<&str>) -> Result<String, String> {
    let Some(from) = from else {
        return Err(format!("it has no {} tag", policy.tag_key));
    };
    let Some(at) = policy.stages.iter().position(|s| s == from) else {
        return Err(format!(
            "its stage `{from}` is not one of {}",
            policy.stages.join(", ")
        ));
    };
    match to {
        None => policy
            .next(from)
            .map(str::to_string)
            .ok_or_else(|| format!("`{from}` is the last stage")),
        Some(to) => {
            let target = policy.stages.iter().position(|s| s == to).unwrap_or(0);
            if target > at {
                Ok(to.to_string())
            } else {
                Err(format!("`{to}` is not after its stage `{from}`"))
            }
        }
    }
}

/// The confirmation a destructive plan needs: terminate always, stop when a target is in
/// a protected stage. It is `ENV/STAGE` when the selector names a stage, else `ENV/COUNT`.
fn needed_confirmation(policy: &StagePolicy, request: &BulkRequest, plan: &Plan) -> Option<String> {
    let needed = match plan.action {
        BulkAction::Terminate => true,
        BulkAction::Stop => plan
            .targets
            .iter()
            .any(|t| t.stage.as_deref().is_some_and(|s| policy.is_protected(s))),
        _ => false,
    };
    if !needed || plan.targets.is_empty() {
        return None;
    }
    Some(match &request.stage {
        Some(stage) => format!("{}/{stage}", plan.environment),
        None => format!("{}/{}", plan.environment, plan.targets.len()),
    })
}

/// Checks that a request carries the confirmation its plan needs.
pub fn check_confirmation(request: &BulkRequest, plan: &Plan) -> Result<(), Error> {
    let Some(expected) = &plan.confirm else {
        return Ok(());
    };
    if request.confirm.as_ref() == Some(expected) {
        return Ok(());
    }
    Err(Error::invalid(
        "confirm",
        format!(
            "this would {} {} instance(s) in {}; repeat with \"confirm\": \"{expected}\"",
            plan.action.name(),
            plan.targets.len(),
            plan.environment
        ),
    ))
}

/// Carries out any plan: regions run concurrently, each in batches of at most
/// the provider's `max_ids_per_call`; every target's outcome is recorded as its batch ends. A re-run after a
/// crash skips the targets already recorded; the rest are acted on again, which is
/// harmless (stopping a stopped instance, writing the planned stage again).
pub(crate) struct Lifecycle;

#[async_trait]
impl Change for Lifecycle {
    const KINDS: &'static [&'static str] = &[
        "instance.start",
        "instance.stop",
        "instance.reboot",
        "instance.terminate",
        "instance.promote",
        "instance.tag_selected",
        "instance.untag_selected",
    ];
    type Input = Plan;

    fn kind(plan: &Plan) -> &'static str {
        plan.action.kind()
    }

    async fn run(&self, plan: Plan, step: &mut OperationContext) -> Result<(), Error> {
        let env = step.environment(&plan.environment)?;
        let env = env.as_ref();
        let compute = env.compute()?;
        step.set_total((plan.targets.len() + plan.skipped.len()) as u64)
            .await?;
        let skipped: Vec<TargetResult> = plan
            .skipped
            .iter()
            .filter(|s| step.result_for(&s.id).is_none())
            .map(|s| TargetResult::skipped(&s.id, &s.reason))
            .collect();
        if !skipped.is_empty() {
            step.record_many(skipped).await?;
        }
        let mut by_region: BTreeMap<&str, Vec<&PlannedTarget>> = BTreeMap::new();
        for target in plan
            .targets
            .iter()
            .filter(|t| step.result_for(&t.id).is_none())
        {
            by_region
                .entry(target.region.as_str())
                .or_default()
                .push(target);
        }
        step.check_cancelled()?;
        let cancellation = step.cancellation();
        let (sender, mut outcomes) = mpsc::unbounded_channel::<(TargetResult, Option<Error>)>();
        let work = join_all(by_region.into_iter().map(|(region, targets)| {
            let sender = sender.clone();
            let (plan, env, cancellation) = (&plan, env, cancellation.clone());
            async move {
                for batch in targets.chunks(compute.max_ids_per_call().max(1)) {
                    if cancellation.check().is_err() {
                        return;
                    }
                    for result in
                        act_on_batch(env, compute, plan, region, batch, &cancellation).await
                    {
                        let _ = sender.send(result);
                    }
                }
            }
        }));
        drop(sender);
        let record = async {
            let mut failed: Vec<(String, Error)> = Vec::new();
            while let Some(first) = outcomes.recv().await {
                // Everything that has arrived is saved with one write.
                let mut burst = vec![first];
                while let Ok(more) = outcomes.try_recv() {
                    burst.push(more);
                }
                let mut results = Vec::with_capacity(burst.len());
                for (result, error) in burst {
                    if let Some(error) = error {
                        failed.push((result.target.clone(), error));
                    }
                    results.push(result);
                }
                step.record_many(results).await?;
            }
            Ok::<_, Error>(failed)
        };
        let (_, failed) = tokio::join!(work, record);
        let failed = failed?;
        step.check_cancelled()?;
        let Some((target, first)) = failed.first() else {
            return Ok(());
        };
        if plan.targets.len() == 1 {
            return Err(first.clone());
        }
        Err(Error::new(
            first.kind,
            "partially_failed",
            format!(
                "{} of {} targets failed (the results say which); first: {target}: {}",
                failed.len(),
                plan.targets.len(),
                first.message
            ),
        ))
    }
}

/// Acts on one batch of one region and says how each target ended.
async fn act_on_batch(
    env: &Environment,
    compute: &dyn Compute,
    plan: &Plan,
    region: &str,
    batch: &[&PlannedTarget],
    cancellation: &Cancellation,
) -> Vec<(TargetResult, Option<Error>)> {
    let ids: Vec<String> = batch.iter().map(|t| t.id.clone()).collect();
    let failed_one = |t: &PlannedTarget, error: &Error| {
        let result = TargetResult::failed(&t.id, &error.message);
        (result, Some(error.clone()))
    };
    let failed = |error: &Error| {
        batch
            .iter()
            .map(|t| failed_one(t, error))
            .collect::<Vec<_>>()
    };
    let done = |t: &PlannedTarget, message: Option<String>| {
        let result = TargetResult {
            message,
            ..TargetResult::done(&t.id)
        };
        (result, None)
    };
    let action = match plan.action {
        BulkAction::Start => Some(Action::Start),
        BulkAction::Stop => Some(Action::Stop { force: plan.force }),
        BulkAction::Reboot => Some(Action::Reboot),
        BulkAction::Terminate => Some(Action::Terminate),
        BulkAction::Promote | BulkAction::Tag | BulkAction::Untag => None,
    };
    if let Some(action) = action {
        let target = action.target_state();
        // The inventory planned; the backend decides: a target already where the action
        // leads is done without a call. (Read before the targets are marked as changing,
        // so what changed outside overcast is drift.)
        let began = Instant::now();
        let filter = InstanceFilter {
            region: Some(region.to_string()),
            ids: ids.clone(),
            ..InstanceFilter::default()
        };
        let current =
            match repeatable("check", cancellation, || compute.list_instances(&filter)).await {
                Ok(current) => current,
                Err(e) => return failed(&e),
            };
        let current: Vec<Instance> = current.into_iter().map(|i| env.decorate(i)).collect();
        env.inventory
            .absorb(Scope::Keys(&ids), current.clone(), began, now());
        let _changing = env.inventory.changing(&ids);
        let there = |state: InstanceState| match action {
            Action::Reboot => false,
            Action::Terminate => state.is_gone(),
            _ => state == target,
        };
        let already: BTreeSet<&str> = current
            .iter()
            .filter(|i| there(i.state))
            .map(|i| i.id.as_str())
            .collect();
        let mut results: Vec<(TargetResult, Option<Error>)> = batch
            .iter()
            .filter(|t| already.contains(t.id.as_str()))
            .map(|t| {
                let message = format!("already {} at the backend", target.as_str());
                done(t, Some(message))
            })
            .collect();
        let to_act: Vec<&PlannedTarget> = batch
            .iter()
            .filter(|t| !already.contains(t.id.as_str()))
            .copied()
            .collect();
        if to_act.is_empty() {
            return results;
        }
        let ids: Vec<String> = to_act.iter().map(|t| t.id.clone()).collect();
        if let Err(e) = repeatable("act", cancellation, || compute.act(region, &ids, action)).await
        {
            results.extend(to_act.iter().map(|t| failed_one(t, &e)));
            return results;
        }
        // One instance's result shows it whole; a fleet's would make the record huge.
        let whole = plan.targets.len() == 1;
        match wait_for(compute, region, &ids, target, cancellation).await {
            // Per target: a terminated one may be listed no more, and then has no detail.
            Ok(instances) => {
                let mut found: BTreeMap<String, Instance> = instances
                    .into_iter()
                    .map(|i| (i.id.clone(), env.decorate(i)))
                    .collect();
                let gone: Vec<String> = ids
                    .iter()
                    .filter(|id| !found.contains_key(*id))
                    .cloned()
                    .collect();
                env.inventory.instances.record(found.values().cloned());
                // What the backend lists no more stays listed, terminated, for an hour.
                env.inventory.instances.record_tombstones(
                    current
                        .iter()
                        .filter(|i| gone.contains(&i.id))
                        .map(|i| Instance {
                            state: InstanceState::Terminated,
                            ..i.clone()
                        }),
                );
                results.extend(to_act.iter().map(|t| {
                    let detail = found
                        .remove(&t.id)
                        .filter(|_| whole)
                        .and_then(|i| serde_json::to_value(&i).ok());
                    let result = TargetResult {
                        detail,
                        ..TargetResult::done(&t.id)
                    };
                    (result, None)
                }));
            }
            Err(e) => results.extend(to_act.iter().map(|t| failed_one(t, &e))),
        }
        return results;
    }
    let _changing = env.inventory.changing(&ids);
    // What overcast set, as it will read back: the tags changed and stage and org derived.
    let retag = |ids: &[String], change: &dyn Fn(&mut BTreeMap<String, String>)| {
        env.inventory.instances.update(ids, |instance| {
            change(&mut instance.tags);
            env.redecorate(instance);
        })
    };
    let tagging = match env.tags() {
        Ok(tagging) => tagging,
        Err(e) => return failed(&e),
    };
    match plan.action {
        BulkAction::Promote => {
            // One call per destination stage: a plan may move targets to different stages.
            let mut by_stage: BTreeMap<&str, Vec<&PlannedTarget>> = BTreeMap::new();
            for target in batch {
                by_stage
                    .entry(target.to_stage.as_deref().unwrap_or_default())
                    .or_default()
                    .push(target);
            }
            let mut results = Vec::new();
            for (stage, targets) in by_stage {
                let ids: Vec<String> = targets.iter().map(|t| t.id.clone()).collect();
                let tags = BTreeMap::from([(env.stages.tag_key.clone(), stage.to_string())]);
                let set = || tagging.set_tags(region, ResourceKind::Instance, &ids, &tags);
                match repeatable("promote", cancellation, set).await {
                    Ok(()) => results.extend(targets.iter().map(|t| {
                        retag(std::slice::from_ref(&t.id), &|existing| {
                            existing.extend(tags.clone())
                        });
                        done(
                            t,
                            Some(format!("{} → {stage}", t.stage.as_deref().unwrap_or("-"))),
                        )
                    })),
                    Err(e) => results.extend(targets.iter().map(|t| failed_one(t, &e))),
                }
            }
            results
        }
        BulkAction::Tag => match repeatable("tag", cancellation, || {
            tagging.set_tags(region, ResourceKind::Instance, &ids, &plan.set)
        })
        .await
        {
            Ok(()) => {
                retag(&ids, &|existing| existing.extend(plan.set.clone()));
                batch.iter().map(|t| done(t, None)).collect()
            }
            Err(e) => failed(&e),
        },
        _ => match repeatable("untag", cancellation, || {
            tagging.remove_tags(region, ResourceKind::Instance, &ids, &plan.keys)
        })
        .await
        {
            Ok(()) => {
                retag(&ids, &|existing| {
                    existing.retain(|k, _| !plan.keys.contains(k))
                });
                batch.iter().map(|t| done(t, None)).collect()
            }
            Err(e) => failed(&e),
        },
    }
}

/// Reads again at the backend the instances the inventory has where the action leads, so
/// that none is skipped on stale data ("already stopped" when someone started it since).
/// The others are checked at the backend before they are acted on.
async fn settle(
    environment: &Environment,
    action: BulkAction,
    matched: &mut [Instance],
) -> Result<(), Error> {
    let target = match action.target_state() {
        Some(target) if action != BulkAction::Reboot => target,
        _ => return Ok(()),
    };
    let there = |state: InstanceState| {
        state == target || (target == InstanceState::Terminated && state.is_gone())
    };
    let mut by_region: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for instance in matched.iter().filter(|i| there(i.state)) {
        by_region
            .entry(instance.region.clone())
            .or_default()
            .push(instance.id.clone());
    }
    let batch = environment.compute()?.max_ids_per_call().max(1);
    let mut read: BTreeMap<String, Instance> = BTreeMap::new();
    for (region, ids) in by_region {
        for chunk in ids.chunks(batch) {
            let found = environment.read_instances(Some(&region), chunk).await?;
            read.extend(found.into_iter().map(|i| (i.id.clone(), i)));
        }
    }
    for instance in matched.iter_mut() {
        if let Some(fresh) = read.remove(&instance.id) {
            *instance = fresh;
        }
    }
    Ok(())
}

/// What a bulk request led to.
#[derive(Debug, Clone)]
pub enum BulkOutcome {
    /// The plan only: a dry run, or a selector that matched nothing to act on.
    Planned(Plan),
    /// The operation that carries out the plan.
    Started(Box<Operation>),
}

/// One instance's start, stop, reboot, terminate or promotion.
#[derive(Debug, Clone)]
pub struct InstanceActionRequest {
    pub action: BulkAction,
    /// stop: at once, without a graceful shutdown.
    pub force: bool,
    /// promote: a later stage to move to; default: the next one.
    pub to_stage: Option<String>,
}

impl Core {
    /// Starts, stops, reboots, terminates or promotes one instance, as an operation: a
    /// plan of one, carried out like any bulk action.
    pub async fn instance_action(
        &self,
        principal: &Principal,
        env: &str,
        id: &str,
        request: InstanceActionRequest,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        let InstanceActionRequest {
            action,
            force,
            to_stage,
        } = request;
        principal.require(Role::Operator)?;
        if let Some(operation) = self.replayed(principal, idempotency).await? {
            return Ok(operation);
        }
        // One instance is read at the backend: its plan must not rest on stale data.
        let instance = self.instance_read(principal, env, id, true).await?;
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
        let org = instance.org.clone();
        let batch = environment.compute()?.max_ids_per_call();
        let plan = make_plan(
            env,
            &environment.stages,
            action,
            &request,
            vec![instance],
            batch,
        )?;
        if action == BulkAction::Promote {
            if let Some(skipped) = plan.skipped.first() {
                return Err(Error::conflict(
                    "cannot_promote",
                    format!("instance {id} cannot be promoted: {}", skipped.reason),
                ));
            }
        }
        let target = Target::new(env, format!("{env}/{id}")).owned_by(org.as_deref());
        self.start::<Lifecycle>(principal, target, &plan, idempotency)
            .await
    }

    /// Plans an action on the instances a selector matches and, unless it is a dry run or
    /// nothing is to be done, starts the operation that carries it out.
    pub async fn bulk(
        &self,
        principal: &Principal,
        env: &str,
        action: BulkAction,
        request: &BulkRequest,
        idempotency: Option<&Idempotency>,
    ) -> Result<BulkOutcome, Error> {
        principal.require(Role::Operator)?;
        if let Some(operation) = self.replayed(principal, idempotency).await? {
            return Ok(BulkOutcome::Started(Box::new(operation)));
        }
        if request.selects_nothing() {
            return Err(Error::invalid(
                "selector",
                "give ids, stage, tags, name or state to select instances",
            ));
        }
        check_tags(&request.set)?;
        check_keys(&request.keys)?;
        let environment = self.environments.require(env)?;
        let query = InstanceQuery {
            stage: request.stage.clone(),
            state: request.state,
            name: request.name.clone(),
            tags: request.tags.clone(),
            region: environment.region_if_given(request.region.as_deref())?,
            ..InstanceQuery::default()
        };
        let visible = |i: &Instance| visible_org(principal, i.org.as_deref());
        let mut missing = Vec::new();
        // Planned over the inventory (each batch is checked at the backend before it is
        // acted on); ids it does not hold are looked for with a refresh first.
        let mut matched = environment.list(visible, &query).await?;
        if !request.ids.is_empty() {
            let unknown = |matched: &[Instance]| {
                request
                    .ids
                    .iter()
                    .any(|id| !matched.iter().any(|i| &i.id == id))
            };
            if unknown(&matched) {
                environment.reread::<Instance>().await?;
                matched = environment.list(visible, &query).await?;
            }
            matched.retain(|i| request.ids.contains(&i.id));
            missing = request
                .ids
                .iter()
                .filter(|id| !matched.iter().any(|i| &i.id == *id))
                .map(|id| SkippedTarget {
                    id: id.clone(),
                    reason: "not found".into(),
                    state: None,
                })
                .collect();
        }
        settle(environment, action, &mut matched).await?;
        self.record_drift(environment).await;
        let batch = environment.compute()?.max_ids_per_call();
        let mut plan = make_plan(env, &environment.stages, action, request, matched, batch)?;
        plan.skipped.extend(missing);
        if request.dry_run || plan.targets.is_empty() {
            return Ok(BulkOutcome::Planned(plan));
        }
        check_confirmation(request, &plan)?;
        let target = Target::new(
            env,
            format!("{env}/instances ({} selected)", plan.targets.len()),
        );
        let operation = self
            .start::<Lifecycle>(principal, target, &plan, idempotency)
            .await?;
        Ok(BulkOutcome::Started(Box::new(operation)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// EC2's limit on ids per call, as the AWS provider reports it.
    const EC2_BATCH: usize = 1000;

    fn instance(id: &str, region: &str, state: InstanceState, stage: Option<&str>) -> Instance {
        Instance {
            stage: stage.map(Into::into),
            ..Instance::new(id, "aws-dev", region, state)
        }
    }

    fn ids(plan: &Plan) -> Vec<&str> {
        plan.targets.iter().map(|t| t.id.as_str()).collect()
    }

    #[test]
    fn stopping_skips_what_is_stopped_or_gone() {
        let matched = vec![
            instance("i-1", "eu", InstanceState::Running, Some("dev")),
            instance("i-2", "eu", InstanceState::Stopped, Some("dev")),
            instance("i-3", "us", InstanceState::Terminated, Some("dev")),
        ];
        let plan = make_plan(
            "aws-dev",
            &StagePolicy::default(),
            BulkAction::Stop,
            &BulkRequest::default(),
            matched,
            EC2_BATCH,
        )
        .unwrap();
        assert_eq!(ids(&plan), ["i-1"]);
        let reasons: Vec<_> = plan
            .skipped
            .iter()
            .map(|s| (s.id.as_str(), s.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [("i-2", "already stopped"), ("i-3", "it is terminated")]
        );
    }

    #[test]
    fn promotion_chooses_the_exact_next_stage_and_stops_at_the_last() {
        let matched = vec![
            instance("i-1", "eu", InstanceState::Running, Some("dev")),
            instance("i-2", "eu", InstanceState::Running, Some("test")),
            instance("i-3", "eu", InstanceState::Running, Some("prod")),
            instance("i-4", "eu", InstanceState::Running, None),
        ];
        let plan = make_plan(
            "aws-dev",
            &StagePolicy::default(),
            BulkAction::Promote,
            &BulkRequest::default(),
            matched.clone(),
            EC2_BATCH,
        )
        .unwrap();
        let moves: Vec<_> = plan
            .targets
            .iter()
            .map(|t| (t.id.as_str(), t.to_stage.as_deref().unwrap()))
            .collect();
        assert_eq!(moves, [("i-1", "test"), ("i-2", "prod")]);
        assert_eq!(plan.skipped[0].reason, "`prod` is the last stage");
        assert_eq!(plan.skipped[1].reason, "it has no stage tag");

        let to_prod = BulkRequest {
            to_stage: Some("prod".into()),
            ..Default::default()
        };
        let plan = make_plan(
            "aws-dev",
            &StagePolicy::default(),
            BulkAction::Promote,
            &to_prod,
            matched,
            EC2_BATCH,
        )
        .unwrap();
        assert_eq!(ids(&plan), ["i-1", "i-2"]);
        assert!(plan
            .targets
            .iter()
            .all(|t| t.to_stage.as_deref() == Some("prod")));
    }

    #[test]
    fn calls_are_batched_per_region_at_the_backend_limit() {
        let mut matched: Vec<Instance> = (0..2500)
            .map(|i| {
                instance(
                    &format!("i-{i:05}"),
                    "eu-west-1",
                    InstanceState::Running,
                    Some("dev"),
                )
            })
            .collect();
        matched.extend((0..10).map(|i| {
            instance(
                &format!("i-u{i}"),
                "us-east-1",
                InstanceState::Running,
                Some("dev"),
            )
        }));
        let plan = make_plan(
            "aws-dev",
            &StagePolicy::default(),
            BulkAction::Stop,
            &BulkRequest::default(),
            matched,
            EC2_BATCH,
        )
        .unwrap();
        let calls: Vec<_> = plan
            .calls
            .iter()
            .map(|c| (c.region.as_str(), c.instances))
            .collect();
        assert_eq!(
            calls,
            [
                ("eu-west-1", 1000),
                ("eu-west-1", 1000),
                ("eu-west-1", 500),
                ("us-east-1", 10)
            ]
        );
    }

    #[test]
    fn destructive_plans_need_the_matching_confirmation() {
        let policy = StagePolicy::default();
        let matched = vec![instance("i-1", "eu", InstanceState::Running, Some("prod"))];
        let by_stage = BulkRequest {
            stage: Some("prod".into()),
            ..Default::default()
        };
        let stop = make_plan(
            "aws-dev",
            &policy,
            BulkAction::Stop,
            &by_stage,
            matched.clone(),
            EC2_BATCH,
        )
        .unwrap();
        assert_eq!(
            stop.confirm.as_deref(),
            Some("aws-dev/prod"),
            "the plan names it"
        );
        let err = check_confirmation(&by_stage, &stop).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("confirm"));
        assert!(
            err.message.contains("\"confirm\": \"aws-dev/prod\""),
            "{}",
            err.message
        );
        let confirmed = BulkRequest {
            confirm: Some("aws-dev/prod".into()),
            ..by_stage.clone()
        };
        check_confirmation(&confirmed, &stop).unwrap();

        let by_ids = BulkRequest {
            ids: vec!["i-1".into()],
            ..Default::default()
        };
        let terminate = make_plan(
            "aws-dev",
            &policy,
            BulkAction::Terminate,
            &by_ids,
            matched,
            EC2_BATCH,
        )
        .unwrap();
        assert!(check_confirmation(&by_ids, &terminate).is_err());
        let confirmed = BulkRequest {
            confirm: Some("aws-dev/1".into()),
            ..by_ids
        };
        check_confirmation(&confirmed, &terminate).unwrap();

        let dev = vec![instance("i-2", "eu", InstanceState::Running, Some("dev"))];
        let stop_dev = make_plan(
            "aws-dev",
            &policy,
            BulkAction::Stop,
            &BulkRequest::default(),
            dev,
            EC2_BATCH,
        )
        .unwrap();
        assert_eq!(stop_dev.confirm, None, "an unprotected stop needs none");
        check_confirmation(&BulkRequest::default(), &stop_dev).unwrap();
    }

    #[test]
    fn bad_requests_name_the_field() {
        let policy = StagePolicy::default();
        let field = |action, request: BulkRequest| {
            make_plan("e", &policy, action, &request, vec![], EC2_BATCH)
                .unwrap_err()
                .field
                .unwrap()
        };
        assert_eq!(
            field(
                BulkAction::Promote,
                BulkRequest {
                    to_stage: Some("qa".into()),
                    ..Default::default()
                }
            ),
            "to_stage"
        );
        assert_eq!(
            field(
                BulkAction::Stop,
                BulkRequest {
                    to_stage: Some("prod".into()),
                    ..Default::default()
                }
            ),
            "to_stage"
        );
        assert_eq!(
            field(
                BulkAction::Start,
                BulkRequest {
                    force: true,
                    ..Default::default()
                }
            ),
            "force"
        );
        assert_eq!(field(BulkAction::Tag, BulkRequest::default()), "set");
        assert_eq!(field(BulkAction::Untag, BulkRequest::default()), "keys");
    }
}
