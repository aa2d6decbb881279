//! A real container image registry for tests: Debian's `docker-registry` (the CNCF
//! distribution server) as a child process on a free loopback port, killed when dropped,
//! open or behind basic or token authentication, with its storage in a directory the test
//! gives (so registries of different authentication serve the same images); pushes into
//! it over its HTTP API; and the token service whose signed tokens its token authentication
//! checks.
//!
//! `OVERCAST_TEST_REGISTRY` names the binary (default `/usr/bin/docker-registry`); basic
//! authentication's bcrypt password file is made with `htpasswd` (Debian's
//! `apache2-utils`). `./scripts/test` installs both.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;

/// The `service` of the token-authenticated registry, which its tokens must be for.
const TOKEN_SERVICE: &str = "overcast-test-registry";

/// The issuer the token-authenticated registry trusts.
const TOKEN_ISSUER: &str = "overcast-test-token-service";

/// Repositories under this prefix are private to the token service: it grants them only to
/// its users, and an anonymous token for them grants nothing.
pub const PRIVATE_PREFIX: &str = "private/";

/// How a registry authenticates its clients.
pub enum RegistryAuth<'a> {
    /// Anyone pulls and pushes.
    Open,
    /// HTTP basic authentication of one user (a bcrypt htpasswd file).
    Basic {
        username: &'a str,
        password: &'a str,
    },
    /// Bearer tokens, which only `service` issues.
    Token(&'a TokenService),
}

