//! Image verification end to end against a real registry on loopback (Debian's
//! `docker-registry`, the CNCF distribution server): images the test pushes (a single-platform
//! Docker image, a multi-platform OCI index) checked through the API and the CLI; a
//! registry behind basic authentication, without and with configured credentials; and one
//! behind token authentication, through the bearer challenge, anonymously and with
//! credentials.

use crate::BIN;
use overcast_core::config::RegistryConfig;
use overcast_test_utils::process::{cli, run};
use overcast_test_utils::registry::{Registry, RegistryAuth, TokenRequest, TokenService};
use overcast_test_utils::{TestServer, ADMIN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A manifest format and the media types of the blobs it points at.
struct Format {
    manifest: &'static str,
    config: &'static str,
    layer: &'static str,
}

const DOCKER: Format = Format {
    manifest: DOCKER_MANIFEST,
    config: "application/vnd.docker.container.image.v1+json",
    layer: "application/vnd.docker.image.rootfs.diff.tar.gzip",
};

const OCI: Format = Format {
    manifest: OCI_MANIFEST,
    config: "application/vnd.oci.image.config.v1+json",
    layer: "application/vnd.oci.image.layer.v1.tar+gzip",
};

/// A manifest in the registry: what an index lists of it.
struct Pushed {
    digest: String,
    size: usize,
}

/// Pushes one platform's image, a config and a layer blob and the manifest over them,
/// under `tag` (or only by its digest).
async fn push_image(
    registry: &Registry,
    repository: &str,
    tag: Option<&str>,
    format: &Format,
    architecture: &str,
) -> Pushed {
    let layer = format!("the one layer of {repository} for {architecture}").into_bytes();
    let layer_digest = registry.push_blob(repository, &layer).await;
    let config = json!({"architecture": architecture, "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]}})
    .to_string()
    .into_bytes();
    let config_digest = registry.push_blob(repository, &config).await;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": format.manifest,
        "config": {"mediaType": format.config, "size": config.len(), "digest": config_digest},
        "layers": [{"mediaType": format.layer, "size": layer.len(), "digest": layer_digest}],
    })
    .to_string()
    .into_bytes();
    let digest = overcast_test_utils::registry::sha256_digest(&manifest);
    let reference = tag.unwrap_or(&digest);
    let pushed = registry
        .push_manifest(repository, reference, format.manifest, &manifest)
        .await;
    assert_eq!(pushed, digest);
    Pushed {
        digest,
        size: manifest.len(),
    }
}

/// What [`push_images`] pushed.
struct Images {
    /// `team/app:1.0`, one platform, Docker's schema 2.
    app: String,
    /// `team/multi:2.0`, an OCI index of linux/amd64 and linux/arm64/v8.
    index: String,
    amd64: String,
    arm64: String,
    /// `private/app:1.0`, one platform, Docker's schema 2.
    private: String,
}

async fn push_images(registry: &Registry) -> Images {
    let app = push_image(registry, "team/app", Some("1.0"), &DOCKER, "amd64").await;
    let amd64 = push_image(registry, "team/multi", None, &OCI, "amd64").await;
    let arm64 = push_image(registry, "team/multi", None, &OCI, "arm64").await;
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": amd64.digest, "size": amd64.size,
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": OCI_MANIFEST, "digest": arm64.digest, "size": arm64.size,
             "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
        ],
    })
    .to_string()
    .into_bytes();
    let index = registry
        .push_manifest("team/multi", "2.0", OCI_INDEX, &index)
        .await;
    let private = push_image(registry, "private/app", Some("1.0"), &DOCKER, "amd64").await;
    Images {
        app: app.digest,
        index,
        amd64: amd64.digest,
        arm64: arm64.digest,
        private: private.digest,
    }
}

/// A server whose config gives `registry` these settings.
async fn server_for(registry: &Registry, settings: RegistryConfig) -> TestServer {
    let host = registry.host.clone();
    TestServer::start_with(|config| {
        config.registries.insert(host, settings);
    })
    .await
}

/// Plain HTTP, no credentials: what a loopback registry needs.
fn insecure() -> RegistryConfig {
    RegistryConfig {
        insecure: true,
        ..RegistryConfig::default()
    }
}

