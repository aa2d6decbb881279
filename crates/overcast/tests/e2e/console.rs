//! The web console in a real browser: headless Chromium over WebDriver, against a server
//! on a free port with a simulated environment. Sign-in and its cookie, the fleet filtered,
//! a bulk stop of a stage planned, confirmed and followed live (read back through the
//! API), a viewer without change controls whose forged change is refused, CSRF, an
//! object round trip byte for byte, and the fleet page at 10,000 instances. Screenshots go
//! to the target dir's `tmp/console`, as the test's artifacts.

use overcast_test_utils::browser::Browser;
use overcast_test_utils::server::environment;
use overcast_test_utils::{TestServer, ADMIN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::time::Instant;

const ENV: &str = "sim";
const ORG: &str = "web";

/// A server whose simulated environment starts with `instances` running instances of
/// org `web`, spread over two regions and the stages dev, test and prod (protected).
/// Stops take 2 s and every call 100 ms, in batches of 2, so an operation is seen running
/// with some of its targets done.
async fn server(instances: u32) -> TestServer {
    TestServer::built_with(|config| {
        let settings = json!({"provider": "sim", "regions": ["sim-1", "sim-2"],
            "instances": instances, "default_org": ORG, "stopping_secs": 2,
            "max_ids_per_call": 2, "latency_ms": 100});
        config
            .environments
            .insert(ENV.into(), environment(settings));
    })
    .await
}

/// Where the screenshots of this run go.
fn artifact(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console");
    let path = dir.join(name);
    println!("artifact: {}", path.display());
    path
}

/// Signs in with `token`; waits for the fleet table, the page a sign-in opens.
async fn sign_in(browser: &Browser, server: &TestServer, token: &str) {
    browser.sign_in(&server.base, token).await;
    browser
        .wait_until(
            "the fleet table",
            "document.querySelector('#fleet-table tbody tr')",
        )
        .await;
}

/// The instances of a stage as the API answers them, read at the backend.
async fn stage_states(server: &TestServer, stage: &str) -> Vec<String> {
    let (status, page) = server
        .call(
            Method::GET,
            &format!("/v1/environments/{ENV}/instances?stage={stage}&limit=500&fresh=true"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["state"].as_str().unwrap().to_string())
        .collect()
}

/// A request from the page itself, with its session cookie: `[status, body]`.
async fn page_fetch(browser: &Browser, method: &str, path: &str, headers: Value) -> Value {
    browser
        .script_async(
            "const [method, path, headers, done] = arguments;
             fetch(path, {method, headers, body: method === 'GET' ? undefined : '{\"ids\": [\"i-00000001\"]}'})
               .then(async r => done([r.status, await r.text()]))
               .catch(e => done([0, String(e)]));",
            json!([method, path, headers]),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_stops_a_stage_with_its_plan_confirmed_and_followed_live() {
    let server = server(24).await;
    let token = server.token(ORG, "operator").await;
    let browser = Browser::start().await;
    sign_in(&browser, &server, &token).await;

    // The session is in a cookie no script can read.
    let cookies = browser.script("return document.cookie", json!([])).await;
    assert!(
        !cookies.as_str().unwrap().contains("overcast_session"),
        "{cookies}"
    );
    browser
        .wait_until(
            "the whole fleet listed",
            "document.querySelectorAll('#fleet-table tbody tr[data-instance-id]').length === 24",
        )
        .await;

    // Filter the fleet by stage: 8 of 24 are prod.
    browser.fill("#filter-stage", "prod").await;
    browser.click("#filter-apply").await;
    browser
        .wait_until(
            "the prod instances alone",
            "document.querySelectorAll('#fleet-table tbody tr[data-instance-id]').length === 8",
        )
        .await;
    let total = browser.find("#fleet-total").await.text().await;
    assert!(total.contains('8'), "{total}");
    let picture = browser.find("#fleet-picture").await.text().await;
    assert!(picture.contains("prod"), "{picture}");
    browser.screenshot(&artifact("fleet.png")).await;

    // A bulk stop of the stage: the plan first, with the confirmation the API asks for.
    browser.click("[data-bulk='stop']").await;
    browser
        .wait_until("the plan", "document.querySelector('#plan').open")
        .await;
    let targets = browser.find("#plan-targets").await.text().await;
    assert_eq!(targets.matches("i-").count(), 8, "{targets}");
    let calls = browser.find("#plan-calls").await.text().await;
    assert!(
        calls.contains("sim-1") && calls.contains("sim-2"),
        "{calls}"
    );
    let expected = browser.find("#plan-confirm-expected").await.text().await;
    assert_eq!(expected, format!("{ENV}/prod"));
    let go = browser.find("#plan-go").await;
    assert!(
        go.attribute("disabled").await.is_some(),
        "go before confirming"
    );
    assert!(
        stage_states(&server, "prod")
            .await
            .iter()
            .all(|s| s == "running"),
        "the plan changed nothing"
    );
    browser.fill("#plan-confirm-text", &expected).await;
    browser.click("#plan-go").await;

    // Live progress, without reloading the page.
    browser
        .wait_until(
            "the operation running",
            "document.querySelector('#op-status') && document.querySelector('#op-status').textContent.trim() === 'running'",
        )
        .await;
    let marker = browser
        .script(
            "window.__sameDocument = true; return location.hash",
            json!([]),
        )
        .await;
    assert!(
        marker.as_str().unwrap().starts_with("#/operations/"),
        "{marker}"
    );
    // Part done, still running: the page follows the operation as its batches end.
    browser
        .wait_until(
            "some targets done while the operation runs",
            "document.querySelector('#op-status').textContent.trim() === 'running' && document.querySelector('#op-progress').value > 0",
        )
        .await;
    browser.screenshot(&artifact("operation-running.png")).await;
    browser
        .wait_until(
            "the operation to succeed",
            "document.querySelector('#op-status').textContent.trim() === 'succeeded'",
        )
        .await;
    assert_eq!(
        browser
            .script("return window.__sameDocument === true", json!([]))
            .await,
        json!(true),
        "the page was not reloaded"
    );
    let progress = browser
        .script(
            "const p = document.querySelector('#op-progress'); return [p.value, p.max]",
            json!([]),
        )
        .await;
    assert_eq!(progress, json!([8, 8]));
    assert_eq!(browser.count("#op-results tr[data-target]").await, 8);

    // At the backend: prod stopped, the rest still running.
    assert_eq!(stage_states(&server, "prod").await, vec!["stopped"; 8]);
    assert!(stage_states(&server, "dev")
        .await
        .iter()
        .all(|s| s == "running"));

    // The audit log holds the stop as the token's.
    let (_, audit) = server
        .call(Method::GET, "/v1/audit?limit=50", Some(ADMIN), None)
        .await;
    let stop = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["route"] == "/v1/environments/{env}/instances/stop" && e["outcome"] != "denied")
        .unwrap_or_else(|| panic!("no stop in the audit log: {audit}"));
    assert_eq!(stop["org"], ORG, "{stop}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_viewers_see_no_changes_and_sessions_guard_against_forgery() {
    let server = server(6).await;
    let viewer = server.token(ORG, "viewer").await;
    let operator = server.token(ORG, "operator").await;
    let first = {
        let (_, page) = server
            .call(
                Method::GET,
                &format!("/v1/environments/{ENV}/instances"),
                Some(ADMIN),
                None,
            )
            .await;
        page["items"][0]["id"].as_str().unwrap().to_string()
    };

    // A bad token is refused on the sign-in form.
    let browser = Browser::start().await;
    browser.goto(&format!("{}/console/", server.base)).await;
    browser.fill("#signin-token", "oc_not_a_token").await;
    browser.click("#signin-submit").await;
    browser
        .wait_until(
            "the sign-in error",
            "document.querySelector('#signin-error').textContent.length > 0",
        )
        .await;

    // A viewer sees the fleet and no control that changes anything.
    sign_in(&browser, &server, &viewer).await;
    assert_eq!(browser.count("[data-change]").await, 0);
    assert_eq!(browser.count("[data-bulk]").await, 0);
    browser
        .goto(&format!(
            "{}/console/#/instances/{ENV}/{first}",
            server.base
        ))
        .await;
    browser.find("#serial-console").await;
    assert_eq!(
        browser.count("[data-change]").await,
        0,
        "on the instance page"
    );

    // A change forged from the viewer's page, CSRF token and all, is refused by the server.
    let session = page_fetch(&browser, "GET", "/console/session", json!({})).await;
    let csrf: Value = serde_json::from_str(session[1].as_str().unwrap()).unwrap();
    let csrf = csrf["csrf_token"].as_str().unwrap().to_string();
    let stop = format!("/v1/environments/{ENV}/instances/stop");
    let forged = page_fetch(
        &browser,
        "POST",
        &stop,
        json!({"Content-Type": "application/json", "X-CSRF-Token": csrf}),
    )
    .await;
    assert_eq!(forged[0], 403, "{forged}");

    // Sign out: the old cookie is worth nothing after.
    browser.click("#signout").await;
    browser.find("#signin-token").await;
    let after = page_fetch(&browser, "GET", "/v1/whoami", json!({})).await;
    assert_eq!(after[0], 401, "{after}");

    // An operator's session: a change without the CSRF token, or with another session's,
    // is refused and does nothing; with its own it goes through.
    sign_in(&browser, &server, &operator).await;
    let missing = page_fetch(
        &browser,
        "POST",
        &stop,
        json!({"Content-Type": "application/json"}),
    )
    .await;
    assert_eq!(missing[0], 403, "{missing}");
    assert!(
        missing[1].as_str().unwrap().contains("csrf_token_invalid"),
        "{missing}"
    );
    let wrong = page_fetch(
        &browser,
        "POST",
        &stop,
        json!({"Content-Type": "application/json", "X-CSRF-Token": csrf}),
    )
    .await;
    assert_eq!(wrong[0], 403, "another session's token: {wrong}");
    let (_, instance) = server
        .call(
            Method::GET,
            &format!("/v1/environments/{ENV}/instances/{first}?fresh=true"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(instance["state"], "running", "refused changes did nothing");
    assert!(
        browser.count("[data-bulk='stop']").await > 0,
        "an operator has the controls"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_uploads_and_downloads_an_object_byte_for_byte() {
    let server = server(0).await;
    let token = server.token(ORG, "operator").await;
    let (status, made) = server
        .call(
            Method::POST,
            &format!("/v1/environments/{ENV}/buckets?timeout=30"),
            Some(&token),
            Some(json!({"name": "console-files"})),
        )
        .await;
    assert!(status.is_success(), "{made}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.bin");
    let bytes = overcast_test_utils::noise_mib(3);
    std::fs::write(&file, &bytes).unwrap();
    let digest = hex::encode(Sha256::digest(&bytes));

    let browser = Browser::start().await;
    browser.sign_in(&server.base, &token).await;
    browser
        .goto(&format!(
            "{}/console/#/objects/{ENV}/console-files/reports/",
            server.base
        ))
        .await;
    // The folder's listing drawn, the form is there to stay.
    browser
        .wait_until(
            "the empty folder listed",
            "document.body.innerText.includes('Nothing under this prefix')",
        )
        .await;
    browser
        .send_keys("#upload-file", file.to_str().unwrap())
        .await;
    browser
        .wait_until(
            "the file chosen",
            "document.querySelector('#upload-file').files.length === 1",
        )
        .await;
    browser.click("#upload-submit").await;
    browser
        .wait_until(
            "the upload to end",
            "document.querySelector('#upload-status').textContent.includes('Uploaded')",
        )
        .await;
    let progress = browser
        .script("const p = document.querySelector('#upload-progress'); return p.value >= p.max && p.max > 0", json!([]))
        .await;
    assert_eq!(progress, json!(true), "the progress bar is full");

    // At the backend, through the API: the same bytes under the prefix.
    let stored = server
        .request(
            Method::GET,
            &format!("/v1/environments/{ENV}/buckets/console-files/objects/reports/report.bin"),
            Some(&token),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), StatusCode::OK);
    assert_eq!(
        stored.bytes().await.unwrap(),
        bytes,
        "uploaded byte for byte"
    );

    // Downloaded through the page's own link, with the session: the same digest.
    browser
        .wait_until(
            "the object listed",
            "document.querySelector(\"tr[data-key='reports/report.bin'] a.download\")",
        )
        .await;
    let downloaded = browser
        .script_async(
            "const done = arguments[0];
             const link = document.querySelector(\"tr[data-key='reports/report.bin'] a.download\");
             fetch(link.href).then(r => r.arrayBuffer()).then(b => crypto.subtle.digest('SHA-256', b))
               .then(d => done(Array.from(new Uint8Array(d)).map(x => x.toString(16).padStart(2, '0')).join('')))
               .catch(e => done(String(e)));",
            json!([]),
        )
        .await;
    assert_eq!(downloaded, json!(digest), "downloaded byte for byte");
}

/// The fleet page at 10,000 simulated instances: the server's time for the two requests
/// the page makes, and the browser's time from navigation to the table drawn. Figures,
/// printed; nothing is asserted of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_fleet_page_at_ten_thousand_instances() {
    let server = server(10_000).await;
    let token = server.token(ORG, "operator").await;
    let mut server_ms = Vec::new();
    for path in [
        format!("/v1/environments/{ENV}/instances?limit=100"),
        format!("/v1/environments/{ENV}/fleet"),
    ] {
        // The first read fills the inventory; the figure is a warm read's.
        server.call(Method::GET, &path, Some(&token), None).await;
        let started = Instant::now();
        let (status, _) = server.call(Method::GET, &path, Some(&token), None).await;
        assert_eq!(status, StatusCode::OK);
        server_ms.push((path, started.elapsed().as_secs_f64() * 1000.0));
    }
    let browser = Browser::start().await;
    sign_in(&browser, &server, &token).await;
    let total = browser.find("#fleet-total").await.text().await;
    assert!(total.replace(',', "").contains("10000"), "{total}");
    browser
        .goto(&format!("{}/console/#/operations", server.base))
        .await;
    browser
        .goto(&format!("{}/console/#/fleet/{ENV}", server.base))
        .await;
    browser.script("location.reload()", json!([])).await;
    browser
        .wait_until(
            "the fleet drawn",
            "performance.getEntriesByName('fleet-rendered').length > 0",
        )
        .await;
    let timings = browser
        .script(
            "const api = performance.getEntriesByType('resource')
                 .filter(r => r.name.includes('/instances?') || r.name.includes('/fleet'))
                 .map(r => [new URL(r.name).pathname, r.responseEnd - r.requestStart]);
             return [performance.getEntriesByName('fleet-rendered')[0].startTime, api];",
            json!([]),
        )
        .await;
    assert_eq!(
        browser
            .count("#fleet-table tbody tr[data-instance-id]")
            .await,
        100
    );
    let foreign = browser
        .script(
            "return performance.getEntriesByType('resource').map(r => r.name)
                 .filter(n => !n.startsWith(location.origin));",
            json!([]),
        )
        .await;
    assert_eq!(foreign, json!([]), "no request leaves the server");
    for (path, ms) in &server_ms {
        println!("FIGURE server: GET {path} at 10,000 instances: {ms:.1} ms");
    }
    println!(
        "FIGURE browser: navigation to fleet table drawn: {:.0} ms",
        timings[0].as_f64().unwrap()
    );
    for request in timings[1].as_array().unwrap() {
        println!(
            "FIGURE browser: {} request to response end: {:.1} ms",
            request[0],
            request[1].as_f64().unwrap()
        );
    }
    browser.resize(390, 844).await;
    browser.screenshot(&artifact("fleet-phone.png")).await;
}

/// The operation events the console follows: each change of a running bulk stop (8
/// instances, two batches per region) as an `operation` event, in order, and the stream's
/// end once the operation has ended. Another org's operation is a 404 before any stream
/// starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operation_events_follow_a_running_operation_to_its_end() {
    use futures::StreamExt;
    let server = server(24).await;
    let token = server.token(ORG, "operator").await;
    let response = server
        .request(
            Method::POST,
            &format!("/v1/environments/{ENV}/instances/stop"),
            Some(&token),
        )
        .header("prefer", "respond-async")
        .json(&json!({"stage": "dev"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let operation: Value = response.json().await.unwrap();
    let id = operation["id"].as_str().unwrap();
    let path = format!("/v1/operations/{id}/events");

    let stranger = server.token("other", "viewer").await;
    let (status, _) = server.call(Method::GET, &path, Some(&stranger), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let response = server
        .request(Method::GET, &path, Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    let mut body = response.bytes_stream();
    let read = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while let Some(chunk) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
    })
    .await;
    assert!(read.is_ok(), "the stream ends with the operation:\n{text}");
    let events: Vec<Value> = text
        .split("\n\n")
        .filter(|event| event.starts_with("event: operation"))
        .map(|event| {
            let data = event
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap();
            serde_json::from_str(data).unwrap()
        })
        .collect();
    let statuses: Vec<&str> = events
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert!(
        statuses.len() >= 2,
        "a running state, then its end: {statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&"succeeded"), "{statuses:?}");
    assert!(
        statuses[..statuses.len() - 1]
            .iter()
            .all(|s| *s == "pending" || *s == "running"),
        "{statuses:?}"
    );
    let last = events.last().unwrap();
    assert_eq!(last["progress"], json!({"done": 8, "total": 8}));
    let done: Vec<&Value> = events.iter().map(|e| &e["progress"]["done"]).collect();
    assert!(
        events.iter().any(|e| e["status"] == "running"
            && e["progress"]["done"]
                .as_u64()
                .is_some_and(|d| d > 0 && d < 8)),
        "a batch's end is an event of its own: {statuses:?} {done:?}"
    );
    assert!(
        events.windows(2).all(|pair| pair[0] != pair[1]),
        "an event per change"
    );
}

/// A secret's value appears only on an explicit reveal, which the audit log records; a new
/// key pair's private key is shown once, and is gone when the page is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_reveals_a_secret_on_request_and_shows_a_private_key_once() {
    let server = server(0).await;
    let token = server.token(ORG, "operator").await;
    let value = "hunter2-console-only";
    let (status, made) = server
        .call(
            Method::POST,
            &format!("/v1/environments/{ENV}/secrets?timeout=30"),
            Some(&token),
            Some(json!({"name": "db-password", "value": value, "description": "the database's"})),
        )
        .await;
    assert!(status.is_success(), "{made}");

    let browser = Browser::start().await;
    browser.sign_in(&server.base, &token).await;
    browser
        .goto(&format!("{}/console/#/secrets/{ENV}", server.base))
        .await;
    browser
        .wait_until(
            "the secret listed",
            "document.querySelector(\"tr[data-secret='db-password']\")",
        )
        .await;
    let page = browser
        .script("return document.body.innerText", json!([]))
        .await;
    assert!(
        !page.as_str().unwrap().contains(value),
        "no value before the reveal"
    );
    let (_, before) = server
        .call(Method::GET, "/v1/audit?limit=100", Some(ADMIN), None)
        .await;
    let reveals = |audit: &Value| {
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["route"] == "/v1/environments/{env}/secrets/{name}/value")
            .count()
    };
    assert_eq!(reveals(&before), 0);
    browser
        .click("tr[data-secret='db-password'] button.reveal")
        .await;
    browser
        .wait_until(
            "the value shown",
            &format!("document.querySelector('pre.secret') && document.querySelector('pre.secret').textContent === '{value}'"),
        )
        .await;
    let (_, after) = server
        .call(Method::GET, "/v1/audit?limit=100", Some(ADMIN), None)
        .await;
    assert_eq!(reveals(&after), 1, "the reveal is audited");

    browser
        .goto(&format!("{}/console/#/key-pairs/{ENV}", server.base))
        .await;
    browser.fill("#key-name", "deploy").await;
    browser.click("#key-form button[type='submit']").await;
    browser
        .wait_until(
            "the private key shown",
            "document.querySelector('#private-key') && document.querySelector('#private-key').textContent.includes('PRIVATE KEY')",
        )
        .await;
    let download = browser.find("#private-key-download").await;
    assert_eq!(
        download.attribute("download").await.as_deref(),
        Some("deploy.pem")
    );
    browser
        .wait_until(
            "the key listed",
            "document.querySelector(\"tr[data-key-name='deploy']\")",
        )
        .await;
    browser
        .goto(&format!("{}/console/#/fleet/{ENV}", server.base))
        .await;
    browser
        .goto(&format!("{}/console/#/key-pairs/{ENV}", server.base))
        .await;
    browser
        .wait_until(
            "the key listed again",
            "document.querySelector(\"tr[data-key-name='deploy']\")",
        )
        .await;
    assert_eq!(browser.count("#private-key").await, 0, "shown once");
}

/// A real VM made from the console: the create form (machine type, image, user data), its
/// operation followed to the end, then the instance's serial console followed live until
/// the user data's line appears. QEMU boots the test image under `overcast serve`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_creates_a_local_vm_and_follows_its_serial_console() {
    use crate::BIN;
    use overcast_test_utils::process::{serve, write_local_config};
    use overcast_test_utils::qemu::{import_test_image, qemu_pid, Reaper};

    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper(dir.path().to_path_buf());
    let served = serve(BIN, &write_local_config(dir.path()));
    let image = import_test_image(&served).await;

    let browser = Browser::start().await;
    browser.sign_in(&served.base, ADMIN).await;
    browser
        .goto(&format!("{}/console/#/create/local", served.base))
        .await;
    browser.fill("#create-name", "from-console").await;
    browser
        .wait_until(
            "the machine types",
            "document.querySelector(\"#create-machine-type option[value='tiny']\")",
        )
        .await;
    browser
        .script(
            "const select = document.querySelector('#create-machine-type');
             select.value = 'tiny'; select.dispatchEvent(new Event('change'));",
            json!([]),
        )
        .await;
    browser.fill("#create-image", &image).await;
    browser
        .fill(
            "#create-user-data",
            "#!/bin/sh\necho \"CONSOLE-MARKER on $(hostname)\"\n",
        )
        .await;
    browser.click("#create-submit").await;
    browser
        .wait_until(
            "the launch to succeed",
            "document.querySelector('#op-status') && document.querySelector('#op-status').textContent.trim() === 'succeeded'",
        )
        .await;
    browser.click("#op-links a").await;
    let id = browser
        .script("return location.hash.split('/').pop()", json!([]))
        .await;
    let id = id.as_str().unwrap().to_string();
    assert!(
        qemu_pid(dir.path(), &id).is_some(),
        "a QEMU process runs {id}"
    );
    browser
        .wait_until(
            "the user data's line on the serial console",
            "document.querySelector('#serial-console').textContent.includes('CONSOLE-MARKER on from-console')",
        )
        .await;
    let (_, vm) = served
        .call(
            Method::GET,
            &format!("/v1/environments/local/instances/{id}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(vm["state"], "running", "{vm}");
    assert_eq!(vm["name"], "from-console", "{vm}");
}
