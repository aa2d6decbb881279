//! The conversation with a registry about one reference: the manifest asked for with HEAD
//! (GET when HEAD is refused, or to read an index's platforms), a 401's challenge answered
//! once (a bearer token from the challenge's realm, or basic credentials), and the final
//! answer read as present, absent or a fault.

use crate::challenge::{parse_challenges, Challenge};
use crate::{
    is_index, Access, ImageCheck, Platform, Reference, RegistryError, DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST,
};
use base64::Engine;
use reqwest::header::{
    HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use reqwest::{Method, Response, StatusCode, Url};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::time::Duration;

/// How long a connection to a registry may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one request may take, answer included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest answer read: distribution refuses manifests over 4 MiB, and a token answer is
/// far smaller.
const MAX_ANSWER: usize = 4 << 20;

/// The header that carries a manifest's digest.
const DIGEST_HEADER: &str = "docker-content-digest";

/// The annotation buildx puts on an index's attestation manifests, which are not platforms.
const REFERENCE_TYPE: &str = "vnd.docker.reference.type";

/// Asks registries about image references. One HTTP client, so the requests of a check
/// (challenge, token, manifest) share connections.
pub struct Checker {
    http: reqwest::Client,
}

impl Checker {
    pub fn new() -> Result<Checker, RegistryError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("overcast/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| RegistryError::Client(e.to_string()))?;
        Ok(Checker { http })
    }

    /// Whether the registry of `reference` has a manifest for it, reached as `access` says.
    pub async fn check(
        &self,
        reference: &Reference,
        access: &Access,
    ) -> Result<ImageCheck, RegistryError> {
        let scheme = if access.insecure { "http" } else { "https" };
        let manifests = format!(
            "{scheme}://{}/v2/{}/manifests/",
            reference.registry_host(),
            reference.repository()
        );
        let mut session = Session {
            http: &self.http,
            reference,
            access,
            authorization: None,
        };
        let url = format!("{manifests}{}", reference.manifest_reference());
        let mut answer = session.request(Method::HEAD, &url).await?;
        if matches!(
            answer.status,
            StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED
        ) {
            answer = session.request(Method::GET, &url).await?;
        }
        let absent = ImageCheck {
            reference: reference.to_string(),
            registry: reference.registry_host().to_string(),
            repository: reference.repository().to_string(),
            tag: reference.tag().map(str::to_string),
            exists: false,
            digest: None,
            media_type: None,
            platforms: None,
        };
        if !session.present(&url, &answer)? {
            return Ok(absent);
        }
        let mut digest = answer.header(DIGEST_HEADER);
        let mut media_type = answer.media_type();
        // A manifest's own media type and digest are all a single-platform image needs; an
        // index is read for its platforms, and a HEAD that left either out, for them.
        let single = matches!(media_type.as_deref(), Some(DOCKER_MANIFEST | OCI_MANIFEST));
        let mut platforms = None;
        if !(single && digest.is_some()) {
            if answer.body.is_none() {
                // By digest when it is known, so the platforms are those of that manifest.
                let url = match &digest {
                    Some(digest) => format!("{manifests}{digest}"),
                    None => url.clone(),
                };
                answer = session.request(Method::GET, &url).await?;
                if !session.present(&url, &answer)? {
                    return Ok(absent);
                }
                digest = digest.or_else(|| answer.header(DIGEST_HEADER));
                media_type = answer.media_type().or(media_type);
            }
            let body = answer.body.as_deref().unwrap_or_default();
            let manifest: Manifest =
                serde_json::from_slice(body).map_err(|e| RegistryError::Failed {
                    url: url.clone(),
                    reason: format!("its manifest is not JSON: {e}"),
                })?;
            media_type = manifest.media_type.clone().or(media_type);
            digest =
                digest.or_else(|| Some(format!("sha256:{}", hex::encode(Sha256::digest(body)))));
            if media_type.as_deref().is_some_and(is_index) {
                platforms = Some(manifest.platforms());
            }
        }
        tracing::debug!(
            reference = %reference,
            digest = digest.as_deref().unwrap_or("-"),
            "the registry has the image"
        );
        Ok(ImageCheck {
            exists: true,
            digest,
            media_type,
            platforms,
            ..absent
        })
    }
}

/// The requests of one check: the authorization a challenge earned is kept for the next.
struct Session<'a> {
    http: &'a reqwest::Client,
    reference: &'a Reference,
    access: &'a Access,
    authorization: Option<HeaderValue>,
}

