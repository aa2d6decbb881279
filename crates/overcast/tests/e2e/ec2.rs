//! The EC2-compatible endpoint with `aws-sdk-ec2` and `aws-sdk-sts` as the clients, as
//! boto3 and the AWS CLI speak the same protocol: access keys made through `/v1`, SigV4
//! verified (a wrong secret and a revoked key refused), run, describe (filters, pages,
//! an unknown filter refused), stop, terminate, tags, dry runs, roles and orgs, each
//! change an operation in the audit log and visible through `/v1`.

use aws_sdk_ec2::config::Credentials;
use aws_sdk_ec2::types::{Filter, InstanceStateName, ResourceType, Tag, TagSpecification};
use aws_sdk_ec2::types::{IpPermission, IpRange, UserIdGroupPair};
use overcast_test_utils::moto::{some_image, REGIONS};
use overcast_test_utils::server::environment;
use overcast_test_utils::{TestServer, ADMIN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;

const ENV: &str = "fleet";
const IMAGE: &str = "ami-sim-base";

/// A server with a simulated environment; with `ec2_listener`, also serving the EC2
/// Query API alone on a port of its own.
async fn sim_server(ec2_listener: bool) -> TestServer {
    TestServer::built_with(|config| {
        let settings = json!({"provider": "sim", "regions": ["sim-1"], "instances": 0,
                              "pending_secs": 0});
        config
            .environments
            .insert(ENV.into(), environment(settings));
        if ec2_listener {
            config.compat.ec2.listen = Some("127.0.0.1:0".into());
        }
    })
    .await
}

/// An access key for a new token of `org` and `role`, in the simulated environment: its
/// id and secret.
async fn access_key(server: &TestServer, org: &str, role: &str) -> (String, String) {
    server.access_key(ENV, org, role).await
}

/// Where EC2 clients are pointed: the extra listener when there is one, else `/` of the
/// main one.
fn endpoint(server: &TestServer) -> String {
    server
        .ec2_url
        .clone()
        .unwrap_or_else(|| server.base.clone())
}

fn ec2(server: &TestServer, key: &(String, String)) -> aws_sdk_ec2::Client {
    let credentials = Credentials::new(&key.0, &key.1, None, None, "test");
    let config = aws_sdk_ec2::config::Builder::new()
        .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
        .region(aws_sdk_ec2::config::Region::new("us-east-1"))
        .endpoint_url(endpoint(server))
        .credentials_provider(credentials)
        .build();
    aws_sdk_ec2::Client::from_conf(config)
}

/// The EC2 error code of a failed call.
fn code<E, R>(err: &aws_sdk_ec2::error::SdkError<E, R>) -> String
where
    E: aws_sdk_ec2::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    err.as_service_error()
        .and_then(|e| e.code())
        .map(str::to_string)
        .unwrap_or_else(|| format!("not a service error: {err:?}"))
}

