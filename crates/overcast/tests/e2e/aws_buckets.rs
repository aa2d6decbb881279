//! S3 buckets against moto, checked in moto with the SDK.

use overcast_test_utils::moto::REGIONS;
use overcast_test_utils::{TestServer, ADMIN};
use reqwest::{Method, StatusCode};
use serde_json::json;

const BUCKETS: &str = "/v1/environments/aws-test/buckets";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buckets_are_created_in_their_region_tagged_and_read_back() {
    let server = TestServer::aws().await;
    let direct = server.s3(REGIONS[1]).await;
    let body = json!({"name": "overcast-logs", "region": REGIONS[1], "tags": {"team": "ops"}});
    let (status, op) = server
        .call(Method::POST, BUCKETS, Some(ADMIN), Some(body.clone()))
        .await;
    assert_eq!(
        (status, op["status"].as_str()),
        (StatusCode::CREATED, Some("succeeded")),
        "{op}"
    );
    assert_eq!(op["kind"], "bucket.create");

    let location = direct
        .get_bucket_location()
        .bucket("overcast-logs")
        .send()
        .await
        .unwrap();
    // S3 writes us-east-1, the one region without a constraint, as an empty constraint.
    let constraint = location
        .location_constraint()
        .map(|c| c.as_str())
        .unwrap_or("");
    assert!(
        constraint.is_empty() && REGIONS[1] == "us-east-1",
        "{constraint}"
    );
    let tagging = direct
        .get_bucket_tagging()
        .bucket("overcast-logs")
        .send()
        .await
        .unwrap();
    let tags: std::collections::BTreeMap<_, _> = tagging
        .tag_set()
        .iter()
        .map(|t| (t.key(), t.value()))
        .collect();
    assert_eq!((tags["overcast:org"], tags["team"]), ("admin", "ops"));

    let (status, bucket) = server
        .call(
            Method::GET,
            &format!("{BUCKETS}/overcast-logs"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (bucket["region"].as_str(), bucket["org"].as_str()),
        (Some(REGIONS[1]), Some("admin"))
    );
    let (_, listed) = server.call(Method::GET, BUCKETS, Some(ADMIN), None).await;
    assert!(listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["name"] == "overcast-logs"));

    // The name is taken; another org neither sees nor deletes it.
    let (status, err) = server
        .call(Method::POST, BUCKETS, Some(ADMIN), Some(body))
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("bucket_exists"))
    );
    let other = server.token("other", "operator").await;
    let (status, _) = server
        .call(
            Method::GET,
            &format!("{BUCKETS}/overcast-logs"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, listed) = server.call(Method::GET, BUCKETS, Some(&other), None).await;
    assert!(listed["items"].as_array().unwrap().is_empty());
    let (status, _) = server
        .call(
            Method::DELETE,
            &format!("{BUCKETS}/overcast-logs"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server
        .call(
            Method::GET,
            &format!("{BUCKETS}/never-made"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bucket_names_are_refused_as_s3_would_even_where_moto_is_lax() {
    let server = TestServer::aws().await;
    for (name, rule) in [
        ("Bad_Name", "lowercase"),
        ("ab", "3 to 63"),
        ("a..b", "two dots"),
        ("10.0.0.1", "IP address"),
    ] {
        let (status, err) = server
            .call(
                Method::POST,
                BUCKETS,
                Some(ADMIN),
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(
            (status, err["error"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("name")),
            "{name}"
        );
        assert!(
            err["error"]["message"].as_str().unwrap().contains(rule),
            "{name}: {err}"
        );
    }
    let direct = server.s3(REGIONS[0]).await;
    assert!(direct
        .list_buckets()
        .send()
        .await
        .unwrap()
        .buckets()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_with_objects_is_kept_unless_forced_then_emptied_in_batches() {
    let server = TestServer::aws().await;
    let direct = server.s3(REGIONS[0]).await;
    let (_, op) = server
        .call(
            Method::POST,
            BUCKETS,
            Some(ADMIN),
            Some(json!({"name": "full-bucket"})),
        )
        .await;
    assert_eq!(op["status"], "succeeded", "{op}");
    const OBJECTS: usize = 1200;
    for i in 0..OBJECTS {
        direct
            .put_object()
            .bucket("full-bucket")
            .key(format!("logs/{i:05}.txt"))
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap();
    }
    let (status, err) = server
        .call(
            Method::DELETE,
            &format!("{BUCKETS}/full-bucket"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("bucket_not_empty"))
    );
    assert!(direct
        .head_bucket()
        .bucket("full-bucket")
        .send()
        .await
        .is_ok());

    let (status, op) = server
        .call(
            Method::DELETE,
            &format!("{BUCKETS}/full-bucket?force=true"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(
        (status, op["status"].as_str()),
        (StatusCode::OK, Some("succeeded")),
        "{op}"
    );
    assert_eq!(
        op["results"][0]["message"],
        format!("deleted after emptying {OBJECTS} object(s)")
    );
    assert!(
        op["backend_calls"].as_u64().unwrap() >= 4,
        "two pages listed and deleted, then the bucket"
    );
    assert!(
        direct
            .head_bucket()
            .bucket("full-bucket")
            .send()
            .await
            .is_err(),
        "gone from moto"
    );

    let (status, err) = server
        .call(
            Method::DELETE,
            &format!("{BUCKETS}/x?colour=red"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("query"))
    );
}
