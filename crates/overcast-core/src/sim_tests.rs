//! Core's use cases against the simulated provider: every change repeated after its work
//! is done does it once, a resumed operation acts only on what it had not recorded, a
//! cancel stops it between steps, a failure in one region fails only its targets, a fleet
//! of 10,000 lists and pages, servers bootstrapping one store together agree, and container
//! services go from cluster to deletion, each change once, seen only by their org.

use overcast_provider::{factories, ProviderFactories, TaskFilter};
use overcast_provider_sim::{Faults, SimFactory, SimProvider};
use overcast_types::{
    Error, ErrorKind, InstanceState, Operation, OperationStatus, Progress, TargetOutcome,
    TargetResult,
};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use crate::app::{registry, Bootstrap, Core};
use crate::auth::Principal;
use crate::compute::{BulkAction, BulkOutcome, BulkRequest, InstanceQuery, Launch};
use crate::config::{Config, EnvironmentConfig};
use crate::operations::OperationContext;
use crate::security_groups::RuleChange;
use crate::tags::{ResourceKind, TagRequest};

const ADMIN: &str = "oc_sim_admin_secret_0123456789";
const ENV: &str = "sim";

/// A core over one `sim` environment, on a store of its own.
struct Sim {
    core: Arc<Core>,
    factory: Arc<SimFactory>,
    config: Config,
    admin: Principal,
    _dir: tempfile::TempDir,
}

impl Sim {
    /// A core whose `sim` environment has these settings (TOML), transitions instant
    /// unless they say otherwise.
    async fn start(settings: &str) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            listen: "127.0.0.1:0".into(),
            data_dir: Some(dir.path().to_path_buf()),
            ..Config::default()
        };
        let mut environment = EnvironmentConfig {
            settings: toml::from_str(settings).unwrap(),
            ..EnvironmentConfig::new("sim")
        };
        for key in ["pending_secs", "stopping_secs", "image_secs"] {
            environment.settings.entry(key).or_insert(0.into());
        }
        config.environments.insert(ENV.into(), environment);
        config.fill_defaults();
        let factory = Arc::new(SimFactory::new());
        let core = open(&config, &factory).await;
        let admin = core.authenticate(ADMIN).await.unwrap();
        Sim {
            core,
            factory,
            config,
            admin,
            _dir: dir,
        }
    }

    fn provider(&self) -> Arc<SimProvider> {
        self.factory.provider(ENV).unwrap()
    }

    /// A server started again on the same store and cloud, as after a crash.
    async fn restarted(&self) -> Arc<Core> {
        open(&self.config, &self.factory).await
    }

    async fn finished(&self, operation: &Operation) -> Operation {
        self.core
            .wait(&self.admin, &operation.id, Duration::from_secs(30))
            .await
            .unwrap()
    }

    async fn launch(&self, count: u32, stage: &str) -> Vec<String> {
        done_targets(&self.launch_operation(count, stage).await)
    }

    async fn launch_operation(&self, count: u32, stage: &str) -> Operation {
        let request = serde_json::from_value(json!({"count": count, "stage": stage})).unwrap();
        let Launch::Started(op) = self
            .core
            .create_instances(&self.admin, ENV, &request, None)
            .await
            .unwrap()
        else {
            panic!("not a dry run")
        };
        let op = self.finished(&op).await;
        assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}");
        op
    }

    async fn instances(&self, query: InstanceQuery) -> Vec<overcast_types::Instance> {
        let query = InstanceQuery {
            limit: 1000,
            ..query
        };
        self.core
            .instances(&self.admin, ENV, query)
            .await
            .unwrap()
            .items
    }

    async fn bulk(&self, action: BulkAction, request: serde_json::Value) -> Operation {
        let request: BulkRequest = serde_json::from_value(request).unwrap();
        match self
            .core
            .bulk(&self.admin, ENV, action, &request, None)
            .await
            .unwrap()
        {
            BulkOutcome::Started(op) => self.finished(&op).await,
            BulkOutcome::Planned(plan) => panic!("nothing to do: {plan:?}"),
        }
    }
}

async fn open(config: &Config, factory: &Arc<SimFactory>) -> Arc<Core> {
    let providers: ProviderFactories = factories(vec![factory.clone()]);
    let (core, _) = Core::open(config.clone(), &providers, Some(ADMIN.into()))
        .await
        .unwrap();
    core
}

/// Runs an ended operation's change once more from its start, as a server that crashed
/// after the backend acted but before any result was recorded would, and answers the
/// operation as that run leaves it.
async fn run_again(core: &Core, id: &str) -> Result<Operation, Error> {
    let mut operation = core.store.operation(id).await.unwrap().unwrap();
    operation.results.clear();
    operation.progress = Progress::default();
    let executor = registry().executor(&operation.kind).unwrap();
    let mut cx = OperationContext {
        operation,
        store: core.store.clone(),
        environments: core.environments.clone(),
        hold: None,
        flags: crate::operations::context::RunFlags::new(false, u64::MAX),
        handovers: Default::default(),
        given: Default::default(),
        calls: Arc::new(AtomicU64::new(0)),
    };
    executor.run(&mut cx).await?;
    Ok(cx.operation)
}

fn done_targets(op: &Operation) -> Vec<String> {
    let mut done: Vec<String> = op
        .results
        .iter()
        .filter(|r| r.outcome == TargetOutcome::Done)
        .map(|r| r.target.clone())
        .collect();
    done.sort();
    done
}

#[tokio::test]
async fn a_launch_repeated_after_it_landed_launches_nothing_even_without_client_tokens() {
    // Like moto: a repeated client token launches again, so only the operation's tag
    // can keep a re-run from doubling the fleet.
    let sim = Sim::start("ignore_client_token = true").await;
    let create = sim.launch_operation(3, "dev").await;
    let again = run_again(&sim.core, &create.id).await.unwrap();
    assert_eq!(done_targets(&again), done_targets(&create));
    assert_eq!(sim.instances(InstanceQuery::default()).await.len(), 3);
}