fn stage_tag(stage: &str) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(ResourceType::Instance)
        .tags(Tag::builder().key("stage").value(stage).build())
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_runs_describes_stops_and_terminates_through_core() {
    let server = sim_server(false).await;
    let operator = access_key(&server, "acme", "operator").await;
    let client = ec2(&server, &operator);

    // Run: two instances, answered with their ids, tagged with the org and operation.
    let run = client
        .run_instances()
        .image_id(IMAGE)
        .instance_type(aws_sdk_ec2::types::InstanceType::from("sim.small"))
        .min_count(2)
        .max_count(2)
        .tag_specifications(stage_tag("dev"))
        .client_token("launch-1")
        .send()
        .await
        .unwrap();
    let ids: Vec<String> = run
        .instances()
        .iter()
        .map(|i| i.instance_id().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2, "{run:?}");
    assert!(run.reservation_id().unwrap().starts_with("r-"));
    // The same client token is the same launch: no third instance.
    let again = client
        .run_instances()
        .image_id(IMAGE)
        .instance_type(aws_sdk_ec2::types::InstanceType::from("sim.small"))
        .min_count(2)
        .max_count(2)
        .tag_specifications(stage_tag("dev"))
        .client_token("launch-1")
        .send()
        .await
        .unwrap();
    let again_ids: BTreeSet<&str> = again
        .instances()
        .iter()
        .filter_map(|i| i.instance_id())
        .collect();
    assert_eq!(again_ids, ids.iter().map(String::as_str).collect());
    let (_, one) = server
        .call(
            Method::GET,
            &format!("/v1/environments/{ENV}/instances/{}", ids[0]),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(one["tags"]["overcast:org"], "acme", "{one}");
    assert_eq!(one["stage"], "dev", "{one}");
    assert!(one["tags"]["overcast:operation"].is_string(), "{one}");

    // Describe by filter; an unknown filter is refused, never ignored.
    let described = client
        .describe_instances()
        .filters(Filter::builder().name("tag:stage").values("dev").build())
        .filters(
            Filter::builder()
                .name("instance-state-name")
                .values("running")
                .values("pending")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let seen: BTreeSet<String> = described
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .map(|i| i.instance_id().unwrap().to_string())
        .collect();
    assert_eq!(seen, ids.iter().cloned().collect());
    let wide = client
        .describe_instances()
        .filters(Filter::builder().name("vpc-id").values("vpc-1").build())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&wide), "InvalidParameterValue");

    // Stop with force: answered at once with the states before and after.
    let stopped = client
        .stop_instances()
        .instance_ids(&ids[0])
        .force(true)
        .send()
        .await
        .unwrap();
    let change = &stopped.stopping_instances()[0];
    assert_eq!(
        change.previous_state().and_then(|s| s.name()),
        Some(&InstanceStateName::Running)
    );
    assert_eq!(
        change.current_state().and_then(|s| s.name()),
        Some(&InstanceStateName::Stopping)
    );
    let mut state = None;
    for _ in 0..50 {
        let now = client
            .describe_instances()
            .instance_ids(&ids[0])
            .send()
            .await
            .unwrap();
        state = now.reservations()[0].instances()[0]
            .state()
            .and_then(|s| s.name())
            .cloned();
        if state == Some(InstanceStateName::Stopped) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(state, Some(InstanceStateName::Stopped));

    // Tags through CreateTags show in /v1; DescribeTags answers them.
    client
        .create_tags()
        .resources(&ids[1])
        .tags(Tag::builder().key("team").value("web").build())
        .send()
        .await
        .unwrap();
    let tags = client
        .describe_tags()
        .filters(
            Filter::builder()
                .name("resource-id")
                .values(&ids[1])
                .build(),
        )
        .filters(Filter::builder().name("key").values("team").build())
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags()[0].value(), Some("web"));

    // A dry run acts on nothing; terminate answers shutting-down.
    let dry = client
        .terminate_instances()
        .instance_ids(&ids[1])
        .dry_run(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&dry), "DryRunOperation");
    let terminated = client
        .terminate_instances()
        .instance_ids(&ids[1])
        .send()
        .await
        .unwrap();
    assert_eq!(
        terminated.terminating_instances()[0]
            .current_state()
            .and_then(|s| s.name()),
        Some(&InstanceStateName::ShuttingDown)
    );

    // Every change is an operation of the token, in the audit log; reads are not.
    let (_, audit) = server
        .call(Method::GET, "/v1/audit?limit=100", Some(ADMIN), None)
        .await;
    let routes: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["route"] == "/")
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert!(routes.len() >= 5, "{audit}");
    assert!(audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["route"] == "/")
        .all(|e| e["org"] == "acme"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_roles_orgs_and_pages_are_enforced() {
    let server = sim_server(true).await;
    let ec2_url = server.ec2_url.clone().unwrap();
    let (status, _) = reqwest::Client::new()
        .get(format!("{ec2_url}/v1/environments"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .map(|r| (r.status(), ()))
        .unwrap();
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the EC2 listener serves EC2 alone"
    );
    let operator = access_key(&server, "acme", "operator").await;
    let viewer = access_key(&server, "acme", "viewer").await;
    let stranger = access_key(&server, "other", "operator").await;
    let client = ec2(&server, &operator);
    let run = client
        .run_instances()
        .image_id(IMAGE)
        .min_count(12)
        .max_count(12)
        .send()
        .await
        .unwrap();
    let ids: Vec<String> = run
        .instances()
        .iter()
        .map(|i| i.instance_id().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 12);

    // Pages of 5 cover the 12, each once.
    let mut seen = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let page = client
            .describe_instances()
            .max_results(5)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        pages += 1;
        seen.extend(
            page.reservations()
                .iter()
                .flat_map(|r| r.instances())
                .map(|i| i.instance_id().unwrap().to_string()),
        );
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    seen.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!((seen, pages), (expected, 3));
    let mixed = client
        .describe_instances()
        .instance_ids(&ids[0])
        .max_results(5)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&mixed), "InvalidParameterCombination");

    // A viewer reads but may not change, not even in a dry run.
    let viewing = ec2(&server, &viewer);
    viewing
        .describe_instances()
        .instance_ids(&ids[0])
        .send()
        .await
        .unwrap();
    for dry_run in [false, true] {
        let refused = viewing
            .stop_instances()
            .instance_ids(&ids[0])
            .dry_run(dry_run)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&refused), "UnauthorizedOperation", "dry run {dry_run}");
    }
    // Another org's instances do not exist for it.
    let theirs = ec2(&server, &stranger)
        .terminate_instances()
        .instance_ids(&ids[0])
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&theirs), "InvalidInstanceID.NotFound");
    let (_, still) = server
        .call(
            Method::GET,
            &format!("/v1/environments/{ENV}/instances/{}", ids[0]),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(still["state"], "running");

    // A wrong secret and a revoked key are refused; STS names the caller.
    let forged = ec2(&server, &(operator.0.clone(), "x".repeat(40)))
        .describe_instances()
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&forged), "SignatureDoesNotMatch");
    let sts_config = aws_sdk_sts::config::Builder::new()
        .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
        .region(aws_sdk_sts::config::Region::new("us-east-1"))
        .endpoint_url(endpoint(&server))
        .credentials_provider(Credentials::new(&operator.0, &operator.1, None, None, "t"))
        .build();
    let identity = aws_sdk_sts::Client::from_conf(sts_config)
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    let account = identity.account().unwrap();
    assert_eq!(account.len(), 12);
    assert_eq!(identity.user_id(), Some(operator.0.as_str()));
    assert!(identity.arn().unwrap().contains(account));
    let (status, _) = server
        .call(
            Method::DELETE,
            &format!("/v1/access-keys/{}", operator.0),
            Some(ADMIN),
            None,
        )
        .await;
    assert!(status.is_success());
    let revoked = client.describe_instances().send().await.unwrap_err();
    assert_eq!(code(&revoked), "AuthFailure");

    // Keys are listed without secrets; the viewer's token sees only its own.
    let (_, keys) = server
        .call(Method::GET, "/v1/access-keys", Some(ADMIN), None)
        .await;
    let listed: Vec<&Value> = keys["items"].as_array().unwrap().iter().collect();
    assert_eq!(listed.len(), 3, "{keys}");
    assert!(!keys.to_string().contains(&operator.1));
    assert!(listed
        .iter()
        .any(|k| k["id"] == operator.0.as_str() && k["revoked_at"].is_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_groups_and_instances_on_moto_as_moto_sees_them() {
    let server = TestServer::aws().await;
    let moto = server.ec2(REGIONS[1]).await;
    let key = server.access_key("aws-test", "acme", "operator").await;
    // Signed for us-east-1, a region of the environment: the calls act there.
    let client = ec2(&server, &key);

    let web = client
        .create_security_group()
        .group_name("apache")
        .description("Our Apache Group")
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_string();
    let app = client
        .create_security_group()
        .group_name("appserver")
        .description("The application tier")
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_string();
    let duplicate = client
        .create_security_group()
        .group_name("apache")
        .description("again")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&duplicate), "InvalidGroup.Duplicate");
    client
        .authorize_security_group_ingress()
        .group_id(&web)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(80)
                .to_port(80)
                .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    client
        .authorize_security_group_ingress()
        .group_name("appserver")
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(8080)
                .to_port(8080)
                .user_id_group_pairs(UserIdGroupPair::builder().group_id(&web).build())
                .build(),
        )
        .send()
        .await
        .unwrap();

    // Moto holds the rules, with overcast's org tag on the groups.
    let truth = moto
        .describe_security_groups()
        .group_ids(&web)
        .group_ids(&app)
        .send()
        .await
        .unwrap();
    for group in truth.security_groups() {
        let org = group
            .tags()
            .iter()
            .find(|t| t.key() == Some("overcast:org"))
            .and_then(|t| t.value());
        assert_eq!(org, Some("acme"), "{group:?}");
        let ingress = &group.ip_permissions()[0];
        if group.group_id() == Some(web.as_str()) {
            assert_eq!(ingress.from_port(), Some(80));
            assert_eq!(ingress.ip_ranges()[0].cidr_ip(), Some("0.0.0.0/0"));
        } else {
            assert_eq!(ingress.from_port(), Some(8080));
            assert_eq!(
                ingress.user_id_group_pairs()[0].group_id(),
                Some(web.as_str())
            );
        }
    }
    // And overcast answers them as EC2 does.
    let described = client
        .describe_security_groups()
        .group_names("appserver")
        .send()
        .await
        .unwrap();
    let group = &described.security_groups()[0];
    let pair = &group.ip_permissions()[0].user_id_group_pairs()[0];
    assert_eq!(
        (pair.group_id(), pair.group_name()),
        (Some(web.as_str()), Some("apache"))
    );
    let missing = client
        .describe_security_groups()
        .group_names("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&missing), "InvalidGroup.NotFound");

    // An instance in the group by name; the group is in use until it is terminated.
    let image = some_image(&moto).await;
    let run = client
        .run_instances()
        .image_id(&image)
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .security_groups("apache")
        .send()
        .await
        .unwrap();
    let id = run.instances()[0].instance_id().unwrap().to_string();
    let in_moto = moto
        .describe_instances()
        .instance_ids(&id)
        .send()
        .await
        .unwrap();
    let groups: Vec<&str> = in_moto.reservations()[0].instances()[0]
        .security_groups()
        .iter()
        .filter_map(|g| g.group_id())
        .collect();
    assert_eq!(groups, [web.as_str()]);
    let in_use = client
        .delete_security_group()
        .group_id(&web)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&in_use), "DependencyViolation");

    // Revoke and delete; moto no longer has them.
    client
        .revoke_security_group_ingress()
        .group_id(&app)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(8080)
                .to_port(8080)
                .user_id_group_pairs(UserIdGroupPair::builder().group_id(&web).build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    client
        .delete_security_group()
        .group_id(&app)
        .send()
        .await
        .unwrap();
    let gone = moto
        .describe_security_groups()
        .group_ids(&app)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&gone), "InvalidGroup.NotFound");
}

