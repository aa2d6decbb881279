//! S3 objects through overcast against moto, checked in moto with the SDK: listing,
//! streamed upload and download with ranges, copy, deletes, presigned links, org scoping,
//! and a broken upload that leaves no parts behind.

use bytes::Bytes;
use futures::StreamExt;
use overcast_test_utils::metrics::backend_calls;
use overcast_test_utils::moto::{new_account, REGIONS};
use overcast_test_utils::{eventually, TestServer, ADMIN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeMap;

const BUCKETS: &str = "/v1/environments/aws-test/buckets";

/// Creates a bucket through overcast with `token` and answers its objects route.
async fn bucket(server: &TestServer, token: &str, name: &str) -> String {
    let body = json!({"name": name, "region": REGIONS[0]});
    let (status, op) = server
        .call(Method::POST, BUCKETS, Some(token), Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{op}");
    format!("{BUCKETS}/{name}/objects")
}

/// PUTs raw bytes with extra headers; answers status and JSON.
async fn put(
    server: &TestServer,
    path: &str,
    body: impl Into<reqwest::Body>,
    headers: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut request = server
        .http
        .put(format!("{}{path}", server.base))
        .bearer_auth(ADMIN)
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    (
        response.status(),
        response.json().await.unwrap_or(Value::Null),
    )
}

async fn get(server: &TestServer, path: &str, range: Option<&str>) -> reqwest::Response {
    let mut request = server
        .http
        .get(format!("{}{path}", server.base))
        .bearer_auth(ADMIN);
    if let Some(range) = range {
        request = request.header("range", range);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_go_up_and_down_with_type_metadata_tags_and_ranges() {
    let server = TestServer::aws().await;
    let objects = bucket(&server, ADMIN, "reports").await;
    let direct = server.s3(REGIONS[0]).await;

    let (status, info) = put(
        &server,
        &format!("{objects}/2026/q4 report.txt"),
        "0123456789",
        &[
            ("content-type", "text/plain"),
            ("x-overcast-meta-team", "finance"),
            ("x-overcast-tagging", "tier=cold&owner=ann%20lee"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{info}");
    assert_eq!(
        (info["size"].as_u64(), info["parts"].as_u64()),
        (Some(10), Some(1))
    );

    // Ground truth: moto holds the object with its type, metadata and tags.
    let head = direct
        .head_object()
        .bucket("reports")
        .key("2026/q4 report.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("text/plain"));
    assert_eq!(head.content_length(), Some(10));
    assert_eq!(head.metadata().unwrap()["team"], "finance");
    let tagging = direct
        .get_object_tagging()
        .bucket("reports")
        .key("2026/q4 report.txt")
        .send()
        .await
        .unwrap();
    let tags: BTreeMap<_, _> = tagging
        .tag_set()
        .iter()
        .map(|t| (t.key(), t.value()))
        .collect();
    assert_eq!(
        tags,
        BTreeMap::from([("owner", "ann lee"), ("tier", "cold")])
    );

    let path = format!("{objects}/2026/q4%20report.txt");
    let whole = get(&server, &path, None).await;
    assert_eq!(whole.status(), StatusCode::OK);
    let headers = whole.headers().clone();
    assert_eq!(headers["content-type"], "text/plain");
    assert_eq!(headers["content-length"], "10");
    assert_eq!(headers["x-overcast-meta-team"], "finance");
    assert_eq!(headers["accept-ranges"], "bytes");
    assert!(headers.contains_key("etag") && headers.contains_key("last-modified"));
    assert_eq!(whole.bytes().await.unwrap(), "0123456789");

    for (range, body, content_range) in [
        ("bytes=2-5", "2345", "bytes 2-5/10"),
        ("bytes=7-", "789", "bytes 7-9/10"),
        ("bytes=-2", "89", "bytes 8-9/10"),
    ] {
        let part = get(&server, &path, Some(range)).await;
        assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(part.headers()["content-range"], content_range);
        assert_eq!(part.bytes().await.unwrap(), body, "{range}");
    }
    let outside = get(&server, &path, Some("bytes=50-60")).await;
    assert_eq!(outside.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let error: Value = outside.json().await.unwrap();
    assert_eq!(error["error"]["code"], "range_not_satisfiable");
    let malformed = get(&server, &path, Some("bytes=5-2")).await;
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    let error: Value = malformed.json().await.unwrap();
    assert_eq!(error["error"]["field"], "Range");

    let head = server
        .http
        .head(format!("{}{path}", server.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["content-length"], "10");
    assert_eq!(head.headers()["x-overcast-meta-team"], "finance");

    // Missing things are 404s that say what is missing.
    let missing = get(&server, &format!("{objects}/nope"), None).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let error: Value = missing.json().await.unwrap();
    assert_eq!(error["error"]["code"], "object_not_found");
    let head = server
        .http
        .head(format!("{}{objects}/nope", server.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::NOT_FOUND);
    let (status, error) = put(
        &server,
        &format!("{BUCKETS}/no-such-bucket/objects/k"),
        "x",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error["error"]["code"], "bucket_not_found");

    // Bad input is refused before anything reaches the store.
    let (status, error) = put(
        &server,
        &format!("{objects}/k"),
        "x",
        &[("x-overcast-meta-bad.name", "v")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    let many_tags: Vec<String> = (0..11).map(|i| format!("k{i}=v")).collect();
    let (status, error) = put(
        &server,
        &format!("{objects}/k"),
        "x",
        &[("x-overcast-tagging", &many_tags.join("&"))],
    )
    .await;
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("tags"))
    );
    let (status, error) = put(&server, &format!("{objects}/a%0Ab"), "x", &[]).await;
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("key"))
    );
    let listed = direct
        .list_objects_v2()
        .bucket("reports")
        .send()
        .await
        .unwrap();
    assert_eq!(
        listed.key_count(),
        Some(1),
        "only the one good object is in moto"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_roll_up_prefixes_and_page() {
    let server = TestServer::aws().await;
    let objects = bucket(&server, ADMIN, "tree").await;
    for key in ["logs/a", "logs/b", "logs/c", "img/x.png", "top"] {
        let (status, _) = put(&server, &format!("{objects}/{key}"), key.to_string(), &[]).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (_, root) = server
        .call(
            Method::GET,
            &format!("{objects}?delimiter=/"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(root["prefixes"], json!(["img/", "logs/"]), "{root}");
    assert_eq!(root["items"][0]["key"], "top");
    assert_eq!(root["items"][0]["size"], 3);

    let (_, first) = server
        .call(
            Method::GET,
            &format!("{objects}?prefix=logs/&limit=2"),
            Some(ADMIN),
            None,
        )
        .await;
    let keys = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["key"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(keys(&first), ["logs/a", "logs/b"]);
    let token = first["next_page_token"].as_str().expect("a second page");
    let (_, second) = server
        .call(
            Method::GET,
            &format!(
                "{objects}?prefix=logs/&limit=2&page_token={}",
                urlencode(token)
            ),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(keys(&second), ["logs/c"]);
    assert!(second.get("next_page_token").is_none());

    let (status, error) = server
        .call(
            Method::GET,
            &format!("{objects}?limit=5000"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("limit"))
    );
    let (status, error) = server
        .call(
            Method::GET,
            &format!("{objects}?colour=red"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_and_deletes_are_operations_seen_in_moto() {
    let server = TestServer::aws().await;
    let objects = bucket(&server, ADMIN, "src").await;
    let archive = bucket(&server, ADMIN, "archive").await;
    let direct = server.s3(REGIONS[0]).await;
    put(
        &server,
        &format!("{objects}/data/one.csv"),
        "a,b\n1,2\n",
        &[("content-type", "text/csv")],
    )
    .await;

    let body = json!({"key": "2026/one.csv", "source_bucket": "src", "source_key": "data/one.csv"});
    let (status, op) = server
        .call(Method::POST, &archive, Some(ADMIN), Some(body))
        .await;
    assert_eq!(
        (status, op["kind"].as_str()),
        (StatusCode::CREATED, Some("object.copy")),
        "{op}"
    );
    let copied = direct
        .get_object()
        .bucket("archive")
        .key("2026/one.csv")
        .send()
        .await
        .unwrap();
    assert_eq!(copied.content_type(), Some("text/csv"));
    assert_eq!(
        copied.body.collect().await.unwrap().into_bytes(),
        "a,b\n1,2\n"
    );
    let body = json!({"key": "x", "source_bucket": "src", "source_key": "missing"});
    let (status, error) = server
        .call(Method::POST, &archive, Some(ADMIN), Some(body))
        .await;
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (StatusCode::NOT_FOUND, Some("source_key"))
    );

    let (status, op) = server
        .call(
            Method::DELETE,
            &format!("{objects}/data/one.csv"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(
        (status, op["status"].as_str()),
        (StatusCode::OK, Some("succeeded")),
        "{op}"
    );
    let gone = direct
        .head_object()
        .bucket("src")
        .key("data/one.csv")
        .send()
        .await;
    assert!(gone.is_err(), "moto still has the deleted object");

    // 1,200 keys under one prefix and 3 beside it: the prefix delete takes two pages.
    let keys: Vec<String> = (0..1200)
        .map(|i| format!("batch/{i:04}"))
        .chain((0..3).map(|i| format!("keep/{i}")))
        .collect();
    futures::stream::iter(keys.iter())
        .for_each_concurrent(16, |key| {
            let direct = direct.clone();
            async move {
                direct
                    .put_object()
                    .bucket("src")
                    .key(key)
                    .body(Bytes::from_static(b"x").into())
                    .send()
                    .await
                    .unwrap();
            }
        })
        .await;
    let (status, op) = server
        .call(
            Method::DELETE,
            &format!("{objects}?prefix=batch/&timeout=60"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(
        (status, op["kind"].as_str()),
        (StatusCode::OK, Some("object.delete_prefix")),
        "{op}"
    );
    assert_eq!(op["results"][0]["message"], "deleted 1200 object(s)");
    assert_eq!(op["progress"]["total"], 1201);
    let left = direct.list_objects_v2().bucket("src").send().await.unwrap();
    let left: Vec<&str> = left.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(left, ["keep/0", "keep/1", "keep/2"]);
    let metrics = server.metrics().await;
    assert_eq!(
        backend_calls(&metrics, &[("action", "DeleteObjects"), ("outcome", "ok")]),
        2,
        "{metrics}"
    );

    let (status, error) = server
        .call(
            Method::DELETE,
            &format!("{objects}?prefix="),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("prefix"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_links_work_without_a_token_for_a_bounded_time() {
    let server = TestServer::aws_with(new_account(), |c| c.presign_max_secs = 600).await;
    let objects = bucket(&server, ADMIN, "shared").await;
    let direct = server.s3(REGIONS[0]).await;
    put(&server, &format!("{objects}/doc.txt"), "hello", &[]).await;
    let presign = format!("{BUCKETS}/shared/presign");

    let (status, link) = server
        .call(
            Method::POST,
            &presign,
            Some(ADMIN),
            Some(json!({"key": "doc.txt", "expires_in": 300})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{link}");
    assert_eq!(link["method"], "GET");
    let url = link["url"].as_str().unwrap();
    assert!(
        url.contains("X-Amz-Expires=300") && url.contains("X-Amz-Signature="),
        "{url}"
    );
    let fetched = reqwest::get(url).await.unwrap();
    assert_eq!(fetched.bytes().await.unwrap(), "hello");

    let (status, link) = server
        .call(
            Method::POST,
            &presign,
            Some(ADMIN),
            Some(json!({"key": "up.txt", "method": "PUT"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{link}");
    let sent = server
        .http
        .put(link["url"].as_str().unwrap())
        .body("uploaded by link")
        .send()
        .await
        .unwrap();
    assert!(sent.status().is_success());
    let stored = direct
        .get_object()
        .bucket("shared")
        .key("up.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(
        stored.body.collect().await.unwrap().into_bytes(),
        "uploaded by link"
    );

    for (body, status, field) in [
        (
            json!({"key": "doc.txt", "expires_in": 601}),
            StatusCode::BAD_REQUEST,
            "expires_in",
        ),
        (
            json!({"key": "doc.txt", "expires_in": 0}),
            StatusCode::BAD_REQUEST,
            "expires_in",
        ),
        (
            json!({"key": "doc.txt", "method": "DELETE"}),
            StatusCode::BAD_REQUEST,
            "method",
        ),
    ] {
        let (got, error) = server
            .call(Method::POST, &presign, Some(ADMIN), Some(body))
            .await;
        assert_eq!(
            (got, error["error"]["field"].as_str()),
            (status, Some(field)),
            "{error}"
        );
    }
    let (status, _) = server
        .call(
            Method::POST,
            &presign,
            Some(ADMIN),
            Some(json!({"key": "absent"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_orgs_bucket_and_objects_are_invisible() {
    let server = TestServer::aws().await;
    let acme = server.token("acme", "operator").await;
    let other = server.token("globex", "operator").await;
    let objects = bucket(&server, &acme, "acme-data").await;
    let (status, _) = server
        .http
        .put(format!("{}{objects}/secret.txt", server.base))
        .bearer_auth(&acme)
        .body("acme only")
        .send()
        .await
        .map(|r| (r.status(), ()))
        .unwrap();
    assert_eq!(status, StatusCode::CREATED);

    let path = format!("{objects}/secret.txt");
    for (method, path, body) in [
        (Method::GET, objects.clone(), None),
        (Method::GET, path.clone(), None),
        (Method::DELETE, path.clone(), None),
        (Method::DELETE, format!("{objects}?prefix=s"), None),
        (
            Method::POST,
            objects.clone(),
            Some(json!({"key": "x", "source_key": "secret.txt"})),
        ),
        (
            Method::POST,
            format!("{BUCKETS}/acme-data/presign"),
            Some(json!({"key": "secret.txt"})),
        ),
    ] {
        let (status, error) = server.call(method.clone(), &path, Some(&other), body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {error}");
        assert_eq!(error["error"]["code"], "bucket_not_found");
    }
    let put = server
        .http
        .put(format!("{}{path}", server.base))
        .bearer_auth(&other)
        .body("overwrite")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::NOT_FOUND);
    let direct = server.s3(REGIONS[0]).await;
    let kept = direct
        .get_object()
        .bucket("acme-data")
        .key("secret.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(kept.body.collect().await.unwrap().into_bytes(), "acme only");

    let viewer = server.token("acme", "viewer").await;
    let (status, _) = server
        .call(
            Method::DELETE,
            &format!("{objects}/secret.txt"),
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let read = server
        .http
        .get(format!("{}{path}", server.base))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_upload_leaves_no_object_and_no_parts() {
    let server = TestServer::aws().await;
    let objects = bucket(&server, ADMIN, "fragile").await;
    let direct = server.s3(REGIONS[0]).await;
    // 20 MiB arrive (two parts go up), then the client's body fails.
    let chunks: Vec<Result<Bytes, std::io::Error>> = (0..20)
        .map(|_| Ok(Bytes::from(vec![7u8; 1 << 20])))
        .chain(std::iter::once(Err(std::io::Error::other(
            "disk read error",
        ))))
        .collect();
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let result = server
        .http
        .put(format!("{}{objects}/big.bin", server.base))
        .bearer_auth(ADMIN)
        .body(body)
        .send()
        .await;
    assert!(result.is_err() || !result.unwrap().status().is_success());

    eventually("the multipart upload is aborted", || {
        let direct = direct.clone();
        async move {
            let uploads = direct
                .list_multipart_uploads()
                .bucket("fragile")
                .send()
                .await
                .unwrap();
            uploads.uploads().is_empty()
        }
    })
    .await;
    let metrics = server.metrics().await;
    assert_eq!(
        backend_calls(
            &metrics,
            &[("action", "CreateMultipartUpload"), ("outcome", "ok")]
        ),
        1
    );
    assert_eq!(
        backend_calls(
            &metrics,
            &[("action", "AbortMultipartUpload"), ("outcome", "ok")]
        ),
        1,
        "the multipart upload was aborted"
    );
    let listed = direct
        .list_objects_v2()
        .bucket("fragile")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.key_count(), Some(0));
}

fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
