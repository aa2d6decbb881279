//! Objects in buckets: listed by prefix and delimiter, read and written as streams, copied,
//! deleted one by one or by prefix (operations), and shared through presigned links. Every
//! call first finds the bucket's region and checks the caller's org may see the bucket.
//!
//! An upload is the one change that is not an operation: its body streams through and is
//! never kept, so it could not be replayed. It is audited like every change, and a failed
//! upload leaves nothing behind (the backend aborts its parts).

use async_trait::async_trait;
use overcast_provider::{
    ByteStream, ObjectDownload, ObjectQuery, ObjectSpec, ObjectStore, PresignMethod,
};
use overcast_types::{
    validate_object_key, ByteRange, Error, ObjectInfo, ObjectListing, Operation, PresignedUrl,
    Role, TargetResult,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use utoipa::ToSchema;

use crate::access::visible_org;
use crate::app::{Core, Idempotency, Target};
use crate::auth::Principal;
use crate::errors::provider_error;
use crate::operations::{Change, InEnvironment, OperationContext};

/// S3 deletes at most this many keys per call.
const DELETE_BATCH: u32 = 1000;

/// How long a bucket's region and org are trusted without asking the store again. Object
/// calls are frequent; finding a bucket costs up to four backend calls.
const BUCKET_HOME_TTL: Duration = Duration::from_secs(30);

/// At most this many tags per object, as S3 allows.
const MAX_OBJECT_TAGS: usize = 10;

/// Where a bucket lives and whose it is, as recently looked up.
#[derive(Default)]
pub(crate) struct BucketHomes(Mutex<HashMap<(String, String), (BucketHome, Instant)>>);

#[derive(Debug, Clone)]
struct BucketHome {
    region: String,
    org: Option<String>,
}

impl BucketHomes {
    fn get(&self, env: &str, bucket: &str) -> Option<BucketHome> {
        let homes = self.0.lock().unwrap_or_else(|p| p.into_inner());
        homes
            .get(&(env.to_string(), bucket.to_string()))
            .filter(|(_, at)| at.elapsed() < BUCKET_HOME_TTL)
            .map(|(home, _)| home.clone())
    }

    fn put(&self, env: &str, bucket: &str, home: BucketHome) {
        let mut homes = self.0.lock().unwrap_or_else(|p| p.into_inner());
        homes.retain(|_, (_, at)| at.elapsed() < BUCKET_HOME_TTL);
        homes.insert(
            (env.to_string(), bucket.to_string()),
            (home, Instant::now()),
        );
    }

    /// Forgets a bucket that is being created or deleted.
    pub(crate) fn forget(&self, env: &str, bucket: &str) {
        let mut homes = self.0.lock().unwrap_or_else(|p| p.into_inner());
        homes.remove(&(env.to_string(), bucket.to_string()));
    }
}

/// A server-side copy into this bucket.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CopyObjectRequest {
    /// The new object's key.
    pub key: String,
    /// Default: this bucket.
    #[serde(default)]
    pub source_bucket: Option<String>,
    pub source_key: String,
}

/// A presigned link to ask for.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PresignRequest {
    pub key: String,
    /// `GET` (download) or `PUT` (upload). Default: `GET`.
    #[serde(default = "default_presign_method")]
    pub method: String,
    /// Seconds the link stays valid: 1 to the server's `presign_max_secs`. Default: 900,
    /// or that maximum if it is lower.
    #[serde(default)]
    pub expires_in: Option<u64>,
}

fn default_presign_method() -> String {
    "GET".into()
}

/// How long a presigned link lasts when the request does not say.
const DEFAULT_PRESIGN_SECS: u64 = 900;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub(crate) enum ObjectChange {
    Delete {
        region: String,
        bucket: String,
        key: String,
    },
    DeletePrefix {
        region: String,
        bucket: String,
        prefix: String,
    },
    Copy {
        region: String,
        source_bucket: String,
        source_key: String,
        bucket: String,
        key: String,
    },
}

/// `object.delete`, `.delete_prefix` and `.copy`: each repeats harmlessly, and a prefix
/// delete lists again on a re-run, so it deletes only what is left.
pub(crate) struct ObjectChanges;

