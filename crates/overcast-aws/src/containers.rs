//! ECS on Fargate: clusters, task definitions (awsvpc, Fargate-compatible), services and
//! tasks. Reads describe what they list with their tags, in ECS's batch sizes; creates of
//! clusters and services make one attempt (the caller looks for an earlier try's first).

use async_trait::async_trait;
use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, CapacityProviderStrategyItem, ClusterField, Compatibility,
    ContainerDefinition, DesiredStatus, KeyValuePair, LaunchType, LogConfiguration, LogDriver,
    NetworkConfiguration, NetworkMode, PortMapping as EcsPort, PropagateTags,
    RepositoryCredentials, Secret as EcsSecret, ServiceField, ServiceRegistry, SortOrder,
    TaskDefinitionField, TaskDefinitionStatus, TaskField, TaskOverride, TransportProtocol,
};
use overcast_provider::{
    ClusterSpec, Containers, ProviderError, ProviderErrorKind, RunTaskSpec, ServiceSpec,
    ServiceUpdate, TaskDefinitionSpec, TaskFilter,
};
use overcast_types::{
    CapacityShare, Cluster, Container, ContainerService, Deployment, LogSettings, PortMapping,
    ServiceEvent, Task, TaskContainer, TaskDefinition,
};
use std::collections::BTreeMap;

use crate::errors::from_sdk;
use crate::{one_attempt_ecs, AwsProvider};

/// The most clusters or tasks one Describe call takes; services: ten.
const DESCRIBE_BATCH: usize = 100;
const SERVICES_BATCH: usize = 10;
/// How many of a service's events a description keeps.
const RECENT_EVENTS: usize = 20;

fn invalid(message: impl Into<String>) -> ProviderError {
    ProviderError::new(ProviderErrorKind::InvalidInput, "invalid_input", message)
}

fn ecs_tags(tags: &BTreeMap<String, String>) -> Vec<aws_sdk_ecs::types::Tag> {
    tags.iter()
        .map(|(k, v)| aws_sdk_ecs::types::Tag::builder().key(k).value(v).build())
        .collect()
}

