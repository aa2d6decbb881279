//! The QMP client against a real QEMU booting the test image (made by
//! `scripts/test-image.py`; `OVERCAST_TEST_IMAGE` names its directory): the handshake,
//! status, a refused command, and the ACPI power button ending the guest and QEMU.

use overcast_qemu::qmp::{Qmp, QmpError};
use overcast_qemu::Host;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

fn test_image() -> PathBuf {
    PathBuf::from(
        std::env::var_os("OVERCAST_TEST_IMAGE").expect(
            "OVERCAST_TEST_IMAGE is not set: run ./scripts/test, which builds the test image",
        ),
    )
}

/// Polls `check` every 100 ms for up to `secs` seconds.
async fn within(secs: u64, mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..secs * 10 {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn qmp_reports_status_refuses_unknown_commands_and_powers_the_guest_off() {
    let host = Host::probe(&std::env::var_os("PATH").unwrap()).unwrap();
    let image = test_image();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("qmp.sock");
    let serial = dir.path().join("serial.log");
    let mut qemu = tokio::process::Command::new(&host.qemu)
        .args([
            "-accel",
            host.accelerator.name(),
            "-m",
            "256",
            "-nodefaults",
            "-display",
            "none",
            "-no-reboot",
        ])
        .arg("-kernel")
        .arg(image.join("vmlinuz"))
        .arg("-initrd")
        .arg(image.join("initrd.img"))
        .args(["-append", "console=ttyS0 quiet panic=-1"])
        .arg("-serial")
        .arg(format!("file:{}", serial.display()))
        .arg("-qmp")
        .arg(format!("unix:{},server=on,wait=off", socket.display()))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    assert!(
        within(10, || socket.exists()).await,
        "QEMU made no QMP socket"
    );

    let mut qmp = Qmp::connect(&socket).await.unwrap();
    assert!(
        qmp.version().starts_with(|c: char| c.is_ascii_digit()),
        "{}",
        qmp.version()
    );
    let status = qmp.query_status().await.unwrap();
    assert!(status.running && status.status == "running", "{status:?}");
    match qmp.execute("no-such-command", None).await {
        Err(QmpError::Refused { class, .. }) => assert_eq!(class, "CommandNotFound"),
        other => panic!("an unknown command answered {other:?}"),
    }

    let serial_says = |marker: &str| {
        std::fs::read_to_string(&serial)
            .unwrap_or_default()
            .contains(marker)
    };
    assert!(
        within(60, || serial_says("overcast-test-image: ready")).await,
        "the guest never got ready: {}",
        std::fs::read_to_string(&serial).unwrap_or_default()
    );
    qmp.system_powerdown().await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(20), qemu.wait())
        .await
        .expect("QEMU exits after the guest powers off")
        .unwrap();
    assert!(exit.success(), "{exit}");
    assert!(serial_says("overcast-test-image: power button"));
}