#[async_trait]
impl Change for ObjectChanges {
    const KINDS: &'static [&'static str] =
        &["object.delete", "object.delete_prefix", "object.copy"];
    type Input = InEnvironment<ObjectChange>;

    fn kind(input: &InEnvironment<ObjectChange>) -> &'static str {
        match input.change {
            ObjectChange::Delete { .. } => "object.delete",
            ObjectChange::DeletePrefix { .. } => "object.delete_prefix",
            ObjectChange::Copy { .. } => "object.copy",
        }
    }

    async fn run(
        &self,
        input: InEnvironment<ObjectChange>,
        step: &mut OperationContext,
    ) -> Result<(), Error> {
        let env = step.environment(&input.environment)?;
        let store = env.object_store()?;
        let result = match input.change {
            ObjectChange::Delete {
                region,
                bucket,
                key,
            } => {
                step.set_total(1).await?;
                store
                    .delete_object(&region, &bucket, &key)
                    .await
                    .map_err(provider_error)?;
                TargetResult::done(key)
            }
            ObjectChange::DeletePrefix {
                region,
                bucket,
                prefix,
            } => {
                let deleted = delete_under(store, step, &region, &bucket, Some(&prefix)).await?;
                TargetResult::done(prefix).with_message(format!("deleted {deleted} object(s)"))
            }
            ObjectChange::Copy {
                region,
                source_bucket,
                source_key,
                bucket,
                key,
            } => {
                step.set_total(1).await?;
                let copied = store
                    .copy_object(&region, (&source_bucket, &source_key), (&bucket, &key))
                    .await
                    .map_err(provider_error)?;
                TargetResult::done(key).with_detail(&copied)?
            }
        };
        step.record(result).await
    }
}

/// Deletes every object under `prefix` (every object with none), a page of 1,000 keys per
/// call, counting them in the operation's progress. A re-run lists again, so it deletes
/// only what is left. Answers how many it deleted.
pub(crate) async fn delete_under(
    store: &dyn ObjectStore,
    step: &mut OperationContext,
    region: &str,
    bucket: &str,
    prefix: Option<&str>,
) -> Result<u64, Error> {
    let query = ObjectQuery {
        prefix: prefix.map(str::to_string),
        limit: DELETE_BATCH,
        ..ObjectQuery::default()
    };
    let mut deleted = 0u64;
    loop {
        step.check_cancelled()?;
        let page = store
            .list_objects(region, bucket, &query)
            .await
            .map_err(provider_error)?;
        if page.items.is_empty() {
            return Ok(deleted);
        }
        let keys: Vec<String> = page.items.into_iter().map(|o| o.key).collect();
        store
            .delete_objects(region, bucket, &keys)
            .await
            .map_err(provider_error)?;
        deleted += keys.len() as u64;
        // One more for the step that ends the operation, so it never shows as complete
        // while keys remain.
        step.set_total(deleted + 1).await?;
    }
}

/// Checks user metadata: names as HTTP headers carry them, values in printable ASCII.
fn check_metadata(metadata: &BTreeMap<String, String>) -> Result<(), Error> {
    for (name, value) in metadata {
        let field = format!("metadata.{name}");
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        {
            return Err(Error::invalid(
                field,
                "metadata names use lowercase letters, digits, `-` and `_`",
            ));
        }
        if !value.chars().all(|c| c == ' ' || c.is_ascii_graphic()) {
            return Err(Error::invalid(
                field,
                "metadata values are printable ASCII (S3 sends them as headers)",
            ));
        }
    }
    Ok(())
}

/// Checks object tags: S3's limits, and overcast's keys stay reserved.
fn check_object_tags(tags: &BTreeMap<String, String>) -> Result<(), Error> {
    if tags.len() > MAX_OBJECT_TAGS {
        return Err(Error::invalid(
            "tags",
            format!(
                "an object takes at most {MAX_OBJECT_TAGS} tags; {} were given",
                tags.len()
            ),
        ));
    }
    crate::tags::check_tags(tags)
}

fn presign_method(method: &str) -> Result<PresignMethod, Error> {
    match method.to_ascii_uppercase().as_str() {
        "GET" => Ok(PresignMethod::Get),
        "PUT" => Ok(PresignMethod::Put),
        _ => Err(Error::invalid(
            "method",
            format!("`{method}` is not GET or PUT"),
        )),
    }
}

