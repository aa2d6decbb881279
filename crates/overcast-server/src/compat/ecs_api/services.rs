//! ecs-api's services: the orchestrated create (cluster, registry credentials, task
//! definition, service discovery service, service) as overcast's one-call create, whose
//! failure undoes what it made; the update of tags and deployments; the delete, recursive
//! or not; and the list, show (`?all=true`), events and logs (CONTRACTS.md §2.4–2.7).

use axum::extract::{RawQuery, State};
use axum::response::Response;
use overcast_core::auth::Principal;
use overcast_core::containers::{
    ContainerRequest, CreateClusterRequest, CreateRegistryRequest, CreateServiceRequest,
    LogsRequest, RegisterTaskDefinitionRequest, UpdateServiceRequest, MAX_LOG_EVENTS,
};
use overcast_core::orchestration::{CreateContainerServiceRequest, RegistryCredentials};
use overcast_core::tags::{ResourceKind, TagRequest};
use overcast_provider::TaskFilter;
use overcast_types::{
    CapacityShare, ContainerService, LogSettings, Operation, PortMapping, Registry, TaskDefinition,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;

use super::decode::{self, GoStruct};
use super::{
    account, changed, finished, go_bool, json_answer, query_values, render, respond, with_org,
    EcsError, Sent, ORG_KEYS,
};
use crate::compat::audited;
use crate::native::extract::{ApiPath, Caller};
use crate::AppState;

/// ecs-api's defaults for a cluster it makes: Fargate first, then Fargate Spot.
fn default_strategy() -> Vec<CapacityShare> {
    vec![
        CapacityShare {
            provider: "FARGATE".into(),
            weight: 0,
            base: 1,
        },
        CapacityShare {
            provider: "FARGATE_SPOT".into(),
            weight: 1,
            base: 0,
        },
    ]
}

fn capacity_shares(items: &[GoStruct<'_>]) -> Result<Vec<CapacityShare>, EcsError> {
    items
        .iter()
        .map(|item| {
            Ok(CapacityShare {
                provider: item.string("CapacityProvider")?.unwrap_or_default(),
                weight: non_negative(item.int("Weight")?.unwrap_or(0), "Weight")?,
                base: non_negative(item.int("Base")?.unwrap_or(0), "Base")?,
            })
        })
        .collect()
}

fn non_negative(n: i64, field: &str) -> Result<u32, EcsError> {
    u32::try_from(n).map_err(|_| EcsError::bad_request(format!("{field} must be 0 or more")))
}

/// An `ecs.CreateClusterInput`.
pub fn cluster_request(
    input: &GoStruct<'_>,
    org: &str,
    defaults: bool,
) -> Result<CreateClusterRequest, EcsError> {
    input.refuse(&["Settings"])?;
    let mut capacity_providers = input.strings("CapacityProviders")?;
    let mut strategy = capacity_shares(&input.objects(
        "DefaultCapacityProviderStrategy",
        "ecs.CapacityProviderStrategyItem",
    )?)?;
    if defaults && capacity_providers.is_empty() {
        capacity_providers = vec!["FARGATE".into(), "FARGATE_SPOT".into()];
        if strategy.is_empty() {
            strategy = default_strategy();
        }
    }
    Ok(CreateClusterRequest {
        name: input.string("ClusterName")?.unwrap_or_default(),
        region: None,
        capacity_providers: (!capacity_providers.is_empty()).then_some(capacity_providers),
        default_strategy: (!strategy.is_empty()).then_some(strategy),
        tags: with_org(org, input.tags("Tags")?),
    })
}

/// An `ecs.ContainerDefinition`, as far as overcast carries one.
fn container_request(input: &GoStruct<'_>) -> Result<ContainerRequest, EcsError> {
    input.refuse(&[
        "DependsOn",
        "DisableNetworking",
        "DnsSearchDomains",
        "DnsServers",
        "DockerLabels",
        "DockerSecurityOptions",
        "EntryPoint",
        "ExtraHosts",
        "FirelensConfiguration",
        "HealthCheck",
        "Hostname",
        "Interactive",
        "Links",
        "LinuxParameters",
        "MemoryReservation",
        "MountPoints",
        "Privileged",
        "PseudoTerminal",
        "ReadonlyRootFilesystem",
        "ResourceRequirements",
        "StartTimeout",
        "StopTimeout",
        "SystemControls",
        "Ulimits",
        "User",
        "VolumesFrom",
        "WorkingDirectory",
    ])?;
    let name = input.string("Name")?.unwrap_or_default();
    let mut ports = Vec::new();
    for mapping in input.objects("PortMappings", "ecs.PortMapping")? {
        let port = mapping.int("ContainerPort")?.unwrap_or(0);
        let container_port = u16::try_from(port).ok().filter(|p| *p > 0).ok_or_else(|| {
            EcsError::bad_request(format!(
                "container {name}: PortMappings.ContainerPort must be 1 to 65535"
            ))
        })?;
        if mapping
            .int("HostPort")?
            .is_some_and(|h| h != port && h != 0)
        {
            return Err(EcsError::bad_request(format!(
                "container {name}: with awsvpc, PortMappings.HostPort must equal ContainerPort"
            )));
        }
        ports.push(PortMapping {
            container_port,
            protocol: mapping
                .string("Protocol")?
                .unwrap_or_else(|| "tcp".into())
                .to_ascii_lowercase(),
        });
    }
    let log = match input.object("LogConfiguration", "ecs.LogConfiguration")? {
        None => None,
        Some(log) => {
            log.refuse(&["SecretOptions"])?;
            let driver = log.string("LogDriver")?.unwrap_or_default();
            if driver != "awslogs" {
                return Err(EcsError::bad_request(format!(
                    "container {name}: LogConfiguration.LogDriver `{driver}` is not supported by overcast; use awslogs"
                )));
            }
            let options = log.string_map("Options")?;
            let option = |key: &str| {
                options.get(key).cloned().ok_or_else(|| {
                    EcsError::bad_request(format!(
                        "container {name}: LogConfiguration.Options needs {key}"
                    ))
                })
            };
            Some(LogSettings {
                group: option("awslogs-group")?,
                stream_prefix: option("awslogs-stream-prefix")?,
            })
        }
    };
    let mut secrets = BTreeMap::new();
    for secret in input.objects("Secrets", "ecs.Secret")? {
        secrets.insert(
            secret.string("Name")?.unwrap_or_default(),
            secret.string("ValueFrom")?.unwrap_or_default(),
        );
    }
    let repository_credentials =
        match input.object("RepositoryCredentials", "ecs.RepositoryCredentials")? {
            Some(credentials) => credentials.string("CredentialsParameter")?,
            None => None,
        };
    let positive = |field: &str| -> Result<Option<u32>, EcsError> {
        input
            .int(field)?
            .map(|n| non_negative(n, &format!("container {name}: {field}")))
            .transpose()
    };
    Ok(ContainerRequest {
        cpu: positive("Cpu")?.filter(|c| *c > 0),
        memory_mb: positive("Memory")?.filter(|m| *m > 0),
        essential: input.bool("Essential")?,
        command: input.strings("Command")?,
        environment: input.name_values("Environment")?,
        image: input.string("Image")?.unwrap_or_default(),
        ports,
        log,
        secrets,
        repository_credentials,
        name,
    })
}

/// An `ecs.RegisterTaskDefinitionInput`: Fargate and awsvpc, as overcast runs every task.
pub fn task_definition_request(
    input: &GoStruct<'_>,
    org: &str,
) -> Result<RegisterTaskDefinitionRequest, EcsError> {
    input.refuse(&[
        "InferenceAccelerators",
        "IpcMode",
        "PidMode",
        "PlacementConstraints",
        "ProxyConfiguration",
        "Volumes",
    ])?;
    if let Some(mode) = input.string("NetworkMode")?.filter(|m| m != "awsvpc") {
        return Err(EcsError::bad_request(format!(
            "NetworkMode `{mode}` is not supported by overcast: tasks run with awsvpc"
        )));
    }
    if let Some(other) = input
        .strings("RequiresCompatibilities")?
        .into_iter()
        .find(|c| c != "FARGATE")
    {
        return Err(EcsError::bad_request(format!(
            "RequiresCompatibilities `{other}` is not supported by overcast: tasks run on FARGATE"
        )));
    }
    let containers = input
        .objects("ContainerDefinitions", "ecs.ContainerDefinition")?
        .iter()
        .map(container_request)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RegisterTaskDefinitionRequest {
        family: input.string("Family")?.unwrap_or_default(),
        region: None,
        cpu: input.string("Cpu")?,
        memory: input.string("Memory")?,
        containers,
        execution_role: input.string("ExecutionRoleArn")?,
        task_role: input.string("TaskRoleArn")?,
        tags: with_org(org, input.tags("Tags")?),
    })
}

/// A Cloud Map `servicediscovery.CreateServiceInput`: A records, multivalue.
pub fn registry_request(input: &GoStruct<'_>) -> Result<CreateRegistryRequest, EcsError> {
    input.refuse(&["HealthCheckConfig"])?;
    let dns = input.object("DnsConfig", "servicediscovery.DnsConfig")?;
    let namespace = match &dns {
        Some(dns) => dns.string("NamespaceId")?,
        None => None,
    }
    .or(input.string("NamespaceId")?)
    .ok_or_else(|| EcsError::bad_request("DnsConfig.NamespaceId is required"))?;
    let mut dns_ttl = 60;
    if let Some(dns) = &dns {
        for record in dns.objects("DnsRecords", "servicediscovery.DnsRecord")? {
            if let Some(kind) = record.string("Type")?.filter(|t| t != "A") {
                return Err(EcsError::bad_request(format!(
                    "DnsRecords.Type `{kind}` is not supported by overcast: tasks register A records"
                )));
            }
            if let Some(ttl) = record.int("TTL")? {
                dns_ttl = u32::try_from(ttl)
                    .map_err(|_| EcsError::bad_request("DnsRecords.TTL must be 0 or more"))?;
            }
        }
    }
    Ok(CreateRegistryRequest {
        namespace,
        name: input.string("Name")?.unwrap_or_default(),
        dns_ttl,
        region: None,
        tags: BTreeMap::new(),
    })
}

/// An `ecs.NetworkConfiguration`: subnets, security groups and the public IP flag.
pub fn network(input: &GoStruct<'_>) -> Result<(Vec<String>, Vec<String>, bool), EcsError> {
    let Some(config) = input.object("NetworkConfiguration", "ecs.NetworkConfiguration")? else {
        return Ok((Vec::new(), Vec::new(), false));
    };
    let Some(vpc) = config.object("AwsvpcConfiguration", "ecs.AwsVpcConfiguration")? else {
        return Ok((Vec::new(), Vec::new(), false));
    };
    let public_ip = vpc.string("AssignPublicIp")?.as_deref() == Some("ENABLED");
    Ok((
        vpc.strings("Subnets")?,
        vpc.strings("SecurityGroups")?,
        public_ip,
    ))
}

/// Refuses a launch type other than Fargate.
pub fn fargate_only(input: &GoStruct<'_>) -> Result<(), EcsError> {
    match input.string("LaunchType")? {
        Some(kind) if kind != "FARGATE" => Err(EcsError::bad_request(format!(
            "LaunchType `{kind}` is not supported by overcast: tasks run on FARGATE"
        ))),
        _ => Ok(()),
    }
}

/// An `ecs.CreateServiceInput`.
fn service_request(input: &GoStruct<'_>, org: &str) -> Result<CreateServiceRequest, EcsError> {
    input.refuse(&[
        "DeploymentConfiguration",
        "DeploymentController",
        "HealthCheckGracePeriodSeconds",
        "LoadBalancers",
        "PlacementConstraints",
        "PlacementStrategy",
        "Role",
    ])?;
    fargate_only(input)?;
    let (subnets, security_groups, public_ip) = network(input)?;
    let registries = input
        .objects("ServiceRegistries", "ecs.ServiceRegistry")?
        .iter()
        .map(|r| Ok(r.string("RegistryArn")?.unwrap_or_default()))
        .collect::<Result<Vec<_>, EcsError>>()?;
    let desired_count = match input.int("DesiredCount")? {
        Some(n) => non_negative(n, "DesiredCount")?,
        None => 1,
    };
    Ok(CreateServiceRequest {
        name: input.string("ServiceName")?.unwrap_or_default(),
        task_definition: input.string("TaskDefinition")?.unwrap_or_default(),
        region: None,
        desired_count,
        subnets,
        security_groups,
        public_ip,
        capacity_strategy: capacity_shares(&input.objects(
            "CapacityProviderStrategy",
            "ecs.CapacityProviderStrategyItem",
        )?)?,
        registries,
        tags: with_org(org, input.tags("Tags")?),
    })
}

/// A container's registry credentials: ecs-api took a whole `CreateSecretInput` whose
/// `SecretString` is the JSON ECS reads (`{"username", "password"}`).
fn credentials_request(
    container: &str,
    input: &GoStruct<'_>,
    org: &str,
) -> Result<RegistryCredentials, EcsError> {
    let field = format!("Credentials.{container}.SecretString");
    let text = input
        .string("SecretString")?
        .ok_or_else(|| EcsError::bad_request(format!("{field} is required")))?;
    let value: Value = serde_json::from_str(&text).map_err(|_| {
        EcsError::bad_request(format!(
            "{field} must be JSON with the registry's username and password"
        ))
    })?;
    let part = |key: &str| {
        value
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| EcsError::bad_request(format!("{field} has no {key}")))
    };
    Ok(RegistryCredentials {
        username: part("username")?,
        password: part("password")?,
        secret: input.string("Name")?,
        tags: with_org(org, input.tags("Tags")?),
    })
}

