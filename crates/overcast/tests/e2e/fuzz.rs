//! The HTTP API under schemathesis: a bounded, seeded run over every operation of the
//! server's own `/openapi.json`, against a server with an AWS environment in moto and a
//! local one under QEMU. It fails on any 5xx, any answer the document does not state
//! (status, content type, body, headers), and any error that is not overcast's JSON error
//! shape. `OVERCAST_TEST_SCHEMATHESIS` names the CLI (`./scripts/test` installs it);
//! `OVERCAST_FUZZ_SEED` runs another seed than the fixed one.

use overcast_test_utils::moto::{heavy_use, new_account, some_image, REGIONS};
use overcast_test_utils::qemu::Reaper;
use overcast_test_utils::server::environment;
use overcast_test_utils::{TestServer, ADMIN};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The seed of a run, so that a failure is found again by running the test again.
const SEED: u64 = 20_261_129;

/// Test cases per operation: about 6,000 requests in all phases, under two minutes on two
/// cores.
const MAX_EXAMPLES: u32 = 50;

/// Past this the run is stuck rather than slow: it is stopped and the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(480);

/// How long a change waits for its operation (and the most `?timeout=` may ask): the
/// fuzzer waits on every change it makes, and what moto does in seconds is done by then.
const OPERATION_WAIT_SECS: u64 = 10;

/// The schemathesis CLI `./scripts/test` installs.
fn schemathesis() -> PathBuf {
    PathBuf::from(std::env::var_os("OVERCAST_TEST_SCHEMATHESIS").expect(
        "OVERCAST_TEST_SCHEMATHESIS is not set: run ./scripts/test, which installs schemathesis and sets it",
    ))
}

/// What the fuzzer should find beside the random: resources that exist, so its requests
/// get past "not found" to the handlers' own work.
struct Seeded {
    instance: String,
    group: String,
    image: String,
    bucket: String,
    key: String,
    key_pair: String,
}

