//! Benchmark: the inventory under load, as a platform team's dashboards and scripts use
//! overcast. An `overcast serve` process over 1,000 instances in moto takes 50 clients for
//! OVERCAST_BENCH_SECS (default 60) seconds each, mixing lists (60 %), gets (25 %), tag
//! changes (10 %) and reboots (5 %), twice in the same run: first with every list and get
//! reading the backend (`fresh=true`, what each request did before the inventory), then
//! from the inventory. Prints requests per second, p50 and p99, and errors for each; the
//! backend calls one refresh makes; and, on the simulated provider, list latency at 10,000
//! instances and the server's memory before and after its inventory holds them.
//! Needs OVERCAST_TEST_MOTO (see scripts/bench).

use overcast_test_utils::moto::{launch_fleet, REGIONS};
use overcast_test_utils::process::{serve, write_aws_config, write_sim_config, Served};
use overcast_test_utils::{Api, ADMIN};
use reqwest::Method;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const INSTANCES: usize = 1000;
const CLIENTS: usize = 50;
const SIM_INSTANCES: usize = 10_000;

const BIN: &str = env!("CARGO_BIN_EXE_overcast");

/// Latencies of the requests that succeeded, and how many did not.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    errors: usize,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at]
}

fn report(label: &str, mut tally: Tally, wall: Duration) {
    tally.latencies.sort();
    let done = tally.latencies.len();
    println!(
        "  {label:<34} {:>8.1} req/s   p50 {:>9.1} ms   p99 {:>9.1} ms   {} errors of {}",
        done as f64 / wall.as_secs_f64(),
        percentile(&tally.latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&tally.latencies, 0.99).as_secs_f64() * 1000.0,
        tally.errors,
        done + tally.errors,
    );
}

/// One client's loop: a mix of requests until `until`.
async fn client(
    api: Arc<Api>,
    ids: Arc<Vec<String>>,
    fresh: bool,
    until: Instant,
    seed: u64,
) -> Tally {
    let mut tally = Tally::default();
    let mut n = seed;
    let base = "/v1/environments/aws-test/instances";
    let fresh_query = if fresh { "&fresh=true" } else { "" };
    while Instant::now() < until {
        // A small linear congruential walk: the same mix in both phases.
        n = n
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let pick = (n >> 33) % 100;
        let id = &ids[((n >> 20) as usize) % ids.len()];
        let stage = ["dev", "test", "prod"][((n >> 40) % 3) as usize];
        let (method, path, body) = match pick {
            0..=59 => (
                Method::GET,
                format!("{base}?stage={stage}&limit=50{fresh_query}"),
                None,
            ),
            60..=84 => (Method::GET, format!("{base}/{id}?fresh={fresh}"), None),
            85..=94 => (
                Method::PUT,
                format!("{base}/{id}/tags"),
                Some(serde_json::json!({"tags": {"checked": format!("{}", n % 1000)}})),
            ),
            _ => (
                Method::POST,
                format!("{base}/{id}/reboot"),
                Some(serde_json::json!({})),
            ),
        };
        let mut request = api.request(method, &path, Some(ADMIN));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let started = Instant::now();
        match request.send().await {
            Ok(response) if response.status().is_success() => {
                let _ = response.bytes().await;
                tally.latencies.push(started.elapsed());
            }
            _ => tally.errors += 1,
        }
    }
    tally
}

async fn load(api: &Arc<Api>, ids: &Arc<Vec<String>>, fresh: bool, secs: u64) -> (Tally, Duration) {
    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            tokio::spawn(client(
                api.clone(),
                ids.clone(),
                fresh,
                until,
                c as u64 * 7919 + 1,
            ))
        })
        .collect();
    let mut total = Tally::default();
    for c in clients {
        let tally = c.await.unwrap();
        total.latencies.extend(tally.latencies);
        total.errors += tally.errors;
    }
    (total, started.elapsed())
}

/// The backend calls made so far, by action.
async fn calls_by_action(api: &Api) -> BTreeMap<String, f64> {
    let text = api
        .request(Method::GET, "/metrics", Some(ADMIN))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut calls = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("overcast_backend_calls_total{"))
    {
        let action = line
            .split("action=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next());
        let count = line.rsplit(' ').next().and_then(|n| n.parse::<f64>().ok());
        if let (Some(action), Some(count)) = (action, count) {
            *calls.entry(action.to_string()).or_default() += count;
        }
    }
    calls
}