/// A `ServiceOrchestrationInput` as overcast's one-call create.
async fn stack_request(
    state: &AppState,
    principal: &Principal,
    env: &str,
    value: &Value,
) -> Result<CreateContainerServiceRequest, EcsError> {
    let input = GoStruct::of(value, "orchestration.ServiceOrchestrationInput")?;
    let org = principal.org.as_str();
    let Some(service_input) = input.object("Service", "ecs.CreateServiceInput")? else {
        return Err(EcsError::bad_request("service definition is required"));
    };
    let mut service = service_request(&service_input, org)?;
    let service_cluster = service_input.string("Cluster")?;
    let cluster = match (
        service_cluster,
        input.object("Cluster", "ecs.CreateClusterInput")?,
    ) {
        // An existing cluster named by the service must be there (and the caller's).
        (Some(name), _) => {
            state
                .core
                .cluster(principal, env, None, &name)
                .await
                .map_err(|_| EcsError::bad_request(format!("cluster {name} not found")))?;
            CreateClusterRequest {
                name,
                region: None,
                capacity_providers: None,
                default_strategy: None,
                tags: BTreeMap::new(),
            }
        }
        (None, Some(cluster)) => cluster_request(&cluster, org, true)?,
        (None, None) => {
            return Err(EcsError::bad_request(
                "A new or existing cluster is required",
            ))
        }
    };
    let task_definition = match input.object("TaskDefinition", "ecs.RegisterTaskDefinitionInput")? {
        _ if !service.task_definition.is_empty() => None,
        Some(definition) => Some(task_definition_request(&definition, org)?),
        None => {
            return Err(EcsError::bad_request(
                "taskDefinition or service task definition name is required",
            ))
        }
    };
    let mut credentials = BTreeMap::new();
    for (container, secret) in
        input.object_map("Credentials", "secretsmanager.CreateSecretInput")?
    {
        // A container that names its own credentials keeps them, as in ecs-api.
        let named = task_definition.as_ref().is_some_and(|d| {
            d.containers
                .iter()
                .any(|c| c.name == container && c.repository_credentials.is_some())
        });
        if !named {
            credentials.insert(
                container.clone(),
                credentials_request(&container, &secret, org)?,
            );
        }
    }
    let registry = match input.object("ServiceRegistry", "servicediscovery.CreateServiceInput")? {
        Some(registry) => {
            let mut request = registry_request(&registry)?;
            request.tags = with_org(org, BTreeMap::new());
            Some(request)
        }
        None => None,
    };
    if task_definition.is_some() {
        service.task_definition = String::new();
    }
    Ok(CreateContainerServiceRequest {
        region: None,
        cluster,
        task_definition,
        registry,
        credentials,
        service,
    })
}

