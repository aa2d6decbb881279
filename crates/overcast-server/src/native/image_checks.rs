//! Image verification: whether a container image reference exists in its registry, as a
//! HEAD for scripts (the status says it) and a GET answering what the registry said.

use axum::extract::State;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use overcast_core::image_checks::ImageCheck;
use overcast_types::Error;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::native::error::{ApiResult, ErrorBody};
use crate::native::extract::{ApiQuery, Caller};
use crate::AppState;

/// The header that carries a manifest's digest, as registries send it.
const DIGEST_HEADER: HeaderName = HeaderName::from_static("docker-content-digest");

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ImageQuery {
    /// An image reference: `nginx`, `nginx:alpine`, `ghcr.io/org/app:1.2`,
    /// `registry.example.com:5000/app@sha256:<64 hex digits>`.
    #[param(value_type = String)]
    image: Option<String>,
}

impl ImageQuery {
    fn image(&self) -> Result<&str, Error> {
        self.image.as_deref().ok_or_else(|| {
            Error::invalid("image", "is required: an image reference like nginx:alpine")
        })
    }
}

/// Whether the image exists in its registry, by status alone: 200 with the manifest's
/// `Docker-Content-Digest` and `Content-Type` (its media type), or 404.
#[utoipa::path(head, path = "/v1/images", tag = "registry", params(ImageQuery),
    responses(
        (status = 200, description = "The registry has the image",
         headers(("Docker-Content-Digest" = String, description = "The manifest's digest"),
                 ("Content-Type" = String, description = "The manifest's media type"))),
        (status = 403, description = "The registry denied overcast access to the repository: it is not there, or needs credentials overcast lacks"),
        (status = 404, description = "The registry has no such image"),
        (status = 502, description = "The registry or its token service failed, or answered what overcast cannot read"),
        (status = 503, description = "The registry cannot be reached, or throttles"),
        (status = 504, description = "The registry did not answer in time")))]
pub async fn image_head(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiQuery(query): ApiQuery<ImageQuery>,
) -> ApiResult<Response> {
    let check = state.core.check_image(&principal, query.image()?).await?;
    let mut response = StatusCode::OK.into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (DIGEST_HEADER, &check.digest),
        (header::CONTENT_TYPE, &check.media_type),
    ] {
        if let Some(value) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(name, value);
        }
    }
    Ok(response)
}

/// What the image's registry says of it: the normalized reference, the manifest's digest
/// and media type, and for an index the platforms it lists; 404 when the registry has no
/// such image.
#[utoipa::path(get, path = "/v1/images", tag = "registry", params(ImageQuery),
    responses(
        (status = 200, body = ImageCheck, description = "The registry has the image"),
        (status = 403, body = ErrorBody, description = "The registry denied overcast access to the repository: it is not there, or needs credentials overcast lacks"),
        (status = 404, body = ErrorBody, description = "The registry has no such image"),
        (status = 502, body = ErrorBody, description = "The registry or its token service failed, or answered what overcast cannot read"),
        (status = 503, body = ErrorBody, description = "The registry cannot be reached, or throttles"),
        (status = 504, body = ErrorBody, description = "The registry did not answer in time")))]
pub async fn image_check(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiQuery(query): ApiQuery<ImageQuery>,
) -> ApiResult<Json<ImageCheck>> {
    Ok(Json(
        state.core.check_image(&principal, query.image()?).await?,
    ))
}
