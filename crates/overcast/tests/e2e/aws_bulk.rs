//! Stages, promotion and bulk actions against moto, across two regions, checked in moto.

use aws_sdk_ec2::types::InstanceStateName;
use overcast_test_utils::metrics::backend_calls;
use overcast_test_utils::moto::{all_in_moto, heavy_use, some_image, REGIONS};
use overcast_test_utils::{TestServer, ADMIN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const ENV: &str = "/v1/environments/aws-test/instances";

async fn launch(
    server: &TestServer,
    region: &str,
    image: &str,
    count: usize,
    stage: &str,
    tags: Value,
) -> Vec<String> {
    let body = json!({"image": image, "instance_type": "t3.micro", "count": count, "stage": stage, "region": region, "tags": tags});
    let (status, op) = server
        .call(Method::POST, ENV, Some(ADMIN), Some(body))
        .await;
    assert_eq!(
        (status, op["status"].as_str()),
        (StatusCode::CREATED, Some("succeeded")),
        "{op}"
    );
    op["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["target"].as_str().unwrap().to_string())
        .collect()
}

async fn bulk(server: &TestServer, action: &str, body: Value) -> (StatusCode, Value) {
    server
        .call(
            Method::POST,
            &format!("{ENV}/{action}"),
            Some(ADMIN),
            Some(body),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotion_moves_one_stage_and_stops_at_the_last() {
    let server = TestServer::aws().await;
    let (west, east) = (server.ec2(REGIONS[0]).await, server.ec2(REGIONS[1]).await);
    let dev = launch(
        &server,
        REGIONS[0],
        &some_image(&west).await,
        2,
        "dev",
        json!({}),
    )
    .await;
    let test = launch(
        &server,
        REGIONS[1],
        &some_image(&east).await,
        1,
        "test",
        json!({}),
    )
    .await;

    // One instance: dev → test.
    let (status, op) = server
        .call(
            Method::POST,
            &format!("{ENV}/{}/promote", dev[0]),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(
        (status, op["status"].as_str()),
        (StatusCode::OK, Some("succeeded")),
        "{op}"
    );
    assert_eq!(op["kind"], "instance.promote");
    assert_eq!(all_in_moto(&west, &dev).await[0].tags["stage"], "test");

    // Every test instance, in both regions: test → prod.
    let (status, op) = bulk(&server, "promote", json!({"stage": "test"})).await;
    assert_eq!(
        (status, op["status"].as_str()),
        (StatusCode::OK, Some("succeeded")),
        "{op}"
    );
    assert_eq!(op["progress"], json!({"done": 2, "total": 2}));
    assert_eq!(all_in_moto(&west, &dev[..1]).await[0].tags["stage"], "prod");
    assert_eq!(all_in_moto(&east, &test).await[0].tags["stage"], "prod");
    assert_eq!(
        all_in_moto(&west, &dev[1..]).await[0].tags["stage"],
        "dev",
        "not selected, not moved"
    );

    // prod is the last stage: a 409 for one instance, a clear no-op for a selection.
    let (status, err) = server
        .call(
            Method::POST,
            &format!("{ENV}/{}/promote", test[0]),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("cannot_promote")),
        "{err}"
    );
    let (status, answer) = bulk(&server, "promote", json!({"stage": "prod"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["plan"]["targets"], json!([]));
    assert_eq!(
        answer["plan"]["skipped"][0]["reason"],
        "`prod` is the last stage"
    );

    // To a named later stage.
    let (_, op) = bulk(
        &server,
        "promote",
        json!({"ids": [dev[1]], "to_stage": "prod"}),
    )
    .await;
    assert_eq!(op["status"], "succeeded");
    assert_eq!(all_in_moto(&west, &dev[1..]).await[0].tags["stage"], "prod");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_stop_and_start_by_stage_tag_and_ids_across_regions() {
    let server = TestServer::aws().await;
    let (west, east) = (server.ec2(REGIONS[0]).await, server.ec2(REGIONS[1]).await);
    let west_dev = launch(
        &server,
        REGIONS[0],
        &some_image(&west).await,
        3,
        "dev",
        json!({"team": "web"}),
    )
    .await;
    let east_dev = launch(
        &server,
        REGIONS[1],
        &some_image(&east).await,
        2,
        "dev",
        json!({"team": "db"}),
    )
    .await;
    let east_test = launch(
        &server,
        REGIONS[1],
        &some_image(&east).await,
        1,
        "test",
        json!({"team": "web"}),
    )
    .await;

    // A dry run plans and changes nothing.
    let (status, answer) = bulk(&server, "stop", json!({"stage": "dev", "dry_run": true})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["dry_run"], true);
    assert_eq!(answer["plan"]["targets"].as_array().unwrap().len(), 5);
    let calls: Vec<_> = answer["plan"]["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["region"].as_str().unwrap(),
                c["instances"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(calls, [(REGIONS[0], 3), (REGIONS[1], 2)]);
    assert!(all_in_moto(&west, &west_dev)
        .await
        .iter()
        .all(|i| i.state == InstanceStateName::Running));

    // By stage, across both regions.
    let (status, op) = bulk(&server, "stop", json!({"stage": "dev"})).await;
    assert_eq!(
        (status, op["status"].as_str()),
        (StatusCode::OK, Some("succeeded")),
        "{op}"
    );
    assert!(all_in_moto(&west, &west_dev)
        .await
        .iter()
        .all(|i| i.state == InstanceStateName::Stopped));
    assert!(all_in_moto(&east, &east_dev)
        .await
        .iter()
        .all(|i| i.state == InstanceStateName::Stopped));
    assert_eq!(
        all_in_moto(&east, &east_test).await[0].state,
        InstanceStateName::Running
    );

    // Again: everything is already stopped, so nothing is done.
    let (_, answer) = bulk(&server, "stop", json!({"stage": "dev"})).await;
    assert_eq!(answer["plan"]["skipped"].as_array().unwrap().len(), 5);
    assert!(answer["plan"]["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["reason"] == "already stopped"));

    // By tag: the web team, in both regions (one stopped dev instance is skipped? no: start needs it).
    let (_, op) = bulk(&server, "start", json!({"tags": {"team": "web"}})).await;
    assert_eq!(op["status"], "succeeded", "{op}");
    let outcomes: Vec<_> = op["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == "done").count(),
        3,
        "three stopped web instances started"
    );
    assert_eq!(
        outcomes.iter().filter(|o| **o == "skipped").count(),
        1,
        "the running one was skipped"
    );
    assert!(all_in_moto(&west, &west_dev)
        .await
        .iter()
        .all(|i| i.state == InstanceStateName::Running));
    assert!(all_in_moto(&east, &east_dev)
        .await
        .iter()
        .all(|i| i.state == InstanceStateName::Stopped));

    // By ids, with one that does not exist.
    let (_, op) = bulk(
        &server,
        "start",
        json!({"ids": [east_dev[0], "i-00000000000000404"]}),
    )
    .await;
    assert_eq!(op["status"], "succeeded", "{op}");
    assert_eq!(
        all_in_moto(&east, &east_dev).await[0].state,
        InstanceStateName::Running
    );
    assert_eq!(
        all_in_moto(&east, &east_dev).await[1].state,
        InstanceStateName::Stopped
    );
    let missing = op["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["target"] == "i-00000000000000404")
        .unwrap();
    assert_eq!(
        (missing["outcome"].as_str(), missing["message"].as_str()),
        (Some("skipped"), Some("not found"))
    );

    // Tag and untag a selection.
    let (_, op) = bulk(
        &server,
        "tag",
        json!({"stage": "test", "set": {"owner": "qa"}}),
    )
    .await;
    assert_eq!(op["status"], "succeeded", "{op}");
    assert_eq!(op["kind"], "instance.tag_selected");
    let (_, page) = server
        .call(
            Method::GET,
            &format!("{ENV}?tag.owner=qa"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let (_, op) = bulk(
        &server,
        "untag",
        json!({"stage": "test", "keys": ["owner"]}),
    )
    .await;
    assert_eq!(op["status"], "succeeded", "{op}");
    let (_, page) = server
        .call(
            Method::GET,
            &format!("{ENV}?tag.owner=qa"),
            Some(ADMIN),
            None,
        )
        .await;
    assert!(page["items"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destructive_actions_need_the_confirmation_and_bad_selectors_are_refused() {
    let server = TestServer::aws().await;
    let west = server.ec2(REGIONS[0]).await;
    let image = some_image(&west).await;
    let dev = launch(&server, REGIONS[0], &image, 2, "dev", json!({})).await;
    let prod = launch(&server, REGIONS[0], &image, 1, "prod", json!({})).await;

    let (status, err) = bulk(&server, "terminate", json!({"stage": "dev"})).await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("confirm"))
    );
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"confirm\": \"aws-test/dev\""),
        "{err}"
    );
    let (status, _) = bulk(
        &server,
        "terminate",
        json!({"stage": "dev", "confirm": "aws-test/prod"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(all_in_moto(&west, &dev)
        .await
        .iter()
        .all(|i| i.state == InstanceStateName::Running));

    // Stopping the protected stage (the last one) needs confirming; by ids, the count.
    let (status, err) = bulk(&server, "stop", json!({"ids": prod})).await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("confirm"))
    );
    let (_, op) = bulk(
        &server,
        "stop",
        json!({"ids": prod, "confirm": "aws-test/1"}),
    )
    .await;
    assert_eq!(op["status"], "succeeded", "{op}");
    assert_eq!(
        all_in_moto(&west, &prod).await[0].state,
        InstanceStateName::Stopped
    );

    let (_, op) = bulk(
        &server,
        "terminate",
        json!({"stage": "dev", "confirm": "aws-test/dev"}),
    )
    .await;
    assert_eq!(op["status"], "succeeded", "{op}");
    assert!(all_in_moto(&west, &dev)
        .await
        .iter()
        .all(|i| i.state == InstanceStateName::Terminated));

    for (action, body, field) in [
        ("stop", json!({}), "selector"),
        ("stop", json!({"dry_run": true}), "selector"),
        ("explode", json!({"stage": "dev"}), ""),
        (
            "promote",
            json!({"stage": "dev", "to_stage": "qa"}),
            "to_stage",
        ),
        ("start", json!({"stage": "dev", "force": true}), "force"),
        ("tag", json!({"stage": "dev"}), "set"),
        (
            "tag",
            json!({"stage": "dev", "set": {"overcast:org": "x"}}),
            "tags.overcast:org",
        ),
        (
            "stop",
            json!({"stage": "dev", "colour": "red"}),
            "body.colour",
        ),
    ] {
        let (status, err) = bulk(&server, action, body.clone()).await;
        if field.is_empty() {
            assert!(
                status == StatusCode::NOT_FOUND
                    || status == StatusCode::METHOD_NOT_ALLOWED
                    || status == StatusCode::BAD_REQUEST,
                "{action}: {status}"
            );
            continue;
        }
        assert_eq!(
            (status, err["error"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{action} {body}: {err}"
        );
    }
    let (status, answer) = bulk(&server, "stop", json!({"stage": "test"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        answer["message"],
        "nothing to stop: no selected instance needs it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selection_of_2500_is_done_in_batches_of_at_most_1000() {
    let _moto = heavy_use().await;
    let server = TestServer::aws().await;
    let west = server.ec2(REGIONS[0]).await;
    let image = some_image(&west).await;
    for _ in 0..5 {
        launch(
            &server,
            REGIONS[0],
            &image,
            500,
            "dev",
            json!({"fleet": "big"}),
        )
        .await;
    }
    let before = backend_calls(
        &server.metrics().await,
        &[("action", "StopInstances"), ("region", REGIONS[0])],
    );
    // Three batches, each checked at moto and then stopped: longer than the default wait
    // on a busy machine.
    let (status, op) = bulk(
        &server,
        "stop?timeout=600",
        json!({"tags": {"fleet": "big"}}),
    )
    .await;
    assert_eq!(
        (status, op["status"].as_str()),
        (StatusCode::OK, Some("succeeded")),
        "{}",
        op["error"]
    );
    assert_eq!(op["progress"], json!({"done": 2500, "total": 2500}));
    assert_eq!(
        backend_calls(
            &server.metrics().await,
            &[("action", "StopInstances"), ("region", REGIONS[0])],
        ) - before,
        3,
        "2500 ids in calls of at most 1000"
    );
    let out = west.describe_instances().send().await.unwrap();
    let states: Vec<_> = out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .map(|i| i.state().unwrap().name().unwrap().clone())
        .collect();
    assert_eq!(states.len(), 2500);
    assert!(states.iter().all(|s| *s == InstanceStateName::Stopped));
}
