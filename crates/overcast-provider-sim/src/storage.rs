//! Buckets and objects as the `ObjectStore` capability, held in memory: S3's bucket names
//! and refusals, listings by prefix and delimiter in pages, byte ranges, and presigned links
//! that look like S3's but lead nowhere (`.invalid`). Bodies arrive and leave as streams.

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use overcast_provider::{
    ByteStream, ObjectDownload, ObjectQuery, ObjectSpec, ObjectStore, PresignMethod, ProviderError,
    ProviderErrorKind as Kind,
};
use overcast_types::{
    validate_bucket_name, Bucket, ByteRange, ObjectInfo, ObjectListing, ObjectSummary,
};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::time::Duration;

use crate::compute::check_tags;
use crate::errors::{bucket_not_found, invalid, refusal};
use crate::world::World;
use crate::SimProvider;

/// S3's most keys per listing page and per DeleteObjects.
const MAX_KEYS: usize = 1000;

/// Downloads are streamed in chunks of this size.
const CHUNK: usize = 64 << 10;

/// The part size the AWS backend uploads in; an object says how many parts it would have
/// been sent in there.
const PART_SIZE: u64 = 8 << 20;

/// SigV4's longest presigned link: 7 days.
const MAX_PRESIGN: Duration = Duration::from_secs(7 * 24 * 3600);

pub(crate) struct BucketRecord {
    region: String,
    created_at: String,
    pub tags: BTreeMap<String, String>,
    objects: BTreeMap<String, ObjectRecord>,
}

#[derive(Clone)]
struct ObjectRecord {
    body: Bytes,
    content_type: Option<String>,
    metadata: BTreeMap<String, String>,
    etag: String,
    last_modified: String,
    parts: u32,
}

impl BucketRecord {
    fn to_bucket(&self, name: &str) -> Bucket {
        Bucket {
            name: name.to_string(),
            region: self.region.clone(),
            created_at: Some(self.created_at.clone()),
            versioning: None,
            tags: self.tags.clone(),
            org: None,
        }
    }
}

impl ObjectRecord {
    fn info(&self, key: &str) -> ObjectInfo {
        ObjectInfo {
            key: key.to_string(),
            size: self.body.len() as u64,
            content_type: self.content_type.clone(),
            etag: Some(self.etag.clone()),
            last_modified: Some(self.last_modified.clone()),
            metadata: self.metadata.clone(),
            parts: Some(self.parts),
        }
    }
}

/// A bucket asked for in a region: S3 answers a bucket of another region with a redirect
/// the AWS backend reports as a refusal.
pub(crate) fn bucket_in<'a>(
    world: &'a mut World,
    region: &str,
    name: &str,
) -> Result<&'a mut BucketRecord, ProviderError> {
    let bucket = world
        .buckets
        .get_mut(name)
        .ok_or_else(|| bucket_not_found(name))?;
    if bucket.region != region {
        return Err(refusal(
            Kind::Refused,
            "backend_refused",
            "PermanentRedirect",
            format!(
                "The bucket {name} is in {}; address it there, not in {region}",
                bucket.region
            ),
        ));
    }
    Ok(bucket)
}

fn object_not_found(bucket: &str, key: &str) -> ProviderError {
    refusal(
        Kind::NotFound,
        "object_not_found",
        "NoSuchKey",
        format!("The specified key does not exist: {bucket}/{key}"),
    )
}

