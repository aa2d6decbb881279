//! EC2 instances as the `Compute` capability.

use async_trait::async_trait;
use aws_sdk_ec2::primitives::Blob;
use aws_sdk_ec2::types::{
    AttributeBooleanValue, AttributeValue, Filter, InstanceStateName, InstanceType, Placement,
    ResourceType, SecureBlobAttributeValue, Tag, TagSpecification,
};
use base64::Engine;
use futures::future::try_join_all;
use overcast_provider::{
    Action, Compute, InstanceChange, InstanceFilter, LaunchDefaults, LaunchSize, LaunchSpec,
    ProviderError, ProviderErrorKind, SizeRequest,
};
use overcast_types::{Instance, InstanceState};
use std::collections::BTreeMap;
use time::OffsetDateTime;

use crate::errors::{from_sdk, is_dry_run_ok};
use crate::{one_attempt_ec2, AwsProvider};

/// EC2 takes at most this many ids per start/stop/terminate or tag call.
pub(crate) const IDS_PER_CALL: usize = 1000;

#[async_trait]
impl Compute for AwsProvider {
    async fn list_instances(
        &self,
        filter: &InstanceFilter,
    ) -> Result<Vec<Instance>, ProviderError> {
        let regions = match &filter.region {
            Some(region) => vec![region.clone()],
            None => self.settings.regions.clone(),
        };
        let per_region = try_join_all(
            regions
                .iter()
                .map(|region| self.list_region(region, filter)),
        )
        .await?;
        Ok(per_region.into_iter().flatten().collect())
    }

