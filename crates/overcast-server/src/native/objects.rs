//! Objects in a bucket: listing, streamed upload and download (with `Range`), head, copy,
//! delete one or by prefix, and presigned links. Bodies pass through as streams; neither
//! they nor presigned links are ever logged.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::TryStreamExt;
use overcast_core::objects::{CopyObjectRequest, PresignRequest};
use overcast_provider::{ObjectQuery, ObjectSpec};
use overcast_types::{ByteRange, Error, ObjectInfo, ObjectListing, Operation, PresignedUrl};
use serde::Deserialize;
use std::collections::BTreeMap;
use utoipa::IntoParams;

use crate::native::error::{ApiResult, ErrorBody};
use crate::native::extract::{parse_param, ApiQuery, Mutation, NoBody};
use crate::native::extract::{ApiPath, Caller};
use crate::AppState;

/// User metadata travels in headers with this prefix, on upload and on download.
const META_PREFIX: &str = "x-overcast-meta-";

/// Object tags on upload: a URL query string, `team=data&tier=cold`.
const TAGGING_HEADER: &str = "x-overcast-tagging";

/// S3 lists at most this many keys per page.
const MAX_LIST: u32 = 1000;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only keys that start with this.
    prefix: Option<String>,
    /// Roll keys up into `prefixes` at this string, usually `/`.
    delimiter: Option<String>,
    /// 1 to 1,000; default 1,000.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// The `next_page_token` of the previous page.
    page_token: Option<String>,
}

/// One page of a bucket's objects; with `delimiter`, keys under a common prefix are rolled
/// up into `prefixes`.
#[utoipa::path(get, path = "/v1/environments/{env}/buckets/{bucket}/objects", tag = "objects",
    params(("env" = String, Path, description = "Environment name"), ("bucket" = String, Path, description = "Bucket name"), ListQuery),
    responses((status = 200, body = ObjectListing), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn object_list(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, bucket)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Json<ObjectListing>> {
    let expected = format!("a number from 1 to {MAX_LIST}");
    let limit = parse_param("limit", query.limit.as_deref(), &expected)?.unwrap_or(MAX_LIST);
    if !(1..=MAX_LIST).contains(&limit) {
        return Err(Error::invalid("limit", format!("{limit} is not from 1 to {MAX_LIST}")).into());
    }
    // A last page has no token, so an empty one is none this server gave (and a store
    // would refuse it as its own fault).
    if query.page_token.as_deref() == Some("") {
        return Err(Error::invalid("page_token", "is not a token this server gave").into());
    }
    let query = ObjectQuery {
        prefix: query.prefix,
        delimiter: query.delimiter,
        limit,
        page_token: query.page_token,
    };
    Ok(Json(
        state
            .core
            .objects(&principal, &env, &bucket, &query)
            .await?,
    ))
}

/// Stores the request body as an object, streamed (never whole in memory); large bodies go
/// up in parts, several at once. `Content-Type` is kept, `x-overcast-meta-NAME` headers
/// become metadata, and `x-overcast-tagging: k=v&k2=v2` tags the object. Not an operation:
/// the body is not kept, so a failed upload is retried by sending it again.
#[utoipa::path(put, path = "/v1/environments/{env}/buckets/{bucket}/objects/{*key}", tag = "objects",
    params(("env" = String, Path, description = "Environment name"), ("bucket" = String, Path, description = "Bucket name"),
           ("key" = String, Path, description = "Object key; may hold slashes")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The object's bytes"),
    responses((status = 201, body = ObjectInfo), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn object_put(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, bucket, key)): ApiPath<(String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let spec = ObjectSpec {
        content_type: header_text(&headers, header::CONTENT_TYPE.as_str())?,
        metadata: metadata_from(&headers)?,
        tags: match header_text(&headers, TAGGING_HEADER)? {
            Some(text) => serde_urlencoded::from_str::<BTreeMap<String, String>>(&text)
                .map_err(|e| Error::invalid(TAGGING_HEADER, format!("not `k=v&k2=v2`: {e}")))?,
            None => BTreeMap::new(),
        },
        size_hint: header_text(&headers, header::CONTENT_LENGTH.as_str())?
            .and_then(|v| v.parse().ok()),
    };
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let info = state
        .core
        .upload(&principal, &env, &bucket, &key, &spec, Box::pin(stream))
        .await?;
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

/// The object's bytes, streamed, with its content type, ETag and metadata as headers. A
/// `Range: bytes=FIRST-LAST` (or `FIRST-`, `-LENGTH`) asks for part of it: 206 with
/// `Content-Range`, or 416 when the range lies outside the object.
#[utoipa::path(get, path = "/v1/environments/{env}/buckets/{bucket}/objects/{*key}", tag = "objects",
    params(("env" = String, Path, description = "Environment name"), ("bucket" = String, Path, description = "Bucket name"),
           ("key" = String, Path, description = "Object key; may hold slashes"),
           ("Range" = Option<String>, Header, description = "One byte range")),
    responses((status = 200, description = "The object's bytes", content_type = "application/octet-stream"),
              (status = 206, description = "The range's bytes"), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 416, body = ErrorBody)))]
