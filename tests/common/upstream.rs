//! The fake upstream of every test: a real hyper server on 127.0.0.1:0 speaking HTTP/1.1
//! and h2c (hyper-util's auto builder), optionally behind TLS with the test PKI, whose
//! paths answer with a chosen [`Respond`] behaviour and which logs every request.
//!
//! [`TestUpstream::start`] serves the default paths (every response carries
//! `x-upstream-id: <id>`):
//! - `/sse?n=N&gap_ms=M`: [`Respond::Sse`];
//! - `/slow?ms=M`: [`Respond::Slow`];
//! - `/hop`: [`Respond::Hop`];
//! - anything else (e.g. `/echo`): [`Respond::Echo`].
//!
//! [`TestUpstream::builder`] changes them: `.route(path, behaviour)` adds or replaces
//! the behaviour of one exact path, `.fallback(behaviour)` that of every other path, and
//! `.tls(pki)` serves HTTPS.
//!
//! Each request is counted ([`TestUpstream::hits`]) and logged as `METHOD /path` when its
//! head arrives ([`TestUpstream::seen`]); behaviours that read the whole request body also
//! log its size ([`TestUpstream::complete_bodies`]).

use super::pki::TestPki;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::HeaderValue;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

type UpBody = BoxBody<Bytes, Infallible>;

/// How much of a request body [`Respond::Echo`] reports as text.
const ECHO_BODY_LIMIT: usize = 64 * 1024;

/// What [`Respond::Echo`] reports about the request it received.
#[derive(Debug, Deserialize)]
pub struct Echo {
    /// Id of the upstream that answered.
    pub upstream: String,
    /// Request method.
    pub method: String,
    /// Request path, without the query.
    pub path: String,
    /// Request path and query, as in the request line.
    pub target: String,
    /// Authority of the request URI (HTTP/2 `:authority`; absent for HTTP/1.1 origin-form).
    pub authority: Option<String>,
    /// Query string, if any.
    pub query: Option<String>,
    /// HTTP version as `HTTP/1.1` or `HTTP/2.0`.
    pub version: String,
    /// All request headers, lower-case names, values in arrival order.
    pub headers: BTreeMap<String, Vec<String>>,
    /// Bytes of request body read.
    pub body_len: u64,
    /// The request body as text (lossy UTF-8) when it is at most 64 KiB, else absent.
    pub body: Option<String>,
}

impl Echo {
    /// First value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|v| v.first())
            .map(String::as_str)
    }

    /// All values of header `name` (empty when absent).
    pub fn all(&self, name: &str) -> &[String] {
        self.headers.get(name).map_or(&[], Vec::as_slice)
    }
}

/// How the upstream answers a path. Numeric query parameters are read without
/// percent-decoding; a missing or malformed one takes the default shown.
#[derive(Debug, Clone, Copy)]
pub enum Respond {
    /// Reads the whole body, then answers a JSON [`Echo`] of the request (400 `request
    /// body failed` when the body breaks off).
    Echo,
    /// Reads the whole body, then answers `ok <bytes read>` as text (400 `request body
    /// failed` when the body breaks off).
    BodyLength,
    /// Waits `?ms=M` (1000) milliseconds, then answers `slow done`.
    Slow,
    /// A `text/event-stream` of `?n=N` (3) events `data: event-i\n\n`, `?gap_ms=M` (100)
    /// milliseconds apart.
    Sse,
    /// A body without a length of `?n=N` (0) chunks `chunk-i\n`, each one sent after
    /// waiting `?gap_ms=M` (0) milliseconds.
    Chunks,
    /// A `text/event-stream` of exactly these frames, in order (event boundaries may fall
    /// inside a frame).
    SseFrames(&'static [&'static str]),
    /// `hop` with the hop-by-hop headers `Connection: x-upstream-private`,
    /// `x-upstream-private: 1` and `Keep-Alive: timeout=5`, plus `x-normal: yes`.
    Hop,
    /// Answers this status with the body `status <code>`.
    Status(u16),
}

