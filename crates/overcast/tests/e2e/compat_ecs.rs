//! ecs-api's `/v1/ecs` routes replayed with its README's own requests (trailing commas,
//! lower-case keys and path spellings included) against moto, each outcome read back
//! from moto through the SDK, and each answer's keys held to the AWS SDK structs ecs-api
//! rendered (aws-sdk-go v1.25.50).

use aws_sdk_ecs::types::{ClusterField, ServiceField, TaskDefinitionField};
use overcast_core::config::EcsAccount;
use overcast_test_utils::moto::{
    ec2_client, ecs_client, logs_client, new_account, servicediscovery_client, REGIONS,
};
use overcast_test_utils::server::environment;
use overcast_test_utils::TestServer;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// The KMS key ecs-api's account config names for `SecureString` parameters.
const KMS_KEY: &str = "arn:aws:kms:eu-west-1:123456789012:key/12121212-3333-4444-5555-676767676767";

/// The README's orchestration example 1, as printed (its last comma included).
const README_CREATE: &str = r#"{
"cluster": {
"clustername": "myclu",
"tags": [
{
"Key": "CreatedBy",
"Value": "netid"
},
{
"Key": "OS",
"Value": "container"
}
]
},
"taskdefinition": {
"family": "webservers",
"cpu": "256",
"memory": "512",
"containerdefinitions": [
{
"environment": [{
"name": "API_HOST",
"value": "localhost"
},{
"name": "API_PORT",
"value": "1234"
}],
"name": "webserver",
"image": "nginx:alpine",
"ports": [80,443],
"logConfiguration": {
"logDriver": "awslogs",
"options": {
"awslogs-group": "myclu",
"awslogs-stream-prefix": "www",
"awslogs-region": "us-east-1",
"awslogs-create-group": "true"
}
},
"PortMappings": [{
"ContainerPort": 80,
"protocol": "tcp"
}],
"secrets": []
}
]
},
"service": {
"desiredcount": 1,
"servicename": "www"
},
"serviceregistry": {
"name": "www",
"cluster": "myclu",
"dnsconfig": {
"namespaceid": "ns-y3uaw6neshhbev3f",
"dnsrecords": [
{
"ttl": 30,
"type": "A"
}
]
}
},
"credentials": {
"webserver": {
"Name": "myapp-webserver-cred",
"SecretString": "{\"username\" : \"supahman\",\"password\" : \"dontkryptonitemebro\"}",
"Description": "myapp-webserver-cred",
"tags": [
{"Key": "Application", "Value": "myapp" }
]
}
},
}"#;

/// The README's orchestration example 2: a service of existing parts.
const README_EXISTING: &str = r#"{
"service": {
"cluster": "myclu",
"desiredcount": 1,
"servicename": "webapp",
"taskdefinition": "mytaskdef:1",
"serviceregistries": [
{
"registryarn": "arn:aws:servicediscovery:us-east-1:12345678910:service/srv-tvtbgvkkxtts3qlf"
}
]
}
}"#;

const README_UPDATE: &str = r#"{
"ForceNewDeployment": true,
"Tags": [
{"Key": "MyKey", "Value": "MyValue"},
{"Key": "Application", "Value": "someprefix"},
]
}"#;

const README_PARAM_CREATE: &str = r#"{
"Description": "a secret parameter",
"Name": "newsecret123",
"Value": "abc123",
"Tags": [
{"Key": "MyKey", "Value": "MyValue"},
{"Key": "Application", "Value": "someprefix"},
]
}"#;

const README_PARAM_UPDATE: &str = r#"{
"Value": "abc123",
"Tags": [
{"Key": "MyKey", "Value": "MyValue"},
{"Key": "Application", "Value": "someprefix"},
]
}"#;

const README_SECRET_CREATE: &str = r#"{
"Name": "sshhhhh",
"SecretString": "abc123"
}"#;

const README_SECRET_UPDATE: &str = r#"{
"Secret": "TOPSEKRETsshhhhh",
"Tags": [
{
"key": "Application",
"value": "FooBAAAAAR"
}
]
}"#;