pub async fn object_get(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, bucket, key)): ApiPath<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let range = header_text(&headers, header::RANGE.as_str())?
        .map(|v| ByteRange::parse(&v))
        .transpose()?;
    let download = state
        .core
        .download(&principal, &env, &bucket, &key, range)
        .await?;
    let (status, length) = match download.range {
        Some((first, last, _)) => (StatusCode::PARTIAL_CONTENT, last + 1 - first),
        None => (StatusCode::OK, download.info.size),
    };
    let mut response = Response::new(Body::from_stream(download.body));
    *response.status_mut() = status;
    describe(response.headers_mut(), &download.info, length);
    if let Some((first, last, total)) = download.range {
        insert(
            response.headers_mut(),
            header::CONTENT_RANGE,
            &format!("bytes {first}-{last}/{total}"),
        );
    }
    Ok(response)
}

/// The object's headers without its bytes.
#[utoipa::path(head, path = "/v1/environments/{env}/buckets/{bucket}/objects/{*key}", tag = "objects",
    params(("env" = String, Path, description = "Environment name"), ("bucket" = String, Path, description = "Bucket name"),
           ("key" = String, Path, description = "Object key; may hold slashes")),
    responses((status = 200, description = "The object exists"), (status = 404, description = "No such object or bucket")))]
pub async fn object_head(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, bucket, key)): ApiPath<(String, String, String)>,
) -> ApiResult<Response> {
    let info = state.core.object(&principal, &env, &bucket, &key).await?;
    let mut response = StatusCode::OK.into_response();
    describe(response.headers_mut(), &info, info.size);
    Ok(response)
}

/// Deletes one object (an operation). A missing key is no error, as in S3.
#[utoipa::path(delete, path = "/v1/environments/{env}/buckets/{bucket}/objects/{*key}", tag = "objects",
    params(("env" = String, Path, description = "Environment name"), ("bucket" = String, Path, description = "Bucket name"),
           ("key" = String, Path, description = "Object key; may hold slashes"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 200, body = Operation), (status = 202, body = Operation), (status = 404, body = ErrorBody)))]
pub async fn object_delete(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, bucket, key)): ApiPath<(String, String, String)>,
    request: Mutation<NoBody>,
) -> ApiResult<Response> {
    let operation = state
        .core
        .delete_object(
            &principal,
            &env,
            &bucket,
            &key,
            request.idempotency.as_ref(),
        )
        .await?;
    request
        .answer(&state, &principal, operation, StatusCode::OK)
        .await
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeletePrefixQuery {
    /// Delete every object whose key starts with this (required, not empty).
    prefix: Option<String>,
}

/// Deletes every object under a prefix (an operation with progress), 1,000 keys per call.
#[utoipa::path(delete, path = "/v1/environments/{env}/buckets/{bucket}/objects", tag = "objects",
    params(("env" = String, Path, description = "Environment name"), ("bucket" = String, Path, description = "Bucket name"), DeletePrefixQuery,
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 200, body = Operation), (status = 202, body = Operation), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn object_delete_prefix(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, bucket)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<DeletePrefixQuery>,
    request: Mutation<NoBody>,
) -> ApiResult<Response> {
    let operation = state
        .core
        .delete_objects(
            &principal,
            &env,
            &bucket,
            query.prefix.as_deref().unwrap_or(""),
            request.idempotency.as_ref(),
        )
        .await?;
    request
        .answer(&state, &principal, operation, StatusCode::OK)
        .await
}

