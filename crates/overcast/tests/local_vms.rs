//! Real VMs on this host through `overcast serve` and its `local` environment: QEMU booting
//! the test image (`scripts/test-image.py`; `OVERCAST_TEST_IMAGE` names its directory),
//! checked against the QEMU processes and their QMP sockets themselves.

mod support;

use overcast_qemu::qmp::Qmp;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::process::{serve, write_local_config, Served};
use support::ADMIN;

const LOCAL: &str = "/v1/environments/local";

fn test_image() -> PathBuf {
    PathBuf::from(
        std::env::var_os("OVERCAST_TEST_IMAGE").expect(
            "OVERCAST_TEST_IMAGE is not set: run ./scripts/test, which builds the test image",
        ),
    )
}

/// Kills every VM under a test's data dir when the test ends, passed or failed: VMs run
/// detached and would outlive it.
struct Reaper(PathBuf);

impl Drop for Reaper {
    fn drop(&mut self) {
        let instances = self.0.join("data/environments/local/instances");
        for entry in std::fs::read_dir(instances).into_iter().flatten().flatten() {
            let Ok(pid) = std::fs::read_to_string(entry.path().join("qemu.pid")) else {
                continue;
            };
            // Only that VM's QEMU, not a process that got its pid later.
            let name = format!("overcast-{}", entry.file_name().to_string_lossy());
            let cmdline =
                std::fs::read(format!("/proc/{}/cmdline", pid.trim())).unwrap_or_default();
            if cmdline.split(|b| *b == 0).any(|arg| arg == name.as_bytes()) {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", pid.trim()])
                    .status();
            }
        }
    }
}