#[tokio::test]
async fn creates_whose_answers_are_lost_neither_double_nor_vanish() {
    // Every create acts and then loses its answer, on a backend that ignores client
    // tokens: a blind retry would make each thing twice, giving up would orphan it.
    let sim = Sim::start("ignore_client_token = true").await;
    let principal = &sim.admin;
    let core = &sim.core;
    let instance = sim.launch(1, "dev").await.remove(0);
    sim.provider().set_faults(Faults {
        act_then_fail_rate: 1.0,
        actions: [
            "RunInstances",
            "CreateImage",
            "CreateSecurityGroup",
            "CreateBucket",
        ]
        .map(String::from)
        .to_vec(),
        ..Faults::default()
    });
    let launch = sim.launch_operation(5, "test").await;
    assert_eq!(done_targets(&launch).len(), 5);
    let group = serde_json::from_value(json!({"name": "web", "description": "web"})).unwrap();
    let group = core
        .create_security_group(principal, ENV, &group, None)
        .await
        .unwrap();
    let image = serde_json::from_value(json!({"instance_id": instance, "name": "web"})).unwrap();
    let image = core
        .create_image(principal, ENV, &image, None)
        .await
        .unwrap();
    let bucket = serde_json::from_value(json!({"name": "sim-lost"})).unwrap();
    let bucket = core
        .create_bucket(principal, ENV, &bucket, None)
        .await
        .unwrap();
    for op in [&group, &image, &bucket] {
        let op = sim.finished(op).await;
        assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}");
        assert_eq!(done_targets(&op).len(), 1, "{op:?}");
    }
    sim.provider().set_faults(Faults::default());
    let test = InstanceQuery {
        stage: Some("test".into()),
        ..InstanceQuery::default()
    };
    let launched: Vec<String> = sim
        .instances(test)
        .await
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(launched.len(), 5, "exactly the instances asked for");
    let mut recorded = done_targets(&launch);
    recorded.sort();
    let mut launched = launched;
    launched.sort();
    assert_eq!(recorded, launched, "the record names what runs");
    let groups = core
        .security_groups(principal, ENV, None, false)
        .await
        .unwrap()
        .items;
    assert_eq!(groups.iter().filter(|g| g.name == "web").count(), 1);
    let images = core
        .images(principal, ENV, None, false)
        .await
        .unwrap()
        .items;
    assert_eq!(images.iter().filter(|i| i.name == "web").count(), 1);
    let bucket = core.bucket(principal, ENV, "sim-lost").await.unwrap();
    assert_eq!(
        bucket.org.as_deref(),
        Some(principal.org.as_str()),
        "the bucket kept its owner"
    );
}

#[tokio::test]
async fn launches_under_throttling_and_lost_answers_land_exactly_once() {
    let sim = Sim::start("ignore_client_token = true\nseed = 7").await;
    sim.provider().set_faults(Faults {
        throttle_rate: 0.2,
        error_rate: 0.1,
        act_then_fail_rate: 0.3,
        ..Faults::default()
    });
    let mut recorded = Vec::new();
    for _ in 0..4 {
        recorded.extend(done_targets(&sim.launch_operation(10, "dev").await));
    }
    sim.provider().set_faults(Faults::default());
    recorded.sort();
    let mut launched: Vec<String> = sim
        .instances(InstanceQuery::default())
        .await
        .into_iter()
        .map(|i| i.id)
        .collect();
    launched.sort();
    assert_eq!(launched.len(), 40);
    assert_eq!(recorded, launched);
}

#[tokio::test]
async fn creates_repeated_after_their_work_is_done_make_nothing_twice() {
    let sim = Sim::start("").await;
    let principal = &sim.admin;
    let core = &sim.core;
    let instance = sim.launch(1, "dev").await.remove(0);

    let group = serde_json::from_value(json!({"name": "web", "description": "web tier"})).unwrap();
    let group = core
        .create_security_group(principal, ENV, &group, None)
        .await
        .unwrap();
    let key = serde_json::from_value(
        json!({"name": "laptop", "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA== me@host"}),
    )
    .unwrap();
    let key = core
        .create_key_pair(principal, ENV, &key, None)
        .await
        .unwrap();
    let image =
        serde_json::from_value(json!({"instance_id": instance, "name": "web-image"})).unwrap();
    let image = core
        .create_image(principal, ENV, &image, None)
        .await
        .unwrap();
    let bucket = serde_json::from_value(json!({"name": "sim-logs"})).unwrap();
    let bucket = core
        .create_bucket(principal, ENV, &bucket, None)
        .await
        .unwrap();
    let token = serde_json::from_value(json!({"org": "acme", "role": "viewer"})).unwrap();
    let (token, _) = core.create_token(principal, &token, None).await.unwrap();

    for op in [&group, &key, &image, &bucket, &token] {
        let first = sim.finished(op).await;
        assert_eq!(first.status, OperationStatus::Succeeded, "{first:?}");
        let again = run_again(core, &op.id).await.unwrap();
        assert_eq!(
            again.results.iter().map(|r| &r.target).collect::<Vec<_>>(),
            first.results.iter().map(|r| &r.target).collect::<Vec<_>>(),
            "{}: the re-run found what the first run made",
            op.kind
        );
    }
    let groups = core
        .security_groups(principal, ENV, None, false)
        .await
        .unwrap()
        .items;
    assert_eq!(groups.iter().filter(|g| g.name == "web").count(), 1);
    let keys = core.key_pairs(principal, ENV, None).await.unwrap();
    assert_eq!(keys.iter().filter(|k| k.name == "laptop").count(), 1);
    let images = core
        .images(principal, ENV, None, false)
        .await
        .unwrap()
        .items;
    assert_eq!(images.iter().filter(|i| i.name == "web-image").count(), 1);
    let buckets = core.buckets(principal, ENV, false).await.unwrap().items;
    assert_eq!(buckets.iter().filter(|b| b.name == "sim-logs").count(), 1);
    let tokens = core.tokens(principal).await.unwrap();
    assert_eq!(tokens.iter().filter(|t| t.org == "acme").count(), 1);
}

#[tokio::test]
async fn changes_and_deletes_repeated_after_their_work_is_done_do_no_harm() {
    let sim = Sim::start("").await;
    let principal = &sim.admin;
    let core = &sim.core;
    let ids = sim.launch(2, "dev").await;

    let tag = TagRequest {
        target: ResourceKind::Instance,
        id: ids[0].clone(),
        set: BTreeMap::from([("team".to_string(), "web".to_string())]),
        remove: vec![],
    };
    let tagged = core.tag_resource(principal, ENV, tag, None).await.unwrap();
    let stopped = sim.bulk(BulkAction::Stop, json!({"stage": "dev"})).await;
    let promoted = sim
        .bulk(BulkAction::Promote, json!({"ids": [ids[1]]}))
        .await;
    let bucket = serde_json::from_value(json!({"name": "sim-gone"})).unwrap();
    let made = core
        .create_bucket(principal, ENV, &bucket, None)
        .await
        .unwrap();
    sim.finished(&made).await;
    let deleted = core
        .delete_bucket(principal, ENV, "sim-gone", false, None)
        .await
        .unwrap();
    let group = serde_json::from_value(json!({"name": "tmp", "description": "tmp"})).unwrap();
    let group = sim
        .finished(
            &core
                .create_security_group(principal, ENV, &group, None)
                .await
                .unwrap(),
        )
        .await;
    let group_id = group.results[0].target.clone();
    let dropped = core
        .delete_security_group(principal, ENV, &group_id, None)
        .await
        .unwrap();

    for op in [&tagged, &stopped, &promoted, &deleted, &dropped] {
        let first = sim.finished(op).await;
        assert_eq!(first.status, OperationStatus::Succeeded, "{first:?}");
        let again = run_again(core, &op.id)
            .await
            .unwrap_or_else(|e| panic!("{} repeated: {e}", op.kind));
        assert_eq!(done_targets(&again), done_targets(&first), "{}", op.kind);
    }
    let all = sim.instances(InstanceQuery::default()).await;
    assert!(all.iter().all(|i| i.state == InstanceState::Stopped));
    let first = all.iter().find(|i| i.id == ids[0]).unwrap();
    assert_eq!(first.tags.get("team").map(String::as_str), Some("web"));
    let second = all.iter().find(|i| i.id == ids[1]).unwrap();
    assert_eq!(
        second.stage.as_deref(),
        Some("test"),
        "promoted once, not twice"
    );
}

