//! The EC2 endpoint driven by the real clients, from a venv `scripts/test` makes
//! (`OVERCAST_TEST_EC2_CLIENTS` names its `bin`): the seed tutorial's boto 2 calls, as
//! written, against a moto-backed environment (its groups and rules come out as the
//! tutorial prints them, checked in moto too); the AWS CLI's instance quartet and boto3 on
//! a local VM; and Terraform's `aws_instance` when Terraform and its provider are on the
//! machine (skipped with the reason otherwise).

use overcast_test_utils::moto::{heavy_use, new_account, some_image, REGIONS};
use overcast_test_utils::process::{serve, write_local_config, Served};
use overcast_test_utils::qemu::{import_test_image, Reaper};
use overcast_test_utils::{Api, TestServer, ADMIN};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

/// The venv's `bin`, with python (3.11, boto 2.49, boto3) and the AWS CLI v1.
fn clients() -> PathBuf {
    let dir = std::env::var("OVERCAST_TEST_EC2_CLIENTS").expect(
        "OVERCAST_TEST_EC2_CLIENTS is not set: run ./scripts/test, which installs the EC2 clients",
    );
    PathBuf::from(dir)
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(name)
}

/// An access key of a new operator token of the admin org (which imported the test image
/// and owns what the tests make through `/v1`), in `env`.
async fn access_key(api: &Api, env: &str) -> (String, String) {
    api.access_key(env, "admin", "operator").await
}

