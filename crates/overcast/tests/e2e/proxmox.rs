//! The Proxmox provider against fakepve over real HTTPS: the certificate pinned by its
//! fingerprint or trusted as a CA file, API token and ticket sign-in, and what an
//! environment says when any of them is wrong; VMs cloned, sized, seeded, placed, listed,
//! started, stopped (one, or by stage), rebooted, tagged, made templates of and destroyed
//! through overcast's API, PVE's task failures in its own words, and operations that
//! converge on a flaky, slow cluster, each outcome read back from fakepve.
//!
//! What fakepve cannot prove, being a simulator and not PVE: that a guest boots and
//! cloud-init reads the seed (fakepve runs no guest; the seed's making is proven by the
//! local VMs' tests, which boot one), that a resize grows a real disk (fakepve checks the
//! request against PVE's schema and stores nothing), real placement under memory pressure
//! (its nodes report fixed usage), linked clones' storage rules, and PVE's timing.

use base64::Engine;
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
    // fakepve holds tickets to PVE's rule: a change without its CSRF token is refused, so
    // the ticket environment's changes in the tests below prove overcast sends it.
    let http = pve.https();
    let ticket: Value = http
        .post(format!("{}/api2/json/access/ticket", pve.url))
        .form(&[("username", "root@pam"), ("password", "secret")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cookie = format!(
        "PVEAuthCookie={}",
        ticket["data"]["ticket"].as_str().unwrap()
    );
    let start = format!("{}/api2/json/nodes/pve1/qemu/101/status/start", pve.url);
    let refused = http
        .post(&start)
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), reqwest::StatusCode::UNAUTHORIZED);

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

    // A guest that ignores ACPI: its reboot fails with PVE's task text (a timeout, which
    // asking again would not mend), and its stop goes through all the same, hard after
    // the shutdown's timeout.
    pve.control("set_vm", json!({"vmid": 100, "acpi": false}));
    let (code, refused) = server
        .call(
            Method::POST,
            "/v1/environments/pve/instances/100/reboot?timeout=60",
            Some(ADMIN),
            Some(json!({})),
        )
        .await;
    let error = refused["error"].clone();
    assert_eq!(code, reqwest::StatusCode::CONFLICT, "{refused}");
    assert_eq!(error["code"], "shutdown_timeout");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("VM quit/powerdown failed - got timeout"),
        "{refused}"
    );
    let op = server
        .change(
            Method::POST,
            "/v1/environments/pve/instances/100/stop",
            None,
        )
        .await;
    assert_eq!(op["status"], "succeeded");
    assert_eq!(status(100).await, "stopped");
    let (_, vm) = server
        .call(
            Method::GET,
            "/v1/environments/pve/instances/100",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(vm["state"], "stopped", "{vm}");

    // PVE's own refusal of a start (the VM is running, says its task) is a conflict in its
    // words, since the VM is not in fact running.
    pve.control(
        "fail",
        json!({"method": "POST", "suffix": "/nodes/pve1/qemu/100/status/start",
               "error": "already_running", "times": 1}),
    );
    let (code, refused) = server
        .call(
            Method::POST,
            "/v1/environments/pve/instances/100/start?timeout=60",
            Some(ADMIN),
            Some(json!({})),
        )
        .await;
    assert_eq!(code, reqwest::StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"]["code"], "incorrect_instance_state");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("VM 100 already running"),
        "{refused}"
    );
    assert_eq!(status(100).await, "stopped");
    server
        .change(
            Method::POST,
            "/v1/environments/pve/instances/100/start",
            None,
        )
        .await;
    assert_eq!(status(100).await, "running");

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

/// The `data` of fakepve's config of `vmid` on `node`, every value as text (PVE sends
/// some numbers as strings).
async fn config_of(pve: &FakePve, token: &str, node: &str, vmid: &str) -> Value {
    let config = pve
        .get(token, &format!("/nodes/{node}/qemu/{vmid}/config"))
        .await;
    let text = config
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), json!(v.to_string().trim_matches('"'))))
        .collect();
    Value::Object(text)
}