#[tokio::test]
async fn rule_modify_revoke_delete_tag_and_object_changes_repeat_harmlessly() {
    let sim = Sim::start("").await;
    let principal = &sim.admin;
    let core = &sim.core;
    let instance = sim.launch(1, "dev").await.remove(0);
    let group = serde_json::from_value(json!({"name": "db", "description": "db tier"})).unwrap();
    let group = core
        .create_security_group(principal, ENV, &group, None)
        .await
        .unwrap();
    let group = sim.finished(&group).await.results[0].target.clone();
    let rule: overcast_types::Rule = serde_json::from_value(
        json!({"direction": "ingress", "protocol": "tcp", "from_port": 5432, "to_port": 5432, "cidr": "10.0.0.0/8"}),
    )
    .unwrap();
    let image =
        serde_json::from_value(json!({"instance_id": instance, "name": "db-image"})).unwrap();
    let image = core
        .create_image(principal, ENV, &image, None)
        .await
        .unwrap();
    let image = sim.finished(&image).await.results[0].target.clone();
    let key = serde_json::from_value(
        json!({"name": "ops", "public_key": "ssh-rsa AAAAB3NzaC1yc2E= ops"}),
    )
    .unwrap();
    sim.finished(
        &core
            .create_key_pair(principal, ENV, &key, None)
            .await
            .unwrap(),
    )
    .await;
    let token = serde_json::from_value(json!({"org": "acme", "role": "viewer"})).unwrap();
    let (token, _) = core.create_token(principal, &token, None).await.unwrap();
    let token = sim.finished(&token).await.results[0].target.clone();
    let bucket = serde_json::from_value(json!({"name": "sim-data"})).unwrap();
    sim.finished(
        &core
            .create_bucket(principal, ENV, &bucket, None)
            .await
            .unwrap(),
    )
    .await;
    for key in ["a/1", "a/2", "b/1"] {
        let body: overcast_provider::ByteStream = Box::pin(futures::stream::iter([Ok(
            bytes::Bytes::from_static(b"data"),
        )]));
        core.upload(principal, ENV, "sim-data", key, &Default::default(), body)
            .await
            .unwrap();
    }
    let copy = serde_json::from_value(json!({"key": "c/1", "source_key": "b/1"})).unwrap();
    let modify = serde_json::from_value(json!({"termination_protection": true})).unwrap();
    let bucket_tag = TagRequest {
        target: ResourceKind::Bucket,
        id: "sim-data".into(),
        set: BTreeMap::from([("team".to_string(), "data".to_string())]),
        remove: vec![],
    };

    // One at a time: each change runs, then runs again, before the next one starts.
    let twice = |op: Result<Operation, Error>| async {
        let op = op.unwrap();
        let first = sim.finished(&op).await;
        assert_eq!(first.status, OperationStatus::Succeeded, "{first:?}");
        let again = run_again(core, &op.id)
            .await
            .unwrap_or_else(|e| panic!("{} repeated: {e}", op.kind));
        assert_eq!(done_targets(&again), done_targets(&first), "{}", op.kind);
    };
    let add = RuleChange::Add(rule.clone());
    twice(core.change_rule(principal, ENV, &group, add, None).await).await;
    let remove = RuleChange::Remove(rule);
    twice(core.change_rule(principal, ENV, &group, remove, None).await).await;
    twice(
        core.modify_instance(principal, ENV, &instance, &modify, None)
            .await,
    )
    .await;
    twice(core.revoke_token(principal, &token, None).await).await;
    twice(core.delete_image(principal, ENV, &image, None).await).await;
    twice(
        core.delete_key_pair(principal, ENV, "ops", None, None)
            .await,
    )
    .await;
    twice(core.tag_resource(principal, ENV, bucket_tag, None).await).await;
    twice(
        core.copy_object(principal, ENV, "sim-data", &copy, None)
            .await,
    )
    .await;
    twice(
        core.delete_object(principal, ENV, "sim-data", "b/1", None)
            .await,
    )
    .await;
    twice(
        core.delete_objects(principal, ENV, "sim-data", "a/", None)
            .await,
    )
    .await;
    let group = core.security_group(principal, ENV, &group).await.unwrap();
    assert!(!group.rules.iter().any(|r| r.from_port == Some(5432)));
    assert!(
        core.image(principal, ENV, &image).await.is_err(),
        "the image is gone"
    );
    let query = overcast_provider::ObjectQuery {
        limit: 100,
        ..Default::default()
    };
    let listing = core
        .objects(principal, ENV, "sim-data", &query)
        .await
        .unwrap();
    let keys: Vec<_> = listing.items.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["c/1"]);
    let bucket = core.bucket(principal, ENV, "sim-data").await.unwrap();
    assert_eq!(bucket.tags.get("team").map(String::as_str), Some("data"));
}