    async fn check_launch(&self, spec: &LaunchSpec) -> Result<(), ProviderError> {
        match self.launch(spec, true).await {
            Ok(_) => Ok(()),
            Err(e) if is_dry_run_ok(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn run_instances(&self, spec: &LaunchSpec) -> Result<Vec<Instance>, ProviderError> {
        self.launch(spec, false).await
    }

    fn size_launch(&self, request: &SizeRequest<'_>) -> Result<LaunchSize, ProviderError> {
        crate::settings::size_launch(request)
    }

    fn launch_defaults(&self) -> LaunchDefaults {
        self.settings.launch_defaults()
    }

    fn max_ids_per_call(&self) -> usize {
        IDS_PER_CALL
    }

    async fn act(&self, region: &str, ids: &[String], action: Action) -> Result<(), ProviderError> {
        let ec2 = self.ec2(region).await?;
        for batch in ids.chunks(IDS_PER_CALL) {
            let batch = Some(batch.to_vec());
            match action {
                Action::Start => {
                    let result = ec2.start_instances().set_instance_ids(batch).send().await;
                    self.observe("StartInstances", region, result.map_err(from_sdk))?;
                }
                Action::Stop { force } => {
                    let result = ec2
                        .stop_instances()
                        .set_instance_ids(batch)
                        .force(force)
                        .send()
                        .await;
                    self.observe("StopInstances", region, result.map_err(from_sdk))?;
                }
                Action::Reboot => {
                    let result = ec2.reboot_instances().set_instance_ids(batch).send().await;
                    self.observe("RebootInstances", region, result.map_err(from_sdk))?;
                }
                Action::Terminate => {
                    let result = ec2
                        .terminate_instances()
                        .set_instance_ids(batch)
                        .send()
                        .await;
                    self.observe("TerminateInstances", region, result.map_err(from_sdk))?;
                }
            }
        }
        Ok(())
    }

    async fn zones(&self, region: &str) -> Result<Vec<String>, ProviderError> {
        let ec2 = self.ec2(region).await?;
        let result = ec2.describe_availability_zones().send().await;
        let zones = self.observe(
            "DescribeAvailabilityZones",
            region,
            result.map_err(from_sdk),
        )?;
        Ok(zones
            .availability_zones()
            .iter()
            .filter_map(|z| z.zone_name().map(str::to_string))
            .collect())
    }

    async fn modify_instance(
        &self,
        region: &str,
        id: &str,
        change: &InstanceChange,
    ) -> Result<(), ProviderError> {
        let ec2 = self.ec2(region).await?;
        // EC2 changes one attribute per call.
        if let Some(instance_type) = &change.instance_type {
            let result = ec2
                .modify_instance_attribute()
                .instance_id(id)
                .instance_type(AttributeValue::builder().value(instance_type).build())
                .send()
                .await;
            self.observe("ModifyInstanceAttribute", region, result.map_err(from_sdk))?;
        }
        if let Some(protect) = change.termination_protection {
            let result = ec2
                .modify_instance_attribute()
                .instance_id(id)
                .disable_api_termination(AttributeBooleanValue::builder().value(protect).build())
                .send()
                .await;
            self.observe("ModifyInstanceAttribute", region, result.map_err(from_sdk))?;
        }
        if let Some(user_data) = &change.user_data {
            // The SDK base64-encodes blobs itself: hand it the raw bytes.
            let raw = base64::engine::general_purpose::STANDARD
                .decode(user_data)
                .map_err(|_| {
                    ProviderError::new(
                        ProviderErrorKind::InvalidInput,
                        "invalid_input",
                        "user data is not base64",
                    )
                    .with_field("user_data")
                })?;
            let result = ec2
                .modify_instance_attribute()
                .instance_id(id)
                .user_data(
                    SecureBlobAttributeValue::builder()
                        .value(Blob::new(raw))
                        .build(),
                )
                .send()
                .await;
            self.observe("ModifyInstanceAttribute", region, result.map_err(from_sdk))?;
        }
        if let Some(groups) = &change.security_groups {
            let result = ec2
                .modify_instance_attribute()
                .instance_id(id)
                .set_groups(Some(groups.clone()))
                .send()
                .await;
            self.observe("ModifyInstanceAttribute", region, result.map_err(from_sdk))?;
        }
        Ok(())
    }

    async fn console_output(&self, region: &str, id: &str) -> Result<String, ProviderError> {
        let ec2 = self.ec2(region).await?;
        let result = ec2
            .get_console_output()
            .instance_id(id)
            .latest(true)
            .send()
            .await;
        let output = self.observe("GetConsoleOutput", region, result.map_err(from_sdk))?;
        let encoded = output.output().unwrap_or_default();
        // EC2 sends the console base64-encoded; an emulator may send it plain.
        Ok(
            match base64::engine::general_purpose::STANDARD.decode(encoded.trim()) {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(_) => encoded.to_string(),
            },
        )
    }
}

impl AwsProvider {
    /// Every instance of one region matching the filter, following EC2's pages.
    async fn list_region(
        &self,
        region: &str,
        filter: &InstanceFilter,
    ) -> Result<Vec<Instance>, ProviderError> {
        let ec2 = self.ec2(region).await?;
        let mut filters: Vec<Filter> = filter
            .tags
            .iter()
            .map(|(k, v)| Filter::builder().name(format!("tag:{k}")).values(v).build())
            .collect();
        if !filter.states.is_empty() {
            let names = filter
                .states
                .iter()
                .flat_map(|s| ec2_state_names(*s))
                .map(|s| s.to_string())
                .collect();
            filters.push(
                Filter::builder()
                    .name("instance-state-name")
                    .set_values(Some(names))
                    .build(),
            );
        }
        let mut instances = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            let mut request = ec2
                .describe_instances()
                .set_filters(Some(filters.clone()))
                .set_next_token(next_token.clone());
            if filter.ids.is_empty() {
                request = request.max_results(1000);
            } else {
                request = request.set_instance_ids(Some(filter.ids.clone()));
            }
            let page = match self.observe(
                "DescribeInstances",
                region,
                request.send().await.map_err(from_sdk),
            ) {
                Ok(page) => page,
                // Asked for ids by name, a region that lacks one answers "not found": in a
                // multi-region listing that only means "not here".
                Err(e) if !filter.ids.is_empty() && e.code == "instance_not_found" => {
                    return Ok(Vec::new())
                }
                Err(e) => return Err(e),
            };
            for reservation in page.reservations() {
                for instance in reservation.instances() {
                    instances.push(to_instance(&self.environment, region, instance));
                }
            }
            next_token = page
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_string);
            if next_token.is_none() {
                return Ok(instances);
            }
        }
    }

    async fn launch(
        &self,
        spec: &LaunchSpec,
        dry_run: bool,
    ) -> Result<Vec<Instance>, ProviderError> {
        let ec2 = self.ec2(&spec.region).await?;
        let mut request = ec2
            .run_instances()
            .image_id(&spec.image)
            .instance_type(InstanceType::from(spec.instance_type.as_str()))
            .min_count(spec.min_count as i32)
            .max_count(spec.max_count as i32)
            .client_token(&spec.client_token)
            .dry_run(dry_run)
            .set_key_name(spec.key_pair.clone())
            .set_subnet_id(spec.subnet.clone())
            .set_user_data(spec.user_data.clone());
        if !spec.security_groups.is_empty() {
            request = request.set_security_group_ids(Some(spec.security_groups.clone()));
        }
        if let Some(zone) = &spec.zone {
            request = request.placement(Placement::builder().availability_zone(zone).build());
        }
        if !spec.tags.is_empty() {
            for resource in [ResourceType::Instance, ResourceType::Volume] {
                request = request.tag_specifications(
                    TagSpecification::builder()
                        .resource_type(resource)
                        .set_tags(Some(to_tags(&spec.tags)))
                        .build(),
                );
            }
        }
        // A dry run may be retried, since it launches nothing.
        let result = if dry_run {
            request.send().await
        } else {
            request
                .customize()
                .config_override(one_attempt_ec2())
                .send()
                .await
        };
        let reservation = self.observe("RunInstances", &spec.region, result.map_err(from_sdk))?;
        Ok(reservation
            .instances()
            .iter()
            .map(|i| to_instance(&self.environment, &spec.region, i))
            .collect())
    }
}

pub(crate) fn to_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// EC2's state names for one of ours.
fn ec2_state_names(state: InstanceState) -> &'static [&'static str] {
    match state {
        InstanceState::Pending => &["pending"],
        InstanceState::Running | InstanceState::Rebooting => &["running"],
        InstanceState::Stopping => &["stopping"],
        InstanceState::Stopped => &["stopped"],
        InstanceState::Terminating => &["shutting-down"],
        InstanceState::Terminated => &["terminated"],
        InstanceState::Error => &[],
    }
}

