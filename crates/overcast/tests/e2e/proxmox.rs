//! The Proxmox provider against fakepve over real HTTPS: the certificate pinned by its
//! fingerprint or trusted as a CA file, API token and ticket sign-in, and what an
//! environment says when any of them is wrong; VMs listed, started, stopped (one, or by
//! stage) and tagged through overcast's API, each outcome read back from fakepve.

use overcast_test_utils::fakepve::FakePve;
use overcast_test_utils::server::environment;
use overcast_test_utils::{TestServer, ADMIN};
use reqwest::Method;
use serde_json::{json, Value};

const TOKEN: &str = "overcast@pve!ci";
const TOKEN_SECRET: &str = "0b8e3e5c-5b7a-4f3e-9a55-1f2d3c4b5a69";

fn guests() -> Value {
    json!({"guests": [
        {"vmid": 9000, "name": "debian-12", "template": true,
         "config": {"cores": 1, "memory": 1024}},
        {"vmid": 100, "name": "web-1", "status": "running",
         "config": {"cores": 2, "memory": 2048, "tags": "stage-dev"}},
        {"vmid": 101, "name": "web-2", "status": "stopped",
         "config": {"cores": 2, "memory": 2048, "tags": "stage-dev"}},
        {"vmid": 102, "name": "db-1", "status": "running", "lock": "backup",
         "config": {"cores": 4, "memory": 8192, "tags": "stage-prod"}},
    ]})
}

/// A server with one `proxmox` environment per entry of `envs` (name, its settings), and
/// the machine type `pve-small`: 2 cores, 2 GiB, cloned from the template `debian-12`.
async fn server(envs: Vec<(&str, Value)>) -> TestServer {
    TestServer::built_with(|config| {
        for (name, mut settings) in envs {
            settings["provider"] = json!("proxmox");
            config
                .environments
                .insert(name.into(), environment(settings));
        }
        let small = json!({"proxmox": {"cores": 2, "memory_mb": 2048, "template": "debian-12"}});
        config
            .machine_types
            .insert("pve-small".into(), serde_json::from_value(small).unwrap());
    })
    .await
}

/// A server with the environment `pve` on `pve`, signing in with `root@pam`'s tickets (so
/// every change carries its CSRF token, which fakepve demands).
async fn ticket_server(pve: &FakePve, dir: &std::path::Path) -> TestServer {
    let password_file = dir.join("password");
    std::fs::write(&password_file, "secret\n").unwrap();
    server(vec![(
        "pve",
        json!({"url": pve.url, "fingerprint": pve.fingerprint, "user": "root@pam",
               "secret_file": password_file}),
    )])
    .await
}