#[tokio::test]
async fn a_resumed_bulk_stop_acts_only_on_the_targets_it_had_not_recorded() {
    let sim = Sim::start("").await;
    let ids = sim.launch(6, "dev").await;
    let request: BulkRequest =
        serde_json::from_value(json!({"stage": "dev", "dry_run": true})).unwrap();
    let BulkOutcome::Planned(plan) = sim
        .core
        .bulk(&sim.admin, ENV, BulkAction::Stop, &request, None)
        .await
        .unwrap()
    else {
        panic!("a dry run answers the plan")
    };
    // The state a crash leaves: the operation running, two targets recorded as done
    // (here never acted on, so a second action on them would show).
    let mut operation = Operation {
        environment: Some(ENV.into()),
        ..Operation::pending(
            crate::ids::new_id("op"),
            "instance.stop",
            "admin",
            format!("{ENV}/instances"),
            "bootstrap-admin",
            crate::ids::now(),
            serde_json::to_value(&plan).unwrap(),
        )
    };
    operation.progress = Progress { done: 2, total: 6 };
    let store = &sim.core.store;
    // Held by a server that died, as the crashed run left it: only a restart takes it.
    let dead_hold = crate::ids::now() + Duration::from_secs(3600);
    store
        .create_held_operation(&operation, None, "srv_dead", dead_hold)
        .await
        .unwrap();
    store
        .mark_running(&operation.id, None, crate::ids::now())
        .await
        .unwrap();
    let recorded = vec![TargetResult::done(&ids[0]), TargetResult::done(&ids[1])];
    store
        .save_progress(&operation.id, None, operation.progress, &recorded, 0)
        .await
        .unwrap();

    let restarted = sim.restarted().await;
    let ended = restarted
        .wait(&sim.admin, &operation.id, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(ended.status, OperationStatus::Succeeded, "{ended:?}");
    assert_eq!(ended.results.len(), 6);
    // The first server's inventory has not seen what the restarted one did: read afresh.
    let fresh = InstanceQuery {
        fresh: true,
        ..InstanceQuery::default()
    };
    for instance in sim.instances(fresh).await {
        let recorded_before = instance.id == ids[0] || instance.id == ids[1];
        let expected = if recorded_before {
            InstanceState::Running
        } else {
            InstanceState::Stopped
        };
        assert_eq!(instance.state, expected, "{}", instance.id);
    }
}

#[tokio::test]
async fn a_cancel_stops_a_running_operation_between_its_steps() {
    let sim = Sim::start("stopping_secs = 600").await;
    sim.launch(3, "dev").await;
    let request: BulkRequest = serde_json::from_value(json!({"stage": "dev"})).unwrap();
    let BulkOutcome::Started(op) = sim
        .core
        .bulk(&sim.admin, ENV, BulkAction::Stop, &request, None)
        .await
        .unwrap()
    else {
        panic!("three to stop")
    };
    // The stop was asked for; the wait for `stopped` is where the cancel lands.
    for _ in 0..100 {
        let states = sim.instances(InstanceQuery::default()).await;
        if states.iter().all(|i| i.state == InstanceState::Stopping) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sim.core.cancel(&sim.admin, &op.id).await.unwrap();
    let ended = sim.finished(&op).await;
    assert_eq!(ended.status, OperationStatus::Cancelled, "{ended:?}");
    assert!(ended.finished_at.is_some());
}

#[tokio::test]
async fn a_bulk_stop_refused_for_now_is_done_once_the_backend_answers() {
    let sim = Sim::start("").await;
    let ids = sim.launch(3, "dev").await;
    sim.provider().set_faults(Faults {
        error_rate: 1.0,
        actions: vec!["StopInstances".into()],
        ..Faults::default()
    });
    let request: BulkRequest = serde_json::from_value(json!({"stage": "dev"})).unwrap();
    let BulkOutcome::Started(op) = sim
        .core
        .bulk(&sim.admin, ENV, BulkAction::Stop, &request, None)
        .await
        .unwrap()
    else {
        panic!("nothing to do")
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sim.provider().set_faults(Faults::default());
    let ended = sim.finished(&op).await;
    assert_eq!(ended.status, OperationStatus::Succeeded, "{ended:?}");
    assert_eq!(done_targets(&ended), ids);
    let all = sim.instances(InstanceQuery::default()).await;
    assert!(all.iter().all(|i| i.state == InstanceState::Stopped));
}

#[tokio::test]
async fn a_failure_in_one_region_fails_only_that_regions_targets() {
    let sim = Sim::start("regions = [\"sim-1\", \"sim-2\"]").await;
    let mut in_region = BTreeMap::new();
    for region in ["sim-1", "sim-2"] {
        let request = serde_json::from_value(json!({"count": 2, "region": region})).unwrap();
        let Launch::Started(op) = sim
            .core
            .create_instances(&sim.admin, ENV, &request, None)
            .await
            .unwrap()
        else {
            panic!("not a dry run")
        };
        let op = sim.finished(&op).await;
        in_region.insert(region, done_targets(&op));
    }
    // Refused for good: a passing error would be tried again until it passed.
    sim.provider().set_faults(Faults {
        deny_rate: 1.0,
        actions: vec!["StopInstances".into()],
        regions: vec!["sim-2".into()],
        ..Faults::default()
    });
    let op = sim.bulk(BulkAction::Stop, json!({"stage": "dev"})).await;
    assert_eq!(op.status, OperationStatus::Failed);
    let error = op.error.clone().unwrap();
    assert_eq!(error.code, "partially_failed", "{error:?}");
    for result in &op.results {
        let expected = if in_region["sim-1"].contains(&result.target) {
            TargetOutcome::Done
        } else {
            TargetOutcome::Failed
        };
        assert_eq!(result.outcome, expected, "{result:?}");
    }
    for instance in sim.instances(InstanceQuery::default()).await {
        let expected = if instance.region == "sim-1" {
            InstanceState::Stopped
        } else {
            InstanceState::Running
        };
        assert_eq!(instance.state, expected, "{}", instance.id);
    }
}

#[tokio::test]
async fn a_fleet_of_ten_thousand_is_listed_filtered_and_paged() {
    let sim = Sim::start("instances = 10000").await;
    let mut prod = 0;
    let mut page_token = None;
    loop {
        let query = InstanceQuery {
            stage: Some("prod".into()),
            limit: 1000,
            page_token,
            ..InstanceQuery::default()
        };
        let page = sim.core.instances(&sim.admin, ENV, query).await.unwrap();
        assert!(page
            .items
            .iter()
            .all(|i| i.stage.as_deref() == Some("prod")));
        prod += page.items.len();
        page_token = page.next_page_token;
        if page_token.is_none() {
            break;
        }
    }
    assert!((3333..=3334).contains(&prod), "{prod}");
    let named = InstanceQuery {
        name: Some("sim-00042".into()),
        ..InstanceQuery::default()
    };
    assert_eq!(sim.instances(named).await.len(), 1);
}

#[tokio::test]
async fn a_server_that_finds_its_admin_secret_already_recorded_starts_on_it() {
    // What the second of two servers bootstrapping one store together meets: the store
    // was empty when it looked, and the other server recorded the same secret since.
    let sim = Sim::start("").await;
    let bootstrap = sim
        .core
        .record_admin(ADMIN, Bootstrap::FromEnvironment)
        .await
        .unwrap();
    assert_eq!(bootstrap, Bootstrap::Existing);
    let tokens = sim.core.tokens(&sim.admin).await.unwrap();
    assert_eq!(tokens.len(), 1, "the admin secret is recorded once");
    assert_eq!(sim.core.authenticate(ADMIN).await.unwrap(), sim.admin);
}

#[tokio::test]
async fn the_data_dir_and_the_store_are_private_to_the_server_user() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fresh/data");
    let mut config = Config {
        data_dir: Some(data.clone()),
        ..Config::default()
    };
    config.fill_defaults();
    let (core, _) = Core::open(config, &ProviderFactories::new(), Some(ADMIN.into()))
        .await
        .unwrap();
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "the data dir");
    assert_eq!(mode(&data.join("overcast.db")), 0o600, "the store");
    // SQLite gives its write-ahead log the store file's mode.
    let wal = data.join("overcast.db-wal");
    if wal.exists() {
        assert_eq!(mode(&wal), 0o600, "the store's log");
    }
    core.close().await;
}

#[tokio::test]
async fn another_orgs_image_key_pair_and_groups_named_in_a_body_answer_404() {
    let sim = Sim::start("").await;
    let core = &sim.core;
    let mut operators = Vec::new();
    for org in ["acme", "other"] {
        let request = serde_json::from_value(json!({"org": org, "role": "operator"})).unwrap();
        let (op, secret) = core.create_token(&sim.admin, &request, None).await.unwrap();
        sim.finished(&op).await;
        operators.push(core.authenticate(&secret.unwrap()).await.unwrap());
    }
    let (acme, other) = (&operators[0], &operators[1]);
    let launch = |principal: &Principal, body: serde_json::Value| {
        let request = serde_json::from_value(body).unwrap();
        let principal = principal.clone();
        async move { core.create_instances(&principal, ENV, &request, None).await }
    };
    let Launch::Started(op) = launch(other, json!({"count": 1})).await.unwrap() else {
        panic!("not a dry run")
    };
    let theirs = sim.finished(&op).await.results[0].target.clone();
    let group =
        serde_json::from_value(json!({"name": "private", "description": "theirs"})).unwrap();
    let group = core
        .create_security_group(other, ENV, &group, None)
        .await
        .unwrap();
    let group = sim.finished(&group).await.results[0].target.clone();
    let key = serde_json::from_value(
        json!({"name": "theirs", "public_key": "ssh-rsa AAAAB3NzaC1yc2E= x"}),
    )
    .unwrap();
    sim.finished(&core.create_key_pair(other, ENV, &key, None).await.unwrap())
        .await;
    let image =
        serde_json::from_value(json!({"instance_id": theirs, "name": "their-image"})).unwrap();
    let image = core.create_image(other, ENV, &image, None).await.unwrap();
    let image = sim.finished(&image).await.results[0].target.clone();

    for (body, field) in [
        (json!({"image": image}), "image"),
        (json!({"key_pair": "theirs"}), "key_pair"),
        (json!({"security_groups": [group]}), "security_groups[0]"),
    ] {
        let Err(e) = launch(acme, body.clone()).await else {
            panic!("{body} was let through")
        };
        assert_eq!(
            (e.kind, e.field.as_deref()),
            (ErrorKind::NotFound, Some(field)),
            "{e}"
        );
        // Their own org may use them.
        if let Err(e) = launch(other, body.clone()).await {
            panic!("{body} refused to its own org: {e}");
        }
    }
    let Launch::Started(op) = launch(acme, json!({"count": 1})).await.unwrap() else {
        panic!("not a dry run")
    };
    let mine = sim.finished(&op).await.results[0].target.clone();
    let modify = serde_json::from_value(json!({"security_groups": [group]})).unwrap();
    let e = core
        .modify_instance(acme, ENV, &mine, &modify, None)
        .await
        .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("security_groups[0]"));
    let my_group = serde_json::from_value(json!({"name": "mine", "description": "mine"})).unwrap();
    let my_group = core
        .create_security_group(acme, ENV, &my_group, None)
        .await
        .unwrap();
    let my_group = sim.finished(&my_group).await.results[0].target.clone();
    let rule = serde_json::from_value(
        json!({"direction": "ingress", "protocol": "tcp", "from_port": 22, "to_port": 22, "source_group": group}),
    )
    .unwrap();
    let e = core
        .change_rule(acme, ENV, &my_group, RuleChange::Add(rule), None)
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind, e.field.as_deref()),
        (ErrorKind::NotFound, Some("source_group"))
    );
}

