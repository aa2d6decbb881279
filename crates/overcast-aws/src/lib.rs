//! The AWS backend: EC2, S3, ECS with CloudWatch Logs, IAM and Cloud Map, Secrets Manager
//! and SSM through the official AWS SDK for Rust. The only crate that touches
//! `aws-*`. One SDK client per region, made on first use; credentials from the default
//! chain, a named profile, or an assumed role (cached and refreshed by the SDK); any
//! AWS-compatible endpoint through `endpoint_url`.

mod attempts;
mod compute;
mod container_support;
mod containers;
mod errors;
mod firewall;
mod images;
mod keypairs;
mod secrets;
mod settings;
mod storage;
mod tags;

pub use settings::{AwsFactory, AwsMachine, Settings};

use async_trait::async_trait;
use attempts::AttemptObserver;
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use overcast_provider::{
    CallObserver, Compute, ContainerSupport, Containers, Firewall, Images, KeyPairs, ObjectStore,
    Parameters, Provider, ProviderError, ProviderErrorKind, ProviderStatus, Secrets,
    ServiceDiscovery, Tags,
};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::OnceCell;

/// Backend calls are retried this often (with exponential backoff and jitter) on
/// throttling and transient errors before the error reaches the operation.
const MAX_ATTEMPTS: u32 = 5;

pub struct AwsProvider {
    /// The environment's name, put on every instance overcast reports.
    environment: String,
    settings: Settings,
    observer: Arc<dyn CallObserver>,
    clients: OnceCell<HashMap<String, RegionClients>>,
}

/// The SDK clients of one region.
struct RegionClients {
    ec2: aws_sdk_ec2::Client,
    ecs: aws_sdk_ecs::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
    iam: aws_sdk_iam::Client,
    discovery: aws_sdk_servicediscovery::Client,
    s3: aws_sdk_s3::Client,
    secretsmanager: aws_sdk_secretsmanager::Client,
    ssm: aws_sdk_ssm::Client,
}

impl AwsProvider {
    pub fn new(
        environment: &str,
        settings: Settings,
        observer: Arc<dyn CallObserver>,
    ) -> AwsProvider {
        AwsProvider {
            environment: environment.to_string(),
            settings,
            observer,
            clients: OnceCell::new(),
        }
    }

    /// The EC2 client of a region of this environment.
    async fn ec2(&self, region: &str) -> Result<&aws_sdk_ec2::Client, ProviderError> {
        Ok(&self.region_clients(region).await?.ec2)
    }

    /// The ECS client of a region of this environment.
    async fn ecs(&self, region: &str) -> Result<&aws_sdk_ecs::Client, ProviderError> {
        Ok(&self.region_clients(region).await?.ecs)
    }

    /// The CloudWatch Logs client of a region of this environment.
    async fn logs(&self, region: &str) -> Result<&aws_sdk_cloudwatchlogs::Client, ProviderError> {
        Ok(&self.region_clients(region).await?.logs)
    }

    /// An IAM client (IAM is global; any region's client reaches it).
    async fn iam(&self, region: &str) -> Result<&aws_sdk_iam::Client, ProviderError> {
        Ok(&self.region_clients(region).await?.iam)
    }

    /// The Cloud Map client of a region of this environment.
    async fn discovery(
        &self,
        region: &str,
    ) -> Result<&aws_sdk_servicediscovery::Client, ProviderError> {
        Ok(&self.region_clients(region).await?.discovery)
    }

    /// The S3 client of a region of this environment.
    async fn s3(&self, region: &str) -> Result<&aws_sdk_s3::Client, ProviderError> {
        Ok(&self.region_clients(region).await?.s3)
    }

    /// The Secrets Manager client of a region of this environment.
    async fn secretsmanager(
        &self,
        region: &str,
    ) -> Result<&aws_sdk_secretsmanager::Client, ProviderError> {
        Ok(&self.region_clients(region).await?.secretsmanager)
    }

