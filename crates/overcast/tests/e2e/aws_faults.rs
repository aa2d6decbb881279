//! overcast against moto behind a proxy that throttles, resets connections before and
//! after moto acted, and adds latency: a create lands exactly once, bulk actions reach every
//! target, and every operation's record is true to what moto holds.

use aws_sdk_ec2::types::{Filter, InstanceStateName};
use overcast_test_utils::faults::{FaultPlan, FaultProxy};
use overcast_test_utils::metrics::{backend_calls, counter};
use overcast_test_utils::moto::{
    all_in_moto, heavy_use, moto_url, new_account, some_image, REGIONS,
};
use overcast_test_utils::{TestServer, ADMIN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

const ENV: &str = "/v1/environments/aws-test/instances";

/// The faults the issue asks overcast to hold under: 20 % throttled, 5 % of connections
/// reset before moto sees the request and 5 % after moto acted, a little latency.
fn harsh(seed: u64) -> FaultPlan {
    FaultPlan {
        throttle: 0.2,
        reset_before: 0.05,
        reset_after: 0.05,
        latency: Duration::from_millis(5),
        seed,
        ..FaultPlan::default()
    }
}

/// A server whose `aws-test` environment talks to moto through `proxy`.
async fn behind(proxy: &FaultProxy) -> TestServer {
    let url = proxy.url();
    TestServer::aws_with(new_account(), |config| {
        let env = config.environments.get_mut("aws-test").unwrap();
        env.settings.insert("endpoint_url".into(), url.into());
    })
    .await
}

/// Runs a change and answers its operation once it has ended.
async fn finished(server: &TestServer, path: &str, body: Value) -> Value {
    let (status, op) = server
        .call(Method::POST, path, Some(ADMIN), Some(body))
        .await;
    assert!(
        status == StatusCode::OK || status == StatusCode::CREATED,
        "{status}: {op}"
    );
    server.operation_end(op["id"].as_str().unwrap()).await
}

/// The targets of an operation's results with `outcome`.
fn targets(op: &Value, outcome: &str) -> BTreeSet<String> {
    op["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == outcome)
        .map(|r| r["target"].as_str().unwrap().to_string())
        .collect()
}

/// The ids moto holds with the tag `key` = `value` in the client's region.
async fn tagged(ec2: &aws_sdk_ec2::Client, key: &str, value: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let mut pages = ec2
        .describe_instances()
        .filters(
            Filter::builder()
                .name(format!("tag:{key}"))
                .values(value)
                .build(),
        )
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for reservation in page.unwrap().reservations() {
            for instance in reservation.instances() {
                ids.insert(instance.instance_id().unwrap().to_string());
            }
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_throttling_and_resets_creates_land_once_and_bulk_actions_reach_every_target() {
    let _heavy = heavy_use().await;
    // Another seed, to explore or to replay a failure: OVERCAST_TEST_FAULT_SEED=N.
    let seed = std::env::var("OVERCAST_TEST_FAULT_SEED")
        .map(|s| s.parse().expect("OVERCAST_TEST_FAULT_SEED is a number"))
        .unwrap_or(20261129);
    let proxy = FaultProxy::start(moto_url(), harsh(seed)).await;
    let server = behind(&proxy).await;
    let region = REGIONS[0];
    let ec2 = server.ec2(region).await;
    let image = some_image(&ec2).await;

    // A create of 40, then the rest of a fleet of 300.
    let launch = |count: u32| json!({"image": image, "instance_type": "t3.micro", "count": count, "stage": "dev", "region": region});
    let first = finished(&server, ENV, launch(40)).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    let recorded = targets(&first, "done");
    let in_moto = tagged(&ec2, "overcast:operation", first["id"].as_str().unwrap()).await;
    assert_eq!(in_moto.len(), 40, "moto holds exactly the 40 asked for");
    assert_eq!(
        recorded, in_moto,
        "the record names exactly what moto holds"
    );

    // The rest in creates of 20: more launches, more chances for a fault to hit one.
    let mut fleet = recorded;
    for _ in 0..13 {
        let op = finished(&server, ENV, launch(20)).await;
        assert_eq!(op["status"], "succeeded", "{op}");
        let made = tagged(&ec2, "overcast:operation", op["id"].as_str().unwrap()).await;
        assert_eq!((made.len(), &targets(&op, "done")), (20, &made));
        fleet.extend(made);
    }
    let fleet: Vec<String> = fleet.into_iter().collect();
    assert_eq!(fleet.len(), 300);
    assert_eq!(tagged(&ec2, "stage", "dev").await.len(), 300, "no orphans");

    // Bulk stop and start of all 300, three times over (each is a handful of calls at the
    // backend's call floor, so repeating them gives the faults more chances), then promote.
    let mut actions = vec![];
    for _ in 0..3 {
        actions.push(("stop", InstanceStateName::Stopped));
        actions.push(("start", InstanceStateName::Running));
    }
    actions.push(("promote", InstanceStateName::Running));
    for (action, state) in actions {
        let body = json!({"stage": "dev"});
        let op = finished(&server, &format!("{ENV}/{action}"), body).await;
        assert_eq!(op["status"], "succeeded", "{action}: {op}");
        let done: Vec<String> = targets(&op, "done").into_iter().collect();
        assert_eq!(done, fleet, "{action}: every target recorded done");
        let failed = targets(&op, "failed");
        assert!(failed.is_empty(), "{action}: recorded failed: {failed:?}");
        let truth = all_in_moto(&ec2, &fleet).await;
        let wrong: Vec<_> = truth.iter().filter(|i| i.state != state).collect();
        assert!(wrong.is_empty(), "{action}: {} not {state:?}", wrong.len());
    }
    assert_eq!(
        tagged(&ec2, "stage", "test").await.len(),
        300,
        "all promoted"
    );

    let faults = proxy.counts();
    let metrics = server.metrics().await;
    let attempts = counter(&metrics, "overcast_backend_attempts_total", &[]);
    let throttles = counter(&metrics, "overcast_backend_throttles_total", &[]);
    let retries = counter(&metrics, "overcast_backend_retries_total", &[]);
    let calls = backend_calls(&metrics, &[]);
    println!(
        "fault run (seed {seed}): {} requests through the proxy, {} throttled, {} reset before and {} after \
         moto acted; overcast counted {calls} calls, {attempts} attempts, {retries} retries, \
         {throttles} throttles; duplicates 0, targets misreported 0",
        faults.requests, faults.throttled, faults.reset_before, faults.reset_after
    );
    // The faults did strike (the tests below make sure of each kind on its own).
    assert!(faults.throttled > 0 && faults.reset_before + faults.reset_after > 0);
    assert!(
        throttles > 0 && retries > 0 && attempts > calls,
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launch_whose_every_answer_is_lost_after_moto_acted_is_found_not_repeated() {
    // Every RunInstances reaches moto and loses its answer: the worst case of the issue
    // (moto ignores client tokens, so each blind retry launched the count again).
    let proxy = FaultProxy::start(
        moto_url(),
        FaultPlan {
            reset_after: 1.0,
            only_actions: Some(vec!["RunInstances".into()]),
            ..FaultPlan::default()
        },
    )
    .await;
    let server = behind(&proxy).await;
    let ec2 = server.ec2(REGIONS[0]).await;
    let body = json!({"image": some_image(&ec2).await, "instance_type": "t3.micro", "count": 5, "region": REGIONS[0]});
    let op = finished(&server, ENV, body).await;
    assert_eq!(op["status"], "succeeded", "{op}");
    let in_moto = tagged(&ec2, "overcast:operation", op["id"].as_str().unwrap()).await;
    assert_eq!(in_moto.len(), 5, "launched once");
    assert_eq!(targets(&op, "done"), in_moto);
    assert_eq!(proxy.counts().reset_after, 1, "one attempt, never repeated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_stop_whose_answers_are_lost_after_moto_acted_is_recorded_done() {
    // Half the StopInstances calls reach moto and lose their answer; the seed makes the
    // first one of them do so.
    let proxy = FaultProxy::start(moto_url(), FaultPlan::default()).await;
    let server = behind(&proxy).await;
    let ec2 = server.ec2(REGIONS[0]).await;
    let body = json!({"image": some_image(&ec2).await, "instance_type": "t3.micro", "count": 30, "stage": "dev", "region": REGIONS[0]});
    let fleet = targets(&finished(&server, ENV, body).await, "done");
    proxy.set_plan(FaultPlan {
        reset_after: 0.5,
        seed: 3,
        only_actions: Some(vec!["StopInstances".into()]),
        ..FaultPlan::default()
    });
    let op = finished(&server, &format!("{ENV}/stop"), json!({"stage": "dev"})).await;
    assert!(proxy.counts().reset_after > 0, "{:?}", proxy.counts());
    assert_eq!(op["status"], "succeeded", "{op}");
    assert_eq!(targets(&op, "done"), fleet);
    let ids: Vec<String> = fleet.into_iter().collect();
    let truth = all_in_moto(&ec2, &ids).await;
    assert!(truth.iter().all(|i| i.state == InstanceStateName::Stopped));
}