/// A [`TestUpstream`] under construction, from [`TestUpstream::builder`].
pub struct UpstreamBuilder {
    id: String,
    tls: Option<TlsAcceptor>,
    routes: Vec<(String, Respond)>,
    fallback: Respond,
}

impl UpstreamBuilder {
    /// Serves HTTPS presenting the test PKI's leaf (ALPN h2, http/1.1).
    pub fn tls(mut self, pki: &TestPki) -> UpstreamBuilder {
        self.tls = Some(TlsAcceptor::from(pki.server_config()));
        self
    }

    /// Answers requests for exactly `path` (query aside) with `respond`, replacing any
    /// earlier behaviour of that path.
    pub fn route(mut self, path: &str, respond: Respond) -> UpstreamBuilder {
        self.routes.retain(|(p, _)| p != path);
        self.routes.push((path.to_string(), respond));
        self
    }

    /// Answers every path without a route of its own with `respond` (default
    /// [`Respond::Echo`]).
    pub fn fallback(mut self, respond: Respond) -> UpstreamBuilder {
        self.fallback = respond;
        self
    }

    /// Binds 127.0.0.1:0 and starts serving; the accept loop stops when the returned
    /// upstream is dropped.
    pub async fn start(self) -> TestUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (hits_tx, hits) = watch::channel(0usize);
        let log = Arc::new(Log::default());
        let is_tls = self.tls.is_some();
        let shared = Arc::new(Shared {
            id: self.id.clone(),
            routes: self.routes,
            fallback: self.fallback,
            hits: hits_tx,
            log: log.clone(),
        });
        let tls = self.tls;
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                // Without TCP_NODELAY, Nagle and delayed ACKs add ~40 ms to small streamed
                // writes.
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(shared.handle(req).await) }
                    });
                    let builder = auto::Builder::new(TokioExecutor::new());
                    match tls {
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                        }
                        Some(acceptor) => {
                            let Ok(stream) = acceptor.accept(stream).await else {
                                return;
                            };
                            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                        }
                    }
                });
            }
        });
        TestUpstream {
            addr,
            id: self.id,
            tls: is_tls,
            hits,
            log,
            task,
        }
    }
}

/// The request log of an upstream.
#[derive(Default)]
struct Log {
    /// `METHOD /path` of every request, in arrival order.
    requests: Mutex<Vec<String>>,
    /// Path and size of every request body that was read whole.
    bodies: Mutex<Vec<(String, usize)>>,
}

/// What every connection of one upstream shares.
struct Shared {
    id: String,
    routes: Vec<(String, Respond)>,
    fallback: Respond,
    hits: watch::Sender<usize>,
    log: Arc<Log>,
}

/// A running upstream; its accept loop stops when it is dropped.
pub struct TestUpstream {
    /// Bound address.
    pub addr: SocketAddr,
    /// Identity reported in `x-upstream-id` and `Echo::upstream`.
    pub id: String,
    tls: bool,
    hits: watch::Receiver<usize>,
    log: Arc<Log>,
    task: JoinHandle<()>,
}

impl Drop for TestUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestUpstream {
    /// An upstream named `id` with the default paths, to be changed before it starts.
    pub fn builder(id: &str) -> UpstreamBuilder {
        UpstreamBuilder {
            id: id.to_string(),
            tls: None,
            routes: vec![
                ("/sse".into(), Respond::Sse),
                ("/slow".into(), Respond::Slow),
                ("/hop".into(), Respond::Hop),
            ],
            fallback: Respond::Echo,
        }
    }

    /// Plain HTTP/1.1 + h2c upstream with the default paths.
    pub async fn start(id: &str) -> TestUpstream {
        Self::builder(id).start().await
    }

    /// HTTPS upstream with the default paths, presenting the test PKI's leaf (ALPN h2,
    /// http/1.1).
    pub async fn start_tls(id: &str, pki: &TestPki) -> TestUpstream {
        Self::builder(id).tls(pki).start().await
    }

