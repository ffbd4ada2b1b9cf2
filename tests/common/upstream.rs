//! A real hyper upstream on 127.0.0.1:0 speaking HTTP/1.1 and h2c (hyper-util's auto
//! builder), optionally behind TLS with the test PKI.
//!
//! Endpoints (every response carries `x-upstream-id: <id>`):
//! - `/sse?n=N&gap_ms=M`: `text/event-stream`, N events `data: event-i\n\n`, M ms apart;
//! - `/slow?ms=M`: answers `slow done` after M ms;
//! - `/hop`: answers with hop-by-hop headers (`Connection: x-upstream-private`,
//!   `x-upstream-private: 1`, `Keep-Alive: timeout=5`) plus `x-normal: yes`;
//! - anything else (e.g. `/echo`): JSON [`Echo`] of what arrived, after consuming the body.

use super::pki::TestPki;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::HeaderValue;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

type UpBody = BoxBody<Bytes, Infallible>;

/// What `/echo` (and every unknown path) reports about the request it received.
#[derive(Debug, Deserialize)]
pub struct Echo {
    /// Id of the upstream that answered.
    pub upstream: String,
    /// Request method.
    pub method: String,
    /// Request path, without the query.
    pub path: String,
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

/// A running upstream; its accept loop stops when it is dropped.
pub struct TestUpstream {
    /// Bound address.
    pub addr: SocketAddr,
    /// Identity reported in `x-upstream-id` and `Echo::upstream`.
    pub id: String,
    tls: bool,
    hits: watch::Receiver<usize>,
    task: JoinHandle<()>,
}

impl Drop for TestUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestUpstream {
    /// Plain HTTP/1.1 + h2c upstream.
    pub async fn start(id: &str) -> TestUpstream {
        Self::spawn(id, None).await
    }

    /// HTTPS upstream presenting the test PKI's leaf (ALPN h2, http/1.1).
    pub async fn start_tls(id: &str, pki: &TestPki) -> TestUpstream {
        Self::spawn(id, Some(TlsAcceptor::from(pki.server_config()))).await
    }

    async fn spawn(id: &str, tls: Option<TlsAcceptor>) -> TestUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = watch::channel(0usize);
        let tx = Arc::new(tx);
        let ident: Arc<str> = Arc::from(id);
        let is_tls = tls.is_some();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let tx = tx.clone();
                let ident = ident.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        tx.send_modify(|h| *h += 1);
                        handle(req, ident.clone())
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
            id: id.to_string(),
            tls: is_tls,
            hits: rx,
            task,
        }
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
}

/// The numeric value of query parameter `name` in `a=1&b=2` (no percent-decoding).
fn query_param(query: Option<&str>, name: &str) -> Option<u64> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.parse().ok())
}

async fn handle(req: Request<Incoming>, id: Arc<str>) -> Result<Response<UpBody>, Infallible> {
    let query = req.uri().query().map(str::to_string);
    let q = query.as_deref();
    let mut resp = match req.uri().path() {
        "/sse" => sse(
            query_param(q, "n").unwrap_or(3),
            Duration::from_millis(query_param(q, "gap_ms").unwrap_or(100)),
        ),
        "/slow" => {
            let ms = query_param(q, "ms").unwrap_or(1000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            text("slow done")
        }
        "/hop" => {
            let mut r = text("hop");
            let h = r.headers_mut();
            h.insert("connection", HeaderValue::from_static("x-upstream-private"));
            h.insert("x-upstream-private", HeaderValue::from_static("1"));
            h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
            h.insert("x-normal", HeaderValue::from_static("yes"));
            r
        }
        _ => echo(req, &id).await,
    };
    resp.headers_mut()
        .insert("x-upstream-id", HeaderValue::from_str(&id).unwrap());
    Ok(resp)
}

fn text(body: &'static str) -> Response<UpBody> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())).boxed());
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("text/plain"));
    r
}

fn sse(n: u64, gap: Duration) -> Response<UpBody> {
    let stream = futures_util::stream::unfold(0u64, move |i| async move {
        if i >= n {
            return None;
        }
        if i > 0 {
            tokio::time::sleep(gap).await;
        }
        let event = Bytes::from(format!("data: event-{i}\n\n"));
        Some((Ok::<_, Infallible>(Frame::data(event)), i + 1))
    });
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/event-stream"),
    );
    r.headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-cache"));
    r
}

async fn echo(req: Request<Incoming>, id: &str) -> Response<UpBody> {
    let (parts, mut body) = req.into_parts();
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in &parts.headers {
        headers
            .entry(k.as_str().to_string())
            .or_default()
            .push(String::from_utf8_lossy(v.as_bytes()).into_owned());
    }
    let mut body_len = 0u64;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => body_len += f.data_ref().map_or(0, |d| d.len() as u64),
            Err(_) => {
                let mut r = text("request body failed");
                *r.status_mut() = hyper::StatusCode::BAD_REQUEST;
                return r;
            }
        }
    }
    let json = serde_json::json!({
        "upstream": id,
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "authority": parts.uri.authority().map(|a| a.as_str()),
        "query": parts.uri.query(),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "body_len": body_len,
    });
    let mut r = Response::new(Full::new(Bytes::from(json.to_string())).boxed());
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

/// A scripted HTTP/1.1 upstream: for every connection it reads the request head, writes
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