/// A detail an operation's step recorded.
fn made<T: serde::de::DeserializeOwned>(operation: &Operation, step: &str) -> Option<T> {
    operation
        .results
        .iter()
        .find(|r| r.target == step)
        .and_then(|r| r.detail.clone())
        .and_then(|d| serde_json::from_value(d).ok())
}

/// The Cloud Map service id in a registry ARN (`...:service/srv-...`).
fn registry_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// `POST /v1/ecs/{account}/services`.
pub async fn create(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(account_name): ApiPath<String>,
    sent: Sent,
) -> Response {
    respond(
        async {
            let value = decode::body(&sent.body)?;
            let env = account(&state, &account_name, "ecs")?.environment;
            let request = stack_request(&state, &principal, &env, &value).await?;
            let cx = sent.context(&state, &principal)?;
            let operation = state
                .core
                .create_container_stack(&principal, &env, &request, cx.idempotency.as_ref())
                .await?;
            let operation = finished(&cx, operation).await?;
            let core = &state.core;
            let cluster = match made(&operation, "cluster") {
                Some(cluster) => Some(cluster),
                None => core
                    .cluster(&principal, &env, None, &request.cluster.name)
                    .await
                    .ok(),
            };
            let service: Option<ContainerService> = made(&operation, "service");
            let task_definition: Option<TaskDefinition> = match made(&operation, "task_definition") {
                Some(definition) => Some(definition),
                None => match &service {
                    Some(s) => core.task_definition(&principal, &env, None, &s.task_definition).await.ok(),
                    None => None,
                },
            };
            let registry: Option<Registry> = match made(&operation, "registry") {
                Some(registry) => Some(registry),
                None => match service.as_ref().and_then(|s| s.registries.first()) {
                    Some(arn) => core.registry(&principal, &env, None, registry_id(arn)).await.ok(),
                    None => None,
                },
            };
            let credentials: BTreeMap<String, String> =
                made(&operation, "credentials").unwrap_or_default();
            let answer = json!({
                "Cluster": cluster.as_ref().map(render::cluster),
                "TaskDefinition": task_definition.as_ref().map(render::task_definition),
                "Service": service.as_ref().map(render::service),
                "ServiceDiscoveryService": registry.as_ref().map(render::registry),
                "Credentials": credentials.iter().map(|(c, arn)| (c.clone(), json!({"ARN": arn}))).collect::<serde_json::Map<_, _>>(),
            });
            changed(&answer, &operation)
        }
        .await,
    )
}