    /// The SSM client of a region of this environment.
    async fn ssm(&self, region: &str) -> Result<&aws_sdk_ssm::Client, ProviderError> {
        Ok(&self.region_clients(region).await?.ssm)
    }

    async fn region_clients(&self, region: &str) -> Result<&RegionClients, ProviderError> {
        let clients = self
            .clients
            .get_or_init(|| async {
                let mut clients = HashMap::new();
                for region in &self.settings.regions {
                    let config = sdk_config(&self.settings, region).await;
                    let attempts = AttemptObserver {
                        region: region.clone(),
                        observer: self.observer.clone(),
                    };
                    // Path-style addressing, so S3-compatible stores work behind any endpoint;
                    // checksums only where S3 requires them, since not every such store
                    // takes the SDK's default ones.
                    let s3 = aws_sdk_s3::config::Builder::from(&config)
                        .interceptor(attempts.clone())
                        .force_path_style(true)
                        .request_checksum_calculation(
                            aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
                        )
                        .response_checksum_validation(
                            aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired,
                        )
                        .build();
                    clients.insert(
                        region.clone(),
                        RegionClients {
                            ec2: aws_sdk_ec2::Client::from_conf(
                                aws_sdk_ec2::config::Builder::from(&config)
                                    .interceptor(attempts.clone())
                                    .build(),
                            ),
                            ecs: aws_sdk_ecs::Client::from_conf(
                                aws_sdk_ecs::config::Builder::from(&config)
                                    .interceptor(attempts.clone())
                                    .build(),
                            ),
                            logs: aws_sdk_cloudwatchlogs::Client::from_conf(
                                aws_sdk_cloudwatchlogs::config::Builder::from(&config)
                                    .interceptor(attempts.clone())
                                    .build(),
                            ),
                            iam: aws_sdk_iam::Client::from_conf(
                                aws_sdk_iam::config::Builder::from(&config)
                                    .interceptor(attempts.clone())
                                    .build(),
                            ),
                            discovery: aws_sdk_servicediscovery::Client::from_conf(
                                aws_sdk_servicediscovery::config::Builder::from(&config)
                                    .interceptor(attempts.clone())
                                    .build(),
                            ),
                            secretsmanager: aws_sdk_secretsmanager::Client::from_conf(
                                aws_sdk_secretsmanager::config::Builder::from(&config)
                                    .interceptor(attempts.clone())
                                    .build(),
                            ),
                            ssm: aws_sdk_ssm::Client::from_conf(
                                aws_sdk_ssm::config::Builder::from(&config)
                                    .interceptor(attempts)
                                    .build(),
                            ),
                            s3: aws_sdk_s3::Client::from_conf(s3),
                        },
                    );
                }
                clients
            })
            .await;
        clients.get(region).ok_or_else(|| {
            ProviderError::new(
                ProviderErrorKind::InvalidInput,
                "unknown_region",
                format!(
                    "region `{region}` is not one of environment {}'s regions ({})",
                    self.environment,
                    self.settings.regions.join(", ")
                ),
            )
            .with_field("region")
        })
    }

    /// Reports a finished backend call to the observer and turns its error into ours.
    fn observe<T, E>(
        &self,
        action: &str,
        region: &str,
        result: Result<T, E>,
    ) -> Result<T, ProviderError>
    where
        E: Into<ProviderError>,
    {
        // Name the call in the message: "AWS CreateBucket: ..." says where it failed.
        let result = result.map_err(|e| {
            let mut error: ProviderError = e.into();
            if let Some(rest) = error.message.strip_prefix("AWS: ") {
                error.message = format!("AWS {action}: {rest}");
            }
            error
        });
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.code,
        };
        self.observer.backend_call("aws", action, region, outcome);
        result
    }
}

