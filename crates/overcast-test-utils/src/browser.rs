//! A real browser for the console's tests: Debian's headless Chromium, driven over
//! WebDriver by Debian's chromedriver (`OVERCAST_TEST_CHROMEDRIVER`, and the browser at
//! `OVERCAST_TEST_CHROMIUM`; `scripts/test` installs both). Each [`Browser`] has a driver
//! of its own on a free port, in a process group of its own with the browser it starts, and
//! a fresh profile; dropping it ends the session and kills the group, so nothing outlives a
//! test, passed or failed.

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long [`Browser::find`] and [`Browser::wait_until`] wait.
const PATIENCE: Duration = Duration::from_secs(30);

/// One browser at a time: Chromium is the heaviest thing a test starts, and the suite runs
/// on two cores beside it.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A headless Chromium window, at 1280×900 unless resized.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

fn tool(var: &str) -> PathBuf {
    PathBuf::from(std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run ./scripts/test, which installs Chromium and chromedriver")
    }))
}

impl Browser {
    pub async fn start() -> Browser {
        let turn = ONE_AT_A_TIME.lock().await;
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let driver = Command::new(tool("OVERCAST_TEST_CHROMEDRIVER"))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::new();
        let status = format!("http://127.0.0.1:{port}/status");
        let deadline = Instant::now() + PATIENCE;
        while http.get(&status).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not answer");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        // Without the background-networking flags Chromium tries to reach Google's hosts at
        // every start, which a closed network refuses many times over.
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,900",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": tool("OVERCAST_TEST_CHROMIUM"),
                "args": args,
            },
        }}});
        let created: Value = http
            .post(format!("http://127.0.0.1:{port}/session"))
            .json(&capabilities)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {created}"))
            .to_string();
        Browser {
            driver,
            port,
            session,
            http,
            _profile: profile,
            _turn: turn,
        }
    }

    /// A WebDriver command of this session: its `value`, or the driver's error and message.
    async fn try_command(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, (String, String)> {
        let url = format!(
            "http://127.0.0.1:{}/session/{}{path}",
            self.port, self.session
        );
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        match answer["value"]["error"].as_str() {
            Some(error) => Err((
                error.to_string(),
                answer["value"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )),
            None => Ok(answer["value"].clone()),
        }
    }

    /// [`Browser::try_command`]; an error answer panics with the driver's message.
    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        match self.try_command(method.clone(), path, body).await {
            Ok(value) => value,
            Err((error, message)) => panic!("WebDriver {method} {path}: {error}: {message}"),
        }
    }

    /// Runs a command on the element `css` matches, finding it again when the page has
    /// redrawn it in between (a stale element), until [`PATIENCE`] runs out.
    async fn on_element(&self, css: &str, tail: &str, body: Value) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let element = self.find(css).await;
            let path = element.path(tail);
            match self
                .try_command(reqwest::Method::POST, &path, Some(body.clone()))
                .await
            {
                Ok(_) => return,
                Err((error, _))
                    if error == "stale element reference" && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err((error, message)) => panic!("WebDriver on `{css}`: {error}: {message}"),
            }
        }
    }

    /// Clicks the element `css` matches, once there is one.
    pub async fn click(&self, css: &str) {
        self.on_element(css, "/click", json!({})).await;
    }

    /// Types `text` into the element `css` matches, after what it holds; a file input
    /// takes a file's path so.
    pub async fn send_keys(&self, css: &str, text: &str) {
        self.on_element(css, "/value", json!({"text": text})).await;
    }

    /// Empties the element `css` matches, then types `text`.
    pub async fn fill(&self, css: &str, text: &str) {
        self.on_element(css, "/clear", json!({})).await;
        self.send_keys(css, text).await;
    }

    pub async fn goto(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    /// Runs `body` as a function's body with `args`; what it returns.
    pub async fn script(&self, body: &str, args: Value) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": body, "args": args})),
        )
        .await
    }

    /// Runs `body` with `args` and a last argument, the callback it answers through.
    pub async fn script_async(&self, body: &str, args: Value) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/async",
            Some(json!({"script": body, "args": args})),
        )
        .await
    }

    /// Waits until the expression `condition` is true in the page; panics naming `what`.
    pub async fn wait_until(&self, what: &str, condition: &str) {
        let body = format!("try {{ return !!({condition}); }} catch (e) {{ return false; }}");
        let deadline = Instant::now() + PATIENCE;
        while self.script(&body, json!([])).await != json!(true) {
            if Instant::now() >= deadline {
                let text = self
                    .script("return document.body.innerText", json!([]))
                    .await;
                panic!("waited in vain for {what} ({condition}); the page shows:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The first element `css` matches, waiting for one to appear.
    pub async fn find(&self, css: &str) -> Element<'_> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(found) = self.find_all(css).await.into_iter().next() {
                return found;
            }
            if Instant::now() >= deadline {
                let text = self
                    .script("return document.body.innerText", json!([]))
                    .await;
                panic!("no element matches `{css}`; the page shows:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every element `css` matches now.
    pub async fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        let found = self
            .command(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        found
            .as_array()
            .unwrap()
            .iter()
            .map(|e| Element {
                browser: self,
                id: e
                    .as_object()
                    .and_then(|o| o.values().next())
                    .and_then(Value::as_str)
                    .unwrap()
                    .to_string(),
            })
            .collect()
    }

    /// How many elements `css` matches now.
    pub async fn count(&self, css: &str) -> usize {
        self.find_all(css).await.len()
    }

    /// Saves a PNG of the window at `path`, making its directory.
    pub async fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let png = self
            .command(reqwest::Method::GET, "/screenshot", None)
            .await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    /// Opens the console of the server at `base` and signs in with `token`; waits until
    /// the page shows the signed-in session's bar.
    pub async fn sign_in(&self, base: &str, token: &str) {
        self.goto(&format!("{base}/console/")).await;
        self.fill("#signin-token", token).await;
        self.click("#signin-submit").await;
        self.wait_until(
            "the sign-in",
            "!document.querySelector('#session-bar').hidden",
        )
        .await;
    }

    /// Resizes the window, e.g. to a phone's width.
    pub async fn resize(&self, width: u32, height: u32) {
        self.command(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }
}

/// The session ends (the driver closes the browser), then the driver's process group is
/// killed, taking anything of the browser's left behind with it. A blocking request, as a
/// drop cannot wait on a future.
impl Drop for Browser {
    fn drop(&mut self) {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let request = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session
            );
            if stream.write_all(request.as_bytes()).is_ok() {
                // The answer is a small JSON object; the driver may keep the connection
                // open after it, so reading stops at its end.
                let mut answer = Vec::new();
                let mut chunk = [0u8; 1024];
                while let Ok(n @ 1..) = stream.read(&mut chunk) {
                    answer.extend_from_slice(&chunk[..n]);
                    if answer.ends_with(b"}") || answer.ends_with(b"}\n") {
                        break;
                    }
                }
            }
        }
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.wait();
    }
}

/// An element of the page.
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

impl Element<'_> {
    fn path(&self, tail: &str) -> String {
        format!("/element/{}{tail}", self.id)
    }

    pub async fn text(&self) -> String {
        let text = self
            .browser
            .command(reqwest::Method::GET, &self.path("/text"), None)
            .await;
        text.as_str().unwrap_or_default().to_string()
    }

    pub async fn attribute(&self, name: &str) -> Option<String> {
        let value = self
            .browser
            .command(
                reqwest::Method::GET,
                &self.path(&format!("/attribute/{name}")),
                None,
            )
            .await;
        value.as_str().map(str::to_string)
    }
}