/// Runs a client command with the key in its environment; answers stdout, failing the test
/// with stderr when it fails.
fn run(command: &mut Command, key: &(String, String)) -> String {
    let output = command
        .env("AWS_ACCESS_KEY_ID", &key.0)
        .env("AWS_SECRET_ACCESS_KEY", &key.1)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "{command:?} failed: {stderr}\n{stdout}"
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_boto2_tutorial_runs_unchanged_against_moto() {
    // boto's proxy setting: it sends `POST http://ec2.us-east-1.amazonaws.com/` to
    // overcast, signed for us-east-1, a region of the environment.
    let server = TestServer::aws().await;
    let port = server.base.rsplit(':').next().unwrap().to_string();
    let config = format!(
        "[Boto]\nis_secure = False\nproxy = 127.0.0.1\nproxy_port = {port}\nnum_retries = 0\n"
    );
    tutorial(&server, REGIONS[1], &config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_boto2_tutorial_reaches_overcast_on_port_80_by_its_endpoint_setting() {
    // boto's endpoint setting takes no port: overcast's EC2 listener on port 80. boto signs
    // for the host's name (`0/127`), so the environment's first region is used.
    if let Err(e) = std::net::TcpListener::bind("127.0.0.1:80") {
        println!("SKIPPED: boto2 on port 80: 127.0.0.1:80 cannot be bound here ({e})");
        return;
    }
    let server = TestServer::aws_with(new_account(), |config| {
        config.compat.ec2.listen = Some("127.0.0.1:80".into());
    })
    .await;
    let config = "[Boto]\nis_secure = False\nec2_region_name = local\nec2_region_endpoint = 127.0.0.1\nnum_retries = 0\n";
    tutorial(&server, REGIONS[0], config).await;
}

/// Runs the tutorial with a boto config against `server`, whose calls act in `region`,
/// and checks what it printed and what moto holds.
async fn tutorial(server: &TestServer, region: &str, boto_config: &str) {
    let moto = server.ec2(region).await;
    let image = some_image(&moto).await;
    // What the tutorial assumes exists: a key pair and a group of the caller's.
    moto.create_key_pair()
        .key_name("myKey")
        .send()
        .await
        .unwrap();
    server
        .change(
            Method::POST,
            "/v1/environments/aws-test/security-groups",
            Some(json!({"name": "public-facing", "description": "public", "region": region})),
        )
        .await;
    let key = access_key(server, "aws-test").await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("boto.cfg");
    std::fs::write(&config, boto_config).unwrap();
    let printed = run(
        Command::new(clients().join("python"))
            .arg(script("boto2_tutorial.py"))
            .env("BOTO_CONFIG", &config)
            .env("TUTORIAL_IMAGE", &image),
        &key,
    );
    let shown: Value = serde_json::from_str(printed.trim()).unwrap();
    println!("the tutorial printed: {shown}");
    let ids: Vec<&str> = shown["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{shown}");
    assert_eq!(shown["stopped"], shown["instances"]);
    assert_eq!(shown["terminated"], shown["instances"]);
    assert_eq!(shown["second_type"], "c1.xlarge");
    assert_eq!(shown["authorized"], json!([true, true, true]));
    assert_eq!(shown["revoked"], true);
    // The rules as the tutorial prints them.
    assert_eq!(
        shown["web_rules"],
        json!(["IPPermissions:tcp(80-80)", "IPPermissions:tcp(22-22)"])
    );
    assert_eq!(
        shown["web_rules_after"],
        json!(["IPPermissions:tcp(80-80)"])
    );
    assert_eq!(
        shown["listed"]["appserver"],
        json!([
            "IPPermissions:tcp(0-65535)",
            "IPPermissions:udp(0-65535)",
            "IPPermissions:icmp(-1--1)"
        ])
    );
    assert_eq!(
        shown["listed"]["apache"],
        json!(["IPPermissions:tcp(80-80)"])
    );
    for name in ["SecurityGroup:apache", "SecurityGroup:appserver"] {
        assert!(
            shown["groups"].as_array().unwrap().contains(&json!(name)),
            "{shown}"
        );
    }

    // Moto holds the same: the instances terminated (the answer came as the terminate
    // began), the second in its group with its key, appserver open to apache on all three
    // protocols.
    let mut instances = Vec::new();
    for _ in 0..100 {
        let truth = moto
            .describe_instances()
            .set_instance_ids(Some(ids.iter().map(|i| i.to_string()).collect()))
            .send()
            .await
            .unwrap();
        instances = truth
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .cloned()
            .collect();
        let terminated = instances.iter().all(|i| {
            i.state().and_then(|s| s.name())
                == Some(&aws_sdk_ec2::types::InstanceStateName::Terminated)
        });
        if terminated {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(instances.len(), 2);
    for instance in &instances {
        assert_eq!(
            instance.state().and_then(|s| s.name()),
            Some(&aws_sdk_ec2::types::InstanceStateName::Terminated)
        );
    }
    let second = instances
        .iter()
        .find(|i| i.instance_id() == Some(ids[1]))
        .unwrap();
    assert_eq!(second.key_name(), Some("myKey"));
    assert_eq!(
        second.security_groups()[0].group_name(),
        Some("public-facing")
    );
    let groups = moto
        .describe_security_groups()
        .group_names("appserver")
        .send()
        .await
        .unwrap();
    let permissions = groups.security_groups()[0].ip_permissions();
    assert_eq!(permissions.len(), 3, "{permissions:?}");
    assert!(permissions
        .iter()
        .all(|p| p.user_id_group_pairs()[0].group_name().or(Some("apache")) == Some("apache")));

    // Each change is in the audit log, as the key's token.
    let (_, audit) = server
        .call(Method::GET, "/v1/audit?limit=100", Some(ADMIN), None)
        .await;
    let changes = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["route"] == "/" && e["outcome"] == "succeeded")
        .count();
    assert!(changes >= 9, "{audit}");
}

/// The local environment's server with an imported test image, and an access key there.
async fn local_server(data: &std::path::Path) -> (Served, String, (String, String)) {
    let served = serve(crate::BIN, &write_local_config(data));
    let image = import_test_image(&served).await;
    let ami = format!("ami-0{}", image.strip_prefix("img-").unwrap());
    let key = access_key(&served, "local").await;
    (served, ami, key)
}

/// `aws ec2 …` against the server, region `local`, answering its JSON.
fn aws(served: &Served, key: &(String, String), args: &[&str]) -> Value {
    let printed = run(
        Command::new(clients().join("aws"))
            .args(["ec2", "--output", "json"])
            .args(args)
            .env("AWS_ENDPOINT_URL", &served.base)
            .env("AWS_DEFAULT_REGION", "local")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        key,
    );
    serde_json::from_str(printed.trim()).unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_and_boto3_drive_a_local_vm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let _reaper = Reaper(data.to_path_buf());
    let (served, ami, key) = local_server(data).await;

    let started = Instant::now();
    let launched = aws(
        &served,
        &key,
        &[
            "run-instances",
            "--image-id",
            &ami,
            "--instance-type",
            "tiny",
            "--count",
            "1",
        ],
    );
    let id = launched["Instances"][0]["InstanceId"]
        .as_str()
        .unwrap()
        .to_string();
    aws(
        &served,
        &key,
        &["wait", "instance-running", "--instance-ids", &id],
    );
    println!(
        "aws ec2 run-instances -> wait instance-running on a local VM: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let described = aws(
        &served,
        &key,
        &[
            "describe-instances",
            "--filters",
            "Name=instance-state-name,Values=running",
            "--page-size",
            "5",
        ],
    );
    assert_eq!(
        described["Reservations"][0]["Instances"][0]["InstanceId"],
        id.as_str()
    );
    let stopped = aws(
        &served,
        &key,
        &["stop-instances", "--instance-ids", &id, "--force"],
    );
    assert_eq!(
        stopped["StoppingInstances"][0]["PreviousState"]["Name"],
        "running"
    );
    aws(
        &served,
        &key,
        &["wait", "instance-stopped", "--instance-ids", &id],
    );

    // A dry run and a wrong secret fail as EC2's do.
    let dry = Command::new(clients().join("aws"))
        .args([
            "ec2",
            "terminate-instances",
            "--dry-run",
            "--instance-ids",
            &id,
        ])
        .env("AWS_ENDPOINT_URL", &served.base)
        .env("AWS_DEFAULT_REGION", "local")
        .env("AWS_ACCESS_KEY_ID", &key.0)
        .env("AWS_SECRET_ACCESS_KEY", &key.1)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&dry.stderr).contains("DryRunOperation"));
    let forged = Command::new(clients().join("aws"))
        .args(["ec2", "describe-instances"])
        .env("AWS_ENDPOINT_URL", &served.base)
        .env("AWS_DEFAULT_REGION", "local")
        .env("AWS_ACCESS_KEY_ID", &key.0)
        .env("AWS_SECRET_ACCESS_KEY", "x".repeat(40))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&forged.stderr);
    assert!(
        said.contains("SignatureDoesNotMatch") || said.contains("AuthFailure"),
        "{said}"
    );

    aws(
        &served,
        &key,
        &["terminate-instances", "--instance-ids", &id],
    );
    aws(
        &served,
        &key,
        &["wait", "instance-terminated", "--instance-ids", &id],
    );

    // boto3: a launch of three, a paginator, a dry run, an unknown filter, waiters.
    let printed = run(
        Command::new(clients().join("python"))
            .arg(script("boto3_calls.py"))
            .env("AWS_ENDPOINT_URL", &served.base)
            .env("AWS_DEFAULT_REGION", "local")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("TEST_IMAGE", &ami)
            .env("TEST_TYPE", "tiny"),
        &key,
    );
    let shown: Value = serde_json::from_str(printed.trim()).unwrap();
    assert_eq!(shown["ids"].as_array().unwrap().len(), 3, "{shown}");
    let mut listed: Vec<&str> = shown["listed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap())
        .collect();
    listed.sort();
    let mut ids: Vec<&str> = shown["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(listed, ids);
    assert_eq!(shown["dry_run"], "DryRunOperation");
    assert_eq!(shown["unknown_filter"], "InvalidParameterValue");
    // An action overcast does not serve is refused, not passed on; so is a request that is
    // not signed with SigV4.
    assert_eq!(shown["not_served"][0], 400, "{shown}");
    assert_eq!(shown["not_served"][1], "InvalidAction", "{shown}");
    assert_eq!(shown["unsigned"][0], 401, "{shown}");
    assert_eq!(shown["unsigned"][1], "AuthFailure", "{shown}");
    assert!(
        shown["version_2"][2]
            .as_str()
            .unwrap()
            .contains("Signature Version 2"),
        "{shown}"
    );
}

/// Terraform and a filesystem mirror of the `hashicorp/aws` provider, when the machine
/// has them: the mirror is `OVERCAST_TEST_TERRAFORM_MIRROR`, else the first of
/// Terraform's implied mirror directories, or of the directories under `/opt`, that holds
/// `registry.terraform.io/hashicorp/aws`.
fn terraform() -> Result<(PathBuf, PathBuf), String> {
    let binary = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("terraform"))
        .find(|path| path.is_file())
        .ok_or("terraform is not on the PATH")?;
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(given) = std::env::var_os("OVERCAST_TEST_TERRAFORM_MIRROR") {
        candidates.push(given.into());
    } else {
        if let Some(home) = std::env::var_os("HOME") {
            candidates.push(PathBuf::from(home).join(".terraform.d/plugins"));
        }
        candidates.push("/usr/local/share/terraform/plugins".into());
        candidates.push("/usr/share/terraform/plugins".into());
        if let Ok(entries) = std::fs::read_dir("/opt") {
            candidates.extend(entries.flatten().map(|e| e.path()));
        }
    }
    candidates
        .into_iter()
        .find(|dir| dir.join("registry.terraform.io/hashicorp/aws").is_dir())
        .map(|mirror| (binary, mirror))
        .ok_or_else(|| "no filesystem mirror of the hashicorp/aws provider".to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terraform_applies_plans_and_destroys_an_aws_instance_on_a_local_vm() {
    let (binary, mirror) = match terraform() {
        Ok(found) => found,
        Err(reason) => {
            println!("SKIPPED: Terraform's aws_instance test: {reason}");
            return;
        }
    };
    // Terraform's provider is a large program that takes both cores while it starts: not
    // beside the tests that drive thousands of instances through moto.
    let _heavy = heavy_use().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    std::fs::create_dir_all(&data).unwrap();
    let _reaper = Reaper(data.clone());
    let (served, ami, key) = local_server(&data).await;
    let work = dir.path().join("tf");
    std::fs::create_dir_all(&work).unwrap();
    let cli_config = dir.path().join("terraformrc");
    std::fs::write(
        &cli_config,
        format!(
            "provider_installation {{\n  filesystem_mirror {{\n    path = \"{}\"\n  }}\n}}\n",
            mirror.display()
        ),
    )
    .unwrap();
    // The provider block is unchanged: the endpoint comes from AWS_ENDPOINT_URL.
    std::fs::write(
        work.join("main.tf"),
        format!(
            r#"terraform {{
  required_providers {{
    aws = {{ source = "hashicorp/aws" }}
  }}
}}

provider "aws" {{
  region = "us-east-1"
}}

resource "aws_instance" "vm" {{
  ami           = "{ami}"
  instance_type = "tiny"
  tags = {{
    stage = "dev"
  }}
}}
"#
        ),
    )
    .unwrap();
    let tf = |args: &[&str]| {
        let mut command = Command::new(&binary);
        command
            .args(args)
            .current_dir(&work)
            .env("TF_CLI_CONFIG_FILE", &cli_config)
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1")
            .env("AWS_ENDPOINT_URL", &served.base)
            .env("AWS_ACCESS_KEY_ID", &key.0)
            .env("AWS_SECRET_ACCESS_KEY", &key.1)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
        let output = command.output().unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr),
        )
    };
    let started = Instant::now();
    let (code, said) = tf(&["init", "-input=false", "-no-color"]);
    assert_eq!(code, 0, "terraform init: {said}");
    let (code, said) = tf(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    assert_eq!(code, 0, "terraform apply: {said}");
    let applied = started.elapsed();
    let (code, said) = tf(&["plan", "-detailed-exitcode", "-input=false", "-no-color"]);
    assert_eq!(code, 0, "terraform plan must find no changes: {said}");
    let state = std::fs::read_to_string(work.join("terraform.tfstate")).unwrap();
    let state: Value = serde_json::from_str(&state).unwrap();
    let id = state["resources"][0]["instances"][0]["attributes"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let vm = format!("vm-{}", id.strip_prefix("i-0").unwrap());
    let (_, seen) = served
        .call(
            Method::GET,
            &format!("/v1/environments/local/instances/{vm}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(seen["state"], "running", "{seen}");
    assert_eq!(seen["stage"], "dev", "{seen}");
    let (code, said) = tf(&["destroy", "-auto-approve", "-input=false", "-no-color"]);
    assert_eq!(code, 0, "terraform destroy: {said}");
    let (_, gone) = served
        .call(
            Method::GET,
            &format!("/v1/environments/local/instances/{vm}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(gone["state"], "terminated", "{gone}");
    println!(
        "terraform: apply {:.1} s; apply, plan and destroy {:.1} s",
        applied.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
