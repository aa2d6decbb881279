//! `overcast serve` as a process of its own, and the `overcast` CLI run against it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{moto_url, role_arn, ADMIN, REGIONS};

pub const BIN: &str = env!("CARGO_BIN_EXE_overcast");

/// A running `overcast serve`; killed (SIGKILL) when dropped.
pub struct Served {
    pub child: Child,
    pub url: String,
    /// Everything the server has logged so far.
    pub log: Arc<Mutex<String>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn write_config(dir: &Path, account: &str) -> std::path::PathBuf {
    let path = dir.join("overcast.toml");
    let config = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"{data}\"\n\n[environments.aws-test]\nprovider = \"aws\"\n\
         regions = [\"{r0}\", \"{r1}\"]\nendpoint_url = \"{moto}\"\nrole_arn = \"{role}\"\n",
        data = dir.join("data").display(),
        r0 = REGIONS[0],
        r1 = REGIONS[1],
        moto = moto_url(),
        role = role_arn(account),
    );
    std::fs::write(&path, config).unwrap();
    path
}

/// A config with only the embedded `local` environment, its data in `dir/data`.
pub fn write_local_config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("overcast.toml");
    let config = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n",
        dir.join("data").display()
    );
    std::fs::write(&path, config).unwrap();
    path
}

pub fn serve(config: &Path) -> Served {
    serve_with(config, &[], &[])
}

/// `overcast serve` with some environment variables set and some removed.
// The child is reaped by `Served`'s Drop, which the lint cannot see.
#[allow(clippy::zombie_processes)]
pub fn serve_with(config: &Path, set: &[(&str, &str)], remove: &[&str]) -> Served {
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("OVERCAST_ADMIN_TOKEN", ADMIN);
    for (key, value) in set {
        command.env(key, value);
    }
    for key in remove {
        command.env_remove(key);
    }
    let mut child = command
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("the server says where it listens")
            .unwrap();
        if let Some(at) = line.find("url=http://") {
            break line[at + 4..]
                .split_whitespace()
                .next()
                .unwrap()
                .to_string();
        }
    };
    let log = Arc::new(Mutex::new(String::new()));
    let kept = log.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let mut log = kept.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    Served { child, url, log }
}

/// Polls an operation until it ends (or 2 minutes pass) and returns it.
pub async fn operation_end(http: &reqwest::Client, url: &str, op_id: &str) -> serde_json::Value {
    let mut operation = serde_json::Value::Null;
    for _ in 0..600 {
        operation = http
            .get(format!("{url}/v1/operations/{op_id}"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if operation["status"] == "succeeded" || operation["status"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    operation
}

pub fn cli(url: &str, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(BIN)
        .args(["--url", url, "--token", ADMIN])
        .args(args)
        .env_remove("OVERCAST_ENV")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The peak resident memory of a process so far, in MiB.
pub fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib / 1024
}
