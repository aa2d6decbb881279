//! The `overcast` binary end to end: the server started with no config at all, the CLI
//! against it, and a graceful stop on SIGTERM.

use crate::BIN;
use overcast_test_utils::process::{isolated, run, start, Served};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Starts `overcast serve` on a free port in `home`, with no config.
fn serve(home: &Path) -> Served {
    start(isolated(BIN, home).args(["serve", "--listen", "127.0.0.1:0"]))
}

#[test]
fn a_server_with_no_config_serves_the_cli_and_stops_gracefully() {
    let home = tempfile::tempdir().unwrap();
    let mut server = serve(home.path());

    // The first start wrote the admin token to a file only its owner can read.
    let token_file = home.path().join("data/overcast/admin-token");
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let admin = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_string();
    assert!(admin.starts_with("oc_"));

    let health = http::blocking_get(&format!("{}/healthz", server.base));
    assert_eq!(health, r#"{"status":"ok"}"#);

    let (code, out, _) = run(isolated(BIN, home.path()).args([
        "--url",
        &server.base,
        "--token",
        &admin,
        "-o",
        "json",
        "env",
        "list",
    ]));
    assert_eq!(code, 0);
    let envs: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(envs["items"][0]["name"], "local");

    let (code, out, err) = run(isolated(BIN, home.path()).args([
        "--url",
        &server.base,
        "--token",
        &admin,
        "token",
        "create",
        "--org",
        "acme",
        "--role",
        "viewer",
        "--expires",
        "30d",
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("status: succeeded"), "{out}");
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .unwrap()
        .to_string();
    assert!(secret.starts_with("oc_"));

    // The server's error message, with the field, and a non-zero exit.
    let (code, _, err) = run(isolated(BIN, home.path()).args([
        "--url",
        &server.base,
        "--token",
        &admin,
        "token",
        "create",
        "--org",
        "acme",
        "--role",
        "root",
    ]));
    assert_eq!(code, 1);
    assert!(err.contains("body.role: unknown variant `root`"), "{err}");
    assert!(err.contains("invalid_input, HTTP 400"), "{err}");

    let (code, _, err) =
        run(isolated(BIN, home.path()).args(["--url", &server.base, "op", "list"]));
    assert_eq!(code, 1);
    assert!(
        err.contains("HTTP 401") && err.contains("overcast login"),
        "{err}"
    );

    // login saves a profile the next commands use.
    let (code, out, err) =
        run(isolated(BIN, home.path()).args(["login", "--url", &server.base, "--token", &secret]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("as acme-viewer (viewer of org acme)"), "{out}");
    let profile = home.path().join("config/overcast/profile.json");
    assert_eq!(
        std::fs::metadata(&profile).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let (code, out, _) = run(isolated(BIN, home.path()).args(["op", "list"]));
    assert_eq!(code, 0);
    assert!(out.starts_with("ID "), "{out}");
    assert!(out.contains("token.create  succeeded  1/1"), "{out}");
    let (code, _, err) = run(isolated(BIN, home.path()).args(["token", "list"]));
    assert_eq!(code, 1);
    assert!(err.contains("needs the admin role"), "{err}");

    // SIGTERM: the server finishes and exits cleanly.
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exited = server.wait(Duration::from_secs(10));
    assert_eq!(
        exited.expect("the server stops within 10 s").code(),
        Some(0)
    );
    let log: Vec<String> = server.log().lines().map(str::to_string).collect();
    assert!(log.iter().any(|l| l.contains("shutting down")), "{log:?}");
    assert!(
        !log.iter()
            .any(|l| l.contains(&admin) || l.contains(&secret)),
        "a secret reached the log"
    );
}

#[test]
fn config_check_lists_every_problem_and_passes_the_example() {
    let home = tempfile::tempdir().unwrap();
    let bad = home.path().join("bad.toml");
    std::fs::write(
        &bad,
        "listen = \"nowhere\"\nextra = 1\n[environments.prod]\nprovider = \"aws\"\n",
    )
    .unwrap();
    let (code, _, err) =
        run(isolated(BIN, home.path()).args(["config", "check", bad.to_str().unwrap()]));
    assert_eq!(code, 1);
    assert!(err.contains("3 problems"), "{err}");
    assert!(err.contains("line 2: extra: unknown key"), "{err}");
    assert!(
        err.contains("line 1: listen: `nowhere` is not an address"),
        "{err}"
    );
    assert!(
        err.contains(
            "line 3: environments.prod.regions: an aws environment needs at least one region"
        ),
        "{err}"
    );

    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../overcast.example.toml");
    let (code, out, err) = run(isolated(BIN, home.path()).args(["config", "check", example]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("ok (2 environments, 1 machine types)"),
        "{out}"
    );
}

#[test]
fn completions_are_generated_for_each_shell() {
    let home = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, _) = run(isolated(BIN, home.path()).args(["completions", shell]));
        assert_eq!(code, 0);
        assert!(out.contains("token") && out.contains("serve"), "{shell}");
    }
}

mod http {
    //! Plain GETs over a TCP socket, so the tests need no HTTP client runtime.

    /// The whole answer (head and body) to a GET with these extra headers.
    pub fn get(url: &str, headers: &[(&str, &str)]) -> String {
        use std::io::{Read, Write};
        let rest = url.strip_prefix("http://").unwrap();
        let (host, path) = rest
            .split_once('/')
            .map(|(h, p)| (h, format!("/{p}")))
            .unwrap();
        let mut stream = std::net::TcpStream::connect(host).unwrap();
        let extra: String = headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}\r\n"))
            .collect();
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n{extra}\r\n").unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    }

    /// The body of a GET.
    pub fn blocking_get(url: &str) -> String {
        get(url, &[])
            .split("\r\n\r\n")
            .nth(1)
            .unwrap_or("")
            .to_string()
    }
}

#[test]
fn json_logs_are_one_object_per_line_with_the_request_id() {
    let home = tempfile::tempdir().unwrap();
    let mut server = start(
        isolated(BIN, home.path())
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .env("OVERCAST_ADMIN_TOKEN", "oc_json_log_test_secret"),
    );
    let answer = http::get(
        &format!("{}/healthz", server.base),
        &[("x-request-id", "json-log-42")],
    );
    assert!(answer.contains("\"ok\""));
    let _ = server.child.kill();
    server.wait(Duration::from_secs(10));
    let mut seen = Vec::new();
    for line in server.log().lines() {
        let entry: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        seen.push(entry);
    }
    let listening = seen
        .iter()
        .find(|e| e["fields"]["message"] == "overcast is listening");
    assert_eq!(
        listening.expect("the server logs where it listens")["fields"]["url"],
        server.base.as_str()
    );
    let request = seen
        .iter()
        .find(|e| e["fields"]["message"] == "request")
        .expect("the request was logged");
    assert_eq!(request["fields"]["path"], "/healthz");
    assert_eq!(request["span"]["request_id"], "json-log-42");
    assert!(!seen
        .iter()
        .any(|e| e.to_string().contains("oc_json_log_test_secret")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_admin_cannot_be_revoked_and_a_lost_admin_is_recovered_on_the_host() {
    use reqwest::{Method, StatusCode};
    let home = tempfile::tempdir().unwrap();
    let server = serve(home.path());
    let admin = std::fs::read_to_string(home.path().join("data/overcast/admin-token"))
        .unwrap()
        .trim()
        .to_string();
    let (_, me) = server
        .call(Method::GET, "/v1/whoami", Some(&admin), None)
        .await;
    let id = me["token_id"].as_str().unwrap().to_string();
    let (status, refused) = server
        .call(
            Method::DELETE,
            &format!("/v1/tokens/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("last_admin")),
        "{refused}"
    );
    drop(server);

    // With the server stopped, on its host: a new admin token from its own store.
    let (code, out, err) = run(isolated(BIN, home.path()).args(["recover-admin"]));
    assert_eq!(code, 0, "{err}");
    let secret = out.trim().to_string();
    assert!(secret.starts_with("oc_"), "{out}");
    let server = serve(home.path());
    let (status, me) = server
        .call(Method::GET, "/v1/whoami", Some(&secret), None)
        .await;
    assert_eq!(
        (status, me["role"].as_str()),
        (StatusCode::OK, Some("admin"))
    );
    let (_, audit) = server
        .call(Method::GET, "/v1/audit", Some(&secret), None)
        .await;
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["route"] == "overcast recover-admin" && e["token_id"] == me["token_id"]),
        "{audit}"
    );
    // The first admin still works: recovery adds a token, it revokes nothing.
    let (status, _) = server
        .call(Method::GET, "/v1/whoami", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::OK);
}
