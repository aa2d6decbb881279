//! Several `overcast serve` processes on one PostgreSQL: a killed server's operation taken
//! over and finished by another (against moto, the shared ground truth), a paused one
//! fenced out, cancels and waits from any server, claims under contention, the admin
//! bootstrap of servers starting together, and what stays per server. SQLite refuses a
//! second server.

use crate::BIN;
use futures::StreamExt;
use overcast_test_utils::metrics::{backend_calls, counter};
use overcast_test_utils::moto::{
    count_in_state, ec2_client, heavy_use, launch_fleet, moto_url, new_account, role_arn, REGIONS,
};
use overcast_test_utils::postgres::fresh_database;
use overcast_test_utils::process::{refused_to_serve, serve_with, write_local_config, Served};
use overcast_test_utils::ADMIN;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Seconds a hold lasts without a heartbeat, in these tests.
const LEASE_SECS: u64 = 3;

/// A server's config on the shared database, its own data dir under `dir`, with `envs`
/// (TOML environment tables) and a name.
fn write_config(dir: &Path, database_url: &str, envs: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("overcast.toml");
    let config = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"{data}\"\ndatabase_url = \"{database_url}\"\n\
         operation_lease_secs = {LEASE_SECS}\n\n{envs}",
        data = dir.join("data").display(),
    );
    std::fs::write(&path, config).unwrap();
    path
}

/// A simulated environment whose `slow` action takes `latency_ms` a call, on
/// `per_call` instances at most.
fn sim_env(slow: &str, latency_ms: u64, per_call: usize) -> String {
    format!(
        "[environments.sim]\nprovider = \"sim\"\nregions = [\"sim-1\"]\ninstances = 600\n\
         pending_secs = 0.0\nstopping_secs = 0.0\nmax_ids_per_call = {per_call}\n\
         latency_ms = {latency_ms}\nfault_actions = [\"{slow}\"]\n"
    )
}

/// Starts `n` servers named `server-a`, `server-b`, ... together on one database.
fn servers(root: &Path, database_url: &str, envs: &str, n: usize) -> Vec<Served> {
    let configs: Vec<(String, PathBuf)> = (0..n)
        .map(|i| {
            let name = format!("server-{}", (b'a' + i as u8) as char);
            let config = write_config(&root.join(&name), database_url, envs);
            (name, config)
        })
        .collect();
    let started: Vec<_> = configs
        .into_iter()
        .map(|(name, config)| {
            std::thread::spawn(move || {
                serve_with(
                    BIN,
                    &config,
                    &[("OVERCAST_SERVER_NAME", name.as_str())],
                    &[],
                )
            })
        })
        .collect();
    started.into_iter().map(|s| s.join().unwrap()).collect()
}

/// Starts a change as the admin without waiting for it; answers its operation id.
async fn start_change(server: &Served, method: Method, path: &str, body: Value) -> String {
    let op: Value = server
        .request(method, path, Some(ADMIN))
        .header("prefer", "respond-async")
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    op["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{op}"))
        .to_string()
}

/// Starts a bulk stop of `stage` on `server` and answers its id once `done` of its
/// targets are recorded.
async fn stop_under_way(server: &Served, stage: &str, done: u64) -> String {
    let op_id = start_change(
        server,
        Method::POST,
        "/v1/environments/sim/instances/stop",
        json!({"stage": stage}),
    )
    .await;
    server
        .operation_until(&op_id, Duration::from_millis(20), |op| done_of(op) >= done)
        .await;
    op_id
}