async fn environment_view(server: &TestServer, env: &str) -> Value {
    let (status, view) = server
        .call(
            Method::GET,
            &format!("/v1/environments/{env}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert!(status.is_success(), "{view}");
    view
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_is_reached_only_with_its_certificate_and_credentials() {
    let pve = FakePve::start(&guests(), &[&format!("{TOKEN}={TOKEN_SECRET}")]);
    let secrets = tempfile::tempdir().unwrap();
    let secret_file = |name: &str, value: &str| {
        let path = secrets.path().join(name);
        std::fs::write(&path, format!("{value}\n")).unwrap();
        path.display().to_string()
    };
    let token_file = secret_file("token", TOKEN_SECRET);
    let wrong_file = secret_file("wrong", "not-the-secret");
    let password_file = secret_file("password", "secret");
    let other_fingerprint = ["00"; 32].join(":");
    let server = server(vec![
        (
            "pinned",
            json!({"url": pve.url, "fingerprint": pve.fingerprint, "token_id": TOKEN, "secret_file": token_file}),
        ),
        (
            "ca",
            json!({"url": pve.url, "ca_file": pve.cert, "user": "root@pam", "secret_file": password_file}),
        ),
        (
            "bad-token",
            json!({"url": pve.url, "fingerprint": pve.fingerprint, "token_id": TOKEN, "secret_file": wrong_file}),
        ),
        (
            "bad-password",
            json!({"url": pve.url, "fingerprint": pve.fingerprint, "user": "root@pam", "secret_file": wrong_file}),
        ),
        (
            "other-cert",
            json!({"url": pve.url, "fingerprint": other_fingerprint, "token_id": TOKEN, "secret_file": token_file}),
        ),
        (
            "no-secret",
            json!({"url": pve.url, "fingerprint": pve.fingerprint, "token_id": TOKEN, "secret_env": "OVERCAST_TEST_NO_SUCH_SECRET"}),
        ),
    ])
    .await;

    // An API token over the pinned certificate, and tickets over the certificate as a CA.
    for env in ["pinned", "ca"] {
        let view = environment_view(&server, env).await;
        assert_eq!(view["reachable"], true, "{view}");
        assert_eq!(view["provider"], "proxmox");
        assert!(view["details"]["version"].is_string(), "{view}");
        assert_eq!(view["regions"], json!(["pve"]));
    }

    // A wrong secret is PVE's 401; a certificate other than the pinned one is refused
    // before anything is sent; a secret that is not there says where it was looked for.
    for env in ["bad-token", "bad-password"] {
        let view = environment_view(&server, env).await;
        assert_eq!(view["reachable"], false, "{view}");
        assert!(view["reason"].as_str().unwrap().contains("401"), "{view}");
    }
    let view = environment_view(&server, "other-cert").await;
    assert_eq!(view["reachable"], false);
    assert!(
        view["reason"]
            .as_str()
            .unwrap()
            .contains("not the pinned one"),
        "{view}"
    );
    let view = environment_view(&server, "no-secret").await;
    assert_eq!(view["reachable"], false, "{view}");
    assert!(
        view["reason"]
            .as_str()
            .unwrap()
            .contains("OVERCAST_TEST_NO_SUCH_SECRET"),
        "{view}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vms_are_listed_started_stopped_and_tagged_with_pves_own_refusals() {
    let token = format!("{TOKEN}={TOKEN_SECRET}");
    let pve = FakePve::start(&guests(), &[&token]);
    let secrets = tempfile::tempdir().unwrap();
    let server = ticket_server(&pve, secrets.path()).await;
    let status = |vmid: u32| {
        let (pve, token) = (&pve, token.clone());
        async move {
            pve.get(&token, &format!("/nodes/pve1/qemu/{vmid}/status/current"))
                .await["status"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };

    // The VMs, not the template, with their stages from PVE's tags and their node.
    let (_, listed) = server
        .call(
            Method::GET,
            "/v1/environments/pve/instances",
            Some(ADMIN),
            None,
        )
        .await;
    let items = listed["items"].as_array().unwrap();
    let ids: Vec<&str> = items.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["100", "101", "102"], "{listed}");
    assert_eq!(items[0]["stage"], "dev");
    assert_eq!(items[0]["zone"], "pve1");
    assert_eq!(items[0]["state"], "running");
    assert_eq!(items[1]["state"], "stopped");
    assert_eq!(items[2]["state_reason"], "locked (backup)");

    // One VM started, then PVE's refusal of a locked one, in its own words.
    let op = server
        .change(
            Method::POST,
            "/v1/environments/pve/instances/101/start",
            None,
        )
        .await;
    assert_eq!(op["status"], "succeeded");
    assert_eq!(status(101).await, "running");
    let (code, refused) = server
        .call(
            Method::POST,
            "/v1/environments/pve/instances/102/stop?timeout=60",
            Some(ADMIN),
            Some(json!({"force": true})),
        )
        .await;
    assert_eq!(code, reqwest::StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"]["code"], "instance_locked");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("VM is locked (backup)"),
        "{refused}"
    );
    assert_eq!(status(102).await, "running");

    // Tags are PVE tags; a stage's bulk stop stops that stage's VMs and no other.
    server
        .change(
            Method::PUT,
            "/v1/environments/pve/instances/100/tags",
            Some(json!({"tags": {"team": "web"}})),
        )
        .await;
    let config = pve.get(&token, "/nodes/pve1/qemu/100/config").await;
    let tags = config["tags"].as_str().unwrap();
    assert!(
        tags.contains("team-web") && tags.contains("stage-dev"),
        "{config}"
    );
    let op = server
        .change(
            Method::POST,
            "/v1/environments/pve/instances/stop",
            Some(json!({"stage": "dev"})),
        )
        .await;
    assert_eq!(op["progress"]["done"], 2, "{op}");
    assert_eq!(status(100).await, "stopped");
    assert_eq!(status(101).await, "stopped");
    assert_eq!(status(102).await, "running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vms_are_cloned_from_a_template_sized_and_tagged_and_fifty_stop_in_one_go() {
    let token = format!("{TOKEN}={TOKEN_SECRET}");
    let pve = FakePve::start(&guests(), &[&token]);
    let secrets = tempfile::tempdir().unwrap();
    let server = ticket_server(&pve, secrets.path()).await;

    // Two VMs of a machine type: clones of its template, with its size and the stage.
    let op = server
        .change(
            Method::POST,
            "/v1/environments/pve/instances",
            Some(json!({"machine_type": "pve-small", "count": 2, "stage": "test", "name": "api"})),
        )
        .await;
    let made: Vec<String> = op["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["target"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(made.len(), 2, "{op}");
    for vmid in &made {
        let config = pve
            .get(&token, &format!("/nodes/pve1/qemu/{vmid}/config"))
            .await;
        assert_eq!(
            config["cores"].to_string().trim_matches('"'),
            "2",
            "{config}"
        );
        assert_eq!(
            config["memory"].to_string().trim_matches('"'),
            "2048",
            "{config}"
        );
        let tags = config["tags"].as_str().unwrap();
        assert!(
            tags.contains("stage-test") && tags.contains("overcast_3aorg-admin"),
            "{config}"
        );
        let status = pve
            .get(&token, &format!("/nodes/pve1/qemu/{vmid}/status/current"))
            .await;
        assert_eq!(status["status"], "running");
    }
    // A template that is not there is the image's 404.
    let (code, refused) = server
        .call(
            Method::POST,
            "/v1/environments/pve/instances",
            Some(ADMIN),
            Some(json!({"image": "no-such-template", "cpus": 1, "memory_mb": 512})),
        )
        .await;
    assert_eq!(code, reqwest::StatusCode::NOT_FOUND, "{refused}");

    // Figures: 50 VMs made in one operation, then stopped by their stage in one.
    let started = std::time::Instant::now();
    let op = server
        .change(
            Method::POST,
            "/v1/environments/pve/instances",
            Some(json!({"machine_type": "pve-small", "count": 50, "stage": "dev"})),
        )
        .await;
    let created = started.elapsed();
    assert_eq!(op["results"].as_array().unwrap().len(), 50);
    let create_calls = op["backend_calls"].clone();
    let started = std::time::Instant::now();
    let op = server
        .change(
            Method::POST,
            "/v1/environments/pve/instances/stop",
            Some(json!({"stage": "dev"})),
        )
        .await;
    let stopped = started.elapsed();
    // The fleet's two dev VMs and the 50 new ones.
    assert_eq!(op["progress"]["done"], 52, "{op}");
    let resources = pve.get(&token, "/cluster/resources?type=vm").await;
    let running_dev = resources
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["status"] == "running" && r["tags"].as_str().is_some_and(|t| t.contains("stage-dev"))
        })
        .count();
    assert_eq!(running_dev, 0);
    println!(
        "fakepve (tasks instant): 50 VMs cloned, sized, tagged and started in {:.2} s (1 operation, {} backend calls); 52 stopped by stage in {:.2} s (1 operation, {} backend calls)",
        created.as_secs_f64(),
        create_calls,
        stopped.as_secs_f64(),
        op["backend_calls"]
    );
}
