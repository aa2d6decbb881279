//! S3 buckets and objects as the `ObjectStore` capability. Path-style addressing, so
//! S3-compatible stores (MinIO, Ceph RGW, Garage) work through `endpoint_url` as well as
//! AWS. Bodies stream through: uploads go in parts of 8 MiB, a few at a time, and a failed
//! or abandoned upload is aborted.

use async_trait::async_trait;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CompletedMultipartUpload, CompletedPart,
    CreateBucketConfiguration, Delete, ObjectIdentifier, Tag, Tagging,
};
use bytes::{Bytes, BytesMut};
use futures::future::try_join_all;
use futures::StreamExt;
use overcast_provider::{
    ByteStream, ObjectDownload, ObjectQuery, ObjectSpec, ObjectStore, PresignMethod, ProviderError,
    ProviderErrorKind,
};
use overcast_types::{Bucket, ByteRange, ObjectInfo, ObjectListing, ObjectSummary};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tokio::task::JoinSet;

use crate::errors::from_sdk;
use crate::{one_attempt_s3, AwsProvider};

#[async_trait]
impl ObjectStore for AwsProvider {
    async fn list_buckets(&self) -> Result<Vec<Bucket>, ProviderError> {
        let region = self.home_region()?;
        let s3 = self.s3(&region).await?;
        let result = s3.list_buckets().send().await;
        let listed = self.observe("ListBuckets", &region, result.map_err(from_sdk))?;
        let named: Vec<(String, Option<String>)> = listed
            .buckets()
            .iter()
            .filter_map(|b| {
                Some((
                    b.name()?.to_string(),
                    b.creation_date().map(|d| d.to_string()),
                ))
            })
            .collect();
        try_join_all(
            named
                .into_iter()
                .map(|(name, created)| self.details(name, created)),
        )
        .await
    }

    async fn bucket(&self, name: &str) -> Result<Option<Bucket>, ProviderError> {
        let region = self.home_region()?;
        let s3 = self.s3(&region).await?;
        let result = s3.head_bucket().bucket(name).send().await;
        // A HEAD's 404 has no body, so no error code: the SDK's typed error says it.
        if let Err(SdkError::ServiceError(service)) = &result {
            if service.err().is_not_found() {
                self.observe::<(), ProviderError>("HeadBucket", &region, Ok(()))?;
                return Ok(None);
            }
        }
        self.observe("HeadBucket", &region, result.map_err(from_sdk))?;
        Ok(Some(self.details(name.to_string(), None).await?))
    }

