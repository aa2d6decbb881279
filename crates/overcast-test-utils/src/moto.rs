//! moto, the AWS stand-in the AWS tests run against: one server for the whole test process,
//! a fresh account per test, and (feature `aws`) SDK clients into it, the ground truth tests
//! check overcast against.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The two regions of every `aws-test` environment.
pub const REGIONS: [&str; 2] = ["eu-west-1", "us-east-1"];

/// The moto server of this test process, started on first use and stopped when the
/// process ends (a watchdog shell kills it once its parent is gone). Also sets the
/// credentials moto accepts in this process's environment, so servers in this process and
/// the processes it starts sign with them.
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

/// The role overcast assumes in a moto account.
pub fn role_arn(account: &str) -> String {
    format!("arn:aws:iam::{account}:role/overcast-test")
}

/// Held by a test that drives thousands of instances through moto, so that no two such
/// tests run at once: moto is one Python process, and two of them together take it longer
/// than an operation's timeout. Lighter tests go on beside it.
pub async fn heavy_use() -> tokio::sync::MutexGuard<'static, ()> {
    static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    HEAVY.lock().await
}

#[cfg(feature = "aws")]
pub use sdk::*;

#[cfg(feature = "aws")]
mod sdk {
    use super::{moto_url, role_arn};
    use aws_config::{BehaviorVersion, Region};
    use aws_sdk_ec2::types::{Instance, InstanceStateName};
    use std::collections::{BTreeMap, HashMap};

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
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(role),
            )
            .build()
    }

    /// A direct EC2 client into a moto account.
    pub async fn ec2_client(account: &str, region: &str) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::new(&moto_config(account, region).await)
    }

    /// A direct ECS client into a moto account.
    pub async fn ecs_client(account: &str, region: &str) -> aws_sdk_ecs::Client {
        aws_sdk_ecs::Client::new(&moto_config(account, region).await)
    }

    /// A direct CloudWatch Logs client into a moto account.
    pub async fn logs_client(account: &str, region: &str) -> aws_sdk_cloudwatchlogs::Client {
        aws_sdk_cloudwatchlogs::Client::new(&moto_config(account, region).await)
    }

    /// A direct IAM client into a moto account.
    pub async fn iam_client(account: &str, region: &str) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&moto_config(account, region).await)
    }

    /// A direct Cloud Map client into a moto account.
    pub async fn servicediscovery_client(
        account: &str,
        region: &str,
    ) -> aws_sdk_servicediscovery::Client {
        aws_sdk_servicediscovery::Client::new(&moto_config(account, region).await)
    }

    /// A direct S3 client into a moto account, path-style.
    pub async fn s3_client(account: &str, region: &str) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::config::Builder::from(&moto_config(account, region).await)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// A direct Secrets Manager client into a moto account.
    pub async fn secretsmanager_client(
        account: &str,
        region: &str,
    ) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&moto_config(account, region).await)
    }

    /// A direct SSM client into a moto account.
    pub async fn ssm_client(account: &str, region: &str) -> aws_sdk_ssm::Client {
        aws_sdk_ssm::Client::new(&moto_config(account, region).await)
    }

    /// An image moto knows in the client's region (its built-in AMIs).
    pub async fn some_image(ec2: &aws_sdk_ec2::Client) -> String {
        let images = ec2.describe_images().owners("amazon").send().await.unwrap();
        images.images()[0].image_id().unwrap().to_string()
    }

    /// Launches `count` instances (in batches of 500) tagged as the admin org's, in
    /// `stage`, straight in moto; answers their ids.
    pub async fn launch_fleet(ec2: &aws_sdk_ec2::Client, count: i32, stage: &str) -> Vec<String> {
        use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
        let image = some_image(ec2).await;
        let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
        let mut left = count;
        let mut ids = Vec::new();
        while left > 0 {
            let batch = left.min(500);
            let made = ec2
                .run_instances()
                .image_id(&image)
                .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
                .min_count(batch)
                .max_count(batch)
                .tag_specifications(
                    TagSpecification::builder()
                        .resource_type(ResourceType::Instance)
                        .tags(tag("overcast:org", "admin"))
                        .tags(tag("stage", stage))
                        .build(),
                )
                .send()
                .await
                .unwrap();
            ids.extend(
                made.instances()
                    .iter()
                    .filter_map(|i| i.instance_id().map(str::to_string)),
            );
            left -= batch;
        }
        ids
    }

    /// How many instances moto holds in `state`.
    pub async fn count_in_state(ec2: &aws_sdk_ec2::Client, state: &str) -> usize {
        let out = ec2
            .describe_instances()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("instance-state-name")
                    .values(state)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        out.reservations()
            .iter()
            .map(|r| r.instances().len())
            .sum::<usize>()
    }

    /// One instance as moto holds it.
    #[derive(Debug, Clone)]
    pub struct InMoto {
        pub state: InstanceStateName,
        pub tags: BTreeMap<String, String>,
        /// Everything else moto says of it.
        pub instance: Instance,
    }

    impl InMoto {
        fn new(instance: &Instance) -> InMoto {
            InMoto {
                state: instance.state().unwrap().name().unwrap().clone(),
                tags: instance
                    .tags()
                    .iter()
                    .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
                    .collect(),
                instance: instance.clone(),
            }
        }

        pub fn instance_type(&self) -> &str {
            self.instance.instance_type().unwrap().as_str()
        }
    }

    /// What moto holds for one instance in the client's region.
    pub async fn in_moto(ec2: &aws_sdk_ec2::Client, id: &str) -> InMoto {
        all_in_moto(ec2, &[id.to_string()]).await.remove(0)
    }

    /// What moto holds for these instances in the client's region, in the order of `ids`.
    pub async fn all_in_moto(ec2: &aws_sdk_ec2::Client, ids: &[String]) -> Vec<InMoto> {
        let out = ec2
            .describe_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .send()
            .await
            .unwrap();
        let found: HashMap<&str, &Instance> = out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .map(|i| (i.instance_id().unwrap(), i))
            .collect();
        ids.iter()
            .map(|id| InMoto::new(found.get(id.as_str()).expect("moto knows the instance")))
            .collect()
    }
}
