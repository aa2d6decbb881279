//! Container services against moto: clusters, task definitions, services and tasks made,
//! changed and deleted through overcast, each outcome read back from moto's ECS.

use crate::BIN;
use aws_sdk_ecs::types::{ClusterField, ServiceField, TaskDefinitionField};
use overcast_test_utils::moto::{
    ecs_client, iam_client, logs_client, servicediscovery_client, REGIONS,
};
use overcast_test_utils::process::cli;
use overcast_test_utils::{TestServer, ADMIN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const ENV: &str = "/v1/environments/aws-test";

async fn change(
    server: &TestServer,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let (status, op) = server
        .call(method.clone(), &format!("{ENV}{path}"), Some(token), body)
        .await;
    assert!(status.is_success(), "{method} {path}: {status} {op}");
    assert_eq!(op["status"], "succeeded", "{method} {path}: {op}");
    op
}

fn tag<'a>(tags: &'a [aws_sdk_ecs::types::Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_task_definitions_services_and_tasks_are_made_changed_and_deleted() {
    let server = TestServer::aws().await;
    let ecs = ecs_client(server.account.as_deref().unwrap(), REGIONS[0]).await;
    let acme = server.token("acme", "operator").await;
    // moto checks that a service's subnets exist: its default VPC's.
    let ec2 = server.ec2(REGIONS[0]).await;
    let subnets = ec2.describe_subnets().send().await.unwrap();
    let subnet = subnets.subnets()[0].subnet_id().unwrap().to_string();

    // A cluster, tagged with its owner, with both Fargate capacity providers.
    let op = change(
        &server,
        &acme,
        Method::POST,
        "/clusters",
        Some(json!({"name": "web", "tags": {"team": "platform"}})),
    )
    .await;
    assert_eq!(op["kind"], "cluster.create");
    let described = ecs
        .describe_clusters()
        .clusters("web")
        .include(ClusterField::Tags)
        .send()
        .await
        .unwrap();
    let cluster = &described.clusters()[0];
    assert_eq!(cluster.status(), Some("ACTIVE"));
    assert_eq!(tag(cluster.tags(), "overcast:org"), Some("acme"));
    assert_eq!(tag(cluster.tags(), "team"), Some("platform"));
    assert_eq!(cluster.capacity_providers(), ["FARGATE", "FARGATE_SPOT"]);
    let (status, err) = server
        .call(
            Method::POST,
            &format!("{ENV}/clusters"),
            Some(&acme),
            Some(json!({"name": "web"})),
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("cluster_exists"))
    );
    let (status, err) = server
        .call(
            Method::POST,
            &format!("{ENV}/clusters"),
            Some(&acme),
            Some(json!({"name": "web api"})),
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("name"))
    );

    // A task definition whose secret names an overcast secret; ECS gets its ARN.
    let secret = change(
        &server,
        &acme,
        Method::POST,
        "/secrets",
        Some(json!({"name": "web-db", "value": "s3cret"})),
    )
    .await;
    let secret_arn = secret["results"][0]["detail"]["arn"]
        .as_str()
        .unwrap()
        .to_string();
    let definition = json!({
        "family": "web",
        "containers": [{
            // moto's RunTask fails on a container without its own memory; Fargate needs none.
            "name": "nginx", "image": "nginx:alpine", "memory_mb": 512, "ports": [{"container_port": 80}],
            "environment": {"MODE": "prod"}, "secrets": {"DB_PASSWORD": "web-db"},
            "log": {"group": "/overcast/web", "stream_prefix": "web"},
        }],
    });
    let op = change(
        &server,
        &acme,
        Method::POST,
        "/task-definitions",
        Some(definition.clone()),
    )
    .await;
    assert_eq!(op["results"][0]["target"], "web:1");
    let described = ecs
        .describe_task_definition()
        .task_definition("web:1")
        .include(TaskDefinitionField::Tags)
        .send()
        .await
        .unwrap();
    let container = &described.task_definition().unwrap().container_definitions()[0];
    assert_eq!(container.image(), Some("nginx:alpine"));
    assert_eq!(container.secrets()[0].value_from(), secret_arn);
    assert_eq!(tag(described.tags(), "overcast:org"), Some("acme"));
    // Its log group was made, tagged as overcast's; so was the execution role it needs.
    let account = server.account.as_deref().unwrap();
    let logs = logs_client(account, REGIONS[0]).await;
    #[allow(deprecated)]
    let group_tags = logs
        .list_tags_log_group()
        .log_group_name("/overcast/web")
        .send()
        .await
        .unwrap();
    assert_eq!(group_tags.tags().unwrap()["overcast:org"], "acme");
    let role = described
        .task_definition()
        .unwrap()
        .execution_role_arn()
        .unwrap();
    assert!(
        role.ends_with(":role/overcast-ecs-task-execution"),
        "{role}"
    );
    let iam = iam_client(account, REGIONS[0]).await;
    let policy = iam
        .get_role_policy()
        .role_name("overcast-ecs-task-execution")
        .policy_name("overcast-task-execution")
        .send()
        .await
        .unwrap();
    // IAM answers the document URL-encoded.
    assert!(
        policy.policy_document().contains("GetSecretValue"),
        "{policy:?}"
    );

    let mut unknown_secret = definition.clone();
    unknown_secret["containers"][0]["secrets"] = json!({"X": "nope"});
    let (status, err) = server
        .call(
            Method::POST,
            &format!("{ENV}/task-definitions"),
            Some(&acme),
            Some(unknown_secret),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{err}");
    assert_eq!(err["error"]["field"], "containers[0].secrets.X");

    // A service discovery service in a namespace; an unknown namespace is a 404 (moto would
    // take it).
    let discovery = servicediscovery_client(account, REGIONS[0]).await;
    discovery
        .create_http_namespace()
        .name("internal")
        .send()
        .await
        .unwrap();
    let namespaces = discovery.list_namespaces().send().await.unwrap();
    let namespace = namespaces.namespaces()[0].id().unwrap().to_string();
    let (status, err) = server
        .call(
            Method::POST,
            &format!("{ENV}/registries"),
            Some(&acme),
            Some(json!({"namespace": "ns-nope", "name": "web"})),
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (StatusCode::NOT_FOUND, Some("namespace"))
    );
    let op = change(
        &server,
        &acme,
        Method::POST,
        "/registries",
        Some(json!({"namespace": namespace, "name": "web", "dns_ttl": 30})),
    )
    .await;
    let registry = op["results"][0]["detail"].clone();
    let registry_arn = registry["arn"].as_str().unwrap().to_string();
    let in_moto = discovery
        .get_service()
        .id(registry["id"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(in_moto.service().unwrap().name(), Some("web"));

    // A Fargate service of the family's latest revision.
    let service = json!({"name": "web", "task_definition": "web", "desired_count": 2, "subnets": [subnet], "registries": [registry_arn]});
    let op = change(
        &server,
        &acme,
        Method::POST,
        "/clusters/web/services",
        Some(service),
    )
    .await;
    assert_eq!(op["kind"], "service.create");
    let described = ecs
        .describe_services()
        .cluster("web")
        .services("web")
        .include(ServiceField::Tags)
        .send()
        .await
        .unwrap();
    let in_moto = &described.services()[0];
    assert_eq!(in_moto.desired_count(), 2);
    assert_eq!(in_moto.launch_type().map(|l| l.as_str()), Some("FARGATE"));
    assert!(in_moto
        .task_definition()
        .unwrap()
        .ends_with("task-definition/web:1"));
    assert_eq!(tag(in_moto.tags(), "overcast:org"), Some("acme"));
    let (_, shown) = server
        .call(
            Method::GET,
            &format!("{ENV}/clusters/web/services/web"),
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(shown["task_definition"], "web:1");
    assert_eq!(shown["desired_count"], 2);
    let (_, cluster) = server
        .call(
            Method::GET,
            &format!("{ENV}/clusters/web"),
            Some(&acme),
            None,
        )
        .await;
    // moto counts no active services in a cluster; the 409 below asks its lists instead.
    assert_eq!(cluster["status"], "ACTIVE", "{cluster}");
    let (status, err) = server
        .call(
            Method::DELETE,
            &format!("{ENV}/clusters/web"),
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("cluster_in_use"))
    );

    // The CLI shows the same, as tables and as JSON.
    let (code, out, err) = cli(
        BIN,
        &server.base,
        &["service", "ls", "-e", "aws-test", "web"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("NAME") && out.contains("web:1"), "{out}");
    let (code, out, err) = cli(
        BIN,
        &server.base,
        &["-o", "json", "cluster", "get", "-e", "aws-test", "web"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["org"], "acme");
    let (code, out, err) = cli(
        BIN,
        &server.base,
        &["taskdef", "ls", "-e", "aws-test", "--family", "web"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .nth(1)
            .is_some_and(|row| row.starts_with("web ")),
        "{out}"
    );

    // Scale it, run a task beside it and stop that.
    change(
        &server,
        &acme,
        Method::PATCH,
        "/clusters/web/services/web",
        Some(json!({"desired_count": 1})),
    )
    .await;
    let described = ecs
        .describe_services()
        .cluster("web")
        .services("web")
        .send()
        .await
        .unwrap();
    assert_eq!(described.services()[0].desired_count(), 1);
    let op = change(
        &server,
        &acme,
        Method::POST,
        "/clusters/web/tasks",
        Some(json!({
            "task_definition": "web:1", "subnets": [subnet],
            "overrides": {"nginx": {"environment": {"MODE": "once"}}},
        })),
    )
    .await;
    let task = op["results"][0]["target"].as_str().unwrap().to_string();
    let listed = ecs.list_tasks().cluster("web").send().await.unwrap();
    assert!(
        listed.task_arns().iter().any(|arn| arn.ends_with(&task)),
        "{listed:?}"
    );
    // What the task logged (put into its stream directly, as ECS's agent would).
    let stream = format!("web/nginx/{task}");
    logs.create_log_stream()
        .log_group_name("/overcast/web")
        .log_stream_name(&stream)
        .send()
        .await
        .unwrap();
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let mut put = logs
        .put_log_events()
        .log_group_name("/overcast/web")
        .log_stream_name(&stream);
    for i in 0..5 {
        put = put.log_events(
            aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                .timestamp(now_ms + i)
                .message(format!("line {i}"))
                .build()
                .unwrap(),
        );
    }
    put.send().await.unwrap();
    let logs_path = format!("{ENV}/clusters/web/tasks/{task}/logs");
    let (status, page) = server
        .call(Method::GET, &logs_path, Some(&acme), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let lines: Vec<&str> = page["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert_eq!(lines, ["line 0", "line 1", "line 2", "line 3", "line 4"]);
    assert_eq!(page["stream"], stream.as_str());
    let (_, newest) = server
        .call(
            Method::GET,
            &format!("{logs_path}?order=newest&limit=2"),
            Some(&acme),
            None,
        )
        .await;
    let lines: Vec<&str> = newest["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert_eq!(lines, ["line 4", "line 3"]);
    let (_, windowed) = server
        .call(
            Method::GET,
            &format!("{logs_path}?since={}&until={}", now_ms + 1, now_ms + 3),
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(windowed["lines"].as_array().unwrap().len(), 2, "{windowed}");
    let (code, out, err) = cli(
        BIN,
        &server.base,
        &["task", "logs", "-e", "aws-test", "web", &task],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().count() == 5 && out.contains(" line 4"), "{out}");
    let (status, _) = server
        .call(
            Method::GET,
            &format!("{logs_path}?order=sideways"),
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    change(
        &server,
        &acme,
        Method::POST,
        &format!("/clusters/web/tasks/{task}/stop"),
        None,
    )
    .await;
    let described = ecs
        .describe_tasks()
        .cluster("web")
        .tasks(&task)
        .send()
        .await
        .unwrap();
    assert_eq!(described.tasks()[0].desired_status(), Some("STOPPED"));

    // Another org sees none of it and changes none of it; a viewer changes nothing.
    let other = server.token("other", "operator").await;
    let (_, clusters) = server
        .call(Method::GET, &format!("{ENV}/clusters"), Some(&other), None)
        .await;
    assert_eq!(clusters["items"], json!([]));
    for path in [
        "/clusters/web",
        "/clusters/web/services",
        "/clusters/web/services/web",
        "/task-definitions/web:1",
    ] {
        let (status, _) = server
            .call(Method::GET, &format!("{ENV}{path}"), Some(&other), None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let (_, definitions) = server
        .call(
            Method::GET,
            &format!("{ENV}/task-definitions"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(definitions["items"], json!([]));
    let registry_id = registry["id"].as_str().unwrap();
    let (_, registries) = server
        .call(
            Method::GET,
            &format!("{ENV}/registries"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(registries["items"], json!([]));
    for (method, path) in [
        (Method::GET, format!("{ENV}/registries/{registry_id}")),
        (Method::DELETE, format!("{ENV}/registries/{registry_id}")),
        (Method::GET, format!("{ENV}/clusters/web/tasks/{task}/logs")),
        (
            Method::POST,
            format!("{ENV}/clusters/web/tasks/{task}/stop"),
        ),
        (Method::PATCH, format!("{ENV}/clusters/web/services/web")),
        (Method::DELETE, format!("{ENV}/task-definitions/web:1")),
    ] {
        let body = (method == Method::PATCH).then(|| json!({"desired_count": 5}));
        let (status, _) = server.call(method.clone(), &path, Some(&other), body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
    }
    let (_, shown) = server
        .call(
            Method::GET,
            &format!("{ENV}/clusters/web/services/web"),
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(
        shown["desired_count"], 1,
        "another org's update reached nothing"
    );
    let (status, _) = server
        .call(
            Method::DELETE,
            &format!("{ENV}/clusters/web/services/web"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let viewer = server.token("acme", "viewer").await;
    let (status, _) = server
        .call(
            Method::POST,
            &format!("{ENV}/clusters"),
            Some(&viewer),
            Some(json!({"name": "more"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A recursive delete takes the service and the revision overcast made for it; then
    // the cluster goes.
    let op = change(
        &server,
        &acme,
        Method::DELETE,
        "/clusters/web/services/web?recursive=true",
        None,
    )
    .await;
    let taken = &op["results"][0]["detail"];
    assert_eq!(taken["deregistered"], json!(["web:1"]));
    assert_eq!(taken["log_groups"], json!(["/overcast/web"]));
    assert_eq!(taken["registries"], json!([registry["id"]]));
    #[allow(deprecated)]
    let gone = logs
        .list_tags_log_group()
        .log_group_name("/overcast/web")
        .send()
        .await;
    assert!(gone.is_err(), "the log group overcast made is gone");
    assert!(discovery
        .get_service()
        .id(registry["id"].as_str().unwrap())
        .send()
        .await
        .is_err());
    let described = ecs
        .describe_services()
        .cluster("web")
        .services("web")
        .send()
        .await
        .unwrap();
    assert!(
        described
            .services()
            .iter()
            .all(|s| s.status() != Some("ACTIVE")),
        "{described:?}"
    );
    let described = ecs
        .describe_task_definition()
        .task_definition("web:1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        described
            .task_definition()
            .unwrap()
            .status()
            .map(|s| s.as_str()),
        Some("INACTIVE")
    );
    change(&server, &acme, Method::DELETE, "/clusters/web", None).await;
    let described = ecs
        .describe_clusters()
        .clusters("web")
        .send()
        .await
        .unwrap();
    assert!(
        described
            .clusters()
            .iter()
            .all(|c| c.status() != Some("ACTIVE")),
        "{described:?}"
    );
    let (_, clusters) = server
        .call(Method::GET, &format!("{ENV}/clusters"), Some(ADMIN), None)
        .await;
    assert_eq!(clusters["items"], json!([]));
}

/// The seed's first orchestration example, its parts as overcast takes them: a cluster, a
/// task definition with logs, a service discovery service and the service, in one call.
fn whole_service(namespace: &str, subnet: &str) -> Value {
    json!({
        "cluster": {"name": "myclu", "tags": {"CreatedBy": "netid", "OS": "container"}},
        "task_definition": {
            "family": "webservers", "cpu": "256", "memory": "512",
            "containers": [{
                "name": "webserver", "image": "nginx:alpine", "memory_mb": 512,
                "ports": [{"container_port": 80}],
                "environment": {"API_HOST": "localhost"},
                "log": {"group": "/overcast/webservers", "stream_prefix": "www"},
            }],
        },
        "registry": {"namespace": namespace, "name": "www", "dns_ttl": 30},
        "credentials": {"webserver": {"username": "deploy", "password": "hunter2hunter2"}},
        "service": {"name": "www", "desired_count": 1, "subnets": [subnet]},
    })
}

fn steps(op: &Value) -> Vec<(String, String)> {
    op["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["target"].as_str().unwrap().to_string(),
                r["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_call_makes_a_whole_service_a_recursive_delete_removes_it_and_a_failure_undoes_it() {
    let server = TestServer::aws().await;
    let account = server.account.clone().unwrap();
    let ecs = ecs_client(&account, REGIONS[0]).await;
    let discovery = servicediscovery_client(&account, REGIONS[0]).await;
    let logs = logs_client(&account, REGIONS[0]).await;
    let ec2 = server.ec2(REGIONS[0]).await;
    let subnets = ec2.describe_subnets().send().await.unwrap();
    let subnet = subnets.subnets()[0].subnet_id().unwrap().to_string();
    discovery
        .create_http_namespace()
        .name("internal")
        .send()
        .await
        .unwrap();
    let namespaces = discovery.list_namespaces().send().await.unwrap();
    let namespace = namespaces.namespaces()[0].id().unwrap().to_string();
    let acme = server.token("acme", "operator").await;

    // Everything, in order, each step recorded.
    let started = std::time::Instant::now();
    let op = change(
        &server,
        &acme,
        Method::POST,
        "/container-services",
        Some(whole_service(&namespace, &subnet)),
    )
    .await;
    let create_wall = started.elapsed();
    assert_eq!(op["kind"], "container_service.create");
    let made: Vec<(String, String)> = [
        "cluster",
        "credentials",
        "task_definition",
        "registry",
        "service",
    ]
    .iter()
    .map(|s| (s.to_string(), "done".to_string()))
    .collect();
    assert_eq!(steps(&op), made);
    let service = ecs
        .describe_services()
        .cluster("myclu")
        .services("www")
        .send()
        .await
        .unwrap();
    let service = &service.services()[0];
    assert!(service
        .task_definition()
        .unwrap()
        .ends_with("task-definition/webservers:1"));
    let registry_arn = service.service_registries()[0]
        .registry_arn()
        .unwrap()
        .to_string();
    let registry_id = registry_arn.rsplit('/').next().unwrap().to_string();
    assert_eq!(
        discovery
            .get_service()
            .id(&registry_id)
            .send()
            .await
            .unwrap()
            .service()
            .unwrap()
            .name(),
        Some("www")
    );
    // The container pulls with the credentials secret made for it; its value is in the
    // secret, never in the operation.
    let revision = ecs
        .describe_task_definition()
        .task_definition("webservers:1")
        .send()
        .await
        .unwrap();
    let credentials_arn = revision.task_definition().unwrap().container_definitions()[0]
        .repository_credentials()
        .unwrap()
        .credentials_parameter()
        .to_string();
    let secrets = server.secretsmanager(REGIONS[0]).await;
    let value = secrets
        .get_secret_value()
        .secret_id(&credentials_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(value.secret_string().unwrap()).unwrap(),
        json!({"username": "deploy", "password": "hunter2hunter2"})
    );
    assert!(!op.to_string().contains("hunter2hunter2"));
    let create_calls = op["backend_calls"].as_u64().unwrap();

    // A recursive delete removes exactly what the call made: the service, its revision,
    // log group and registry; then the cluster.
    let started = std::time::Instant::now();
    let deleted = change(
        &server,
        &acme,
        Method::DELETE,
        "/clusters/myclu/services/www?recursive=true",
        None,
    )
    .await;
    let cluster_deleted = change(&server, &acme, Method::DELETE, "/clusters/myclu", None).await;
    let delete_wall = started.elapsed();
    let delete_calls = deleted["backend_calls"].as_u64().unwrap()
        + cluster_deleted["backend_calls"].as_u64().unwrap();
    let taken = &deleted["results"][0]["detail"];
    assert_eq!(taken["deregistered"], json!(["webservers:1"]));
    assert_eq!(taken["log_groups"], json!(["/overcast/webservers"]));
    assert_eq!(taken["registries"], json!([registry_id]));
    assert_eq!(taken["secrets"], json!(["www-webserver-registry"]));
    assert!(secrets
        .describe_secret()
        .secret_id(&credentials_arn)
        .send()
        .await
        .is_err());
    let clusters = ecs
        .describe_clusters()
        .clusters("myclu")
        .send()
        .await
        .unwrap();
    assert!(clusters
        .clusters()
        .iter()
        .all(|c| c.status() != Some("ACTIVE")));
    println!(
        "one-call create: {create_calls} backend calls, {:.0} ms; recursive delete (service, then cluster): {delete_calls} backend calls, {:.0} ms",
        create_wall.as_secs_f64() * 1000.0,
        delete_wall.as_secs_f64() * 1000.0
    );

    // The second example: existing cluster and revision; only the service is made.
    change(
        &server,
        &acme,
        Method::POST,
        "/clusters",
        Some(json!({"name": "existing"})),
    )
    .await;
    change(
        &server,
        &acme,
        Method::POST,
        "/task-definitions",
        Some(json!({
            "family": "mytaskdef", "containers": [{"name": "app", "image": "nginx:alpine"}],
        })),
    )
    .await;
    let op = change(
        &server,
        &acme,
        Method::POST,
        "/container-services",
        Some(json!({
            "cluster": {"name": "existing"},
            "service": {"name": "only", "task_definition": "mytaskdef:1", "subnets": [subnet]},
        })),
    )
    .await;
    assert_eq!(steps(&op), [("service".to_string(), "done".to_string())]);
    let listed = ecs
        .list_task_definitions()
        .family_prefix("mytaskdef")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.task_definition_arns().len(), 1, "no new revision");

    // A failure at the service step undoes the cluster, revision and registry it made.
    let mut failing = whole_service(&namespace, "subnet-00000000000000000");
    failing["cluster"]["name"] = json!("doomed");
    failing["registry"]["name"] = json!("doomed");
    let (status, answer) = server
        .call(
            Method::POST,
            &format!("{ENV}/container-services?timeout=120"),
            Some(&acme),
            Some(failing),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let op_id = answer["error"]["operation_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, op) = server
        .call(
            Method::GET,
            &format!("/v1/operations/{op_id}"),
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(op["status"], "failed");
    assert_eq!(
        steps(&op),
        [
            ("cluster", "done"),
            ("credentials", "done"),
            ("task_definition", "done"),
            ("registry", "done"),
            ("rollback", "failed"),
            ("undo:registry", "done"),
            ("undo:task_definition", "done"),
            ("undo:credentials", "done"),
            ("undo:cluster", "done"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let clusters = ecs
        .describe_clusters()
        .clusters("doomed")
        .send()
        .await
        .unwrap();
    assert!(
        clusters
            .clusters()
            .iter()
            .all(|c| c.status() != Some("ACTIVE")),
        "{clusters:?}"
    );
    let revision = ecs
        .describe_task_definition()
        .task_definition("webservers:2")
        .send()
        .await
        .unwrap();
    assert_eq!(
        revision
            .task_definition()
            .unwrap()
            .status()
            .map(|s| s.as_str()),
        Some("INACTIVE")
    );
    let left = discovery.list_services().send().await.unwrap();
    assert!(
        left.services().iter().all(|s| s.name() != Some("doomed")),
        "{left:?}"
    );
    // The log group this call made again (the first call's went with its service) is gone.
    #[allow(deprecated)]
    let group = logs
        .list_tags_log_group()
        .log_group_name("/overcast/webservers")
        .send()
        .await;
    assert!(
        group.is_err(),
        "the log group the failed call made is undone"
    );

    // Bad parts are refused before anything is made, naming the part.
    let mut bad = whole_service(&namespace, &subnet);
    bad["registry"]["namespace"] = json!("ns-nope");
    let (status, err) = server
        .call(
            Method::POST,
            &format!("{ENV}/container-services"),
            Some(&acme),
            Some(bad),
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (StatusCode::NOT_FOUND, Some("registry.namespace"))
    );
    let mut bad = whole_service(&namespace, &subnet);
    bad["task_definition"]["containers"][0]["name"] = json!("web server");
    let (status, err) = server
        .call(
            Method::POST,
            &format!("{ENV}/container-services"),
            Some(&acme),
            Some(bad),
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("task_definition.containers[0].name")
        )
    );
    let other = server.token("other", "operator").await;
    let (status, err) = server
        .call(Method::POST, &format!("{ENV}/container-services"), Some(&other), Some(json!({
            "cluster": {"name": "existing"}, "service": {"name": "sneaky", "task_definition": "mytaskdef:1"},
        })))
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (StatusCode::NOT_FOUND, Some("cluster")),
        "{err}"
    );
}