    async fn create_bucket(
        &self,
        region: &str,
        name: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<Bucket, ProviderError> {
        let s3 = self.s3(region).await?;
        let mut request = s3.create_bucket().bucket(name);
        // us-east-1 is the one region S3 wants no location constraint for.
        if region != "us-east-1" {
            request = request.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region))
                    .build(),
            );
        }
        let result = request
            .customize()
            .config_override(one_attempt_s3())
            .send()
            .await;
        match self.observe("CreateBucket", region, result.map_err(from_sdk)) {
            // Asked again after an answer was lost, S3 says the bucket is ours already: the
            // caller checked it did not exist before, so the earlier try made it.
            Err(e) if e.backend_code.as_deref() == Some("BucketAlreadyOwnedByYou") => {}
            other => {
                other?;
            }
        }
        if !tags.is_empty() {
            self.put_bucket_tags(region, name, tags).await?;
        }
        self.details(name.to_string(), None).await
    }

    async fn delete_bucket(&self, region: &str, name: &str) -> Result<(), ProviderError> {
        let s3 = self.s3(region).await?;
        let result = s3.delete_bucket().bucket(name).send().await;
        match self.observe("DeleteBucket", region, result.map_err(from_sdk)) {
            Err(e) if e.code == "bucket_not_found" => Ok(()),
            other => other.map(|_| ()),
        }
    }

    async fn list_objects(
        &self,
        region: &str,
        bucket: &str,
        query: &ObjectQuery,
    ) -> Result<ObjectListing, ProviderError> {
        let s3 = self.s3(region).await?;
        let result = s3
            .list_objects_v2()
            .bucket(bucket)
            .max_keys(query.limit.min(1000) as i32)
            .set_prefix(query.prefix.clone())
            .set_delimiter(query.delimiter.clone())
            .set_continuation_token(query.page_token.clone())
            .send()
            .await;
        let page = self.observe("ListObjectsV2", region, result.map_err(from_sdk))?;
        Ok(ObjectListing {
            items: page
                .contents()
                .iter()
                .filter_map(|o| {
                    Some(ObjectSummary {
                        key: o.key()?.to_string(),
                        size: o.size().unwrap_or(0).max(0) as u64,
                        etag: o.e_tag().map(str::to_string),
                        last_modified: o.last_modified().map(|t| t.to_string()),
                    })
                })
                .collect(),
            prefixes: page
                .common_prefixes()
                .iter()
                .filter_map(|p| p.prefix().map(str::to_string))
                .collect(),
            next_page_token: page.next_continuation_token().map(str::to_string),
        })
    }

    async fn head_object(
        &self,
        region: &str,
        bucket: &str,
        key: &str,
    ) -> Result<Option<ObjectInfo>, ProviderError> {
        let s3 = self.s3(region).await?;
        let result = s3.head_object().bucket(bucket).key(key).send().await;
        // A HEAD's 404 has no body, so no error code: the SDK's typed error says it.
        if let Err(SdkError::ServiceError(service)) = &result {
            if service.err().is_not_found() {
                self.observe::<(), ProviderError>("HeadObject", region, Ok(()))?;
                return Ok(None);
            }
        }
        let head = self.observe("HeadObject", region, result.map_err(from_sdk))?;
        Ok(Some(ObjectInfo {
            key: key.to_string(),
            size: head.content_length().unwrap_or(0).max(0) as u64,
            content_type: head.content_type().map(str::to_string),
            etag: head.e_tag().map(str::to_string),
            last_modified: head.last_modified().map(|t| t.to_string()),
            metadata: sorted(head.metadata()),
            parts: None,
        }))
    }

    async fn get_object(
        &self,
        region: &str,
        bucket: &str,
        key: &str,
        range: Option<ByteRange>,
    ) -> Result<ObjectDownload, ProviderError> {
        let s3 = self.s3(region).await?;
        let result = s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_range(range.map(|r| r.header_value()))
            .send()
            .await;
        let object = self.observe("GetObject", region, result.map_err(from_sdk))?;
        let length = object.content_length().unwrap_or(0).max(0) as u64;
        let sent = object.content_range().and_then(parse_content_range);
        let info = ObjectInfo {
            key: key.to_string(),
            size: sent.map_or(length, |(_, _, total)| total),
            content_type: object.content_type().map(str::to_string),
            etag: object.e_tag().map(str::to_string),
            last_modified: object.last_modified().map(|t| t.to_string()),
            metadata: sorted(object.metadata()),
            parts: None,
        };
        let body = futures::stream::unfold(object.body, |mut body| async move {
            body.next()
                .await
                .map(|chunk| (chunk.map_err(std::io::Error::other), body))
        });
        Ok(ObjectDownload {
            info,
            range: sent,
            body: Box::pin(body),
        })
    }

    async fn put_object(
        &self,
        region: &str,
        bucket: &str,
        key: &str,
        spec: &ObjectSpec,
        body: ByteStream,
    ) -> Result<ObjectInfo, ProviderError> {
        let s3 = self.s3(region).await?;
        let part_size = part_size(spec.size_hint);
        let mut reader = PartReader::new(body);
        let first = reader.next_part(part_size).await?.unwrap_or_default();
        let info = |size: u64, etag: Option<&str>, parts: u32| ObjectInfo {
            key: key.to_string(),
            size,
            content_type: spec.content_type.clone(),
            etag: etag.map(str::to_string),
            last_modified: None,
            metadata: spec.metadata.clone(),
            parts: Some(parts),
        };
        if reader.exhausted().await? {
            let size = first.len() as u64;
            let result = s3
                .put_object()
                .bucket(bucket)
                .key(key)
                .set_content_type(spec.content_type.clone())
                .set_metadata(metadata_of(spec))
                .set_tagging(tagging_of(spec))
                .content_length(size as i64)
                .body(first.into())
                .send()
                .await;
            let put = self.observe("PutObject", region, result.map_err(from_sdk))?;
            return Ok(info(size, put.e_tag(), 1));
        }
        let result = s3
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .set_content_type(spec.content_type.clone())
            .set_metadata(metadata_of(spec))
            .set_tagging(tagging_of(spec))
            .send()
            .await;
        let created = self.observe("CreateMultipartUpload", region, result.map_err(from_sdk))?;
        let upload = Multipart {
            s3: s3.clone(),
            bucket: bucket.to_string(),
            key: key.to_string(),
            upload_id: created.upload_id().unwrap_or_default().to_string(),
            finished: false,
        };
        let mut upload = AbortOnDrop(upload);
        match self
            .upload_parts(region, &upload.0, &mut reader, first, part_size)
            .await
        {
            Ok((size, etag, parts)) => {
                upload.0.finished = true;
                Ok(info(size, etag.as_deref(), parts))
            }
            Err(e) => {
                upload.0.finished = true;
                let result = upload.0.abort().await;
                // The upload's own failure is what the caller needs; a failed abort is
                // logged and left to the bucket's lifecycle rules.
                if let Err(abort) = self.observe("AbortMultipartUpload", region, result) {
                    tracing::warn!(error = %abort, "an unfinished multipart upload was left behind");
                }
                Err(e)
            }
        }
    }

    async fn copy_object(
        &self,
        region: &str,
        source: (&str, &str),
        target: (&str, &str),
    ) -> Result<ObjectInfo, ProviderError> {
        let s3 = self.s3(region).await?;
        let result = s3
            .copy_object()
            .copy_source(format!("{}/{}", source.0, encode_key(source.1)))
            .bucket(target.0)
            .key(target.1)
            .send()
            .await;
        self.observe("CopyObject", region, result.map_err(from_sdk))?;
        self.head_object(region, target.0, target.1)
            .await?
            .ok_or_else(|| {
                ProviderError::new(
                    ProviderErrorKind::NotFound,
                    "object_not_found",
                    format!("the copy {}/{} is gone again", target.0, target.1),
                )
            })
    }

    async fn delete_object(
        &self,
        region: &str,
        bucket: &str,
        key: &str,
    ) -> Result<(), ProviderError> {
        let s3 = self.s3(region).await?;
        let result = s3.delete_object().bucket(bucket).key(key).send().await;
        self.observe("DeleteObject", region, result.map_err(from_sdk))?;
        Ok(())
    }

    async fn delete_objects(
        &self,
        region: &str,
        bucket: &str,
        keys: &[String],
    ) -> Result<(), ProviderError> {
        let s3 = self.s3(region).await?;
        let objects = keys
            .iter()
            .map(|k| ObjectIdentifier::builder().key(k).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid)?;
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(invalid)?;
        let result = s3
            .delete_objects()
            .bucket(bucket)
            .delete(delete)
            .send()
            .await;
        let answer = self.observe("DeleteObjects", region, result.map_err(from_sdk))?;
        // DeleteObjects answers 200 even when some keys failed; they are listed instead.
        if let Some(failed) = answer.errors().first() {
            return Err(ProviderError::new(
                ProviderErrorKind::Refused,
                "backend_refused",
                format!(
                    "AWS DeleteObjects: {} of {} key(s) were not deleted, e.g. `{}`: {}",
                    answer.errors().len(),
                    keys.len(),
                    failed.key().unwrap_or_default(),
                    failed.message().unwrap_or("no reason given")
                ),
            ));
        }
        Ok(())
    }

    async fn presign(
        &self,
        region: &str,
        bucket: &str,
        key: &str,
        method: PresignMethod,
        expires_in: Duration,
    ) -> Result<String, ProviderError> {
        let s3 = self.s3(region).await?;
        let config = PresigningConfig::expires_in(expires_in).map_err(|e| {
            ProviderError::new(
                ProviderErrorKind::InvalidInput,
                "invalid_input",
                e.to_string(),
            )
            .with_field("expires_in")
        })?;
        // Presigning signs locally; no call reaches the store.
        let signed = match method {
            PresignMethod::Get => s3
                .get_object()
                .bucket(bucket)
                .key(key)
                .presigned(config)
                .await
                .map_err(from_sdk)?,
            PresignMethod::Put => s3
                .put_object()
                .bucket(bucket)
                .key(key)
                .presigned(config)
                .await
                .map_err(from_sdk)?,
        };
        Ok(signed.uri().to_string())
    }
}

