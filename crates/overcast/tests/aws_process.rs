//! The `overcast` binary against moto: the VM commands of the CLI, and a server killed
//! with SIGKILL in the middle of a multi-instance create.

mod support;

use aws_sdk_ec2::types::{Filter, InstanceStateName};
use std::time::Duration;
use support::process::{cli, operation_end, serve, serve_with, write_config};
use support::{moto_url, new_account, some_image, ADMIN, REGIONS};

async fn state_in_moto(ec2: &aws_sdk_ec2::Client, id: &str) -> InstanceStateName {
    let out = ec2
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .unwrap();
    out.reservations()[0].instances()[0]
        .state()
        .unwrap()
        .name()
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vm_commands_drive_moto() {
    let dir = tempfile::tempdir().unwrap();
    let account = new_account();
    let served = serve(&write_config(dir.path(), &account));
    let ec2 = support::ec2_client(&account, REGIONS[0]).await;
    let image = some_image(&ec2).await;
    let url = served.url.clone();

    let (code, out, err) = tokio::task::spawn_blocking({
        let url = url.clone();
        let image = image.clone();
        move || {
            cli(
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

    let (code, out, _) = cli(&url, &["vm", "list", "-e", "aws-test", "--tag", "team=cli"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 3, "a header and two rows: {out}");
    assert!(
        out.lines().nth(1).unwrap().contains("cli") && out.contains("running"),
        "{out}"
    );

    let (code, _, err) = cli(&url, &["vm", "stop", "-e", "aws-test", &ids[0], "--wait"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        state_in_moto(&ec2, &ids[0]).await,
        InstanceStateName::Stopped
    );

    let (code, out, _) = cli(&url, &["vm", "start", "-e", "aws-test", &ids[0]]);
    assert_eq!(code, 0);
    assert!(
        out.contains("instance.start op_") && out.contains("overcast op wait"),
        "{out}"
    );
    let op_id = out.split_whitespace().nth(1).unwrap().to_string();
    let (code, out, _) = cli(&url, &["op", "wait", &op_id]);
    assert_eq!(code, 0);
    assert!(out.contains("status: succeeded"), "{out}");
    assert_eq!(
        state_in_moto(&ec2, &ids[0]).await,
        InstanceStateName::Running
    );

    let (code, _, err) = cli(
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

    let (code, _, _) = cli(&url, &["vm", "console", "-e", "aws-test", &ids[1]]);
    assert_eq!(code, 0);
    let (code, _, err) = cli(
        &url,
        &["vm", "terminate", "-e", "aws-test", &ids[1], "--wait"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        state_in_moto(&ec2, &ids[1]).await,
        InstanceStateName::Terminated
    );

    let (code, _, err) = cli(&url, &["vm", "start", "-e", "aws-test", &ids[1], "--wait"]);
    assert_eq!(code, 1);
    assert!(err.contains("wrong_state, HTTP 409"), "{err}");
    let (code, _, err) = cli(&url, &["vm", "create", "-e", "aws-test", "--image", &image]);
    assert_eq!(code, 1);
    assert!(
        err.contains("instance_type: give an instance_type"),
        "{err}"
    );

    // Images.
    let (code, out, err) = cli(
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
    let (code, out, _) = cli(&url, &["image", "list", "-e", "aws-test"]);
    assert_eq!(code, 0);
    assert!(out.contains(&ami) && out.contains("available"), "{out}");
    let (code, _, err) = cli(&url, &["image", "rm", "-e", "aws-test", &ami, "--wait"]);
    assert_eq!(code, 0, "{err}");
    let gone = ec2.describe_images().image_ids(&ami).send().await;
    assert!(gone.map(|d| d.images().is_empty()).unwrap_or(true));

    // Key pairs: the private key goes to a 0600 file.
    let key_file = dir.path().join("ops.pem");
    let (code, out, err) = cli(
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
    let (code, out, _) = cli(&url, &["keypair", "list", "-e", "aws-test"]);
    assert_eq!(code, 0);
    assert!(out.contains("ops"), "{out}");
    let (code, _, err) = cli(&url, &["keypair", "rm", "-e", "aws-test", "ops", "--wait"]);
    assert_eq!(code, 0, "{err}");
    assert!(ec2
        .describe_key_pairs()
        .key_names("ops")
        .send()
        .await
        .is_err());

    // Security groups.
    let (code, out, err) = cli(
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
    let (code, out, _) = cli(&url, &["sg", "get", "-e", "aws-test", &group]);
    assert_eq!(code, 0);
    assert!(
        out.contains("ingress") && out.contains("10.0.0.0/8"),
        "{out}"
    );
    let (code, _, err) = cli(
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
    let (code, _, err) = cli(&url, &["sg", "rm", "-e", "aws-test", &group, "--wait"]);
    assert_eq!(code, 0, "{err}");
    assert!(ec2
        .describe_security_groups()
        .group_ids(&group)
        .send()
        .await
        .is_err());

    // Bulk, by selector.
    let (code, _, err) = cli(
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
    let config = write_config(dir.path(), &account);
    let ec2 = support::ec2_client(&account, REGIONS[0]).await;
    let image = some_image(&ec2).await;
    let http = reqwest::Client::new();

    let first = serve(&config);
    let op: serde_json::Value = http
        .post(format!("{}/v1/environments/aws-test/instances", first.url))
        .bearer_auth(ADMIN)
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
    let mut seen = 0;
    for _ in 0..400 {
        seen = launched().await;
        if seen > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(seen > 0, "moto launched the instances");
    drop(first);

    let second = serve(&config);
    let ended = operation_end(&http, &second.url, &op_id).await;
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
    let environment: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/v1/environments/dev", served.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(environment["reachable"], true, "{environment}");
    let (code, out, err) = tokio::task::spawn_blocking({
        let url = served.url.clone();
        move || cli(&url, &["-o", "json", "vm", "list", "-e", "dev"])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["items"].is_array());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_stop_resumes_after_sigkill_and_acts_on_each_target_once() {
    const COUNT: usize = 2500;
    let dir = tempfile::tempdir().unwrap();
    let account = new_account();
    let config = write_config(dir.path(), &account);
    let ec2 = support::ec2_client(&account, REGIONS[0]).await;
    let image = some_image(&ec2).await;
    use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
    for _ in 0..5 {
        ec2.run_instances()
            .image_id(&image)
            .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
            .min_count(500)
            .max_count(500)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Instance)
                    .tags(tag("overcast:org", "admin"))
                    .tags(tag("stage", "dev"))
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    let stopped = || async {
        let out = ec2
            .describe_instances()
            .filters(
                Filter::builder()
                    .name("instance-state-name")
                    .values("stopped")
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
    let http = reqwest::Client::new();

    let first = serve(&config);
    let op: serde_json::Value = http
        .post(format!(
            "{}/v1/environments/aws-test/instances/stop",
            first.url
        ))
        .bearer_auth(ADMIN)
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
    let mut done = 0;
    for _ in 0..1200 {
        let now: serde_json::Value = http
            .get(format!("{}/v1/operations/{op_id}", first.url))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        done = now["progress"]["done"].as_u64().unwrap_or(0);
        if done >= 1000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(first);
    assert!(
        (1000..COUNT as u64).contains(&done),
        "killed after the first batch was recorded and before the end: {done} of {COUNT}"
    );

    let second = serve(&config);
    let ended = operation_end(&http, &second.url, &op_id).await;
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
    let metrics = http
        .get(format!("{}/metrics", second.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let stops: u64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("overcast_backend_calls_total{") && l.contains("action=\"StopInstances\"")
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert!(
        stops <= 2,
        "the resumed run stopped only what was not recorded: {stops} calls"
    );
}