/// `GET .../clusters/{cluster}/services`: the services' ARNs (every launch type: ecs-api
/// listed Fargate's only, which hid services placed by capacity provider).
pub async fn list(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((account_name, cluster)): ApiPath<(String, String)>,
) -> Response {
    respond(
        async {
            let env = account(&state, &account_name, "ecs")?.environment;
            let services = state
                .core
                .container_services(&principal, &env, None, &cluster, false)
                .await?;
            let arns: Vec<&Option<String>> = services.items.iter().map(|s| &s.arn).collect();
            Ok(json_answer(&json!(arns)))
        }
        .await,
    )
}

/// A service of the caller's org, or ecs-api's `Not Found`.
async fn service_of(
    state: &AppState,
    principal: &Principal,
    env: &str,
    cluster: &str,
    name: &str,
) -> Result<ContainerService, EcsError> {
    state
        .core
        .container_service(principal, env, None, cluster, name)
        .await
        .map_err(|e| match e.kind {
            overcast_types::ErrorKind::NotFound => EcsError::not_found("Not Found"),
            _ => e.into(),
        })
}

/// `GET .../services/{service}[?all=true]`: DescribeServices' whole output, or with `all`
/// the service with its endpoint, its tasks' ids and its task definition.
pub async fn show(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((account_name, cluster, name)): ApiPath<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    respond(
        async {
            let env = account(&state, &account_name, "ecs")?.environment;
            let all = go_bool(query_values(query.as_deref())?.get("all"));
            let service = service_of(&state, &principal, &env, &cluster, &name).await?;
            if !all {
                return Ok(json_answer(
                    &json!({"Failures": [], "Services": [render::service(&service)]}),
                ));
            }
            let core = &state.core;
            let definition = core
                .task_definition(&principal, &env, None, &service.task_definition)
                .await
                .ok();
            let mut tasks = Vec::new();
            for status in ["RUNNING", "STOPPED"] {
                let filter = TaskFilter {
                    service: Some(service.name.clone()),
                    family: None,
                    desired_status: Some(status.into()),
                };
                tasks.extend(
                    core.container_tasks(&principal, &env, None, &cluster, &filter)
                        .await?
                        .into_iter()
                        .map(|t| t.id),
                );
            }
            let endpoint = match service.registries.first() {
                Some(arn) => match core
                    .registry(&principal, &env, None, registry_id(arn))
                    .await
                {
                    Ok(registry) => core
                        .namespace_name(&env, Some(&registry.region), &registry.namespace)
                        .await?
                        .map(|domain| format!("{}.{domain}", registry.name)),
                    Err(_) => None,
                },
                None => None,
            };
            let mut answer = render::service(&service);
            answer["ServiceEndpoint"] = json!(endpoint);
            answer["Tasks"] = json!(tasks);
            answer["TaskDefinition"] = definition
                .as_ref()
                .map_or(Value::Null, render::task_definition);
            Ok(json_answer(&answer))
        }
        .await,
    )
}

