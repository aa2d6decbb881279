//! A fault-injecting HTTP/1.1 proxy for tests: put between overcast's AWS provider and moto,
//! it throttles, resets and delays requests as a seeded [`FaultPlan`] says, and counts what it
//! did, so tests can check that overcast survives a flaky cloud and that its idea of the
//! world still matches moto's.
//!
//! Per request, in this order (each rate is a probability per request, drawn from an RNG
//! seeded with [`FaultPlan::seed`]):
//!
//! 1. sleep [`FaultPlan::latency`];
//! 2. with probability [`FaultPlan::throttle`], answer 503 with the throttling error the
//!    service sends (EC2's `RequestLimitExceeded`, S3's `SlowDown`) without forwarding;
//! 3. else with probability [`FaultPlan::reset_before`], reset the client's TCP connection
//!    without forwarding;
//! 4. else forward the request to moto and read the whole answer; then with probability
//!    [`FaultPlan::reset_after`] reset the client's connection instead of answering: the
//!    backend has acted, the client never learns how.
//!
//! The client side is hyper's HTTP/1.1 server (keep-alive, `Content-Length` and chunked
//! request bodies, `Expect: 100-continue`); the upstream side is a reqwest client. Answers go
//! back whole, with a `Content-Length`, whatever framing moto used.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

/// Which faults the proxy injects. The default injects none.
#[derive(Debug, Clone, Default)]
pub struct FaultPlan {
    /// Probability that a request is answered with a 503 throttling error and not forwarded.
    pub throttle: f64,
    /// Probability that a request that was not throttled is answered with a TCP reset and not
    /// forwarded.
    pub reset_before: f64,
    /// Probability that a forwarded request's answer is replaced by a TCP reset: the backend
    /// has acted, the client sees a broken connection.
    pub reset_after: f64,
    /// Delay before every request that faults apply to is handled.
    pub latency: Duration,
    /// Seed of the RNG that makes the decisions. With requests sent one at a time, the same
    /// seed makes the same faults on the same requests.
    pub seed: u64,
    /// If set, faults (latency included) apply only to requests whose action (an EC2 Query
    /// API `Action`, or a JSON protocol's `X-Amz-Target` operation) is in this list; every
    /// other request, S3's included, passes through untouched and takes no draw from the
    /// RNG, so unrelated traffic does not shift the seeded sequence.
    pub only_actions: Option<Vec<String>>,
}

/// What the proxy has done since it started. A request is counted once its body has been
/// read, before any latency; when no request is in flight,
/// `requests == forwarded + throttled + reset_before` and `reset_after <= forwarded`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Requests received whole.
    pub requests: u64,
    /// Requests sent to the upstream (those answered with a reset afterwards included).
    pub forwarded: u64,
    /// Requests answered with a 503 throttling error.
    pub throttled: u64,
    /// Requests answered with a reset before forwarding.
    pub reset_before: u64,
    /// Forwarded requests whose answer was replaced by a reset.
    pub reset_after: u64,
    /// Requests delayed by the plan's latency.
    pub delayed: u64,
}

/// The proxy: listens on a free loopback port and forwards to one upstream, injecting the
/// faults of its [`FaultPlan`]. Stops (listener and open connections) when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream` (`http://host:port`, e.g. moto's url).
    pub async fn start(upstream: &str, plan: FaultPlan) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the fault proxy binds a loopback port");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let client = reqwest::Client::builder()
            // A proxy from the environment would bypass or confuse the test setup.
            .no_proxy()
            // Redirects are the client's business: pass them through as they are.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("the upstream client builds");
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            client,
            decider: Mutex::new(Decider::new(plan)),
            counters: Counters::default(),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        FaultProxy {
            addr,
            shared,
            accept,
        }
    }

    /// The proxy's url, `http://127.0.0.1:PORT`, to use as the client's endpoint.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What the proxy has done so far.
    pub fn counts(&self) -> FaultCounts {
        self.shared.counters.snapshot()
    }

    /// Replaces the plan from the next request on, and reseeds the RNG with its seed (e.g.
    /// `FaultPlan::default()` to read ground truth through the proxy without faults).
    pub fn set_plan(&self, plan: FaultPlan) {
        *self.shared.decider.lock().unwrap() = Decider::new(plan);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // The accept task owns the listener and the set of connection tasks: aborting it
        // drops both, which aborts every open connection too.
        self.accept.abort();
    }
}

