//! The inventory against moto and the simulated provider: overcast's own changes show in
//! the next list at once (no backend read: `as_of` does not move), changes made directly
//! in moto show after one refresh and are recorded as drift events (scoped to their org),
//! `fresh` reads the backend, a bulk stop planned over stale data acts only on the targets
//! whose state at the backend needs it, and 10,000 simulated instances list, filter and
//! page from memory. Security groups and buckets are kept the same way.

use aws_sdk_ec2::types::{InstanceStateName, Tag};
use overcast_test_utils::moto::{some_image, REGIONS};
use overcast_test_utils::server::environment;
use overcast_test_utils::{TestServer, ADMIN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;

const ENV: &str = "/v1/environments/aws-test/instances";

async fn list(server: &TestServer, query: &str) -> Value {
    let (status, page) = server
        .call(Method::GET, &format!("{ENV}{query}"), Some(ADMIN), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page
}

fn state_of<'a>(page: &'a Value, id: &str) -> Option<&'a str> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id)
        .map(|i| i["state"].as_str().unwrap())
}

async fn launch(server: &TestServer, image: &str, count: usize, stage: &str) -> Vec<String> {
    let body = json!({"image": image, "instance_type": "t3.micro", "count": count,
                      "stage": stage, "region": REGIONS[0]});
    let op = server.change(Method::POST, ENV, Some(body)).await;
    op["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["target"].as_str().unwrap().to_string())
        .collect()
}

async fn stopped_in_moto(ec2: &aws_sdk_ec2::Client, ids: &[String]) {
    ec2.stop_instances()
        .set_instance_ids(Some(ids.to_vec()))
        .send()
        .await
        .unwrap();
    for _ in 0..100 {
        let answer = ec2
            .describe_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .send()
            .await
            .unwrap();
        let stopped = answer
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .all(|i| i.state().and_then(|s| s.name()) == Some(&InstanceStateName::Stopped));
        if stopped {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("moto did not stop {ids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_changes_show_at_once_and_outside_ones_after_a_refresh_as_drift() {
    let server = TestServer::aws().await;
    let ec2 = server.ec2(REGIONS[0]).await;
    let image = some_image(&ec2).await;
    let ids = launch(&server, &image, 3, "dev").await;
    let (a, b, c) = (&ids[0], &ids[1], &ids[2]);

    let first = list(&server, "").await;
    let as_of = first["as_of"].clone();
    assert!(as_of.is_string(), "{first}");
    assert_eq!(first["items"].as_array().unwrap().len(), 3);

    // A change through overcast shows at once, without reading the backend again.
    server
        .change(
            Method::PUT,
            &format!("{ENV}/{a}/tags"),
            Some(json!({"tags": {"team": "web"}})),
        )
        .await;
    let page = list(&server, "?tag.team=web").await;
    assert_eq!(page["items"][0]["id"], a.as_str(), "{page}");
    assert_eq!(page["as_of"], as_of, "no backend read");

    // Changes made directly in moto: a stopped, b promoted, c terminated, d made.
    stopped_in_moto(&ec2, std::slice::from_ref(a)).await;
    ec2.create_tags()
        .resources(b)
        .tags(Tag::builder().key("stage").value("test").build())
        .send()
        .await
        .unwrap();
    ec2.terminate_instances()
        .instance_ids(c)
        .send()
        .await
        .unwrap();
    let made = ec2
        .run_instances()
        .image_id(&image)
        .min_count(1)
        .max_count(1)
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Instance)
                .tags(Tag::builder().key("overcast:org").value("admin").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let d = made.instances()[0].instance_id().unwrap().to_string();

    // Not yet seen: the inventory answers what it holds, and says how old it is.
    let stale = list(&server, "").await;
    assert_eq!(state_of(&stale, a), Some("running"));
    assert_eq!(state_of(&stale, &d), None);
    assert_eq!(stale["as_of"], as_of);

    // One refresh: the changes show, and each is an event.
    let (status, refreshed) = server
        .call(
            Method::POST,
            "/v1/environments/aws-test/refresh",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert_eq!(refreshed["drift"], 4, "{refreshed}");
    let seen = list(&server, "").await;
    assert_eq!(state_of(&seen, a), Some("stopped"));
    assert_ne!(seen["as_of"], as_of);
    let events = |query: String| {
        let server = &server;
        async move {
            let (status, page) = server
                .call(
                    Method::GET,
                    &format!("/v1/events{query}"),
                    Some(ADMIN),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{page}");
            page["items"].as_array().unwrap().clone()
        }
    };
    let on_a = events(format!("?environment=aws-test&resource={a}")).await;
    assert_eq!(on_a.len(), 1, "{on_a:?}");
    assert_eq!(on_a[0]["kind"], "changed");
    assert_eq!(on_a[0]["detail"]["state"]["before"], "running");
    assert_eq!(on_a[0]["detail"]["state"]["after"], "stopped");
    let on_b = events(format!("?resource={b}")).await;
    assert_eq!(on_b[0]["detail"]["stage"]["after"], "test", "{on_b:?}");
    let created = events("?kind=created".into()).await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["resource"], d.as_str());
    let on_c = events(format!("?resource={c}")).await;
    assert!(
        on_c[0]["detail"]["state"]["after"]
            .as_str()
            .is_some_and(|s| s == "terminating" || s == "terminated"),
        "{on_c:?}"
    );
    // A second refresh sees nothing new; another org sees none of admin's events.
    let (_, again) = server
        .call(
            Method::POST,
            "/v1/environments/aws-test/refresh",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(again["drift"], 0, "{again}");
    let other = server.token("other", "viewer").await;
    let (_, theirs) = server
        .call(Method::GET, "/v1/events", Some(&other), None)
        .await;
    assert_eq!(theirs["items"], json!([]), "{theirs}");

    // `fresh` reads the backend: a start made in moto shows at once with it.
    ec2.start_instances().instance_ids(a).send().await.unwrap();
    assert_eq!(state_of(&list(&server, "").await, a), Some("stopped"));
    let (_, one) = server
        .call(
            Method::GET,
            &format!("{ENV}/{a}?fresh=true"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_ne!(one["state"], "stopped", "{one}");
    assert_ne!(
        state_of(&list(&server, "?fresh=true").await, a),
        Some("stopped")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_stop_over_stale_data_acts_only_where_the_backend_needs_it() {
    let server = TestServer::aws().await;
    let ec2 = server.ec2(REGIONS[0]).await;
    let image = some_image(&ec2).await;
    let ids = launch(&server, &image, 4, "test").await;
    list(&server, "").await;
    // Two stopped behind overcast's back: the inventory still says running.
    stopped_in_moto(&ec2, &ids[..2]).await;
    let stale = list(&server, "?stage=test&state=running").await;
    assert_eq!(stale["items"].as_array().unwrap().len(), 4);

    let op = server
        .change(
            Method::POST,
            &format!("{ENV}/stop"),
            Some(json!({"stage": "test"})),
        )
        .await;
    assert_eq!(op["status"], "succeeded", "{op}");
    let results = op["results"].as_array().unwrap();
    assert_eq!(results.len(), 4, "the plan had all four: {op}");
    let already: BTreeSet<&str> = results
        .iter()
        .filter(|r| r["message"] == "already stopped at the backend")
        .map(|r| r["target"].as_str().unwrap())
        .collect();
    assert_eq!(
        already,
        ids[..2].iter().map(String::as_str).collect::<BTreeSet<_>>(),
        "{op}"
    );
    // The backend stopped the other two; the inventory knows all four are stopped.
    let answer = ec2
        .describe_instances()
        .set_instance_ids(Some(ids.clone()))
        .send()
        .await
        .unwrap();
    for instance in answer.reservations().iter().flat_map(|r| r.instances()) {
        assert_eq!(
            instance.state().and_then(|s| s.name()),
            Some(&InstanceStateName::Stopped)
        );
    }
    let after = list(&server, "?stage=test&state=stopped").await;
    assert_eq!(after["items"].as_array().unwrap().len(), 4);
    // What the re-check saw changed outside overcast is drift too.
    let (_, events) = server
        .call(Method::GET, "/v1/events?kind=changed", Some(ADMIN), None)
        .await;
    assert_eq!(events["items"].as_array().unwrap().len(), 2, "{events}");

    // The other way round: started behind overcast's back, an instance the inventory
    // holds as stopped is not skipped as "already stopped".
    ec2.start_instances()
        .instance_ids(&ids[3])
        .send()
        .await
        .unwrap();
    let op = server
        .change(
            Method::POST,
            &format!("{ENV}/stop"),
            Some(json!({"stage": "test"})),
        )
        .await;
    assert_eq!(op["status"], "succeeded", "{op}");
    let acted: Vec<&str> = op["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "done" && r["message"].is_null())
        .map(|r| r["target"].as_str().unwrap())
        .collect();
    assert_eq!(acted, [ids[3].as_str()], "{op}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_simulated_instances_list_filter_and_page_from_memory() {
    let server = TestServer::built_with(|config| {
        config.environments.insert(
            "fleet".into(),
            environment(json!({"provider": "sim", "regions": ["sim-1", "sim-2"],
                               "instances": 10000, "pending_secs": 0})),
        );
    })
    .await;
    let path = "/v1/environments/fleet/instances";
    let mut ids = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &token {
            Some(t) => format!("?limit=500&page_token={t}"),
            None => "?limit=500".into(),
        };
        let (status, page) = server
            .call(Method::GET, &format!("{path}{query}"), Some(ADMIN), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages += 1;
        ids.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap().to_string()),
        );
        match page["next_page_token"].as_str() {
            Some(next) => token = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!((ids.len(), pages), (10000, 20));
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");

    // The fleet's stages cycle dev, test, prod: a third each, filtered in memory.
    let mut by_stage = 0;
    for stage in ["dev", "test", "prod"] {
        let (_, page) = server
            .call(
                Method::GET,
                &format!("{path}?stage={stage}&limit=500"),
                Some(ADMIN),
                None,
            )
            .await;
        let items = page["items"].as_array().unwrap();
        assert!(items.iter().all(|i| i["stage"] == stage));
        let mut count = items.len();
        let mut token = page["next_page_token"].as_str().map(str::to_string);
        while let Some(t) = token {
            let (_, page) = server
                .call(
                    Method::GET,
                    &format!("{path}?stage={stage}&limit=500&page_token={t}"),
                    Some(ADMIN),
                    None,
                )
                .await;
            count += page["items"].as_array().unwrap().len();
            token = page["next_page_token"].as_str().map(str::to_string);
        }
        assert!((3333..=3334).contains(&count), "{stage}: {count}");
        by_stage += count;
    }
    assert_eq!(by_stage, 10000);
    // A tag: the Name of one instance finds exactly it.
    let (_, one) = server
        .call(
            Method::GET,
            &format!("{path}/{}", ids[4321]),
            Some(ADMIN),
            None,
        )
        .await;
    let name = one["name"].as_str().unwrap().to_string();
    let (_, named) = server
        .call(
            Method::GET,
            &format!("{path}?tag.Name={name}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(named["items"].as_array().unwrap().len(), 1, "{named}");
    assert_eq!(named["items"][0]["id"], ids[4321].as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_and_buckets_are_kept_too_and_drift_outside_overcast() {
    let server = TestServer::aws().await;
    let ec2 = server.ec2(REGIONS[0]).await;
    let s3 = server.s3(REGIONS[1]).await;
    let groups_path = "/v1/environments/aws-test/security-groups";
    let buckets_path = "/v1/environments/aws-test/buckets";
    let get = |path: String| {
        let server = &server;
        async move {
            let (status, page) = server.call(Method::GET, &path, Some(ADMIN), None).await;
            assert_eq!(status, StatusCode::OK, "{path}: {page}");
            page
        }
    };
    let names = |page: &Value, field: &str| -> BTreeSet<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i[field].as_str().unwrap().to_string())
            .collect()
    };

    // Made through overcast: in the next list at once, with no backend read.
    let first = get(groups_path.into()).await;
    let as_of = first["as_of"].clone();
    assert!(as_of.is_string(), "{first}");
    let made = server
        .change(
            Method::POST,
            groups_path,
            Some(json!({"name": "web", "description": "web", "region": REGIONS[0]})),
        )
        .await;
    let group = made["results"][0]["target"].as_str().unwrap().to_string();
    // Bucket names are global: these are this test's own.
    let bucket = |what: &str| format!("{what}-{}", &group[3..]);
    let (kept, gone, outside, fresh_one) = (
        bucket("kept"),
        bucket("gone"),
        bucket("outside"),
        bucket("fresh"),
    );
    let rule = json!({"direction": "ingress", "protocol": "tcp", "from_port": 22,
                      "to_port": 22, "cidr": "10.0.0.0/8"});
    server
        .change(
            Method::POST,
            &format!("{groups_path}/{group}/rules"),
            Some(rule.clone()),
        )
        .await;
    let listed = get(format!("{groups_path}?region={}", REGIONS[0])).await;
    let web = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == group.as_str())
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(web["rules"].as_array().unwrap().contains(&rule), "{web}");
    let rules_before = web["rules"].as_array().unwrap().len();
    assert_eq!(listed["as_of"], as_of, "no backend read");
    for name in [&kept, &gone] {
        server
            .change(
                Method::POST,
                buckets_path,
                Some(json!({"name": name, "region": REGIONS[0]})),
            )
            .await;
    }
    let buckets = get(buckets_path.into()).await;
    assert_eq!(
        names(&buckets, "name"),
        BTreeSet::from([kept.clone(), gone.clone()])
    );

    // Outside overcast: a rule opened in moto, a bucket made and one deleted there.
    ec2.authorize_security_group_ingress()
        .group_id(&group)
        .ip_protocol("tcp")
        .from_port(443)
        .to_port(443)
        .cidr_ip("0.0.0.0/0")
        .send()
        .await
        .unwrap();
    s3.create_bucket().bucket(&outside).send().await.unwrap();
    s3.delete_bucket().bucket(&gone).send().await.unwrap();
    assert_eq!(
        names(&get(buckets_path.into()).await, "name").len(),
        2,
        "stale"
    );
    let (status, refreshed) = server
        .call(
            Method::POST,
            "/v1/environments/aws-test/refresh",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert_eq!(refreshed["drift"], 3, "{refreshed}");
    let kinds: BTreeSet<&str> = refreshed["listings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    assert!(
        ["instance", "image", "security_group", "bucket"]
            .iter()
            .all(|k| kinds.contains(k)),
        "{refreshed}"
    );
    assert_eq!(
        names(&get(buckets_path.into()).await, "name"),
        BTreeSet::from([kept.clone(), outside.clone()])
    );
    let events = |query: &str| get(format!("/v1/events?{query}"));
    let on_group = events(&format!("resource_kind=security_group&resource={group}")).await;
    let rules = &on_group["items"][0]["detail"]["rules"];
    let count = |rules: &Value| rules.as_array().map(Vec::len);
    assert_eq!(count(&rules["before"]), Some(rules_before), "{on_group}");
    assert_eq!(count(&rules["after"]), Some(rules_before + 1), "{on_group}");
    let on_buckets = events("resource_kind=bucket").await;
    let seen: BTreeSet<(String, String)> = on_buckets["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                e["resource"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        BTreeSet::from([
            ("created".into(), outside.clone()),
            ("deleted".into(), gone.clone())
        ])
    );
    let (status, refused) = server
        .call(
            Method::GET,
            "/v1/events?resource_kind=volume",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(refused["error"]["field"], "resource_kind", "{refused}");

    // overcast's own deletes are no drift; `fresh` reads the backend.
    server
        .change(Method::DELETE, &format!("{groups_path}/{group}"), None)
        .await;
    server
        .change(Method::DELETE, &format!("{buckets_path}/{kept}"), None)
        .await;
    s3.create_bucket().bucket(&fresh_one).send().await.unwrap();
    let fresh = get(format!("{buckets_path}?fresh=true")).await;
    assert_eq!(
        names(&fresh, "name"),
        BTreeSet::from([outside.clone(), fresh_one.clone()])
    );
    let (_, again) = server
        .call(
            Method::POST,
            "/v1/environments/aws-test/refresh",
            Some(ADMIN),
            None,
        )
        .await;
    // Only the bucket `fresh` found is news: overcast deleted the others itself.
    let (_, created) = server
        .call(
            Method::GET,
            &format!("/v1/events?resource={fresh_one}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(again["drift"], 0, "{again}");
    assert_eq!(created["items"][0]["kind"], "created", "{created}");
    let groups = get(groups_path.into()).await;
    assert!(!names(&groups, "id").contains(&group), "{groups}");
}
