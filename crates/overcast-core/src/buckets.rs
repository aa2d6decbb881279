//! Buckets: listed and read with their region, tags and versioning; created in a region of
//! the environment, tagged with their org; deleted only when empty, unless `force`, which
//! empties them first in batches of 1,000 keys as one recorded operation with progress.

use async_trait::async_trait;
use overcast_provider::{ObjectQuery, ObjectStore};
use overcast_types::{
    tags, validate_bucket_name, Bucket, Error, Operation, Page, Role, TargetResult,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

use crate::access::{made_by, owner_tags, visible_or_404};
use crate::app::{Core, Idempotency, Target};
use crate::auth::Principal;
use crate::errors::provider_error;
use crate::objects::delete_under;
use crate::operations::attempts::find_or_create;
use crate::operations::{Change, InEnvironment, OperationContext};
use crate::tags::check_tags;

/// A request for a new bucket.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBucketRequest {
    pub name: String,
    /// Default: the environment's first region.
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub(crate) enum BucketChange {
    Create {
        region: String,
        name: String,
        tags: BTreeMap<String, String>,
    },
    Delete {
        region: String,
        name: String,
        force: bool,
    },
}

/// `bucket.create` and `bucket.delete`. A create finds the bucket an earlier run made; a
/// forced delete empties the bucket in pages, each a repeatable step.
pub(crate) struct BucketChanges;

#[async_trait]
impl Change for BucketChanges {
    const KINDS: &'static [&'static str] = &["bucket.create", "bucket.delete"];
    type Input = InEnvironment<BucketChange>;

    fn kind(input: &InEnvironment<BucketChange>) -> &'static str {
        match input.change {
            BucketChange::Create { .. } => "bucket.create",
            BucketChange::Delete { .. } => "bucket.delete",
        }
    }

    async fn run(
        &self,
        input: InEnvironment<BucketChange>,
        step: &mut OperationContext,
    ) -> Result<(), Error> {
        let env = step.environment(&input.environment)?;
        let store = env.object_store()?;
        match input.change {
            BucketChange::Create {
                region,
                name,
                mut tags,
            } => {
                step.set_total(1).await?;
                // Bucket names are unique, so a create cannot double; but one whose answer
                // was lost may have made the bucket without its tags. Every try finds a
                // bucket an earlier one finished by its operation tag, and a create again
                // over the bucket it made finishes the tagging.
                let operation_id = step.operation_id().to_string();
                tags.insert(tags::OPERATION.into(), operation_id.clone());
                let bucket = find_or_create(
                    "bucket",
                    &step.cancellation(),
                    || async {
                        let found = store.bucket(&name).await?;
                        Ok(found.filter(made_by(&operation_id)))
                    },
                    || store.create_bucket(&region, &name, &tags),
                )
                .await?;
                let bucket = env.with_owner(bucket);
                env.inventory.buckets.record([bucket.clone()]);
                step.record(TargetResult::done(name).with_detail(&bucket)?)
                    .await
            }
            BucketChange::Delete {
                region,
                name,
                force,
            } => {
                // A run that finds the bucket gone is a re-run after the delete was done.
                if store.bucket(&name).await.map_err(provider_error)?.is_none() {
                    return step
                        .record(TargetResult::done(name).with_message("already deleted"))
                        .await;
                }
                if !force && !is_empty(store, &region, &name).await? {
                    return Err(not_empty(&name));
                }
                let deleted = delete_under(store, step, &region, &name, None).await?;
                store
                    .delete_bucket(&region, &name)
                    .await
                    .map_err(provider_error)?;
                env.inventory
                    .buckets
                    .record_gone(std::slice::from_ref(&name));
                let message = format!("deleted after emptying {deleted} object(s)");
                step.record(TargetResult::done(name).with_message(message))
                    .await
            }
        }
    }
}

/// Whether a bucket holds no objects.
async fn is_empty(store: &dyn ObjectStore, region: &str, name: &str) -> Result<bool, Error> {
    let query = ObjectQuery {
        limit: 1,
        ..ObjectQuery::default()
    };
    let page = store
        .list_objects(region, name, &query)
        .await
        .map_err(provider_error)?;
    Ok(page.items.is_empty())
}

fn not_empty(name: &str) -> Error {
    Error::conflict(
        "bucket_not_empty",
        format!("bucket {name} is not empty: delete it with force=true to empty it first"),
    )
}

impl Core {
    /// Buckets the caller may see, from the inventory (read afresh when `fresh`).
    pub async fn buckets(
        &self,
        principal: &Principal,
        env: &str,
        fresh: bool,
    ) -> Result<Page<Bucket>, Error> {
        self.listed_visible(principal, env, None, fresh, |_| true)
            .await
    }

    pub async fn bucket(
        &self,
        principal: &Principal,
        env: &str,
        name: &str,
    ) -> Result<Bucket, Error> {
        let environment = self.environments.require(env)?;
        let found = environment
            .object_store()?
            .bucket(name)
            .await
            .map_err(provider_error)?
            .map(|bucket| environment.with_owner(bucket));
        visible_or_404(principal, found, "bucket", name)
    }

    /// Creates a bucket (an operation); names follow S3's rules even where the store would
    /// accept others.
    pub async fn create_bucket(
        &self,
        principal: &Principal,
        env: &str,
        request: &CreateBucketRequest,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        principal.require(Role::Operator)?;
        validate_bucket_name(&request.name)?;
        check_tags(&request.tags)?;
        let environment = self.environments.require(env)?;
        let region = environment.region_or_first(request.region.as_deref())?;
        if environment
            .object_store()?
            .bucket(&request.name)
            .await
            .map_err(provider_error)?
            .is_some()
        {
            return Err(Error {
                field: Some("name".into()),
                ..Error::conflict("bucket_exists", format!("bucket `{}` exists", request.name))
            });
        }
        self.bucket_homes.forget(env, &request.name);
        let input = InEnvironment::new(
            env,
            BucketChange::Create {
                region,
                name: request.name.clone(),
                tags: owner_tags(principal, &request.tags),
            },
        );
        let target = Target::new(env, format!("{env}/buckets/{}", request.name));
        self.start::<BucketChanges>(principal, target, &input, idempotency)
            .await
    }

    /// Deletes a bucket (an operation): 409 while it holds objects, unless `force`.
    pub async fn delete_bucket(
        &self,
        principal: &Principal,
        env: &str,
        name: &str,
        force: bool,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        principal.require(Role::Operator)?;
        if let Some(operation) = self.replayed(principal, idempotency).await? {
            return Ok(operation);
        }
        let bucket = self.bucket(principal, env, name).await?;
        let environment = self.environments.require(env)?;
        if !force && !is_empty(environment.object_store()?, &bucket.region, name).await? {
            return Err(not_empty(name));
        }
        self.bucket_homes.forget(env, name);
        let input = InEnvironment::new(
            env,
            BucketChange::Delete {
                region: bucket.region.clone(),
                name: name.to_string(),
                force,
            },
        );
        let target =
            Target::new(env, format!("{env}/buckets/{name}")).owned_by(bucket.org.as_deref());
        self.start::<BucketChanges>(principal, target, &input, idempotency)
            .await
    }
}
