//! The AWS backend end to end: requests through overcast's HTTP API, outcomes read from moto
//! directly with the SDK.

use aws_sdk_ec2::types::{InstanceAttributeName, InstanceStateName};
use base64::Engine;
use overcast_test_utils::metrics::backend_calls;
use overcast_test_utils::moto::{
    ec2_client, in_moto, moto_url, new_account, some_image, InMoto, REGIONS,
};
use overcast_test_utils::server::{config, environment};
use overcast_test_utils::{TestServer, ADMIN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};

const ENV: &str = "/v1/environments/aws-test/instances";

/// Every instance id moto holds in a region, terminated ones left out.
async fn ids_in_moto(ec2: &aws_sdk_ec2::Client) -> HashSet<String> {
    let out = ec2.describe_instances().send().await.unwrap();
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter(|i| i.state().and_then(|s| s.name()) != Some(&InstanceStateName::Terminated))
        .map(|i| i.instance_id().unwrap().to_string())
        .collect()
}

async fn create(server: &TestServer, token: &str, body: Value) -> Value {
    let (status, op) = server
        .call(Method::POST, ENV, Some(token), Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{op}");
    assert_eq!(op["status"], "succeeded", "{op}");
    op
}

fn created_ids(op: &Value) -> Vec<String> {
    op["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["target"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_tags_at_launch_and_passes_user_data() {
    let server = TestServer::aws().await;
    let ec2 = server.ec2(REGIONS[0]).await;
    let image = some_image(&ec2).await;
    let op = create(
        &server,
        ADMIN,
        json!({"name": "web-1", "image": image, "instance_type": "t3.micro", "tags": {"team": "web"},
               "user_data": "#!/bin/sh\necho hello\n"}),
    )
    .await;
    assert_eq!(op["kind"], "instance.create");
    assert_eq!(op["environment"], "aws-test");
    assert_eq!(op["progress"], json!({"done": 1, "total": 1}));
    let id = &created_ids(&op)[0];
    assert_eq!(
        op["results"][0]["detail"]["stage"], "dev",
        "no stage means the first"
    );

    let InMoto { state, tags, .. } = in_moto(&ec2, id).await;
    assert_eq!(state, InstanceStateName::Running);
    assert_eq!(tags["Name"], "web-1");
    assert_eq!(tags["team"], "web");
    assert_eq!(tags["stage"], "dev");
    assert_eq!(tags["overcast:org"], "admin");
    assert_eq!(tags["overcast:created-by"], "bootstrap-admin");
    assert_eq!(tags["overcast:operation"], op["id"].as_str().unwrap());

    let attribute = ec2
        .describe_instance_attribute()
        .instance_id(id)
        .attribute(InstanceAttributeName::UserData)
        .send()
        .await
        .unwrap();
    let user_data = attribute.user_data().unwrap().value().unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(user_data)
        .unwrap();
    assert_eq!(decoded, b"#!/bin/sh\necho hello\n");

    let (status, got) = server
        .call(Method::GET, &format!("{ENV}/{id}"), Some(ADMIN), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (got["state"].as_str(), got["region"].as_str()),
        (Some("running"), Some(REGIONS[0]))
    );
    assert_eq!(got["name"], "web-1");
    let (status, console) = server
        .call(
            Method::GET,
            &format!("{ENV}/{id}/console"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(console["output"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_launches_nothing() {
    let server = TestServer::aws().await;
    let ec2 = server.ec2(REGIONS[0]).await;
    let image = some_image(&ec2).await;
    let (status, answer) = server
        .call(
            Method::POST,
            ENV,
            Some(ADMIN),
            Some(json!({"image": image, "instance_type": "t3.micro", "count": 3, "dry_run": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["dry_run"], true);
    assert!(ids_in_moto(&ec2).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_span_both_regions_with_filters_and_paging() {
    let server = TestServer::aws().await;
    let (west, east) = (server.ec2(REGIONS[0]).await, server.ec2(REGIONS[1]).await);
    let (west_image, east_image) = (some_image(&west).await, some_image(&east).await);
    create(&server, ADMIN, json!({"image": west_image, "instance_type": "t3.micro", "count": 3, "tags": {"tier": "web"}})).await;
    create(
        &server,
        ADMIN,
        json!({"image": east_image, "instance_type": "t3.micro", "count": 2, "region": REGIONS[1], "stage": "test", "name": "db"}),
    )
    .await;
    let mut expected = ids_in_moto(&west).await;
    expected.extend(ids_in_moto(&east).await);
    assert_eq!(expected.len(), 5);

    let list = |query: &str| {
        let server = &server;
        let path = format!("{ENV}{query}");
        async move {
            let (status, page) = server.call(Method::GET, &path, Some(ADMIN), None).await;
            assert_eq!(status, StatusCode::OK, "{path}: {page}");
            page
        }
    };
    let ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        ids(&list("").await).into_iter().collect::<HashSet<_>>(),
        expected
    );
    let test_stage = list("?stage=test").await;
    assert_eq!(ids(&test_stage).len(), 2);
    assert!(test_stage["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["region"] == REGIONS[1] && i["stage"] == "test"));
    assert_eq!(
        ids(&list(&format!("?region={}", REGIONS[0])).await).len(),
        3
    );
    assert_eq!(ids(&list("?tag.tier=web").await).len(), 3);
    assert_eq!(ids(&list("?name=db").await).len(), 2);
    assert_eq!(ids(&list("?state=stopped").await).len(), 0);

    let describes_before =
        backend_calls(&server.metrics().await, &[("action", "DescribeInstances")]);
    let mut paged = vec![];
    let mut token: Option<String> = None;
    loop {
        let query = match &token {
            Some(t) => format!("?limit=2&page_token={t}"),
            None => "?limit=2".to_string(),
        };
        let page = list(&query).await;
        assert!(ids(&page).len() <= 2);
        paged.extend(ids(&page));
        match page["next_page_token"].as_str() {
            Some(next) => token = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(paged.len(), 5);
    assert_eq!(paged.iter().cloned().collect::<HashSet<_>>(), expected);
    assert_eq!(
        backend_calls(&server.metrics().await, &[("action", "DescribeInstances")])
            - describes_before,
        0,
        "three pages come from the inventory the first list filled"
    );

    let (status, err) = server
        .call(
            Method::GET,
            &format!("{ENV}?region=mars-east-9"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("region"))
    );
    let (status, err) = server
        .call(Method::GET, &format!("{ENV}?colour=red"), Some(ADMIN), None)
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("query"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_start_reboot_and_terminate_reach_their_states_in_moto() {
    let server = TestServer::aws().await;
    let ec2 = server.ec2(REGIONS[0]).await;
    let image = some_image(&ec2).await;
    let op = create(
        &server,
        ADMIN,
        json!({"image": image, "instance_type": "t3.micro"}),
    )
    .await;
    let id = created_ids(&op)[0].clone();
    let act = |action: &'static str, body: Option<Value>| {
        let server = &server;
        let id = id.clone();
        async move {
            server
                .call(
                    Method::POST,
                    &format!("{ENV}/{id}/{action}"),
                    Some(ADMIN),
                    body,
                )
                .await
        }
    };

    let (status, op) = act("stop", None).await;
    assert_eq!(
        (status, op["status"].as_str()),
        (StatusCode::OK, Some("succeeded")),
        "{op}"
    );
    assert_eq!(op["results"][0]["detail"]["state"], "stopped");
    assert_eq!(in_moto(&ec2, &id).await.state, InstanceStateName::Stopped);

    // Stopping a stopped instance is done without a backend call.
    let (_, op) = act("stop", None).await;
    assert_eq!(op["results"][0]["message"], "already stopped");

    let (_, op) = act("start", None).await;
    assert_eq!(op["status"], "succeeded");
    assert_eq!(in_moto(&ec2, &id).await.state, InstanceStateName::Running);

    let (_, op) = act("reboot", None).await;
    assert_eq!(op["status"], "succeeded");
    assert_eq!(in_moto(&ec2, &id).await.state, InstanceStateName::Running);

    let (_, op) = act("stop", Some(json!({"force": true}))).await;
    assert_eq!(op["status"], "succeeded");
    assert_eq!(in_moto(&ec2, &id).await.state, InstanceStateName::Stopped);

    let (status, err) = act("start", Some(json!({"force": true}))).await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("body.force"))
    );
    let (status, err) = act("explode", None).await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("action"))
    );

    let (status, op) = server
        .call(Method::DELETE, &format!("{ENV}/{id}"), Some(ADMIN), None)
        .await;
    assert_eq!(
        (status, op["status"].as_str()),
        (StatusCode::OK, Some("succeeded")),
        "{op}"
    );
    assert_eq!(op["kind"], "instance.terminate");
    assert_eq!(
        in_moto(&ec2, &id).await.state,
        InstanceStateName::Terminated
    );

    // moto would start a terminated instance; AWS does not, and neither does overcast.
    let (status, err) = act("start", None).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("wrong_state"))
    );
    assert_eq!(
        in_moto(&ec2, &id).await.state,
        InstanceStateName::Terminated
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_are_set_and_removed_in_moto() {
    let server = TestServer::aws().await;
    let ec2 = server.ec2(REGIONS[0]).await;
    let image = some_image(&ec2).await;
    let op = create(
        &server,
        ADMIN,
        json!({"image": image, "instance_type": "t3.micro", "tags": {"a": "1"}}),
    )
    .await;
    let id = created_ids(&op)[0].clone();
    let tags_path = format!("{ENV}/{id}/tags");

    let (status, op) = server
        .call(
            Method::PUT,
            &tags_path,
            Some(ADMIN),
            Some(json!({"tags": {"owner": "ops", "a": "2"}})),
        )
        .await;
    assert_eq!(
        (status, op["status"].as_str()),
        (StatusCode::OK, Some("succeeded")),
        "{op}"
    );
    let InMoto { tags, .. } = in_moto(&ec2, &id).await;
    assert_eq!((tags["owner"].as_str(), tags["a"].as_str()), ("ops", "2"));

    let (_, op) = server
        .call(
            Method::DELETE,
            &tags_path,
            Some(ADMIN),
            Some(json!({"keys": ["a"]})),
        )
        .await;
    assert_eq!(op["status"], "succeeded");
    let InMoto { tags, .. } = in_moto(&ec2, &id).await;
    assert!(!tags.contains_key("a") && tags.contains_key("owner"));

    let (status, err) = server
        .call(
            Method::PUT,
            &tags_path,
            Some(ADMIN),
            Some(json!({"tags": {"overcast:org": "evil"}})),
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("tags.overcast:org"))
    );
    let (status, err) = server
        .call(
            Method::DELETE,
            &tags_path,
            Some(ADMIN),
            Some(json!({"keys": ["overcast:org"]})),
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("keys[0]"))
    );
    assert_eq!(in_moto(&ec2, &id).await.tags["overcast:org"], "admin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_creates_are_refused_with_the_field_and_launch_nothing() {
    let server = TestServer::aws().await;
    let ec2 = server.ec2(REGIONS[0]).await;
    let image = some_image(&ec2).await;
    let cases = [
        (
            json!({"image": "ami-00000000deadbeef0", "instance_type": "t3.micro"}),
            "image",
        ),
        (
            json!({"image": image, "instance_type": "t9.galactic"}),
            "instance_type",
        ),
        (json!({"image": image}), "instance_type"),
        (json!({"instance_type": "t3.micro"}), "image"),
        (
            json!({"image": image, "instance_type": "t3.micro", "stage": "qa"}),
            "stage",
        ),
        (
            json!({"image": image, "instance_type": "t3.micro", "region": "mars-east-9"}),
            "region",
        ),
        (
            json!({"image": image, "instance_type": "t3.micro", "count": 0}),
            "count",
        ),
        (
            json!({"image": image, "instance_type": "t3.micro", "machine_type": "nope"}),
            "machine_type",
        ),
        (
            json!({"image": image, "instance_type": "t3.micro", "key_pair": "missing"}),
            "key_pair",
        ),
        (
            json!({"image": image, "instance_type": "t3.micro", "colour": "red"}),
            "body.colour",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = server
            .call(Method::POST, ENV, Some(ADMIN), Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
        assert!(!answer["error"]["message"].as_str().unwrap().is_empty());
    }
    assert!(ids_in_moto(&ec2).await.is_empty(), "nothing was launched");
    // What the backend refused was recorded as a failed operation, named in the answer.
    let (_, answer) = server
        .call(
            Method::POST,
            ENV,
            Some(ADMIN),
            Some(json!({"image": "ami-00000000deadbeef0", "instance_type": "t3.micro"})),
        )
        .await;
    let op_id = answer["error"]["operation_id"].as_str().unwrap();
    let (_, op) = server
        .call(
            Method::GET,
            &format!("/v1/operations/{op_id}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(op["status"], "failed");
    assert_eq!(op["error"]["code"], "image_not_found");
    assert!(
        op["error"]["message"]
            .as_str()
            .unwrap()
            .contains("InvalidAMIID"),
        "the backend's code is kept: {op}"
    );
    let (status, _) = server
        .call(
            Method::GET,
            &format!("{ENV}/i-0123456789abcdef0"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server
        .call(
            Method::GET,
            "/v1/environments/nowhere/instances",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_org_neither_sees_nor_touches_an_instance() {
    let server = TestServer::aws().await;
    let ec2 = server.ec2(REGIONS[0]).await;
    let image = some_image(&ec2).await;
    let acme = server.token("acme", "operator").await;
    let other = server.token("other", "operator").await;
    let op = create(
        &server,
        &acme,
        json!({"image": image, "instance_type": "t3.micro"}),
    )
    .await;
    let id = created_ids(&op)[0].clone();
    assert_eq!(in_moto(&ec2, &id).await.tags["overcast:org"], "acme");

    let (status, _) = server
        .call(Method::GET, &format!("{ENV}/{id}"), Some(&acme), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    for (method, path, body) in [
        (Method::GET, format!("{ENV}/{id}"), None),
        (Method::POST, format!("{ENV}/{id}/stop"), None),
        (Method::POST, format!("{ENV}/{id}/terminate"), None),
        (Method::DELETE, format!("{ENV}/{id}"), None),
        (
            Method::PUT,
            format!("{ENV}/{id}/tags"),
            Some(json!({"tags": {"x": "y"}})),
        ),
        (Method::GET, format!("{ENV}/{id}/console"), None),
    ] {
        let (status, answer) = server.call(method.clone(), &path, Some(&other), body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {answer}");
        assert_eq!(answer["error"]["code"], "instance_not_found");
    }
    let (_, page) = server.call(Method::GET, ENV, Some(&other), None).await;
    assert!(page["items"].as_array().unwrap().is_empty());
    let (_, page) = server.call(Method::GET, ENV, Some(&acme), None).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let InMoto { state, tags, .. } = in_moto(&ec2, &id).await;
    assert_eq!(state, InstanceStateName::Running);
    assert!(!tags.contains_key("x"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_creates_with_one_key_launch_once() {
    let server = TestServer::aws().await;
    let ec2 = server.ec2(REGIONS[0]).await;
    let image = some_image(&ec2).await;
    let body = json!({"image": image, "instance_type": "t3.micro", "count": 2});
    let send = || {
        let server = &server;
        let body = body.clone();
        async move {
            let response = server
                .http
                .post(format!("{}{ENV}", server.base))
                .bearer_auth(ADMIN)
                .header("idempotency-key", "launch-once")
                .json(&body)
                .send()
                .await
                .unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    let ((s1, a), (s2, b)) = tokio::join!(send(), send());
    assert_eq!(
        (s1, s2),
        (StatusCode::CREATED, StatusCode::CREATED),
        "{a} {b}"
    );
    assert_eq!(a["id"], b["id"]);
    assert_eq!(ids_in_moto(&ec2).await.len(), 2, "launched once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_is_reported_not_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    moto_url();
    config.environments.insert(
        "dead".into(),
        environment(json!({
            "provider": "aws",
            "regions": ["eu-west-1"],
            "endpoint_url": "http://127.0.0.1:9",
        })),
    );
    let (core, _) = overcast_core::Core::open(config, &overcast::providers(), Some(ADMIN.into()))
        .await
        .unwrap();
    let view = core.environment("dead").await.unwrap();
    assert!(!view.reachable);
    assert!(view
        .reason
        .unwrap()
        .contains("cannot reach the AWS endpoint"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modify_enforces_ec2_preconditions_and_changes_moto() {
    let server = TestServer::aws().await;
    let ec2 = server.ec2(REGIONS[0]).await;
    let image = some_image(&ec2).await;
    let op = create(
        &server,
        ADMIN,
        json!({"image": image, "instance_type": "t3.micro"}),
    )
    .await;
    let id = created_ids(&op)[0].clone();
    let path = format!("{ENV}/{id}");

    // A running instance keeps its type: moto would change it, AWS refuses, so does overcast.
    let (status, err) = server
        .call(
            Method::PATCH,
            &path,
            Some(ADMIN),
            Some(json!({"instance_type": "t3.large"})),
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("instance_not_stopped"))
    );
    assert_eq!(in_moto(&ec2, &id).await.instance_type(), "t3.micro");

    server
        .call(Method::POST, &format!("{path}/stop"), Some(ADMIN), None)
        .await;
    let (status, op) = server
        .call(
            Method::PATCH,
            &path,
            Some(ADMIN),
            Some(json!({"instance_type": "t3.large"})),
        )
        .await;
    assert_eq!(
        (status, op["status"].as_str()),
        (StatusCode::OK, Some("succeeded")),
        "{op}"
    );
    assert_eq!(op["kind"], "instance.modify");
    assert_eq!(in_moto(&ec2, &id).await.instance_type(), "t3.large");

    // Termination protection: terminate is refused (by moto here, as by AWS) until it is off.
    let (_, op) = server
        .call(
            Method::PATCH,
            &path,
            Some(ADMIN),
            Some(json!({"termination_protection": true})),
        )
        .await;
    assert_eq!(op["status"], "succeeded");
    let (status, err) = server
        .call(
            Method::POST,
            &format!("{path}/terminate"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert!(err["error"]["operation_id"].is_string());
    assert_eq!(in_moto(&ec2, &id).await.state, InstanceStateName::Stopped);
    let (_, op) = server
        .call(
            Method::PATCH,
            &path,
            Some(ADMIN),
            Some(json!({"termination_protection": false})),
        )
        .await;
    assert_eq!(op["status"], "succeeded");

    // Security groups, from the instance's own VPC.
    let vpc = ec2.describe_vpcs().send().await.unwrap().vpcs()[0]
        .vpc_id()
        .unwrap()
        .to_string();
    let group = ec2
        .create_security_group()
        .group_name("web")
        .description("web")
        .vpc_id(vpc)
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_string();
    let (_, op) = server
        .call(
            Method::PATCH,
            &path,
            Some(ADMIN),
            Some(json!({"security_groups": [group]})),
        )
        .await;
    assert_eq!(op["status"], "succeeded", "{op}");
    let out = ec2
        .describe_instances()
        .instance_ids(&id)
        .send()
        .await
        .unwrap();
    let groups: Vec<_> = out.reservations()[0].instances()[0]
        .security_groups()
        .iter()
        .map(|g| g.group_id().unwrap().to_string())
        .collect();
    assert_eq!(groups, [group]);

    for (body, field) in [
        (json!({}), "body"),
        (json!({"security_groups": []}), "security_groups"),
        (json!({"size": 3}), "body.size"),
    ] {
        let (status, err) = server
            .call(Method::PATCH, &path, Some(ADMIN), Some(body))
            .await;
        assert_eq!(
            (status, err["error"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regions_and_zones_come_from_the_backend() {
    let server = TestServer::aws().await;
    let (status, regions) = server
        .call(
            Method::GET,
            "/v1/environments/aws-test/regions",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<_> = regions["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, REGIONS);
    let ec2 = server.ec2(REGIONS[1]).await;
    let zones: Vec<String> = ec2
        .describe_availability_zones()
        .send()
        .await
        .unwrap()
        .availability_zones()
        .iter()
        .map(|z| z.zone_name().unwrap().to_string())
        .collect();
    assert!(!zones.is_empty());
    assert_eq!(regions["items"][1]["zones"], json!(zones));
}

const SGS: &str = "/v1/environments/aws-test/security-groups";

/// The rules moto holds for a group, as (direction, protocol, from, to, source) tuples.
async fn rules_in_moto(
    ec2: &aws_sdk_ec2::Client,
    id: &str,
) -> HashSet<(String, String, i32, i32, String)> {
    let out = ec2
        .describe_security_groups()
        .group_ids(id)
        .send()
        .await
        .unwrap();
    let group = &out.security_groups()[0];
    let mut rules = HashSet::new();
    for (direction, permissions) in [
        ("in", group.ip_permissions()),
        ("out", group.ip_permissions_egress()),
    ] {
        for p in permissions {
            let sources = p
                .ip_ranges()
                .iter()
                .filter_map(|r| r.cidr_ip().map(str::to_string))
                .chain(
                    p.ipv6_ranges()
                        .iter()
                        .filter_map(|r| r.cidr_ipv6().map(str::to_string)),
                )
                .chain(
                    p.user_id_group_pairs()
                        .iter()
                        .filter_map(|g| g.group_id().map(str::to_string)),
                );
            for source in sources {
                rules.insert((
                    direction.to_string(),
                    p.ip_protocol().unwrap().to_string(),
                    p.from_port().unwrap_or(-1),
                    p.to_port().unwrap_or(-1),
                    source,
                ));
            }
        }
    }
    rules
}

async fn create_group(server: &TestServer, token: &str, name: &str) -> String {
    let (status, op) = server
        .call(Method::POST, SGS, Some(token), Some(json!({"name": name, "description": format!("{name} servers"), "tags": {"team": "web"}})))
        .await;
    assert_eq!(
        (status, op["status"].as_str()),
        (StatusCode::CREATED, Some("succeeded")),
        "{op}"
    );
    op["results"][0]["target"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_group_rules_land_in_moto() {
    let server = TestServer::aws().await;
    let ec2 = server.ec2(REGIONS[0]).await;
    let web = create_group(&server, ADMIN, "web").await;
    let app = create_group(&server, ADMIN, "app").await;
    let out = ec2
        .describe_security_groups()
        .group_ids(&web)
        .send()
        .await
        .unwrap();
    let group = &out.security_groups()[0];
    assert_eq!(group.group_name(), Some("web"));
    let tags: BTreeMap<_, _> = group
        .tags()
        .iter()
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    assert_eq!((tags["overcast:org"], tags["team"]), ("admin", "web"));

    let rules = [
        json!({"direction": "ingress", "protocol": "tcp", "from_port": 80, "to_port": 80, "cidr": "0.0.0.0/0"}),
        json!({"direction": "ingress", "protocol": "tcp", "from_port": 443, "to_port": 443, "cidr": "::/0"}),
        json!({"direction": "ingress", "protocol": "udp", "from_port": 5000, "to_port": 5010, "cidr": "10.0.0.0/8"}),
        json!({"direction": "ingress", "protocol": "icmp", "from_port": -1, "to_port": -1, "cidr": "10.0.0.0/8"}),
        json!({"direction": "egress", "protocol": "tcp", "from_port": 5432, "to_port": 5432, "cidr": "10.1.0.0/16"}),
    ];
    for rule in &rules {
        let (status, op) = server
            .call(
                Method::POST,
                &format!("{SGS}/{web}/rules"),
                Some(ADMIN),
                Some(rule.clone()),
            )
            .await;
        assert_eq!(
            (status, op["status"].as_str()),
            (StatusCode::OK, Some("succeeded")),
            "{rule}: {op}"
        );
    }
    // The app group admits the web group: a source-group rule.
    let from_web = json!({"direction": "ingress", "protocol": "tcp", "from_port": 8080, "to_port": 8080, "source_group": web});
    let (_, op) = server
        .call(
            Method::POST,
            &format!("{SGS}/{app}/rules"),
            Some(ADMIN),
            Some(from_web.clone()),
        )
        .await;
    assert_eq!(op["status"], "succeeded", "{op}");
    // Adding a rule twice is no error.
    let (status, _) = server
        .call(
            Method::POST,
            &format!("{SGS}/{web}/rules"),
            Some(ADMIN),
            Some(rules[0].clone()),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let in_moto = rules_in_moto(&ec2, &web).await;
    for expected in [
        ("in", "tcp", 80, 80, "0.0.0.0/0"),
        ("in", "tcp", 443, 443, "::/0"),
        ("in", "udp", 5000, 5010, "10.0.0.0/8"),
        ("in", "icmp", -1, -1, "10.0.0.0/8"),
        ("out", "tcp", 5432, 5432, "10.1.0.0/16"),
    ] {
        let expected = (
            expected.0.to_string(),
            expected.1.to_string(),
            expected.2,
            expected.3,
            expected.4.to_string(),
        );
        assert!(
            in_moto.contains(&expected),
            "{expected:?} not in {in_moto:?}"
        );
    }
    assert!(rules_in_moto(&ec2, &app).await.contains(&(
        "in".into(),
        "tcp".into(),
        8080,
        8080,
        web.clone()
    )));

    let (status, group) = server
        .call(Method::GET, &format!("{SGS}/{web}"), Some(ADMIN), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        group["rules"].as_array().unwrap().contains(&rules[1]),
        "{group}"
    );

    let (_, op) = server
        .call(
            Method::DELETE,
            &format!("{SGS}/{web}/rules"),
            Some(ADMIN),
            Some(rules[2].clone()),
        )
        .await;
    assert_eq!(op["status"], "succeeded");
    assert!(!rules_in_moto(&ec2, &web).await.iter().any(|r| r.1 == "udp"));

    let bad = [
        (
            json!({"direction": "ingress", "protocol": "tcp", "from_port": 22, "to_port": 22, "cidr": "10.0.0.0/33"}),
            "cidr",
        ),
        (
            json!({"direction": "ingress", "protocol": "tcp", "from_port": 80, "to_port": 22, "cidr": "10.0.0.0/8"}),
            "to_port",
        ),
        (
            json!({"direction": "ingress", "protocol": "tcp", "from_port": 0, "to_port": 70000, "cidr": "10.0.0.0/8"}),
            "to_port",
        ),
        (
            json!({"direction": "ingress", "protocol": "smtp", "from_port": 25, "to_port": 25, "cidr": "10.0.0.0/8"}),
            "body.protocol",
        ),
        (
            json!({"direction": "ingress", "protocol": "all", "from_port": 1, "cidr": "10.0.0.0/8"}),
            "from_port",
        ),
        (
            json!({"direction": "ingress", "protocol": "tcp", "from_port": 22, "to_port": 22}),
            "cidr",
        ),
    ];
    for (rule, field) in bad {
        let (status, err) = server
            .call(
                Method::POST,
                &format!("{SGS}/{web}/rules"),
                Some(ADMIN),
                Some(rule.clone()),
            )
            .await;
        assert_eq!(
            (status, err["error"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{rule}: {err}"
        );
    }
    let (status, err) = server
        .call(
            Method::POST,
            SGS,
            Some(ADMIN),
            Some(json!({"name": "web", "description": "again"})),
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("security_group_exists")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_security_group_in_use_is_not_deleted() {
    let server = TestServer::aws().await;
    let ec2 = server.ec2(REGIONS[0]).await;
    let image = some_image(&ec2).await;
    let web = create_group(&server, ADMIN, "web").await;
    let app = create_group(&server, ADMIN, "app").await;
    let op = create(
        &server,
        ADMIN,
        json!({"image": image, "instance_type": "t3.micro", "security_groups": [web]}),
    )
    .await;
    let instance = created_ids(&op)[0].clone();
    let from_web = json!({"direction": "ingress", "protocol": "tcp", "from_port": 8080, "to_port": 8080, "source_group": web});
    server
        .call(
            Method::POST,
            &format!("{SGS}/{app}/rules"),
            Some(ADMIN),
            Some(from_web.clone()),
        )
        .await;

    // moto would delete it; AWS answers DependencyViolation, and so does overcast.
    let (status, err) = server
        .call(Method::DELETE, &format!("{SGS}/{web}"), Some(ADMIN), None)
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("in_use")),
        "{err}"
    );
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&instance) && message.contains(&app),
        "{message}"
    );
    assert_eq!(
        ec2.describe_security_groups()
            .group_ids(&web)
            .send()
            .await
            .unwrap()
            .security_groups()
            .len(),
        1
    );

    server
        .call(
            Method::POST,
            &format!("{ENV}/{instance}/terminate"),
            Some(ADMIN),
            None,
        )
        .await;
    let (status, _) = server
        .call(Method::DELETE, &format!("{SGS}/{web}"), Some(ADMIN), None)
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "the rule of app still uses it"
    );
    server
        .call(
            Method::DELETE,
            &format!("{SGS}/{app}/rules"),
            Some(ADMIN),
            Some(from_web),
        )
        .await;
    let (status, op) = server
        .call(Method::DELETE, &format!("{SGS}/{web}"), Some(ADMIN), None)
        .await;
    assert_eq!(
        (status, op["status"].as_str()),
        (StatusCode::OK, Some("succeeded")),
        "{op}"
    );
    assert!(
        ec2.describe_security_groups()
            .group_ids(&web)
            .send()
            .await
            .is_err(),
        "gone from moto"
    );
    let (status, _) = server
        .call(Method::GET, &format!("{SGS}/{web}"), Some(ADMIN), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_org_cannot_see_or_change_a_security_group() {
    let server = TestServer::aws().await;
    let ec2 = server.ec2(REGIONS[0]).await;
    let acme = server.token("acme", "operator").await;
    let other = server.token("other", "operator").await;
    let group = create_group(&server, &acme, "acme-web").await;
    let rule = json!({"direction": "ingress", "protocol": "tcp", "from_port": 22, "to_port": 22, "cidr": "0.0.0.0/0"});
    for (method, path, body) in [
        (Method::GET, format!("{SGS}/{group}"), None),
        (Method::DELETE, format!("{SGS}/{group}"), None),
        (
            Method::POST,
            format!("{SGS}/{group}/rules"),
            Some(rule.clone()),
        ),
    ] {
        let (status, err) = server.call(method.clone(), &path, Some(&other), body).await;
        assert_eq!(
            (status, err["error"]["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("security_group_not_found")),
            "{method} {path}"
        );
    }
    let (_, listed) = server.call(Method::GET, SGS, Some(&other), None).await;
    assert!(!listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["id"] == json!(group)));
    let (_, listed) = server.call(Method::GET, SGS, Some(&acme), None).await;
    assert!(listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["id"] == json!(group)));
    assert!(rules_in_moto(&ec2, &group)
        .await
        .iter()
        .all(|r| r.0 != "in"));
}

const IMAGES: &str = "/v1/environments/aws-test/images";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_made_from_instances_and_deleted_with_their_snapshots() {
    let server = TestServer::aws().await;
    let ec2 = server.ec2(REGIONS[0]).await;
    let image = some_image(&ec2).await;
    let op = create(
        &server,
        ADMIN,
        json!({"image": image, "instance_type": "t3.micro"}),
    )
    .await;
    let instance = created_ids(&op)[0].clone();

    let body = json!({"instance_id": instance, "name": "web (2026-11-22)", "description": "golden web", "no_reboot": true, "tags": {"v": "1"}});
    let (status, op) = server
        .call(Method::POST, IMAGES, Some(ADMIN), Some(body.clone()))
        .await;
    assert_eq!(
        (status, op["status"].as_str()),
        (StatusCode::CREATED, Some("succeeded")),
        "{op}"
    );
    assert_eq!(op["kind"], "image.create");
    let ami = op["results"][0]["target"].as_str().unwrap().to_string();

    let described = ec2.describe_images().image_ids(&ami).send().await.unwrap();
    let in_moto = &described.images()[0];
    assert_eq!(in_moto.name(), Some("web (2026-11-22)"));
    assert_eq!(in_moto.description(), Some("golden web"));
    let tags: BTreeMap<_, _> = in_moto
        .tags()
        .iter()
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    assert_eq!((tags["overcast:org"], tags["v"]), ("admin", "1"));
    let snapshots: Vec<String> = in_moto
        .block_device_mappings()
        .iter()
        .filter_map(|m| m.ebs().and_then(|e| e.snapshot_id()).map(str::to_string))
        .collect();
    assert!(!snapshots.is_empty());
    let described = ec2
        .describe_snapshots()
        .snapshot_ids(&snapshots[0])
        .send()
        .await
        .unwrap();
    let snapshot_tags: Vec<_> = described.snapshots()[0]
        .tags()
        .iter()
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    assert!(
        snapshot_tags.contains(&("overcast:org", "admin")),
        "{snapshot_tags:?}"
    );

    // AWS refuses a second image of the same name; moto would not.
    let (status, err) = server
        .call(Method::POST, IMAGES, Some(ADMIN), Some(body))
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("image_name_taken"))
    );
    assert_eq!(err["error"]["field"], "name");

    let (_, listed) = server.call(Method::GET, IMAGES, Some(ADMIN), None).await;
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == json!(ami)),
        "{listed}"
    );
    let (status, got) = server
        .call(Method::GET, &format!("{IMAGES}/{ami}"), Some(ADMIN), None)
        .await;
    assert_eq!(
        (status, got["state"].as_str()),
        (StatusCode::OK, Some("available"))
    );
    let other = server.token("other", "operator").await;
    let (status, _) = server
        .call(Method::GET, &format!("{IMAGES}/{ami}"), Some(&other), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The image launches.
    create(
        &server,
        ADMIN,
        json!({"image": ami, "instance_type": "t3.micro"}),
    )
    .await;

    let (status, op) = server
        .call(
            Method::DELETE,
            &format!("{IMAGES}/{ami}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(
        (status, op["status"].as_str()),
        (StatusCode::OK, Some("succeeded")),
        "{op}"
    );
    let gone = ec2.describe_images().image_ids(&ami).send().await;
    assert!(
        gone.map(|d| d.images().is_empty()).unwrap_or(true),
        "deregistered in moto"
    );
    for snapshot in snapshots {
        let found = ec2
            .describe_snapshots()
            .snapshot_ids(&snapshot)
            .send()
            .await;
        assert!(
            found.map(|d| d.snapshots().is_empty()).unwrap_or(true),
            "snapshot {snapshot} deleted"
        );
    }

    let (status, err) = server
        .call(
            Method::POST,
            IMAGES,
            Some(ADMIN),
            Some(json!({"instance_id": instance, "name": "a#b"})),
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("name"))
    );
    let (status, err) = server
        .call(
            Method::POST,
            IMAGES,
            Some(ADMIN),
            Some(json!({"instance_id": "i-0000000000000dead", "name": "nope"})),
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (StatusCode::NOT_FOUND, Some("instance_id"))
    );
}

const KEYS: &str = "/v1/environments/aws-test/key-pairs";
/// A valid OpenSSH ed25519 public key.
const PUBLIC_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test@overcast";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_pairs_are_made_once_imported_and_deleted() {
    let server = TestServer::aws().await;
    let ec2 = server.ec2(REGIONS[0]).await;

    let (status, made) = server
        .call(
            Method::POST,
            KEYS,
            Some(ADMIN),
            Some(json!({"name": "ops", "tags": {"team": "ops"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let private_key = made["private_key"].as_str().unwrap().to_string();
    assert!(private_key.starts_with("-----BEGIN"), "{private_key}");
    assert_eq!(made["key_pair"]["name"], "ops");
    let described = ec2
        .describe_key_pairs()
        .key_names("ops")
        .send()
        .await
        .unwrap();
    let tags: BTreeMap<_, _> = described.key_pairs()[0]
        .tags()
        .iter()
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    assert_eq!((tags["overcast:org"], tags["team"]), ("admin", "ops"));

    // The private key is nowhere but in that one answer.
    let op_id = made["operation"]["id"].as_str().unwrap();
    let (_, op) = server
        .call(
            Method::GET,
            &format!("/v1/operations/{op_id}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert!(!op.to_string().contains("BEGIN"), "{op}");
    let secret_line = private_key.lines().nth(1).unwrap().to_string();
    for entry in std::fs::read_dir(server.dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap_or_default();
        assert!(
            !bytes
                .windows(secret_line.len())
                .any(|w| w == secret_line.as_bytes()),
            "the private key reached the data dir"
        );
    }

    let (status, err) = server
        .call(
            Method::POST,
            KEYS,
            Some(ADMIN),
            Some(json!({"name": "ops"})),
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (StatusCode::CONFLICT, Some("name"))
    );

    let (status, imported) = server
        .call(
            Method::POST,
            KEYS,
            Some(ADMIN),
            Some(json!({"name": "laptop", "public_key": PUBLIC_KEY})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{imported}");
    assert!(imported.get("private_key").is_none());
    assert_eq!(imported["operation"]["kind"], "key_pair.import");
    assert_eq!(
        ec2.describe_key_pairs()
            .key_names("laptop")
            .send()
            .await
            .unwrap()
            .key_pairs()
            .len(),
        1
    );

    let response = server
        .http
        .post(format!("{}{KEYS}", server.base))
        .bearer_auth(ADMIN)
        .header("prefer", "respond-async")
        .json(&json!({"name": "later"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let err: Value = response.json().await.unwrap();
    assert_eq!(err["error"]["field"], "Prefer");

    for (body, field) in [
        (
            json!({"name": "bad", "public_key": "not a key"}),
            "public_key",
        ),
        (json!({"name": "bad", "key_type": "dsa"}), "key_type"),
        (json!({"name": ""}), "name"),
    ] {
        let (status, err) = server
            .call(Method::POST, KEYS, Some(ADMIN), Some(body))
            .await;
        assert_eq!(
            (status, err["error"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field))
        );
    }

    let (_, listed) = server.call(Method::GET, KEYS, Some(ADMIN), None).await;
    let names: HashSet<_> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap().to_string())
        .collect();
    assert!(names.contains("ops") && names.contains("laptop"));
    let other = server.token("other", "operator").await;
    let (_, listed) = server.call(Method::GET, KEYS, Some(&other), None).await;
    assert!(listed["items"].as_array().unwrap().is_empty());
    let (status, _) = server
        .call(Method::DELETE, &format!("{KEYS}/ops"), Some(&other), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, op) = server
        .call(Method::DELETE, &format!("{KEYS}/ops"), Some(ADMIN), None)
        .await;
    assert_eq!(
        (status, op["status"].as_str()),
        (StatusCode::OK, Some("succeeded")),
        "{op}"
    );
    assert!(
        ec2.describe_key_pairs()
            .key_names("ops")
            .send()
            .await
            .is_err(),
        "gone from moto"
    );

    // A key pair launches with an instance.
    let image = some_image(&ec2).await;
    let op = create(
        &server,
        ADMIN,
        json!({"image": image, "instance_type": "t3.micro", "key_pair": "laptop"}),
    )
    .await;
    assert_eq!(op["results"][0]["detail"]["key_pair"], "laptop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_and_security_groups_take_tags() {
    let server = TestServer::aws().await;
    let ec2 = server.ec2(REGIONS[0]).await;
    let image = some_image(&ec2).await;
    let group = create_group(&server, ADMIN, "tagged").await;
    let op = create(
        &server,
        ADMIN,
        json!({"image": image, "instance_type": "t3.micro"}),
    )
    .await;
    let instance = created_ids(&op)[0].clone();
    let (_, op) = server
        .call(
            Method::POST,
            IMAGES,
            Some(ADMIN),
            Some(json!({"instance_id": instance, "name": "tagged-image"})),
        )
        .await;
    let ami = op["results"][0]["target"].as_str().unwrap().to_string();

    let group_tags = || async {
        let out = ec2
            .describe_security_groups()
            .group_ids(&group)
            .send()
            .await
            .unwrap();
        out.security_groups()[0]
            .tags()
            .iter()
            .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
            .collect::<BTreeMap<_, _>>()
    };
    let image_tags = || async {
        let out = ec2.describe_images().image_ids(&ami).send().await.unwrap();
        out.images()[0]
            .tags()
            .iter()
            .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
            .collect::<BTreeMap<_, _>>()
    };

    for path in [
        format!("{SGS}/{group}/tags"),
        format!("{IMAGES}/{ami}/tags"),
    ] {
        let (status, op) = server
            .call(
                Method::PUT,
                &path,
                Some(ADMIN),
                Some(json!({"tags": {"cost": "ops"}})),
            )
            .await;
        assert_eq!(
            (status, op["status"].as_str()),
            (StatusCode::OK, Some("succeeded")),
            "{path}: {op}"
        );
    }
    assert_eq!(group_tags().await["cost"], "ops");
    assert_eq!(image_tags().await["cost"], "ops");
    for path in [
        format!("{SGS}/{group}/tags"),
        format!("{IMAGES}/{ami}/tags"),
    ] {
        let (_, op) = server
            .call(
                Method::DELETE,
                &path,
                Some(ADMIN),
                Some(json!({"keys": ["cost"]})),
            )
            .await;
        assert_eq!(op["status"], "succeeded");
        assert_eq!(
            op["kind"],
            if path.contains("images") {
                "image.tag"
            } else {
                "security_group.tag"
            }
        );
    }
    assert!(!group_tags().await.contains_key("cost"));
    assert!(!image_tags().await.contains_key("cost"));

    let other = server.token("other", "operator").await;
    let (status, _) = server
        .call(
            Method::PUT,
            &format!("{IMAGES}/{ami}/tags"),
            Some(&other),
            Some(json!({"tags": {"x": "y"}})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machine_types_environment_defaults_and_default_org_apply() {
    let account = new_account();
    let ec2 = ec2_client(&account, REGIONS[0]).await;
    let image = some_image(&ec2).await;
    ec2.create_key_pair()
        .key_name("platform")
        .send()
        .await
        .unwrap();
    let server = TestServer::aws_with(account, |config| {
        let env = config.environments.get_mut("aws-test").unwrap();
        env.settings.insert("key_pair".into(), "platform".into());
        env.default_org = Some("platform-team".into());
        let small = json!({"aws": {"instance_type": "t3.small", "image": image.clone()}});
        config
            .machine_types
            .insert("small".into(), serde_json::from_value(small).unwrap());
    })
    .await;

    let (status, op) = server
        .call(
            Method::POST,
            ENV,
            Some(ADMIN),
            Some(json!({"machine_type": "small", "min_count": 2, "max_count": 3})),
        )
        .await;
    assert_eq!(
        (status, op["status"].as_str()),
        (StatusCode::CREATED, Some("succeeded")),
        "{op}"
    );
    let ids = created_ids(&op);
    assert!((2..=3).contains(&ids.len()), "{ids:?}");
    let out = ec2
        .describe_instances()
        .instance_ids(&ids[0])
        .send()
        .await
        .unwrap();
    let instance = &out.reservations()[0].instances()[0];
    assert_eq!(instance.instance_type().unwrap().as_str(), "t3.small");
    assert_eq!(instance.image_id(), Some(image.as_str()));
    assert_eq!(
        instance.key_name(),
        Some("platform"),
        "the environment's default key pair"
    );

    let zone = format!("{}b", REGIONS[0]);
    let op = create(
        &server,
        ADMIN,
        json!({"machine_type": "small", "zone": zone}),
    )
    .await;
    let placed = ec2
        .describe_instances()
        .instance_ids(&created_ids(&op)[0])
        .send()
        .await
        .unwrap();
    let placement = placed.reservations()[0].instances()[0].placement().unwrap();
    assert_eq!(placement.availability_zone(), Some(zone.as_str()));

    // An instance overcast did not launch (no overcast:org tag) belongs to the default org.
    let foreign = ec2
        .run_instances()
        .image_id(&image)
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap();
    let foreign = foreign.instances()[0].instance_id().unwrap().to_string();
    let platform = server.token("platform-team", "viewer").await;
    let acme = server.token("acme", "viewer").await;
    let (status, got) = server
        .call(
            Method::GET,
            &format!("{ENV}/{foreign}"),
            Some(&platform),
            None,
        )
        .await;
    assert_eq!(
        (status, got["org"].as_str()),
        (StatusCode::OK, Some("platform-team"))
    );
    let (status, _) = server
        .call(Method::GET, &format!("{ENV}/{foreign}"), Some(&acme), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// An endpoint that answers every call with one EC2 error (body and request-id header as
/// EC2 sends them), counting the calls: the error paths moto cannot produce.
async fn failing_endpoint(
    status: u16,
    code: &'static str,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let calls = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 65536];
                let mut read = 0;
                // Read the head and the announced body, then answer.
                loop {
                    let Ok(n) = socket.read(&mut buffer[read..]).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    read += n;
                    let text = String::from_utf8_lossy(&buffer[..read]).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if read >= end + 4 + length {
                            break;
                        }
                    }
                }
                counted.fetch_add(1, Ordering::SeqCst);
                let body = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>{code}</Code><Message>refused by the test endpoint</Message></Error></Errors><RequestID>req-test-1</RequestID></Response>"
                );
                let answer = format!(
                    "HTTP/1.1 {status} Error\r\nContent-Type: text/xml\r\nx-amzn-requestid: req-test-1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    (url, calls)
}

async fn server_on(endpoint: &str) -> TestServer {
    let endpoint = endpoint.to_string();
    TestServer::aws_with(new_account(), move |config| {
        let env = config.environments.get_mut("aws-test").unwrap();
        env.settings.insert("endpoint_url".into(), endpoint.into());
        env.settings.remove("role_arn");
        env.settings
            .insert("regions".into(), vec![REGIONS[0].to_string()].into());
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_retried_then_answered_503_with_retry_after() {
    moto_url();
    let (endpoint, calls) = failing_endpoint(503, "RequestLimitExceeded").await;
    let server = server_on(&endpoint).await;
    let response = server
        .http
        .get(format!("{}{ENV}", server.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "5");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "backend_throttled");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("RequestLimitExceeded") && message.contains("req-test-1"),
        "{message}"
    );
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        5,
        "the SDK retried up to its 5 attempts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_call_is_a_403_with_the_backend_code_and_no_credentials() {
    moto_url();
    let (endpoint, calls) = failing_endpoint(403, "UnauthorizedOperation").await;
    let server = server_on(&endpoint).await;
    let (status, body) = server.call(Method::GET, ENV, Some(ADMIN), None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("backend_denied"))
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("UnauthorizedOperation"), "{message}");
    assert!(
        !message.contains("testing") && !message.contains("Signature"),
        "no credentials: {message}"
    );
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "a denial is not retried"
    );
}