/// The guests fakepve holds now, by VM id: (node, status, template).
async fn guests_of(pve: &FakePve, token: &str) -> std::collections::BTreeMap<String, Value> {
    pve.get(token, "/cluster/resources?type=vm")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["vmid"].to_string(), r.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vms_life_clone_resize_seed_place_act_template_and_destroy() {
    let token = format!("{TOKEN}={TOKEN_SECRET}");
    // The template on both nodes, as teams keep one per node without shared storage.
    let disk = "local-lvm:base-9000-disk-0,size=8G";
    let pve = FakePve::start(
        &json!({"guests": [
            {"vmid": 9000, "name": "debian-12", "template": true, "node": "pve1",
             "config": {"cores": 1, "memory": 1024, "scsi0": disk}},
            {"vmid": 9001, "name": "debian-12", "template": true, "node": "pve2",
             "config": {"cores": 1, "memory": 1024, "scsi0": disk}},
        ]}),
        &[&token],
    );
    let secrets = tempfile::tempdir().unwrap();
    let server = ticket_server(&pve, secrets.path()).await;

    // A clone with user data and a bigger disk.
    let user_data =
        base64::engine::general_purpose::STANDARD.encode("#cloud-config\nhostname: api\n");
    let op = server
        .change(
            Method::POST,
            "/v1/environments/pve/instances",
            Some(
                json!({"machine_type": "pve-small", "name": "api", "stage": "test",
                        "disk_gb": 20, "user_data": user_data}),
            ),
        )
        .await;
    let vmid = op["results"][0]["target"].as_str().unwrap().to_string();
    let guests = guests_of(&pve, &token).await;
    let node = guests[&vmid]["node"].as_str().unwrap().to_string();
    assert_eq!(guests[&vmid]["status"], "running");
    let config = config_of(&pve, &token, &node, &vmid).await;
    assert_eq!(
        (config["cores"].as_str(), config["memory"].as_str()),
        (Some("2"), Some("2048"))
    );
    let seed = format!("overcast-seed-{vmid}.iso");
    assert_eq!(
        config["ide3"],
        format!("local:iso/{seed},media=cdrom"),
        "{config}"
    );
    let files = pve.control("storage_files", json!({"storage": "local"}));
    assert!(files.as_array().unwrap().contains(&json!(seed)), "{files}");
    let resized = pve.control("requests", json!({"path": format!("/qemu/{vmid}/resize")}));
    let body = resized[0][2].as_str().unwrap();
    assert!(
        body.contains("disk=scsi0") && body.contains("size=20G"),
        "{resized}"
    );
    // A disk smaller than the template's is refused before anything is made.
    let (code, refused) = server
        .call(
            Method::POST,
            "/v1/environments/pve/instances",
            Some(ADMIN),
            Some(json!({"machine_type": "pve-small", "disk_gb": 4})),
        )
        .await;
    assert_eq!(code, reqwest::StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(refused["error"]["field"], "disk_gb", "{refused}");
    // PVE's own validation: a name that is no DNS name is its 400, naming the field.
    let (code, refused) = server
        .call(
            Method::POST,
            "/v1/environments/pve/instances",
            Some(ADMIN),
            Some(json!({"machine_type": "pve-small", "name": "no_such name!"})),
        )
        .await;
    assert_eq!(code, reqwest::StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(refused["error"]["field"], "name", "{refused}");
    assert_eq!(guests_of(&pve, &token).await.len(), 3, "nothing half made");

    // Placement: two VMs go to the two nodes holding the template; a zone is obeyed.
    let op = server
        .change(
            Method::POST,
            "/v1/environments/pve/instances",
            Some(json!({"machine_type": "pve-small", "count": 2})),
        )
        .await;
    let guests = guests_of(&pve, &token).await;
    let mut nodes: Vec<&str> = op["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            guests[r["target"].as_str().unwrap()]["node"]
                .as_str()
                .unwrap()
        })
        .collect();
    nodes.sort();
    assert_eq!(nodes, ["pve1", "pve2"]);
    let op = server
        .change(
            Method::POST,
            "/v1/environments/pve/instances",
            Some(json!({"machine_type": "pve-small", "zone": "pve2"})),
        )
        .await;
    let on_pve2 = op["results"][0]["target"].as_str().unwrap();
    assert_eq!(guests_of(&pve, &token).await[on_pve2]["node"], "pve2");

    // The guest agent's address, when it runs, read with the VM at PVE.
    pve.control(
        "set_vm",
        json!({"vmid": vmid.parse::<u32>().unwrap(), "agent": {}}),
    );
    let (_, vm) = server
        .call(
            Method::GET,
            &format!("/v1/environments/pve/instances/{vmid}?fresh=true"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(vm["private_ip"], "192.0.2.10", "{vm}");
    assert_eq!(vm["stage"], "test");
    assert!(vm["tags"].get("overcast:launch").is_none(), "{vm}");

    // Stop, start, reboot.
    for (action, state) in [
        ("stop", "stopped"),
        ("start", "running"),
        ("reboot", "running"),
    ] {
        let op = server
            .change(
                Method::POST,
                &format!("/v1/environments/pve/instances/{vmid}/{action}"),
                None,
            )
            .await;
        assert_eq!(op["status"], "succeeded", "{op}");
        assert_eq!(guests_of(&pve, &token).await[&vmid]["status"], state);
    }
    let rebooted = pve.control(
        "requests",
        json!({"path": format!("/qemu/{vmid}/status/reboot")}),
    );
    assert_eq!(rebooted.as_array().unwrap().len(), 1);

    // A template of the stopped VM (a clone of it; the VM stays), listed as an image,
    // launched from, and deleted.
    server
        .change(
            Method::POST,
            &format!("/v1/environments/pve/instances/{vmid}/stop"),
            None,
        )
        .await;
    let op = server
        .change(
            Method::POST,
            "/v1/environments/pve/images",
            Some(json!({"instance_id": vmid, "name": "api-golden"})),
        )
        .await;
    let template = op["results"][0]["target"].as_str().unwrap().to_string();
    let guests = guests_of(&pve, &token).await;
    assert_eq!(guests[&template]["template"], 1);
    assert_eq!(guests[&template]["name"], "api-golden");
    assert_eq!(guests[&vmid]["template"], 0);
    let (_, images) = server
        .call(
            Method::GET,
            "/v1/environments/pve/images",
            Some(ADMIN),
            None,
        )
        .await;
    let mut names: Vec<&str> = images["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["api-golden", "debian-12", "debian-12"], "{images}");
    let op = server
        .change(
            Method::POST,
            "/v1/environments/pve/instances",
            Some(json!({"image": "api-golden", "cpus": 1, "memory_mb": 512})),
        )
        .await;
    let from_template = op["results"][0]["target"].as_str().unwrap().to_string();
    assert_eq!(
        guests_of(&pve, &token).await[&from_template]["status"],
        "running"
    );
    server
        .change(
            Method::DELETE,
            &format!("/v1/environments/pve/images/{template}"),
            None,
        )
        .await;
    assert!(!guests_of(&pve, &token).await.contains_key(&template));

    // Terminate: the VM is destroyed with purge, and its seed goes with it.
    let op = server
        .change(
            Method::DELETE,
            &format!("/v1/environments/pve/instances/{vmid}"),
            None,
        )
        .await;
    assert_eq!(op["status"], "succeeded", "{op}");
    assert!(!guests_of(&pve, &token).await.contains_key(&vmid));
    let destroyed = pve.control("requests", json!({"path": format!("/qemu/{vmid}")}));
    let delete = destroyed
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r[0] == "DELETE")
        .expect("a DELETE of the VM");
    assert!(
        delete[1]
            .as_str()
            .unwrap()
            .ends_with(&format!("/qemu/{vmid}")),
        "{delete}"
    );
    let files = pve.control("storage_files", json!({"storage": "local"}));
    assert!(!files.as_array().unwrap().contains(&json!(seed)), "{files}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_converge_on_a_flaky_and_slow_cluster() {
    let token = format!("{TOKEN}={TOKEN_SECRET}");
    // PVE's seconds are real ones here: a response's latency takes its time.
    let pve = FakePve::start_scaled(&guests(), &[&token], 1.0);
    let secrets = tempfile::tempdir().unwrap();
    let server = ticket_server(&pve, secrets.path()).await;

    // A slow API: 50 ms on every answer. Figure: one VM from create to running.
    pve.control("slow_network", json!({"latency": 0.05}));
    let started = std::time::Instant::now();
    let op = server
        .change(
            Method::POST,
            "/v1/environments/pve/instances",
            Some(json!({"machine_type": "pve-small", "stage": "test"})),
        )
        .await;
    let one = started.elapsed();
    let calls = op["backend_calls"].clone();
    assert_eq!(op["status"], "succeeded", "{op}");

    // Twenty more, then a flaky network: one request in five is dropped, yet a stop by
    // stage ends with every VM stopped.
    pve.control("slow_network", json!({"latency": 0.0}));
    server
        .change(
            Method::POST,
            "/v1/environments/pve/instances",
            Some(json!({"machine_type": "pve-small", "count": 20, "stage": "test"})),
        )
        .await;
    pve.control("flaky_network", json!({"drop_rate": 0.2, "seed": 7}));
    let started = std::time::Instant::now();
    let op = server
        .change(
            Method::POST,
            "/v1/environments/pve/instances/stop",
            Some(json!({"stage": "test", "force": true})),
        )
        .await;
    let stopped = started.elapsed();
    assert_eq!(op["status"], "succeeded", "{op}");
    assert_eq!(op["progress"]["done"], 21, "{op}");
    pve.control("flaky_network", json!({"drop_rate": 0.0}));
    let still_running = guests_of(&pve, &token)
        .await
        .values()
        .filter(|g| {
            g["status"] == "running" && g["tags"].as_str().is_some_and(|t| t.contains("stage-test"))
        })
        .count();
    assert_eq!(still_running, 0);
    println!(
        "fakepve, 50 ms a response: one VM cloned, sized, tagged and started in {:.2} s ({} backend calls); \
         21 VMs stopped by stage with 1 request in 5 dropped in {:.2} s ({} backend calls)",
        one.as_secs_f64(),
        calls,
        stopped.as_secs_f64(),
        op["backend_calls"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cloud_vm_api_drives_proxmox_vms_with_its_cloud_init_in_the_seed() {
    let token = format!("{TOKEN}={TOKEN_SECRET}");
    let pve = FakePve::start(&guests(), &[&token]);
    let secrets = tempfile::tempdir().unwrap();
    let server = ticket_server(&pve, secrets.path()).await;
    let bearer = server.token("acme", "operator").await;
    let call = |method: Method, path: String, body: Option<Value>| {
        let mut request = server.request(method, &path, Some(&bearer));
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.text().await.unwrap())
        }
    };

    // The tool's own create, its cloud_init wrapped as `base64` prints it.
    let script = "#!/bin/sh\necho VM-API-ON-PROXMOX\n";
    let encoded = base64::engine::general_purpose::STANDARD.encode(script);
    let body = json!({"name": "test1", "environment": "pve", "machinetype": "pve-small",
                      "cloud_init": encoded});
    let (status, text) = call(Method::POST, "/vm".into(), Some(body)).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{text}");
    let created: Value = serde_json::from_str(&text).unwrap();
    let vmid = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["name"], "test1");
    let seed = pve.control("uploaded", json!({}));
    assert_eq!(seed["filename"], format!("overcast-seed-{vmid}.iso"));
    let iso = base64::engine::general_purpose::STANDARD
        .decode(seed["data"].as_str().unwrap())
        .unwrap();
    assert!(
        iso.windows(script.len()).any(|w| w == script.as_bytes()),
        "the seed PVE received holds the decoded cloud_init"
    );

    // Its stop, list and delete, as the tool answered them; the VM is gone from PVE.
    let (status, _) = call(
        Method::GET,
        format!("/vm/{vmid}/stop?environment=pve"),
        None,
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::NO_CONTENT);
    let (_, listed) = call(Method::GET, "/vm?environment=pve".into(), None).await;
    assert_eq!(
        listed,
        format!("[{{\"id\":\"{vmid}\",\"name\":\"test1\",\"status\":\"ready\"}}]\n")
    );
    let (status, _) = call(Method::DELETE, format!("/vm/{vmid}?environment=pve"), None).await;
    assert_eq!(status, reqwest::StatusCode::NO_CONTENT);
    let resources = pve.get(&token, "/cluster/resources?type=vm").await;
    assert!(!resources.to_string().contains(&format!("\"vmid\":{vmid},")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_environment_can_clone_linked_onto_its_own_bridge() {
    let token = format!("{TOKEN}={TOKEN_SECRET}");
    let pve = FakePve::start(
        &json!({"guests": [
            {"vmid": 9000, "name": "debian-12", "template": true,
             "config": {"cores": 1, "memory": 1024, "scsi0": "local-lvm:base-9000-disk-0,size=8G",
                        "net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0"}},
        ]}),
        &[&token],
    );
    let secrets = tempfile::tempdir().unwrap();
    let secret_file = secrets.path().join("token");
    std::fs::write(&secret_file, TOKEN_SECRET).unwrap();
    let server = server(vec![(
        "pve",
        json!({"url": pve.url, "fingerprint": pve.fingerprint, "token_id": TOKEN,
               "secret_file": secret_file, "linked_clones": true, "bridge": "vmbr1"}),
    )])
    .await;
    let op = server
        .change(
            Method::POST,
            "/v1/environments/pve/instances",
            Some(json!({"machine_type": "pve-small"})),
        )
        .await;
    let vmid = op["results"][0]["target"].as_str().unwrap().to_string();
    let clone = pve.control("requests", json!({"path": "/qemu/9000/clone"}));
    let body = clone[0][2].as_str().unwrap();
    assert!(body.contains("full=0"), "a linked clone: {body}");
    let config = config_of(&pve, &token, "pve1", &vmid).await;
    assert!(
        config["net0"].as_str().unwrap().contains("bridge=vmbr1"),
        "{config}"
    );
    assert_eq!(
        guests_of(&pve, &token).await[&vmid]["status"],
        "running",
        "{config}"
    );
}