/// Parts are this big unless the object is so large that S3's limit of 10,000 parts
/// needs bigger ones. S3 wants at least 5 MiB for every part but the last.
const PART_SIZE: usize = 8 << 20;

/// S3's most parts per upload.
const MAX_PARTS: u64 = 10_000;

/// Parts sent at once. With the part being read, memory holds at most five parts per
/// upload: 40 MiB at the default part size.
const PARTS_IN_FLIGHT: usize = 4;

/// The part size for a body of `size` bytes, if known: 8 MiB, or the next whole MiB that
/// keeps the parts within 10,000.
fn part_size(size: Option<u64>) -> usize {
    match size {
        Some(size) if size > PART_SIZE as u64 * MAX_PARTS => {
            let mib = 1u64 << 20;
            (size.div_ceil(MAX_PARTS).div_ceil(mib) * mib) as usize
        }
        _ => PART_SIZE,
    }
}

impl AwsProvider {
    /// Sends the parts of a multipart upload, a few at once, and completes it. Answers the
    /// size, the ETag and the number of parts.
    async fn upload_parts(
        &self,
        region: &str,
        upload: &Multipart,
        reader: &mut PartReader,
        first: Bytes,
        part_size: usize,
    ) -> Result<(u64, Option<String>, u32), ProviderError> {
        let mut in_flight = JoinSet::new();
        let mut done: Vec<CompletedPart> = Vec::new();
        let mut size = 0u64;
        let mut number = 0u64;
        let mut next = Some(first);
        while let Some(bytes) = next {
            number += 1;
            if number > MAX_PARTS {
                return Err(ProviderError::new(
                    ProviderErrorKind::InvalidInput,
                    "invalid_object_size",
                    format!(
                        "the object needs more than {MAX_PARTS} parts of {} MiB: send its \
                         Content-Length so overcast can pick larger parts",
                        part_size >> 20
                    ),
                ));
            }
            while in_flight.len() >= PARTS_IN_FLIGHT {
                done.push(self.part_done(region, in_flight.join_next().await).await?);
            }
            size += bytes.len() as u64;
            let request = upload
                .s3
                .upload_part()
                .bucket(&upload.bucket)
                .key(&upload.key)
                .upload_id(&upload.upload_id)
                .part_number(number as i32)
                .content_length(bytes.len() as i64)
                .body(bytes.into());
            let part_number = number as i32;
            in_flight.spawn(async move { (part_number, request.send().await) });
            next = reader.next_part(part_size).await?;
        }
        while !in_flight.is_empty() {
            done.push(self.part_done(region, in_flight.join_next().await).await?);
        }
        done.sort_by_key(|p| p.part_number());
        let result = upload
            .s3
            .complete_multipart_upload()
            .bucket(&upload.bucket)
            .key(&upload.key)
            .upload_id(&upload.upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(done))
                    .build(),
            )
            .send()
            .await;
        let completed =
            self.observe("CompleteMultipartUpload", region, result.map_err(from_sdk))?;
        Ok((size, completed.e_tag().map(str::to_string), number as u32))
    }

    /// The outcome of one part's upload task.
    async fn part_done(
        &self,
        region: &str,
        joined: Option<Result<(i32, PartResult), tokio::task::JoinError>>,
    ) -> Result<CompletedPart, ProviderError> {
        let (number, result) = joined
            .ok_or_else(|| upload_task_failed("no part was in flight"))?
            .map_err(|e| upload_task_failed(&e.to_string()))?;
        let part = self.observe("UploadPart", region, result.map_err(from_sdk))?;
        Ok(CompletedPart::builder()
            .part_number(number)
            .set_e_tag(part.e_tag().map(str::to_string))
            .build())
    }

    /// The region bucket-wide calls go to: the environment's first.
    fn home_region(&self) -> Result<String, ProviderError> {
        self.settings.regions.first().cloned().ok_or_else(|| {
            ProviderError::new(
                ProviderErrorKind::InvalidInput,
                "invalid_input",
                "the environment has no region",
            )
            .with_field("region")
        })
    }

    /// A bucket's region, tags and versioning.
    /// A bucket's tags (none when it has no tag set).
    pub(crate) async fn bucket_tags(
        &self,
        region: &str,
        name: &str,
    ) -> Result<BTreeMap<String, String>, ProviderError> {
        let s3 = self.s3(region).await?;
        let result = s3.get_bucket_tagging().bucket(name).send().await;
        match self.observe("GetBucketTagging", region, result.map_err(from_sdk)) {
            Ok(tagging) => Ok(tagging
                .tag_set()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect()),
            Err(e) if e.backend_code.as_deref() == Some("NoSuchTagSet") => Ok(BTreeMap::new()),
            Err(e) => Err(e),
        }
    }

    /// Replaces a bucket's whole tag set, as S3 only can; an empty set deletes it.
    pub(crate) async fn put_bucket_tags(
        &self,
        region: &str,
        name: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), ProviderError> {
        let s3 = self.s3(region).await?;
        if tags.is_empty() {
            let result = s3.delete_bucket_tagging().bucket(name).send().await;
            self.observe("DeleteBucketTagging", region, result.map_err(from_sdk))?;
            return Ok(());
        }
        let tag_set = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid)?;
        let tagging = Tagging::builder()
            .set_tag_set(Some(tag_set))
            .build()
            .map_err(invalid)?;
        let result = s3
            .put_bucket_tagging()
            .bucket(name)
            .tagging(tagging)
            .send()
            .await;
        self.observe("PutBucketTagging", region, result.map_err(from_sdk))?;
        Ok(())
    }

    async fn details(
        &self,
        name: String,
        created_at: Option<String>,
    ) -> Result<Bucket, ProviderError> {
        let home = self.home_region()?;
        let s3 = self.s3(&home).await?;
        let result = s3.get_bucket_location().bucket(&name).send().await;
        let location = self.observe("GetBucketLocation", &home, result.map_err(from_sdk))?;
        let region = match location.location_constraint().map(|c| c.as_str()) {
            None | Some("") => "us-east-1".to_string(),
            Some("EU") => "eu-west-1".to_string(),
            Some(other) => other.to_string(),
        };
        let regional = self.s3(&region).await.unwrap_or(s3);
        let tags = self.bucket_tags(&region, &name).await?;
        let result = regional.get_bucket_versioning().bucket(&name).send().await;
        // Some S3-compatible stores answer this for a never-versioned bucket in a form the
        // SDK cannot read; versioning is then shown as unknown rather than failing the
        // bucket. Real refusals (denied, no such bucket) still fail.
        let versioning =
            match self.observe("GetBucketVersioning", &region, result.map_err(from_sdk)) {
                Ok(answer) => answer.status().map(|s| match s {
                    BucketVersioningStatus::Enabled => "enabled".to_string(),
                    other => other.as_str().to_lowercase(),
                }),
                Err(e) if e.code == "backend_refused" => None,
                Err(e) => return Err(e),
            };
        Ok(Bucket {
            name,
            region,
            created_at,
            versioning,
            tags,
            org: None,
        })
    }
}

