//! Benchmark: stop, start and promote of one stage (1,000 of 2,000 instances in two regions
//! of moto) through overcast, against the smallest direct sequence of SDK calls doing the
//! same to a same-sized stage (a filtered describe, the action in batches of 1,000, and for
//! stop and start one describe to see the state reached, as overcast does). Prints wall
//! times, their ratio, and the backend calls each made. Needs OVERCAST_TEST_MOTO.

use aws_sdk_ec2::types::{Filter, InstanceType, ResourceType, Tag, TagSpecification};
use futures::future::join_all;
use overcast_test_utils::metrics::backend_calls;
use overcast_test_utils::moto::{some_image, REGIONS};
use overcast_test_utils::{TestServer, ADMIN};
use std::time::{Duration, Instant};

const PER_STAGE_PER_REGION: usize = 500;

/// Every backend call the server has made, from `/metrics`.
async fn server_calls(server: &TestServer) -> u64 {
    backend_calls(&server.metrics().await, &[])
}

async fn through_overcast(server: &TestServer, action: &str) -> (Duration, u64) {
    let before = server_calls(server).await;
    let started = Instant::now();
    let path = format!("/v1/environments/aws-test/instances/{action}?timeout=600");
    let (status, op) = server
        .call(
            reqwest::Method::POST,
            &path,
            Some(ADMIN),
            Some(serde_json::json!({"stage": "dev"})),
        )
        .await;
    let elapsed = started.elapsed();
    assert!(
        status.is_success() && op["status"] == "succeeded",
        "{action}: {op}"
    );
    (elapsed, server_calls(server).await - before)
}

/// The direct sequence for one region; returns the calls it made.
async fn direct_region(server: &TestServer, region: &str, action: &str) -> u64 {
    let ec2 = server.ec2(region).await;
    let mut calls = 0;
    let mut ids = Vec::new();
    let mut pages = ec2
        .describe_instances()
        .filters(Filter::builder().name("tag:stage").values("test").build())
        .max_results(1000)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        calls += 1;
        ids.extend(
            page.unwrap()
                .reservations()
                .iter()
                .flat_map(|r| r.instances())
                .map(|i| i.instance_id().unwrap().to_string()),
        );
    }
    for batch in ids.chunks(1000) {
        calls += 1;
        match action {
            "stop" => drop(
                ec2.stop_instances()
                    .set_instance_ids(Some(batch.to_vec()))
                    .send()
                    .await
                    .unwrap(),
            ),
            "start" => drop(
                ec2.start_instances()
                    .set_instance_ids(Some(batch.to_vec()))
                    .send()
                    .await
                    .unwrap(),
            ),
            _ => drop(
                ec2.create_tags()
                    .set_resources(Some(batch.to_vec()))
                    .tags(Tag::builder().key("stage").value("prod").build())
                    .send()
                    .await
                    .unwrap(),
            ),
        }
        if action != "promote" {
            calls += 1;
            ec2.describe_instances()
                .set_instance_ids(Some(batch.to_vec()))
                .send()
                .await
                .unwrap();
        }
    }
    calls
}

async fn direct(server: &TestServer, action: &str) -> (Duration, u64) {
    let started = Instant::now();
    let calls: u64 = join_all(
        REGIONS
            .iter()
            .map(|region| direct_region(server, region, action)),
    )
    .await
    .into_iter()
    .sum();
    (started.elapsed(), calls)
}

#[tokio::main]
async fn main() {
    let server = TestServer::aws().await;
    for region in REGIONS {
        let ec2 = server.ec2(region).await;
        let image = some_image(&ec2).await;
        for stage in ["dev", "test"] {
            ec2.run_instances()
                .image_id(&image)
                .instance_type(InstanceType::T3Micro)
                .min_count(PER_STAGE_PER_REGION as i32)
                .max_count(PER_STAGE_PER_REGION as i32)
                .tag_specifications(
                    TagSpecification::builder()
                        .resource_type(ResourceType::Instance)
                        .tags(Tag::builder().key("overcast:org").value("admin").build())
                        .tags(Tag::builder().key("stage").value(stage).build())
                        .build(),
                )
                .send()
                .await
                .expect("seeding moto");
        }
    }
    println!(
        "bulk actions on one stage: {} of {} instances in {} regions of moto",
        PER_STAGE_PER_REGION * REGIONS.len(),
        2 * PER_STAGE_PER_REGION * REGIONS.len(),
        REGIONS.len()
    );
    println!(
        "{:<8} {:>13} {:>13} {:>7} {:>15} {:>13}",
        "action", "overcast ms", "direct ms", "ratio", "overcast calls", "direct calls"
    );
    for action in ["stop", "start", "promote"] {
        // Direct first: its promote moves `test` to `prod`, so overcast's promotion of `dev`
        // to `test` leaves the direct side's next stage untouched, and both act on as many.
        let (d, d_calls) = direct(&server, action).await;
        let (o, o_calls) = through_overcast(&server, action).await;
        println!(
            "{action:<8} {:>13.1} {:>13.1} {:>7.2} {:>15} {:>13}",
            o.as_secs_f64() * 1000.0,
            d.as_secs_f64() * 1000.0,
            o.as_secs_f64() / d.as_secs_f64(),
            o_calls,
            d_calls
        );
    }
}