/// An answer of the registry, its body read only for GET.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Option<Vec<u8>>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// The media type, without parameters (`; charset=utf-8`).
    fn media_type(&self) -> Option<String> {
        self.header(CONTENT_TYPE.as_str())
            .and_then(|v| v.split(';').next().map(|t| t.trim().to_string()))
            .filter(|v| !v.is_empty())
    }

    /// The codes of a distribution error body, `{"errors": [{"code": ..., "message": ...}]}`.
    fn error_codes(&self) -> Vec<(String, String)> {
        #[derive(Deserialize)]
        struct Errors {
            errors: Vec<ErrorEntry>,
        }
        #[derive(Deserialize)]
        struct ErrorEntry {
            #[serde(default)]
            code: String,
            #[serde(default)]
            message: String,
        }
        self.body
            .as_deref()
            .and_then(|body| serde_json::from_slice::<Errors>(body).ok())
            .map(|e| e.errors.into_iter().map(|e| (e.code, e.message)).collect())
            .unwrap_or_default()
    }
}

impl Session<'_> {
    /// A manifest request; a 401 is answered once by its challenge and the request sent again.
    async fn request(&mut self, method: Method, url: &str) -> Result<Answer, RegistryError> {
        let answer = self.send(method.clone(), url).await?;
        if answer.status != StatusCode::UNAUTHORIZED || self.authorization.is_some() {
            return Ok(answer);
        }
        self.authorization = Some(self.authorize(url, &answer).await?);
        self.send(method, url).await
    }

    async fn send(&self, method: Method, url: &str) -> Result<Answer, RegistryError> {
        let accepted = [
            OCI_INDEX,
            DOCKER_MANIFEST_LIST,
            OCI_MANIFEST,
            DOCKER_MANIFEST,
        ]
        .join(", ");
        let mut request = self
            .http
            .request(method.clone(), url)
            .header(ACCEPT, accepted);
        if let Some(authorization) = &self.authorization {
            request = request.header(AUTHORIZATION, authorization.clone());
        }
        let response = request.send().await.map_err(|e| transport_error(url, &e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = if method == Method::GET {
            Some(read_bounded(url, response).await?)
        } else {
            None
        };
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// The `Authorization` a 401's challenge asks for: a bearer token from its realm
    /// (anonymous, or with the configured credentials), or the configured credentials for a
    /// basic challenge.
    async fn authorize(&self, url: &str, answer: &Answer) -> Result<HeaderValue, RegistryError> {
        let challenges: Vec<Challenge> = answer
            .headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(parse_challenges)
            .collect();
        if let Some(bearer) = challenges.iter().find(|c| c.is("bearer")) {
            let token = self.bearer_token(url, bearer).await?;
            return sensitive(url, &format!("Bearer {token}"));
        }
        if challenges.iter().any(|c| c.is("basic")) {
            let Some(credentials) = &self.access.credentials else {
                return Err(RegistryError::Denied(format!(
                    "{} asks for credentials (basic authentication) and none are configured for `{}`",
                    self.reference.registry_host(),
                    self.reference.domain()
                )));
            };
            let pair = format!("{}:{}", credentials.username, credentials.password);
            let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
            return sensitive(url, &format!("Basic {encoded}"));
        }
        let asked: Vec<&str> = challenges.iter().map(|c| c.scheme.as_str()).collect();
        Err(RegistryError::Failed {
            url: url.to_string(),
            reason: if asked.is_empty() {
                "it answered 401 without a WWW-Authenticate challenge".into()
            } else {
                format!(
                    "it asks for {} authentication, which overcast does not speak (only Bearer and Basic)",
                    asked.join(" or ")
                )
            },
        })
    }

    /// A token from the bearer challenge's realm for the challenge's scope (else pulling
    /// this repository), with the configured credentials when there are any.
    async fn bearer_token(
        &self,
        url: &str,
        challenge: &Challenge,
    ) -> Result<String, RegistryError> {
        let failed = |url: &str, reason: String| RegistryError::Failed {
            url: url.to_string(),
            reason,
        };
        let realm = challenge
            .param("realm")
            .ok_or_else(|| failed(url, "its bearer challenge names no realm".into()))?;
        let mut token_url = Url::parse(realm)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                failed(
                    url,
                    format!("its bearer challenge's realm `{realm}` is not an http(s) URL"),
                )
            })?;
        {
            let mut query = token_url.query_pairs_mut();
            if let Some(service) = challenge.param("service") {
                query.append_pair("service", service);
            }
            let scope = challenge.param("scope").map_or_else(
                || format!("repository:{}:pull", self.reference.repository()),
                str::to_string,
            );
            query.append_pair("scope", &scope);
        }
        let mut request = self.http.get(token_url.clone());
        if let Some(credentials) = &self.access.credentials {
            // Credentials for an HTTPS registry never travel in clear.
            if token_url.scheme() != "https" && !self.access.insecure {
                return Err(failed(
                    realm,
                    "it is plain HTTP, and the credentials of an HTTPS registry are not sent over it".into(),
                ));
            }
            request = request.basic_auth(&credentials.username, Some(&credentials.password));
        }
        tracing::debug!(
            realm,
            with_credentials = self.access.credentials.is_some(),
            "asking for a registry token"
        );
        let response = request
            .send()
            .await
            .map_err(|e| transport_error(realm, &e))?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = read_bounded(realm, response).await?;
        match status {
            s if s.is_success() => {
                #[derive(Deserialize)]
                struct TokenAnswer {
                    token: Option<String>,
                    access_token: Option<String>,
                }
                let answer: TokenAnswer = serde_json::from_slice(&body)
                    .map_err(|e| failed(realm, format!("its answer is not a token: {e}")))?;
                answer
                    .token
                    .or(answer.access_token)
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| failed(realm, "its answer holds no token".into()))
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Err(RegistryError::Denied(match self.access.credentials {
                    Some(_) => format!(
                        "the token service {realm} refused the credentials configured for `{}` (HTTP {})",
                        self.reference.domain(),
                        status.as_u16()
                    ),
                    None => format!(
                        "the token service {realm} refused an anonymous token (HTTP {}); no credentials are configured for `{}`",
                        status.as_u16(),
                        self.reference.domain()
                    ),
                }))
            }
            s => Err(fault(realm, s, retry_after, "")),
        }
    }

    /// Whether an answer to a manifest request says the manifest is there (`true`) or not
    /// (`false`); any other answer is the error it stands for.
    fn present(&self, url: &str, answer: &Answer) -> Result<bool, RegistryError> {
        let codes = answer.error_codes();
        let says_unknown = codes
            .iter()
            .any(|(code, _)| code == "MANIFEST_UNKNOWN" || code == "NAME_UNKNOWN");
        match answer.status {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ if says_unknown => Ok(false),
            s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
                let (host, repository, domain) = (
                    self.reference.registry_host(),
                    self.reference.repository(),
                    self.reference.domain(),
                );
                // Registries answer so for a repository that does not exist as for one the
                // caller may not read (Docker Hub does), so both are said.
                Err(RegistryError::Denied(match self.access.credentials {
                    Some(_) => format!(
                        "{host} denied access to {repository} (HTTP {}): it is not there, or the credentials configured for `{domain}` may not read it",
                        s.as_u16()
                    ),
                    None => format!(
                        "{host} denied anonymous access to {repository} (HTTP {}): it is not there, or it needs credentials, and none are configured for `{domain}`",
                        s.as_u16()
                    ),
                }))
            }
            s => {
                let detail: Vec<String> = codes
                    .iter()
                    .map(|(code, message)| format!("{code}: {message}"))
                    .collect();
                let detail = if detail.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", detail.join("; "))
                };
                Err(fault(url, s, retry_after(&answer.headers), &detail))
            }
        }
    }
}