impl Core {
    /// The region of a bucket the caller may see, and its environment's object store.
    async fn bucket_home(
        &self,
        principal: &Principal,
        env: &str,
        bucket: &str,
    ) -> Result<(&dyn ObjectStore, String), Error> {
        let environment = self.environments.require(env)?;
        let store = environment.object_store()?;
        let home = match self.bucket_homes.get(env, bucket) {
            Some(home) => home,
            None => {
                let found = store.bucket(bucket).await.map_err(provider_error)?;
                let found = found.ok_or_else(|| Error::not_found("bucket", bucket))?;
                let found = environment.with_owner(found);
                let home = BucketHome {
                    region: found.region,
                    org: found.org,
                };
                self.bucket_homes.put(env, bucket, home.clone());
                home
            }
        };
        if !visible_org(principal, home.org.as_deref()) {
            return Err(Error::not_found("bucket", bucket));
        }
        Ok((store, home.region))
    }

    /// One page of a bucket's objects, with common prefixes when a delimiter is given.
    pub async fn objects(
        &self,
        principal: &Principal,
        env: &str,
        bucket: &str,
        query: &ObjectQuery,
    ) -> Result<ObjectListing, Error> {
        let (store, region) = self.bucket_home(principal, env, bucket).await?;
        store
            .list_objects(&region, bucket, query)
            .await
            .map_err(provider_error)
    }

    /// An object's description.
    pub async fn object(
        &self,
        principal: &Principal,
        env: &str,
        bucket: &str,
        key: &str,
    ) -> Result<ObjectInfo, Error> {
        let (store, region) = self.bucket_home(principal, env, bucket).await?;
        store
            .head_object(&region, bucket, key)
            .await
            .map_err(provider_error)?
            .ok_or_else(|| Error::not_found("object", key))
    }

    /// An object's body, or one range of it, as a stream.
    pub async fn download(
        &self,
        principal: &Principal,
        env: &str,
        bucket: &str,
        key: &str,
        range: Option<ByteRange>,
    ) -> Result<ObjectDownload, Error> {
        let (store, region) = self.bucket_home(principal, env, bucket).await?;
        store
            .get_object(&region, bucket, key, range)
            .await
            .map_err(provider_error)
    }

    /// Stores an object from a stream.
    pub async fn upload(
        &self,
        principal: &Principal,
        env: &str,
        bucket: &str,
        key: &str,
        spec: &ObjectSpec,
        body: ByteStream,
    ) -> Result<ObjectInfo, Error> {
        principal.require(Role::Operator)?;
        validate_object_key("key", key)?;
        check_metadata(&spec.metadata)?;
        check_object_tags(&spec.tags)?;
        let (store, region) = self.bucket_home(principal, env, bucket).await?;
        store
            .put_object(&region, bucket, key, spec, body)
            .await
            .map_err(provider_error)
    }

    /// Deletes one object (an operation); a missing one is no error, as in S3.
    pub async fn delete_object(
        &self,
        principal: &Principal,
        env: &str,
        bucket: &str,
        key: &str,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        principal.require(Role::Operator)?;
        validate_object_key("key", key)?;
        let (_, region) = self.bucket_home(principal, env, bucket).await?;
        let change = ObjectChange::Delete {
            region,
            bucket: bucket.to_string(),
            key: key.to_string(),
        };
        let target = format!("{env}/buckets/{bucket}/objects/{key}");
        self.start::<ObjectChanges>(
            principal,
            Target::new(env, target),
            &InEnvironment::new(env, change),
            idempotency,
        )
        .await
    }

    /// Deletes every object under a prefix (an operation), 1,000 keys per call.
    pub async fn delete_objects(
        &self,
        principal: &Principal,
        env: &str,
        bucket: &str,
        prefix: &str,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        principal.require(Role::Operator)?;
        if prefix.is_empty() {
            return Err(Error::invalid(
                "prefix",
                "name a prefix; to delete every object, delete the bucket with force=true",
            ));
        }
        let (_, region) = self.bucket_home(principal, env, bucket).await?;
        let change = ObjectChange::DeletePrefix {
            region,
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        };
        let target = format!("{env}/buckets/{bucket}/objects/{prefix}*");
        self.start::<ObjectChanges>(
            principal,
            Target::new(env, target),
            &InEnvironment::new(env, change),
            idempotency,
        )
        .await
    }