/// The operation once it has ended, waited for on `server` (whichever runs it).
async fn ended_on(server: &Served, id: &str) -> Value {
    let (status, op) = server
        .call(
            Method::GET,
            &format!("/v1/operations/{id}?timeout=120"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{op}");
    op
}

/// Whether operation `id` has ended, as `asked` says.
async fn finished(asked: &Served, id: &str) -> bool {
    let (_, op) = asked
        .call(
            Method::GET,
            &format!("/v1/operations/{id}"),
            Some(ADMIN),
            None,
        )
        .await;
    op["finished_at"].is_string()
}

/// The server (by id) that holds operation `id`, as `GET /v1/servers` on `asked` says.
async fn holder_of(asked: &Served, id: &str) -> Option<String> {
    let (status, servers) = asked
        .call(Method::GET, "/v1/servers", Some(ADMIN), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{servers}");
    servers.as_array().unwrap().iter().find_map(|s| {
        s["operations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o == id)
            .then(|| s["id"].as_str().unwrap().to_string())
    })
}

/// The id `GET /v1/servers` on `server` gives itself.
async fn own_id(server: &Served) -> String {
    let (_, servers) = server
        .call(Method::GET, "/v1/servers", Some(ADMIN), None)
        .await;
    servers
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["this"] == true)
        .map(|s| s["id"].as_str().unwrap().to_string())
        .unwrap()
}

fn done_of(op: &Value) -> u64 {
    op["progress"]["done"].as_u64().unwrap_or(0)
}

fn signal(server: &Served, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn lease_events(metrics: &str, event: &str) -> u64 {
    counter(
        metrics,
        "overcast_operation_leases_total",
        &[("event", event)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_one_sqlite_database_is_refused_naming_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_local_config(dir.path());
    let first = serve_with(BIN, &config, &[], &[]);
    let (status, _) = first.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let stderr = refused_to_serve(BIN, &config);
    assert!(
        stderr.contains("uses this SQLite database") && stderr.contains("PostgreSQL"),
        "{stderr}"
    );
    // The first one is unharmed; once it is gone, a server starts there again.
    let (status, _) = first.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    drop(first);
    let again = serve_with(BIN, &config, &[], &[]);
    let (status, _) = again.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_servers_bulk_stop_is_finished_by_another_acting_on_each_target_once() {
    const COUNT: usize = 2500;
    let _moto = heavy_use().await;
    let root = tempfile::tempdir().unwrap();
    let account = new_account();
    let ec2 = ec2_client(&account, REGIONS[0]).await;
    launch_fleet(&ec2, COUNT as i32, "dev").await;
    let (database_url, _) = fresh_database("takeover");
    let aws = format!(
        "[environments.aws-test]\nprovider = \"aws\"\nregions = [\"{}\", \"{}\"]\n\
         endpoint_url = \"{}\"\nrole_arn = \"{}\"\n",
        REGIONS[0],
        REGIONS[1],
        moto_url(),
        role_arn(&account)
    );
    // Three servers started together: one admin token between them, three live servers.
    let mut started = servers(root.path(), &database_url, &aws, 3);
    let (c, b) = (started.pop().unwrap(), started.pop().unwrap());
    let a = started.pop().unwrap();
    let (status, tokens) = b.call(Method::GET, "/v1/tokens", Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["items"].as_array().unwrap().len(), 1, "{tokens}");
    let (_, listed) = c.call(Method::GET, "/v1/servers", Some(ADMIN), None).await;
    assert_eq!(listed.as_array().unwrap().len(), 3, "{listed}");
    assert!(listed[0]["version"].is_string() && listed[0]["heartbeat_at"].is_string());

    let op_id = start_change(
        &a,
        Method::POST,
        "/v1/environments/aws-test/instances/stop",
        json!({"stage": "dev"}),
    )
    .await;
    let now = a
        .operation_until(&op_id, Duration::from_millis(20), |op| done_of(op) >= 1000)
        .await;
    let done = done_of(&now);
    let a_id = own_id(&a).await;
    drop(a);
    let killed = Instant::now();
    assert!(
        (1000..COUNT as u64).contains(&done),
        "killed after the first batch was recorded and before the end: {done} of {COUNT}"
    );
    let taker = loop {
        match holder_of(&b, &op_id).await {
            Some(holder) if holder != a_id => break holder,
            _ if killed.elapsed() > Duration::from_secs(60) => panic!("nobody took {op_id} over"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    println!(
        "takeover after SIGKILL (moto, lease {LEASE_SECS} s): {:.2} s, by {taker}",
        killed.elapsed().as_secs_f64()
    );

    // Waited for on the server that does not run it.
    let waiter = if taker == own_id(&b).await { &c } else { &b };
    let ended = ended_on(waiter, &op_id).await;
    assert_eq!(ended["status"], "succeeded", "{}", ended["error"]);
    assert_eq!(count_in_state(&ec2, "stopped").await, COUNT);
    let results = ended["results"].as_array().unwrap();
    let targets: std::collections::HashSet<_> = results
        .iter()
        .map(|r| r["target"].as_str().unwrap())
        .collect();
    assert_eq!((results.len(), targets.len()), (COUNT, COUNT));
    let (b_metrics, c_metrics) = (b.metrics().await, c.metrics().await);
    let stops = backend_calls(&b_metrics, &[("action", "StopInstances")])
        + backend_calls(&c_metrics, &[("action", "StopInstances")]);
    assert!(
        stops <= 2,
        "the taker stopped only what was not recorded (the batch in flight at most again): {stops} calls"
    );
    assert_eq!(
        lease_events(&b_metrics, "takeover") + lease_events(&c_metrics, "takeover"),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancels_and_waits_reach_across_servers_and_per_host_things_stay_put() {
    let root = tempfile::tempdir().unwrap();
    let (database_url, _) = fresh_database("cancel");
    let envs = sim_env("StopInstances", 300, 10)
        + "\n[environments.box]\nprovider = \"sim\"\nserved_by = \"server-a\"\n";
    let mut started = servers(root.path(), &database_url, &envs, 3);
    let (c, b) = (started.pop().unwrap(), started.pop().unwrap());
    let a = started.pop().unwrap();

    // A slow bulk stop on A, cancelled on B, waited for on C.
    let op_id = stop_under_way(&a, "dev", 10).await;
    let cancelled = b
        .request(
            Method::POST,
            &format!("/v1/operations/{op_id}/cancel"),
            Some(ADMIN),
        )
        .header("prefer", "respond-async")
        .send()
        .await
        .unwrap();
    assert!(cancelled.status().is_success(), "{}", cancelled.status());
    let ended = ended_on(&c, &op_id).await;
    assert_eq!(ended["status"], "cancelled", "{ended}");
    assert!(done_of(&ended) < 200, "it stopped early: {ended}");
    assert_eq!(holder_of(&c, &op_id).await, None);

    // A page token from one server pages on another.
    let (_, first) = a
        .call(
            Method::GET,
            "/v1/environments/sim/instances?limit=5",
            Some(ADMIN),
            None,
        )
        .await;
    let token = first["next_page_token"].as_str().unwrap();
    let (status, second) = b
        .call(
            Method::GET,
            &format!("/v1/environments/sim/instances?limit=5&page_token={token}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let last = first["items"][4]["id"].as_str().unwrap();
    let next = second["items"][0]["id"].as_str().unwrap();
    assert!(
        next > last,
        "page two goes on after page one: {last} then {next}"
    );

    // An environment one server drives is listed as served there by the others, who
    // refuse its requests.
    let (_, on_b) = b
        .call(Method::GET, "/v1/environments/box", Some(ADMIN), None)
        .await;
    assert_eq!(on_b["served_by"], "server-a", "{on_b}");
    let (status, refused) = b
        .call(
            Method::GET,
            "/v1/environments/box/instances",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"]["code"], "served_elsewhere");
    let (status, _) = a
        .call(
            Method::GET,
            "/v1/environments/box/instances",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_server_does_not_act_again_once_its_lease_ran_out() {
    let root = tempfile::tempdir().unwrap();
    let (database_url, _) = fresh_database("pause");
    let mut started = servers(
        root.path(),
        &database_url,
        &sim_env("StopInstances", 300, 10),
        2,
    );
    let b = started.pop().unwrap();
    let a = started.pop().unwrap();
    let op_id = stop_under_way(&a, "dev", 20).await;
    let before = backend_calls(&a.metrics().await, &[("action", "StopInstances")]);
    signal(&a, "STOP");
    let paused = Instant::now();
    let b_id = own_id(&b).await;
    while holder_of(&b, &op_id).await.as_ref() != Some(&b_id) {
        assert!(
            paused.elapsed() < Duration::from_secs(60),
            "B never took over"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ended = ended_on(&b, &op_id).await;
    assert_eq!(ended["status"], "succeeded", "{ended}");

    signal(&a, "CONT");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let metrics = a.metrics().await;
    let after = backend_calls(&metrics, &[("action", "StopInstances")]);
    assert!(
        after <= before + 1,
        "the paused server made at most the call in flight when paused: {before} then {after}"
    );
    assert_eq!(lease_events(&metrics, "lost"), 1, "{}", a.log());
    let again = ended_on(&b, &op_id).await;
    assert_eq!(
        again["results"], ended["results"],
        "its late writes were refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_servers_many_operations_are_claimed_by_the_others_each_once() {
    const OPERATIONS: usize = 200;
    let root = tempfile::tempdir().unwrap();
    let (database_url, _) = fresh_database("claims");
    let mut started = servers(
        root.path(),
        &database_url,
        &sim_env("CreateTags", 2000, 1000),
        3,
    );
    let (c, b) = (started.pop().unwrap(), started.pop().unwrap());
    let a = started.pop().unwrap();
    let (_, page) = a
        .call(
            Method::GET,
            "/v1/environments/sim/instances?limit=200",
            Some(ADMIN),
            None,
        )
        .await;
    let ids: Vec<String> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    let mut ops = Vec::new();
    for id in ids.iter().take(OPERATIONS) {
        ops.push(
            start_change(
                &a,
                Method::PUT,
                &format!("/v1/environments/sim/instances/{id}/tags"),
                json!({"tags": {"claimed": "once"}}),
            )
            .await,
        );
    }
    drop(a);
    let killed = Instant::now();
    for op in &ops {
        let ended = ended_on(if op.len() % 2 == 0 { &b } else { &c }, op).await;
        assert_eq!(ended["status"], "succeeded", "{ended}");
    }
    let (b_metrics, c_metrics) = (b.metrics().await, c.metrics().await);
    let taken: u64 = ["claim", "takeover"]
        .iter()
        .map(|e| lease_events(&b_metrics, e) + lease_events(&c_metrics, e))
        .sum();
    let tags = backend_calls(&b_metrics, &[("action", "CreateTags")])
        + backend_calls(&c_metrics, &[("action", "CreateTags")]);
    assert!(taken >= 1 && taken <= OPERATIONS as u64, "{taken}");
    assert_eq!(
        tags, taken,
        "each claimed operation tagged once, by one server: {tags} calls for {taken} claims"
    );
    println!(
        "{taken} of {OPERATIONS} operations taken over from a killed server and ended in {:.1} s",
        killed.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figures_takeover_time_and_operations_per_second_with_one_two_and_three_servers() {
    let root = tempfile::tempdir().unwrap();
    let (database_url, _) = fresh_database("figures");
    let envs = sim_env("StopInstances", 200, 10);
    let mut started = servers(root.path(), &database_url, &envs, 3);

    // Operations per second: tag operations sent 16 at a time, spread over 1, 2, 3 servers.
    let (_, page) = started[0]
        .call(
            Method::GET,
            "/v1/environments/sim/instances?limit=300",
            Some(ADMIN),
            None,
        )
        .await;
    let ids: Vec<String> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    for n in 1..=3 {
        let serving = &started[..n];
        let begun = Instant::now();
        let requests = ids.iter().enumerate().map(|(i, id)| {
            let server = &serving[i % n];
            let path = format!("/v1/environments/sim/instances/{id}/tags");
            async move {
                server
                    .call(
                        Method::PUT,
                        &path,
                        Some(ADMIN),
                        Some(json!({"tags": {"round": n.to_string()}})),
                    )
                    .await
            }
        });
        let answers = futures::stream::iter(requests)
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
        let secs = begun.elapsed().as_secs_f64();
        if let Some((status, op)) = answers
            .iter()
            .find(|(s, op)| !s.is_success() || op["status"] != "succeeded")
        {
            panic!("{status} {op}");
        }
        println!(
            "{n} server(s): {} operations in {secs:.2} s = {:.0} operations/s",
            ids.len(),
            ids.len() as f64 / secs
        );
    }

    // Takeover time after SIGKILL, five times: a slow bulk stop on a fresh server killed
    // mid-way, until another holds it.
    let mut takeovers = Vec::new();
    for round in 0..5 {
        let dir = root.path().join(format!("round-{round}"));
        let victim = serve_with(BIN, &write_config(&dir, &database_url, &envs), &[], &[]);
        let stage = if round % 2 == 0 { "dev" } else { "test" };
        let op_id = stop_under_way(&victim, stage, 10).await;
        let victim_id = own_id(&victim).await;
        drop(victim);
        let killed = Instant::now();
        // Taken over once another server holds it, or has finished it already (its own
        // simulated fleet may have had nothing left to stop).
        loop {
            match holder_of(&started[0], &op_id).await {
                Some(holder) if holder != victim_id => break,
                None if finished(&started[0], &op_id).await => break,
                _ if killed.elapsed() > Duration::from_secs(60) => panic!("no takeover"),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        takeovers.push(killed.elapsed().as_secs_f64());
        let ended = ended_on(&started[1], &op_id).await;
        assert_eq!(ended["status"], "succeeded", "{ended}");
    }
    takeovers.sort_by(f64::total_cmp);
    println!(
        "takeover after SIGKILL (lease {LEASE_SECS} s, heartbeat every {:.1} s): median {:.2} s, min {:.2} s, max {:.2} s",
        LEASE_SECS as f64 / 3.0,
        takeovers[2],
        takeovers[0],
        takeovers[4]
    );
    started.clear();
}
