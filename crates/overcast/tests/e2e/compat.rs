//! The compatibility families replayed with their tools' own example requests: CloudMan,
//! the Cloud VM API and the Flint connector against moto, and the Cloud VM API against a
//! real local VM; outcomes read in moto and in the VM's NoCloud seed themselves.

use crate::BIN;
use aws_sdk_ec2::types::{InstanceAttributeName, InstanceStateName};
use base64::Engine;
use overcast_core::config::RegionMapping;
use overcast_core::config::{Config, MachineType};
use overcast_test_utils::moto::{all_in_moto, in_moto, some_image, REGIONS};
use overcast_test_utils::process::serve;
use overcast_test_utils::qemu::{console_shows, import_test_image, vm_dir, Reaper};
use overcast_test_utils::{eventually, TestServer, ADMIN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// CloudMan's README: a very basic web page on Amazon Linux.
const README_SCRIPT: &str = "#!/bin/bash \nyum update -y \nyum install -y httpd \nservice httpd start \nchkconfig httpd on \necho '<html>this is a test</html>' > /var/www/html/index.html";

/// The stage tag CloudMan's fleets use, and CloudMan's routes served in `aws-test`, its
/// `ap-southeast-2` standing for the first moto region.
fn cloudman_config(config: &mut Config) {
    let env = config.environments.get_mut("aws-test").unwrap();
    env.stages = Some(serde_json::from_value(json!({"tag_key": "config"})).unwrap());
    config.compat.cloudman = Some(RegionMapping {
        environment: "aws-test".into(),
        regions: BTreeMap::from([("ap-southeast-2".into(), REGIONS[0].into())]),
    });
}

async fn cloudman(
    server: &TestServer,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    server.call(method, path, token, body).await
}

async fn user_data(ec2: &aws_sdk_ec2::Client, id: &str) -> String {
    let attribute = ec2
        .describe_instance_attribute()
        .instance_id(id)
        .attribute(InstanceAttributeName::UserData)
        .send()
        .await
        .unwrap();
    let encoded = attribute.user_data().unwrap().value().unwrap();
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudman_serves_its_readme_against_moto() {
    let server =
        TestServer::aws_with(overcast_test_utils::moto::new_account(), cloudman_config).await;
    let ec2 = server.ec2(REGIONS[0]).await;
    let acme = server.token("acme", "operator").await;
    let (status, made) = server
        .call(
            Method::POST,
            "/v1/environments/aws-test/key-pairs",
            Some(&acme),
            Some(json!({"name": "key-pair"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");

    // The README's create, its AMI swapped for one moto has.
    let readme = json!({
        "ami-image-id": some_image(&ec2).await,
        "instance-type": "t2.micro",
        "key-name": "key-pair",
        "tags": {"config" : "dev", "team": "web"},
        "startup-script": README_SCRIPT,
    });
    let create = "/ec2/create/ap-southeast-2";
    let (status, answer) = cloudman(
        &server,
        Method::POST,
        create,
        Some(&acme),
        Some(readme.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let first = answer["instance"]["details"][0]["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    let moto = in_moto(&ec2, &first).await;
    assert_eq!(moto.tags["config"], "dev", "the stage in CloudMan's tag");
    assert_eq!(moto.tags["team"], "web", "every given tag");
    assert_eq!(moto.tags["overcast:org"], "acme");
    assert_eq!(user_data(&ec2, &first).await, README_SCRIPT);

    // A retry with the same Idempotency-Key answers the same instance and launches none.
    let retried = || {
        server
            .request(Method::POST, create, Some(&acme))
            .header("Idempotency-Key", "cloudman-create-2")
            .json(&readme)
            .send()
    };
    let second: Value = retried().await.unwrap().json().await.unwrap();
    let again: Value = retried().await.unwrap().json().await.unwrap();
    assert_eq!(second, again);
    let second = second["instance"]["details"][0]["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(second, first);

    // A dev instance of the other region, which CloudMan's routes for this one leave alone.
    let east = server.ec2(REGIONS[1]).await;
    let body = json!({"image": some_image(&east).await, "instance_type": "t3.micro", "stage": "dev", "region": REGIONS[1]});
    let (status, op) = server
        .call(
            Method::POST,
            "/v1/environments/aws-test/instances",
            Some(&acme),
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{op}");
    let elsewhere = op["results"][0]["target"].as_str().unwrap().to_string();

    // CloudMan's region check comes first, then its 400 texts, the first missing key only.
    let (status, answer) = cloudman(
        &server,
        Method::POST,
        "/ec2/create/mars-1",
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(
        (status, answer),
        (StatusCode::OK, json!({"message": "Not a valid AWS Region"}))
    );
    let (status, answer) = cloudman(
        &server,
        Method::POST,
        "/ec2/create/eu-central-1",
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(
        (status, answer),
        (StatusCode::OK, json!({"message": "Not a valid AWS Region"})),
        "one of CloudMan's regions the environment does not serve"
    );
    let (status, answer) =
        cloudman(&server, Method::POST, create, Some(&acme), Some(json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer,
        json!({"message": {"ami-image-id": "EC2 requires an image id to be supplied"}})
    );
    let mut no_script = readme.clone();
    no_script.as_object_mut().unwrap().remove("startup-script");
    let (status, answer) =
        cloudman(&server, Method::POST, create, Some(&acme), Some(no_script)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer["message"]["startup-script"],
        "Please supply a startup script for this instance (will be run as root). Separate lines with \\n"
    );
    let mut bad_stage = readme.clone();
    bad_stage["tags"] = json!({"config": "qa"});
    let (status, answer) =
        cloudman(&server, Method::POST, create, Some(&acme), Some(bad_stage)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer["message"]["tags"],
        "Tags are required and must be on of the following: ['dev', 'test', 'prod']"
    );
    let raw = server
        .request(Method::POST, create, Some(&acme))
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::BAD_REQUEST);
    let text = raw.text().await.unwrap();
    assert!(text.contains("Failed to decode JSON object"), "{text}");
    assert!(
        text.ends_with("}\n") && text.contains("\n    \""),
        "Flask's debug JSON: {text}"
    );

    // List by config and one instance, in CloudMan's shapes.
    let (status, listed) = cloudman(
        &server,
        Method::GET,
        "/ec2/all/ap-southeast-2/dev",
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let instances = listed["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 2, "{listed}");
    let one = instances
        .iter()
        .find(|i| i["instance_id"] == first.as_str())
        .unwrap();
    assert_eq!(one["type"], "t2.micro");
    assert_eq!(one["state"], "running");
    assert_eq!(one["public_dns_name"], "");
    let launch_time = one["launch_time"].as_str().unwrap();
    assert!(
        launch_time.ends_with(".000Z") && launch_time.len() == 24,
        "{launch_time}"
    );
    let (_, shown) = cloudman(
        &server,
        Method::GET,
        &format!("/ec2/ap-southeast-2/{first}"),
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(shown["instance"], first.as_str());
    assert_eq!(shown["details"][0], *one);
    let (status, shown) = cloudman(
        &server,
        Method::GET,
        "/ec2/ap-southeast-2/i-0123456789abcdef0",
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(
        (status, shown),
        (
            StatusCode::OK,
            json!({"message": "Instance does not exist - have you double checked the region and id?"})
        )
    );

    // Stop by the query string alone, then start; nothing left to stop is not a failure.
    let (_, answer) = cloudman(
        &server,
        Method::POST,
        "/ec2/stop/ap-southeast-2?config-type=dev",
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(
        answer,
        json!({"message": "Instances in dev config mode shutting down"})
    );
    for moto in all_in_moto(&ec2, &[first.clone(), second.clone()]).await {
        assert_eq!(moto.state, InstanceStateName::Stopped);
    }
    let (_, answer) = cloudman(
        &server,
        Method::POST,
        "/ec2/stop/ap-southeast-2",
        Some(&acme),
        Some(json!({"config-type": "dev"})),
    )
    .await;
    assert_eq!(
        answer,
        json!({"message": "No instances found with that config type - nothing to do"})
    );
    let untouched = in_moto(&east, &elsewhere).await;
    assert_eq!(untouched.state, InstanceStateName::Running);
    assert_eq!(untouched.tags["config"], "dev");
    let (_, answer) = cloudman(
        &server,
        Method::POST,
        "/ec2/start/ap-southeast-2",
        Some(&acme),
        Some(json!({"config-type": "dev"})),
    )
    .await;
    assert_eq!(
        answer,
        json!({"message": "Instances in dev config mode starting up"})
    );
    assert_eq!(
        in_moto(&ec2, &first).await.state,
        InstanceStateName::Running
    );

    // Promote every dev instance, then one by id; an unknown stage is refused.
    let (_, answer) = cloudman(
        &server,
        Method::POST,
        "/ec2/promote/ap-southeast-2",
        Some(&acme),
        Some(json!({"config-type": "dev"})),
    )
    .await;
    let text = answer["message"].as_str().unwrap();
    assert!(
        text.starts_with("Instances: [Instance:i-") && text.ends_with("] have been promoted"),
        "{text}"
    );
    assert!(
        text.contains(&format!("Instance:{first}")) && text.contains(", Instance:"),
        "{text}"
    );
    for moto in all_in_moto(&ec2, &[first.clone(), second.clone()]).await {
        assert_eq!(moto.tags["config"], "test");
    }
    let (_, answer) = cloudman(
        &server,
        Method::POST,
        "/ec2/promote/ap-southeast-2",
        Some(&acme),
        Some(json!({"config-type": "test", "instance-id": first})),
    )
    .await;
    assert_eq!(
        answer,
        json!({"message": format!("Instances: [Instance:{first}] have been promoted")})
    );
    assert_eq!(in_moto(&ec2, &first).await.tags["config"], "prod");
    assert_eq!(in_moto(&ec2, &second).await.tags["config"], "test");
    assert_eq!(
        in_moto(&east, &elsewhere).await.tags["config"],
        "dev",
        "another region"
    );
    let (status, answer) = cloudman(
        &server,
        Method::POST,
        "/ec2/promote/ap-southeast-2",
        Some(&acme),
        Some(json!({"config-type": "qa"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(answer["message"]["config-type"]
        .as_str()
        .unwrap()
        .contains("qa"));
    let (_, answer) = cloudman(
        &server,
        Method::POST,
        "/ec2/promote/ap-southeast-2",
        Some(&acme),
        Some(json!({"config-type": "dev"})),
    )
    .await;
    assert_eq!(
        answer,
        json!({"message": "No instances for that config type exist - nothing to do"})
    );
    let (_, answer) = cloudman(
        &server,
        Method::POST,
        "/ec2/promote/ap-southeast-2",
        Some(&acme),
        Some(json!({"config-type": "prod"})),
    )
    .await;
    assert_eq!(
        answer["message"],
        "Instances in prod config mode cannot be promoted (`prod` is the last stage) - nothing to do"
    );

    // An image named after the stage; a second one is the instance's copy, not its AMI's.
    let image = "/ec2/image/new/ap-southeast-2";
    let (_, answer) = cloudman(
        &server,
        Method::POST,
        image,
        Some(&acme),
        Some(json!({"instance-id": first})),
    )
    .await;
    let text = answer["message"].as_str().unwrap();
    assert!(
        text.starts_with("Created image: ami-")
            && text.ends_with(&format!(" for instance {first}")),
        "{text}"
    );
    let (_, answer) = cloudman(
        &server,
        Method::POST,
        image,
        Some(&acme),
        Some(json!({"instance-id": first})),
    )
    .await;
    let text = answer["message"].as_str().unwrap();
    assert!(
        text.starts_with("prod-image already exists - creating a copy: ami-"),
        "{text}"
    );
    let images = ec2.describe_images().owners("self").send().await.unwrap();
    let mut names: Vec<&str> = images.images().iter().filter_map(|i| i.name()).collect();
    names.sort_unstable();
    assert_eq!(names, ["prod-image", "prod-image-copy"]);
    let (_, answer) = cloudman(
        &server,
        Method::POST,
        image,
        Some(&acme),
        Some(json!({"instance-id": "i-03c977a9cfda8d629"})),
    )
    .await;
    assert_eq!(
        answer["message"],
        "Instance does not exist - have you double checked the region and id?"
    );

    // S3: POST /s3 makes the bucket (CloudMan's code crashed here), then list and keys.
    let (status, answer) = cloudman(
        &server,
        Method::POST,
        "/s3",
        Some(&acme),
        Some(json!({"bucket-name": "cloudman-bucket"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        answer,
        json!({"bucket_name": "cloudman-bucket", "details": [], "contents": []})
    );
    let s3 = server.s3(REGIONS[0]).await;
    s3.put_object()
        .bucket("cloudman-bucket")
        .key("path/to/key.txt")
        .body(bytes::Bytes::from_static(b"hello").into())
        .send()
        .await
        .unwrap();
    let (_, answer) = cloudman(
        &server,
        Method::GET,
        "/s3/cloudman-bucket",
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(
        answer,
        json!({"bucket_name": "cloudman-bucket", "contents": [{"filename": "path/to/key.txt"}]})
    );
    let (_, answer) = cloudman(&server, Method::GET, "/s3/all", Some(&acme), None).await;
    assert_eq!(
        answer,
        json!({"buckets": [{"bucket_name": "cloudman-bucket"}]})
    );
    let (_, answer) = cloudman(
        &server,
        Method::GET,
        "/s3/no-such-bucket",
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(
        answer,
        json!({"message": "The bucket specified was not found."})
    );
    let (_, answer) = cloudman(
        &server,
        Method::POST,
        "/s3",
        Some(&acme),
        Some(json!({"bucket-name": "Not_DNS"})),
    )
    .await;
    assert_eq!(answer["message"], "There was an error creating the bucket - perhaps the name is already in use or not DNS compliant");

    // Every 400 text of CloudMan's parser, the first missing key winning.
    let mut partial = json!({});
    for (key, text) in [
        ("ami-image-id", "EC2 requires an image id to be supplied"),
        ("key-name", "EC2 requires the name of the key-pair used to SSH into the instance"),
        ("instance-type", "Please specify the instance type"),
        ("tags", "Tags are required and must be on of the following: ['dev', 'test', 'prod']"),
        ("startup-script", "Please supply a startup script for this instance (will be run as root). Separate lines with \\n"),
    ] {
        let (status, answer) = cloudman(&server, Method::POST, create, Some(&acme), Some(partial.clone())).await;
        assert_eq!((status, answer), (StatusCode::BAD_REQUEST, json!({"message": {key: text}})));
        partial[key] = readme[key].clone();
    }
    for (path, key, text) in [
        (
            "/ec2/promote/ap-southeast-2",
            "config-type",
            "A config type is required to promote an instance",
        ),
        (
            "/ec2/stop/ap-southeast-2",
            "config-type",
            "A config type is required to stop an instance",
        ),
        (
            "/ec2/start/ap-southeast-2",
            "config-type",
            "A config type is required to start an instance",
        ),
        (
            "/ec2/image/new/ap-southeast-2",
            "instance-id",
            "An instance id is required to create an image",
        ),
        (
            "/s3",
            "bucket-name",
            "Please specify the name of the S3 bucket to create",
        ),
    ] {
        let (status, answer) = cloudman(&server, Method::POST, path, Some(&acme), None).await;
        assert_eq!(
            (status, answer),
            (StatusCode::BAD_REQUEST, json!({"message": {key: text}})),
            "{path}"
        );
    }

    // Not CloudMan's bugs: a GET on a POST route is a 405, not its instance lookup.
    let (status, _) = cloudman(
        &server,
        Method::GET,
        "/ec2/create/us-east-1",
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);

    // The token is needed, changes need an operator, and another org sees nothing.
    let (status, answer) = cloudman(
        &server,
        Method::GET,
        "/ec2/all/ap-southeast-2/test",
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        answer["message"].as_str().unwrap().contains("Bearer"),
        "{answer}"
    );
    let viewer = server.token("acme", "viewer").await;
    let (status, _) = cloudman(
        &server,
        Method::POST,
        "/ec2/stop/ap-southeast-2",
        Some(&viewer),
        Some(json!({"config-type": "test"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let other = server.token("other", "operator").await;
    let (_, listed) = cloudman(
        &server,
        Method::GET,
        "/ec2/all/ap-southeast-2/test",
        Some(&other),
        None,
    )
    .await;
    assert_eq!(listed, json!({"instances": []}));
    let (_, shown) = cloudman(
        &server,
        Method::GET,
        &format!("/ec2/ap-southeast-2/{second}"),
        Some(&other),
        None,
    )
    .await;
    assert_eq!(
        shown["message"],
        "Instance does not exist - have you double checked the region and id?"
    );
    let (_, answer) = cloudman(
        &server,
        Method::POST,
        "/ec2/stop/ap-southeast-2",
        Some(&other),
        Some(json!({"config-type": "test"})),
    )
    .await;
    assert_eq!(
        answer["message"],
        "No instances found with that config type - nothing to do"
    );
    assert_eq!(
        in_moto(&ec2, &second).await.state,
        InstanceStateName::Running
    );
    let (_, answer) = cloudman(
        &server,
        Method::GET,
        "/s3/cloudman-bucket",
        Some(&other),
        None,
    )
    .await;
    assert_eq!(answer["message"], "The bucket specified was not found.");

    // The same operation kinds as /v1, in op list and the audit log with their routes.
    let (_, audit) = server
        .call(Method::GET, "/v1/audit?limit=200", Some(ADMIN), None)
        .await;
    let entries = audit["items"].as_array().unwrap();
    let created = entries
        .iter()
        .find(|e| e["route"] == "/ec2/create/{region}" && e["operation_id"].is_string())
        .unwrap_or_else(|| panic!("no audited CloudMan create: {audit}"));
    assert_eq!(created["outcome"], "succeeded");
    let (_, op) = server
        .call(
            Method::GET,
            &format!(
                "/v1/operations/{}",
                created["operation_id"].as_str().unwrap()
            ),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(op["kind"], "instance.create");
    assert_eq!(op["org"], "acme");
    assert!(entries
        .iter()
        .any(|e| e["route"] == "/ec2/stop/{region}" && e["outcome"] == "denied"));
    let (_, ops) = server
        .call(Method::GET, "/v1/operations?limit=200", Some(ADMIN), None)
        .await;
    let kinds: Vec<&str> = ops["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["kind"].as_str())
        .collect();
    for kind in [
        "instance.create",
        "instance.stop",
        "instance.start",
        "instance.promote",
        "image.create",
        "bucket.create",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
}

/// A machine type of the Cloud VM API's README for aws, with moto's image.
fn vm_api_config(image: String) -> impl FnOnce(&mut Config) {
    move |config: &mut Config| {
        let machine = |entry: Value| -> MachineType { serde_json::from_value(entry).unwrap() };
        config.machine_types.insert(
            "medium-debian".into(),
            machine(json!({"aws": {"instance_type": "t3.medium", "image": image}})),
        );
        config.machine_types.insert(
            "local-only".into(),
            machine(json!({"qemu": {"cpus": 1, "memory_mb": 256, "image": "debian"}})),
        );
    }
}

/// The README's cloud-config, as `base64` without `-w 0` printed it (wrapped at 76).
const CLOUD_CONFIG: &str = "#cloud-config\nusers:\n- name: dev\n  sudo: ALL=(ALL) NOPASSWD:ALL\n";

fn wrapped_base64(text: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(text);
    b64.as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

async fn vm_api(
    server: &overcast_test_utils::Api,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, String, String) {
    let mut request = server.request(method, path, token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cloud_vm_api_serves_its_readme_against_moto() {
    let account = overcast_test_utils::moto::new_account();
    let ec2 = overcast_test_utils::moto::ec2_client(&account, REGIONS[0]).await;
    let image = some_image(&ec2).await;
    let server = TestServer::aws_with(account, vm_api_config(image)).await;
    let acme = server.token("acme", "operator").await;
    let api = &*server;

    // Errors in the tool's plain text, with its newline.
    let (status, content_type, text) =
        vm_api(api, Method::GET, "/vm?environment=aws-test", None, None).await;
    assert_eq!(
        (status, text.as_str()),
        (
            StatusCode::UNAUTHORIZED,
            "missing or invalid Authorization header\n"
        )
    );
    assert_eq!(content_type, "text/plain; charset=utf-8");
    let cloud_keys = base64::engine::general_purpose::STANDARD.encode("AKIAEXAMPLE:secret\n");
    let (status, _, text) = vm_api(
        api,
        Method::GET,
        "/vm?environment=aws-test",
        Some(&cloud_keys),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        text.starts_with("unable parsing credentials. Error: cloud credentials are not accepted"),
        "{text}"
    );
    assert!(text.contains("overcast token"), "a hint: {text}");
    let (status, _, text) = vm_api(api, Method::GET, "/vm", Some(&acme), None).await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::BAD_REQUEST, "missing environment parameter\n")
    );
    let (status, _, text) = vm_api(
        api,
        Method::GET,
        "/vm?environment=aws-test1",
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(
        (status, text.as_str()),
        (
            StatusCode::BAD_REQUEST,
            "environment with name aws-test1 not found\n"
        )
    );

    // The README's create, its cloud-init wrapped as `base64` prints it.
    let readme = json!({
        "name": "test1",
        "environment": "aws-test",
        "machinetype": "medium-debian",
        "cloud_init": wrapped_base64(CLOUD_CONFIG),
    });
    let (status, content_type, text) =
        vm_api(api, Method::POST, "/vm", Some(&acme), Some(readme.clone())).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(content_type, "application/json");
    assert!(text.ends_with("}\n"), "{text:?}");
    let created: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(created["name"], "test1");
    assert_eq!(created["status"], "running");
    let id = created["id"].as_str().unwrap().to_string();
    let moto = in_moto(&ec2, &id).await;
    assert_eq!(moto.tags["Name"], "test1");
    assert_eq!(moto.instance_type(), "t3.medium");
    assert_eq!(user_data(&ec2, &id).await, CLOUD_CONFIG);

    // Unpadded base64 is read too; machine types and bodies are checked with its texts.
    let mut unpadded = readme.clone();
    unpadded["name"] = json!("test2");
    unpadded["cloud_init"] =
        json!(base64::engine::general_purpose::STANDARD_NO_PAD.encode("#!/bin/sh\necho hi\n"));
    let (status, _, text) = vm_api(api, Method::POST, "/vm", Some(&acme), Some(unpadded)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let second = serde_json::from_str::<Value>(&text).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(user_data(&ec2, &second).await, "#!/bin/sh\necho hi\n");
    let mut unknown = readme.clone();
    unknown["machinetype"] = json!("huge");
    let (status, _, text) = vm_api(api, Method::POST, "/vm", Some(&acme), Some(unknown)).await;
    assert_eq!(
        (status, text.as_str()),
        (
            StatusCode::BAD_REQUEST,
            "Invalid machinetype for this cloud: machinetype huge not found\n"
        )
    );
    let mut elsewhere = readme.clone();
    elsewhere["machinetype"] = json!("local-only");
    let (status, _, text) = vm_api(api, Method::POST, "/vm", Some(&acme), Some(elsewhere)).await;
    assert_eq!(
        (status, text.as_str()),
        (
            StatusCode::BAD_REQUEST,
            "Invalid machinetype for this cloud: cloud aws not found for machinetype local-only\n"
        )
    );
    let raw = server
        .request(Method::POST, "/vm", Some(&acme))
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::BAD_REQUEST);
    assert!(raw
        .text()
        .await
        .unwrap()
        .starts_with("Invalid request body: "));

    // List, stop, start and delete by its routes: 204s once the VM got there.
    let list = "/vm?environment=aws-test";
    let (_, _, text) = vm_api(api, Method::GET, list, Some(&acme), None).await;
    assert!(text.ends_with("]\n"));
    let listed: Value = serde_json::from_str(&text).unwrap();
    assert!(
        listed
            .as_array()
            .unwrap()
            .contains(&json!({"id": id, "name": "test1", "status": "running"})),
        "{listed}"
    );
    let (status, _, text) = vm_api(
        api,
        Method::GET,
        &format!("/vm/{id}/stop?environment=aws-test"),
        Some(&acme),
        None,
    )
    .await;
    assert_eq!((status, text.as_str()), (StatusCode::NO_CONTENT, ""));
    assert_eq!(in_moto(&ec2, &id).await.state, InstanceStateName::Stopped);
    let (_, _, text) = vm_api(api, Method::GET, list, Some(&acme), None).await;
    assert!(
        text.contains(&format!(
            r#"{{"id":"{id}","name":"test1","status":"ready"}}"#
        )),
        "{text}"
    );
    let (status, _, _) = vm_api(
        api,
        Method::GET,
        &format!("/vm/{id}/start?environment=aws-test"),
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(in_moto(&ec2, &id).await.state, InstanceStateName::Running);

    // Roles and orgs: a viewer cannot stop, another org finds no VM.
    let viewer = server.token("acme", "viewer").await;
    let (status, _, _) = vm_api(
        api,
        Method::GET,
        &format!("/vm/{id}/stop?environment=aws-test"),
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let other = server.token("other", "operator").await;
    let (status, _, text) = vm_api(
        api,
        Method::GET,
        &format!("/vm/{id}/stop?environment=aws-test"),
        Some(&other),
        None,
    )
    .await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::NOT_FOUND, "VM not found\n")
    );
    let (_, _, text) = vm_api(api, Method::GET, list, Some(&other), None).await;
    assert_eq!(text, "[]\n");
    assert_eq!(in_moto(&ec2, &id).await.state, InstanceStateName::Running);

    let (status, _, _) = vm_api(
        api,
        Method::DELETE,
        &format!("/vm/{id}?environment=aws-test"),
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        in_moto(&ec2, &id).await.state,
        InstanceStateName::Terminated
    );
    let (_, _, text) = vm_api(api, Method::GET, list, Some(&acme), None).await;
    assert!(!text.contains(&id), "a terminated VM is left out: {text}");
    let (status, _, text) = vm_api(
        api,
        Method::GET,
        &format!("/vm/{id}/stop?environment=aws-test"),
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        text.starts_with("Failed to stop VM: ") && text.contains("terminated"),
        "{text}"
    );
    let (status, _, text) = vm_api(
        api,
        Method::GET,
        "/vm/i-0123456789abcdef0/start?environment=aws-test",
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::NOT_FOUND, "VM not found\n")
    );

    // Its GET start and stop are audited changes, of the same kinds as /v1's.
    let (_, audit) = server
        .call(Method::GET, "/v1/audit?limit=100", Some(ADMIN), None)
        .await;
    let entries = audit["items"].as_array().unwrap();
    for route in ["/vm", "/vm/{id}/stop", "/vm/{id}/start", "/vm/{id}"] {
        let entry = entries
            .iter()
            .find(|e| e["route"] == route && e["operation_id"].is_string())
            .unwrap_or_else(|| panic!("{route} not audited: {audit}"));
        let (_, op) = server
            .call(
                Method::GET,
                &format!("/v1/operations/{}", entry["operation_id"].as_str().unwrap()),
                Some(ADMIN),
                None,
            )
            .await;
        let kind = match route {
            "/vm" => "instance.create",
            "/vm/{id}/stop" => "instance.stop",
            "/vm/{id}/start" => "instance.start",
            _ => "instance.terminate",
        };
        assert_eq!(op["kind"], kind, "{route}");
    }
}

async fn flint(server: &TestServer, path: &str, key: &str, body: Value) -> Value {
    let response = server
        .request(Method::POST, path, None)
        .header("flint-key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flint_connector_drives_instances_groups_and_tags_against_moto() {
    let server = TestServer::aws_with(overcast_test_utils::moto::new_account(), |config| {
        config.compat.flint = Some(RegionMapping {
            environment: "aws-test".into(),
            regions: BTreeMap::new(),
        });
    })
    .await;
    let east = server.ec2("us-east-1").await;
    let key = server.token("acme", "operator").await;
    let route = "/flint/aws-ec2";

    // create-instance, as the connector's docs show it (region defaults to us-east-1).
    let made = flint(
        &server,
        route,
        &key,
        json!({
            "action": "create-instance", "image-id": some_image(&east).await,
            "instance-type": "t2.micro", "max-instance": 2, "min-instance": 2, "timeout": 120000,
        }),
    )
    .await;
    assert_eq!(made["exitcode"], 0, "{made}");
    assert_eq!(made["message"], "success");
    let info = made["instance-info"].as_array().unwrap();
    assert_eq!(info.len(), 2);
    assert_eq!(info[0]["instance-type"], "t2.micro");
    let ids: Vec<String> = info
        .iter()
        .map(|i| i["instance-id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(all_in_moto(&east, &ids).await.len(), 2);

    // describe with the docs' underscored key and a single id; every key the flintbits read.
    let described = flint(
        &server,
        route,
        &key,
        json!({"action": "describe-instances", "instance_id": ids[0]}),
    )
    .await;
    let one = &described["instances-info"][0];
    assert_eq!(one["instance-id"], ids[0].as_str());
    assert_eq!(one["instance-state-name"], "running");
    assert_eq!(one["instance-state-code"], 16);
    assert!(one.get("public-DNSname").is_some(), "{one}");

    // stop, then start through /sync/<ms>, then reboot: each list as the connector's.
    let stopped = flint(
        &server,
        route,
        &key,
        json!({"action": "stop-instances", "instance-id": ids}),
    )
    .await;
    assert_eq!(stopped["exitcode"], 0, "{stopped}");
    let list = stopped["stop-instance-list"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["current-state"], "stopped");
    assert_eq!(list[0]["previous-state"], "running");
    for moto in all_in_moto(&east, &ids).await {
        assert_eq!(moto.state, InstanceStateName::Stopped);
    }
    let started = flint(
        &server,
        "/flint/aws-ec2/sync/120000",
        &key,
        json!({"action": "start-instances", "instance-id": [ids[0]]}),
    )
    .await;
    assert_eq!(
        started["started-instances-set"],
        json!([{"instance-id": ids[0], "current-state": "running", "previous-state": "stopped"}])
    );
    assert_eq!(
        in_moto(&east, &ids[0]).await.state,
        InstanceStateName::Running
    );
    let rebooted = flint(
        &server,
        route,
        &key,
        json!({"action": "reboot-instances", "instance-id": ids[0]}),
    )
    .await;
    assert_eq!(rebooted["reboot-instance-id"], json!([ids[0]]));

    // Tags, one per call.
    let tagged = flint(&server, route, &key, json!({"action": "create-tags", "resource-id": ids[0], "tag-key": "team", "tag-value": "ops"})).await;
    assert_eq!(tagged["exitcode"], 0, "{tagged}");
    assert_eq!(in_moto(&east, &ids[0]).await.tags["team"], "ops");
    let tags = flint(
        &server,
        route,
        &key,
        json!({"action": "describe-tags", "resource-id": ids[0], "resource-type": "instance"}),
    )
    .await;
    assert!(tags["tag-set"].as_array().unwrap().contains(&json!({"key": "team", "value": "ops", "resource-id": ids[0], "resource-type": "instance"})), "{tags}");
    flint(&server, route, &key, json!({"action": "delete-tags", "resource-id": ids[0], "tag-key": "team", "tag-value": "ops"})).await;
    assert!(!in_moto(&east, &ids[0]).await.tags.contains_key("team"));

    // Security groups and a rule, checked in moto.
    let group = flint(&server, route, &key, json!({"action": "create-security-group", "group-name": "flint-web", "group-description": "web"})).await;
    let group_id = group["group-id"]
        .as_str()
        .unwrap_or_else(|| panic!("{group}"))
        .to_string();
    let added = flint(&server, route, &key, json!({
        "action": "security-group-add-rule", "security-group-id": group_id, "direction": "inbound",
        "protocol": "tcp", "from-port": 22, "to-port": 22, "ip-range": "10.0.0.0/8",
    }))
    .await;
    assert_eq!(added["exitcode"], 0, "{added}");
    let in_moto_group = east
        .describe_security_groups()
        .group_ids(&group_id)
        .send()
        .await
        .unwrap();
    let permission = &in_moto_group.security_groups()[0].ip_permissions()[0];
    assert_eq!(permission.from_port(), Some(22));
    assert_eq!(permission.ip_ranges()[0].cidr_ip(), Some("10.0.0.0/8"));
    let described = flint(
        &server,
        route,
        &key,
        json!({"action": "describe-security-group", "group-name": "flint-web"}),
    )
    .await;
    assert_eq!(
        described["security-group-info"][0]["group-id"],
        group_id.as_str()
    );
    assert_eq!(
        described["security-group-info"][0]["ip-permissions"][0]["from-port"],
        22
    );
    flint(&server, route, &key, json!({
        "action": "revoke-security-group-rule", "security-group-id": group_id, "direction": "inbound",
        "protocol": "tcp", "from-port": 22, "to-port": 22, "ip-range": "10.0.0.0/8",
    }))
    .await;
    let in_moto_group = east
        .describe_security_groups()
        .group_ids(&group_id)
        .send()
        .await
        .unwrap();
    assert!(in_moto_group.security_groups()[0]
        .ip_permissions()
        .is_empty());
    let deleted = flint(
        &server,
        route,
        &key,
        json!({"action": "delete-security-group", "group-name": "flint-web"}),
    )
    .await;
    assert_eq!(deleted["exitcode"], 0, "{deleted}");

    // Async: the meta block with the operation as the job, polled to its end.
    let job = flint(
        &server,
        route,
        &key,
        json!({"action": "terminate-instances", "instance-id": ids, "async": true}),
    )
    .await;
    let job_id = job["meta"]["job-id"]
        .as_str()
        .unwrap_or_else(|| panic!("{job}"))
        .to_string();
    assert!(
        matches!(
            job["meta"]["status"].as_str(),
            Some("submitted" | "running")
        ),
        "{job}"
    );
    eventually("the terminate job ends", || async {
        let (_, polled) = server
            .call(
                Method::GET,
                &format!("/flint/jobs/{job_id}"),
                Some(&key),
                None,
            )
            .await;
        polled["meta"]["status"] == "complete"
    })
    .await;
    let (_, polled) = server
        .call(
            Method::GET,
            &format!("/flint/jobs/{job_id}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(polled["output"]["exitcode"], 0, "{polled}");
    assert_eq!(
        polled["output"]["terminated-instance-set"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    for moto in all_in_moto(&east, &ids).await {
        assert_eq!(moto.state, InstanceStateName::Terminated);
    }
    let (_, op) = server
        .call(
            Method::GET,
            &format!("/v1/operations/{job_id}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(op["kind"], "instance.terminate");

    // A sync call whose timeout ends first answers the job's meta; the job ends anyway.
    let timed_out = flint(
        &server,
        route,
        &key,
        json!({
            "action": "create-instance", "image-id": some_image(&east).await,
            "instance-type": "t2.micro", "max-instance": 1, "timeout": 0,
        }),
    )
    .await;
    let job_id = timed_out["meta"]["job-id"]
        .as_str()
        .unwrap_or_else(|| panic!("{timed_out}"))
        .to_string();
    assert_eq!(timed_out["meta"]["timeout"], 0);
    eventually("the create job ends", || async {
        let (_, polled) = server
            .call(
                Method::GET,
                &format!("/flint/jobs/{job_id}"),
                Some(&key),
                None,
            )
            .await;
        polled["meta"]["status"] == "complete"
    })
    .await;
    let (_, polled) = server
        .call(
            Method::GET,
            &format!("/flint/jobs/{job_id}"),
            Some(&key),
            None,
        )
        .await;
    let launched = polled["output"]["instance-info"][0]["instance-id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        in_moto(&east, &launched).await.state,
        InstanceStateName::Running
    );
    flint(
        &server,
        route,
        &key,
        json!({"action": "terminate-instances", "instance-id": launched}),
    )
    .await;

    // What overcast does not do, and a bad call, answer exitcode 1 in band; no token is a 401.
    let address = flint(&server, route, &key, json!({"action": "allocate-address"})).await;
    assert_eq!(address["exitcode"], 1);
    assert!(
        address["message"].as_str().unwrap().contains("Elastic IP"),
        "{address}"
    );
    let missing = flint(
        &server,
        route,
        &key,
        json!({"action": "stop-instances", "instance-id": "i-0123456789abcdef0"}),
    )
    .await;
    assert_eq!(missing["exitcode"], 1);
    assert!(
        missing["message"]
            .as_str()
            .unwrap()
            .contains("InvalidInstanceID.NotFound"),
        "{missing}"
    );
    let elsewhere = flint(
        &server,
        route,
        &key,
        json!({"action": "list-instances", "region": "ap-south-1"}),
    )
    .await;
    assert_eq!(elsewhere["exitcode"], 1, "{elsewhere}");
    let (status, answer) = server
        .call(
            Method::POST,
            route,
            None,
            Some(json!({"action": "list-instances"})),
        )
        .await;
    assert_eq!(
        (status, answer["exitcode"].clone()),
        (StatusCode::UNAUTHORIZED, json!(1))
    );
    let viewer = server.token("acme", "viewer").await;
    let listed = flint(&server, route, &viewer, json!({"action": "list-instances"})).await;
    assert_eq!(
        listed["instance-list"].as_array().unwrap().len(),
        3,
        "a viewer reads; terminated instances are listed as EC2 lists them: {listed}"
    );
    let response = server
        .request(Method::POST, route, Some(&viewer))
        .json(&json!({"action": "start-instances", "instance-id": ids}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::FORBIDDEN,
        "a viewer changes nothing"
    );
    let other = server.token("other", "operator").await;
    let listed = flint(&server, route, &other, json!({"action": "list-instances"})).await;
    assert_eq!(listed["instance-list"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cloud_vm_api_makes_a_local_vm_with_its_cloud_init_in_the_seed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let _reaper = Reaper(data.to_path_buf());
    let config = data.join("overcast.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n\n[machine_types.small-debian]\nqemu = {{ cpus = 1, memory_mb = 256, disk_gb = 1, image = \"test-kernel\" }}\n",
            data.join("data").display()
        ),
    )
    .unwrap();
    let served = serve(BIN, &config);
    import_test_image(&served).await;
    let token = served.token("acme", "operator").await;

    let script = "#!/bin/sh\necho \"VM-API-MARKER from cloud_init\"\n";
    let body = json!({
        "name": "test1", "environment": "local", "machinetype": "small-debian",
        "cloud_init": wrapped_base64(script),
    });
    let (status, _, text) = vm_api(&served, Method::POST, "/vm", Some(&token), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let created: Value = serde_json::from_str(&text).unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["status"], "running");
    let seed = std::fs::read(vm_dir(data, &id).join("seed.iso")).unwrap();
    assert!(
        seed.windows(script.len()).any(|w| w == script.as_bytes()),
        "the NoCloud seed holds the decoded cloud_init"
    );
    console_shows(&served, &id, "VM-API-MARKER from cloud_init", 1).await;

    let stop = format!("/vm/{id}/stop?environment=local");
    let (status, _, text) = vm_api(&served, Method::GET, &stop, Some(&token), None).await;
    assert_eq!((status, text.as_str()), (StatusCode::NO_CONTENT, ""));
    let (_, _, text) = vm_api(
        &served,
        Method::GET,
        "/vm?environment=local",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(
        text,
        format!("[{{\"id\":\"{id}\",\"name\":\"test1\",\"status\":\"ready\"}}]\n")
    );
    let (status, _, _) = vm_api(
        &served,
        Method::DELETE,
        &format!("/vm/{id}?environment=local"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, _, text) = vm_api(
        &served,
        Method::GET,
        "/vm?environment=local",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(text, "[]\n");
}