#[tokio::test]
async fn a_failed_look_while_waiting_does_not_fail_work_that_succeeded() {
    let sim = Sim::start("stopping_secs = 1").await;
    sim.launch(3, "dev").await;
    let request: BulkRequest = serde_json::from_value(json!({"stage": "dev"})).unwrap();
    let BulkOutcome::Started(op) = sim
        .core
        .bulk(&sim.admin, ENV, BulkAction::Stop, &request, None)
        .await
        .unwrap()
    else {
        panic!("three to stop")
    };
    // Every look at the instances fails for a while, then the backend answers again.
    sim.provider().set_faults(Faults {
        error_rate: 1.0,
        actions: vec!["DescribeInstances".into()],
        ..Faults::default()
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sim.provider().set_faults(Faults::default());
    let ended = sim.finished(&op).await;
    assert_eq!(ended.status, OperationStatus::Succeeded, "{ended:?}");
    assert_eq!(done_targets(&ended).len(), 3);
    let all = sim.instances(InstanceQuery::default()).await;
    assert!(all.iter().all(|i| i.state == InstanceState::Stopped));
}

#[tokio::test]
async fn a_bulk_action_retried_with_its_key_after_success_answers_the_same_operation() {
    let sim = Sim::start("").await;
    sim.launch(2, "dev").await;
    let request: BulkRequest = serde_json::from_value(json!({"stage": "dev"})).unwrap();
    let key = crate::app::Idempotency {
        key: "stop-dev-once".into(),
        request_hash: "hash-of-the-request".into(),
    };
    let run = || {
        sim.core
            .bulk(&sim.admin, ENV, BulkAction::Stop, &request, Some(&key))
    };
    let BulkOutcome::Started(first) = run().await.unwrap() else {
        panic!("two to stop")
    };
    let first = sim.finished(&first).await;
    assert_eq!(first.status, OperationStatus::Succeeded);
    // Planned again now, there would be nothing to stop; the key answers the original.
    let BulkOutcome::Started(again) = run().await.unwrap() else {
        panic!("a retry with the key must answer the original operation")
    };
    assert_eq!(again.id, first.id);
    let other = crate::app::Idempotency {
        request_hash: "another-request".into(),
        ..key.clone()
    };
    let e = sim
        .core
        .bulk(&sim.admin, ENV, BulkAction::Stop, &request, Some(&other))
        .await
        .unwrap_err();
    assert_eq!(e.code, "idempotency_key_reused");
}

#[tokio::test]
async fn a_secret_create_run_again_without_its_value_fails_clearly_and_writes_nothing() {
    // As a run resumed after a crash: the value was in the first server's memory only.
    let sim = Sim::start("").await;
    sim.provider().set_faults(Faults {
        deny_rate: 1.0,
        actions: vec!["CreateSecret".into()],
        ..Faults::default()
    });
    let request = serde_json::from_value(json!({"name": "db", "value": "hunter2-crash"})).unwrap();
    let op = sim
        .core
        .create_secret(&sim.admin, ENV, &request, None)
        .await
        .unwrap();
    let first = sim.finished(&op).await;
    assert_eq!(first.status, OperationStatus::Failed, "{first:?}");
    sim.provider().set_faults(Faults::default());
    let error = run_again(&sim.core, &op.id).await.unwrap_err();
    assert_eq!(error.code, "value_lost", "{error:?}");
    assert!(
        error.message.contains("send the request again"),
        "{error:?}"
    );
    let secrets = sim.provider();
    let secrets = overcast_provider::Provider::secrets(secrets.as_ref()).unwrap();
    assert!(secrets.secret("sim-1", "db").await.unwrap().is_none());
    let stored = serde_json::to_string(&sim.core.store.operation(&op.id).await.unwrap()).unwrap();
    assert!(
        !stored.contains("hunter2"),
        "the record holds no value: {stored}"
    );
}

/// Waits for a change to succeed, then runs it once more from its start, as after a crash
/// before anything was recorded: the second run must find what the first one did.
async fn succeeds_and_repeats(sim: &Sim, op: &Operation) -> Operation {
    let first = sim.finished(op).await;
    assert_eq!(first.status, OperationStatus::Succeeded, "{first:?}");
    let again = run_again(&sim.core, &op.id)
        .await
        .unwrap_or_else(|e| panic!("{} repeated: {e}", op.kind));
    assert_eq!(done_targets(&again), done_targets(&first), "{}", op.kind);
    first
}

fn is_404<T: std::fmt::Debug>(result: Result<T, Error>) {
    let error = result.unwrap_err();
    assert_eq!(error.kind, ErrorKind::NotFound, "{error}");
}

#[tokio::test]
async fn container_services_go_from_cluster_to_deletion_each_change_done_once() {
    let sim = Sim::start("").await;
    let (principal, core) = (&sim.admin, &sim.core);
    let cluster = serde_json::from_value(json!({"name": "main", "tags": {"team": "web"}})).unwrap();
    let op = core
        .create_cluster(principal, ENV, &cluster, None)
        .await
        .unwrap();
    assert_eq!(
        done_targets(&succeeds_and_repeats(&sim, &op).await),
        ["main"]
    );
    assert_eq!(core.clusters(principal, ENV, None).await.unwrap().len(), 1);

    let definition = serde_json::from_value(json!({
        "family": "web",
        "containers": [{"name": "web", "image": "nginx:alpine", "ports": [{"container_port": 80}]}]
    }))
    .unwrap();
    let register = || core.register_task_definition(principal, ENV, &definition, None);
    let op = register().await.unwrap();
    assert_eq!(
        done_targets(&succeeds_and_repeats(&sim, &op).await),
        ["web:1"]
    );
    let revisions = core
        .task_definitions(principal, ENV, None, Some("web"))
        .await
        .unwrap();
    assert_eq!(revisions.len(), 1, "registered once");
    assert_eq!(revisions[0].org.as_deref(), Some(principal.org.as_str()));

    let request = serde_json::from_value(
        json!({"name": "api", "task_definition": "web", "desired_count": 2}),
    )
    .unwrap();
    let op = core
        .create_container_service(principal, ENV, "main", &request, None)
        .await
        .unwrap();
    succeeds_and_repeats(&sim, &op).await;
    let api = core
        .container_service(principal, ENV, None, "main", "api")
        .await
        .unwrap();
    assert_eq!(
        (
            api.task_definition.as_str(),
            api.desired_count,
            api.running_count
        ),
        ("web:1", 2, 2)
    );
    assert_eq!(
        api.events[0].message,
        "(service api) has reached a steady state."
    );
    let services = core
        .container_services(principal, ENV, None, "main", false)
        .await
        .unwrap()
        .items;
    assert_eq!(services.len(), 1, "made once");
    let counted = core.cluster(principal, ENV, None, "main").await.unwrap();
    assert_eq!((counted.active_services, counted.running_tasks), (1, 2));

    let scale = serde_json::from_value(json!({"desired_count": 3})).unwrap();
    let op = core
        .update_container_service(principal, ENV, None, "main", "api", &scale, None)
        .await
        .unwrap();
    succeeds_and_repeats(&sim, &op).await;
    let op = register().await.unwrap();
    assert_eq!(done_targets(&sim.finished(&op).await), ["web:2"]);
    let roll = serde_json::from_value(json!({"task_definition": "web:2"})).unwrap();
    let op = core
        .update_container_service(principal, ENV, None, "main", "api", &roll, None)
        .await
        .unwrap();
    succeeds_and_repeats(&sim, &op).await;
    let api = core
        .container_service(principal, ENV, None, "main", "api")
        .await
        .unwrap();
    assert_eq!((api.desired_count, api.running_count), (3, 3));
    // With no pending or stopping time the rollout is over at once, and was made once.
    let deployments: Vec<_> = api
        .deployments
        .iter()
        .map(|d| (d.task_definition.as_str(), d.rollout_state.as_deref()))
        .collect();
    assert_eq!(deployments, [("web:2", Some("COMPLETED"))]);

    let run = serde_json::from_value(json!({
        "task_definition": "web:2",
        "overrides": {"web": {"command": ["./migrate"]}}
    }))
    .unwrap();
    let op = core
        .run_container_task(principal, ENV, "main", &run, None)
        .await
        .unwrap();
    let id = done_targets(&succeeds_and_repeats(&sim, &op).await).remove(0);
    let task = core
        .container_task(principal, ENV, None, "main", &id)
        .await
        .unwrap();
    assert_eq!((task.last_status.as_str(), task.service), ("RUNNING", None));
    let of_web = TaskFilter {
        family: Some("web".into()),
        ..TaskFilter::default()
    };
    let running = core
        .container_tasks(principal, ENV, None, "main", &of_web)
        .await
        .unwrap();
    assert_eq!(running.len(), 4, "the service's three, and one run once");
    let op = core
        .stop_container_task(principal, ENV, None, "main", &id, None)
        .await
        .unwrap();
    succeeds_and_repeats(&sim, &op).await;
    let task = core
        .container_task(principal, ENV, None, "main", &id)
        .await
        .unwrap();
    assert_eq!(task.last_status, "STOPPED");
    assert_eq!(
        task.stopped_reason.as_deref(),
        Some("stopped through overcast")
    );

    let op = core
        .delete_container_service(principal, ENV, None, "main", "api", true, None)
        .await
        .unwrap();
    let deleted = succeeds_and_repeats(&sim, &op).await;
    let detail = deleted.results[0].detail.clone().unwrap();
    assert_eq!(detail["deregistered"], json!(["web:1", "web:2"]));
    is_404(
        core.container_service(principal, ENV, None, "main", "api")
            .await,
    );
    let revisions = core
        .task_definitions(principal, ENV, None, Some("web"))
        .await
        .unwrap();
    assert!(revisions.is_empty(), "{revisions:?}");
    let left = core
        .container_tasks(principal, ENV, None, "main", &TaskFilter::default())
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");

    let op = core
        .delete_cluster(principal, ENV, None, "main", false, None)
        .await
        .unwrap();
    succeeds_and_repeats(&sim, &op).await;
    is_404(core.cluster(principal, ENV, None, "main").await);
    assert!(core
        .clusters(principal, ENV, None)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_cluster_with_a_service_refuses_a_plain_delete_and_other_orgs_see_none_of_it() {
    let sim = Sim::start("").await;
    let core = &sim.core;
    let mut operators = Vec::new();
    for org in ["acme", "other"] {
        let request = serde_json::from_value(json!({"org": org, "role": "operator"})).unwrap();
        let (op, secret) = core.create_token(&sim.admin, &request, None).await.unwrap();
        sim.finished(&op).await;
        operators.push(core.authenticate(&secret.unwrap()).await.unwrap());
    }
    let (acme, other) = (&operators[0], &operators[1]);
    let cluster = serde_json::from_value(json!({"name": "shop"})).unwrap();
    sim.finished(
        &core
            .create_cluster(acme, ENV, &cluster, None)
            .await
            .unwrap(),
    )
    .await;
    let definition = serde_json::from_value(json!({
        "family": "shop",
        "containers": [{"name": "web", "image": "nginx:alpine"}]
    }))
    .unwrap();
    sim.finished(
        &core
            .register_task_definition(acme, ENV, &definition, None)
            .await
            .unwrap(),
    )
    .await;
    let service =
        serde_json::from_value(json!({"name": "api", "task_definition": "shop"})).unwrap();
    let op = core
        .create_container_service(acme, ENV, "shop", &service, None)
        .await
        .unwrap();
    assert_eq!(sim.finished(&op).await.status, OperationStatus::Succeeded);
    let run = serde_json::from_value(json!({"task_definition": "shop"})).unwrap();
    let op = core
        .run_container_task(acme, ENV, "shop", &run, None)
        .await
        .unwrap();
    let task = done_targets(&sim.finished(&op).await).remove(0);
    // The run carries its org; acme sees it.
    core.container_task(acme, ENV, None, "shop", &task)
        .await
        .unwrap();
    // So do the tasks the service started: they carry the service's tags.
    let of_service = TaskFilter {
        service: Some("api".into()),
        ..TaskFilter::default()
    };
    let service_tasks = core
        .container_tasks(acme, ENV, None, "shop", &of_service)
        .await
        .unwrap();
    assert_eq!(service_tasks.len(), 1, "acme sees its service's task");

    assert!(core.clusters(other, ENV, None).await.unwrap().is_empty());
    assert!(core
        .task_definitions(other, ENV, None, None)
        .await
        .unwrap()
        .is_empty());
    is_404(core.cluster(other, ENV, None, "shop").await);
    is_404(core.task_definition(other, ENV, None, "shop").await);
    is_404(
        core.container_services(other, ENV, None, "shop", false)
            .await,
    );
    is_404(
        core.container_service(other, ENV, None, "shop", "api")
            .await,
    );
    is_404(
        core.container_tasks(other, ENV, None, "shop", &TaskFilter::default())
            .await,
    );
    is_404(core.container_task(other, ENV, None, "shop", &task).await);
    is_404(
        core.create_container_service(other, ENV, "shop", &service, None)
            .await,
    );
    is_404(
        core.run_container_task(other, ENV, "shop", &run, None)
            .await,
    );
    is_404(
        core.stop_container_task(other, ENV, None, "shop", &task, None)
            .await,
    );
    is_404(
        core.delete_container_service(other, ENV, None, "shop", "api", true, None)
            .await,
    );
    is_404(
        core.delete_cluster(other, ENV, None, "shop", true, None)
            .await,
    );

    let busy = core
        .delete_cluster(acme, ENV, None, "shop", false, None)
        .await
        .unwrap_err();
    assert_eq!(
        (busy.kind, busy.code.as_str()),
        (ErrorKind::Conflict, "cluster_in_use")
    );
    assert_eq!(
        core.container_service(acme, ENV, None, "shop", "api")
            .await
            .unwrap()
            .running_count,
        1,
        "the refused delete touched nothing"
    );
    let op = core
        .delete_cluster(acme, ENV, None, "shop", true, None)
        .await
        .unwrap();
    let deleted = sim.finished(&op).await;
    assert_eq!(deleted.status, OperationStatus::Succeeded, "{deleted:?}");
    is_404(core.cluster(acme, ENV, None, "shop").await);
}

#[tokio::test]
async fn container_creates_whose_answers_are_lost_make_one_thing_each() {
    // A backend that ignores client tokens and loses every create's answer after acting:
    // only the operation's tag keeps a retry from making each thing twice.
    let sim = Sim::start("ignore_client_token = true").await;
    let (principal, core) = (&sim.admin, &sim.core);
    sim.provider().set_faults(Faults {
        act_then_fail_rate: 1.0,
        actions: [
            "CreateCluster",
            "RegisterTaskDefinition",
            "CreateService",
            "RunTask",
        ]
        .map(String::from)
        .to_vec(),
        ..Faults::default()
    });
    let cluster = serde_json::from_value(json!({"name": "main"})).unwrap();
    let definition = serde_json::from_value(json!({
        "family": "web",
        "containers": [{"name": "web", "image": "nginx:alpine"}]
    }))
    .unwrap();
    let service = serde_json::from_value(json!({"name": "api", "task_definition": "web"})).unwrap();
    let run = serde_json::from_value(json!({"task_definition": "web", "count": 2})).unwrap();
    let made = [
        core.create_cluster(principal, ENV, &cluster, None).await,
        core.register_task_definition(principal, ENV, &definition, None)
            .await,
    ];
    for op in made {
        let op = sim.finished(&op.unwrap()).await;
        assert_eq!(op.status, OperationStatus::Succeeded, "{op:?}");
    }
    let op = core
        .create_container_service(principal, ENV, "main", &service, None)
        .await
        .unwrap();
    assert_eq!(sim.finished(&op).await.status, OperationStatus::Succeeded);
    let op = core
        .run_container_task(principal, ENV, "main", &run, None)
        .await
        .unwrap();
    let ran = sim.finished(&op).await;
    assert_eq!(ran.status, OperationStatus::Succeeded, "{ran:?}");
    sim.provider().set_faults(Faults::default());

    assert_eq!(core.clusters(principal, ENV, None).await.unwrap().len(), 1);
    let revisions = core
        .task_definitions(principal, ENV, None, None)
        .await
        .unwrap();
    assert_eq!(revisions.len(), 1);
    let services = core
        .container_services(principal, ENV, None, "main", false)
        .await
        .unwrap()
        .items;
    assert_eq!(services.len(), 1);
    let all = core
        .container_tasks(principal, ENV, None, "main", &TaskFilter::default())
        .await
        .unwrap();
    let mut run_tasks: Vec<String> = all
        .into_iter()
        .filter(|t| t.service.is_none())
        .map(|t| t.id)
        .collect();
    run_tasks.sort();
    assert_eq!(run_tasks, done_targets(&ran), "exactly the tasks asked for");
}

#[tokio::test]
async fn a_recursive_cluster_delete_waits_for_its_tasks_to_stop() {
    // Tasks take a while to stop, as Fargate's do; the cluster is refused until they have.
    let sim = Sim::start("stopping_secs = 1.5").await;
    let core = &sim.core;
    let cluster = serde_json::from_value(json!({"name": "batch"})).unwrap();
    sim.finished(
        &core
            .create_cluster(&sim.admin, ENV, &cluster, None)
            .await
            .unwrap(),
    )
    .await;
    let definition = serde_json::from_value(json!({
        "family": "job",
        "containers": [{"name": "run", "image": "busybox"}]
    }))
    .unwrap();
    sim.finished(
        &core
            .register_task_definition(&sim.admin, ENV, &definition, None)
            .await
            .unwrap(),
    )
    .await;
    let run = serde_json::from_value(json!({"task_definition": "job", "count": 2})).unwrap();
    sim.finished(
        &core
            .run_container_task(&sim.admin, ENV, "batch", &run, None)
            .await
            .unwrap(),
    )
    .await;
    let op = core
        .delete_cluster(&sim.admin, ENV, None, "batch", true, None)
        .await
        .unwrap();
    let done = sim.finished(&op).await;
    assert_eq!(done.status, OperationStatus::Succeeded, "{done:?}");
    is_404(core.cluster(&sim.admin, ENV, None, "batch").await);
}

#[tokio::test]
async fn a_one_call_service_is_made_once_and_a_failed_step_undoes_what_it_made() {
    let sim = Sim::start("").await;
    let (principal, core) = (&sim.admin, &sim.core);
    let request = serde_json::from_value(json!({
        "cluster": {"name": "shop"},
        "task_definition": {"family": "shop", "containers": [{
            "name": "web", "image": "nginx:alpine",
            "log": {"group": "/shop", "stream_prefix": "web"},
        }]},
        "registry": {"namespace": overcast_provider_sim::SIM_NAMESPACE, "name": "api"},
        "service": {"name": "api", "desired_count": 1},
    }))
    .unwrap();
    let op = core
        .create_container_stack(principal, ENV, &request, None)
        .await
        .unwrap();
    // Run again from the start, as after a crash: every step finds what it made.
    let done = succeeds_and_repeats(&sim, &op).await;
    assert_eq!(
        done_targets(&done),
        ["cluster", "registry", "service", "task_definition"]
    );
    assert_eq!(core.clusters(principal, ENV, None).await.unwrap().len(), 1);
    let revisions = core
        .task_definitions(principal, ENV, None, Some("shop"))
        .await
        .unwrap();
    assert_eq!(revisions.len(), 1, "registered once");
    let services = core
        .container_services(principal, ENV, None, "shop", false)
        .await
        .unwrap()
        .items;
    assert_eq!(services.len(), 1);
    assert_eq!(services[0].task_definition, "shop:1");
    assert_eq!(
        services[0].registries.len(),
        1,
        "registered in the new registry"
    );
    let definition = &revisions[0];
    assert!(
        definition.execution_role.is_some(),
        "the role its logs need"
    );

    // A recursive delete takes away the revision, its log group and the registry.
    let op = core
        .delete_container_service(principal, ENV, None, "shop", "api", true, None)
        .await
        .unwrap();
    let deleted = sim.finished(&op).await;
    assert_eq!(deleted.status, OperationStatus::Succeeded, "{deleted:?}");
    let taken = deleted.results[0].detail.clone().unwrap();
    assert_eq!(taken["deregistered"], json!(["shop:1"]));
    assert_eq!(taken["log_groups"], json!(["/shop"]));
    assert_eq!(taken["registries"].as_array().unwrap().len(), 1);
    assert!(core
        .registries(principal, ENV, None, None)
        .await
        .unwrap()
        .is_empty());

    // The sim takes no subnets: the service step fails, and the rest is undone.
    let failing = serde_json::from_value(json!({
        "cluster": {"name": "doomed"},
        "task_definition": {"family": "doomed", "containers": [{"name": "web", "image": "nginx:alpine"}]},
        "service": {"name": "api", "subnets": ["subnet-0123"]},
    }))
    .unwrap();
    let op = core
        .create_container_stack(principal, ENV, &failing, None)
        .await
        .unwrap();
    let ended = sim.finished(&op).await;
    assert_eq!(ended.status, OperationStatus::Failed, "{ended:?}");
    let outcomes: Vec<(&str, TargetOutcome)> = ended
        .results
        .iter()
        .map(|r| (r.target.as_str(), r.outcome))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("cluster", TargetOutcome::Done),
            ("task_definition", TargetOutcome::Done),
            ("rollback", TargetOutcome::Failed),
            ("undo:task_definition", TargetOutcome::Done),
            ("undo:cluster", TargetOutcome::Done),
        ]
    );
    is_404(core.cluster(principal, ENV, None, "doomed").await);
    assert!(core
        .task_definitions(principal, ENV, None, Some("doomed"))
        .await
        .unwrap()
        .is_empty());
    // Run again from the start, as after a crash: it fails the same way and leaves nothing.
    assert!(run_again(core, &op.id).await.is_err());
    is_404(core.cluster(principal, ENV, None, "doomed").await);
}