/// `GET .../services/{service}/events`.
pub async fn events(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((account_name, cluster, name)): ApiPath<(String, String, String)>,
) -> Response {
    respond(
        async {
            let env = account(&state, &account_name, "ecs")?.environment;
            let service = service_of(&state, &principal, &env, &cluster, &name).await?;
            let events: Vec<Value> = service.events.iter().map(render::event).collect();
            Ok(json_answer(&json!(events)))
        }
        .await,
    )
}

/// `GET .../services/{service}/logs?task=&container=`: one container's log events of one
/// task; the README's quoted values (`task="foo"`) are taken without their quotes.
pub async fn logs(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((account_name, cluster, name)): ApiPath<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    respond(
        async {
            let env = account(&state, &account_name, "cloudwatch logs")?.environment;
            let values = query_values(query.as_deref())?;
            let unquoted = |key: &str| {
                values
                    .get(key)
                    .map(|v| v.trim_matches('"').to_string())
                    .filter(|v| !v.is_empty())
            };
            let (Some(task), Some(container)) = (unquoted("task"), unquoted("container")) else {
                return Err(EcsError::not_found("404 page not found"));
            };
            service_of(&state, &principal, &env, &cluster, &name).await?;
            let request = LogsRequest {
                container: Some(container),
                limit: MAX_LOG_EVENTS,
                page_token: unquoted("seq"),
                ..LogsRequest::default()
            };
            let logs = state
                .core
                .task_logs(&principal, &env, None, &cluster, &task, &request)
                .await?;
            Ok(json_answer(&render::log_events(
                &logs.lines,
                logs.next_page_token.as_deref(),
            )))
        }
        .await,
    )
}