/// A config's settings for `registry`: plain HTTP, as `username` with the password in a
/// file in `dir`.
fn with_password_file(dir: &Path, username: &str, password: &str) -> RegistryConfig {
    let path = dir.join(format!("{username}-password"));
    std::fs::write(&path, format!("{password}\n")).unwrap();
    RegistryConfig {
        username: Some(username.into()),
        password_file: Some(path),
        ..insecure()
    }
}

/// `method /v1/images?image=IMAGE` as `token`: the status, headers and body.
async fn check(
    server: &TestServer,
    method: Method,
    image: &str,
    token: &str,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let response = server
        .request(method, "/v1/images", Some(token))
        .query(&[("image", image)])
        .send()
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, body)
}

/// `overcast image check ARGS…` against `server`: exit code, stdout, stderr.
async fn cli_check(server: &TestServer, args: &[&str]) -> (i32, String, String) {
    let base = server.base.clone();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let mut all = vec!["image", "check"];
        all.extend(args.iter().map(String::as_str));
        cli(BIN, &base, &all)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_images_are_found_by_tag_and_digest_and_what_is_not_there_is_404() {
    let storage = tempfile::tempdir().unwrap();
    let registry = Registry::start(storage.path(), RegistryAuth::Open).await;
    let images = push_images(&registry).await;
    let server = server_for(&registry, insecure()).await;
    let viewer = server.token("acme", "viewer").await;
    let host = &registry.host;

    // A tag of a single-platform Docker image: HEAD says it with its headers, GET in full.
    let app = format!("{host}/team/app:1.0");
    let (status, headers, _) = check(&server, Method::HEAD, &app, &viewer).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["docker-content-digest"], images.app.as_str());
    assert_eq!(headers["content-type"], DOCKER_MANIFEST);
    let (status, _, found) = check(&server, Method::GET, &app, &viewer).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(
        found,
        json!({"reference": app, "registry": host, "repository": "team/app", "tag": "1.0",
               "exists": true, "digest": images.app, "media_type": DOCKER_MANIFEST})
    );

    // The multi-platform index: its media type and its two platforms.
    let multi = format!("{host}/team/multi:2.0");
    let (status, headers, _) = check(&server, Method::HEAD, &multi, &viewer).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["docker-content-digest"], images.index.as_str());
    assert_eq!(headers["content-type"], OCI_INDEX);
    let (status, _, found) = check(&server, Method::GET, &multi, &viewer).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["media_type"], OCI_INDEX);
    assert_eq!(found["digest"], images.index.as_str());
    assert_eq!(
        found["platforms"],
        json!([
            {"os": "linux", "architecture": "amd64", "digest": images.amd64},
            {"os": "linux", "architecture": "arm64", "variant": "v8", "digest": images.arm64},
        ])
    );

    // By digest: the digest is what is checked, whatever tag stands beside it.
    let by_digest = format!("{host}/team/app@{}", images.app);
    let (status, _, found) = check(&server, Method::GET, &by_digest, &viewer).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["digest"], images.app.as_str());
    assert_eq!(found["reference"], by_digest.as_str());
    assert!(found.get("tag").is_none(), "{found}");
    let platform = format!("{host}/team/multi@{}", images.arm64);
    let (status, _, found) = check(&server, Method::GET, &platform, &viewer).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["media_type"], OCI_MANIFEST);
    let unknown_digest = format!("{host}/team/app:1.0@sha256:{}", "0".repeat(64));
    let (status, _, _) = check(&server, Method::HEAD, &unknown_digest, &viewer).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // ecs-api's image check says it by status alone, its token in `X-Auth-Token`: present,
    // absent (a digest is checked, not ignored as ecs-api did), not a reference.
    for (image, expected) in [
        (app.clone(), StatusCode::OK),
        (by_digest.clone(), StatusCode::OK),
        (unknown_digest.clone(), StatusCode::NOT_FOUND),
        (format!("{host}/team/nothing:1.0"), StatusCode::NOT_FOUND),
        ("Not A Reference".to_string(), StatusCode::BAD_REQUEST),
    ] {
        let response = server
            .http
            .head(format!("{}/v1/ecs/images", server.base))
            .query(&[("image", &image)])
            .header("X-Auth-Token", &viewer)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected, "{image}");
    }

    // An absent repository and a wrong tag: 404, in the error shape of every 404.
    for absent in [
        format!("{host}/team/nothing:1.0"),
        format!("{host}/team/app:9.9"),
    ] {
        let (status, _, _) = check(&server, Method::HEAD, &absent, &viewer).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{absent}");
        let (status, _, body) = check(&server, Method::GET, &absent, &viewer).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{absent}");
        assert_eq!(body["error"]["code"], "image_not_found", "{body}");
        assert_eq!(
            body["error"]["message"],
            format!("image `{absent}` not found in {host}")
        );
        assert!(body["error"]["request_id"]
            .as_str()
            .unwrap()
            .starts_with("req_"));
    }

    // A reference that does not parse, or none: 400 naming `image`.
    for query in [format!("{host}/Team/App:1.0"), format!("{host}/team/app:")] {
        let (status, _, _) = check(&server, Method::HEAD, &query, &viewer).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _, body) = check(&server, Method::GET, &query, &viewer).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["field"], "image", "{body}");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is not an image reference"));
    }
    let (status, body) = server
        .call(Method::GET, "/v1/images", Some(&viewer), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["field"], "image", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_says_present_or_absent_and_exits_0_or_1() {
    let storage = tempfile::tempdir().unwrap();
    let registry = Registry::start(storage.path(), RegistryAuth::Open).await;
    let images = push_images(&registry).await;
    let server = server_for(&registry, insecure()).await;
    let host = &registry.host;

    let (code, out, err) = cli_check(&server, &[&format!("{host}/team/app:1.0")]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!(
            "present: {host}/team/app:1.0\ndigest: {}\nmedia type: {DOCKER_MANIFEST}\n",
            images.app
        )
    );
    let (code, out, err) = cli_check(&server, &[&format!("{host}/team/multi:2.0")]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("digest: {}\n", images.index)),
        "{out}"
    );
    assert!(out.contains(&format!("media type: {OCI_INDEX}\n")), "{out}");
    assert!(
        out.ends_with("platforms: linux/amd64, linux/arm64/v8\n"),
        "{out}"
    );
    let (code, out, err) = cli_check(
        &server,
        &["-o", "json", &format!("{host}/team/app@{}", images.app)],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let found: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(found["exists"], true);
    assert_eq!(found["digest"], images.app.as_str());

    let absent = format!("{host}/team/app:9.9");
    let (code, out, _) = cli_check(&server, &[&absent]).await;
    assert_eq!(code, 1);
    assert_eq!(
        out,
        format!("absent: image `{absent}` not found in {host}\n")
    );

    // Neither present nor absent: the reason, and exit 2.
    let (code, out, err) = cli_check(&server, &["team/App"]).await;
    assert_eq!(code, 2, "{out}");
    assert!(
        err.contains("image: `team/App` is not an image reference"),
        "{err}"
    );
    let base = server.base.clone();
    let (code, _, err) = tokio::task::spawn_blocking(move || {
        run(Command::new(BIN).args([
            "--url", &base, "--token", "oc_nope", "image", "check", "nginx",
        ]))
    })
    .await
    .unwrap();
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("HTTP 401"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registries_that_cannot_be_reached_are_503_and_https_is_the_default() {
    let storage = tempfile::tempdir().unwrap();
    let registry = Registry::start(storage.path(), RegistryAuth::Open).await;
    push_images(&registry).await;
    let host = &registry.host;

    // Not marked insecure: spoken to over HTTPS, which a plain-HTTP registry does not
    // answer.
    let server = TestServer::start().await;
    let (status, headers, body) =
        check(&server, Method::GET, &format!("{host}/team/app:1.0"), ADMIN).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "registry_unreachable");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "cannot reach https://{host}/v2/team/app/manifests/1.0: "
        )),
        "{message}"
    );
    assert_eq!(headers["retry-after"], "5");

    // Nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let server = TestServer::start_with(|config| {
        config.registries.insert(closed.to_string(), insecure());
    })
    .await;
    let image = format!("{closed}/team/app:1.0");
    let (status, _, _) = check(&server, Method::HEAD, &image, ADMIN).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (_, _, body) = check(&server, Method::GET, &image, ADMIN).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Connection refused"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_authentication_refuses_without_credentials_and_finds_with_them() {
    let storage = tempfile::tempdir().unwrap();
    let open = Registry::start(storage.path(), RegistryAuth::Open).await;
    let images = push_images(&open).await;
    let basic = Registry::start(
        storage.path(),
        RegistryAuth::Basic {
            username: "puller",
            password: "s3cret-pass",
        },
    )
    .await;
    let image = format!("{}/team/app:1.0", basic.host);
    let secrets = tempfile::tempdir().unwrap();

    let anonymous = server_for(&basic, insecure()).await;
    let (status, _, _) = check(&anonymous, Method::HEAD, &image, ADMIN).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, body) = check(&anonymous, Method::GET, &image, ADMIN).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "registry_denied");
    assert_eq!(
        body["error"]["message"],
        format!(
            "{0} asks for credentials (basic authentication) and none are configured for `{0}`",
            basic.host
        )
    );

    let wrong = server_for(
        &basic,
        with_password_file(secrets.path(), "puller", "guess"),
    )
    .await;
    let (status, _, body) = check(&wrong, Method::GET, &image, ADMIN).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("denied access to team/app (HTTP 401)"),
        "{message}"
    );
    assert!(!message.contains("guess"), "{message}");

    let configured = server_for(
        &basic,
        with_password_file(secrets.path(), "puller", "s3cret-pass"),
    )
    .await;
    let (status, headers, _) = check(&configured, Method::HEAD, &image, ADMIN).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["docker-content-digest"], images.app.as_str());
    let (status, _, found) = check(
        &configured,
        Method::GET,
        &format!("{}/team/multi:2.0", basic.host),
        ADMIN,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["platforms"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_challenge_gets_a_token_anonymously_or_with_credentials() {
    let storage = tempfile::tempdir().unwrap();
    let open = Registry::start(storage.path(), RegistryAuth::Open).await;
    let images = push_images(&open).await;
    let tokens = TokenService::start(&[("puller", "t0ken-pass")]).await;
    let registry = Registry::start(storage.path(), RegistryAuth::Token(&tokens)).await;
    let host = &registry.host;

    // The registry itself sends the challenge; overcast follows it anonymously.
    let anonymous = server_for(&registry, insecure()).await;
    let (status, _, found) = check(
        &anonymous,
        Method::GET,
        &format!("{host}/team/app:1.0"),
        ADMIN,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{found}\n{}", registry.log());
    assert_eq!(found["digest"], images.app.as_str());
    assert_eq!(
        tokens.requests(),
        [TokenRequest {
            scopes: vec!["repository:team/app:pull".into()],
            username: None
        }]
    );
    let (status, _, found) = check(
        &anonymous,
        Method::GET,
        &format!("{host}/team/multi:2.0"),
        ADMIN,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["platforms"].as_array().unwrap().len(), 2);

    // A private repository: the anonymous token grants nothing, and the registry says no.
    let private = format!("{host}/private/app:1.0");
    let (status, _, body) = check(&anonymous, Method::GET, &private, ADMIN).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "registry_denied");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("denied anonymous access to private/app (HTTP 401)"),
        "{message}"
    );
    assert!(
        message.contains(&format!("none are configured for `{host}`")),
        "{message}"
    );

    // With credentials from the server's environment, the token service grants it.
    // Named after this process: no other test sets it.
    let variable = format!("OVERCAST_TEST_REGISTRY_PASSWORD_{}", std::process::id());
    std::env::set_var(&variable, "t0ken-pass");
    let configured = server_for(
        &registry,
        RegistryConfig {
            username: Some("puller".into()),
            password_env: Some(variable),
            ..insecure()
        },
    )
    .await;
    let (status, headers, _) = check(&configured, Method::HEAD, &private, ADMIN).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["docker-content-digest"], images.private.as_str());
    assert_eq!(
        tokens.requests().last(),
        Some(&TokenRequest {
            scopes: vec!["repository:private/app:pull".into()],
            username: Some("puller".into())
        })
    );

    // Wrong credentials: the token service refuses them, and overcast says whose they are.
    let secrets = tempfile::tempdir().unwrap();
    let wrong = server_for(
        &registry,
        with_password_file(secrets.path(), "puller", "guess"),
    )
    .await;
    let (status, _, body) = check(&wrong, Method::GET, &private, ADMIN).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        body["error"]["message"],
        format!(
            "the token service {} refused the credentials configured for `{host}` (HTTP 401)",
            tokens.realm
        )
    );
}