    /// Base URL for a gateway `targets` entry.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.addr.port())
    }

    /// Requests received so far (counted when the head arrives).
    pub fn hits(&self) -> usize {
        *self.hits.borrow()
    }

    /// Waits (at most 10 s) until at least `n` requests have arrived.
    pub async fn wait_for_hits(&self, n: usize) {
        let mut rx = self.hits.clone();
        tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|h| *h >= n))
            .await
            .expect("upstream did not receive the expected requests in time")
            .unwrap();
    }

    /// Every request received so far, as `METHOD /path`.
    pub fn seen(&self) -> Vec<String> {
        self.log.requests.lock().unwrap().clone()
    }

    /// Requests received so far whose path starts with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.seen()
            .iter()
            .filter(|r| r.split(' ').nth(1).is_some_and(|p| p.starts_with(prefix)))
            .count()
    }

    /// Sizes of the request bodies read whole for paths starting with `prefix`.
    pub fn complete_bodies(&self, prefix: &str) -> Vec<usize> {
        self.log
            .bodies
            .lock()
            .unwrap()
            .iter()
            .filter(|(path, _)| path.starts_with(prefix))
            .map(|(_, len)| *len)
            .collect()
    }
}

impl Shared {
    async fn handle(&self, req: Request<Incoming>) -> Response<UpBody> {
        self.hits.send_modify(|h| *h += 1);
        let path = req.uri().path().to_string();
        self.log
            .requests
            .lock()
            .unwrap()
            .push(format!("{} {path}", req.method()));
        let respond = self
            .routes
            .iter()
            .find(|(p, _)| *p == path)
            .map_or(self.fallback, |(_, r)| *r);
        let query = req.uri().query().map(str::to_string);
        let param =
            |name: &str, default: u64| query_param(query.as_deref(), name).unwrap_or(default);
        let mut resp = match respond {
            Respond::Echo => self.echo(req).await,
            Respond::BodyLength => match self.read_body(req.into_body(), &path).await {
                Some((len, _)) => text_response(format!("ok {len}")),
                None => body_failed(),
            },
            Respond::Slow => {
                tokio::time::sleep(Duration::from_millis(param("ms", 1000))).await;
                text_response("slow done".into())
            }
            Respond::Sse => {
                let gap = Duration::from_millis(param("gap_ms", 100));
                let frames = ticks(param("n", 3), gap, false, |i| {
                    format!("data: event-{i}\n\n")
                });
                let mut r = event_stream(frames);
                r.headers_mut()
                    .insert("cache-control", HeaderValue::from_static("no-cache"));
                r
            }
            Respond::Chunks => {
                let gap = Duration::from_millis(param("gap_ms", 0));
                let chunks = ticks(param("n", 0), gap, true, |i| format!("chunk-{i}\n"));
                Response::new(BodyExt::boxed(StreamBody::new(chunks)))
            }
            Respond::SseFrames(frames) => event_stream(futures_util::stream::iter(
                frames
                    .iter()
                    .map(|f| Ok(Frame::data(Bytes::from_static(f.as_bytes())))),
            )),
            Respond::Hop => {
                let mut r = text_response("hop".into());
                let h = r.headers_mut();
                h.insert("connection", HeaderValue::from_static("x-upstream-private"));
                h.insert("x-upstream-private", HeaderValue::from_static("1"));
                h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
                h.insert("x-normal", HeaderValue::from_static("yes"));
                r
            }
            Respond::Status(code) => {
                let mut r = text_response(format!("status {code}"));
                *r.status_mut() = StatusCode::from_u16(code).unwrap();
                r
            }
        };
        resp.headers_mut()
            .insert("x-upstream-id", HeaderValue::from_str(&self.id).unwrap());
        resp
    }