/// A running registry, killed when dropped (a failing test stops it too).
pub struct Registry {
    /// `127.0.0.1:PORT`: the registry as image references and config keys name it.
    pub host: String,
    child: Child,
    /// Its config, log and password file.
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    /// Starts a registry storing its images in `storage`, and waits until it answers.
    pub async fn start(storage: &Path, auth: RegistryAuth<'_>) -> Registry {
        let binary = std::env::var("OVERCAST_TEST_REGISTRY")
            .unwrap_or_else(|_| "/usr/bin/docker-registry".into());
        assert!(
            Path::new(&binary).exists(),
            "{binary} is missing: run ./scripts/test, which installs Debian's docker-registry"
        );
        let dir = tempfile::tempdir().unwrap();
        let auth = match auth {
            RegistryAuth::Open => String::new(),
            RegistryAuth::Basic { username, password } => {
                let path = dir.path().join("htpasswd");
                std::fs::write(&path, htpasswd_line(username, password)).unwrap();
                format!(
                    "auth:\n  htpasswd:\n    realm: overcast-test\n    path: {}\n",
                    path.display()
                )
            }
            RegistryAuth::Token(service) => format!(
                "auth:\n  token:\n    realm: {}\n    service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
                service.realm,
                service.certificate.display()
            ),
        };
        // A port found free can be taken before the registry binds it: then try another.
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let host = format!("127.0.0.1:{port}");
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  \
                     delete:\n    enabled: true\nhttp:\n  addr: {host}\n  secret: overcast-test-secret\n{auth}",
                    storage.display()
                ),
            )
            .unwrap();
            let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
            let mut child = Command::new(&binary)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("{binary} does not start: {e}"));
            let http = reqwest::Client::new();
            if answers(&mut child, &http, &host).await {
                return Registry {
                    host,
                    child,
                    dir,
                    http,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "the registry did not start:\n{}",
            std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default()
        );
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.host)
    }

    /// What the registry logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Uploads a blob in one piece (POST, then PUT with its digest); answers its digest.
    pub async fn push_blob(&self, repository: &str, content: &[u8]) -> String {
        let digest = sha256_digest(content);
        let started = self
            .http
            .post(format!("{}/v2/{repository}/blobs/uploads/", self.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(started.status(), StatusCode::ACCEPTED, "{}", self.log());
        let location = started.headers()["location"].to_str().unwrap().to_string();
        let upload = if location.starts_with('/') {
            format!("{}{location}", self.url())
        } else {
            location
        };
        let separator = if upload.contains('?') { '&' } else { '?' };
        let put = self
            .http
            .put(format!("{upload}{separator}digest={digest}"))
            .header("content-type", "application/octet-stream")
            .body(content.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(
            put.status(),
            StatusCode::CREATED,
            "{}",
            put.text().await.unwrap()
        );
        digest
    }

    /// Stores a manifest under `reference` (a tag or its digest); answers its digest.
    pub async fn push_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        manifest: &[u8],
    ) -> String {
        let put = self
            .http
            .put(format!(
                "{}/v2/{repository}/manifests/{reference}",
                self.url()
            ))
            .header("content-type", media_type)
            .body(manifest.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(
            put.status(),
            StatusCode::CREATED,
            "{}",
            put.text().await.unwrap()
        );
        let digest = sha256_digest(manifest);
        assert_eq!(put.headers()["docker-content-digest"], digest.as_str());
        digest
    }
}

/// Waits up to 10 s for a registry's API; `false` if its process ended first.
async fn answers(child: &mut Child, http: &reqwest::Client, host: &str) -> bool {
    for _ in 0..100 {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if http.get(format!("http://{host}/v2/")).send().await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// `sha256:` and the hex SHA-256 of `content`.
pub fn sha256_digest(content: &[u8]) -> String {
    let hash = ring::digest::digest(&ring::digest::SHA256, content);
    let hex: String = hash.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// One user's line of a bcrypt htpasswd file, the only hash distribution accepts.
fn htpasswd_line(username: &str, password: &str) -> String {
    let made = Command::new("htpasswd")
        .args(["-nbB", username, password])
        .output()
        .expect("htpasswd runs: run ./scripts/test, which installs Debian's apache2-utils");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    String::from_utf8(made.stdout).unwrap().trim().to_string() + "\n"
}

/// One request the token service answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The scopes asked for, e.g. `repository:app:pull`.
    pub scopes: Vec<String>,
    /// The basic-authenticated user, when the request carried a valid one.
    pub username: Option<String>,
}

/// A token service on loopback for a token-authenticated registry, as Docker Hub's
/// `auth.docker.io` is for its registry: anyone gets a token to pull a public repository,
/// only its users one for a repository under [`PRIVATE_PREFIX`], and wrong credentials a
/// 401. Tokens are JWTs signed with ES256 by a key whose self-signed certificate the
/// registry trusts. Stopped when dropped.
pub struct TokenService {
    /// The URL a registry's challenge names as its realm.
    pub realm: String,
    certificate: PathBuf,
    requests: Arc<Mutex<Vec<TokenRequest>>>,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TokenService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TokenService {
    /// Starts the service with these users (name, password).
    pub async fn start(users: &[(&str, &str)]) -> TokenService {
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate = rcgen::CertificateParams::new(vec!["overcast-test-token".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let certificate_path = dir.path().join("token.pem");
        std::fs::write(&certificate_path, certificate.pem()).unwrap();
        let signer = Arc::new(Signer {
            key_id: libtrust_key_id(&rcgen::PublicKeyData::subject_public_key_info(&key)),
            key: EcdsaKeyPair::from_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                &key.serialize_der(),
                &SystemRandom::new(),
            )
            .unwrap(),
            users: users
                .iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
        });
        let requests = Arc::new(Mutex::new(Vec::new()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let realm = format!("http://{}/token", listener.local_addr().unwrap());
        let seen = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (signer, seen) = (signer.clone(), seen.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let answer = signer.answer(&request, &seen);
                        async move { Ok::<_, Infallible>(answer) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        TokenService {
            realm,
            certificate: certificate_path,
            requests,
            _dir: dir,
            task,
        }
    }

    /// Every request answered so far, oldest first.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.requests.lock().unwrap().clone()
    }
}

/// What the token service's requests share: its signing key and its users.
struct Signer {
    key: EcdsaKeyPair,
    /// The key's id as libtrust (and so the registry) computes it from its certificate.
    key_id: String,
    users: Vec<(String, String)>,
}

impl Signer {
    fn answer(
        &self,
        request: &Request<Incoming>,
        seen: &Mutex<Vec<TokenRequest>>,
    ) -> Response<Full<Bytes>> {
        let url = reqwest::Url::parse(&format!("http://token{}", request.uri())).unwrap();
        let scopes: Vec<String> = url
            .query_pairs()
            .filter(|(k, _)| k == "scope")
            .map(|(_, v)| v.into_owned())
            .collect();
        let presented = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|v| STANDARD.decode(v).ok())
            .and_then(|v| String::from_utf8(v).ok());
        let username = match presented {
            None => None,
            Some(pair) => match self
                .users
                .iter()
                .find(|(user, password)| pair == format!("{user}:{password}"))
            {
                Some((user, _)) => Some(user.clone()),
                None => {
                    return reply(
                        StatusCode::UNAUTHORIZED,
                        json!({"details": "wrong credentials"}),
                    )
                }
            },
        };
        seen.lock().unwrap().push(TokenRequest {
            scopes: scopes.clone(),
            username: username.clone(),
        });
        // `repository:NAME:ACTIONS`, pull granted; private repositories to users only.
        let access: Vec<Value> = scopes
            .iter()
            .filter_map(|scope| {
                let (kind, rest) = scope.split_once(':')?;
                let (name, _) = rest.rsplit_once(':')?;
                let allowed = kind == "repository"
                    && (!name.starts_with(PRIVATE_PREFIX) || username.is_some());
                allowed.then(|| json!({"type": "repository", "name": name, "actions": ["pull"]}))
            })
            .collect();
        let token = self.sign(json!({
            "iss": TOKEN_ISSUER,
            "sub": username.clone().unwrap_or_default(),
            "aud": TOKEN_SERVICE,
            "exp": unix_now() + 300,
            "nbf": unix_now() - 60,
            "iat": unix_now() - 60,
            "jti": format!("{:016x}", rand::random::<u64>()),
            "access": access,
        }));
        reply(StatusCode::OK, json!({"token": token, "expires_in": 300}))
    }

    /// A compact JWS of `claims`, ES256, naming the key by its libtrust id.
    fn sign(&self, claims: Value) -> String {
        let header = json!({"typ": "JWT", "alg": "ES256", "kid": self.key_id});
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .key
            .sign(&SystemRandom::new(), signed.as_bytes())
            .unwrap();
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }
}

fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    response
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// libtrust's key id, by which distribution finds a token's key among the certificates it
/// trusts: the first 240 bits of the SHA-256 of the DER public key, in base32, in groups of
/// four joined by colons.
fn libtrust_key_id(public_key_der: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let hash = ring::digest::digest(&ring::digest::SHA256, public_key_der);
    let mut encoded = String::new();
    let (mut bits, mut buffer) = (0u32, 0u32);
    for byte in &hash.as_ref()[..30] {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            encoded.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    let groups: Vec<&str> = (0..encoded.len())
        .step_by(4)
        .map(|i| &encoded[i..i + 4])
        .collect();
    groups.join(":")
}
