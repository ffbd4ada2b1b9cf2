//! Test clients: hyper-util's legacy client for HTTP/1.1, hyper's connection-level
//! HTTP/2 client for h2c (prior knowledge) and h2 over TLS, a TLS connector with chosen
//! ALPN, and raw TCP for requests a well-behaved client would refuse to send.

use super::pki::TestPki;
use super::upstream::Echo;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::header::HeaderMap;
use hyper::{Request, Response, StatusCode, Version};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Error type of request bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Body type of every test request.
pub type ReqBody = BoxBody<Bytes, BoxError>;
/// The HTTP/1.1 pooled client.
pub type H1Client = Client<HttpConnector, ReqBody>;

/// Upper bound for any single exchange, so a hung gateway fails the test instead of hanging it.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(20);

/// A fully read response.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: StatusCode,
    /// Protocol version of the response.
    pub version: Version,
    /// Response headers.
    pub headers: HeaderMap,
    /// Whole body.
    pub body: Bytes,
}

impl Reply {
    /// The body as UTF-8 text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    /// The body parsed as the upstream's echo report.
    pub fn echo(&self) -> Echo {
        assert_eq!(
            self.status,
            StatusCode::OK,
            "expected an echo, got {self:?}"
        );
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not an echo ({e}): {}", self.text()))
    }

    /// A response header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a gateway JSON error of `status` and `kind`; returns the error object.
    pub fn assert_error(&self, status: StatusCode, kind: &str) -> serde_json::Value {
        assert_eq!(self.status, status, "unexpected status: {}", self.text());
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "gateway errors are JSON"
        );
        let json = self.json();
        assert_eq!(json["error"]["type"], kind, "unexpected error body: {json}");
        assert!(json["error"]["message"].is_string(), "{json}");
        json["error"].clone()
    }
}

/// An empty request body.
pub fn empty() -> ReqBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A request body of `data` in one frame (with a known length).
pub fn full(data: impl Into<Bytes>) -> ReqBody {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A streaming request body (no length, sent chunked on HTTP/1.1) of `chunks` × `size` bytes.
pub fn chunked(chunks: usize, size: usize) -> ReqBody {
    let chunk = Bytes::from(vec![b'x'; size]);
    let stream = futures_util::stream::iter(
        (0..chunks).map(move |_| Ok::<_, BoxError>(hyper::body::Frame::data(chunk.clone()))),
    );
    http_body_util::StreamBody::new(stream).boxed()
}

/// A new HTTP/1.1 client with its own pool.
pub fn h1() -> H1Client {
    Client::builder(TokioExecutor::new()).build_http()
}

/// `http://{addr}{path}`.
pub fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

/// Reads the whole response into a [`Reply`].
pub async fn collect<B>(resp: Response<B>) -> Reply
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let (parts, body) = resp.into_parts();
    let body = tokio::time::timeout(EXCHANGE_TIMEOUT, body.collect())
        .await
        .expect("response body timed out")
        .expect("response body failed")
        .to_bytes();
    Reply {
        status: parts.status,
        version: parts.version,
        headers: parts.headers,
        body,
    }
}

/// Sends `req` with `client` and reads the whole response.
pub async fn send(client: &H1Client, req: Request<ReqBody>) -> Reply {
    let resp = tokio::time::timeout(EXCHANGE_TIMEOUT, client.request(req))
        .await
        .expect("request timed out")
        .expect("request failed");
    collect(resp).await
}

/// Sends a request built from `method`, `path` and `headers` to the gateway at `addr`.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: ReqBody,
) -> Reply {
    let mut builder = Request::builder().method(method).uri(url(addr, path));
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    send(&h1(), builder.body(body).unwrap()).await
}

/// `GET path` on a fresh HTTP/1.1 connection.
pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path, &[], empty()).await
}

/// `GET path` with extra headers (a `host` entry replaces the default Host).
pub async fn get_with(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    request(addr, "GET", path, headers, empty()).await
}

/// Opens an h2c (prior knowledge) connection to `addr`.
pub async fn h2c(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<ReqBody> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

/// Opens a TLS connection to `addr` for server name `localhost`, trusting the test CA and
/// offering `alpn`.
pub async fn tls(addr: SocketAddr, pki: &TestPki, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let connector = TlsConnector::from(pki.client_config(alpn));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await.unwrap()
}

/// Performs the HTTP/2 handshake over an established TLS stream.
pub async fn h2_over(
    stream: TlsStream<TcpStream>,
) -> hyper::client::conn::http2::SendRequest<ReqBody> {
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

/// Performs the HTTP/1.1 handshake over an established TLS stream.
pub async fn h1_over(
    stream: TlsStream<TcpStream>,
) -> hyper::client::conn::http1::SendRequest<ReqBody> {
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

/// Sends `req` on an HTTP/2 connection and reads the whole response.
pub async fn send_h2(
    sender: &mut hyper::client::conn::http2::SendRequest<ReqBody>,
    req: Request<ReqBody>,
) -> Reply {
    sender.ready().await.unwrap();
    let resp = tokio::time::timeout(EXCHANGE_TIMEOUT, sender.send_request(req))
        .await
        .expect("h2 request timed out")
        .expect("h2 request failed");
    collect(resp).await
}

/// Writes `bytes` on a new TCP connection and reads until the server closes it or 10 s pass.
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(bytes).await.unwrap();
    read_until_close(&mut tcp).await
}

/// Reads from `tcp` until EOF (or a reset) or 10 s pass; returns what arrived.
pub async fn read_until_close(tcp: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Status code on the first line of a raw HTTP/1.1 response (0 when there is none).
pub fn raw_status(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
