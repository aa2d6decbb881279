//! The `ObjectStore` capability: buckets and their objects, with bodies streamed both ways.

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use overcast_types::{Bucket, ByteRange, ObjectInfo, ObjectListing};
use std::collections::BTreeMap;
use std::pin::Pin;
use std::time::Duration;

use crate::ProviderError;

/// An object body on its way through overcast, chunk by chunk, never whole in memory.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// Which objects a listing wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectQuery {
    pub prefix: Option<String>,
    /// Rolls keys up into common prefixes at this string, usually `/`.
    pub delimiter: Option<String>,
    /// At most this many objects and prefixes (the backend may cap it at 1,000).
    pub limit: u32,
    /// Where the previous page ended.
    pub page_token: Option<String>,
}

/// What an upload says about its object besides the bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectSpec {
    pub content_type: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    /// The body's length when the client said it; it lets large uploads pick part sizes
    /// that stay within the backend's part limit.
    pub size_hint: Option<u64>,
}

/// A download: the object's description and its body.
pub struct ObjectDownload {
    pub info: ObjectInfo,
    /// For a range request: the first and last byte sent and the object's whole size.
    pub range: Option<(u64, u64, u64)>,
    pub body: ByteStream,
}

/// What a presigned link allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresignMethod {
    Get,
    Put,
}

impl PresignMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            PresignMethod::Get => "GET",
            PresignMethod::Put => "PUT",
        }
    }
}

#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Every bucket the credentials own, with region, tags and versioning.
    async fn list_buckets(&self) -> Result<Vec<Bucket>, ProviderError>;

    /// One bucket, if it exists and the credentials own it.
    async fn bucket(&self, name: &str) -> Result<Option<Bucket>, ProviderError>;

    /// Creates a bucket in a region, tagged, in one attempt (see
    /// [`crate::Compute::run_instances`]: the caller looks for the bucket before trying again).
    async fn create_bucket(
        &self,
        region: &str,
        name: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<Bucket, ProviderError>;

    /// Deletes an empty bucket; a missing one is no error.
    async fn delete_bucket(&self, region: &str, name: &str) -> Result<(), ProviderError>;

    /// One page of a bucket's objects.
    async fn list_objects(
        &self,
        region: &str,
        bucket: &str,
        query: &ObjectQuery,
    ) -> Result<ObjectListing, ProviderError>;

    /// An object's description, if it exists.
    async fn head_object(
        &self,
        region: &str,
        bucket: &str,
        key: &str,
    ) -> Result<Option<ObjectInfo>, ProviderError>;

    /// An object's body (or one range of it), streamed.
    async fn get_object(
        &self,
        region: &str,
        bucket: &str,
        key: &str,
        range: Option<ByteRange>,
    ) -> Result<ObjectDownload, ProviderError>;

    /// Stores a body read from a stream, in parts when it is large, never holding all of
    /// it. A failed upload leaves no object and no unfinished parts behind.
    async fn put_object(
        &self,
        region: &str,
        bucket: &str,
        key: &str,
        spec: &ObjectSpec,
        body: ByteStream,
    ) -> Result<ObjectInfo, ProviderError>;

    /// Copies an object inside the store, without the bytes passing through overcast.
    async fn copy_object(
        &self,
        region: &str,
        source: (&str, &str),
        target: (&str, &str),
    ) -> Result<ObjectInfo, ProviderError>;

    /// Deletes one object; a missing one is no error.
    async fn delete_object(
        &self,
        region: &str,
        bucket: &str,
        key: &str,
    ) -> Result<(), ProviderError>;

    /// Deletes up to 1,000 keys in one call.
    async fn delete_objects(
        &self,
        region: &str,
        bucket: &str,
        keys: &[String],
    ) -> Result<(), ProviderError>;

    /// A link that lets its holder do `method` on the object until it expires.
    async fn presign(
        &self,
        region: &str,
        bucket: &str,
        key: &str,
        method: PresignMethod,
        expires_in: Duration,
    ) -> Result<String, ProviderError>;
}
