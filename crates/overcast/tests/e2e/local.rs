//! The `local` environment in a server built with this binary's providers: QEMU found and
//! its accelerator reported, or the environment unavailable with what to install.

use crate::BIN;
use overcast_test_utils::process::{serve_with, write_local_config, Served};
use overcast_test_utils::ADMIN;
use reqwest::Method;
use std::process::{Command, Stdio};

async fn local_environment(served: &Served) -> serde_json::Value {
    let (_, local) = served
        .call(Method::GET, "/v1/environments/local", Some(ADMIN), None)
        .await;
    local
}

#[tokio::test]
async fn local_reports_qemu_and_the_accelerator_it_can_really_use() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve_with(BIN, &write_local_config(dir.path()), &[], &[]);
    let local = local_environment(&served).await;
    assert_eq!(local["provider"], "qemu");
    assert_eq!(local["reachable"], true, "{local}");
    assert_eq!(local["regions"], serde_json::json!(["local"]), "{local}");
    let accelerator = local["details"]["accelerator"].as_str().unwrap();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
    let can_virtualise = cpuinfo.split_whitespace().any(|f| f == "vmx" || f == "svm");
    if !can_virtualise {
        assert_eq!(accelerator, "tcg", "{local}");
        assert!(
            local["details"]["why_not_kvm"].as_str().is_some(),
            "{local}"
        );
    }
    // The accelerator reported is one QEMU accepts here.
    let qemu = Command::new("qemu-system-x86_64")
        .args([
            "-accel",
            accelerator,
            "-machine",
            "none",
            "-display",
            "none",
            "-S",
            "-nodefaults",
        ])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let mut qemu = qemu;
    assert!(
        qemu.try_wait().unwrap().is_none(),
        "QEMU refused -accel {accelerator}"
    );
    qemu.kill().unwrap();
    qemu.wait().unwrap();
}

#[tokio::test]
async fn without_qemu_local_is_unavailable_with_the_install_hint_and_the_rest_works() {
    let dir = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let path = empty.path().to_str().unwrap();
    let served = serve_with(BIN, &write_local_config(dir.path()), &[("PATH", path)], &[]);
    let local = local_environment(&served).await;
    assert_eq!(local["reachable"], false, "{local}");
    let reason = local["reason"].as_str().unwrap();
    assert!(
        reason.contains("qemu-system-x86_64") && reason.contains("apt-get install"),
        "{reason}"
    );
    let (listing, _) = served
        .call(
            Method::GET,
            "/v1/environments/local/instances",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(
        listing, 503,
        "an unavailable environment answers 503 with its reason"
    );
}
