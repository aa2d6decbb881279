//! Benchmark: local VMs under this host's accelerator (TCG where KVM cannot work). Creates
//! a VM from the test image five times, one after another, and prints create → running
//! (the operation ends with QEMU running the guest) and create → user data ran (its marker
//! on the serial console), each and their medians. Needs OVERCAST_TEST_IMAGE (made by
//! `scripts/test-image.py`). `cargo bench -p overcast --bench local_vm`.

#[path = "../tests/support/mod.rs"]
mod support;

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::process::{serve, write_local_config};
use support::ADMIN;

const RUNS: usize = 5;
const LOCAL: &str = "/v1/environments/local";

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let image_dir = std::path::PathBuf::from(
        std::env::var_os("OVERCAST_TEST_IMAGE").expect("OVERCAST_TEST_IMAGE names the test image"),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = write_local_config(dir.path());
    let served = serve(&config);
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: String, body: Option<Value>| {
        let mut request = http
            .request(method, format!("{}{path}", served.url))
            .bearer_auth(ADMIN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let environment = call(reqwest::Method::GET, LOCAL.into(), None).await;
    let import = json!({
        "name": "bench-kernel",
        "kernel_url": format!("file://{}", image_dir.join("vmlinuz").display()),
        "initrd_url": format!("file://{}", image_dir.join("initrd.img").display()),
        "cmdline": "console=ttyS0 quiet panic=-1",
    });
    let op = call(
        reqwest::Method::POST,
        format!("{LOCAL}/images/import?timeout=120"),
        Some(import),
    )
    .await;
    let image = op["results"][0]["target"].as_str().unwrap().to_string();
    println!(
        "local VMs, accelerator {}, machine type tiny, {RUNS} runs",
        environment["details"]["accelerator"]
    );
    let (mut running, mut ran) = (Vec::new(), Vec::new());
    for run in 1..=RUNS {
        let body = json!({
            "machine_type": "tiny", "image": image, "name": format!("bench-{run}"),
            "user_data": "#!/bin/sh\necho BENCH-USER-DATA-RAN\n",
        });
        let started = Instant::now();
        let op = call(
            reqwest::Method::POST,
            format!("{LOCAL}/instances?timeout=120"),
            Some(body),
        )
        .await;
        assert_eq!(op["status"], "succeeded", "{op}");
        let to_running = started.elapsed().as_secs_f64();
        let id = op["results"][0]["target"].as_str().unwrap().to_string();
        loop {
            let console = call(
                reqwest::Method::GET,
                format!("{LOCAL}/instances/{id}/console"),
                None,
            )
            .await;
            if console["output"]
                .as_str()
                .unwrap_or_default()
                .contains("BENCH-USER-DATA-RAN")
            {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(120), "no user data");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let to_ran = started.elapsed().as_secs_f64();
        println!("run {run}: create -> running {to_running:5.2} s, create -> user data ran {to_ran:5.2} s");
        running.push(to_running);
        ran.push(to_ran);
        call(
            reqwest::Method::POST,
            format!("{LOCAL}/instances/{id}/terminate?timeout=60"),
            Some(json!({})),
        )
        .await;
    }
    println!(
        "median: create -> running {:.2} s, create -> user data ran {:.2} s",
        median(running),
        median(ran)
    );
}
