//! Serving one client connection: optional TLS handshake, HTTP/1 or HTTP/2 via
//! `hyper-util`'s auto builder, idle timeout and graceful/hard shutdown.

use super::activity::{Activity, ActivityIo, TrackedBody};
use crate::body::Body;
use crate::config::Config;
use crate::proxy::{ConnInfo, Proxy};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// Concurrent HTTP/2 streams allowed per client connection.
pub const H2_MAX_CONCURRENT_STREAMS: u32 = 200;

/// State every connection task shares.
pub struct ConnShared {
    proxy: Arc<Proxy>,
    builder: auto::Builder<TokioExecutor>,
    tls: Option<TlsAcceptor>,
    idle_timeout: Duration,
    handshake_timeout: Duration,
    graceful: CancellationToken,
    hard: CancellationToken,
}

impl ConnShared {
    /// The proxy served on these connections.
    pub fn proxy(&self) -> &Arc<Proxy> {
        &self.proxy
    }

    /// Configures the HTTP/1 and HTTP/2 server settings from `config`.
    pub fn new(
        config: &Config,
        proxy: Arc<Proxy>,
        tls: Option<TlsAcceptor>,
        graceful: CancellationToken,
        hard: CancellationToken,
    ) -> ConnShared {
        let s = &config.server;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // hyper enforces a slightly looser hard cap (it answers 431 itself beyond it);
        // the exact configured limits are checked per request so the client gets the JSON error.
        // hyper adds the header read timeout to the current time and allocates room for
        // `max_headers` per request, so both stay within what validation allows even for
        // a hand-built `Config`.
        let max_headers = s.max_header_count.min(crate::config::MAX_HEADER_COUNT);
        let max_header_bytes = s.max_header_bytes.min(crate::config::MAX_HEADER_BYTES);
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(crate::deadline::cap(s.header_read_timeout))
            .max_headers(max_headers + 32)
            .max_buf_size((max_header_bytes + 8192).max(8192));
        let list_size = u32::try_from(max_header_bytes + 8192).unwrap_or(u32::MAX);
        // HTTP/2 abuse limits, spelled out rather than inherited from hyper's defaults:
        // at most 200 concurrent streams per connection (REFUSED_STREAM beyond), GOAWAY
        // ENHANCE_YOUR_CALM after 20 streams reset by the client before they were served
        // (rapid reset, CVE-2023-44487) or 1024 streams the gateway had to reset.
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
            .max_pending_accept_reset_streams(Some(20))
            .max_local_error_reset_streams(Some(1024))
            .max_header_list_size(list_size)
            .keep_alive_interval(Some(Duration::from_secs(30)))
            .keep_alive_timeout(Duration::from_secs(20))
            // RFC 8441: WebSockets over HTTP/2 streams (`CONNECT` with `:protocol`).
            .enable_connect_protocol();
        ConnShared {
            proxy,
            builder,
            tls,
            idle_timeout: s.idle_timeout,
            handshake_timeout: s.header_read_timeout,
            graceful,
            hard,
        }
    }
}

/// Decrements the open-connection gauge when the connection task ends.
struct ConnGauge;

impl ConnGauge {
    fn open() -> ConnGauge {
        crate::metrics::connection(1.0);
        ConnGauge
    }
}

impl Drop for ConnGauge {
    fn drop(&mut self) {
        crate::metrics::connection(-1.0);
    }
}

/// Serves one accepted TCP connection until it closes or shutdown forces it closed.
pub async fn serve(
    stream: TcpStream,
    remote: SocketAddr,
    shared: Arc<ConnShared>,
    _permit: OwnedSemaphorePermit,
) {
    let _gauge = ConnGauge::open();
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "set_nodelay failed");
    }
    match &shared.tls {
        None => serve_io(stream, ConnInfo { remote, tls: false }, &shared).await,
        Some(acceptor) => {
            let handshake = tokio::time::timeout(shared.handshake_timeout, acceptor.accept(stream));
            let tls = tokio::select! {
                _ = shared.hard.cancelled() => return,
                r = handshake => r,
            };
            match tls {
                Ok(Ok(tls)) => serve_io(tls, ConnInfo { remote, tls: true }, &shared).await,
                Ok(Err(e)) => tracing::debug!(%remote, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
            }
        }
    }
}

async fn serve_io<I>(io: I, info: ConnInfo, shared: &ConnShared)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Activity::new();
    let io = TokioIo::new(ActivityIo::new(io, activity.clone()));
    let proxy = shared.proxy.clone();
    let tracker = activity.clone();
    let service = service_fn(move |mut req: hyper::Request<Incoming>| {
        let proxy = proxy.clone();
        let guard = tracker.begin();
        // An HTTP/2 stream that may become a tunnel keeps the connection busy while
        // its session is open (see `ConnectionHold`).
        if req.method() == http::Method::CONNECT {
            let hold = crate::upgrade::ConnectionHold::new(tracker.begin());
            req.extensions_mut().insert(hold);
        }
        async move {
            let response: hyper::Response<Body> = proxy.handle(req, info).await;
            Ok::<_, Infallible>(response.map(|b| TrackedBody::new(b, guard)))
        }
    });
    // Upgrades (WebSocket) hand the connection to the proxy's splice once switched.
    let conn = shared.builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    let idle = shared.idle_timeout;
    let mut closing = false;
    let mut next_check = activity.idle_deadline(idle);
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(remote = %info.remote, error = %e, "connection ended with error");
                }
                return;
            }
            _ = shared.graceful.cancelled(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = shared.hard.cancelled() => return,
            _ = tokio::time::sleep_until(next_check) => {
                if activity.is_idle(idle) {
                    if closing {
                        return;
                    }
                    tracing::debug!(remote = %info.remote, "closing idle connection");
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                // Busy or recently active: look again when it could next become idle.
                let now = tokio::time::Instant::now();
                let deadline = activity.idle_deadline(idle);
                next_check = if deadline > now {
                    deadline
                } else {
                    crate::deadline::after(now, idle)
                };
            }
        }
    }
}