type PartResult = Result<
    aws_sdk_s3::operation::upload_part::UploadPartOutput,
    SdkError<aws_sdk_s3::operation::upload_part::UploadPartError, HttpResponse>,
>;

fn upload_task_failed(why: &str) -> ProviderError {
    ProviderError::new(
        ProviderErrorKind::Refused,
        "upload_failed",
        format!("a part upload failed inside overcast: {why}"),
    )
}

fn invalid(e: impl std::fmt::Display) -> ProviderError {
    ProviderError::new(
        ProviderErrorKind::InvalidInput,
        "invalid_input",
        e.to_string(),
    )
}

/// An unfinished multipart upload.
struct Multipart {
    s3: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    upload_id: String,
    /// Completed or aborted: nothing is left to clean up.
    finished: bool,
}

impl Multipart {
    fn abort(
        &self,
    ) -> impl std::future::Future<Output = Result<(), ProviderError>> + Send + 'static {
        let request = self
            .s3
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id);
        async move { request.send().await.map(|_| ()).map_err(from_sdk) }
    }
}

/// Aborts the upload if the request is dropped halfway (the client went away), so no
/// parts are left behind that S3 would keep and bill for.
struct AbortOnDrop(Multipart);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if self.0.finished {
            return;
        }
        let abort = self.0.abort();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = abort.await {
                    tracing::warn!(error = %e, "an abandoned multipart upload was left behind");
                }
            });
        }
    }
}

