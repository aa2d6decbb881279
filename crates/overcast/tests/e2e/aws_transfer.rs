//! Large objects through `overcast serve` run as its own process, so its memory can be
//! read: a 200 MiB upload and download with identical bytes, sent in parts; and the
//! `overcast bucket` / `overcast object` commands end to end.

use crate::BIN;
use bytes::Bytes;
use futures::StreamExt;
use overcast_test_utils::moto::{new_account, s3_client, REGIONS};
use overcast_test_utils::process::{cli, peak_rss_mib, serve, write_aws_config};
use overcast_test_utils::{noise_mib, ADMIN};
use reqwest::{Method, StatusCode};
use sha2::{Digest, Sha256};

const MIB: usize = 1 << 20;

/// `count` MiB of repeatable pseudo-random bytes, made one MiB at a time.
fn generated(count: usize) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::iter(0..count as u64).map(|i| Ok(noise_mib(i)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mib_object_goes_up_in_parts_and_comes_back_identical_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let account = new_account();
    let served = serve(BIN, &write_aws_config(dir.path(), &account));
    let http = &served.http;
    let buckets = format!("{}/v1/environments/aws-test/buckets", served.base);
    let (created, _) = served
        .call(
            Method::POST,
            "/v1/environments/aws-test/buckets",
            Some(ADMIN),
            Some(serde_json::json!({"name": "big", "region": REGIONS[0]})),
        )
        .await;
    assert_eq!(created, StatusCode::CREATED);

    const SIZE_MIB: usize = 200;
    let mut sent = Sha256::new();
    for chunk in futures::executor::block_on_stream(Box::pin(generated(SIZE_MIB))) {
        sent.update(chunk.unwrap());
    }
    let sent = sent.finalize();
    let url = format!("{buckets}/big/objects/data/blob.bin");
    let uploaded = http
        .put(&url)
        .bearer_auth(ADMIN)
        .header("content-length", SIZE_MIB * MIB)
        .body(reqwest::Body::wrap_stream(generated(SIZE_MIB)))
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 201);
    let info: serde_json::Value = uploaded.json().await.unwrap();
    assert_eq!(info["size"], SIZE_MIB * MIB);
    assert_eq!(info["parts"], 25, "200 MiB goes up as 25 parts of 8 MiB");

    // In moto: a multipart object (its ETag says how many parts) of the right size.
    let direct = s3_client(&account, REGIONS[0]).await;
    let head = direct
        .head_object()
        .bucket("big")
        .key("data/blob.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some((SIZE_MIB * MIB) as i64));
    assert!(
        head.e_tag().unwrap().ends_with("-25\""),
        "{:?}",
        head.e_tag()
    );

    let downloaded = http.get(&url).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(downloaded.status(), 200);
    let mut received = Sha256::new();
    let mut length = 0usize;
    let mut body = downloaded.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap();
        length += chunk.len();
        received.update(&chunk);
    }
    assert_eq!(length, SIZE_MIB * MIB);
    assert_eq!(received.finalize(), sent, "the bytes came back changed");

    // Neither direction held the object (that alone would be 200 MiB over the debug
    // server's idle size of about 50 MiB): at most a few parts are in memory at once.
    let peak = peak_rss_mib(served.child.id());
    println!("overcast serve peak RSS over a 200 MiB round trip: {peak} MiB");
    assert!(peak < 150, "the server's peak RSS was {peak} MiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bucket_and_object_commands_work_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let account = new_account();
    let served = serve(BIN, &write_aws_config(dir.path(), &account));
    let url = served.base.as_str();
    let env = ["-e", "aws-test"];
    let run = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend_from_slice(&env);
        cli(BIN, url, &all)
    };

    let (code, _, err) = run(&["bucket", "create", "cli-data", "--tag", "team=ops", "-w"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = run(&["bucket", "ls"]);
    assert_eq!(code, 0);
    assert!(out.contains("cli-data"), "{out}");

    let source = dir.path().join("source.bin");
    let content: Vec<u8> = (0..3 * MIB as u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&source, &content).unwrap();
    let (code, out, err) = run(&[
        "object",
        "put",
        "cli-data",
        "dir/source.bin",
        source.to_str().unwrap(),
        "--content-type",
        "application/x-test",
        "--meta",
        "origin=cli",
        "--tag",
        "kind=sample",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("dir/source.bin"), "{out}");
    let direct = s3_client(&account, REGIONS[0]).await;
    let head = direct
        .head_object()
        .bucket("cli-data")
        .key("dir/source.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("application/x-test"));
    assert_eq!(head.metadata().unwrap()["origin"], "cli");

    let (code, out, _) = run(&["object", "ls", "cli-data"]);
    assert_eq!(code, 0);
    assert!(out.contains("dir/") && out.contains("PRE"), "{out}");
    let (code, out, _) = run(&["object", "ls", "cli-data", "-r"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("dir/source.bin") && out.contains(&content.len().to_string()),
        "{out}"
    );

    // A partial file is completed with --continue; a complete one is left alone.
    let target = dir.path().join("copy.bin");
    std::fs::write(&target, &content[..MIB]).unwrap();
    let (code, _, err) = run(&[
        "object",
        "get",
        "cli-data",
        "dir/source.bin",
        target.to_str().unwrap(),
        "--continue",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        std::fs::read(&target).unwrap() == content,
        "the resumed download differs"
    );
    let (code, _, err) = run(&[
        "object",
        "get",
        "cli-data",
        "dir/source.bin",
        target.to_str().unwrap(),
        "-c",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("already complete"), "{err}");

    let (code, _, err) = run(&[
        "object",
        "cp",
        "cli-data/dir/source.bin",
        "cli-data/backup/source.bin",
        "-w",
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = run(&[
        "object",
        "presign",
        "cli-data",
        "backup/source.bin",
        "--expires",
        "5m",
    ]);
    assert_eq!(code, 0);
    let fetched = reqwest::get(out.trim())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(fetched == content, "the presigned link serves other bytes");

    // Neither the link nor the object's bytes reach the server's log.
    let log = served.log();
    assert!(log.contains("request"), "the server logs its requests");
    assert!(
        !log.contains("X-Amz-Signature") && !log.contains(out.trim()),
        "{log}"
    );

    let (code, out, _) = run(&["object", "stat", "cli-data", "backup/source.bin"]);
    assert_eq!(code, 0);
    assert!(out.contains(&content.len().to_string()), "{out}");

    let (code, _, err) = run(&["object", "rm", "cli-data", "--prefix", "backup/", "-w"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(&["bucket", "rm", "cli-data", "-w"]);
    assert_ne!(code, 0, "a bucket with objects is kept without --force");
    assert!(err.contains("not empty"), "{err}");
    let (code, _, err) = run(&["bucket", "rm", "cli-data", "--force", "-w"]);
    assert_eq!(code, 0, "{err}");
    let buckets = direct.list_buckets().send().await.unwrap();
    assert!(buckets.buckets().is_empty());
}