/// `PUT .../services/{service}`: tags on the service and its cluster, a new deployment,
/// or both; answers the service as it then is.
pub async fn update(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((account_name, cluster, name)): ApiPath<(String, String, String)>,
    sent: Sent,
) -> Response {
    respond(
        async {
            let value = decode::body(&sent.body)?;
            let input = GoStruct::of(&value, "orchestration.ServiceOrchestrationUpdateInput")?;
            let env = account(&state, &account_name, "ecs")?.environment;
            let given_tags = input.has("Tags").then(|| input.tags("Tags")).transpose()?;
            let force = input.bool("ForceNewDeployment")?.unwrap_or(false);
            if given_tags.is_none() && !force {
                return Err(EcsError::bad_request("expected update"));
            }
            let service = service_of(&state, &principal, &env, &cluster, &name).await?;
            let org = principal.org.as_str();
            if let Some(tags) = &given_tags {
                if ORG_KEYS
                    .iter()
                    .any(|k| tags.get(*k).is_some_and(|v| v != org))
                {
                    return Err(EcsError::bad_request(format!(
                        "{cluster}/{name} is not a part of our org ({org})"
                    )));
                }
            }
            let cx = sent.context(&state, &principal)?;
            // One request, up to three operations: the last one carries the request's
            // idempotency, and tagging twice is harmless.
            let mut last = None;
            if let Some(tags) = given_tags {
                let tags = super::with_org(org, tags);
                for (kind, id) in [
                    (ResourceKind::Cluster, cluster.clone()),
                    (ResourceKind::ContainerService, format!("{cluster}/{name}")),
                ] {
                    let idempotency = if force || kind == ResourceKind::Cluster {
                        None
                    } else {
                        cx.idempotency.as_ref()
                    };
                    let request = TagRequest {
                        target: kind,
                        id,
                        set: tags.clone(),
                        remove: Vec::new(),
                    };
                    let operation = state
                        .core
                        .tag_resource(&principal, &env, request, idempotency)
                        .await?;
                    last = Some(finished(&cx, operation).await?);
                }
            }
            if force {
                let request = UpdateServiceRequest {
                    force_new_deployment: true,
                    ..UpdateServiceRequest::default()
                };
                let operation = state
                    .core
                    .update_container_service(
                        &principal,
                        &env,
                        Some(&service.region),
                        &cluster,
                        &name,
                        &request,
                        cx.idempotency.as_ref(),
                    )
                    .await?;
                last = Some(finished(&cx, operation).await?);
            }
            let service = service_of(&state, &principal, &env, &cluster, &name).await?;
            let answer = json_answer(&json!({"Service": render::service(&service)}));
            Ok(match last {
                Some(operation) => audited(answer, &operation),
                None => answer,
            })
        }
        .await,
    )
}