/// Cuts a body stream into parts of an exact size (the last may be shorter).
struct PartReader {
    body: ByteStream,
    /// Bytes read from the body but not yet put into a part.
    leftover: Bytes,
    ended: bool,
}

impl PartReader {
    fn new(body: ByteStream) -> PartReader {
        PartReader {
            body,
            leftover: Bytes::new(),
            ended: false,
        }
    }

    /// The next part, or `None` at the end of the body.
    async fn next_part(&mut self, size: usize) -> Result<Option<Bytes>, ProviderError> {
        let mut part = BytesMut::with_capacity(size);
        loop {
            let take = (size - part.len()).min(self.leftover.len());
            part.extend_from_slice(&self.leftover.split_to(take));
            if part.len() == size || !self.fill().await? {
                break;
            }
        }
        Ok((!part.is_empty()).then(|| part.freeze()))
    }

    /// Whether the body has no bytes left.
    async fn exhausted(&mut self) -> Result<bool, ProviderError> {
        Ok(self.leftover.is_empty() && !self.fill().await?)
    }

    /// Reads the next non-empty chunk into `leftover` if it is empty; false at the end.
    async fn fill(&mut self) -> Result<bool, ProviderError> {
        while self.leftover.is_empty() && !self.ended {
            match self.body.next().await {
                Some(chunk) => {
                    self.leftover = chunk.map_err(|e| {
                        ProviderError::new(
                            ProviderErrorKind::InvalidInput,
                            "body_incomplete",
                            format!("the object's body could not be read to its end: {e}"),
                        )
                    })?
                }
                None => self.ended = true,
            }
        }
        Ok(!self.leftover.is_empty())
    }
}