/// An ETag as S3 writes one: a quoted hex digest of the body.
fn etag(body: &[u8]) -> String {
    let digest: String = Sha256::digest(body)[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("\"{digest}\"")
}

/// The first and last byte of `range` in an object of `size` bytes, or `None` when it has
/// none of them (S3's `InvalidRange`).
fn resolve(range: ByteRange, size: u64) -> Option<(u64, u64)> {
    let last_byte = size.checked_sub(1)?;
    match range {
        ByteRange::Span { first, last } => (first < size).then(|| (first, last.min(last_byte))),
        ByteRange::From { first } => (first < size).then_some((first, last_byte)),
        ByteRange::Last { length } => (length > 0).then(|| (size - length.min(size), last_byte)),
    }
}

/// One page of keys and common prefixes, in key order. The page token is the last key or
/// prefix of the previous page.
fn page(objects: &BTreeMap<String, ObjectRecord>, query: &ObjectQuery) -> ObjectListing {
    let limit = (query.limit as usize).min(MAX_KEYS);
    let mut listing = ObjectListing::default();
    if limit == 0 {
        return listing;
    }
    let prefix = query.prefix.as_deref().unwrap_or("");
    let after = query.page_token.as_deref();
    let start = match after {
        Some(token) if token >= prefix => Bound::Excluded(token),
        _ => Bound::Included(prefix),
    };
    let mut taken = 0;
    let mut last: Option<String> = None;
    for (key, object) in objects.range::<str, _>((start, Bound::Unbounded)) {
        if !key.starts_with(prefix) {
            break;
        }
        let rolled_up = query.delimiter.as_deref().and_then(|d| {
            key[prefix.len()..]
                .find(d)
                .map(|at| &key[..prefix.len() + at + d.len()])
        });
        let entry = rolled_up.unwrap_or(key);
        // Keys under a prefix a page already showed are skipped.
        if after.is_some_and(|token| entry <= token) || last.as_deref() == Some(entry) {
            continue;
        }
        if taken == limit {
            listing.next_page_token = last;
            return listing;
        }
        match rolled_up {
            Some(common) => listing.prefixes.push(common.to_string()),
            None => listing.items.push(ObjectSummary {
                key: key.clone(),
                size: object.body.len() as u64,
                etag: Some(object.etag.clone()),
                last_modified: Some(object.last_modified.clone()),
            }),
        }
        taken += 1;
        last = Some(entry.to_string());
    }
    listing
}

/// Reads a whole body; a body that breaks off is no object.
async fn read_body(mut body: ByteStream) -> Result<Bytes, ProviderError> {
    let mut bytes = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            ProviderError::new(
                Kind::InvalidInput,
                "body_incomplete",
                format!("the object's body could not be read to its end: {e}"),
            )
        })?;
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes.freeze())
}

/// A body as a stream of chunks that share the stored bytes.
fn stream_of(body: Bytes) -> ByteStream {
    let chunks: Vec<Result<Bytes, std::io::Error>> = (0..body.len())
        .step_by(CHUNK)
        .map(|at| Ok(body.slice(at..(at + CHUNK).min(body.len()))))
        .collect();
    Box::pin(futures::stream::iter(chunks))
}