/// `DELETE .../services/{service}[?recursive=true]`: the service; with `recursive`, also
/// what overcast made for it (its task definition revisions, log groups, registries and
/// registry credentials) and then its cluster, when that is empty and the org's. Answers
/// once done, with the service as it was.
pub async fn delete(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((account_name, cluster, name)): ApiPath<(String, String, String)>,
    RawQuery(query): RawQuery,
    sent: Sent,
) -> Response {
    respond(
        async {
            let env = account(&state, &account_name, "ecs")?.environment;
            let recursive = go_bool(query_values(query.as_deref())?.get("recursive"));
            let service = service_of(&state, &principal, &env, &cluster, &name).await?;
            let cx = sent.context(&state, &principal)?;
            let operation = state
                .core
                .delete_container_service(
                    &principal,
                    &env,
                    Some(&service.region),
                    &cluster,
                    &name,
                    recursive,
                    cx.idempotency.as_ref(),
                )
                .await?;
            let operation = finished(&cx, operation).await?;
            if recursive {
                delete_cluster_if_empty(&state, &principal, &env, &cx, &cluster).await?;
            }
            let answer = json!({
                "Cluster": null,
                "TaskDefinition": null,
                "Service": render::service(&service),
                "ServiceDiscoveryService": null,
            });
            changed(&answer, &operation)
        }
        .await,
    )
}

/// Deletes a cluster the caller's org made once no service or task is left in it; one
/// still in use (or gone already) stays as it is.
async fn delete_cluster_if_empty(
    state: &AppState,
    principal: &Principal,
    env: &str,
    cx: &crate::compat::ChangeContext<'_>,
    cluster: &str,
) -> Result<(), EcsError> {
    let Ok(found) = state.core.cluster(principal, env, None, cluster).await else {
        return Ok(());
    };
    if found.org.as_deref() != Some(principal.org.as_str()) {
        return Ok(());
    }
    let operation = match state
        .core
        .delete_cluster(principal, env, Some(&found.region), cluster, false, None)
        .await
    {
        Ok(operation) => operation,
        Err(e) if e.code == "cluster_in_use" => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    finished(cx, operation).await?;
    Ok(())
}