fn from_ecs_tags(tags: &[aws_sdk_ecs::types::Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

fn strategy(shares: &[CapacityShare]) -> Result<Vec<CapacityProviderStrategyItem>, ProviderError> {
    shares
        .iter()
        .map(|s| {
            CapacityProviderStrategyItem::builder()
                .capacity_provider(&s.provider)
                .weight(s.weight as i32)
                .base(s.base as i32)
                .build()
                .map_err(|e| invalid(e.to_string()))
        })
        .collect()
}

fn from_strategy(items: &[CapacityProviderStrategyItem]) -> Vec<CapacityShare> {
    items
        .iter()
        .map(|i| CapacityShare {
            provider: i.capacity_provider().to_string(),
            weight: i.weight().max(0) as u32,
            base: i.base().max(0) as u32,
        })
        .collect()
}

/// The last part of an ARN (`.../cluster/web` → `web`).
fn last_part(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

fn count(n: i32) -> u32 {
    n.max(0) as u32
}

fn to_cluster(region: &str, c: &aws_sdk_ecs::types::Cluster) -> Cluster {
    Cluster {
        name: c.cluster_name().unwrap_or_default().to_string(),
        arn: c.cluster_arn().map(str::to_string),
        region: region.to_string(),
        status: c.status().unwrap_or_default().to_string(),
        capacity_providers: c.capacity_providers().to_vec(),
        default_strategy: from_strategy(c.default_capacity_provider_strategy()),
        active_services: count(c.active_services_count()),
        running_tasks: count(c.running_tasks_count()),
        pending_tasks: count(c.pending_tasks_count()),
        tags: from_ecs_tags(c.tags()),
        org: None,
    }
}

fn container_definition(region: &str, c: &Container) -> Result<ContainerDefinition, ProviderError> {
    let mut def = ContainerDefinition::builder()
        .name(&c.name)
        .image(&c.image)
        .essential(c.essential)
        .set_cpu(c.cpu.map(|n| n as i32))
        .set_memory(c.memory_mb.map(|n| n as i32));
    if !c.command.is_empty() {
        def = def.set_command(Some(c.command.clone()));
    }
    for (name, value) in &c.environment {
        def = def.environment(KeyValuePair::builder().name(name).value(value).build());
    }
    for port in &c.ports {
        let protocol = match port.protocol.as_str() {
            "udp" => TransportProtocol::Udp,
            _ => TransportProtocol::Tcp,
        };
        def = def.port_mappings(
            EcsPort::builder()
                .container_port(i32::from(port.container_port))
                .protocol(protocol)
                .build(),
        );
    }
    if let Some(log) = &c.log {
        def = def.log_configuration(
            LogConfiguration::builder()
                .log_driver(LogDriver::Awslogs)
                .options("awslogs-group", &log.group)
                .options("awslogs-region", region)
                .options("awslogs-stream-prefix", &log.stream_prefix)
                .build()
                .map_err(|e| invalid(e.to_string()))?,
        );
    }
    for (name, arn) in &c.secrets {
        def = def.secrets(
            EcsSecret::builder()
                .name(name)
                .value_from(arn)
                .build()
                .map_err(|e| invalid(e.to_string()))?,
        );
    }
    if let Some(arn) = &c.repository_credentials {
        def = def.repository_credentials(
            RepositoryCredentials::builder()
                .credentials_parameter(arn)
                .build()
                .map_err(|e| invalid(e.to_string()))?,
        );
    }
    Ok(def.build())
}

fn to_container(c: &ContainerDefinition) -> Container {
    let log = c.log_configuration().and_then(|l| {
        let options = l.options()?;
        Some(LogSettings {
            group: options.get("awslogs-group")?.clone(),
            stream_prefix: options
                .get("awslogs-stream-prefix")
                .cloned()
                .unwrap_or_default(),
        })
    });
    Container {
        name: c.name().unwrap_or_default().to_string(),
        image: c.image().unwrap_or_default().to_string(),
        cpu: (c.cpu() > 0).then_some(c.cpu() as u32),
        memory_mb: c.memory().map(|m| m as u32),
        essential: c.essential().unwrap_or(true),
        command: c.command().to_vec(),
        environment: c
            .environment()
            .iter()
            .filter_map(|kv| Some((kv.name()?.to_string(), kv.value()?.to_string())))
            .collect(),
        ports: c
            .port_mappings()
            .iter()
            .filter_map(|p| {
                Some(PortMapping {
                    container_port: u16::try_from(p.container_port()?).ok()?,
                    protocol: p.protocol().map_or("tcp", |p| p.as_str()).to_string(),
                })
            })
            .collect(),
        log,
        secrets: c
            .secrets()
            .iter()
            .map(|s| (s.name().to_string(), s.value_from().to_string()))
            .collect(),
        repository_credentials: c
            .repository_credentials()
            .map(|r| r.credentials_parameter().to_string()),
    }
}

fn to_task_definition(
    region: &str,
    t: &aws_sdk_ecs::types::TaskDefinition,
    tags: &[aws_sdk_ecs::types::Tag],
) -> TaskDefinition {
    TaskDefinition {
        family: t.family().unwrap_or_default().to_string(),
        revision: count(t.revision()),
        arn: t.task_definition_arn().map(str::to_string),
        region: region.to_string(),
        status: t.status().map_or("ACTIVE", |s| s.as_str()).to_string(),
        cpu: t.cpu().unwrap_or_default().to_string(),
        memory: t.memory().unwrap_or_default().to_string(),
        containers: t.container_definitions().iter().map(to_container).collect(),
        execution_role: t.execution_role_arn().map(str::to_string),
        task_role: t.task_role_arn().map(str::to_string),
        tags: from_ecs_tags(tags),
        org: None,
    }
}

fn to_service(region: &str, s: &aws_sdk_ecs::types::Service) -> ContainerService {
    let vpc = s
        .network_configuration()
        .and_then(|n| n.awsvpc_configuration());
    let mut events: Vec<ServiceEvent> = s
        .events()
        .iter()
        .map(|e| ServiceEvent {
            id: e.id().unwrap_or_default().to_string(),
            at: e.created_at().map(|t| t.to_string()).unwrap_or_default(),
            message: e.message().unwrap_or_default().to_string(),
        })
        .collect();
    events.truncate(RECENT_EVENTS);
    ContainerService {
        name: s.service_name().unwrap_or_default().to_string(),
        arn: s.service_arn().map(str::to_string),
        cluster: last_part(s.cluster_arn().unwrap_or_default()).to_string(),
        region: region.to_string(),
        status: s.status().unwrap_or_default().to_string(),
        task_definition: last_part(s.task_definition().unwrap_or_default()).to_string(),
        desired_count: count(s.desired_count()),
        running_count: count(s.running_count()),
        pending_count: count(s.pending_count()),
        launch_type: s
            .launch_type()
            .map(|l| l.as_str().to_string())
            .unwrap_or_default(),
        capacity_strategy: from_strategy(s.capacity_provider_strategy()),
        subnets: vpc.map(|v| v.subnets().to_vec()).unwrap_or_default(),
        security_groups: vpc
            .map(|v| v.security_groups().to_vec())
            .unwrap_or_default(),
        public_ip: vpc
            .and_then(|v| v.assign_public_ip())
            .is_some_and(|a| *a == AssignPublicIp::Enabled),
        registries: s
            .service_registries()
            .iter()
            .filter_map(|r| r.registry_arn().map(str::to_string))
            .collect(),
        deployments: s
            .deployments()
            .iter()
            .map(|d| Deployment {
                id: d.id().unwrap_or_default().to_string(),
                status: d.status().unwrap_or_default().to_string(),
                task_definition: last_part(d.task_definition().unwrap_or_default()).to_string(),
                desired_count: count(d.desired_count()),
                running_count: count(d.running_count()),
                pending_count: count(d.pending_count()),
                rollout_state: d.rollout_state().map(|r| r.as_str().to_string()),
                created_at: d.created_at().map(|t| t.to_string()),
            })
            .collect(),
        events,
        created_at: s.created_at().map(|t| t.to_string()),
        tags: from_ecs_tags(s.tags()),
        org: None,
    }
}

fn to_task(region: &str, t: &aws_sdk_ecs::types::Task) -> Task {
    let arn = t.task_arn().unwrap_or_default();
    Task {
        id: last_part(arn).to_string(),
        arn: t.task_arn().map(str::to_string),
        cluster: last_part(t.cluster_arn().unwrap_or_default()).to_string(),
        region: region.to_string(),
        task_definition: last_part(t.task_definition_arn().unwrap_or_default()).to_string(),
        service: t
            .group()
            .and_then(|g| g.strip_prefix("service:"))
            .map(str::to_string),
        last_status: t.last_status().unwrap_or_default().to_string(),
        desired_status: t.desired_status().unwrap_or_default().to_string(),
        started_at: t.started_at().map(|d| d.to_string()),
        stopped_at: t.stopped_at().map(|d| d.to_string()),
        stopped_reason: t.stopped_reason().map(str::to_string),
        containers: t
            .containers()
            .iter()
            .map(|c| TaskContainer {
                name: c.name().unwrap_or_default().to_string(),
                last_status: c.last_status().map(str::to_string),
                exit_code: c.exit_code(),
                reason: c.reason().map(str::to_string),
            })
            .collect(),
        tags: from_ecs_tags(t.tags()),
        org: None,
    }
}

fn network(
    subnets: &[String],
    security_groups: &[String],
    public_ip: bool,
) -> Result<NetworkConfiguration, ProviderError> {
    let vpc = AwsVpcConfiguration::builder()
        .set_subnets(Some(subnets.to_vec()))
        .set_security_groups(Some(security_groups.to_vec()))
        .assign_public_ip(if public_ip {
            AssignPublicIp::Enabled
        } else {
            AssignPublicIp::Disabled
        })
        .build()
        .map_err(|e| invalid(e.to_string()))?;
    Ok(NetworkConfiguration::builder()
        .awsvpc_configuration(vpc)
        .build())
}

impl AwsProvider {
    async fn describe_clusters(
        &self,
        region: &str,
        names: &[String],
    ) -> Result<Vec<Cluster>, ProviderError> {
        let ecs = self.ecs(region).await?;
        let mut clusters = Vec::new();
        for batch in names.chunks(DESCRIBE_BATCH) {
            let result = ecs
                .describe_clusters()
                .set_clusters(Some(batch.to_vec()))
                .include(ClusterField::Tags)
                .send()
                .await;
            let described = self.observe("DescribeClusters", region, result.map_err(from_sdk))?;
            clusters.extend(
                described
                    .clusters()
                    .iter()
                    .filter(|c| c.status() != Some("INACTIVE"))
                    .map(|c| to_cluster(region, c)),
            );
        }
        Ok(clusters)
    }

    async fn describe_services(
        &self,
        region: &str,
        cluster: &str,
        names: &[String],
    ) -> Result<Vec<ContainerService>, ProviderError> {
        let ecs = self.ecs(region).await?;
        let mut services = Vec::new();
        for batch in names.chunks(SERVICES_BATCH) {
            let result = ecs
                .describe_services()
                .cluster(cluster)
                .set_services(Some(batch.to_vec()))
                .include(ServiceField::Tags)
                .send()
                .await;
            let described = self.observe("DescribeServices", region, result.map_err(from_sdk))?;
            services.extend(
                described
                    .services()
                    .iter()
                    .filter(|s| s.status() != Some("INACTIVE"))
                    .map(|s| to_service(region, s)),
            );
        }
        Ok(services)
    }

    async fn describe_tasks(
        &self,
        region: &str,
        cluster: &str,
        ids: &[String],
    ) -> Result<Vec<Task>, ProviderError> {
        let ecs = self.ecs(region).await?;
        let mut tasks = Vec::new();
        for batch in ids.chunks(DESCRIBE_BATCH) {
            let result = ecs
                .describe_tasks()
                .cluster(cluster)
                .set_tasks(Some(batch.to_vec()))
                .include(TaskField::Tags)
                .send()
                .await;
            let described = self.observe("DescribeTasks", region, result.map_err(from_sdk))?;
            tasks.extend(described.tasks().iter().map(|t| to_task(region, t)));
        }
        Ok(tasks)
    }
}

#[async_trait]
impl Containers for AwsProvider {
    async fn list_clusters(&self, region: &str) -> Result<Vec<Cluster>, ProviderError> {
        let ecs = self.ecs(region).await?;
        let mut arns = Vec::new();
        let mut next_token = None;
        loop {
            let result = ecs
                .list_clusters()
                .max_results(100)
                .set_next_token(next_token)
                .send()
                .await;
            let page = self.observe("ListClusters", region, result.map_err(from_sdk))?;
            arns.extend(page.cluster_arns().iter().cloned());
            next_token = page.next_token().map(str::to_string);
            if next_token.is_none() {
                break;
            }
        }
        self.describe_clusters(region, &arns).await
    }

    async fn cluster(&self, region: &str, name: &str) -> Result<Option<Cluster>, ProviderError> {
        Ok(self
            .describe_clusters(region, &[name.to_string()])
            .await?
            .into_iter()
            .next())
    }

    async fn create_cluster(&self, spec: &ClusterSpec) -> Result<Cluster, ProviderError> {
        let ecs = self.ecs(&spec.region).await?;
        let result = ecs
            .create_cluster()
            .cluster_name(&spec.name)
            .set_capacity_providers(Some(spec.capacity_providers.clone()))
            .set_default_capacity_provider_strategy(Some(strategy(&spec.default_strategy)?))
            .set_tags(Some(ecs_tags(&spec.tags)))
            .customize()
            .config_override(one_attempt_ecs())
            .send()
            .await;
        let made = self.observe("CreateCluster", &spec.region, result.map_err(from_sdk))?;
        let cluster = made
            .cluster()
            .ok_or_else(|| invalid("ECS answered CreateCluster without the cluster"))?;
        Ok(to_cluster(&spec.region, cluster))
    }

    async fn delete_cluster(&self, region: &str, name: &str) -> Result<(), ProviderError> {
        let ecs = self.ecs(region).await?;
        let result = ecs.delete_cluster().cluster(name).send().await;
        self.observe("DeleteCluster", region, result.map_err(from_sdk))?;
        Ok(())
    }

    async fn register_task_definition(
        &self,
        spec: &TaskDefinitionSpec,
    ) -> Result<TaskDefinition, ProviderError> {
        let ecs = self.ecs(&spec.region).await?;
        let containers = spec
            .containers
            .iter()
            .map(|c| container_definition(&spec.region, c))
            .collect::<Result<Vec<_>, _>>()?;
        let result = ecs
            .register_task_definition()
            .family(&spec.family)
            .cpu(&spec.cpu)
            .memory(&spec.memory)
            .network_mode(NetworkMode::Awsvpc)
            .requires_compatibilities(Compatibility::Fargate)
            .set_container_definitions(Some(containers))
            .set_execution_role_arn(spec.execution_role.clone())
            .set_task_role_arn(spec.task_role.clone())
            .set_tags(Some(ecs_tags(&spec.tags)))
            .send()
            .await;
        let made = self.observe(
            "RegisterTaskDefinition",
            &spec.region,
            result.map_err(from_sdk),
        )?;
        let definition = made
            .task_definition()
            .ok_or_else(|| invalid("ECS answered without the task definition"))?;
        Ok(to_task_definition(&spec.region, definition, made.tags()))
    }

    async fn list_task_definitions(
        &self,
        region: &str,
        family: Option<&str>,
    ) -> Result<Vec<String>, ProviderError> {
        let ecs = self.ecs(region).await?;
        let mut names = Vec::new();
        let mut next_token = None;
        loop {
            let result = ecs
                .list_task_definitions()
                .set_family_prefix(family.map(str::to_string))
                .status(TaskDefinitionStatus::Active)
                .sort(SortOrder::Asc)
                .max_results(100)
                .set_next_token(next_token)
                .send()
                .await;
            let page = self.observe("ListTaskDefinitions", region, result.map_err(from_sdk))?;
            names.extend(
                page.task_definition_arns()
                    .iter()
                    .map(|arn| last_part(arn).to_string())
                    // A family prefix also matches longer families.
                    .filter(|name| {
                        family.is_none_or(|f| name.rsplit_once(':').is_some_and(|(n, _)| n == f))
                    }),
            );
            next_token = page.next_token().map(str::to_string);
            if next_token.is_none() {
                break;
            }
        }
        Ok(names)
    }

    async fn task_definition(
        &self,
        region: &str,
        name: &str,
    ) -> Result<Option<TaskDefinition>, ProviderError> {
        let ecs = self.ecs(region).await?;
        let result = ecs
            .describe_task_definition()
            .task_definition(name)
            .include(TaskDefinitionField::Tags)
            .send()
            .await;
        match self.observe("DescribeTaskDefinition", region, result.map_err(from_sdk)) {
            Ok(found) => Ok(found
                .task_definition()
                .map(|t| to_task_definition(region, t, found.tags()))),
            // ECS answers an unknown task definition as a client error.
            Err(e) if e.backend_code.as_deref() == Some("ClientException") => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn deregister_task_definition(
        &self,
        region: &str,
        name: &str,
    ) -> Result<(), ProviderError> {
        let ecs = self.ecs(region).await?;
        let result = ecs
            .deregister_task_definition()
            .task_definition(name)
            .send()
            .await;
        self.observe("DeregisterTaskDefinition", region, result.map_err(from_sdk))?;
        Ok(())
    }

    async fn create_service(&self, spec: &ServiceSpec) -> Result<ContainerService, ProviderError> {
        let ecs = self.ecs(&spec.region).await?;
        let mut request = ecs
            .create_service()
            .cluster(&spec.cluster)
            .service_name(&spec.name)
            .task_definition(&spec.task_definition)
            .desired_count(spec.desired_count as i32)
            .network_configuration(network(
                &spec.subnets,
                &spec.security_groups,
                spec.public_ip,
            )?)
            .set_tags(Some(ecs_tags(&spec.tags)))
            // Its tasks carry its tags, so they are its org's too.
            .propagate_tags(PropagateTags::Service)
            .client_token(&spec.client_token);
        // moto reports a service made without a launch type as EC2's, so Fargate is said
        // explicitly unless a capacity strategy chooses.
        request = if spec.capacity_strategy.is_empty() {
            request.launch_type(LaunchType::Fargate)
        } else {
            request.set_capacity_provider_strategy(Some(strategy(&spec.capacity_strategy)?))
        };
        for arn in &spec.registries {
            request =
                request.service_registries(ServiceRegistry::builder().registry_arn(arn).build());
        }
        let result = request
            .customize()
            .config_override(one_attempt_ecs())
            .send()
            .await;
        let made = self.observe("CreateService", &spec.region, result.map_err(from_sdk))?;
        let service = made
            .service()
            .ok_or_else(|| invalid("ECS answered CreateService without the service"))?;
        Ok(to_service(&spec.region, service))
    }

    async fn list_services(
        &self,
        region: &str,
        cluster: &str,
    ) -> Result<Vec<ContainerService>, ProviderError> {
        let ecs = self.ecs(region).await?;
        let mut arns = Vec::new();
        let mut next_token = None;
        loop {
            let result = ecs
                .list_services()
                .cluster(cluster)
                .max_results(100)
                .set_next_token(next_token)
                .send()
                .await;
            let page = self.observe("ListServices", region, result.map_err(from_sdk))?;
            arns.extend(page.service_arns().iter().cloned());
            next_token = page.next_token().map(str::to_string);
            if next_token.is_none() {
                break;
            }
        }
        self.describe_services(region, cluster, &arns).await
    }

    async fn service(
        &self,
        region: &str,
        cluster: &str,
        name: &str,
    ) -> Result<Option<ContainerService>, ProviderError> {
        Ok(self
            .describe_services(region, cluster, &[name.to_string()])
            .await?
            .into_iter()
            .next())
    }

    async fn update_service(
        &self,
        region: &str,
        cluster: &str,
        name: &str,
        update: &ServiceUpdate,
    ) -> Result<ContainerService, ProviderError> {
        let ecs = self.ecs(region).await?;
        let result = ecs
            .update_service()
            .cluster(cluster)
            .service(name)
            .set_desired_count(update.desired_count.map(|n| n as i32))
            .set_task_definition(update.task_definition.clone())
            .force_new_deployment(update.force_new_deployment)
            .send()
            .await;
        let updated = self.observe("UpdateService", region, result.map_err(from_sdk))?;
        let service = updated
            .service()
            .ok_or_else(|| invalid("ECS answered UpdateService without the service"))?;
        Ok(to_service(region, service))
    }

    async fn delete_service(
        &self,
        region: &str,
        cluster: &str,
        name: &str,
    ) -> Result<(), ProviderError> {
        let ecs = self.ecs(region).await?;
        let result = ecs
            .delete_service()
            .cluster(cluster)
            .service(name)
            .force(true)
            .send()
            .await;
        self.observe("DeleteService", region, result.map_err(from_sdk))?;
        Ok(())
    }

    async fn run_task(&self, spec: &RunTaskSpec) -> Result<Vec<Task>, ProviderError> {
        let ecs = self.ecs(&spec.region).await?;
        let overrides = spec
            .overrides
            .iter()
            .map(|(name, o)| {
                let mut container = aws_sdk_ecs::types::ContainerOverride::builder().name(name);
                if !o.command.is_empty() {
                    container = container.set_command(Some(o.command.clone()));
                }
                for (k, v) in &o.environment {
                    container =
                        container.environment(KeyValuePair::builder().name(k).value(v).build());
                }
                container.build()
            })
            .collect::<Vec<_>>();
        let result = ecs
            .run_task()
            .cluster(&spec.cluster)
            .task_definition(&spec.task_definition)
            .count(spec.count as i32)
            .launch_type(LaunchType::Fargate)
            .network_configuration(network(
                &spec.subnets,
                &spec.security_groups,
                spec.public_ip,
            )?)
            .overrides(
                TaskOverride::builder()
                    .set_container_overrides(Some(overrides))
                    .build(),
            )
            .set_tags(Some(ecs_tags(&spec.tags)))
            .client_token(&spec.client_token)
            .send()
            .await;
        let ran = self.observe("RunTask", &spec.region, result.map_err(from_sdk))?;
        if let Some(failure) = ran.failures().first() {
            return Err(ProviderError::new(
                ProviderErrorKind::Capacity,
                "task_not_started",
                format!(
                    "AWS RunTask: {}",
                    failure.reason().unwrap_or("a task could not be started")
                ),
            ));
        }
        Ok(ran
            .tasks()
            .iter()
            .map(|t| to_task(&spec.region, t))
            .collect())
    }

    async fn list_tasks(
        &self,
        region: &str,
        cluster: &str,
        filter: &TaskFilter,
    ) -> Result<Vec<Task>, ProviderError> {
        let ecs = self.ecs(region).await?;
        let mut ids = Vec::new();
        let mut next_token = None;
        // ECS's own default, said explicitly: moto lists every task without it.
        let desired = DesiredStatus::from(filter.desired_status.as_deref().unwrap_or("RUNNING"));
        loop {
            let result = ecs
                .list_tasks()
                .cluster(cluster)
                .set_service_name(filter.service.clone())
                .set_family(filter.family.clone())
                .desired_status(desired.clone())
                .max_results(100)
                .set_next_token(next_token)
                .send()
                .await;
            let page = self.observe("ListTasks", region, result.map_err(from_sdk))?;
            ids.extend(page.task_arns().iter().cloned());
            next_token = page.next_token().map(str::to_string);
            if next_token.is_none() {
                break;
            }
        }
        self.describe_tasks(region, cluster, &ids).await
    }

    async fn task(
        &self,
        region: &str,
        cluster: &str,
        id: &str,
    ) -> Result<Option<Task>, ProviderError> {
        Ok(self
            .describe_tasks(region, cluster, &[id.to_string()])
            .await?
            .into_iter()
            .next())
    }

    async fn stop_task(
        &self,
        region: &str,
        cluster: &str,
        id: &str,
        reason: &str,
    ) -> Result<Task, ProviderError> {
        let ecs = self.ecs(region).await?;
        let result = ecs
            .stop_task()
            .cluster(cluster)
            .task(id)
            .reason(reason)
            .send()
            .await;
        let stopped = self.observe("StopTask", region, result.map_err(from_sdk))?;
        let task = stopped
            .task()
            .ok_or_else(|| invalid("ECS answered StopTask without the task"))?;
        Ok(to_task(region, task))
    }
}
