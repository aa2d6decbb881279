//! Benchmark: the console's fleet page at 10,000 simulated instances, served by a release
//! `overcast serve` process and drawn by headless Chromium. Side by side in one run: the
//! two API requests the page makes, timed from a plain HTTP client (the direct
//! alternative: a script against `/v1`), and the page itself, from navigation to its table
//! drawn (the `fleet-rendered` mark), over OVERCAST_BENCH_LOADS (default 20) loads. Prints
//! min, median and max of each. Needs OVERCAST_TEST_CHROMIUM and OVERCAST_TEST_CHROMEDRIVER
//! (see scripts/bench).

use overcast_test_utils::browser::Browser;
use overcast_test_utils::process::{serve, write_sim_config};
use overcast_test_utils::ADMIN;
use reqwest::Method;
use serde_json::json;
use std::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_overcast");
const INSTANCES: usize = 10_000;

fn summary(label: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    println!(
        "  {label:<52} min {:>7.1} ms   median {:>7.1} ms   max {:>7.1} ms",
        ms[0],
        ms[ms.len() / 2],
        ms[ms.len() - 1]
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let loads: usize = std::env::var("OVERCAST_BENCH_LOADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let server = serve(BIN, &write_sim_config(dir.path(), INSTANCES));
    let requests = [
        "/v1/environments/fleet/instances?limit=100",
        "/v1/environments/fleet/fleet",
    ];
    // The first read fills the inventory; every figure is a warm read's.
    for path in requests {
        let (status, _) = server.call(Method::GET, path, Some(ADMIN), None).await;
        assert!(status.is_success());
    }
    println!("The fleet page at {INSTANCES} simulated instances (2 regions), {loads} loads:");
    for path in requests {
        let mut ms = Vec::new();
        for _ in 0..loads {
            let started = Instant::now();
            let (status, _) = server.call(Method::GET, path, Some(ADMIN), None).await;
            assert!(status.is_success());
            ms.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        summary(&format!("API: GET {path}"), ms);
    }

    let browser = Browser::start().await;
    browser.sign_in(&server.base, ADMIN).await;
    browser.find("#fleet-table tbody tr").await;
    let mut rendered = Vec::new();
    let mut requests_ms: Vec<Vec<f64>> = vec![Vec::new(), Vec::new()];
    for _ in 0..loads {
        browser.script("location.reload()", json!([])).await;
        browser
            .wait_until(
                "the fleet drawn",
                "performance.getEntriesByName('fleet-rendered').length > 0",
            )
            .await;
        let timing = browser
            .script(
                "const of = (part) => performance.getEntriesByType('resource')
                     .filter(r => new URL(r.name).pathname.endsWith(part))
                     .map(r => r.responseEnd - r.requestStart)[0];
                 return [performance.getEntriesByName('fleet-rendered')[0].startTime,
                         of('/instances'), of('/fleet')];",
                json!([]),
            )
            .await;
        rendered.push(timing[0].as_f64().unwrap());
        for (i, ms) in requests_ms.iter_mut().enumerate() {
            ms.push(timing[i + 1].as_f64().unwrap_or(f64::NAN));
        }
    }
    for (path, ms) in requests.iter().zip(requests_ms) {
        summary(&format!("page: GET {path}"), ms);
    }
    summary("page: navigation to the fleet table drawn", rendered);
}