/// The fields of the aws-sdk-go v1.25.50 structs ecs-api rendered.
const SDK_CLUSTER: &[&str] = &[
    "ActiveServicesCount",
    "Attachments",
    "AttachmentsStatus",
    "CapacityProviders",
    "ClusterArn",
    "ClusterName",
    "DefaultCapacityProviderStrategy",
    "PendingTasksCount",
    "RegisteredContainerInstancesCount",
    "RunningTasksCount",
    "Settings",
    "Statistics",
    "Status",
    "Tags",
];
const SDK_SERVICE: &[&str] = &[
    "CapacityProviderStrategy",
    "ClusterArn",
    "CreatedAt",
    "CreatedBy",
    "DeploymentConfiguration",
    "DeploymentController",
    "Deployments",
    "DesiredCount",
    "EnableECSManagedTags",
    "Events",
    "HealthCheckGracePeriodSeconds",
    "LaunchType",
    "LoadBalancers",
    "NetworkConfiguration",
    "PendingCount",
    "PlacementConstraints",
    "PlacementStrategy",
    "PlatformVersion",
    "PropagateTags",
    "RoleArn",
    "RunningCount",
    "SchedulingStrategy",
    "ServiceArn",
    "ServiceName",
    "ServiceRegistries",
    "Status",
    "Tags",
    "TaskDefinition",
    "TaskSets",
];
const SDK_TASK_DEFINITION: &[&str] = &[
    "Compatibilities",
    "ContainerDefinitions",
    "Cpu",
    "ExecutionRoleArn",
    "Family",
    "InferenceAccelerators",
    "IpcMode",
    "Memory",
    "NetworkMode",
    "PidMode",
    "PlacementConstraints",
    "ProxyConfiguration",
    "RequiresAttributes",
    "RequiresCompatibilities",
    "Revision",
    "Status",
    "TaskDefinitionArn",
    "TaskRoleArn",
    "Volumes",
];
const SDK_CONTAINER_DEFINITION: &[&str] = &[
    "Command",
    "Cpu",
    "DependsOn",
    "DisableNetworking",
    "DnsSearchDomains",
    "DnsServers",
    "DockerLabels",
    "DockerSecurityOptions",
    "EntryPoint",
    "Environment",
    "Essential",
    "ExtraHosts",
    "FirelensConfiguration",
    "HealthCheck",
    "Hostname",
    "Image",
    "Interactive",
    "Links",
    "LinuxParameters",
    "LogConfiguration",
    "Memory",
    "MemoryReservation",
    "MountPoints",
    "Name",
    "PortMappings",
    "Privileged",
    "PseudoTerminal",
    "ReadonlyRootFilesystem",
    "RepositoryCredentials",
    "ResourceRequirements",
    "Secrets",
    "StartTimeout",
    "StopTimeout",
    "SystemControls",
    "Ulimits",
    "User",
    "VolumesFrom",
    "WorkingDirectory",
];
const SDK_TASK: &[&str] = &[
    "Attachments",
    "Attributes",
    "AvailabilityZone",
    "CapacityProviderName",
    "ClusterArn",
    "Connectivity",
    "ConnectivityAt",
    "ContainerInstanceArn",
    "Containers",
    "Cpu",
    "CreatedAt",
    "DesiredStatus",
    "ExecutionStoppedAt",
    "Group",
    "HealthStatus",
    "InferenceAccelerators",
    "LastStatus",
    "LaunchType",
    "Memory",
    "Overrides",
    "PlatformVersion",
    "PullStartedAt",
    "PullStoppedAt",
    "StartedAt",
    "StartedBy",
    "StopCode",
    "StoppedAt",
    "StoppedReason",
    "StoppingAt",
    "Tags",
    "TaskArn",
    "TaskDefinitionArn",
    "Version",
];
const SDK_DISCOVERY_SERVICE: &[&str] = &[
    "Arn",
    "CreateDate",
    "CreatorRequestId",
    "Description",
    "DnsConfig",
    "HealthCheckConfig",
    "HealthCheckCustomConfig",
    "Id",
    "InstanceCount",
    "Name",
    "NamespaceId",
];
/// The README's secret show, key for key.
const README_SECRET_SHOW: &[&str] = &[
    "ARN",
    "DeletedDate",
    "Description",
    "KmsKeyId",
    "LastAccessedDate",
    "LastChangedDate",
    "LastRotatedDate",
    "Name",
    "RotationEnabled",
    "RotationLambdaARN",
    "RotationRules",
    "Tags",
    "VersionIdsToStages",
];
/// The README's parameter show, key for key.
const README_PARAM_SHOW: &[&str] = &[
    "ARN",
    "Description",
    "KeyId",
    "LastModifiedDate",
    "Name",
    "Tags",
    "Type",
    "Version",
];

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect()
}

#[track_caller]
fn has_keys(value: &Value, expected: &[&str]) {
    let expected: BTreeSet<String> = expected.iter().map(|k| k.to_string()).collect();
    let present = keys(value);
    let missing: Vec<&String> = expected.difference(&present).collect();
    assert!(missing.is_empty(), "missing {missing:?} in {value}");
}

/// A tag's value in an answer's `[{"Key", "Value"}]`.
fn tag_of<'a>(tags: &'a Value, key: &str) -> Option<&'a str> {
    tags.as_array()?
        .iter()
        .find(|t| t["Key"] == key)
        .and_then(|t| t["Value"].as_str())
}