/// The error a status that is neither success nor an answer about the manifest stands for.
fn fault(
    url: &str,
    status: StatusCode,
    retry_after_secs: Option<u64>,
    detail: &str,
) -> RegistryError {
    match status {
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => RegistryError::Busy {
            url: url.to_string(),
            status: status.as_u16(),
            retry_after_secs,
        },
        StatusCode::GATEWAY_TIMEOUT => RegistryError::TimedOut {
            url: url.to_string(),
        },
        s => RegistryError::Failed {
            url: url.to_string(),
            reason: format!("HTTP {}{detail}", s.as_u16()),
        },
    }
}

/// `Retry-After` in seconds (the HTTP-date form is not worth a date parser here).
fn retry_after(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// A header value no log or debug print shows; `url` is the request it is for.
fn sensitive(url: &str, text: &str) -> Result<HeaderValue, RegistryError> {
    let mut value = HeaderValue::from_str(text).map_err(|_| RegistryError::Failed {
        url: url.to_string(),
        reason: "a credential or token holds characters a header cannot carry".into(),
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// A request that got no answer: timed out, or could not connect.
fn transport_error(url: &str, error: &reqwest::Error) -> RegistryError {
    if error.is_timeout() {
        return RegistryError::TimedOut {
            url: url.to_string(),
        };
    }
    // reqwest's own text repeats the URL; the causes say what happened.
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    RegistryError::Unreachable {
        url: url.to_string(),
        reason: if causes.is_empty() {
            error.to_string()
        } else {
            causes.join(": ")
        },
    }
}

/// An answer's body, refused past [`MAX_ANSWER`].
async fn read_bounded(url: &str, mut response: Response) -> Result<Vec<u8>, RegistryError> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(url, &e))?
    {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err(RegistryError::Failed {
                url: url.to_string(),
                reason: format!("its answer is larger than {} MiB", MAX_ANSWER >> 20),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The parts of a manifest a check reads: its media type and, in an index, the manifests
/// it lists.
#[derive(Deserialize)]
struct Manifest {
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
    platform: Option<DescribedPlatform>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct DescribedPlatform {
    os: String,
    architecture: String,
    variant: Option<String>,
}

impl Manifest {
    /// The platforms an index lists, leaving out entries that are not images of a platform
    /// (attestations, and entries that name none).
    fn platforms(self) -> Vec<Platform> {
        self.manifests
            .into_iter()
            .filter(|m| !m.annotations.contains_key(REFERENCE_TYPE))
            .filter_map(|m| {
                let platform = m.platform?;
                Some(Platform {
                    os: platform.os,
                    architecture: platform.architecture,
                    variant: platform.variant.filter(|v| !v.is_empty()),
                    digest: m.digest,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, headers: &[(&'static str, &str)], body: Option<&str>) -> Answer {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers: map,
            body: body.map(|b| b.as_bytes().to_vec()),
        }
    }

    fn with_session<T>(credentials: bool, f: impl FnOnce(&Session) -> T) -> T {
        let http = reqwest::Client::new();
        let reference = Reference::parse("registry.example:5000/team/app:1.0").unwrap();
        let access = Access {
            insecure: false,
            credentials: credentials.then(|| crate::Credentials {
                username: "u".into(),
                password: "p".into(),
            }),
        };
        let session = Session {
            http: &http,
            reference: &reference,
            access: &access,
            authorization: None,
        };
        f(&session)
    }

    #[test]
    fn answers_read_as_present_absent_or_the_fault_they_are() {
        with_session(false, |s| {
            let url = "https://registry.example:5000/v2/team/app/manifests/1.0";
            assert!(s.present(url, &answer(200, &[], None)).unwrap());
            assert!(!s.present(url, &answer(404, &[], None)).unwrap());
            let unknown = r#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}"#;
            assert!(!s.present(url, &answer(400, &[], Some(unknown))).unwrap());
            let denied = s
                .present(url, &answer(401, &[], None))
                .unwrap_err()
                .to_string();
            assert!(
                denied.contains("denied anonymous access to team/app (HTTP 401)"),
                "{denied}"
            );
            assert!(
                denied.contains("none are configured for `registry.example:5000`"),
                "{denied}"
            );
            assert_eq!(
                s.present(url, &answer(429, &[("retry-after", "7")], None)),
                Err(RegistryError::Busy {
                    url: url.into(),
                    status: 429,
                    retry_after_secs: Some(7)
                })
            );
            assert!(matches!(
                s.present(url, &answer(503, &[], None)),
                Err(RegistryError::Busy {
                    status: 503,
                    retry_after_secs: None,
                    ..
                })
            ));
            assert!(matches!(
                s.present(url, &answer(504, &[], None)),
                Err(RegistryError::TimedOut { .. })
            ));
            let odd = r#"{"errors":[{"code":"UNSUPPORTED","message":"nope"}]}"#;
            assert_eq!(
                s.present(url, &answer(500, &[], Some(odd)))
                    .unwrap_err()
                    .to_string(),
                format!("{url} failed: HTTP 500 (UNSUPPORTED: nope)")
            );
        });
        with_session(true, |s| {
            let denied = s
                .present("u", &answer(403, &[], None))
                .unwrap_err()
                .to_string();
            assert!(
                denied
                    .contains("credentials configured for `registry.example:5000` may not read it"),
                "{denied}"
            );
        });
    }

    #[test]
    fn an_index_lists_its_platforms_but_not_its_attestations() {
        let index: Manifest = serde_json::from_str(
            r#"{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:a", "size": 1,
                 "platform": {"architecture": "amd64", "os": "linux"}},
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:b", "size": 1,
                 "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:c", "size": 1,
                 "platform": {"architecture": "unknown", "os": "unknown"},
                 "annotations": {"vnd.docker.reference.type": "attestation-manifest"}},
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:d", "size": 1}
            ]}"#,
        )
        .unwrap();
        assert_eq!(index.media_type.as_deref(), Some(OCI_INDEX));
        let platforms: Vec<String> = index
            .platforms()
            .iter()
            .map(|p| format!("{p} {}", p.digest))
            .collect();
        assert_eq!(
            platforms,
            ["linux/amd64 sha256:a", "linux/arm64/v8 sha256:b"]
        );
    }

    #[test]
    fn media_types_drop_their_parameters() {
        let a = answer(
            200,
            &[(
                "content-type",
                "application/vnd.oci.image.index.v1+json; charset=utf-8",
            )],
            None,
        );
        assert_eq!(a.media_type().as_deref(), Some(OCI_INDEX));
        assert_eq!(answer(200, &[], None).media_type(), None);
    }
}