/// State shared by the proxy handle and its connection tasks.
struct Shared {
    upstream: String,
    client: reqwest::Client,
    decider: Mutex<Decider>,
    counters: Counters,
}

/// The plan and the RNG drawn from, behind one lock so a plan change reseeds atomically.
struct Decider {
    plan: FaultPlan,
    rng: StdRng,
}

impl Decider {
    fn new(plan: FaultPlan) -> Decider {
        let rng = StdRng::seed_from_u64(plan.seed);
        Decider { plan, rng }
    }

    /// Decides the fate of one request with EC2 action `action` (None if it is not an EC2
    /// Query API request).
    fn decide(&mut self, action: Option<&str>) -> Decision {
        if let Some(only) = &self.plan.only_actions {
            if !action.is_some_and(|action| only.iter().any(|a| a == action)) {
                return Decision::untouched();
            }
        }
        // Always three draws per request, so a request's fate depends only on the seed and
        // its position, not on which rates are nonzero.
        let [throttle, reset_before, reset_after]: [f64; 3] =
            std::array::from_fn(|_| self.rng.random::<f64>());
        let fate = if throttle < self.plan.throttle {
            Fate::Throttle
        } else if reset_before < self.plan.reset_before {
            Fate::ResetBefore
        } else {
            Fate::Forward {
                reset_after: reset_after < self.plan.reset_after,
            }
        };
        Decision {
            latency: self.plan.latency,
            fate,
        }
    }
}

struct Decision {
    latency: Duration,
    fate: Fate,
}

impl Decision {
    fn untouched() -> Decision {
        Decision {
            latency: Duration::ZERO,
            fate: Fate::Forward { reset_after: false },
        }
    }
}

enum Fate {
    Throttle,
    ResetBefore,
    Forward { reset_after: bool },
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    forwarded: AtomicU64,
    throttled: AtomicU64,
    reset_before: AtomicU64,
    reset_after: AtomicU64,
    delayed: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> FaultCounts {
        let get = |counter: &AtomicU64| counter.load(Ordering::SeqCst);
        FaultCounts {
            requests: get(&self.requests),
            forwarded: get(&self.forwarded),
            throttled: get(&self.throttled),
            reset_before: get(&self.reset_before),
            reset_after: get(&self.reset_after),
            delayed: get(&self.delayed),
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::SeqCst);
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        // Reap finished connections so the set does not grow with every connection ever made.
        while connections.try_join_next().is_some() {}
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of file descriptors and the like: wait a little rather than spin.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        connections.spawn(serve_connection(stream, shared.clone()));
    }
}

/// A handler's request to reset its connection: the flag makes the socket close with a RST,
/// the notification makes the connection task drop the connection.
#[derive(Default)]
struct ResetSignal {
    reset: AtomicBool,
    notify: Notify,
}

impl ResetSignal {
    /// Resets the connection this signal belongs to, and never returns: the handler's future
    /// is dropped with the connection.
    async fn reset(&self) -> ! {
        self.reset.store(true, Ordering::SeqCst);
        // notify_one keeps a permit if the connection task is not waiting yet: nothing is lost.
        self.notify.notify_one();
        std::future::pending().await
    }
}

/// The client's socket, which closes with a TCP RST instead of a FIN if its connection's
/// [`ResetSignal`] was set. SO_LINGER is set only then (not up front) so that ordinary closes
/// stay graceful and never discard an answer the client has not read yet.
struct ClientStream {
    stream: TcpStream,
    signal: Arc<ResetSignal>,
}

