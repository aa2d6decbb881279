//! `overcast serve` as a process of its own, and the `overcast` CLI run against it. Each
//! function takes the binary's path (`bin`): `env!("CARGO_BIN_EXE_overcast")`, which only
//! the `overcast` crate's tests and benches have.

use crate::moto::{moto_url, role_arn, REGIONS};
use crate::{Api, ADMIN};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A running `overcast serve`, killed (SIGKILL) when dropped. It dereferences to its [`Api`].
pub struct Served {
    api: Api,
    pub child: Child,
    log: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

impl std::ops::Deref for Served {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

/// A failed test still stops its server.
impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    /// Everything the server has logged so far (stderr), from its first line.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits up to `within` for the process to exit and answers how it did; after an exit,
    /// [`Served::log`] holds everything it logged.
    pub fn wait(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                if let Some(reader) = self.reader.take() {
                    // The log ends when the pipe does (a process the server started could
                    // hold it open: then the log is what arrived by the deadline).
                    while !reader.is_finished() && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Starts `command` (`overcast serve` and its arguments) and waits up to a minute for the
/// server to log where it listens, in the text or the JSON log format.
// The child is reaped by `Served`'s Drop, which the lint cannot see.
#[allow(clippy::zombie_processes)]
pub fn start(command: &mut Command) -> Served {
    let mut child = command
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (found, listening) = mpsc::channel();
    let kept = log.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let url = listening_url(&line);
            let mut log = kept.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
            if let Some(url) = url {
                let _ = found.send(url);
            }
        }
    });
    let Ok(url) = listening.recv_timeout(Duration::from_secs(60)) else {
        let _ = child.kill();
        let _ = child.wait();
        let log = log.lock().unwrap().clone();
        panic!("the server did not say where it listens:\n{log}");
    };
    Served {
        api: Api::new(url),
        child,
        log,
        reader: Some(reader),
    }
}

/// The URL in the server's "overcast is listening" line: `url=http://…` in text logs,
/// `"url":"http://…"` in JSON logs.
fn listening_url(line: &str) -> Option<String> {
    let at = [" url=", "\"url\":\""]
        .iter()
        .find_map(|key| line.find(key).map(|at| at + key.len()))?;
    let url: String = line[at..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '"')
        .collect();
    url.starts_with("http").then_some(url)
}

/// `overcast serve --config CONFIG` with the harness's admin token.
pub fn serve(bin: &str, config: &Path) -> Served {
    serve_with(bin, config, &[], &[])
}

/// `overcast serve --config CONFIG` expected to refuse to start: answers what it said on
/// stderr as it exited. A server that keeps running fails the test (and is stopped).
pub fn refused_to_serve(bin: &str, config: &Path) -> String {
    let mut child = Command::new(bin)
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("OVERCAST_ADMIN_TOKEN", ADMIN)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("overcast serve was expected to refuse to start, and kept running");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!exit.success(), "it exited successfully: {stderr}");
    stderr
}

/// `overcast serve --config CONFIG` with some environment variables set and some removed.
pub fn serve_with(bin: &str, config: &Path, set: &[(&str, &str)], remove: &[&str]) -> Served {
    let mut command = Command::new(bin);
    command
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("OVERCAST_ADMIN_TOKEN", ADMIN);
    for (key, value) in set {
        command.env(key, value);
    }
    for key in remove {
        command.env_remove(key);
    }
    start(&mut command)
}

/// An `overcast` command with an environment of its own: HOME and the XDG dirs in `home`,
/// `home` its working dir, and none of the caller's OVERCAST_* variables.
pub fn isolated(bin: &str, home: &Path) -> Command {
    let mut command = Command::new(bin);
    for (key, _) in std::env::vars() {
        if key.starts_with("OVERCAST_") {
            command.env_remove(key);
        }
    }
    command
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .current_dir(home);
    command
}

/// A config with the `aws-test` environment in the moto account `account` (both regions of
/// [`REGIONS`]), its data in `dir/data`.
pub fn write_aws_config(dir: &Path, account: &str) -> PathBuf {
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
pub fn write_local_config(dir: &Path) -> PathBuf {
    let path = dir.join("overcast.toml");
    let config = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n",
        dir.join("data").display()
    );
    std::fs::write(&path, config).unwrap();
    path
}

/// Writes a config for `overcast serve` on a free loopback port with its data in `dir`
/// and one simulated environment, `fleet`, of `instances` running instances over the
/// regions sim-1 and sim-2; answers its path.
pub fn write_sim_config(dir: &Path, instances: usize) -> PathBuf {
    let path = dir.join("overcast.toml");
    let config = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n\n[environments.fleet]\nprovider = \"sim\"\n\
         regions = [\"sim-1\", \"sim-2\"]\ninstances = {instances}\npending_secs = 0\n",
        dir.join("data").display()
    );
    std::fs::write(&path, config).unwrap();
    path
}

/// Runs a command to its end; answers its exit code and its stdout and stderr.
pub fn run(command: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// `overcast --url URL --token ADMIN ARGS…`, with no OVERCAST_ENV from the caller.
pub fn cli(bin: &str, url: &str, args: &[&str]) -> (i32, String, String) {
    run(Command::new(bin)
        .args(["--url", url, "--token", ADMIN])
        .args(args)
        .env_remove("OVERCAST_ENV"))
}

/// The peak resident memory of a process so far, in MiB.
pub fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib / 1024
}
