//! Benchmark: `overcast vm list --all` over 1,000 instances in moto against the smallest
//! direct SDK listing of the same instances (DescribeInstances, following its pages), in
//! the same run on the same machine. Prints wall times (median of several runs) and their
//! ratio. Needs OVERCAST_TEST_MOTO (scripts/test installs moto; see scripts/bench).

use overcast_test_utils::moto::{some_image, REGIONS};
use overcast_test_utils::process::cli;
use overcast_test_utils::TestServer;
use std::time::{Duration, Instant};

const INSTANCES: usize = 1000;
const RUNS: usize = 5;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[tokio::main]
async fn main() {
    let server = TestServer::aws().await;
    let ec2 = server.ec2(REGIONS[0]).await;
    let image = some_image(&ec2).await;
    // Seed with direct calls, tagged as overcast would tag them.
    for _ in 0..INSTANCES / 250 {
        ec2.run_instances()
            .image_id(&image)
            .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
            .min_count(250)
            .max_count(250)
            .tag_specifications(
                aws_sdk_ec2::types::TagSpecification::builder()
                    .resource_type(aws_sdk_ec2::types::ResourceType::Instance)
                    .tags(
                        aws_sdk_ec2::types::Tag::builder()
                            .key("overcast:org")
                            .value("admin")
                            .build(),
                    )
                    .tags(
                        aws_sdk_ec2::types::Tag::builder()
                            .key("stage")
                            .value("dev")
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .expect("seeding moto");
    }

    let mut direct = Vec::new();
    let mut direct_count = 0;
    for _ in 0..RUNS {
        let started = Instant::now();
        let mut count = 0;
        for region in REGIONS {
            let client = server.ec2(region).await;
            let mut pages = client
                .describe_instances()
                .max_results(1000)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                count += page
                    .unwrap()
                    .reservations()
                    .iter()
                    .map(|r| r.instances().len())
                    .sum::<usize>();
            }
        }
        direct.push(started.elapsed());
        direct_count = count;
    }

    let bin = env!("CARGO_BIN_EXE_overcast");
    let mut through_overcast = Vec::new();
    let mut listed = 0;
    for _ in 0..RUNS {
        let url = server.base.clone();
        let started = Instant::now();
        let (code, out, err) = tokio::task::spawn_blocking(move || {
            cli(
                bin,
                &url,
                &[
                    "-o", "json", "vm", "list", "-e", "aws-test", "--all", "--limit", "500",
                ],
            )
        })
        .await
        .unwrap();
        through_overcast.push(started.elapsed());
        assert_eq!(code, 0, "{err}");
        let page: serde_json::Value = serde_json::from_str(&out).unwrap();
        listed = page["items"].as_array().unwrap().len();
    }
    assert_eq!((listed, direct_count), (INSTANCES, INSTANCES));

    let (d, o) = (median(direct), median(through_overcast));
    println!(
        "vm list over {INSTANCES} instances in moto ({} regions), median of {RUNS} runs:",
        REGIONS.len()
    );
    println!(
        "  direct SDK (DescribeInstances, paged): {:>8.1} ms",
        d.as_secs_f64() * 1000.0
    );
    println!(
        "  overcast vm list --all (CLI process):  {:>8.1} ms",
        o.as_secs_f64() * 1000.0
    );
    println!(
        "  ratio overcast / direct:               {:>8.2}",
        o.as_secs_f64() / d.as_secs_f64()
    );
}
