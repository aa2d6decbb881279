//! The `overcast` binary against moto: the VM commands of the CLI, and a server killed
//! with SIGKILL in the middle of a multi-instance create.

use crate::BIN;
use aws_sdk_ec2::types::{Filter, InstanceStateName};
use overcast_test_utils::faults::{FaultPlan, FaultProxy};
use overcast_test_utils::metrics::backend_calls;
use overcast_test_utils::moto::{
    count_in_state, ec2_client, ecs_client, heavy_use, in_moto, launch_fleet, moto_url,
    new_account, some_image, REGIONS,
};
use overcast_test_utils::process::{cli, serve, serve_with, write_aws_config};
use overcast_test_utils::{eventually_within, ADMIN};
use reqwest::Method;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vm_commands_drive_moto() {
    let dir = tempfile::tempdir().unwrap();
    let account = new_account();
    let served = serve(BIN, &write_aws_config(dir.path(), &account));
    let ec2 = ec2_client(&account, REGIONS[0]).await;
    let image = some_image(&ec2).await;
    let url = served.base.clone();

    let (code, out, err) = tokio::task::spawn_blocking({
        let url = url.clone();
        let image = image.clone();
        move || {
            cli(
                BIN,
                &url,
                &[
                    "-o", "json", "vm", "create", "-e", "aws-test", "--image", &image, "--type",
                    "t3.micro", "--count", "2", "--name", "cli", "--tag", "team=cli", "--wait",
                ],
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    let op: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(op["status"], "succeeded");
    let ids: Vec<String> = op["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["target"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2);

    let (code, out, _) = cli(
        BIN,
        &url,
        &["vm", "list", "-e", "aws-test", "--tag", "team=cli"],
    );
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 3, "a header and two rows: {out}");
    assert!(
        out.lines().nth(1).unwrap().contains("cli") && out.contains("running"),
        "{out}"
    );

    let (code, _, err) = cli(
        BIN,
        &url,
        &["vm", "stop", "-e", "aws-test", &ids[0], "--wait"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        in_moto(&ec2, &ids[0]).await.state,
        InstanceStateName::Stopped
    );

    let (code, out, _) = cli(BIN, &url, &["vm", "start", "-e", "aws-test", &ids[0]]);
    assert_eq!(code, 0);
    assert!(
        out.contains("instance.start op_") && out.contains("overcast op wait"),
        "{out}"
    );
    let op_id = out.split_whitespace().nth(1).unwrap().to_string();
    let (code, out, _) = cli(BIN, &url, &["op", "wait", &op_id]);
    assert_eq!(code, 0);
    assert!(out.contains("status: succeeded"), "{out}");
    assert_eq!(
        in_moto(&ec2, &ids[0]).await.state,
        InstanceStateName::Running
    );

    let (code, _, err) = cli(
        BIN,
        &url,
        &[
            "vm",
            "tag",
            "-e",
            "aws-test",
            &ids[1],
            "--set",
            "owner=ops",
            "--remove",
            "team",
            "--wait",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let out = ec2
        .describe_instances()
        .instance_ids(&ids[1])
        .send()
        .await
        .unwrap();
    let tags: Vec<(String, String)> = out.reservations()[0].instances()[0]
        .tags()
        .iter()
        .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
        .collect();
    assert!(tags.contains(&("owner".into(), "ops".into())));
    assert!(!tags.iter().any(|(k, _)| k == "team"));

    let (code, _, _) = cli(BIN, &url, &["vm", "console", "-e", "aws-test", &ids[1]]);
    assert_eq!(code, 0);
    let (code, _, err) = cli(
        BIN,
        &url,
        &["vm", "terminate", "-e", "aws-test", &ids[1], "--wait"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        in_moto(&ec2, &ids[1]).await.state,
        InstanceStateName::Terminated
    );

    let (code, _, err) = cli(
        BIN,
        &url,
        &["vm", "start", "-e", "aws-test", &ids[1], "--wait"],
    );
    assert_eq!(code, 1);
    assert!(err.contains("wrong_state, HTTP 409"), "{err}");
    let (code, _, err) = cli(
        BIN,
        &url,
        &["vm", "create", "-e", "aws-test", "--image", &image],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("instance_type: give an instance_type"),
        "{err}"
    );

    // Images.
    let (code, out, err) = cli(
        BIN,
        &url,
        &[
            "-o",
            "json",
            "image",
            "create",
            "-e",
            "aws-test",
            "--instance",
            &ids[0],
            "cli-image",
            "--no-reboot",
            "--wait",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let op: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ami = op["results"][0]["target"].as_str().unwrap().to_string();
    assert_eq!(
        ec2.describe_images()
            .image_ids(&ami)
            .send()
            .await
            .unwrap()
            .images()[0]
            .name(),
        Some("cli-image")
    );
    let (code, out, _) = cli(BIN, &url, &["image", "list", "-e", "aws-test"]);
    assert_eq!(code, 0);
    assert!(out.contains(&ami) && out.contains("available"), "{out}");
    let (code, _, err) = cli(
        BIN,
        &url,
        &["image", "rm", "-e", "aws-test", &ami, "--wait"],
    );
    assert_eq!(code, 0, "{err}");
    let gone = ec2.describe_images().image_ids(&ami).send().await;
    assert!(gone.map(|d| d.images().is_empty()).unwrap_or(true));

    // Key pairs: the private key goes to a 0600 file.
    let key_file = dir.path().join("ops.pem");
    let (code, out, err) = cli(
        BIN,
        &url,
        &[
            "keypair",
            "create",
            "-e",
            "aws-test",
            "ops",
            "--out",
            key_file.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("private key written"), "{out}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    assert!(std::fs::read_to_string(&key_file)
        .unwrap()
        .starts_with("-----BEGIN"));
    let (code, out, _) = cli(BIN, &url, &["keypair", "list", "-e", "aws-test"]);
    assert_eq!(code, 0);
    assert!(out.contains("ops"), "{out}");
    let (code, _, err) = cli(
        BIN,
        &url,
        &["keypair", "rm", "-e", "aws-test", "ops", "--wait"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(ec2
        .describe_key_pairs()
        .key_names("ops")
        .send()
        .await
        .is_err());

    // Security groups.
    let (code, out, err) = cli(
        BIN,
        &url,
        &[
            "-o",
            "json",
            "sg",
            "create",
            "-e",
            "aws-test",
            "ssh",
            "--description",
            "ssh in",
            "--wait",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let op: serde_json::Value = serde_json::from_str(&out).unwrap();
    let group = op["results"][0]["target"].as_str().unwrap().to_string();
    let (code, _, err) = cli(
        BIN,
        &url,
        &[
            "sg",
            "rule-add",
            "-e",
            "aws-test",
            &group,
            "--protocol",
            "tcp",
            "--port",
            "22",
            "--cidr",
            "10.0.0.0/8",
            "--wait",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let described = ec2
        .describe_security_groups()
        .group_ids(&group)
        .send()
        .await
        .unwrap();
    let permission = &described.security_groups()[0].ip_permissions()[0];
    assert_eq!(
        (permission.from_port(), permission.to_port()),
        (Some(22), Some(22))
    );
    assert_eq!(permission.ip_ranges()[0].cidr_ip(), Some("10.0.0.0/8"));
    let (code, out, _) = cli(BIN, &url, &["sg", "get", "-e", "aws-test", &group]);
    assert_eq!(code, 0);
    assert!(
        out.contains("ingress") && out.contains("10.0.0.0/8"),
        "{out}"
    );
    let (code, _, err) = cli(
        BIN,
        &url,
        &[
            "sg",
            "rule-add",
            "-e",
            "aws-test",
            &group,
            "--protocol",
            "tcp",
            "--port",
            "80-22",
            "--cidr",
            "10.0.0.0/8",
        ],
    );
    assert_eq!(code, 1);
    assert!(err.contains("to_port: 22 is below from_port 80"), "{err}");
    let (code, _, err) = cli(BIN, &url, &["sg", "rm", "-e", "aws-test", &group, "--wait"]);
    assert_eq!(code, 0, "{err}");
    assert!(ec2
        .describe_security_groups()
        .group_ids(&group)
        .send()
        .await
        .is_err());

    // Bulk, by selector.
    let (code, _, err) = cli(
        BIN,
        &url,
        &[
            "vm",
            "create",
            "-e",
            "aws-test",
            "--image",
            &image,
            "--type",
            "t3.micro",
            "--count",
            "2",
            "--tag",
            "fleet=bulk",
            "--wait",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = cli(
        BIN,
        &url,
        &[
            "vm",
            "stop",
            "-e",
            "aws-test",
            "--tag",
            "fleet=bulk",
            "--dry-run",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("dry run: would stop 2 instance(s), skip 0"),
        "{out}"
    );
    let (code, _, err) = cli(
        BIN,
        &url,
        &[
            "vm",
            "stop",
            "-e",
            "aws-test",
            "--tag",
            "fleet=bulk",
            "--wait",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = cli(
        BIN,
        &url,
        &[
            "vm",
            "promote",
            "-e",
            "aws-test",
            "--tag",
            "fleet=bulk",
            "--wait",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let fleet = ec2
        .describe_instances()
        .filters(Filter::builder().name("tag:fleet").values("bulk").build())
        .send()
        .await
        .unwrap();
    let fleet: Vec<_> = fleet
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .collect();
    assert_eq!(fleet.len(), 2);
    for instance in fleet {
        assert_eq!(
            instance.state().unwrap().name(),
            Some(&InstanceStateName::Stopped)
        );
        let stage = instance
            .tags()
            .iter()
            .find(|t| t.key() == Some("stage"))
            .unwrap();
        assert_eq!(stage.value(), Some("test"));
    }
    let (code, _, err) = cli(
        BIN,
        &url,
        &["vm", "terminate", "-e", "aws-test", "--tag", "fleet=bulk"],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("confirm: this would terminate 2 instance(s)") && err.contains("aws-test/2"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_resumes_after_sigkill_and_launches_exactly_the_count() {
    const COUNT: usize = 150;
    let dir = tempfile::tempdir().unwrap();
    let account = new_account();
    let config = write_aws_config(dir.path(), &account);
    let ec2 = ec2_client(&account, REGIONS[0]).await;
    let image = some_image(&ec2).await;
    let first = serve(BIN, &config);
    let op: serde_json::Value = first
        .request(
            Method::POST,
            "/v1/environments/aws-test/instances",
            Some(ADMIN),
        )
        .header("prefer", "respond-async")
        .json(&serde_json::json!({"image": image, "instance_type": "t3.micro", "count": COUNT}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let op_id = op["id"].as_str().unwrap().to_string();

    // Kill the server as soon as moto holds the launched instances, before overcast has
    // recorded them.
    let launched = || async {
        let out = ec2
            .describe_instances()
            .filters(
                Filter::builder()
                    .name("tag:overcast:operation")
                    .values(&op_id)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        out.reservations()
            .iter()
            .map(|r| r.instances().len())
            .sum::<usize>()
    };
    eventually_within(
        "moto launched the instances",
        Duration::from_millis(25),
        Duration::from_secs(10),
        || async { launched().await > 0 },
    )
    .await;
    drop(first);

    let second = serve(BIN, &config);
    let ended = second.operation_end(&op_id).await;
    assert_eq!(ended["status"], "succeeded", "{ended}");
    assert_eq!(ended["progress"]["done"], COUNT);
    assert_eq!(
        launched().await,
        COUNT,
        "the resumed operation launched nothing twice"
    );
    let all = ec2.describe_instances().send().await.unwrap();
    let total: usize = all.reservations().iter().map(|r| r.instances().len()).sum();
    assert_eq!(total, COUNT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_come_from_a_named_profile() {
    let dir = tempfile::tempdir().unwrap();
    let moto = moto_url();
    let aws_config = dir.path().join("aws-config");
    let credentials = dir.path().join("aws-credentials");
    std::fs::write(&aws_config, "[profile overcast-dev]\nregion = eu-west-1\n").unwrap();
    std::fs::write(&credentials, "[overcast-dev]\naws_access_key_id = AKIAOVERCASTPROFILE\naws_secret_access_key = from-the-profile\n").unwrap();
    let config = dir.path().join("overcast.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n[environments.dev]\nprovider = \"aws\"\nregions = [\"{}\"]\nendpoint_url = \"{moto}\"\nprofile = \"overcast-dev\"\n",
            dir.path().join("data").display(),
            REGIONS[0]
        ),
    )
    .unwrap();
    // No credentials in the environment: only the profile can sign.
    let served = serve_with(
        BIN,
        &config,
        &[
            ("AWS_CONFIG_FILE", aws_config.to_str().unwrap()),
            ("AWS_SHARED_CREDENTIALS_FILE", credentials.to_str().unwrap()),
        ],
        &[
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
        ],
    );
    let (_, environment) = served
        .call(Method::GET, "/v1/environments/dev", Some(ADMIN), None)
        .await;
    assert_eq!(environment["reachable"], true, "{environment}");
    let (code, out, err) = tokio::task::spawn_blocking({
        let url = served.base.clone();
        move || cli(BIN, &url, &["-o", "json", "vm", "list", "-e", "dev"])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["items"].is_array());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_stop_resumes_after_sigkill_and_acts_on_each_target_once() {
    const COUNT: usize = 2500;
    let _moto = heavy_use().await;
    let dir = tempfile::tempdir().unwrap();
    let account = new_account();
    let config = write_aws_config(dir.path(), &account);
    let ec2 = ec2_client(&account, REGIONS[0]).await;
    launch_fleet(&ec2, COUNT as i32, "dev").await;
    let stopped = || count_in_state(&ec2, "stopped");
    let first = serve(BIN, &config);
    let op: serde_json::Value = first
        .request(
            Method::POST,
            "/v1/environments/aws-test/instances/stop",
            Some(ADMIN),
        )
        .header("prefer", "respond-async")
        .json(&serde_json::json!({"stage": "dev"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let op_id = op["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{op}"))
        .to_string();
    // Kill the server once the first batch is recorded, before the second is.
    let done_of = |op: &serde_json::Value| op["progress"]["done"].as_u64().unwrap_or(0);
    let now = first
        .operation_until(&op_id, Duration::from_millis(20), |op| done_of(op) >= 1000)
        .await;
    let done = done_of(&now);
    drop(first);
    assert!(
        (1000..COUNT as u64).contains(&done),
        "killed after the first batch was recorded and before the end: {done} of {COUNT}"
    );

    let second = serve(BIN, &config);
    let ended = second.operation_end(&op_id).await;
    assert_eq!(ended["status"], "succeeded", "{}", ended["error"]);
    assert_eq!(stopped().await, COUNT);
    let results = ended["results"].as_array().unwrap();
    let targets: std::collections::HashSet<_> = results
        .iter()
        .map(|r| r["target"].as_str().unwrap())
        .collect();
    assert_eq!(
        (results.len(), targets.len()),
        (COUNT, COUNT),
        "each target recorded once"
    );
    let stops = backend_calls(&second.metrics().await, &[("action", "StopInstances")]);
    assert!(
        stops <= 2,
        "the resumed run stopped only what was not recorded: {stops} calls"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_call_service_resumes_after_sigkill_and_makes_each_part_once() {
    // ECS's CreateService is held 3 s on its way to moto, so the server is killed after the
    // cluster and the task definition were made and before the service step was recorded.
    let proxy = FaultProxy::start(
        moto_url(),
        FaultPlan {
            latency: Duration::from_secs(3),
            only_actions: Some(vec!["CreateService".into()]),
            ..FaultPlan::default()
        },
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let account = new_account();
    let direct = write_aws_config(dir.path(), &account);
    let proxied = dir.path().join("proxied.toml");
    std::fs::write(
        &proxied,
        std::fs::read_to_string(&direct)
            .unwrap()
            .replace(moto_url(), &proxy.url()),
    )
    .unwrap();
    let ecs = ecs_client(&account, REGIONS[0]).await;
    let ec2 = ec2_client(&account, REGIONS[0]).await;
    let subnets = ec2.describe_subnets().send().await.unwrap();
    let subnet = subnets.subnets()[0].subnet_id().unwrap().to_string();

    let first = serve(BIN, &proxied);
    let op: serde_json::Value = first
        .request(Method::POST, "/v1/environments/aws-test/container-services", Some(ADMIN))
        .header("prefer", "respond-async")
        .json(&serde_json::json!({
            "cluster": {"name": "myclu"},
            "task_definition": {"family": "webservers", "containers": [{"name": "web", "image": "nginx:alpine"}]},
            "service": {"name": "www", "subnets": [subnet]},
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let op_id = op["id"].as_str().unwrap().to_string();
    let revisions = || async {
        ecs.list_task_definitions()
            .family_prefix("webservers")
            .send()
            .await
            .unwrap()
            .task_definition_arns()
            .len()
    };
    eventually_within(
        "the task definition was registered",
        Duration::from_millis(25),
        Duration::from_secs(20),
        || async { revisions().await > 0 },
    )
    .await;
    let (_, mid_way) = first
        .call(
            Method::GET,
            &format!("/v1/operations/{op_id}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(mid_way["status"], "running", "killed mid-way: {mid_way}");
    drop(first);

    let second = serve(BIN, &direct);
    let ended = second.operation_end(&op_id).await;
    assert_eq!(ended["status"], "succeeded", "{ended}");
    let steps: Vec<&str> = ended["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["target"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["cluster", "task_definition", "service"]);
    assert_eq!(revisions().await, 1, "one revision, not one per run");
    let clusters = ecs.list_clusters().send().await.unwrap();
    assert_eq!(clusters.cluster_arns().len(), 1);
    let services = ecs.list_services().cluster("myclu").send().await.unwrap();
    assert_eq!(
        services.service_arns().len(),
        1,
        "one service, whether or not the held create reached moto"
    );
}
