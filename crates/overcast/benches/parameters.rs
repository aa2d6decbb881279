//! Benchmark: listing 1,000 parameters under one path through overcast (`param ls`, the
//! CLI process following every page) against the direct SDK loop (DescribeParameters with
//! a Path filter, following its pages), in the same run against moto. Prints the backend
//! calls of each (the floor is one call per page of the backend's largest page: SSM's
//! 50, moto's 10 whatever MaxResults says), and wall times (median of several runs).
//! Needs OVERCAST_TEST_MOTO (see scripts/bench).

use aws_sdk_ssm::types::{ParameterStringFilter, ParameterType};
use overcast_test_utils::metrics::backend_calls;
use overcast_test_utils::moto::REGIONS;
use overcast_test_utils::process::cli;
use overcast_test_utils::TestServer;
use std::time::{Duration, Instant};

const PARAMETERS: usize = 1000;
const RUNS: usize = 5;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[tokio::main]
async fn main() {
    let server = TestServer::aws().await;
    let ssm = server.ssm(REGIONS[0]).await;
    // Seeded directly under the admin org's root, where `param ls /bench` looks.
    for i in 0..PARAMETERS {
        ssm.put_parameter()
            .name(format!("/admin/bench/p{i:04}"))
            .value("v")
            .r#type(ParameterType::String)
            .send()
            .await
            .expect("seeding moto");
    }

    let mut direct = Vec::new();
    let (mut direct_count, mut direct_calls) = (0, 0);
    for _ in 0..RUNS {
        let started = Instant::now();
        let (mut count, mut calls) = (0, 0);
        let mut pages = ssm
            .describe_parameters()
            .parameter_filters(
                ParameterStringFilter::builder()
                    .key("Path")
                    .option("Recursive")
                    .values("/admin/bench")
                    .build()
                    .unwrap(),
            )
            .max_results(50)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            count += page.unwrap().parameters().len();
            calls += 1;
        }
        direct.push(started.elapsed());
        (direct_count, direct_calls) = (count, calls);
    }

    let bin = env!("CARGO_BIN_EXE_overcast");
    let mut through_overcast = Vec::new();
    let mut listed = 0;
    let before = backend_calls(&server.metrics().await, &[("action", "DescribeParameters")]);
    for _ in 0..RUNS {
        let url = server.base.clone();
        let started = Instant::now();
        let (code, out, err) = tokio::task::spawn_blocking(move || {
            cli(
                bin,
                &url,
                &["-o", "json", "param", "ls", "-e", "aws-test", "/bench"],
            )
        })
        .await
        .unwrap();
        through_overcast.push(started.elapsed());
        assert_eq!(code, 0, "{err}");
        let page: serde_json::Value = serde_json::from_str(&out).unwrap();
        listed = page["items"].as_array().unwrap().len();
    }
    let after = backend_calls(&server.metrics().await, &[("action", "DescribeParameters")]);
    assert_eq!((listed, direct_count), (PARAMETERS, PARAMETERS));
    let overcast_calls = (after - before) / RUNS as u64;

    let (d, o) = (median(direct), median(through_overcast));
    println!(
        "param ls over {PARAMETERS} parameters under one path in moto, median of {RUNS} runs:"
    );
    println!(
        "  direct SDK (DescribeParameters, paged): {:>8.1} ms, {direct_calls} calls",
        d.as_secs_f64() * 1000.0
    );
    println!(
        "  overcast param ls (CLI process):        {:>8.1} ms, {overcast_calls} calls",
        o.as_secs_f64() * 1000.0
    );
    println!(
        "  ratio overcast / direct:                {:>8.2}",
        o.as_secs_f64() / d.as_secs_f64()
    );
}
