//! Real VMs on this host through `overcast serve` and its `local` environment: QEMU booting
//! the test image (`scripts/test-image.py`; `OVERCAST_TEST_IMAGE` names its directory),
//! checked against the QEMU processes and their QMP sockets themselves.

use crate::BIN;
use overcast_test_utils::process::{refused_to_serve, serve, write_local_config, Served};
use overcast_test_utils::qemu::{
    console, console_shows, import_test_image, qemu_pid, qmp_status, vm_dir, Reaper, LOCAL,
};
use overcast_test_utils::ADMIN;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn state(served: &Served, id: &str) -> Value {
    served
        .call(
            Method::GET,
            &format!("{LOCAL}/instances/{id}"),
            Some(ADMIN),
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
    let served = serve(BIN, &write_local_config(data));
    let image = import_test_image(&served).await;

    let started = Instant::now();
    let body = json!({
        "name": "vm-one", "machine_type": "tiny", "image": image, "stage": "dev",
        "user_data": "#!/bin/sh\necho \"USERDATA-MARKER on $(hostname)\"\n",
    });
    let op = served
        .change(Method::POST, &format!("{LOCAL}/instances"), Some(body))
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
    served
        .change(Method::POST, &format!("{LOCAL}/instances/{id}/stop"), None)
        .await;
    assert_eq!(state(&served, &id).await["state"], "stopped");
    assert!(
        qemu_pid(data, &id).is_none(),
        "QEMU still runs after a stop"
    );
    assert!(console(&served, &id)
        .await
        .contains("overcast-test-image: power button"));

    served
        .change(Method::POST, &format!("{LOCAL}/instances/{id}/start"), None)
        .await;
    assert_eq!(qmp_status(data, &id).await, "running");
    console_shows(&served, &id, "overcast-test-image: ready", 2).await;

    served
        .change(
            Method::POST,
            &format!("{LOCAL}/instances/{id}/reboot"),
            None,
        )
        .await;
    console_shows(&served, &id, "overcast-test-image: booted", 3).await;
    assert_eq!(state(&served, &id).await["state"], "running");

    let presses = console(&served, &id).await.matches("power button").count();
    served
        .change(
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
    let op = served
        .change(Method::POST, &format!("{LOCAL}/images"), Some(body))
        .await;
    let copy = op["results"][0]["target"].as_str().unwrap().to_string();
    let body = json!({"name": "vm-two", "machine_type": "tiny", "image": copy});
    let op = served
        .change(Method::POST, &format!("{LOCAL}/instances"), Some(body))
        .await;
    let second = op["results"][0]["target"].as_str().unwrap().to_string();
    console_shows(&served, &second, "overcast-test-image: ready as vm-two", 1).await;
    let (status, error) = served
        .call(
            Method::DELETE,
            &format!("{LOCAL}/images/{copy}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "an image in use is kept: {error}"
    );

    for vm in [&id, &second] {
        served
            .change(
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
    served
        .change(Method::DELETE, &format!("{LOCAL}/images/{copy}"), None)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_takes_its_image_by_name_and_a_kernel_image_needs_no_disk_size() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let _reaper = Reaper(data.to_path_buf());
    let served = serve(BIN, &write_local_config(data));
    let image = import_test_image(&served).await;

    // `test-kernel` is the imported image's name; no disk_gb is given.
    let body = json!({"name": "by-name", "image": "test-kernel", "cpus": 1, "memory_mb": 256});
    let op = served
        .change(Method::POST, &format!("{LOCAL}/instances"), Some(body))
        .await;
    let id = op["results"][0]["target"].as_str().unwrap().to_string();
    let vm = state(&served, &id).await;
    assert_eq!(
        (vm["state"].as_str(), vm["image"].as_str()),
        (Some("running"), Some(image.as_str())),
        "{vm}"
    );
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(vm_dir(data, &id).join("vm.json")).unwrap())
            .unwrap();
    assert_eq!(record["size"]["disk_gb"], 1, "{record}");
    assert!(qemu_pid(data, &id).is_some(), "no QEMU process");

    served
        .change(Method::DELETE, &format!("{LOCAL}/instances/{id}"), None)
        .await;
    assert!(qemu_pid(data, &id).is_none(), "QEMU outlived terminate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_clear_400s_404s_and_507s() {
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper(dir.path().to_path_buf());
    let served = serve(BIN, &write_local_config(dir.path()));
    let image = import_test_image(&served).await;
    let create = |body: Value| {
        let served = &served;
        async move {
            served
                .call(
                    Method::POST,
                    &format!("{LOCAL}/instances"),
                    Some(ADMIN),
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
    let (status, error) = served
        .call(
            Method::POST,
            &format!("{LOCAL}/security-groups"),
            Some(ADMIN),
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
    let (status, error) = served
        .call(
            Method::POST,
            &format!("{LOCAL}/images/import"),
            Some(ADMIN),
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
    let op = served
        .change(Method::POST, &format!("{LOCAL}/images/import"), Some(body))
        .await;
    let three_gig = op["results"][0]["target"].as_str().unwrap();
    let (status, error) = create(json!({"image": three_gig, "machine_type": "tiny"})).await;
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("disk_gb")),
        "{error}"
    );
    let list = served
        .call(
            Method::GET,
            &format!("{LOCAL}/instances"),
            Some(ADMIN),
            None,
        )
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
    let served = serve(BIN, &config);
    let image = import_test_image(&served).await;
    let body = json!({"machine_type": "tiny", "image": image, "stage": "test", "count": 3});
    let op = served
        .change(Method::POST, &format!("{LOCAL}/instances"), Some(body))
        .await;
    let ids: Vec<String> = op["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["target"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3, "{op}");
    let pids: Vec<u32> = ids.iter().map(|id| qemu_pid(data, id).unwrap()).collect();

    // A second server on the same data dir must not drive these VMs: it does not start.
    let refused = refused_to_serve(BIN, &config);
    assert!(refused.contains("another overcast server"), "{refused}");

    drop(served); // SIGKILL
    for (id, pid) in ids.iter().zip(&pids) {
        assert_eq!(
            qemu_pid(data, id),
            Some(*pid),
            "VM {id} died with the server"
        );
    }
    let served = serve(BIN, &config);
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
    // The inventory learns of it at its next refresh; a fresh read sees it now.
    let (_, dead) = served
        .call(
            Method::GET,
            &format!("{LOCAL}/instances/{}?fresh=true", ids[2]),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(dead["state"], "stopped", "{dead}");
    assert!(
        dead["state_reason"]
            .as_str()
            .unwrap()
            .contains("QEMU is not running"),
        "{dead}"
    );

    served
        .change(
            Method::POST,
            &format!("{LOCAL}/instances/stop"),
            Some(json!({"stage": "test"})),
        )
        .await;
    for id in &ids {
        assert_eq!(state(&served, id).await["state"], "stopped");
        assert!(qemu_pid(data, id).is_none(), "{id} still runs");
    }
    served
        .change(
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
    let served = serve(BIN, &write_local_config(dir.path()));
    // A raw disk of 1 MiB: what qemu-img reads as `raw`.
    let disk = vec![0u8; 1 << 20];
    let url = serve_bytes(disk.clone()).await;
    let sha256 = hex::encode(Sha256::digest(&disk));
    let wrong = "0".repeat(64);
    let body = json!({"name": "bad-sum", "url": format!("{url}/disk.img"), "sha256": wrong});
    let (status, error) = served
        .call(
            Method::POST,
            &format!("{LOCAL}/images/import?timeout=60"),
            Some(ADMIN),
            Some(body),
        )
        .await;
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("sha256")),
        "{error}"
    );
    let body = json!({"name": "raw-disk", "url": format!("{url}/disk.img"), "sha256": sha256});
    let op = served
        .change(Method::POST, &format!("{LOCAL}/images/import"), Some(body))
        .await;
    let (_, images) = served
        .call(Method::GET, &format!("{LOCAL}/images"), Some(ADMIN), None)
        .await;
    let names: Vec<&str> = images["items"]
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