/// `bytes 0-99/1000` → (0, 99, 1000).
fn parse_content_range(value: &str) -> Option<(u64, u64, u64)> {
    let (span, total) = value.strip_prefix("bytes ")?.split_once('/')?;
    let (first, last) = span.split_once('-')?;
    Some((first.parse().ok()?, last.parse().ok()?, total.parse().ok()?))
}

fn sorted(metadata: Option<&HashMap<String, String>>) -> BTreeMap<String, String> {
    metadata
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

fn metadata_of(spec: &ObjectSpec) -> Option<HashMap<String, String>> {
    (!spec.metadata.is_empty()).then(|| spec.metadata.clone().into_iter().collect())
}

/// Object tags as S3's `x-amz-tagging` header wants them: a URL query string.
fn tagging_of(spec: &ObjectSpec) -> Option<String> {
    (!spec.tags.is_empty()).then(|| {
        spec.tags
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k, false), encode(v, false)))
            .collect::<Vec<_>>()
            .join("&")
    })
}

/// A key for `x-amz-copy-source`: percent-encoded, slashes kept.
fn encode_key(key: &str) -> String {
    encode(key, true)
}

fn encode(value: &str, keep_slash: bool) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b'/' if keep_slash => "/".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(chunks: &[&[u8]]) -> ByteStream {
        let chunks: Vec<Result<Bytes, std::io::Error>> = chunks
            .iter()
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        Box::pin(futures::stream::iter(chunks))
    }

    #[tokio::test]
    async fn bodies_are_cut_into_exact_parts_whatever_the_chunks() {
        let mut reader = PartReader::new(body_of(&[b"abc", b"", b"defgh", b"ij"]));
        assert_eq!(reader.next_part(4).await.unwrap().unwrap(), "abcd");
        assert!(!reader.exhausted().await.unwrap());
        assert_eq!(reader.next_part(4).await.unwrap().unwrap(), "efgh");
        assert_eq!(reader.next_part(4).await.unwrap().unwrap(), "ij");
        assert!(reader.exhausted().await.unwrap());
        assert_eq!(reader.next_part(4).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_body_that_fits_one_part_is_exhausted_after_it() {
        let mut reader = PartReader::new(body_of(&[b"abcd"]));
        assert_eq!(reader.next_part(4).await.unwrap().unwrap(), "abcd");
        assert!(reader.exhausted().await.unwrap());
    }

    #[tokio::test]
    async fn a_broken_body_is_an_error_not_a_short_object() {
        let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from_static(b"ab")),
            Err(std::io::Error::other("connection reset")),
        ];
        let mut reader = PartReader::new(Box::pin(futures::stream::iter(chunks)));
        let err = reader.next_part(4).await.unwrap_err();
        assert_eq!(err.code, "body_incomplete");
    }

    #[test]
    fn part_sizes_keep_within_ten_thousand_parts() {
        assert_eq!(part_size(None), PART_SIZE);
        assert_eq!(part_size(Some(1 << 30)), PART_SIZE);
        let huge = 200u64 << 30;
        let size = part_size(Some(huge)) as u64;
        assert!(huge.div_ceil(size) <= MAX_PARTS);
        assert_eq!(size % (1 << 20), 0);
    }

    #[test]
    fn content_ranges_and_copy_sources_are_read_and_written_as_s3_does() {
        assert_eq!(parse_content_range("bytes 0-99/1000"), Some((0, 99, 1000)));
        assert_eq!(parse_content_range("bytes */1000"), None);
        assert_eq!(encode_key("a dir/ü+x"), "a%20dir/%C3%BC%2Bx");
    }
}