/// Copies an object into this bucket inside the store (an operation); the bytes do not
/// pass through overcast.
#[utoipa::path(post, path = "/v1/environments/{env}/buckets/{bucket}/objects", tag = "objects", request_body = CopyObjectRequest,
    params(("env" = String, Path, description = "Environment name"), ("bucket" = String, Path, description = "Target bucket"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 201, body = Operation), (status = 202, body = Operation), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn object_copy(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, bucket)): ApiPath<(String, String)>,
    request: Mutation<CopyObjectRequest>,
) -> ApiResult<Response> {
    let operation = state
        .core
        .copy_object(
            &principal,
            &env,
            &bucket,
            &request.body,
            request.idempotency.as_ref(),
        )
        .await?;
    request
        .answer(&state, &principal, operation, StatusCode::CREATED)
        .await
}

/// A presigned link to download (`GET`) or upload (`PUT`) one object without a token,
/// valid for `expires_in` seconds (at most the server's `presign_max_secs`).
#[utoipa::path(post, path = "/v1/environments/{env}/buckets/{bucket}/presign", tag = "objects", request_body = PresignRequest,
    params(("env" = String, Path, description = "Environment name"), ("bucket" = String, Path, description = "Bucket name")),
    responses((status = 200, body = PresignedUrl), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn object_presign(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, bucket)): ApiPath<(String, String)>,
    request: Mutation<PresignRequest>,
) -> ApiResult<Json<PresignedUrl>> {
    Ok(Json(
        state
            .core
            .presign(&principal, &env, &bucket, &request.body)
            .await?,
    ))
}

/// A header's value as text, or a 400 naming the header.
fn header_text(headers: &HeaderMap, name: &str) -> Result<Option<String>, Error> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .map(str::to_string)
                .map_err(|_| Error::invalid(name, "the value is not visible ASCII"))
        })
        .transpose()
}

/// `x-overcast-meta-NAME: VALUE` headers as metadata.
fn metadata_from(headers: &HeaderMap) -> Result<BTreeMap<String, String>, Error> {
    let mut metadata = BTreeMap::new();
    for (name, value) in headers {
        if let Some(key) = name.as_str().strip_prefix(META_PREFIX) {
            let value = value
                .to_str()
                .map_err(|_| Error::invalid(name.as_str(), "the value is not visible ASCII"))?;
            metadata.insert(key.to_string(), value.to_string());
        }
    }
    Ok(metadata)
}

/// The headers that describe an object: type, length, ETag, time and metadata.
fn describe(headers: &mut HeaderMap, info: &ObjectInfo, length: u64) {
    insert(
        headers,
        header::CONTENT_TYPE,
        info.content_type
            .as_deref()
            .unwrap_or("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(etag) = &info.etag {
        insert(headers, header::ETAG, etag);
    }
    if let Some(modified) = info.last_modified.as_deref().and_then(http_date) {
        insert(headers, header::LAST_MODIFIED, &modified);
    }
    for (name, value) in &info.metadata {
        if let Ok(name) = HeaderName::try_from(format!("{META_PREFIX}{name}")) {
            insert(headers, name, value);
        }
    }
}

/// Inserts a header, skipping a value HTTP cannot carry (the store's own data, which the
/// client can still read through the JSON routes).
fn insert(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

/// An RFC 3339 time as an HTTP date: `Sun, 22 Nov 2026 12:00:00 GMT`.
fn http_date(rfc3339: &str) -> Option<String> {
    use time::format_description::well_known::Rfc3339;
    let t = time::OffsetDateTime::parse(rfc3339, &Rfc3339).ok()?;
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.to_offset(time::UtcOffset::UTC).format(&format).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_become_http_dates() {
        assert_eq!(
            http_date("2026-11-22T12:03:04Z").as_deref(),
            Some("Sun, 22 Nov 2026 12:03:04 GMT")
        );
        assert_eq!(http_date("yesterday"), None);
    }

    #[test]
    fn metadata_comes_from_prefixed_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("x-overcast-meta-team", HeaderValue::from_static("data"));
        headers.insert("x-other", HeaderValue::from_static("no"));
        assert_eq!(
            metadata_from(&headers).unwrap(),
            BTreeMap::from([("team".to_string(), "data".to_string())])
        );
    }
}
