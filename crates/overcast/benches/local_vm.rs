//! Benchmark: local VMs under this host's accelerator (TCG where KVM cannot work). Creates
//! a VM from the test image five times, one after another, and prints create → running
//! (the operation ends with QEMU running the guest) and create → user data ran (its marker
//! on the serial console), each and their medians. Needs OVERCAST_TEST_IMAGE (made by
//! `scripts/test-image.py`). `cargo bench -p overcast --bench local_vm`.

use overcast_test_utils::process::{serve, write_local_config};
use overcast_test_utils::qemu::{console_shows, import_test_image, LOCAL};
use overcast_test_utils::ADMIN;
use reqwest::Method;
use serde_json::json;
use std::time::Instant;

const RUNS: usize = 5;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_local_config(dir.path());
    let served = serve(env!("CARGO_BIN_EXE_overcast"), &config);
    let (_, environment) = served.call(Method::GET, LOCAL, Some(ADMIN), None).await;
    let image = import_test_image(&served).await;
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
        let op = served
            .change(Method::POST, &format!("{LOCAL}/instances"), Some(body))
            .await;
        let to_running = started.elapsed().as_secs_f64();
        let id = op["results"][0]["target"].as_str().unwrap().to_string();
        console_shows(&served, &id, "BENCH-USER-DATA-RAN", 1).await;
        let to_ran = started.elapsed().as_secs_f64();
        println!("run {run}: create -> running {to_running:5.2} s, create -> user data ran {to_ran:5.2} s");
        running.push(to_running);
        ran.push(to_ran);
        served
            .change(
                Method::POST,
                &format!("{LOCAL}/instances/{id}/terminate"),
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