/// A key in a URL path: percent-encoded, slashes kept.
fn encode_key(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl SimProvider {
    /// The region bucket-wide calls go to: the environment's first, as for AWS.
    fn home_region(&self) -> &str {
        self.settings.regions.first().map_or("", String::as_str)
    }
}

#[async_trait]
impl ObjectStore for SimProvider {
    async fn list_buckets(&self) -> Result<Vec<Bucket>, ProviderError> {
        self.run("ListBuckets", self.home_region(), |world| {
            Ok(world
                .buckets
                .iter()
                .map(|(name, b)| b.to_bucket(name))
                .collect())
        })
        .await
    }

    async fn bucket(&self, name: &str) -> Result<Option<Bucket>, ProviderError> {
        self.run("HeadBucket", self.home_region(), |world| {
            Ok(world.buckets.get(name).map(|b| b.to_bucket(name)))
        })
        .await
    }

    async fn create_bucket(
        &self,
        region: &str,
        name: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<Bucket, ProviderError> {
        self.run("CreateBucket", region, |world| {
            validate_bucket_name(name).map_err(|e| {
                refusal(
                    Kind::InvalidInput,
                    "invalid_bucket_name",
                    "InvalidBucketName",
                    e.message,
                )
                .with_field("name")
            })?;
            if world.buckets.contains_key(name) {
                return Err(refusal(
                    Kind::Conflict,
                    "bucket_exists",
                    "BucketAlreadyOwnedByYou",
                    format!("The bucket {name} already exists and is yours"),
                )
                .with_field("name"));
            }
            check_tags(tags)?;
            let record = BucketRecord {
                region: region.to_string(),
                created_at: world.clock.timestamp(),
                tags: tags.clone(),
                objects: BTreeMap::new(),
            };
            let bucket = record.to_bucket(name);
            world.buckets.insert(name.to_string(), record);
            Ok(bucket)
        })
        .await
    }

    async fn delete_bucket(&self, region: &str, name: &str) -> Result<(), ProviderError> {
        self.run("DeleteBucket", region, |world| {
            if !world.buckets.contains_key(name) {
                return Ok(());
            }
            if !bucket_in(world, region, name)?.objects.is_empty() {
                return Err(refusal(
                    Kind::Conflict,
                    "bucket_not_empty",
                    "BucketNotEmpty",
                    "The bucket you tried to delete is not empty",
                ));
            }
            world.buckets.remove(name);
            Ok(())
        })
        .await
    }

    async fn list_objects(
        &self,
        region: &str,
        bucket: &str,
        query: &ObjectQuery,
    ) -> Result<ObjectListing, ProviderError> {
        self.run("ListObjectsV2", region, |world| {
            Ok(page(&bucket_in(world, region, bucket)?.objects, query))
        })
        .await
    }

    async fn head_object(
        &self,
        region: &str,
        bucket: &str,
        key: &str,
    ) -> Result<Option<ObjectInfo>, ProviderError> {
        self.run("HeadObject", region, |world| {
            Ok(bucket_in(world, region, bucket)?
                .objects
                .get(key)
                .map(|o| o.info(key)))
        })
        .await
    }

    async fn get_object(
        &self,
        region: &str,
        bucket: &str,
        key: &str,
        range: Option<ByteRange>,
    ) -> Result<ObjectDownload, ProviderError> {
        self.run("GetObject", region, |world| {
            let object = bucket_in(world, region, bucket)?
                .objects
                .get(key)
                .ok_or_else(|| object_not_found(bucket, key))?;
            let info = object.info(key);
            let Some(range) = range else {
                return Ok(ObjectDownload {
                    info,
                    range: None,
                    body: stream_of(object.body.clone()),
                });
            };
            let size = info.size;
            let (first, last) = resolve(range, size).ok_or_else(|| {
                refusal(
                    Kind::RangeNotSatisfiable,
                    "range_not_satisfiable",
                    "InvalidRange",
                    format!("The requested range is not satisfiable for {size} bytes"),
                )
            })?;
            // Both bounds are within the body, which is in memory.
            let body = object.body.slice(first as usize..=last as usize);
            Ok(ObjectDownload {
                info,
                range: Some((first, last, size)),
                body: stream_of(body),
            })
        })
        .await
    }

    /// The body is read before the object is stored, so a broken body stores nothing.
    async fn put_object(
        &self,
        region: &str,
        bucket: &str,
        key: &str,
        spec: &ObjectSpec,
        body: ByteStream,
    ) -> Result<ObjectInfo, ProviderError> {
        let call = self.call("PutObject", region).await?;
        let body = match read_body(body).await {
            Ok(body) => body,
            Err(e) => return call.answer(Err(e)),
        };
        let result = {
            let mut world = self.world();
            let last_modified = world.clock.timestamp();
            bucket_in(&mut world, region, bucket).map(|b| {
                let object = ObjectRecord {
                    etag: etag(&body),
                    parts: u32::try_from((body.len() as u64).div_ceil(PART_SIZE).max(1))
                        .unwrap_or(u32::MAX),
                    body,
                    content_type: spec.content_type.clone(),
                    metadata: spec.metadata.clone(),
                    last_modified,
                };
                let info = object.info(key);
                b.objects.insert(key.to_string(), object);
                info
            })
        };
        call.answer(result)
    }

    async fn copy_object(
        &self,
        region: &str,
        source: (&str, &str),
        target: (&str, &str),
    ) -> Result<ObjectInfo, ProviderError> {
        self.run("CopyObject", region, |world| {
            let last_modified = world.clock.timestamp();
            let (source_bucket, source_key) = source;
            let mut object = world
                .buckets
                .get(source_bucket)
                .ok_or_else(|| bucket_not_found(source_bucket))?
                .objects
                .get(source_key)
                .ok_or_else(|| object_not_found(source_bucket, source_key))?
                .clone();
            object.last_modified = last_modified;
            let (target_bucket, target_key) = target;
            let info = object.info(target_key);
            bucket_in(world, region, target_bucket)?
                .objects
                .insert(target_key.to_string(), object);
            Ok(info)
        })
        .await
    }

    async fn delete_object(
        &self,
        region: &str,
        bucket: &str,
        key: &str,
    ) -> Result<(), ProviderError> {
        self.run("DeleteObject", region, |world| {
            bucket_in(world, region, bucket)?.objects.remove(key);
            Ok(())
        })
        .await
    }

    async fn delete_objects(
        &self,
        region: &str,
        bucket: &str,
        keys: &[String],
    ) -> Result<(), ProviderError> {
        self.run("DeleteObjects", region, |world| {
            if keys.len() > MAX_KEYS {
                return Err(refusal(
                    Kind::InvalidInput,
                    "invalid_input",
                    "MalformedXML",
                    format!("{} keys; one call deletes at most {MAX_KEYS}", keys.len()),
                )
                .with_field("keys"));
            }
            let objects = &mut bucket_in(world, region, bucket)?.objects;
            for key in keys {
                objects.remove(key);
            }
            Ok(())
        })
        .await
    }

    /// Signed locally, as the AWS backend signs: no call, no fault.
    async fn presign(
        &self,
        region: &str,
        bucket: &str,
        key: &str,
        method: PresignMethod,
        expires_in: Duration,
    ) -> Result<String, ProviderError> {
        self.check_region(region)?;
        if expires_in > MAX_PRESIGN {
            return Err(invalid(
                "expires_in",
                "a presigned link lasts at most 7 days (604,800 seconds)",
            ));
        }
        let expires = self.world().clock.wall().unix_timestamp()
            + i64::try_from(expires_in.as_secs()).unwrap_or(i64::MAX);
        Ok(format!(
            "https://{bucket}.s3.{region}.sim.invalid/{}?X-Sim-Method={}&X-Sim-Expires={expires}",
            encode_key(key),
            method.as_str()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{provider, settings};

    fn body(chunks: &[&'static [u8]]) -> ByteStream {
        let chunks: Vec<Result<Bytes, std::io::Error>> =
            chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect();
        Box::pin(futures::stream::iter(chunks))
    }

    async fn read(download: ObjectDownload) -> Vec<u8> {
        read_body(download.body).await.unwrap().to_vec()
    }

    async fn store_with(keys: &[&str]) -> SimProvider {
        let (sim, _) = provider(settings(0.0));
        sim.create_bucket("sim-1", "logs", &BTreeMap::new())
            .await
            .unwrap();
        for key in keys {
            sim.put_object("sim-1", "logs", key, &ObjectSpec::default(), body(&[b"x"]))
                .await
                .unwrap();
        }
        sim
    }

    #[tokio::test]
    async fn objects_go_in_as_streams_and_come_out_whole_or_in_ranges() {
        let sim = store_with(&[]).await;
        let spec = ObjectSpec {
            content_type: Some("text/plain".into()),
            metadata: BTreeMap::from([("origin".to_string(), "test".to_string())]),
            ..ObjectSpec::default()
        };
        let info = sim
            .put_object(
                "sim-1",
                "logs",
                "a/b.txt",
                &spec,
                body(&[b"hello ", b"world"]),
            )
            .await
            .unwrap();
        assert_eq!((info.size, info.parts), (11, Some(1)));
        let head = sim.head_object("sim-1", "logs", "a/b.txt").await.unwrap();
        assert_eq!(head.unwrap().metadata["origin"], "test");
        let whole = sim
            .get_object("sim-1", "logs", "a/b.txt", None)
            .await
            .unwrap();
        assert_eq!(read(whole).await, b"hello world");
        let tail = sim
            .get_object(
                "sim-1",
                "logs",
                "a/b.txt",
                Some(ByteRange::Last { length: 5 }),
            )
            .await
            .unwrap();
        assert_eq!(tail.range, Some((6, 10, 11)));
        assert_eq!(read(tail).await, b"world");
        let past = sim
            .get_object(
                "sim-1",
                "logs",
                "a/b.txt",
                Some(ByteRange::From { first: 11 }),
            )
            .await
            .err()
            .unwrap();
        assert_eq!(past.kind, Kind::RangeNotSatisfiable);
        let copy = sim
            .copy_object("sim-1", ("logs", "a/b.txt"), ("logs", "c.txt"))
            .await
            .unwrap();
        assert_eq!((copy.size, copy.etag.clone()), (11, head_etag(&sim).await));
        let broken: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from_static(b"ab")),
            Err(std::io::Error::other("connection reset")),
        ];
        let error = sim
            .put_object(
                "sim-1",
                "logs",
                "broken",
                &ObjectSpec::default(),
                Box::pin(futures::stream::iter(broken)),
            )
            .await
            .unwrap_err();
        assert_eq!(error.code, "body_incomplete");
        assert!(sim
            .head_object("sim-1", "logs", "broken")
            .await
            .unwrap()
            .is_none());
        let missing = sim
            .get_object("sim-1", "logs", "nope", None)
            .await
            .err()
            .unwrap();
        assert_eq!(missing.code, "object_not_found");
    }

    async fn head_etag(sim: &SimProvider) -> Option<String> {
        sim.head_object("sim-1", "logs", "a/b.txt")
            .await
            .unwrap()
            .and_then(|o| o.etag)
    }

    #[tokio::test]
    async fn listings_roll_up_prefixes_and_page_through_every_key_once() {
        let keys = ["a/1", "a/2", "b", "c/x/1", "c/y", "d"];
        let sim = store_with(&keys).await;
        let query =
            |prefix: Option<&str>, delimiter: Option<&str>, token: Option<String>| ObjectQuery {
                prefix: prefix.map(str::to_string),
                delimiter: delimiter.map(str::to_string),
                limit: 2,
                page_token: token,
            };
        let mut seen = Vec::new();
        let mut token = None;
        loop {
            let page = sim
                .list_objects("sim-1", "logs", &query(None, Some("/"), token))
                .await
                .unwrap();
            seen.extend(page.prefixes);
            seen.extend(page.items.into_iter().map(|o| o.key));
            token = page.next_page_token;
            if token.is_none() {
                break;
            }
        }
        seen.sort();
        assert_eq!(seen, ["a/", "b", "c/", "d"]);
        let under_c = sim
            .list_objects("sim-1", "logs", &query(Some("c/"), Some("/"), None))
            .await
            .unwrap();
        assert_eq!(under_c.prefixes, ["c/x/"]);
        assert_eq!(under_c.items[0].key, "c/y");
        assert_eq!(under_c.next_page_token, None);
        let flat = sim
            .list_objects(
                "sim-1",
                "logs",
                &ObjectQuery {
                    limit: 1000,
                    ..ObjectQuery::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(flat.items.len(), 6);
        sim.delete_objects("sim-1", "logs", &["a/1".to_string(), "zz".to_string()])
            .await
            .unwrap();
        sim.delete_object("sim-1", "logs", "b").await.unwrap();
        let left = sim
            .list_objects("sim-1", "logs", &query(None, None, None))
            .await
            .unwrap();
        let keys: Vec<_> = left.items.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["a/2", "c/x/1"]);
        assert_eq!(left.next_page_token.as_deref(), Some("c/x/1"));
    }

    #[tokio::test]
    async fn buckets_follow_s3s_rules() {
        let sim = store_with(&["k"]).await;
        let tags = BTreeMap::new();
        let taken = sim.create_bucket("sim-2", "logs", &tags).await.unwrap_err();
        assert_eq!(taken.code, "bucket_exists");
        let bad = sim
            .create_bucket("sim-1", "Bad_Name", &tags)
            .await
            .unwrap_err();
        assert_eq!((bad.code, bad.field), ("invalid_bucket_name", Some("name")));
        let listed = sim.list_buckets().await.unwrap();
        assert_eq!((listed.len(), listed[0].region.as_str()), (1, "sim-1"));
        assert!(sim.bucket("nope").await.unwrap().is_none());
        let elsewhere = sim
            .list_objects("sim-2", "logs", &ObjectQuery::default())
            .await
            .unwrap_err();
        assert_eq!(elsewhere.backend_code.as_deref(), Some("PermanentRedirect"));
        let full = sim.delete_bucket("sim-1", "logs").await.unwrap_err();
        assert_eq!(full.code, "bucket_not_empty");
        sim.delete_object("sim-1", "logs", "k").await.unwrap();
        sim.delete_bucket("sim-1", "logs").await.unwrap();
        sim.delete_bucket("sim-1", "logs").await.unwrap();
        let gone = sim.head_object("sim-1", "logs", "k").await.unwrap_err();
        assert_eq!(gone.code, "bucket_not_found");
    }

    #[tokio::test]
    async fn presigned_links_are_bounded_and_lead_nowhere() {
        let sim = store_with(&[]).await;
        let url = sim
            .presign(
                "sim-1",
                "logs",
                "a dir/ü",
                PresignMethod::Put,
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        assert!(
            url.starts_with("https://logs.s3.sim-1.sim.invalid/a%20dir/%C3%BC?X-Sim-Method=PUT"),
            "{url}"
        );
        let too_long = sim
            .presign(
                "sim-1",
                "logs",
                "k",
                PresignMethod::Get,
                MAX_PRESIGN + Duration::from_secs(1),
            )
            .await
            .unwrap_err();
        assert_eq!(too_long.field, Some("expires_in"));
    }

    #[test]
    fn ranges_resolve_as_http_says() {
        assert_eq!(
            resolve(ByteRange::Span { first: 2, last: 99 }, 10),
            Some((2, 9))
        );
        assert_eq!(resolve(ByteRange::Last { length: 99 }, 10), Some((0, 9)));
        assert_eq!(resolve(ByteRange::From { first: 0 }, 0), None);
        assert_eq!(
            resolve(
                ByteRange::Span {
                    first: 10,
                    last: 12
                },
                10
            ),
            None
        );
    }
}