impl Drop for ClientStream {
    fn drop(&mut self) {
        if self.signal.reset.load(Ordering::SeqCst) {
            // A zero linger makes the close below abortive: the kernel sends RST at once.
            let _ = self.stream.set_zero_linger();
        }
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let signal = Arc::new(ResetSignal::default());
    let io = TokioIo::new(ClientStream {
        stream,
        signal: signal.clone(),
    });
    let handler_signal = signal.clone();
    let service = hyper::service::service_fn(move |request| {
        handle(shared.clone(), handler_signal.clone(), request)
    });
    let connection = hyper::server::conn::http1::Builder::new()
        // No timer is set, so no timeouts: idle keep-alive connections stay open as long as
        // the client wants, as a real endpoint's would for the length of a test.
        .header_read_timeout(None)
        .serve_connection(io, service);
    tokio::select! {
        _ = connection => {}
        // Returning drops the connection, and with it the socket, with a RST.
        _ = signal.notify.notified() => {}
    }
}

async fn handle(
    shared: Arc<Shared>,
    signal: Arc<ResetSignal>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    // Reading the body sends `100 Continue` first if the client asked for it; hyper also
    // takes chunked bodies apart.
    let body = match body.collect().await {
        Ok(body) => body.to_bytes(),
        // The client broke off mid-body: there is no one to answer.
        Err(_) => return Ok(plain(StatusCode::BAD_REQUEST, "unreadable request body")),
    };
    let action = ec2_action(&parts, &body);
    let decision = shared.decider.lock().unwrap().decide(action.as_deref());
    let counters = &shared.counters;
    bump(&counters.requests);
    if !decision.latency.is_zero() {
        bump(&counters.delayed);
        tokio::time::sleep(decision.latency).await;
    }
    match decision.fate {
        Fate::Throttle => {
            bump(&counters.throttled);
            Ok(throttled(action.is_some()))
        }
        Fate::ResetBefore => {
            bump(&counters.reset_before);
            signal.reset().await
        }
        Fate::Forward { reset_after } => {
            bump(&counters.forwarded);
            let response = forward(&shared, parts, body).await.unwrap_or_else(|error| {
                plain(
                    StatusCode::BAD_GATEWAY,
                    &format!("upstream failed: {error}"),
                )
            });
            if reset_after {
                bump(&counters.reset_after);
                signal.reset().await
            }
            Ok(response)
        }
    }
}

/// The action of an AWS request: an EC2 Query API `Action` (from a form body or the query
/// string), or the operation a JSON-protocol request names in `X-Amz-Target` (ECS,
/// CloudWatch Logs, Cloud Map: `Service.Action`); None for anything else (S3).
fn ec2_action(parts: &Parts, body: &[u8]) -> Option<String> {
    if let Some(target) = parts
        .headers
        .get("x-amz-target")
        .and_then(|value| value.to_str().ok())
    {
        return target.rsplit('.').next().map(str::to_string);
    }
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
    let from_body = if is_form {
        std::str::from_utf8(body).ok().and_then(form_action)
    } else {
        None
    };
    from_body.or_else(|| parts.uri.query().and_then(form_action))
}

fn form_action(form: &str) -> Option<String> {
    // Action names are plain ASCII words: no percent-decoding needed.
    form.split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
        .map(str::to_string)
}

/// The 503 the service sends when it throttles, in the shape the AWS SDK parses: EC2's Query
/// API errors are `Response/Errors/Error/Code`, S3's are `Error/Code`. Both codes are in the
/// SDK's list of throttling errors, so it retries them with its throttling backoff.
fn throttled(ec2: bool) -> Response<Full<Bytes>> {
    let request_id = request_id();
    let (content_type, body) = if ec2 {
        (
            "text/xml;charset=UTF-8",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error>\
                 <Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message>\
                 </Error></Errors><RequestID>{request_id}</RequestID></Response>"
            ),
        )
    } else {
        (
            "application/xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code>\
                 <Message>Please reduce your request rate.</Message>\
                 <RequestId>{request_id}</RequestId></Error>"
            ),
        )
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if !ec2 {
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            headers.insert("x-amz-request-id", value);
        }
    }
    response
}

/// A fresh UUID-shaped request id. From the thread RNG, not the plan's: ids must not shift
/// the seeded sequence of faults.
fn request_id() -> String {
    let n: u128 = rand::random();
    let hex = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

/// Headers that describe one hop, not the message (RFC 9110 7.6.1), plus those naming how
/// the body is framed: both sides of the proxy frame bodies their own way.
fn is_hop_by_hop(name: &HeaderName, connection: &HeaderMap) -> bool {
    const HOP_BY_HOP: [&str; 10] = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    ];
    HOP_BY_HOP.contains(&name.as_str())
        // Headers the Connection header names are hop-by-hop too.
        || connection
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case(name.as_str()))
}

