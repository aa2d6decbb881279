//! Tags of instances, images, security groups and buckets: set or remove, each as an
//! operation.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use overcast_core::auth::Principal;
use overcast_core::tags::{ResourceKind, TagRequest};
use overcast_types::Operation;
use serde::Deserialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

use crate::native::error::{ApiResult, ErrorBody};
use crate::native::extract::Mutation;
use crate::native::extract::{ApiPath, Caller};
use crate::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetTags {
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveTags {
    pub keys: Vec<String>,
}

async fn tag(
    state: &AppState,
    principal: &Principal,
    (env, id): (String, String),
    target: ResourceKind,
    set: BTreeMap<String, String>,
    remove: Vec<String>,
    request: &Mutation<impl Sized>,
) -> ApiResult<Response> {
    let change = TagRequest {
        target,
        id,
        set,
        remove,
    };
    let operation = state
        .core
        .tag_resource(principal, &env, change, request.idempotency.as_ref())
        .await?;
    request
        .answer(state, principal, operation, StatusCode::OK)
        .await
}

macro_rules! tag_routes {
    ($set:ident, $remove:ident, $kind:expr, $path:literal, $what:literal) => {
        #[doc = concat!("Sets tags of ", $what, " (an operation). Keys starting with `overcast:` or `aws:` are reserved.")]
        #[utoipa::path(put, path = $path, tag = "tags", request_body = SetTags,
            params(("env" = String, Path, description = "Environment name"), ("id" = String, Path, description = "Resource id"),
                   ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
            responses((status = 200, body = Operation), (status = 202, body = Operation), (status = 400, body = ErrorBody),
                      (status = 404, body = ErrorBody), (status = 403, body = ErrorBody)))]
        pub async fn $set(
            State(state): State<AppState>,
            Caller(principal): Caller,
            ApiPath(path): ApiPath<(String, String)>,
            request: Mutation<SetTags>,
        ) -> ApiResult<Response> {
            tag(&state, &principal, path, $kind, request.body.tags.clone(), vec![], &request).await
        }

        #[doc = concat!("Removes tags of ", $what, " by key (an operation).")]
        #[utoipa::path(delete, path = $path, tag = "tags", request_body = RemoveTags,
            params(("env" = String, Path, description = "Environment name"), ("id" = String, Path, description = "Resource id"),
                   ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
            responses((status = 200, body = Operation), (status = 202, body = Operation), (status = 400, body = ErrorBody),
                      (status = 404, body = ErrorBody), (status = 403, body = ErrorBody)))]
        pub async fn $remove(
            State(state): State<AppState>,
            Caller(principal): Caller,
            ApiPath(path): ApiPath<(String, String)>,
            request: Mutation<RemoveTags>,
        ) -> ApiResult<Response> {
            tag(&state, &principal, path, $kind, BTreeMap::new(), request.body.keys.clone(), &request).await
        }
    };
}

tag_routes!(
    instance_tag_set,
    instance_tag_remove,
    ResourceKind::Instance,
    "/v1/environments/{env}/instances/{id}/tags",
    "an instance"
);
tag_routes!(
    image_tag_set,
    image_tag_remove,
    ResourceKind::Image,
    "/v1/environments/{env}/images/{id}/tags",
    "an image"
);
tag_routes!(
    security_group_tag_set,
    security_group_tag_remove,
    ResourceKind::SecurityGroup,
    "/v1/environments/{env}/security-groups/{id}/tags",
    "a security group"
);
tag_routes!(
    bucket_tag_set,
    bucket_tag_remove,
    ResourceKind::Bucket,
    "/v1/environments/{env}/buckets/{id}/tags",
    "a bucket"
);