async fn call(
    served: &Served,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", served.url))
        .bearer_auth(ADMIN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Sends a change that waits up to 3 minutes for its operation; asserts it succeeded.
async fn change(served: &Served, method: Method, path: &str, body: Option<Value>) -> Value {
    let sep = if path.contains('?') { '&' } else { '?' };
    let (status, op) = call(
        served,
        method.clone(),
        &format!("{path}{sep}timeout=180"),
        body,
    )
    .await;
    assert!(status.is_success(), "{method} {path}: {status} {op}");
    assert_eq!(op["status"], "succeeded", "{method} {path}: {op}");
    op
}

/// Imports the test image's kernel and initrd; answers the image id.
async fn import_test_image(served: &Served) -> String {
    let image = test_image();
    let body = json!({
        "name": "test-kernel",
        "kernel_url": format!("file://{}", image.join("vmlinuz").display()),
        "initrd_url": format!("file://{}", image.join("initrd.img").display()),
        "cmdline": "console=ttyS0 quiet panic=-1",
    });
    let op = change(
        served,
        Method::POST,
        &format!("{LOCAL}/images/import"),
        Some(body),
    )
    .await;
    op["results"][0]["target"].as_str().unwrap().to_string()
}

/// The VM's directory under the server's data dir.
fn vm_dir(data: &Path, id: &str) -> PathBuf {
    data.join("data/environments/local/instances").join(id)
}

/// The pid of the VM's QEMU, if the process is alive.
fn qemu_pid(data: &Path, id: &str) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(vm_dir(data, id).join("qemu.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    std::path::Path::new(&format!("/proc/{pid}"))
        .exists()
        .then_some(pid)
}

/// What QEMU itself says of the VM.
async fn qmp_status(data: &Path, id: &str) -> String {
    let mut qmp = Qmp::connect(&vm_dir(data, id).join("qmp.sock"))
        .await
        .unwrap();
    qmp.query_status().await.unwrap().status
}

async fn console(served: &Served, id: &str) -> String {
    let (_, answer) = call(
        served,
        Method::GET,
        &format!("{LOCAL}/instances/{id}/console"),
        None,
    )
    .await;
    answer["output"].as_str().unwrap_or_default().to_string()
}

/// Waits up to 90 s for `marker` to appear `times` times in the console.
async fn console_shows(served: &Served, id: &str, marker: &str, times: usize) {
    for _ in 0..900 {
        if console(served, id).await.matches(marker).count() >= times {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "`{marker}` x{times} never appeared:\n{}",
        console(served, id).await
    );
}

async fn state(served: &Served, id: &str) -> Value {
    call(
        served,
        Method::GET,
        &format!("{LOCAL}/instances/{id}"),
        None,
    )
    .await
    .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_vm_boots_runs_its_user_data_and_goes_through_its_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let _reaper = Reaper(data.to_path_buf());
    let served = serve(&write_local_config(data));
    let image = import_test_image(&served).await;

    let started = Instant::now();
    let body = json!({
        "name": "vm-one", "machine_type": "tiny", "image": image, "stage": "dev",
        "user_data": "#!/bin/sh\necho \"USERDATA-MARKER on $(hostname)\"\n",
    });
    let op = change(
        &served,
        Method::POST,
        &format!("{LOCAL}/instances"),
        Some(body),
    )
    .await;
    let running_after = started.elapsed();
    let id = op["results"][0]["target"].as_str().unwrap().to_string();
    let vm = state(&served, &id).await;
    assert_eq!(vm["state"], "running", "{vm}");
    assert_eq!(vm["stage"], "dev");
    assert!(
        vm["ssh_address"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{vm}"
    );
    assert!(qemu_pid(data, &id).is_some(), "no QEMU process");
    assert_eq!(qmp_status(data, &id).await, "running");
    console_shows(&served, &id, "USERDATA-MARKER on vm-one", 1).await;
    println!(
        "create -> running {:.1} s, create -> user data ran {:.1} s",
        running_after.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );

    // A graceful stop presses the power button; the test image powers off on it.
    change(
        &served,
        Method::POST,
        &format!("{LOCAL}/instances/{id}/stop"),
        None,
    )
    .await;
    assert_eq!(state(&served, &id).await["state"], "stopped");
    assert!(
        qemu_pid(data, &id).is_none(),
        "QEMU still runs after a stop"
    );
    assert!(console(&served, &id)
        .await
        .contains("overcast-test-image: power button"));

    change(
        &served,
        Method::POST,
        &format!("{LOCAL}/instances/{id}/start"),
        None,
    )
    .await;
    assert_eq!(qmp_status(data, &id).await, "running");
    console_shows(&served, &id, "overcast-test-image: ready", 2).await;

    change(
        &served,
        Method::POST,
        &format!("{LOCAL}/instances/{id}/reboot"),
        None,
    )
    .await;
    console_shows(&served, &id, "overcast-test-image: booted", 3).await;
    assert_eq!(state(&served, &id).await["state"], "running");

    let presses = console(&served, &id).await.matches("power button").count();
    change(
        &served,
        Method::POST,
        &format!("{LOCAL}/instances/{id}/stop"),
        Some(json!({"force": true})),
    )
    .await;
    assert!(
        qemu_pid(data, &id).is_none(),
        "QEMU still runs after a forced stop"
    );
    assert_eq!(
        console(&served, &id).await.matches("power button").count(),
        presses,
        "a forced stop does not ask the guest"
    );

    // An image of the stopped VM's disk boots a new VM.
    let body = json!({"instance_id": id, "name": "from-vm-one"});
    let op = change(
        &served,
        Method::POST,
        &format!("{LOCAL}/images"),
        Some(body),
    )
    .await;
    let copy = op["results"][0]["target"].as_str().unwrap().to_string();
    let body = json!({"name": "vm-two", "machine_type": "tiny", "image": copy});
    let op = change(
        &served,
        Method::POST,
        &format!("{LOCAL}/instances"),
        Some(body),
    )
    .await;
    let second = op["results"][0]["target"].as_str().unwrap().to_string();
    console_shows(&served, &second, "overcast-test-image: ready as vm-two", 1).await;
    let (status, error) = call(
        &served,
        Method::DELETE,
        &format!("{LOCAL}/images/{copy}"),
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "an image in use is kept: {error}"
    );

    for vm in [&id, &second] {
        change(
            &served,
            Method::POST,
            &format!("{LOCAL}/instances/{vm}/terminate"),
            Some(json!({})),
        )
        .await;
        assert_eq!(state(&served, vm).await["state"], "terminated");
        assert!(qemu_pid(data, vm).is_none());
        assert!(
            !vm_dir(data, vm).join("disk.qcow2").exists(),
            "the disk overlay is deleted"
        );
    }
    change(
        &served,
        Method::DELETE,
        &format!("{LOCAL}/images/{copy}"),
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_clear_400s_404s_and_507s() {
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper(dir.path().to_path_buf());
    let served = serve(&write_local_config(dir.path()));
    let image = import_test_image(&served).await;
    let create = |body: Value| {
        let served = &served;
        async move {
            call(
                served,
                Method::POST,
                &format!("{LOCAL}/instances"),
                Some(body),
            )
            .await
        }
    };
    for (body, status, field) in [
        (
            json!({"image": image, "cpus": 999, "memory_mb": 256, "disk_gb": 1}),
            400,
            "cpus",
        ),
        (
            json!({"image": image, "cpus": 1, "memory_mb": 1u64 << 40, "disk_gb": 1}),
            400,
            "memory_mb",
        ),
        (
            json!({"image": image, "cpus": 1, "memory_mb": 256, "disk_gb": 1u64 << 40}),
            400,
            "disk_gb",
        ),
        (
            json!({"image": image, "machine_type": "tiny", "instance_type": "t3.micro"}),
            400,
            "instance_type",
        ),
        (
            json!({"image": image, "machine_type": "tiny", "security_groups": ["sg-1"]}),
            400,
            "security_groups",
        ),
        (
            json!({"image": "img-0000000000000000", "machine_type": "tiny"}),
            404,
            "image",
        ),
    ] {
        let (got, error) = create(body.clone()).await;
        assert_eq!(got.as_u16(), status, "{body}: {error}");
        assert_eq!(error["error"]["field"], field, "{body}: {error}");
    }
    // Each machine fits the host; this many together do not.
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let total_kb: u64 = meminfo.split_whitespace().nth(1).unwrap().parse().unwrap();
    let half = total_kb / 1024 / 2;
    let (status, error) =
        create(json!({"image": image, "cpus": 1, "memory_mb": half, "disk_gb": 1, "count": 50}))
            .await;
    assert_eq!(status.as_u16(), 507, "{error}");
    let (status, error) = call(
        &served,
        Method::POST,
        &format!("{LOCAL}/security-groups"),
        Some(json!({"name": "web", "description": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not supported by provider qemu"),
        "{error}"
    );
    let (status, error) = call(
        &served,
        Method::POST,
        &format!("{LOCAL}/images/import"),
        Some(json!({"name": "x-y-z", "url": "ftp://example/disk"})),
    )
    .await;
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("url"))
    );
    // A disk image larger than the machine's disk is refused before anything is made.
    let big = dir.path().join("big.qcow2");
    let made = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&big)
        .arg("3G")
        .status()
        .unwrap();
    assert!(made.success());
    let body = json!({"name": "three-gig", "url": format!("file://{}", big.display())});
    let op = change(
        &served,
        Method::POST,
        &format!("{LOCAL}/images/import"),
        Some(body),
    )
    .await;
    let three_gig = op["results"][0]["target"].as_str().unwrap();
    let (status, error) = create(json!({"image": three_gig, "machine_type": "tiny"})).await;
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("disk_gb")),
        "{error}"
    );
    let list = call(&served, Method::GET, &format!("{LOCAL}/instances"), None)
        .await
        .1;
    assert_eq!(
        list["items"],
        json!([]),
        "nothing was made by the bad requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vms_outlive_a_killed_server_and_a_bulk_stop_by_stage_stops_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let _reaper = Reaper(data.to_path_buf());
    let config = write_local_config(data);
    let served = serve(&config);
    let image = import_test_image(&served).await;
    let body = json!({"machine_type": "tiny", "image": image, "stage": "test", "count": 3});
    let op = change(
        &served,
        Method::POST,
        &format!("{LOCAL}/instances"),
        Some(body),
    )
    .await;
    let ids: Vec<String> = op["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["target"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3, "{op}");
    let pids: Vec<u32> = ids.iter().map(|id| qemu_pid(data, id).unwrap()).collect();

    // A second server on the same data dir must not drive these VMs.
    let second = serve(&config);
    let (_, local) = call(&second, Method::GET, LOCAL, None).await;
    assert_eq!(local["reachable"], false, "{local}");
    assert!(
        local["reason"]
            .as_str()
            .unwrap()
            .contains("another overcast server"),
        "{local}"
    );
    drop(second);

    drop(served); // SIGKILL
    for (id, pid) in ids.iter().zip(&pids) {
        assert_eq!(
            qemu_pid(data, id),
            Some(*pid),
            "VM {id} died with the server"
        );
    }
    let served = serve(&config);
    for id in &ids {
        assert_eq!(
            state(&served, id).await["state"],
            "running",
            "{id} after the restart"
        );
    }
    // A QEMU that dies behind overcast's back is reported stopped, with the reason.
    std::process::Command::new("kill")
        .args(["-KILL", &pids[2].to_string()])
        .status()
        .unwrap();
    for _ in 0..50 {
        if qemu_pid(data, &ids[2]).is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dead = state(&served, &ids[2]).await;
    assert_eq!(dead["state"], "stopped", "{dead}");
    assert!(
        dead["state_reason"]
            .as_str()
            .unwrap()
            .contains("QEMU is not running"),
        "{dead}"
    );

    change(
        &served,
        Method::POST,
        &format!("{LOCAL}/instances/stop"),
        Some(json!({"stage": "test"})),
    )
    .await;
    for id in &ids {
        assert_eq!(state(&served, id).await["state"], "stopped");
        assert!(qemu_pid(data, id).is_none(), "{id} still runs");
    }
    change(
        &served,
        Method::POST,
        &format!("{LOCAL}/instances/terminate"),
        Some(json!({"stage": "test", "confirm": "local/test"})),
    )
    .await;
}

/// Serves `body` to every GET on a loopback port, like a plain HTTP file server.
async fn serve_bytes(body: Vec<u8>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&body).await;
            });
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_import_over_http_and_a_wrong_checksum_keeps_nothing() {
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().unwrap();
    let served = serve(&write_local_config(dir.path()));
    // A raw disk of 1 MiB: what qemu-img reads as `raw`.
    let disk = vec![0u8; 1 << 20];
    let url = serve_bytes(disk.clone()).await;
    let sha256 = hex::encode(Sha256::digest(&disk));
    let wrong = "0".repeat(64);
    let body = json!({"name": "bad-sum", "url": format!("{url}/disk.img"), "sha256": wrong});
    let (status, error) = call(
        &served,
        Method::POST,
        &format!("{LOCAL}/images/import?timeout=60"),
        Some(body),
    )
    .await;
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("sha256")),
        "{error}"
    );
    let body = json!({"name": "raw-disk", "url": format!("{url}/disk.img"), "sha256": sha256});
    let op = change(
        &served,
        Method::POST,
        &format!("{LOCAL}/images/import"),
        Some(body),
    )
    .await;
    let (_, images) = call(&served, Method::GET, &format!("{LOCAL}/images"), None).await;
    let names: Vec<&str> = images
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["raw-disk"], "the failed import left nothing: {op}");
    let stored = dir
        .path()
        .join("data/environments/local/images")
        .join(op["results"][0]["target"].as_str().unwrap())
        .join("disk.raw");
    assert_eq!(std::fs::read(stored).unwrap(), disk);
}
