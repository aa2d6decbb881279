//! The Proxmox provider against fakepve over real HTTPS: the certificate pinned by its
//! fingerprint or trusted as a CA file, API token and ticket sign-in, and what an
//! environment says when any of them is wrong.

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
    ]})
}

/// A server with one `proxmox` environment per entry of `envs` (name, its settings).
async fn server(envs: Vec<(&str, Value)>) -> TestServer {
    TestServer::built_with(|config| {
        for (name, mut settings) in envs {
            settings["provider"] = json!("proxmox");
            config
                .environments
                .insert(name.into(), environment(settings));
        }
    })
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