fn ecs_tag<'a>(tags: &'a [aws_sdk_ecs::types::Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

/// A request as an ecs-api client sends it: its token in `X-Auth-Token`, its body as
/// printed. Answers the status, the body (JSON when it is JSON) and the headers.
async fn ecs(
    server: &TestServer,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (StatusCode, Value, HeaderMap) {
    let mut request = server
        .http
        .request(method, format!("{}{path}", server.base));
    if let Some(token) = token {
        request = request.header("X-Auth-Token", token);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value, headers)
}

/// An `aws-test` server on a fresh moto account whose default subnet is the environment's
/// launch default (ecs-api's `defaultSubnets`), served to ecs-api as account `nonprod`.
async fn ecs_server() -> (TestServer, String) {
    let account = new_account();
    let ec2 = ec2_client(&account, REGIONS[0]).await;
    let subnets = ec2.describe_subnets().send().await.unwrap();
    let subnet = subnets.subnets()[0].subnet_id().unwrap().to_string();
    let with_subnet = subnet.clone();
    let server = TestServer::aws_with(account, move |config| {
        let account = config.environments["aws-test"].clone();
        let mut keys = serde_json::to_value(&account).unwrap();
        keys["subnet"] = json!(with_subnet);
        config
            .environments
            .insert("aws-test".into(), environment(keys));
        config.compat.ecs_api.accounts.insert(
            "nonprod".into(),
            EcsAccount {
                environment: "aws-test".into(),
                kms_key_id: Some(KMS_KEY.into()),
            },
        );
    })
    .await;
    (server, subnet)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecs_api_replays_its_readme_services_against_moto() {
    let (server, subnet) = ecs_server().await;
    let account = server.account.clone().unwrap();
    let ecs_sdk = ecs_client(&account, REGIONS[0]).await;
    let discovery = servicediscovery_client(&account, REGIONS[0]).await;
    let secrets = server.secretsmanager(REGIONS[0]).await;
    let acme = server.token("acme", "operator").await;
    let globex = server.token("globex", "operator").await;

    // Ping and version need no token; everything else does, and says so with a 403.
    let (status, pong, _) = ecs(&server, Method::GET, "/v1/ecs/ping", None, None).await;
    assert_eq!((status, pong), (StatusCode::OK, json!("pong")));
    let (status, version, _) = ecs(&server, Method::GET, "/v1/ecs/version", None, None).await;
    assert_eq!(status, StatusCode::OK);
    has_keys(&version, &["version", "githash", "buildstamp"]);
    let (status, _, _) = ecs(&server, Method::GET, "/v1/ecs/nonprod/clusters", None, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, headers) = ecs(
        &server,
        Method::OPTIONS,
        "/v1/ecs/nonprod/clusters",
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["access-control-allow-origin"], "*");
    let (status, text, _) = ecs(
        &server,
        Method::GET,
        "/v1/ecs/nowhere/clusters",
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(
        (status, text),
        (
            StatusCode::NOT_FOUND,
            json!("ecs service not found for account: nowhere")
        )
    );

    // The README's first example as printed: its Cloud Map namespace does not exist, which
    // AWS refuses (moto would not), so nothing at all is made.
    let (status, text, _) = ecs(
        &server,
        Method::POST,
        "/v1/ecs/nonprod/services",
        Some(&acme),
        Some(README_CREATE),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{text}");
    assert!(
        text.as_str().unwrap().contains("ns-y3uaw6neshhbev3f"),
        "{text}"
    );
    let clusters = ecs_sdk.list_clusters().send().await.unwrap();
    assert!(clusters.cluster_arns().is_empty());
    assert!(secrets
        .list_secrets()
        .send()
        .await
        .unwrap()
        .secret_list()
        .is_empty());

    // With a namespace that exists, the whole service is made in one call.
    discovery
        .create_http_namespace()
        .name("internal.example")
        .send()
        .await
        .unwrap();
    let namespaces = discovery.list_namespaces().send().await.unwrap();
    let namespace = namespaces.namespaces()[0].id().unwrap().to_string();
    let body = README_CREATE.replace("ns-y3uaw6neshhbev3f", &namespace);
    let create = |key: &'static str| {
        let (server, acme, body) = (&server, acme.clone(), body.clone());
        async move {
            let response = server
                .http
                .post(format!("{}/v1/ecs/nonprod/services", server.base))
                .header("X-Auth-Token", acme)
                .header("Idempotency-Key", key)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = response.status();
            let text = response.text().await.unwrap();
            (
                status,
                serde_json::from_str::<Value>(&text).unwrap_or(json!(text)),
            )
        }
    };
    let (status, made) = create("readme-1").await;
    assert_eq!(status, StatusCode::OK, "{made}");
    has_keys(
        &made,
        &[
            "Cluster",
            "TaskDefinition",
            "Service",
            "ServiceDiscoveryService",
        ],
    );
    has_keys(&made["Cluster"], SDK_CLUSTER);
    has_keys(&made["Service"], SDK_SERVICE);
    has_keys(&made["TaskDefinition"], SDK_TASK_DEFINITION);
    has_keys(
        &made["TaskDefinition"]["ContainerDefinitions"][0],
        SDK_CONTAINER_DEFINITION,
    );
    has_keys(&made["ServiceDiscoveryService"], SDK_DISCOVERY_SERVICE);
    assert_eq!(made["Cluster"]["ClusterName"], "myclu");
    assert_eq!(
        made["Cluster"]["Attachments"],
        Value::Null,
        "unset fields are null"
    );
    assert_eq!(tag_of(&made["Cluster"]["Tags"], "spinup:org"), Some("acme"));
    assert_eq!(made["Service"]["ServiceName"], "www");
    assert_eq!(
        made["Service"]["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"],
        "DISABLED"
    );
    assert_eq!(
        made["Service"]["NetworkConfiguration"]["AwsvpcConfiguration"]["Subnets"],
        json!([subnet])
    );
    assert_eq!(made["TaskDefinition"]["Family"], "webservers");
    assert_eq!(
        made["ServiceDiscoveryService"]["DnsConfig"]["DnsRecords"][0]["TTL"],
        30
    );

    // In moto: the cluster with ecs-api's capacity providers and the org's tags, ...
    let described = ecs_sdk
        .describe_clusters()
        .clusters("myclu")
        .include(ClusterField::Tags)
        .send()
        .await
        .unwrap();
    let cluster = &described.clusters()[0];
    assert_eq!(cluster.capacity_providers(), ["FARGATE", "FARGATE_SPOT"]);
    assert_eq!(ecs_tag(cluster.tags(), "spinup:org"), Some("acme"));
    assert_eq!(ecs_tag(cluster.tags(), "overcast:org"), Some("acme"));
    assert_eq!(ecs_tag(cluster.tags(), "CreatedBy"), Some("netid"));
    // ... the credentials secret under the README's name, its value the README's ...
    let value = secrets
        .get_secret_value()
        .secret_id("myapp-webserver-cred")
        .send()
        .await
        .unwrap();
    let credentials: Value = serde_json::from_str(value.secret_string().unwrap()).unwrap();
    assert_eq!(
        credentials,
        json!({"username": "supahman", "password": "dontkryptonitemebro"})
    );
    let described_secret = secrets
        .describe_secret()
        .secret_id("myapp-webserver-cred")
        .send()
        .await
        .unwrap();
    let secret_tags: Vec<(&str, &str)> = described_secret
        .tags()
        .iter()
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    assert!(
        secret_tags.contains(&("Application", "myapp")),
        "{secret_tags:?}"
    );
    assert!(
        secret_tags.contains(&("spinup:org", "acme")),
        "{secret_tags:?}"
    );
    // ... the task definition pulling with it, its environment and logs as sent ...
    let definition = ecs_sdk
        .describe_task_definition()
        .task_definition("webservers:1")
        .include(TaskDefinitionField::Tags)
        .send()
        .await
        .unwrap();
    let container = &definition
        .task_definition()
        .unwrap()
        .container_definitions()[0];
    assert_eq!(
        container
            .repository_credentials()
            .unwrap()
            .credentials_parameter(),
        described_secret.arn().unwrap()
    );
    assert_eq!(container.environment().len(), 2);
    assert_eq!(container.port_mappings()[0].container_port(), Some(80));
    let options = container.log_configuration().unwrap().options().unwrap();
    assert_eq!(options["awslogs-group"], "myclu");
    assert_eq!(options["awslogs-stream-prefix"], "www");
    // ... and the service in its Cloud Map service.
    let services = ecs_sdk
        .describe_services()
        .cluster("myclu")
        .services("www")
        .include(ServiceField::Tags)
        .send()
        .await
        .unwrap();
    let service = &services.services()[0];
    assert_eq!(service.desired_count(), 1);
    assert_eq!(ecs_tag(service.tags(), "spinup:org"), Some("acme"));
    let registry_arn = service.service_registries()[0]
        .registry_arn()
        .unwrap()
        .to_string();
    assert_eq!(
        made["ServiceDiscoveryService"]["Arn"],
        registry_arn.as_str()
    );

    // The same request again with its Idempotency-Key makes nothing more.
    let (status, again) = create("readme-1").await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(
        again["Service"]["ServiceArn"],
        made["Service"]["ServiceArn"]
    );
    let revisions = ecs_sdk
        .list_task_definitions()
        .family_prefix("webservers")
        .send()
        .await
        .unwrap();
    assert_eq!(revisions.task_definition_arns().len(), 1);
    assert_eq!(
        discovery
            .list_services()
            .send()
            .await
            .unwrap()
            .services()
            .len(),
        1
    );

    // The service is overcast's own: /v1 shows it.
    let (status, native) = server
        .call(
            Method::GET,
            "/v1/environments/aws-test/clusters/myclu/services/www",
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{native}");
    assert_eq!(native["task_definition"], "webservers:1");

    // The second example names parts that do not exist; then a task definition of the
    // org's own (registered the ecs-api way) and the registry made above.
    let (status, text, _) = ecs(
        &server,
        Method::POST,
        "/v1/ecs/nonprod/services",
        Some(&acme),
        Some(README_EXISTING),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{text}");
    let task_definition = r#"{"family": "mytaskdef", "cpu": "256", "memory": "512",
        "containerDefinitions": [{"name": "worker", "image": "busybox", "memory": 128,
          "command": ["sleep", "3600"],
          "logConfiguration": {"logDriver": "awslogs",
            "options": {"awslogs-group": "myclu", "awslogs-stream-prefix": "webapp"}}}]}"#;
    let (status, registered, _) = ecs(
        &server,
        Method::POST,
        "/v1/ecs/nonprod/taskdefs",
        Some(&acme),
        Some(task_definition),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{registered}");
    has_keys(&registered, &["Tags", "TaskDefinition"]);
    assert_eq!(registered["TaskDefinition"]["Revision"], 1);
    let existing = README_EXISTING.replace(
        "arn:aws:servicediscovery:us-east-1:12345678910:service/srv-tvtbgvkkxtts3qlf",
        &registry_arn,
    );
    let (status, made2, _) = ecs(
        &server,
        Method::POST,
        "/v1/ecs/nonprod/services",
        Some(&acme),
        Some(&existing),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{made2}");
    assert!(made2["Service"]["TaskDefinition"]
        .as_str()
        .unwrap()
        .ends_with("task-definition/mytaskdef:1"));

    // Lists are ARNs; the show answers DescribeServices' output, or with all=true the
    // service with its endpoint, its tasks and its task definition.
    let (status, listed, _) = ecs(
        &server,
        Method::GET,
        "/v1/ecs/nonprod/clusters/myclu/services",
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    let (status, shown, _) = ecs(
        &server,
        Method::GET,
        "/v1/ecs/nonprod/clusters/myclu/services/www",
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["Failures"], json!([]));
    has_keys(&shown["Services"][0], SDK_SERVICE);
    let (status, all, _) = ecs(
        &server,
        Method::GET,
        "/v1/ecs/nonprod/clusters/myclu/services/www?all=true",
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all["ServiceEndpoint"], "www.internal.example");
    assert_eq!(all["Tasks"], json!([]));
    assert_eq!(all["TaskDefinition"]["Family"], "webservers");
    let (status, events, _) = ecs(
        &server,
        Method::GET,
        "/v1/ecs/nonprod/clusters/myclu/services/www/events",
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(events.is_array(), "{events}");
    let (status, text, _) = ecs(
        &server,
        Method::GET,
        "/v1/ecs/nonprod/clusters/myclu/services/nope",
        Some(&acme),
        None,
    )
    .await;
    assert_eq!((status, text), (StatusCode::NOT_FOUND, json!("Not Found")));
    let (status, _, _) = ecs(
        &server,
        Method::GET,
        "/v1/ecs/nonprod/clusters/myclu/services/www",
        Some(&globex),
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another org's service is not found"
    );

    // Run-task works (ecs-api ran every task in a cluster named FARGATE), in the path's
    // cluster; its logs are read where the task definition sends them.
    let run = format!(
        r#"{{"taskDefinition": "mytaskdef:1", "count": 1,
            "networkConfiguration": {{"awsvpcConfiguration": {{"subnets": ["{subnet}"]}}}}}}"#
    );
    let (status, ran, _) = ecs(
        &server,
        Method::POST,
        "/v1/ecs/nonprod/clusters/myclu/tasks",
        Some(&acme),
        Some(&run),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{ran}");
    assert_eq!(ran["Failures"], json!([]));
    has_keys(&ran["Tasks"][0], SDK_TASK);
    let task_arn = ran["Tasks"][0]["TaskArn"].as_str().unwrap().to_string();
    let task_id = task_arn.rsplit('/').next().unwrap().to_string();
    let in_moto = ecs_sdk
        .describe_tasks()
        .cluster("myclu")
        .tasks(&task_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(in_moto.tasks().len(), 1);
    let logs = logs_client(&account, REGIONS[0]).await;
    let stream = format!("webapp/worker/{task_id}");
    let _ = logs.create_log_group().log_group_name("myclu").send().await;
    logs.create_log_stream()
        .log_group_name("myclu")
        .log_stream_name(&stream)
        .send()
        .await
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    logs.put_log_events()
        .log_group_name("myclu")
        .log_stream_name(&stream)
        .log_events(
            aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                .timestamp(now)
                .message("worker started")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let (status, read, _) = ecs(
        &server,
        Method::GET,
        &format!("/v1/ecs/nonprod/clusters/myclu/services/webapp/logs?task=\"{task_id}\"&container=\"worker\""),
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{read}");
    has_keys(&read, &["Events", "NextBackwardToken", "NextForwardToken"]);
    assert_eq!(read["Events"][0]["Message"], "worker started");
    assert_eq!(read["Events"][0]["Timestamp"], now);
    let (status, shown_task, _) = ecs(
        &server,
        Method::GET,
        &format!("/v1/ecs/nonprod/clusters/myclu/tasks/{task_id}"),
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown_task["Tasks"][0]["TaskArn"], task_arn.as_str());
    let (status, stopped, _) = ecs(
        &server,
        Method::DELETE,
        &format!("/v1/ecs/nonprod/clusters/myclu/tasks/{task_id}"),
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{stopped}");
    has_keys(&stopped["Task"], SDK_TASK);

    // The README's update: tags on the service and its cluster, and a new deployment. Its
    // path without the service is no route; a foreign org tag is refused.
    let (status, _, _) = ecs(
        &server,
        Method::PUT,
        "/v1/ecs/nonprod/clusters/myclu/services",
        Some(&acme),
        Some(README_UPDATE),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, text, _) = ecs(
        &server,
        Method::PUT,
        "/v1/ecs/nonprod/clusters/myclu/services/www",
        Some(&acme),
        Some(r#"{"Tags": [{"Key": "spinup:org", "Value": "globex"}]}"#),
    )
    .await;
    assert_eq!(
        (status, text),
        (
            StatusCode::BAD_REQUEST,
            json!("myclu/www is not a part of our org (acme)")
        )
    );
    let (status, updated, _) = ecs(
        &server,
        Method::PUT,
        "/v1/ecs/nonprod/clusters/myclu/services/www",
        Some(&acme),
        Some(README_UPDATE),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    has_keys(&updated["Service"], SDK_SERVICE);
    let services = ecs_sdk
        .describe_services()
        .cluster("myclu")
        .services("www")
        .include(ServiceField::Tags)
        .send()
        .await
        .unwrap();
    let service = &services.services()[0];
    assert_eq!(ecs_tag(service.tags(), "MyKey"), Some("MyValue"));
    assert_eq!(ecs_tag(service.tags(), "Application"), Some("someprefix"));
    let described = ecs_sdk
        .describe_clusters()
        .clusters("myclu")
        .include(ClusterField::Tags)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ecs_tag(described.clusters()[0].tags(), "MyKey"),
        Some("MyValue")
    );

    // A service made through /v1 is deleted through /v1/ecs, and the other way round.
    let op = server
        .change(
            Method::POST,
            "/v1/environments/aws-test/clusters/myclu/services",
            Some(json!({"name": "api", "task_definition": "mytaskdef:1", "subnets": [subnet]})),
        )
        .await;
    assert_eq!(op["status"], "succeeded");
    let (status, _, _) = ecs(
        &server,
        Method::DELETE,
        "/v1/ecs/nonprod/clusters/myclu/services/api",
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the admin's service is not acme's"
    );
    let admin_made = ecs(
        &server,
        Method::DELETE,
        "/v1/ecs/nonprod/clusters/myclu/services/api",
        Some(overcast_test_utils::ADMIN),
        None,
    )
    .await;
    assert_eq!(admin_made.0, StatusCode::OK, "{}", admin_made.1);
    let (status, deleted, _) = ecs(
        &server,
        Method::DELETE,
        "/v1/ecs/nonprod/clusters/myclu/services/webapp",
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["Cluster"], Value::Null);
    assert_eq!(deleted["Service"]["ServiceName"], "webapp");
    let op = server
        .call(
            Method::DELETE,
            "/v1/environments/aws-test/clusters/myclu/services/www?timeout=180",
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(op.0, StatusCode::OK, "{}", op.1);
    // moto keeps listing deleted services; their status says they are gone.
    let left = ecs_sdk
        .describe_services()
        .cluster("myclu")
        .services("api")
        .services("webapp")
        .services("www")
        .send()
        .await
        .unwrap();
    let statuses: Vec<Option<&str>> = left.services().iter().map(|s| s.status()).collect();
    assert!(
        statuses.iter().all(|s| *s != Some("ACTIVE")),
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecs_api_recursive_delete_takes_away_what_its_create_made() {
    let (server, _) = ecs_server().await;
    let account = server.account.clone().unwrap();
    let ecs_sdk = ecs_client(&account, REGIONS[0]).await;
    let discovery = servicediscovery_client(&account, REGIONS[0]).await;
    let secrets = server.secretsmanager(REGIONS[0]).await;
    let acme = server.token("acme", "operator").await;
    discovery
        .create_http_namespace()
        .name("internal.example")
        .send()
        .await
        .unwrap();
    let namespaces = discovery.list_namespaces().send().await.unwrap();
    let namespace = namespaces.namespaces()[0].id().unwrap().to_string();
    let body = README_CREATE.replace("ns-y3uaw6neshhbev3f", &namespace);

    // A create whose last step fails (moto refuses a subnet that does not exist) undoes
    // every step before it, newest first, and says so.
    let failing = body
        .replace("myclu", "failclu")
        .replace("myapp-webserver-cred", "fail-cred")
        .replace(
            "\"servicename\": \"www\"",
            "\"servicename\": \"www\", \"networkconfiguration\": {\"awsvpcconfiguration\": {\"subnets\": [\"subnet-0000dead\"]}}",
        );
    let (status, text, _) = ecs(
        &server,
        Method::POST,
        "/v1/ecs/nonprod/services",
        Some(&acme),
        Some(&failing),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.as_str().unwrap().contains("undo:"), "{text}");
    let clusters = ecs_sdk
        .describe_clusters()
        .clusters("failclu")
        .send()
        .await
        .unwrap();
    assert!(
        clusters
            .clusters()
            .iter()
            .all(|c| c.status() == Some("INACTIVE")),
        "{:?}",
        clusters.clusters()
    );
    assert!(discovery
        .list_services()
        .send()
        .await
        .unwrap()
        .services()
        .is_empty());
    let credentials = secrets
        .describe_secret()
        .secret_id("fail-cred")
        .send()
        .await;
    assert!(
        credentials.is_err() || credentials.unwrap().deleted_date().is_some(),
        "the credentials secret is undone"
    );

    let (status, made, _) = ecs(
        &server,
        Method::POST,
        "/v1/ecs/nonprod/services",
        Some(&acme),
        Some(&body),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{made}");

    let (status, deleted, _) = ecs(
        &server,
        Method::DELETE,
        "/v1/ecs/nonprod/clusters/myclu/services/www?recursive=true",
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["Service"]["ServiceName"], "www");
    // The service, its revision, its registry, its credentials and its cluster are gone.
    let clusters = ecs_sdk
        .describe_clusters()
        .clusters("myclu")
        .send()
        .await
        .unwrap();
    assert!(
        clusters
            .clusters()
            .iter()
            .all(|c| c.status() == Some("INACTIVE")),
        "{:?}",
        clusters.clusters()
    );
    let active = ecs_sdk
        .list_task_definitions()
        .family_prefix("webservers")
        .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
        .send()
        .await
        .unwrap();
    assert!(
        active.task_definition_arns().is_empty(),
        "{:?}",
        active.task_definition_arns()
    );
    assert!(discovery
        .list_services()
        .send()
        .await
        .unwrap()
        .services()
        .is_empty());
    let credentials = secrets
        .describe_secret()
        .secret_id("myapp-webserver-cred")
        .send()
        .await;
    assert!(
        credentials.is_err() || credentials.unwrap().deleted_date().is_some(),
        "the credentials secret is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecs_api_secrets_and_parameters_are_the_orgs_own() {
    let (server, _) = ecs_server().await;
    let secrets = server.secretsmanager(REGIONS[0]).await;
    let ssm = server.ssm(REGIONS[0]).await;
    let acme = server.token("acme", "operator").await;
    let globex = server.token("globex", "operator").await;

    // The README's secret: made with the org's tag, listed, shown (the README's singular
    // path too), and the same secret /v1 shows.
    let (status, made, _) = ecs(
        &server,
        Method::POST,
        "/v1/ecs/nonprod/secrets",
        Some(&acme),
        Some(README_SECRET_CREATE),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{made}");
    assert_eq!(
        keys(&made),
        keys(&json!({"ARN": 1, "Name": 1, "VersionId": 1}))
    );
    let arn = made["ARN"].as_str().unwrap().to_string();
    let value = secrets
        .get_secret_value()
        .secret_id("sshhhhh")
        .send()
        .await
        .unwrap();
    assert_eq!(value.secret_string(), Some("abc123"));
    assert_eq!(
        Some(made["VersionId"].as_str().unwrap()),
        value.version_id()
    );
    let (status, listed, _) = ecs(
        &server,
        Method::GET,
        "/v1/ecs/nonprod/secrets",
        Some(&acme),
        None,
    )
    .await;
    assert_eq!((status, listed), (StatusCode::OK, json!([arn])));
    let (_, filtered, _) = ecs(
        &server,
        Method::GET,
        "/v1/ecs/nonprod/secrets?Application=none",
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(filtered, json!([]));
    let (_, other, _) = ecs(
        &server,
        Method::GET,
        "/v1/ecs/nonprod/secrets",
        Some(&globex),
        None,
    )
    .await;
    assert_eq!(other, json!([]), "another org lists none of acme's secrets");
    let (status, shown, _) = ecs(
        &server,
        Method::GET,
        "/v1/ecs/nonprod/secret/sshhhhh",
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    has_keys(&shown, README_SECRET_SHOW);
    assert_eq!(tag_of(&shown["Tags"], "spinup:org"), Some("acme"));
    assert_eq!(shown["DeletedDate"], Value::Null);
    assert!(shown["LastChangedDate"].as_str().unwrap().ends_with('Z'));
    let (status, by_arn, _) = ecs(
        &server,
        Method::GET,
        &format!("/v1/ecs/nonprod/secrets/{arn}"),
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(
        (status, &by_arn["Name"]),
        (StatusCode::OK, &json!("sshhhhh"))
    );
    let (status, _, _) = ecs(
        &server,
        Method::GET,
        "/v1/ecs/nonprod/secrets/sshhhhh",
        Some(&globex),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, native) = server
        .call(
            Method::GET,
            "/v1/environments/aws-test/secrets/sshhhhh",
            Some(&acme),
            None,
        )
        .await;
    assert_eq!((status, &native["arn"]), (StatusCode::OK, &json!(arn)));

    // The README's update: a new value and a tag (its lower-case keys); tags alone answer
    // an empty 200; the org tag is not the caller's to change, and another org's secret
    // is not found.
    let (status, updated, _) = ecs(
        &server,
        Method::PUT,
        "/v1/ecs/nonprod/secrets/sshhhhh",
        Some(&acme),
        Some(README_SECRET_UPDATE),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["VersionStages"], json!(["AWSCURRENT"]));
    let value = secrets
        .get_secret_value()
        .secret_id("sshhhhh")
        .send()
        .await
        .unwrap();
    assert_eq!(value.secret_string(), Some("TOPSEKRETsshhhhh"));
    assert_eq!(
        Some(updated["VersionId"].as_str().unwrap()),
        value.version_id()
    );
    let (status, empty, _) = ecs(
        &server,
        Method::PUT,
        "/v1/ecs/nonprod/secrets/sshhhhh",
        Some(&acme),
        Some(r#"{"Tags": [{"Key": "Team", "Value": "web"}]}"#),
    )
    .await;
    assert_eq!((status, empty), (StatusCode::OK, json!("")));
    let described = secrets
        .describe_secret()
        .secret_id("sshhhhh")
        .send()
        .await
        .unwrap();
    let tags: Vec<(&str, &str)> = described
        .tags()
        .iter()
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    assert!(
        tags.contains(&("Application", "FooBAAAAAR")) && tags.contains(&("Team", "web")),
        "{tags:?}"
    );
    let (status, text, _) = ecs(
        &server,
        Method::PUT,
        "/v1/ecs/nonprod/secrets/sshhhhh",
        Some(&acme),
        Some(r#"{"Tags": [{"Key": "spinup:org", "Value": "globex"}]}"#),
    )
    .await;
    assert_eq!(
        (status, text),
        (StatusCode::BAD_REQUEST, json!("illegal update of org tag"))
    );
    let (status, _, _) = ecs(
        &server,
        Method::PUT,
        "/v1/ecs/nonprod/secrets/sshhhhh",
        Some(&globex),
        Some(README_SECRET_UPDATE),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Delete: its window checked as ecs-api checked it, then at once with 0.
    for (window, text) in [
        ("3", "recovery window must be between 7 and 30 days"),
        ("x", "failed to parse window size as integer: x"),
    ] {
        let (status, answer, _) = ecs(
            &server,
            Method::DELETE,
            &format!("/v1/ecs/nonprod/secret/sshhhhh?window={window}"),
            Some(&acme),
            None,
        )
        .await;
        assert_eq!((status, answer), (StatusCode::BAD_REQUEST, json!(text)));
    }
    let (status, deleted, _) = ecs(
        &server,
        Method::DELETE,
        "/v1/ecs/nonprod/secret/sshhhhh?window=0",
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(
        keys(&deleted),
        keys(&json!({"ARN": 1, "DeletionDate": 1, "Name": 1}))
    );
    assert!(secrets
        .describe_secret()
        .secret_id("sshhhhh")
        .send()
        .await
        .is_err());

    // The README's parameter, under the org and the prefix, a SecureString with the
    // account's KMS key; its show in ecs-api's own shape and Go's date format.
    let (status, created, _) = ecs(
        &server,
        Method::POST,
        "/v1/ecs/nonprod/params/someprefix",
        Some(&acme),
        Some(README_PARAM_CREATE),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(created["Tier"], "Standard");
    has_keys(&created, &["Tier", "VersionId"]);
    let got = ssm
        .get_parameter()
        .name("/acme/someprefix/newsecret123")
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    let parameter = got.parameter().unwrap();
    assert_eq!(
        parameter.r#type(),
        Some(&aws_sdk_ssm::types::ParameterType::SecureString)
    );
    let described = ssm
        .describe_parameters()
        .parameter_filters(
            aws_sdk_ssm::types::ParameterStringFilter::builder()
                .key("Name")
                .option("Equals")
                .values("/acme/someprefix/newsecret123")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(described.parameters()[0].key_id(), Some(KMS_KEY));
    let (status, text, _) = ecs(
        &server,
        Method::POST,
        "/v1/ecs/nonprod/params/someprefix",
        Some(&acme),
        Some(r#"{"Name": "a/b", "Value": "x"}"#),
    )
    .await;
    assert_eq!(
        (status, text),
        (
            StatusCode::BAD_REQUEST,
            json!("name (a/b) cannot contain '/'")
        )
    );
    let (status, _, _) = ecs(
        &server,
        Method::POST,
        "/v1/ecs/nonprod/params/someprefix",
        Some(&acme),
        Some(README_PARAM_CREATE),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "a second create of one name");
    let (status, _, _) = ecs(
        &server,
        Method::POST,
        "/v1/ecs/nonprod/params/someprefix",
        Some(&acme),
        Some(r#"{"Name": "oldsecret123", "Value": "y", "Type": "String"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, names, _) = ecs(
        &server,
        Method::GET,
        "/v1/ecs/nonprod/params/someprefix",
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(
        (status, names),
        (StatusCode::OK, json!(["newsecret123", "oldsecret123"]))
    );
    let (_, none, _) = ecs(
        &server,
        Method::GET,
        "/v1/ecs/nonprod/params/someprefix",
        Some(&globex),
        None,
    )
    .await;
    assert_eq!(none, json!([]), "another org's prefix is its own");
    let (status, shown, _) = ecs(
        &server,
        Method::GET,
        "/v1/ecs/nonprod/params/someprefix/newsecret123",
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(
        keys(&shown),
        README_PARAM_SHOW.iter().map(|k| k.to_string()).collect()
    );
    assert_eq!(shown["Name"], "newsecret123");
    assert_eq!(shown["Type"], "SecureString");
    assert_eq!(shown["Description"], "a secret parameter");
    assert_eq!(tag_of(&shown["Tags"], "spinup:org"), Some("acme"));
    assert_eq!(tag_of(&shown["Tags"], "MyKey"), Some("MyValue"));
    assert!(
        shown["ARN"]
            .as_str()
            .unwrap()
            .ends_with(":parameter/acme/someprefix/newsecret123"),
        "{shown}"
    );
    let date = shown["LastModifiedDate"].as_str().unwrap();
    assert!(
        date.ends_with(" +0000 UTC") && date.as_bytes()[10] == b' ',
        "{date}"
    );
    let (status, native) = server
        .call(
            Method::GET,
            "/v1/environments/aws-test/parameters/someprefix/newsecret123",
            Some(&acme),
            None,
        )
        .await;
    assert_eq!((status, &native["version"]), (StatusCode::OK, &json!(1)));

    // The README's update, through its doubled slash: tags and a value (ecs-api failed
    // every update with tags); tags that are only the org's are no input.
    let (status, ok, _) = ecs(
        &server,
        Method::PUT,
        "/v1/ecs//nonprod/params/someprefix/newsecret123",
        Some(&acme),
        Some(&README_PARAM_UPDATE.replace("abc123", "def456")),
    )
    .await;
    assert_eq!((status, ok), (StatusCode::OK, json!("OK")));
    let got = ssm
        .get_parameter()
        .name("/acme/someprefix/newsecret123")
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    assert_eq!(got.parameter().unwrap().version(), 2);
    assert!(got
        .parameter()
        .unwrap()
        .value()
        .unwrap()
        .ends_with("def456"));
    let (status, text, _) = ecs(
        &server,
        Method::PUT,
        "/v1/ecs/nonprod/params/someprefix/newsecret123",
        Some(&acme),
        Some(r#"{"Tags": [{"Key": "spinup:org", "Value": "acme"}]}"#),
    )
    .await;
    assert_eq!(
        (status, text),
        (StatusCode::BAD_REQUEST, json!("invalid input"))
    );
    let (status, _, _) = ecs(
        &server,
        Method::PUT,
        "/v1/ecs/nonprod/params/someprefix/missing",
        Some(&acme),
        Some(README_PARAM_UPDATE),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Delete one, then every one left under the prefix.
    let (status, ok, _) = ecs(
        &server,
        Method::DELETE,
        "/v1/ecs/nonprod/params/someprefix/oldsecret123",
        Some(&acme),
        None,
    )
    .await;
    assert_eq!((status, ok), (StatusCode::OK, json!("OK")));
    let (status, all, _) = ecs(
        &server,
        Method::DELETE,
        "/v1/ecs/nonprod/params/someprefix",
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(
        (status, all),
        (StatusCode::OK, json!({"Message": "OK", "Deleted": 1}))
    );
    let left = ssm
        .get_parameters_by_path()
        .path("/acme")
        .recursive(true)
        .send()
        .await
        .unwrap();
    assert!(left.parameters().is_empty(), "{:?}", left.parameters());
    let (status, text, _) = ecs(
        &server,
        Method::GET,
        "/v1/ecs/elsewhere/params/someprefix",
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(
        (status, text),
        (
            StatusCode::NOT_FOUND,
            json!("ssm service not found for account: elsewhere")
        )
    );
}
