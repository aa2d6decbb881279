//! Test support: a moto server for the whole test process, and an overcast server per test
//! whose `aws` environment lives in a moto account of its own.

#![allow(dead_code)]

pub mod process;

use aws_config::{BehaviorVersion, Region};
use overcast_core::config::{Config, EnvironmentConfig, ProviderKind};
use overcast_core::Core;
use overcast_server::Server;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

pub const ADMIN: &str = "oc_test_admin_secret_aws_0123456789";
pub const REGIONS: [&str; 2] = ["eu-west-1", "us-east-1"];

/// The moto server of this test process, started on first use and stopped when the
/// process ends (a watchdog shell kills it once its parent is gone).
// The watchdog outlives every test by design; init reaps it after the process ends.
#[allow(clippy::zombie_processes)]
pub fn moto_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let moto = std::env::var("OVERCAST_TEST_MOTO").expect(
            "OVERCAST_TEST_MOTO is not set: run ./scripts/test, which installs moto and sets it",
        );
        // Credentials moto accepts; nothing from the host's AWS config may leak in.
        for (key, value) in [
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_CONFIG_FILE", "/nonexistent"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
        ] {
            std::env::set_var(key, value);
        }
        let script = format!(
            "'{moto}' -H 127.0.0.1 -p 0 & child=$!; trap 'kill $child' EXIT; \
             while kill -0 {parent} 2>/dev/null; do sleep 1; done",
            parent = std::process::id()
        );
        let mut watchdog = Command::new("sh")
            .args(["-c", &script])
            .env("MOTO_ENABLE_AMI_VALIDATION", "true")
            .env("MOTO_ENABLE_KEYPAIR_VALIDATION", "true")
            .env("MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION", "true")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("moto starts");
        let stderr = watchdog.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let url = loop {
            let line = lines.next().expect("moto says where it runs").unwrap();
            if let Some(at) = line.find("Running on http://") {
                break line[at + "Running on ".len()..].trim().to_string();
            }
        };
        // Keep draining moto's log so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        url
    })
}

/// A fresh moto account: state no other test sees.
pub fn new_account() -> String {
    format!("{:012}", rand::random::<u64>() % 1_000_000_000_000)
}

pub fn role_arn(account: &str) -> String {
    format!("arn:aws:iam::{account}:role/overcast-test")
}

/// An overcast server with one `aws` environment, `aws-test`, spanning two regions of a
/// fresh moto account.
pub struct TestServer {
    pub base: String,
    pub http: reqwest::Client,
    pub account: String,
    /// The server's data dir, holding its SQLite database.
    pub dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(new_account(), |_| {}).await
    }

    /// A server on the moto account `account`, with `adjust` applied to its config.
    pub async fn start_with(account: String, adjust: impl FnOnce(&mut Config)) -> TestServer {
        let moto = moto_url().to_string();
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            listen: "127.0.0.1:0".into(),
            data_dir: Some(dir.path().to_path_buf()),
            ..Config::default()
        };
        config.environments.insert(
            "aws-test".into(),
            EnvironmentConfig {
                provider: ProviderKind::Aws,
                regions: REGIONS.iter().map(|r| r.to_string()).collect(),
                endpoint_url: Some(moto),
                role_arn: Some(role_arn(&account)),
                session_name: Some("overcast-test".into()),
                ..aws_environment()
            },
        );
        adjust(&mut config);
        config.fill_defaults();
        let (core, _) = Core::open(config, overcast::providers(), Some(ADMIN.into()))
            .await
            .unwrap();
        let server = Server::bind(core).await.unwrap();
        let base = format!("http://{}", server.local_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        TestServer {
            base,
            http: reqwest::Client::new(),
            account,
            dir,
            _stop: stop,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Creates a token and returns its secret.
    pub async fn token(&self, org: &str, role: &str) -> String {
        let body = serde_json::json!({"org": org, "role": role});
        let (status, answer) = self
            .call(Method::POST, "/v1/tokens", ADMIN, Some(body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        answer["secret"].as_str().unwrap().to_string()
    }

    /// A direct EC2 client into this test's moto account: the ground truth.
    pub async fn ec2(&self, region: &str) -> aws_sdk_ec2::Client {
        ec2_client(&self.account, region).await
    }

    /// A direct S3 client into this test's moto account, path-style: the ground truth.
    pub async fn s3(&self, region: &str) -> aws_sdk_s3::Client {
        s3_client(&self.account, region).await
    }

    /// The server's `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.base))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// An empty aws environment to fill in.
pub fn aws_environment() -> EnvironmentConfig {
    EnvironmentConfig {
        provider: ProviderKind::Aws,
        description: None,
        stages: None,
        regions: vec![],
        endpoint_url: None,
        profile: None,
        role_arn: None,
        external_id: None,
        session_name: None,
        subnet: None,
        security_groups: vec![],
        key_pair: None,
        default_org: None,
    }
}

/// The SDK config of a moto account's region, with credentials of the account's role.
async fn moto_config(account: &str, region: &str) -> aws_config::SdkConfig {
    let base = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .endpoint_url(moto_url())
        .load()
        .await;
    let role = aws_config::sts::AssumeRoleProvider::builder(role_arn(account))
        .session_name("ground-truth")
        .configure(&base)
        .build()
        .await;
    base.into_builder()
        .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(role))
        .build()
}

/// A direct EC2 client into a moto account.
pub async fn ec2_client(account: &str, region: &str) -> aws_sdk_ec2::Client {
    aws_sdk_ec2::Client::new(&moto_config(account, region).await)
}

/// A direct S3 client into a moto account, path-style.
pub async fn s3_client(account: &str, region: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(&moto_config(account, region).await)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// Every backend call `/metrics` has counted for `action` with outcome `ok`.
pub fn backend_calls(metrics: &str, action: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("overcast_backend_calls_total{"))
        .filter(|l| l.contains(&format!("action=\"{action}\"")) && l.contains("outcome=\"ok\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

/// An image moto knows in this region (its built-in AMIs).
pub async fn some_image(ec2: &aws_sdk_ec2::Client) -> String {
    let images = ec2.describe_images().owners("amazon").send().await.unwrap();
    images.images()[0].image_id().unwrap().to_string()
}

/// Polls until `check` holds, for up to 10 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within 10 s");
}