fn rss_mib(served: &Served) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", served.child.id())).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib / 1024.0
}

#[tokio::main]
async fn main() {
    let secs: u64 = std::env::var("OVERCAST_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);

    // 1,000 instances in moto, a third of each stage, as overcast would tag them.
    let account = overcast_test_utils::moto::new_account();
    let ec2 = overcast_test_utils::moto::ec2_client(&account, REGIONS[0]).await;
    let mut ids = Vec::new();
    for stage in ["dev", "test", "prod"] {
        let count = INSTANCES / 3 + usize::from(stage == "dev");
        ids.extend(launch_fleet(&ec2, count as i32, stage).await);
    }
    let dir = tempfile::tempdir().unwrap();
    let served = serve(BIN, &write_aws_config(dir.path(), &account));
    let api = Arc::new(Api::new(served.base.clone()));
    let ids = Arc::new(ids);

    // Backend calls of one refresh, of every kind.
    let before = calls_by_action(&api).await;
    let (_, refreshed) = api
        .call(
            Method::POST,
            "/v1/environments/aws-test/refresh",
            Some(ADMIN),
            None,
        )
        .await;
    let after = calls_by_action(&api).await;
    let made: Vec<String> = after
        .iter()
        .map(|(action, n)| (action, n - before.get(action).copied().unwrap_or(0.0)))
        .filter(|(_, n)| *n > 0.0)
        .map(|(action, n)| format!("{n} {action}"))
        .collect();
    println!(
        "one refresh of {} instances (and the account's images, groups, buckets and services) over {} regions: {} ({} instances read)",
        INSTANCES,
        REGIONS.len(),
        made.join(", "),
        refreshed["instances"]
    );

    println!("{CLIENTS} clients for {secs} s each, 1,000 instances in moto (60 % lists, 25 % gets, 10 % tags, 5 % reboots):");
    let (tally, wall) = load(&api, &ids, true, secs).await;
    report("every list and get reads moto", tally, wall);
    let (tally, wall) = load(&api, &ids, false, secs).await;
    report("from the inventory", tally, wall);
    drop(served);

    // 10,000 simulated instances: list latency, and the server's memory.
    let dir = tempfile::tempdir().unwrap();
    let served = serve(BIN, &write_sim_config(dir.path(), SIM_INSTANCES));
    let api = Api::new(served.base.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cold = rss_mib(&served);
    let base = "/v1/environments/fleet/instances";
    let started = Instant::now();
    let (status, _) = api
        .call(Method::GET, &format!("{base}?limit=100"), Some(ADMIN), None)
        .await;
    assert!(status.is_success());
    let first = started.elapsed();
    let warm = rss_mib(&served);
    let mut plain = Vec::new();
    let mut filtered = Vec::new();
    let mut token = String::new();
    for n in 0..500 {
        let stage = ["dev", "test", "prod"][n % 3];
        let started = Instant::now();
        let (_, page) = api
            .call(
                Method::GET,
                &format!("{base}?limit=100{token}"),
                Some(ADMIN),
                None,
            )
            .await;
        plain.push(started.elapsed());
        token = page["next_page_token"]
            .as_str()
            .map(|t| format!("&page_token={t}"))
            .unwrap_or_default();
        let started = Instant::now();
        let (status, _) = api
            .call(
                Method::GET,
                &format!("{base}?stage={stage}&tag.Name=sim-{n:05}&limit=100"),
                Some(ADMIN),
                None,
            )
            .await;
        assert!(status.is_success());
        filtered.push(started.elapsed());
    }
    plain.sort();
    filtered.sort();
    println!("{SIM_INSTANCES} simulated instances (2 regions), 500 sequential requests each:");
    println!(
        "  first list (fills the inventory):  {:>8.1} ms",
        first.as_secs_f64() * 1000.0
    );
    for (label, samples) in [("a page of 100", &plain), ("by stage and tag", &filtered)] {
        println!(
            "  {label:<34} p50 {:>6.2} ms   p99 {:>6.2} ms",
            percentile(samples, 0.5).as_secs_f64() * 1000.0,
            percentile(samples, 0.99).as_secs_f64() * 1000.0
        );
    }
    println!(
        "  server memory (RSS): {cold:.1} MiB before its inventory was filled, {warm:.1} MiB after ({:.1} MiB for {SIM_INSTANCES} instances)",
        warm - cold
    );
}