    /// Reads `body` whole and logs its size for `path`; returns the size and the first
    /// [`ECHO_BODY_LIMIT`] + 1 bytes (so a longer body shows), or `None` when the body
    /// broke off.
    async fn read_body(&self, mut body: Incoming, path: &str) -> Option<(u64, Vec<u8>)> {
        let mut len = 0u64;
        let mut head = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.ok()?;
            if let Some(data) = frame.data_ref() {
                len += data.len() as u64;
                let room = (ECHO_BODY_LIMIT + 1).saturating_sub(head.len());
                head.extend_from_slice(&data[..data.len().min(room)]);
            }
        }
        let size = usize::try_from(len).unwrap();
        self.log
            .bodies
            .lock()
            .unwrap()
            .push((path.to_string(), size));
        Some((len, head))
    }

    async fn echo(&self, req: Request<Incoming>) -> Response<UpBody> {
        let (parts, body) = req.into_parts();
        let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in &parts.headers {
            headers
                .entry(k.as_str().to_string())
                .or_default()
                .push(String::from_utf8_lossy(v.as_bytes()).into_owned());
        }
        let Some((body_len, head)) = self.read_body(body, parts.uri.path()).await else {
            return body_failed();
        };
        let body = (head.len() <= ECHO_BODY_LIMIT).then(|| String::from_utf8_lossy(&head));
        let json = serde_json::json!({
            "upstream": self.id,
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "target": parts.uri.path_and_query().map_or("/", |p| p.as_str()),
            "authority": parts.uri.authority().map(|a| a.as_str()),
            "query": parts.uri.query(),
            "version": format!("{:?}", parts.version),
            "headers": headers,
            "body_len": body_len,
            "body": body,
        });
        let mut r = Response::new(Full::new(Bytes::from(json.to_string())).boxed());
        r.headers_mut()
            .insert("content-type", HeaderValue::from_static("application/json"));
        r
    }
}

/// The numeric value of query parameter `name` in `a=1&b=2` (no percent-decoding).
fn query_param(query: Option<&str>, name: &str) -> Option<u64> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.parse().ok())
}

fn text_response(body: String) -> Response<UpBody> {
    let mut r = Response::new(Full::new(Bytes::from(body)).boxed());
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("text/plain"));
    r
}

fn body_failed() -> Response<UpBody> {
    let mut r = text_response("request body failed".into());
    *r.status_mut() = StatusCode::BAD_REQUEST;
    r
}

/// `n` data frames `render(i)`, `gap` apart (and `gap` before the first when `lead`).
fn ticks(
    n: u64,
    gap: Duration,
    lead: bool,
    render: fn(u64) -> String,
) -> impl futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send + Sync + 'static {
    futures_util::stream::unfold(0u64, move |i| async move {
        if i >= n {
            return None;
        }
        if i > 0 || lead {
            tokio::time::sleep(gap).await;
        }
        Some((Ok(Frame::data(Bytes::from(render(i)))), i + 1))
    })
}

fn event_stream<S>(frames: S) -> Response<UpBody>
where
    S: futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send + Sync + 'static,
{
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(frames)));
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/event-stream"),
    );
    r
}

/// A scripted HTTP/1.1 peer: for every connection it reads the request head, writes
/// `response` verbatim and closes. For broken or truncated upstream answers.
pub async fn scripted_upstream(response: &'static [u8]) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tcp.write_all(response).await;
                let _ = tcp.shutdown().await;
            });
        }
    });
    addr
}

/// An address on 127.0.0.1 that accepts no connection in time: its listen backlog is
/// full and never drained, so further SYNs are dropped and connects hang.
pub async fn blackhole() -> (
    SocketAddr,
    Vec<tokio::net::TcpStream>,
    tokio::net::TcpListener,
) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fill = Vec::new();
    // Fill the accept queue; stop once a connect no longer completes promptly.
    for _ in 0..16 {
        match tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(s)) => fill.push(s),
            _ => break,
        }
    }
    (addr, fill, listener)
}
