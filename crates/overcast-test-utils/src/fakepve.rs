//! fakepve, the Proxmox VE API simulator the Proxmox tests run against, started by the
//! test through `scripts/fakepve-serve.py` (which registers API tokens and takes fault
//! switches on its stdin while it runs) on a port the system picks, over HTTPS with a
//! fresh self-signed certificate, and stopped when dropped. `OVERCAST_TEST_FAKEPVE` names
//! the Python of its venv, as `scripts/test` installs it.

use base64::Engine;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::Duration;

pub struct FakePve {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// The certificate (PEM), to trust as a CA file.
    pub cert: PathBuf,
    /// The certificate's SHA-256 as PVE shows it, `AB:CD:...`.
    pub fingerprint: String,
    /// Where control commands go, and where their answers come back.
    control: Mutex<(ChildStdin, mpsc::Receiver<String>)>,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for FakePve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl FakePve {
    /// Serves `guests` (fakepve's `{"guests": [...]}`, with its per-guest switches such as
    /// `acpi` or `agent`) with the API tokens `USER@REALM!ID=SECRET`, tasks ending at once;
    /// the user `root@pam` signs in with the password `secret`.
    pub fn start(guests: &serde_json::Value, tokens: &[&str]) -> FakePve {
        FakePve::start_scaled(guests, tokens, 0.0)
    }

    /// As [`FakePve::start`], with PVE's seconds (a task's, a response's latency) taking
    /// `time_scale` real seconds each.
    pub fn start_scaled(guests: &serde_json::Value, tokens: &[&str], time_scale: f64) -> FakePve {
        let python = std::env::var("OVERCAST_TEST_FAKEPVE")
            .expect("OVERCAST_TEST_FAKEPVE is not set: run ./scripts/test, which installs fakepve");
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/fakepve-serve.py"
        );
        let dir = tempfile::tempdir().unwrap();
        let guests_file = dir.path().join("guests.json");
        std::fs::write(&guests_file, guests.to_string()).unwrap();
        let mut command = Command::new(python);
        command
            .arg(script)
            .args(["--dir", dir.path().to_str().unwrap()])
            .args(["--guests", guests_file.to_str().unwrap()])
            .args(["--time-scale", &time_scale.to_string()]);
        for token in tokens {
            command.args(["--token", token]);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take().unwrap();
        let (found, listening) = mpsc::channel();
        let (answered, answers) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("fakepve listening on ") {
                    let _ = found.send(rest.to_string());
                } else if let Some(answer) = line.strip_prefix("control ") {
                    let _ = answered.send(answer.to_string());
                }
            }
        });
        let Ok(line) = listening.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("fakepve did not say where it listens");
        };
        let (url, cert) = line.split_once(" cert=").unwrap();
        let cert = PathBuf::from(cert);
        let fingerprint = fingerprint_of(&cert);
        FakePve {
            url: url.to_string(),
            cert,
            fingerprint,
            control: Mutex::new((stdin, answers)),
            child,
            _dir: dir,
        }
    }

    /// Calls fakepve in its process (`flaky_network`, `fail`, `set_vm`, `storage_files`,
    /// ...; see `scripts/fakepve-serve.py`) and answers what it returned.
    pub fn control(&self, call: &str, args: serde_json::Value) -> serde_json::Value {
        let mut control = self.control.lock().unwrap();
        let command = serde_json::json!({"call": call, "args": args});
        writeln!(control.0, "{command}").unwrap();
        control.0.flush().unwrap();
        let answer = control
            .1
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("fakepve did not answer {command}"));
        match answer.strip_prefix("ok ") {
            Some(result) => serde_json::from_str(result).unwrap(),
            None => panic!("fakepve refused {command}: {answer}"),
        }
    }
}

impl FakePve {
    /// An HTTPS client that trusts fakepve's certificate.
    pub fn https(&self) -> reqwest::Client {
        let cert = reqwest::Certificate::from_pem(&std::fs::read(&self.cert).unwrap()).unwrap();
        reqwest::Client::builder()
            .add_root_certificate(cert)
            .build()
            .unwrap()
    }

    /// The `data` of a GET on fakepve's API (below `/api2/json`) as the API token `token`
    /// (`USER@REALM!ID=SECRET`): the ground truth of a test.
    pub async fn get(&self, token: &str, path: &str) -> serde_json::Value {
        let answer: serde_json::Value = self
            .https()
            .get(format!("{}/api2/json{path}", self.url))
            .header("Authorization", format!("PVEAPIToken={token}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["data"].clone()
    }
}

/// The SHA-256 of a PEM certificate's DER, `AB:CD:...`.
fn fingerprint_of(pem: &std::path::Path) -> String {
    let text = std::fs::read_to_string(pem).unwrap();
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    ring::digest::digest(&ring::digest::SHA256, &der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}