/// The config of a create that must not be repeated blind: one attempt, no retries by the
/// SDK. The answer of an attempt can be lost after EC2 acted, and not every EC2-compatible
/// endpoint honours client tokens, so the caller looks for what the attempt made first.
fn one_attempt_ec2() -> aws_sdk_ec2::config::Builder {
    aws_sdk_ec2::config::Builder::default().retry_config(RetryConfig::disabled())
}

/// [`one_attempt_ec2`] for ECS.
fn one_attempt_ecs() -> aws_sdk_ecs::config::Builder {
    aws_sdk_ecs::config::Builder::default().retry_config(RetryConfig::disabled())
}

/// [`one_attempt_ec2`] for Secrets Manager.
fn one_attempt_secrets() -> aws_sdk_secretsmanager::config::Builder {
    aws_sdk_secretsmanager::config::Builder::default().retry_config(RetryConfig::disabled())
}

/// [`one_attempt_ec2`] for S3.
fn one_attempt_s3() -> aws_sdk_s3::config::Builder {
    aws_sdk_s3::config::Builder::default().retry_config(RetryConfig::disabled())
}

/// The SDK config of one region: credentials, endpoint, retries.
async fn sdk_config(settings: &Settings, region: &str) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS));
    if let Some(profile) = &settings.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let base = loader.load().await;
    let Some(role_arn) = &settings.role_arn else {
        return base;
    };
    let mut role = aws_config::sts::AssumeRoleProvider::builder(role_arn)
        .session_name(
            settings
                .session_name
                .clone()
                .unwrap_or_else(|| "overcast".into()),
        )
        .region(Region::new(region.to_string()))
        .configure(&base);
    if let Some(external_id) = &settings.external_id {
        role = role.external_id(external_id);
    }
    let role = role.build().await;
    base.into_builder()
        .credentials_provider(SharedCredentialsProvider::new(role))
        .build()
}

#[async_trait]
impl Provider for AwsProvider {
    fn kind(&self) -> &str {
        "aws"
    }

    fn regions(&self) -> Vec<String> {
        self.settings.regions.clone()
    }

    async fn status(&self) -> ProviderStatus {
        let Some(region) = self.settings.regions.first() else {
            return ProviderStatus::unreachable("the environment has no region");
        };
        let probe = async {
            let ec2 = self.ec2(region).await?;
            let result = ec2.describe_availability_zones().send().await;
            self.observe(
                "DescribeAvailabilityZones",
                region,
                result.map_err(errors::from_sdk),
            )
        };
        match probe.await {
            Ok(_) => {
                let mut status = ProviderStatus {
                    reachable: true,
                    reason: None,
                    details: Default::default(),
                };
                if let Some(url) = &self.settings.endpoint_url {
                    status.details.insert("endpoint_url".into(), url.clone());
                }
                status
            }
            Err(e) => ProviderStatus::unreachable(format!("EC2 in {region} does not answer: {e}")),
        }
    }

    fn compute(&self) -> Option<&dyn Compute> {
        Some(self)
    }

    fn firewall(&self) -> Option<&dyn Firewall> {
        Some(self)
    }

    fn images(&self) -> Option<&dyn Images> {
        Some(self)
    }

    fn key_pairs(&self) -> Option<&dyn KeyPairs> {
        Some(self)
    }

    fn object_store(&self) -> Option<&dyn ObjectStore> {
        Some(self)
    }

    fn tags(&self) -> Option<&dyn Tags> {
        Some(self)
    }

    fn secrets(&self) -> Option<&dyn Secrets> {
        Some(self)
    }

    fn parameters(&self) -> Option<&dyn Parameters> {
        Some(self)
    }

    fn containers(&self) -> Option<&dyn Containers> {
        Some(self)
    }

    fn container_support(&self) -> Option<&dyn ContainerSupport> {
        Some(self)
    }

    fn service_discovery(&self) -> Option<&dyn ServiceDiscovery> {
        Some(self)
    }
}
