//! `overcast bucket` and `overcast object`: buckets, and objects streamed between files (or
//! stdin/stdout) and the server with a progress bar; downloads resume with `--continue`.

use anyhow::{anyhow, bail, Context};
use futures::{StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tokio::io::{AsyncRead, AsyncWriteExt};

use crate::client::{encode, encode_key, query, Client};
use crate::output::{self, render, Format};
use crate::{follow, key_values, parse_tags, EnvArg, FreshArg, WaitArg};

#[derive(clap::Subcommand)]
pub enum BucketCommand {
    /// Buckets you may see, with their regions.
    Ls {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        fresh: FreshArg,
    },
    /// Make a bucket in a region of the environment.
    Create {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        wait: WaitArg,
        name: String,
        #[arg(long)]
        region: Option<String>,
        /// KEY=VALUE; repeatable.
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
    },
    /// One bucket: region, tags, versioning.
    Get {
        #[command(flatten)]
        env: EnvArg,
        name: String,
    },
    /// Delete a bucket; with --force, its objects first.
    Rm {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        wait: WaitArg,
        name: String,
        #[arg(long)]
        force: bool,
    },
}

#[derive(clap::Subcommand)]
pub enum ObjectCommand {
    /// Objects in a bucket, like directories at `/` unless --recursive.
    Ls {
        #[command(flatten)]
        env: EnvArg,
        bucket: String,
        /// Only keys that start with this.
        prefix: Option<String>,
        /// Every key, not rolled up at `/`.
        #[arg(long, short = 'r')]
        recursive: bool,
    },
    /// Upload a file (or stdin with `-`), streamed, with a progress bar.
    Put {
        #[command(flatten)]
        env: EnvArg,
        bucket: String,
        key: String,
        /// The file to send, or `-` for stdin.
        file: PathBuf,
        #[arg(long)]
        content_type: Option<String>,
        /// NAME=VALUE metadata; repeatable.
        #[arg(long = "meta", value_name = "NAME=VALUE")]
        metadata: Vec<String>,
        /// KEY=VALUE object tag; repeatable.
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
    },
    /// Download an object to a file (default: the key's last part) or stdout (`-`).
    Get {
        #[command(flatten)]
        env: EnvArg,
        bucket: String,
        key: String,
        file: Option<PathBuf>,
        /// Resume a partial download: fetch only the bytes the file lacks.
        #[arg(long = "continue", short = 'c')]
        resume: bool,
    },
    /// Describe an object without downloading it.
    Stat {
        #[command(flatten)]
        env: EnvArg,
        bucket: String,
        key: String,
    },
    /// Delete one object, or every object under --prefix.
    Rm {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        wait: WaitArg,
        bucket: String,
        key: Option<String>,
        #[arg(long, conflicts_with = "key")]
        prefix: Option<String>,
    },
    /// Copy inside the store: `cp BUCKET/KEY BUCKET/KEY`.
    Cp {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        wait: WaitArg,
        source: String,
        target: String,
    },
    /// Print a link that downloads (or, with --put, uploads) the object without a token.
    Presign {
        #[command(flatten)]
        env: EnvArg,
        bucket: String,
        key: String,
        #[arg(long)]
        put: bool,
        /// How long the link works, e.g. 15m or 1h (at most the server's limit).
        #[arg(long, default_value = "15m")]
        expires: humantime::Duration,
    },
}

fn buckets_path(env: &EnvArg) -> String {
    format!("/v1/environments/{}/buckets", env.environment)
}

fn objects_path(env: &EnvArg, bucket: &str) -> String {
    format!("{}/{}/objects", buckets_path(env), encode(bucket))
}

fn object_path(env: &EnvArg, bucket: &str, key: &str) -> String {
    format!("{}/{}", objects_path(env, bucket), encode_key(key))
}

pub async fn bucket(
    client: &Client,
    format: Format,
    command: BucketCommand,
) -> anyhow::Result<ExitCode> {
    match command {
        BucketCommand::Ls { env, fresh } => {
            let q = query(&[fresh.param()]);
            let listed = client.get(&format!("{}{q}", buckets_path(&env))).await?;
            print!("{}", render(&listed, format, output::BUCKETS));
        }
        BucketCommand::Create {
            env,
            wait,
            name,
            region,
            tags,
        } => {
            let body = json!({"name": name, "region": region, "tags": parse_tags(&tags)?});
            let operation = client
                .start(Method::POST, &buckets_path(&env), Some(&body))
                .await?;
            return follow(client, format, operation, wait.wait).await;
        }
        BucketCommand::Get { env, name } => {
            let bucket = client
                .get(&format!("{}/{}", buckets_path(&env), encode(&name)))
                .await?;
            print!("{}", render(&bucket, format, output::FIELDS));
        }
        BucketCommand::Rm {
            env,
            wait,
            name,
            force,
        } => {
            let path = format!(
                "{}/{}{}",
                buckets_path(&env),
                encode(&name),
                query(&[("force", force.then(|| "true".to_string()))])
            );
            let operation = client.start(Method::DELETE, &path, None).await?;
            return follow(client, format, operation, wait.wait).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn object(
    client: &Client,
    format: Format,
    command: ObjectCommand,
) -> anyhow::Result<ExitCode> {
    match command {
        ObjectCommand::Ls {
            env,
            bucket,
            prefix,
            recursive,
        } => list(client, format, &env, &bucket, prefix, recursive).await?,
        ObjectCommand::Put {
            env,
            bucket,
            key,
            file,
            content_type,
            metadata,
            tags,
        } => {
            let mut request = client.builder(Method::PUT, &object_path(&env, &bucket, &key));
            if let Some(content_type) = content_type {
                request = request.header(header::CONTENT_TYPE, content_type);
            }
            // Metadata and tags are NAME=VALUE pairs, as `--tag` takes everywhere.
            for (name, value) in key_values(&metadata)? {
                request = request.header(format!("x-overcast-meta-{name}"), value);
            }
            if !tags.is_empty() {
                let tagging: Vec<String> = key_values(&tags)?
                    .into_iter()
                    .map(|(k, v)| format!("{}={}", encode(&k), encode(&v)))
                    .collect();
                request = request.header("x-overcast-tagging", tagging.join("&"));
            }
            let (source, size): (Box<dyn AsyncRead + Send + Unpin>, Option<u64>) =
                if file.as_os_str() == "-" {
                    (Box::new(tokio::io::stdin()), None)
                } else {
                    let opened = tokio::fs::File::open(&file)
                        .await
                        .with_context(|| format!("cannot open {}", file.display()))?;
                    let size = opened.metadata().await?.len();
                    (Box::new(opened), Some(size))
                };
            let bar = transfer_bar(size, &format!("↑ {key}"));
            let counted = bar.clone();
            let stream = tokio_util::io::ReaderStream::with_capacity(source, 256 << 10)
                .inspect_ok(move |chunk| counted.inc(chunk.len() as u64));
            if let Some(size) = size {
                request = request.header(header::CONTENT_LENGTH, size);
            }
            let answer = client
                .execute(request.body(reqwest::Body::wrap_stream(stream)))
                .await;
            bar.finish_and_clear();
            let info: Value = answer?.json().await?;
            print!("{}", render(&info, format, output::FIELDS));
        }
        ObjectCommand::Get {
            env,
            bucket,
            key,
            file,
            resume,
        } => {
            let file = match file {
                Some(file) => file,
                None => PathBuf::from(
                    key.rsplit('/')
                        .next()
                        .filter(|s| !s.is_empty())
                        .ok_or_else(|| {
                            anyhow!("the key `{key}` ends in `/`: name the file to write")
                        })?,
                ),
            };
            download(client, &object_path(&env, &bucket, &key), &file, resume).await?;
        }
        ObjectCommand::Stat { env, bucket, key } => {
            // HEAD answers headers only; the listing entry carries the same facts as JSON.
            let response = client
                .execute(client.builder(Method::HEAD, &object_path(&env, &bucket, &key)))
                .await?;
            let headers = response.headers();
            let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
            let mut info = json!({
                "key": key,
                "size": text("content-length").and_then(|v| v.parse::<u64>().ok()),
                "content_type": text("content-type"),
                "etag": text("etag"),
                "last_modified": text("last-modified"),
            });
            let metadata: serde_json::Map<String, Value> = headers
                .iter()
                .filter_map(|(name, value)| {
                    let name = name.as_str().strip_prefix("x-overcast-meta-")?;
                    Some((name.to_string(), Value::from(value.to_str().ok()?)))
                })
                .collect();
            if !metadata.is_empty() {
                info["metadata"] = Value::Object(metadata);
            }
            print!("{}", render(&info, format, output::FIELDS));
        }
        ObjectCommand::Rm {
            env,
            wait,
            bucket,
            key,
            prefix,
        } => {
            let path = match (key, prefix) {
                (Some(key), None) => object_path(&env, &bucket, &key),
                (None, Some(prefix)) => format!(
                    "{}{}",
                    objects_path(&env, &bucket),
                    query(&[("prefix", Some(prefix))])
                ),
                _ => bail!("give a key, or --prefix to delete every object under it"),
            };
            let operation = client.start(Method::DELETE, &path, None).await?;
            return follow(client, format, operation, wait.wait).await;
        }
        ObjectCommand::Cp {
            env,
            wait,
            source,
            target,
        } => {
            let (source_bucket, source_key) = split_object(&source)?;
            let (bucket, key) = split_object(&target)?;
            let body =
                json!({"key": key, "source_bucket": source_bucket, "source_key": source_key});
            let operation = client
                .start(Method::POST, &objects_path(&env, bucket), Some(&body))
                .await?;
            return follow(client, format, operation, wait.wait).await;
        }
        ObjectCommand::Presign {
            env,
            bucket,
            key,
            put,
            expires,
        } => {
            let body = json!({
                "key": key,
                "method": if put { "PUT" } else { "GET" },
                "expires_in": expires.as_secs(),
            });
            let path = format!("{}/{}/presign", buckets_path(&env), encode(&bucket));
            let link = client.send(Method::POST, &path, Some(&body)).await?.body;
            match format {
                Format::Table => println!("{}", link["url"].as_str().unwrap_or_default()),
                _ => print!("{}", render(&link, format, output::FIELDS)),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints every page of a listing: prefixes first (as `PRE`), then objects.
async fn list(
    client: &Client,
    format: Format,
    env: &EnvArg,
    bucket: &str,
    prefix: Option<String>,
    recursive: bool,
) -> anyhow::Result<()> {
    let delimiter = (!recursive).then(|| "/".to_string());
    let mut page_token: Option<String> = None;
    let mut rows = Vec::new();
    loop {
        let path = format!(
            "{}{}",
            objects_path(env, bucket),
            query(&[
                ("prefix", prefix.clone()),
                ("delimiter", delimiter.clone()),
                ("page_token", page_token.clone()),
            ])
        );
        let page = client.get(&path).await?;
        for p in page["prefixes"].as_array().into_iter().flatten() {
            rows.push(json!({"key": p, "size": "PRE"}));
        }
        rows.extend(page["items"].as_array().into_iter().flatten().cloned());
        page_token = page["next_page_token"].as_str().map(str::to_string);
        if page_token.is_none() {
            break;
        }
    }
    print!("{}", render(&Value::Array(rows), format, output::OBJECTS));
    Ok(())
}

/// `BUCKET/KEY` → (bucket, key).
fn split_object(text: &str) -> anyhow::Result<(&str, &str)> {
    text.split_once('/')
        .filter(|(bucket, key)| !bucket.is_empty() && !key.is_empty())
        .ok_or_else(|| anyhow!("`{text}` is not BUCKET/KEY"))
}

/// Streams an object into a file or stdout. With `resume`, asks only for the bytes after
/// what the file already holds.
async fn download(client: &Client, path: &str, file: &Path, resume: bool) -> anyhow::Result<()> {
    let to_stdout = file.as_os_str() == "-";
    if resume && to_stdout {
        bail!("--continue needs a file to continue");
    }
    let have = match resume {
        true => tokio::fs::metadata(file)
            .await
            .map(|m| m.len())
            .unwrap_or(0),
        false => 0,
    };
    let mut request = client.builder(Method::GET, path);
    if have > 0 {
        request = request.header(header::RANGE, format!("bytes={have}-"));
    }
    let response = client.transmit(request).await?;
    if have > 0 && response.status() == StatusCode::RANGE_NOT_SATISFIABLE {
        eprintln!("{} is already complete", file.display());
        return Ok(());
    }
    let response = client.check(response).await?;
    // A server that ignored the range sends everything: start the file over.
    let appending = response.status() == StatusCode::PARTIAL_CONTENT;
    let total = response
        .content_length()
        .map(|n| n + if appending { have } else { 0 });
    let bar = transfer_bar(total, &format!("↓ {}", file.display()));
    let mut out: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = if to_stdout {
        Box::new(tokio::io::stdout())
    } else {
        let mut options = tokio::fs::OpenOptions::new();
        options.create(true).write(true);
        if appending {
            options.append(true);
            bar.set_position(have);
        } else {
            options.truncate(true);
        }
        Box::new(
            options
                .open(file)
                .await
                .with_context(|| format!("cannot write {}", file.display()))?,
        )
    };
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.context("the download broke off; run again with --continue")?;
        out.write_all(&chunk).await?;
        bar.inc(chunk.len() as u64);
    }
    out.flush().await?;
    bar.finish_and_clear();
    Ok(())
}

/// A byte-counting progress bar on stderr (hidden when stderr is not a terminal).
fn transfer_bar(total: Option<u64>, message: &str) -> ProgressBar {
    let bar = match total {
        Some(total) => ProgressBar::new(total),
        None => ProgressBar::new_spinner(),
    };
    let template = if total.is_some() {
        "{msg} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
    } else {
        "{spinner} {msg} {bytes} {bytes_per_sec}"
    };
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(message.to_string());
    bar
}
