//! Benchmark: a 1 GiB object through `overcast serve` (its own process) to moto and back,
//! against the same transfer done directly with the SDK (the same 8 MiB parts, four in
//! flight). Prints throughput both ways and overcast's peak RSS during each transfer.
//! Needs OVERCAST_TEST_MOTO. `cargo bench -p overcast --bench objects` (or ./scripts/bench).

use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use futures::StreamExt;
use overcast_test_utils::moto::{new_account, s3_client, REGIONS};
use overcast_test_utils::process::{peak_rss_mib, serve, write_aws_config};
use overcast_test_utils::{noise_mib, ADMIN};
use reqwest::{Method, StatusCode};
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;
const SIZE_MIB: usize = 1024;
const PART_MIB: usize = 8;

fn rate(elapsed: Duration) -> String {
    format!(
        "{:6.1} s  {:6.1} MiB/s",
        elapsed.as_secs_f64(),
        SIZE_MIB as f64 / elapsed.as_secs_f64()
    )
}

/// Resets a process's peak RSS so the next reading covers only what follows.
fn reset_peak(pid: u32) {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("can reset the peak RSS");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let account = new_account();
    let served = serve(
        env!("CARGO_BIN_EXE_overcast"),
        &write_aws_config(dir.path(), &account),
    );
    let pid = served.child.id();
    let http = &served.http;
    let buckets = format!("{}/v1/environments/aws-test/buckets", served.base);
    let (created, _) = served
        .call(
            Method::POST,
            "/v1/environments/aws-test/buckets",
            Some(ADMIN),
            Some(serde_json::json!({"name": "bench", "region": REGIONS[0]})),
        )
        .await;
    assert_eq!(created, StatusCode::CREATED);
    // One MiB of noise, sent over and over: the body costs nothing to make.
    let chunk = noise_mib(0);
    println!(
        "1 GiB object, overcast serve (release) and moto on this machine; idle server RSS {} MiB",
        peak_rss_mib(pid)
    );

    let url = format!("{buckets}/bench/objects/through-overcast.bin");
    reset_peak(pid);
    let started = Instant::now();
    let body = futures::stream::repeat(chunk.clone())
        .take(SIZE_MIB)
        .map(Ok::<_, std::io::Error>);
    let uploaded = http
        .put(&url)
        .bearer_auth(ADMIN)
        .header("content-length", SIZE_MIB * MIB)
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .unwrap();
    let up = started.elapsed();
    assert_eq!(uploaded.status(), 201, "{}", uploaded.text().await.unwrap());
    let up_rss = peak_rss_mib(pid);

    reset_peak(pid);
    let started = Instant::now();
    let response = http.get(&url).bearer_auth(ADMIN).send().await.unwrap();
    let mut body = response.bytes_stream();
    let mut length = 0;
    while let Some(chunk) = body.next().await {
        length += chunk.unwrap().len();
    }
    let down = started.elapsed();
    assert_eq!(length, SIZE_MIB * MIB);
    let down_rss = peak_rss_mib(pid);

    let s3 = s3_client(&account, REGIONS[0]).await;
    let started = Instant::now();
    direct_upload(&s3, chunk).await;
    let direct_up = started.elapsed();
    let started = Instant::now();
    let object = s3
        .get_object()
        .bucket("bench")
        .key("direct.bin")
        .send()
        .await
        .unwrap();
    let mut body = object.body;
    let mut length = 0;
    while let Some(chunk) = body.next().await {
        length += chunk.unwrap().len();
    }
    let direct_down = started.elapsed();
    assert_eq!(length, SIZE_MIB * MIB);

    println!(
        "upload    through overcast {}   peak RSS {up_rss} MiB",
        rate(up)
    );
    println!("          direct SDK       {}", rate(direct_up));
    println!(
        "download  through overcast {}   peak RSS {down_rss} MiB",
        rate(down)
    );
    println!("          direct SDK       {}", rate(direct_down));
}

/// A multipart upload as overcast makes it: 8 MiB parts, four in flight.
async fn direct_upload(s3: &aws_sdk_s3::Client, chunk: Bytes) {
    let created = s3
        .create_multipart_upload()
        .bucket("bench")
        .key("direct.bin")
        .send()
        .await
        .unwrap();
    let upload_id = created.upload_id().unwrap().to_string();
    let part: Bytes = std::iter::repeat_n(chunk, PART_MIB)
        .flat_map(|c| c.to_vec())
        .collect::<Vec<u8>>()
        .into();
    let parts: Vec<CompletedPart> = futures::stream::iter(1..=(SIZE_MIB / PART_MIB) as i32)
        .map(|number| {
            let request = s3
                .upload_part()
                .bucket("bench")
                .key("direct.bin")
                .upload_id(&upload_id)
                .part_number(number)
                .body(part.clone().into());
            async move {
                let sent = request.send().await.unwrap();
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(sent.e_tag().map(str::to_string))
                    .build()
            }
        })
        .buffered(4)
        .collect()
        .await;
    s3.complete_multipart_upload()
        .bucket("bench")
        .key("direct.bin")
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();
}