/// Sends the request to the upstream and reads its whole answer.
async fn forward(
    shared: &Shared,
    parts: Parts,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, reqwest::Error> {
    let path = parts
        .uri
        .path_and_query()
        .map(|path| path.as_str())
        .unwrap_or("/");
    let mut headers = HeaderMap::new();
    for (name, value) in &parts.headers {
        // `Expect` is answered here already, and the body goes on whole. `Host`, signatures
        // and moto's account header pass as they are.
        if !is_hop_by_hop(name, &parts.headers) && name != header::EXPECT {
            headers.append(name.clone(), value.clone());
        }
    }
    let had_body = parts.headers.contains_key(header::CONTENT_LENGTH)
        || parts.headers.contains_key(header::TRANSFER_ENCODING);
    let mut request = shared
        .client
        .request(parts.method.clone(), format!("{}{path}", shared.upstream))
        .headers(headers);
    // A body (with its Content-Length, 0 included) only if the client sent one: a GET must
    // not grow a `Content-Length: 0`.
    if had_body || !body.is_empty() {
        request = request.body(body);
    }
    let upstream = request.send().await?;
    let status = upstream.status();
    let upstream_headers = upstream.headers().clone();
    // Chunked or not, the answer is read whole and goes back with a Content-Length.
    let bytes = upstream.bytes().await?;
    let mut response = Response::new(Full::new(bytes));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for (name, value) in &upstream_headers {
        // A HEAD answer's Content-Length is the size of what a GET would return (S3's
        // HeadObject reports an object's size with it): keep it, hyper sends no body anyway.
        let head_length = parts.method == Method::HEAD && name == header::CONTENT_LENGTH;
        if head_length || !is_hop_by_hop(name, &upstream_headers) {
            headers.append(name.clone(), value.clone());
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

    const EC2_FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";

    /// An upstream that counts requests and echoes them: `METHOD PATH BODY`, with
    /// `x-upstream: seen` and `x-echo-account` (from `x-moto-account-id`). `/teapot` answers
    /// 418, `/chunked` answers with a chunked body.
    struct Upstream {
        url: String,
        hits: Arc<AtomicU64>,
        task: JoinHandle<()>,
    }

    impl Upstream {
        async fn start() -> Upstream {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let hits = Arc::new(AtomicU64::new(0));
            let counted = hits.clone();
            let task = tokio::spawn(async move {
                loop {
                    let (stream, _) = listener.accept().await.unwrap();
                    let hits = counted.clone();
                    tokio::spawn(async move {
                        let service =
                            hyper::service::service_fn(move |request| echo(hits.clone(), request));
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
            Upstream { url, hits, task }
        }

        fn hits(&self) -> u64 {
            self.hits.load(Ordering::SeqCst)
        }
    }

    impl Drop for Upstream {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    async fn echo(
        hits: Arc<AtomicU64>,
        request: Request<Incoming>,
    ) -> Result<Response<Chunks>, Infallible> {
        hits.fetch_add(1, Ordering::SeqCst);
        let (parts, body) = request.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        let echoed = format!(
            "{} {} {}",
            parts.method,
            parts.uri,
            String::from_utf8_lossy(&body)
        );
        let account = parts
            .headers
            .get("x-moto-account-id")
            .cloned()
            .unwrap_or(HeaderValue::from_static("none"));
        let chunks = if parts.uri.path() == "/chunked" {
            [&b"first,"[..], b"second,", b"third"]
                .map(Bytes::from_static)
                .into()
        } else {
            VecDeque::from([Bytes::from(echoed)])
        };
        let length = chunks.iter().map(Bytes::len).sum::<usize>();
        let mut response = Response::new(Chunks(chunks));
        if parts.uri.path() == "/teapot" {
            *response.status_mut() = StatusCode::IM_A_TEAPOT;
        }
        let headers = response.headers_mut();
        headers.insert("x-upstream", HeaderValue::from_static("seen"));
        headers.insert("x-echo-account", account);
        if parts.uri.path() != "/chunked" {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        }
        Ok(response)
    }

    /// A body of several frames with no length known up front, so hyper sends it chunked.
    struct Chunks(VecDeque<Bytes>);

    impl hyper::body::Body for Chunks {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
            Poll::Ready(
                self.get_mut()
                    .0
                    .pop_front()
                    .map(|chunk| Ok(hyper::body::Frame::data(chunk))),
            )
        }
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder().no_proxy().build().unwrap()
    }

    fn describe_instances(client: &reqwest::Client, proxy: &FaultProxy) -> reqwest::RequestBuilder {
        ec2(client, proxy, "DescribeInstances")
    }

    fn ec2(client: &reqwest::Client, proxy: &FaultProxy, action: &str) -> reqwest::RequestBuilder {
        client
            .post(format!("{}/", proxy.url()))
            .header(header::CONTENT_TYPE, EC2_FORM)
            .body(format!("Action={action}&Version=2016-11-15"))
    }

    fn assert_consistent(counts: FaultCounts) {
        assert_eq!(
            counts.requests,
            counts.forwarded + counts.throttled + counts.reset_before,
            "{counts:?}"
        );
        assert!(counts.reset_after <= counts.forwarded, "{counts:?}");
    }

    /// One raw HTTP/1.1 answer: status line, headers (names lowercased), body by
    /// Content-Length (the proxy always sends one).
    async fn read_response(
        reader: &mut BufReader<TcpStream>,
    ) -> (String, Vec<(String, String)>, String) {
        let mut status = String::new();
        reader.read_line(&mut status).await.unwrap();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).await.unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap();
            headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
        }
        let length: usize = headers
            .iter()
            .find(|(name, _)| name == "content-length")
            .map(|(_, value)| value.parse().unwrap())
            .expect("the proxy answers with a Content-Length");
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await.unwrap();
        (
            status.trim_end().to_string(),
            headers,
            String::from_utf8(body).unwrap(),
        )
    }

    #[tokio::test]
    async fn without_faults_everything_passes_through() {
        let upstream = Upstream::start().await;
        let proxy = FaultProxy::start(&upstream.url, FaultPlan::default()).await;
        let client = client();

        let response = describe_instances(&client, &proxy)
            .header("x-moto-account-id", "123456789012")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-upstream"], "seen");
        assert_eq!(response.headers()["x-echo-account"], "123456789012");
        assert_eq!(
            response.text().await.unwrap(),
            "POST / Action=DescribeInstances&Version=2016-11-15"
        );

        let response = client
            .get(format!("{}/bucket/key?list-type=2", proxy.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.text().await.unwrap(),
            "GET /bucket/key?list-type=2 "
        );

        let response = client
            .put(format!("{}/teapot", proxy.url()))
            .body("tea")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 418);
        assert_eq!(response.text().await.unwrap(), "PUT /teapot tea");

        // HEAD keeps the upstream's Content-Length (what a GET would return), with no body.
        let response = client
            .head(format!("{}/object", proxy.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()[header::CONTENT_LENGTH],
            "HEAD /object ".len().to_string().as_str()
        );

        let response = client
            .get(format!("{}/chunked", proxy.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.text().await.unwrap(), "first,second,third");

        assert_eq!(upstream.hits(), 5);
        let counts = proxy.counts();
        assert_eq!(
            counts,
            FaultCounts {
                requests: 5,
                forwarded: 5,
                ..FaultCounts::default()
            }
        );
    }

    /// Several requests on one connection: Content-Length, chunked with
    /// `Expect: 100-continue`, and an upstream's chunked answer re-sent with a length.
    #[tokio::test]
    async fn keep_alive_chunked_and_expect_on_one_connection() {
        let upstream = Upstream::start().await;
        let proxy = FaultProxy::start(&upstream.url, FaultPlan::default()).await;
        let stream = TcpStream::connect(proxy.addr).await.unwrap();
        let mut reader = BufReader::new(stream);

        reader
            .get_mut()
            .write_all(b"POST /one HTTP/1.1\r\nHost: example\r\nContent-Length: 5\r\n\r\nhello")
            .await
            .unwrap();
        let (status, _, body) = read_response(&mut reader).await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(body, "POST /one hello");

        reader
            .get_mut()
            .write_all(
                b"PUT /two HTTP/1.1\r\nHost: example\r\nTransfer-Encoding: chunked\r\n\
                  Expect: 100-continue\r\n\r\n",
            )
            .await
            .unwrap();
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        assert_eq!(line, "HTTP/1.1 100 Continue\r\n");
        line.clear();
        reader.read_line(&mut line).await.unwrap();
        assert_eq!(line, "\r\n");
        reader
            .get_mut()
            .write_all(b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n")
            .await
            .unwrap();
        let (status, _, body) = read_response(&mut reader).await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(body, "PUT /two abcdefg");

        reader
            .get_mut()
            .write_all(b"GET /chunked HTTP/1.1\r\nHost: example\r\n\r\n")
            .await
            .unwrap();
        let (status, headers, body) = read_response(&mut reader).await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(
            !headers.iter().any(|(name, _)| name == "transfer-encoding"),
            "{headers:?}"
        );
        assert_eq!(body, "first,second,third");
        assert_eq!(upstream.hits(), 3);
        assert_eq!(proxy.counts().requests, 3);
    }

    #[tokio::test]
    async fn throttle_answers_the_services_503_without_forwarding() {
        let upstream = Upstream::start().await;
        let plan = FaultPlan {
            throttle: 1.0,
            ..FaultPlan::default()
        };
        let proxy = FaultProxy::start(&upstream.url, plan).await;
        let client = client();
        for _ in 0..3 {
            let response = describe_instances(&client, &proxy).send().await.unwrap();
            assert_eq!(response.status(), 503);
            assert!(response.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/xml"));
            let body = response.text().await.unwrap();
            assert!(
                body.contains(
                    "<Response><Errors><Error><Code>RequestLimitExceeded</Code>\
                     <Message>Request limit exceeded.</Message></Error></Errors><RequestID>"
                ),
                "{body}"
            );
        }
        let response = client
            .get(format!("{}/bucket?list-type=2", proxy.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 503);
        let body = response.text().await.unwrap();
        assert!(body.contains("<Error><Code>SlowDown</Code>"), "{body}");
        assert_eq!(upstream.hits(), 0);
        assert_eq!(
            proxy.counts(),
            FaultCounts {
                requests: 4,
                throttled: 4,
                ..FaultCounts::default()
            }
        );
    }

    /// Sends one request on a fresh raw connection and returns how reading the answer ended.
    async fn raw_request(proxy: &FaultProxy) -> std::io::Result<usize> {
        let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
        let body = "Action=DescribeInstances&Version=2016-11-15";
        let request = format!(
            "POST / HTTP/1.1\r\nHost: example\r\nContent-Type: {EC2_FORM}\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await
    }

    #[tokio::test]
    async fn reset_before_breaks_the_connection_without_forwarding() {
        let upstream = Upstream::start().await;
        let plan = FaultPlan {
            reset_before: 1.0,
            ..FaultPlan::default()
        };
        let proxy = FaultProxy::start(&upstream.url, plan).await;
        let error = describe_instances(&client(), &proxy)
            .send()
            .await
            .unwrap_err();
        assert!(!error.is_status(), "{error:?}");
        // A reset, not a clean close.
        let error = raw_request(&proxy).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset);
        assert_eq!(upstream.hits(), 0);
        assert_eq!(
            proxy.counts(),
            FaultCounts {
                requests: 2,
                reset_before: 2,
                ..FaultCounts::default()
            }
        );
    }

    #[tokio::test]
    async fn reset_after_breaks_the_connection_after_the_upstream_acted() {
        let upstream = Upstream::start().await;
        let plan = FaultPlan {
            reset_after: 1.0,
            ..FaultPlan::default()
        };
        let proxy = FaultProxy::start(&upstream.url, plan).await;
        let error = describe_instances(&client(), &proxy)
            .send()
            .await
            .unwrap_err();
        assert!(!error.is_status(), "{error:?}");
        assert_eq!(upstream.hits(), 1);
        let error = raw_request(&proxy).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset);
        assert_eq!(upstream.hits(), 2);
        assert_eq!(
            proxy.counts(),
            FaultCounts {
                requests: 2,
                forwarded: 2,
                reset_after: 2,
                ..FaultCounts::default()
            }
        );
    }

    #[derive(Debug, PartialEq, Eq)]
    enum Outcome {
        Answered,
        Throttled,
        Broken,
    }

    async fn outcomes(plan: FaultPlan, n: usize) -> (Vec<Outcome>, FaultCounts, u64) {
        let upstream = Upstream::start().await;
        let proxy = FaultProxy::start(&upstream.url, plan).await;
        let client = client();
        let mut outcomes = Vec::new();
        for _ in 0..n {
            outcomes.push(match describe_instances(&client, &proxy).send().await {
                Ok(response) if response.status() == 200 => Outcome::Answered,
                Ok(response) if response.status() == 503 => Outcome::Throttled,
                Ok(response) => panic!("unexpected answer {}", response.status()),
                Err(_) => Outcome::Broken,
            });
        }
        (outcomes, proxy.counts(), upstream.hits())
    }

    #[tokio::test]
    async fn rates_hold_and_a_seed_repeats_its_faults() {
        let plan = FaultPlan {
            throttle: 0.2,
            reset_before: 0.1,
            reset_after: 0.1,
            seed: 7,
            ..FaultPlan::default()
        };
        let n = 400;
        let (seen, counts, hits) = outcomes(plan.clone(), n).await;
        assert_consistent(counts);
        assert_eq!(counts.requests, n as u64);
        assert_eq!(hits, counts.forwarded);
        let count = |outcome: Outcome| seen.iter().filter(|o| **o == outcome).count() as u64;
        assert_eq!(count(Outcome::Throttled), counts.throttled);
        assert_eq!(
            count(Outcome::Broken),
            counts.reset_before + counts.reset_after
        );
        assert_eq!(
            count(Outcome::Answered),
            counts.forwarded - counts.reset_after
        );
        // Expected: 80 throttled, 32 reset before (0.8 * 0.1), 28.8 reset after (0.72 * 0.1);
        // the bounds are about four standard deviations wide.
        let rate = |count: u64| count as f64 / n as f64;
        assert!(
            (0.14..=0.26).contains(&rate(counts.throttled)),
            "{counts:?}"
        );
        assert!(
            (0.04..=0.12).contains(&rate(counts.reset_before)),
            "{counts:?}"
        );
        assert!(
            (0.035..=0.11).contains(&rate(counts.reset_after)),
            "{counts:?}"
        );

        let (again, _, _) = outcomes(plan.clone(), n).await;
        assert_eq!(seen, again, "the same seed makes the same faults");
        let (other, _, _) = outcomes(FaultPlan { seed: 8, ..plan }, n).await;
        assert_ne!(seen, other, "another seed makes other faults");
    }

    /// Many clients at once: every request is accounted for, and the upstream saw exactly
    /// the forwarded ones.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_connections_are_all_accounted_for() {
        let upstream = Upstream::start().await;
        let plan = FaultPlan {
            throttle: 0.1,
            reset_before: 0.05,
            reset_after: 0.05,
            seed: 42,
            ..FaultPlan::default()
        };
        let proxy = Arc::new(FaultProxy::start(&upstream.url, plan).await);
        let (clients, per_client) = (50, 40);
        let mut tasks = JoinSet::new();
        for _ in 0..clients {
            let proxy = proxy.clone();
            // A client each, so there are as many connections as clients.
            let client = client();
            tasks.spawn(async move {
                let mut answered = 0u64;
                for _ in 0..per_client {
                    if let Ok(response) = describe_instances(&client, &proxy).send().await {
                        if response.status() == 200 {
                            answered += 1;
                        }
                    }
                }
                answered
            });
        }
        let answered: u64 = tasks.join_all().await.into_iter().sum();
        let counts = proxy.counts();
        assert_consistent(counts);
        assert_eq!(counts.requests, clients * per_client);
        assert_eq!(upstream.hits(), counts.forwarded);
        assert_eq!(answered, counts.forwarded - counts.reset_after);
        assert!(counts.throttled > 0 && counts.reset_before > 0 && counts.reset_after > 0);
    }

    #[tokio::test]
    async fn set_plan_changes_the_faults_from_the_next_request_on() {
        let upstream = Upstream::start().await;
        let throttle = FaultPlan {
            throttle: 1.0,
            ..FaultPlan::default()
        };
        let proxy = FaultProxy::start(&upstream.url, throttle.clone()).await;
        let client = client();
        let status = |response: reqwest::Response| response.status().as_u16();
        let send = || describe_instances(&client, &proxy).send();
        assert_eq!(status(send().await.unwrap()), 503);
        proxy.set_plan(FaultPlan::default());
        assert_eq!(status(send().await.unwrap()), 200);
        proxy.set_plan(throttle);
        assert_eq!(status(send().await.unwrap()), 503);
        assert_eq!(upstream.hits(), 1);
    }

    #[tokio::test]
    async fn only_actions_limits_the_faults_to_those_actions() {
        let upstream = Upstream::start().await;
        let plan = FaultPlan {
            throttle: 1.0,
            latency: Duration::from_millis(1),
            only_actions: Some(vec!["RunInstances".to_string()]),
            ..FaultPlan::default()
        };
        let proxy = FaultProxy::start(&upstream.url, plan).await;
        let client = client();
        let run = ec2(&client, &proxy, "RunInstances").send().await.unwrap();
        assert_eq!(run.status(), 503);
        let describe = describe_instances(&client, &proxy).send().await.unwrap();
        assert_eq!(describe.status(), 200);
        // EC2 with the action in the query string, as GET requests have it.
        let query = client
            .get(format!(
                "{}/?Action=RunInstances&Version=2016-11-15",
                proxy.url()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(query.status(), 503);
        assert!(query.text().await.unwrap().contains("RequestLimitExceeded"));
        let s3 = client
            .get(format!("{}/bucket", proxy.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(s3.status(), 200);
        assert_eq!(upstream.hits(), 2);
        assert_eq!(
            proxy.counts(),
            FaultCounts {
                requests: 4,
                forwarded: 2,
                throttled: 2,
                delayed: 2,
                ..FaultCounts::default()
            }
        );
    }

    #[tokio::test]
    async fn latency_delays_requests() {
        let upstream = Upstream::start().await;
        let plan = FaultPlan {
            latency: Duration::from_millis(300),
            ..FaultPlan::default()
        };
        let proxy = FaultProxy::start(&upstream.url, plan).await;
        let started = std::time::Instant::now();
        let response = describe_instances(&client(), &proxy).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(proxy.counts().delayed, 1);
    }

    #[tokio::test]
    async fn dropping_the_proxy_stops_it() {
        let upstream = Upstream::start().await;
        let proxy = FaultProxy::start(&upstream.url, FaultPlan::default()).await;
        let client = client();
        describe_instances(&client, &proxy).send().await.unwrap();
        let url = proxy.url();
        drop(proxy);
        // The open keep-alive connection goes with the listener.
        crate::eventually("the proxy stops", || async {
            client.get(format!("{url}/")).send().await.is_err()
        })
        .await;
    }

    /// The AWS SDK reads the throttling answers as the services' own: it finds the error
    /// code where each service puts it and retries (three attempts, all throttled).
    #[cfg(feature = "aws")]
    #[tokio::test]
    async fn the_sdk_reads_and_retries_the_throttling_errors() {
        use aws_sdk_ec2::error::ProvideErrorMetadata;
        let upstream = Upstream::start().await;
        let plan = FaultPlan {
            throttle: 1.0,
            ..FaultPlan::default()
        };
        let proxy = FaultProxy::start(&upstream.url, plan).await;
        let config = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(
                    aws_credential_types::Credentials::for_tests(),
                ),
            )
            .endpoint_url(proxy.url())
            .retry_config(
                aws_config::retry::RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(Duration::from_millis(1)),
            )
            .build();

        let ec2 = aws_sdk_ec2::Client::new(&config);
        let error = ec2.describe_instances().send().await.unwrap_err();
        assert_eq!(error.code(), Some("RequestLimitExceeded"), "{error:?}");
        assert_eq!(proxy.counts().throttled, 3);

        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&config)
                .force_path_style(true)
                .build(),
        );
        let error = s3.list_buckets().send().await.unwrap_err();
        assert_eq!(error.code(), Some("SlowDown"), "{error:?}");
        assert_eq!(proxy.counts().throttled, 6);
        assert_eq!(upstream.hits(), 0);
    }
}