/// Makes something in the `aws-test` environment as the admin, waiting for its operation
/// as long as the server lets a change wait; answers what the operation made.
async fn make(server: &TestServer, route: &str, body: Value) -> String {
    let path = format!("/v1/environments/aws-test/{route}");
    let (status, answer) = server
        .call(Method::POST, &path, Some(ADMIN), Some(body))
        .await;
    let operation = answer.get("operation").unwrap_or(&answer);
    assert!(
        status.is_success() && operation["status"] == "succeeded",
        "POST {path}: {status} {answer}"
    );
    operation["results"][0]["target"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn seed_resources(server: &TestServer) -> Seeded {
    let ec2 = server.ec2(REGIONS[0]).await;
    let body =
        json!({"name": "fuzz-vm", "image": some_image(&ec2).await, "instance_type": "t3.micro"});
    let instance = make(server, "instances", body).await;
    let body = json!({"name": "fuzz-group", "description": "for the fuzzer"});
    let group = make(server, "security-groups", body).await;
    let body = json!({"instance_id": instance, "name": "fuzz-image", "no_reboot": true});
    let image = make(server, "images", body).await;
    let bucket = make(server, "buckets", json!({"name": "fuzz-bucket"})).await;
    let key = "fuzz/object.txt".to_string();
    let put = server
        .request(
            Method::PUT,
            &format!("/v1/environments/aws-test/buckets/{bucket}/objects/{key}"),
            Some(ADMIN),
        )
        .header("content-type", "text/plain")
        .body("for the fuzzer")
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.text().await.unwrap());
    let key_pair = make(server, "key-pairs", json!({"name": "fuzz-key"})).await;
    Seeded {
        instance,
        group,
        image,
        bucket,
        key,
        key_pair,
    }
}

/// schemathesis hooks. moto answers a continuation token it did not give with a fault of
/// its own (S3 answers 400), which overcast can only pass on as a 502: the object listing
/// gets no made-up `page_token`. Every other parameter of it is fuzzed.
const HOOKS: &str = r#"import schemathesis


@schemathesis.hook("map_query").apply_to(operation_id="object_list")
def without_page_token(ctx, query):
    if query:
        query.pop("page_token", None)
    return query
"#;

/// schemathesis' config: the path parameters draw often from what exists (and otherwise
/// from anything), so that every route is tried on both environments and on real
/// resources as well as on made-up ones.
fn write_config(dir: &Path, seeded: &Seeded) -> PathBuf {
    let list = |values: &[&str]| {
        let quoted: Vec<String> = values
            .iter()
            .map(|v| serde_json::to_string(v).unwrap())
            .collect();
        format!("[{}]", quoted.join(", "))
    };
    let dictionaries = [
        ("env", 0.9, list(&["aws-test", "local"])),
        (
            "id",
            0.5,
            list(&[
                &seeded.instance,
                &seeded.group,
                &seeded.image,
                &seeded.bucket,
            ]),
        ),
        ("bucket", 0.5, list(&[&seeded.bucket])),
        ("key", 0.5, list(&[&seeded.key])),
        ("name", 0.5, list(&[&seeded.key_pair])),
        (
            "action",
            0.5,
            list(&["start", "stop", "reboot", "terminate", "promote"]),
        ),
    ];
    let hooks = dir.join("hooks.py");
    std::fs::write(&hooks, HOOKS).unwrap();
    let mut config = format!("hooks = {}\n\n", serde_json::to_string(&hooks).unwrap());
    for (name, _, values) in &dictionaries {
        config += &format!("[dictionaries.{name}]\nvalues = {values}\n\n");
    }
    config += "[parameters]\n";
    for (name, probability, _) in &dictionaries {
        config += &format!(
            "\"path.{name}\" = {{ dictionary = \"{name}\", probability = {probability} }}\n"
        );
    }
    let path = dir.join("schemathesis.toml");
    std::fs::write(&path, config).unwrap();
    path
}

/// What the run did, read from schemathesis' NDJSON report: every request and answer, and
/// every check's outcome.
#[derive(Default)]
struct Figures {
    requests: usize,
    statuses: BTreeMap<u16, usize>,
    /// Failed checks by name, each with the operations it failed on.
    failures: BTreeMap<String, Vec<String>>,
    /// Error answers that are not overcast's JSON error shape: method, URL, status, body.
    not_error_shape: Vec<String>,
}

impl Figures {
    fn read(report: &Path) -> Figures {
        let mut figures = Figures::default();
        let text = std::fs::read_to_string(report).unwrap();
        for line in text.lines() {
            let event: Value = serde_json::from_str(line).unwrap();
            let Some(recorder) = event["ScenarioFinished"]["recorder"].as_object() else {
                continue;
            };
            let label = recorder["label"].as_str().unwrap_or_default();
            let interactions = recorder.get("interactions").and_then(Value::as_object);
            for interaction in interactions.into_iter().flat_map(|i| i.values()) {
                figures.answer(interaction);
            }
            let checks = recorder.get("checks").and_then(Value::as_object);
            for check in checks
                .into_iter()
                .flat_map(|c| c.values())
                .flat_map(|c| c.as_array().into_iter().flatten())
            {
                if check["status"] == "failure" {
                    let name = check["name"].as_str().unwrap_or_default().to_string();
                    let operations = figures.failures.entry(name).or_default();
                    if !operations.iter().any(|o| o == label) {
                        operations.push(label.to_string());
                    }
                }
            }
        }
        figures
    }

    /// Counts one answer and checks an error's shape: JSON with a code, a message and the
    /// request id. HEAD answers have no body to check.
    fn answer(&mut self, interaction: &Value) {
        self.requests += 1;
        let response = &interaction["response"];
        let Some(status) = response["status_code"].as_u64() else {
            return;
        };
        *self.statuses.entry(status as u16).or_default() += 1;
        let request = &interaction["request"];
        if status < 400 || request["method"] == "HEAD" {
            return;
        }
        let content_type = response["headers"]["content-type"][0]
            .as_str()
            .unwrap_or_default();
        let body = decode_body(&response["content"]);
        let error = serde_json::from_slice::<Value>(&body).ok();
        let error = error.as_ref().map(|b| &b["error"]);
        let shaped = content_type.starts_with("application/json")
            && error.is_some_and(|e| {
                e["code"].is_string()
                    && e["message"].is_string()
                    && e["request_id"].as_str().is_some_and(|id| !id.is_empty())
            });
        if !shaped {
            self.not_error_shape.push(format!(
                "{} {} -> {status} ({content_type}): {}",
                request["method"].as_str().unwrap_or_default(),
                request["uri"].as_str().unwrap_or_default(),
                String::from_utf8_lossy(&body)
            ));
        }
    }

    fn server_errors(&self) -> usize {
        self.statuses.range(500..).map(|(_, n)| n).sum()
    }
}

/// A recorded body: schemathesis keeps it base64-encoded.
fn decode_body(content: &Value) -> Vec<u8> {
    use base64::Engine;
    content["$base64"]
        .as_str()
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .unwrap_or_default()
}

/// The local VMs the run made (none is expected: the local environment has no image to
/// launch from unless the fuzzer imports one).
fn local_vms(data: &Path) -> usize {
    std::fs::read_dir(data.join("environments/local/instances"))
        .map(|entries| entries.count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_the_api_against_its_document() {
    let schemathesis = schemathesis();
    // Thousands of requests, many of them through moto: not beside another test that
    // loads it so.
    let _moto = heavy_use().await;
    let seed = std::env::var("OVERCAST_FUZZ_SEED")
        .map(|s| s.parse::<u64>().expect("OVERCAST_FUZZ_SEED is a number"))
        .unwrap_or(SEED);
    let dir = tempfile::tempdir().unwrap();
    // The local environment's VMs live in `dir/data`, where the reaper looks: a VM the
    // fuzzer made would outlive the server.
    let _reaper = Reaper(dir.path().to_path_buf());
    let data = dir.path().join("data");
    let server = TestServer::aws_with(new_account(), |config| {
        config.data_dir = Some(data.clone());
        config
            .environments
            .insert("local".into(), environment(json!({"provider": "qemu"})));
        config.operation_timeout_secs = OPERATION_WAIT_SECS;
        config.max_operation_timeout_secs = OPERATION_WAIT_SECS;
    })
    .await;
    let seeded = seed_resources(&server).await;
    let config = write_config(dir.path(), &seeded);
    let report = dir.path().join("report.ndjson");

    let started = Instant::now();
    let mut command = tokio::process::Command::new(&schemathesis);
    command
        .arg("--config-file")
        .arg(&config)
        .args(["run", &format!("{}/openapi.json", server.base)])
        .args(["--header", &format!("Authorization: Bearer {ADMIN}")])
        .args(["--checks", "all"])
        // Valid data refused: the document states the shape of each input, not every rule
        // (S3's bucket names, a selector that must select, a cidr or a source group, the
        // capabilities of each provider), and such input is answered 400 naming the field,
        // a status the other checks hold to the document.
        .args(["--exclude-checks", "positive_data_acceptance"])
        // Revoking tokens: the fuzzer would find its own token in the listing, revoke it
        // once it has made another admin, and spend the rest of the run on 401s.
        .args(["--exclude-operation-id", "token_revoke"])
        // Image checks: every reference the fuzzer draws names a registry on the internet
        // (Docker Hub's, mostly), which a hermetic run must not ask and cannot reach (a 503).
        // The `registry` tests check them against a real registry on loopback.
        .args(["--exclude-operation-id-regex", "^image_(check|head)$"])
        // The dictionaries overwrite path parameters that negative mode drew, and a negative
        // case left with nothing negated is dropped: on an operation whose only inputs are
        // path parameters (the HEAD of an object) hypothesis can count too many drops.
        .args(["--suppress-health-check", "filter_too_much"])
        .args(["--seed", &seed.to_string()])
        .args(["--max-examples", &MAX_EXAMPLES.to_string()])
        // One worker: the same seed makes the same requests in the same order.
        .args(["--workers", "1"])
        .args(["--request-timeout", "60"])
        .args(["--generation-database", "none"])
        .args(["--report", "ndjson", "--report-ndjson-path"])
        .arg(&report)
        .arg("--no-color")
        // schemathesis keeps its state in its working dir.
        .current_dir(dir.path())
        .kill_on_drop(true);
    let run = tokio::time::timeout(RUN_LIMIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("schemathesis ran past {RUN_LIMIT:?}"))
        .expect("schemathesis starts");
    let took = started.elapsed();
    let output = String::from_utf8_lossy(&run.stdout);
    let figures = Figures::read(&report);

    println!(
        "schemathesis (seed {seed}, {MAX_EXAMPLES} examples per operation): {} requests in {:.0} s; \
         statuses {:?}; 5xx: {}; failed checks: {:?}; errors not in overcast's shape: {}; local VMs made: {}",
        figures.requests,
        took.as_secs_f64(),
        figures.statuses,
        figures.server_errors(),
        figures.failures,
        figures.not_error_shape.len(),
        local_vms(&data),
    );
    let summary = output
        .find("SUMMARY")
        .map_or(&output[..], |at| &output[at..]);
    assert!(
        run.status.success(),
        "schemathesis failed ({}):\n{output}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(figures.failures.is_empty(), "{summary}");
    assert_eq!(figures.server_errors(), 0, "{summary}");
    assert!(
        figures.not_error_shape.is_empty(),
        "errors not in overcast's shape:\n{}",
        figures.not_error_shape.join("\n")
    );
    // A run that reached nothing (a server that refused every token, say) proves nothing.
    let successes: usize = figures.statuses.range(200..300).map(|(_, n)| n).sum();
    assert!(
        figures.requests >= 1000 && successes >= 100,
        "too little was tried: {} requests, {successes} answered 2xx\n{summary}",
        figures.requests
    );
}
