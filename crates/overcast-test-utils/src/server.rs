//! overcast's server inside the test process: the real `Core` and `Server` on a free
//! loopback port, with a temporary data dir.

use crate::{Api, ADMIN};
use overcast_core::config::{Config, EnvironmentConfig};
use overcast_core::Core;
use overcast_provider::ProviderFactories;
use overcast_server::Server;
use std::path::Path;

/// A config listening on a free loopback port, with its data in `dir`.
pub fn config(dir: &Path) -> Config {
    Config {
        listen: "127.0.0.1:0".into(),
        data_dir: Some(dir.to_path_buf()),
        ..Config::default()
    }
}

/// An environment made of its config keys, as a config file gives them:
/// `environment(json!({"provider": "aws", "regions": ["eu-west-1"]}))`.
pub fn environment(keys: serde_json::Value) -> EnvironmentConfig {
    serde_json::from_value(keys).expect("an environment's config keys")
}

/// A running server, stopped when dropped. It dereferences to its [`Api`].
pub struct TestServer {
    api: Api,
    /// The moto account of the `aws-test` environment, on servers that have one.
    pub account: Option<String>,
    /// The server's data dir, holding its SQLite database.
    pub dir: tempfile::TempDir,
    /// The URL of the EC2 listener (`[compat.ec2] listen`), when the config has one.
    pub ec2_url: Option<String>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl std::ops::Deref for TestServer {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl TestServer {
    /// A server without providers: the environments of its config (the embedded `local`)
    /// are listed as unreachable, and everything else works.
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// A server without providers, with `adjust` applied to its config.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path());
        adjust(&mut config);
        Self::open(config, dir, ProviderFactories::new(), None).await
    }

    /// A server with the providers of this build of overcast and `adjust`ed config (no
    /// `aws-test` environment).
    #[cfg(feature = "aws")]
    pub async fn built_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path());
        adjust(&mut config);
        Self::open(config, dir, overcast::providers(), None).await
    }

    /// A server with the providers of this build of overcast and its `aws-test` environment,
    /// spanning [`crate::moto::REGIONS`] of a fresh moto account.
    #[cfg(feature = "aws")]
    pub async fn aws() -> TestServer {
        Self::aws_with(crate::moto::new_account(), |_| {}).await
    }

    /// An `aws-test` server on the moto account `account`, with `adjust` applied to its
    /// config.
    #[cfg(feature = "aws")]
    pub async fn aws_with(account: String, adjust: impl FnOnce(&mut Config)) -> TestServer {
        use crate::moto::{moto_url, role_arn, REGIONS};
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path());
        config.environments.insert(
            "aws-test".into(),
            environment(serde_json::json!({
                "provider": "aws",
                "regions": REGIONS,
                "endpoint_url": moto_url(),
                "role_arn": role_arn(&account),
                "session_name": "overcast-test",
            })),
        );
        adjust(&mut config);
        Self::open(config, dir, overcast::providers(), Some(account)).await
    }

    async fn open(
        mut config: Config,
        dir: tempfile::TempDir,
        providers: ProviderFactories,
        account: Option<String>,
    ) -> TestServer {
        config.fill_defaults();
        let (core, _) = Core::open(config, &providers, Some(ADMIN.into()))
            .await
            .unwrap();
        let server = Server::bind(core).await.unwrap();
        let scheme = if server.is_tls() { "https" } else { "http" };
        let api = Api::new(format!("{scheme}://{}", server.local_addr()));
        let ec2_url = server.ec2_addr().map(|addr| format!("http://{addr}"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        TestServer {
            api,
            account,
            dir,
            ec2_url,
            _stop: stop,
        }
    }

    /// A direct EC2 client into this server's moto account: the ground truth.
    #[cfg(feature = "aws")]
    pub async fn ec2(&self, region: &str) -> aws_sdk_ec2::Client {
        crate::moto::ec2_client(self.moto_account(), region).await
    }

    /// A direct S3 client into this server's moto account, path-style: the ground truth.
    #[cfg(feature = "aws")]
    pub async fn s3(&self, region: &str) -> aws_sdk_s3::Client {
        crate::moto::s3_client(self.moto_account(), region).await
    }

    /// A direct Secrets Manager client into this server's moto account: the ground truth.
    #[cfg(feature = "aws")]
    pub async fn secretsmanager(&self, region: &str) -> aws_sdk_secretsmanager::Client {
        crate::moto::secretsmanager_client(self.moto_account(), region).await
    }

    /// A direct SSM client into this server's moto account: the ground truth.
    #[cfg(feature = "aws")]
    pub async fn ssm(&self, region: &str) -> aws_sdk_ssm::Client {
        crate::moto::ssm_client(self.moto_account(), region).await
    }

    #[cfg(feature = "aws")]
    fn moto_account(&self) -> &str {
        self.account
            .as_deref()
            .expect("a server made by TestServer::aws has a moto account")
    }
}