/// A local VM's state through the endpoint, once it is `want` (polled every 250 ms).
async fn reach(client: &aws_sdk_ec2::Client, id: &str, want: InstanceStateName) {
    for _ in 0..480 {
        let now = client
            .describe_instances()
            .instance_ids(id)
            .send()
            .await
            .unwrap();
        let state = now.reservations()[0].instances()[0]
            .state()
            .and_then(|s| s.name())
            .cloned();
        if state == Some(want.clone()) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    panic!("{id} never became {want:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_vm_runs_stops_and_terminates_through_the_sdk() {
    use overcast_test_utils::process::{cli, serve, write_local_config};
    use overcast_test_utils::qemu::{import_test_image, qemu_pid, vm_dir, Reaper};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let _reaper = Reaper(data.to_path_buf());
    let served = serve(crate::BIN, &write_local_config(data));
    let image = import_test_image(&served).await;
    // An operator of the org that imported the image, its key made with the CLI.
    let (token_id, _) = served.token_with("admin", "operator", None).await;
    let (status, printed, said) = cli(
        crate::BIN,
        &served.base,
        &["token", "access-key", "create", &token_id, "-e", "local"],
    );
    assert_eq!(status, 0, "{said}");
    assert!(said.contains("shown only now"), "{said}");
    let value = |name: &str| {
        printed
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {name} in {printed}"))
    };
    let (key_id, secret) = (value("aws_access_key_id:"), value("aws_secret_access_key:"));
    let (_, listed, _) = cli(crate::BIN, &served.base, &["token", "access-key", "list"]);
    assert!(
        listed.contains(&key_id) && !listed.contains(&secret),
        "{listed}"
    );
    let credentials = Credentials::new(&key_id, &secret, None, None, "test");
    // boto2 signs for the host's name (`…/0/127/aws4_request` on 127.0.0.1): any region.
    let config = aws_sdk_ec2::config::Builder::new()
        .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
        .region(aws_sdk_ec2::config::Region::new("0"))
        .endpoint_url(&served.base)
        .credentials_provider(credentials)
        .build();
    let client = aws_sdk_ec2::Client::from_conf(config);

    // The image in EC2's shape; boto2's default type is the `small` machine type, so the
    // tiny test image is launched as `tiny`.
    let ami = format!("ami-0{}", image.strip_prefix("img-").unwrap());
    let started = std::time::Instant::now();
    let run = client
        .run_instances()
        .image_id(&ami)
        .instance_type(aws_sdk_ec2::types::InstanceType::from("tiny"))
        .min_count(1)
        .max_count(1)
        .security_groups("default")
        .tag_specifications(stage_tag("dev"))
        .send()
        .await
        .unwrap();
    let answered = started.elapsed();
    let id = run.instances()[0].instance_id().unwrap().to_string();
    let vm = format!("vm-{}", id.strip_prefix("i-0").unwrap());
    assert_eq!(run.instances()[0].image_id(), Some(ami.as_str()));
    reach(&client, &id, InstanceStateName::Running).await;
    println!(
        "RunInstances answered in {:.2} s; running after {:.1} s",
        answered.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert!(qemu_pid(data, &vm).is_some(), "no QEMU for {vm}");
    let (_, seen) = served
        .call(
            Method::GET,
            &format!("/v1/environments/local/instances/{vm}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(seen["stage"], "dev", "{seen}");

    client
        .stop_instances()
        .instance_ids(&id)
        .force(true)
        .send()
        .await
        .unwrap();
    reach(&client, &id, InstanceStateName::Stopped).await;
    assert!(qemu_pid(data, &vm).is_none(), "QEMU still runs");

    // Terminated, the VM is gone, and stays listed as terminated for the waiters.
    client
        .terminate_instances()
        .instance_ids(&id)
        .send()
        .await
        .unwrap();
    reach(&client, &id, InstanceStateName::Terminated).await;
    let (status, _) = served
        .call(
            Method::GET,
            &format!("/v1/environments/local/instances/{vm}?fresh=true"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the tombstone answers a fresh read too"
    );
    assert!(
        !vm_dir(data, &vm).join("disk.qcow2").exists(),
        "the VM's disk is gone"
    );

    // Revoked with the CLI, the key signs nothing more.
    let (status, _, said) = cli(
        crate::BIN,
        &served.base,
        &["token", "access-key", "revoke", &key_id],
    );
    assert_eq!(status, 0, "{said}");
    let refused = client.describe_instances().send().await.unwrap_err();
    assert_eq!(code(&refused), "AuthFailure");
}