    /// Copies an object into `bucket` inside the store (an operation). Both buckets must
    /// be the caller's and the source must exist.
    pub async fn copy_object(
        &self,
        principal: &Principal,
        env: &str,
        bucket: &str,
        request: &CopyObjectRequest,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        principal.require(Role::Operator)?;
        validate_object_key("key", &request.key)?;
        validate_object_key("source_key", &request.source_key)?;
        let source_bucket = request.source_bucket.as_deref().unwrap_or(bucket);
        let (store, source_region) = self
            .bucket_home(principal, env, source_bucket)
            .await
            .map_err(|e| Error {
                field: Some("source_bucket".into()),
                ..e
            })?;
        let (_, region) = self.bucket_home(principal, env, bucket).await?;
        if store
            .head_object(&source_region, source_bucket, &request.source_key)
            .await
            .map_err(provider_error)?
            .is_none()
        {
            return Err(Error {
                field: Some("source_key".into()),
                ..Error::not_found("object", &request.source_key)
            });
        }
        let change = ObjectChange::Copy {
            region,
            source_bucket: source_bucket.to_string(),
            source_key: request.source_key.clone(),
            bucket: bucket.to_string(),
            key: request.key.clone(),
        };
        let target = format!("{env}/buckets/{bucket}/objects/{}", request.key);
        self.start::<ObjectChanges>(
            principal,
            Target::new(env, target),
            &InEnvironment::new(env, change),
            idempotency,
        )
        .await
    }

    /// A presigned link to download or upload one object, valid for a bounded time.
    pub async fn presign(
        &self,
        principal: &Principal,
        env: &str,
        bucket: &str,
        request: &PresignRequest,
    ) -> Result<PresignedUrl, Error> {
        principal.require(Role::Operator)?;
        validate_object_key("key", &request.key)?;
        let method = presign_method(&request.method)?;
        let max = self.config.presign_max_secs;
        let secs = request.expires_in.unwrap_or(DEFAULT_PRESIGN_SECS.min(max));
        if !(1..=max).contains(&secs) {
            return Err(Error::invalid(
                "expires_in",
                format!("{secs} is not from 1 to {max} seconds (the server's presign_max_secs)"),
            ));
        }
        let (store, region) = self.bucket_home(principal, env, bucket).await?;
        if method == PresignMethod::Get
            && store
                .head_object(&region, bucket, &request.key)
                .await
                .map_err(provider_error)?
                .is_none()
        {
            return Err(Error::not_found("object", &request.key));
        }
        let expires_in = Duration::from_secs(secs);
        let url = store
            .presign(&region, bucket, &request.key, method, expires_in)
            .await
            .map_err(provider_error)?;
        let expires_at = crate::ids::now() + expires_in;
        Ok(PresignedUrl {
            method: method.as_str().into(),
            url,
            expires_at: expires_at
                .format(&time::format_description::well_known::Rfc3339)
                .map_err(|e| Error::internal(e.to_string()))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_must_travel_as_headers() {
        let ok = BTreeMap::from([("owner-team".to_string(), "data eng".to_string())]);
        check_metadata(&ok).unwrap();
        let bad_name = BTreeMap::from([("Owner Team".to_string(), "x".to_string())]);
        assert_eq!(
            check_metadata(&bad_name).unwrap_err().field.as_deref(),
            Some("metadata.Owner Team")
        );
        let bad_value = BTreeMap::from([("owner".to_string(), "zoë".to_string())]);
        assert!(check_metadata(&bad_value)
            .unwrap_err()
            .message
            .contains("ASCII"));
    }

    #[test]
    fn object_tags_keep_s3_limits_and_reserved_keys() {
        let many: BTreeMap<String, String> = (0..11)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect();
        assert_eq!(
            check_object_tags(&many).unwrap_err().field.as_deref(),
            Some("tags")
        );
        let reserved = BTreeMap::from([("overcast:org".to_string(), "x".to_string())]);
        assert!(check_object_tags(&reserved).is_err());
    }

    #[test]
    fn presign_methods_are_get_or_put() {
        assert_eq!(presign_method("get").unwrap(), PresignMethod::Get);
        assert_eq!(presign_method("PUT").unwrap(), PresignMethod::Put);
        assert_eq!(
            presign_method("DELETE").unwrap_err().field.as_deref(),
            Some("method")
        );
    }
}