fn to_state(name: Option<&InstanceStateName>) -> InstanceState {
    match name {
        Some(InstanceStateName::Pending) => InstanceState::Pending,
        Some(InstanceStateName::Running) => InstanceState::Running,
        Some(InstanceStateName::Stopping) => InstanceState::Stopping,
        Some(InstanceStateName::Stopped) => InstanceState::Stopped,
        Some(InstanceStateName::ShuttingDown) => InstanceState::Terminating,
        Some(InstanceStateName::Terminated) => InstanceState::Terminated,
        _ => InstanceState::Error,
    }
}

fn to_instance(environment: &str, region: &str, i: &aws_sdk_ec2::types::Instance) -> Instance {
    let tags: BTreeMap<String, String> = i
        .tags()
        .iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect();
    Instance {
        id: i.instance_id().unwrap_or_default().to_string(),
        name: tags.get(overcast_types::tags::NAME).cloned(),
        environment: environment.to_string(),
        region: region.to_string(),
        zone: i
            .placement()
            .and_then(|p| p.availability_zone())
            .map(str::to_string),
        stage: None,
        state: to_state(i.state().and_then(|s| s.name())),
        instance_type: i.instance_type().map(|t| t.as_str().to_string()),
        image: i.image_id().map(str::to_string),
        private_ip: i.private_ip_address().map(str::to_string),
        public_ip: i.public_ip_address().map(str::to_string),
        ssh_address: None,
        state_reason: i
            .state_reason()
            .and_then(|r| r.message())
            .map(str::to_string),
        key_pair: i.key_name().map(str::to_string),
        security_groups: i
            .security_groups()
            .iter()
            .filter_map(|g| g.group_id())
            .map(str::to_string)
            .collect(),
        launched_at: i
            .launch_time()
            .and_then(|t| OffsetDateTime::from_unix_timestamp(t.secs()).ok()),
        tags,
        org: None,
    }
}
