//! Upgraded connections: HTTP/1.1 `Upgrade` (WebSocket and the other protocols a route
//! allows) and HTTP/2 extended CONNECT (RFC 8441), whose upstream leg is an HTTP/1.1
//! upgrade. The proxy runs the request stages on the upgrade request and forwards it;
//! when the upstream switches protocols, [`run`] joins the two connections
//! ([`splice`]) in a task that [`Upgrades`] tracks, so a shutdown can close them with
//! close frames and wait for them.

mod frames;
pub mod messages;
mod splice;

pub use messages::{Filter, Verdict};
pub use splice::{CLOSE_GRACE, Direction, Limits, Reason};

use http::{HeaderMap, HeaderValue, Method, header};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What an upgrade request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requested {
    /// The protocol, lower case (`websocket`).
    pub protocol: String,
    /// An HTTP/2 extended CONNECT: the client gets `200`, not `101`, and the upstream
    /// leg is made an HTTP/1.1 upgrade.
    pub h2: bool,
    /// Message hooks read the messages: no extension (permessage-deflate) may be
    /// negotiated, since the gateway could not read what it changes.
    pub inspect: bool,
}

impl Requested {
    /// The `Upgrade` value sent upstream.
    pub fn header(&self) -> Option<HeaderValue> {
        HeaderValue::from_str(&self.protocol).ok()
    }
}

/// The upgrade a request asks for: HTTP/2 `CONNECT` with `:protocol`, or an HTTP/1.1
/// request with `Upgrade` and an `upgrade` token in `Connection`. A `Connection:
/// upgrade` without `Upgrade` asks for nothing (and is forwarded as a plain request).
pub fn requested(
    method: &Method,
    headers: &HeaderMap,
    extensions: &http::Extensions,
) -> Option<Requested> {
    if method == Method::CONNECT {
        let protocol = extensions.get::<hyper::ext::Protocol>()?;
        return Some(Requested {
            protocol: protocol.as_str().to_ascii_lowercase(),
            h2: true,
            inspect: false,
        });
    }
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if !connection_upgrade {
        return None;
    }
    let protocol = headers.get(header::UPGRADE)?.to_str().ok()?;
    // The first protocol offered; a version suffix (`websocket/13`) is not a match.
    let first = protocol.split(',').next()?.trim().to_ascii_lowercase();
    (!first.is_empty()).then_some(Requested {
        protocol: first,
        h2: false,
        inspect: false,
    })
}

/// Keeps the client's connection busy for as long as a session it carries is open.
///
/// An HTTP/2 connection outlives the extended CONNECT streams it carries, and its
/// `server.idle_timeout` counts requests in flight; a quiet WebSocket stream is no
/// request once its `200` went out. The server puts one of these (holding its own
/// in-flight guard) into the extensions of every CONNECT request, and the session
/// keeps it, so only the route's `upgraded.idle_timeout` ends a quiet session.
#[derive(Clone)]
pub struct ConnectionHold {
    // Never read: dropping the last clone releases the guard.
    _guard: std::sync::Arc<dyn std::any::Any + Send + Sync>,
}

impl ConnectionHold {
    /// Holds `guard` until the last clone is dropped.
    pub fn new<G: std::any::Any + Send + Sync>(guard: G) -> ConnectionHold {
        ConnectionHold {
            _guard: std::sync::Arc::new(guard),
        }
    }
}

impl std::fmt::Debug for ConnectionHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectionHold")
    }
}

/// Upgraded connections in flight, tracked so the shutdown can close and await them.
#[derive(Debug, Default)]
pub struct Upgrades {
    tracker: TaskTracker,
    stop: CancellationToken,
}

impl Upgrades {
    /// Connections open now.
    pub fn open(&self) -> usize {
        self.tracker.len()
    }

    /// Runs `future` as a tracked upgraded connection.
    pub fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        drop(self.tracker.spawn(future));
    }

    /// What stops the splices: cancelled by [`Upgrades::shutdown`].
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Waits until [`Upgrades::shutdown`] was called and every connection ended.
    pub async fn wait(&self) {
        self.tracker.wait().await;
    }

    /// Puts close frames into every upgraded connection and waits up to `grace` for
    /// them to end; true when all did.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.stop.cancel();
        self.tracker.close();
        tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok()
    }
}

/// One upgraded connection: waits for both legs to switch protocols, then joins them
/// until it ends, with its metrics. `hold` (the request's plugin-set snapshot and the
/// route's connection permit) lives exactly as long.
pub async fn run<H: Send>(
    client: OnUpgrade,
    upstream: OnUpgrade,
    route: std::sync::Arc<str>,
    limits: Limits,
    stop: CancellationToken,
    filter: Option<(Box<dyn Filter + Send>, usize)>,
    hold: H,
) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(legs) => legs,
        Err(e) => {
            tracing::debug!(route = %route, error = %e, "upgrade did not complete");
            crate::metrics::upgraded_closed(&route, Reason::Error.as_str());
            return;
        }
    };
    let open = crate::metrics::UpgradedOpen::new(&route);
    let counters = crate::metrics::UpgradedBytes::new(&route);
    let count = |d: Direction, n: u64| counters.add(d == Direction::ToUpstream, n);
    let (client, upstream) = (TokioIo::new(client), TokioIo::new(upstream));
    let reason = match &filter {
        // Message hooks: the legs are read as messages.
        Some((filter, max)) => {
            messages::splice(client, upstream, limits, *max, &stop, &**filter, &count).await
        }
        None => splice::splice(client, upstream, limits, &stop, &count).await,
    };
    crate::metrics::upgraded_closed(&route, reason.as_str());
    tracing::debug!(route = %route, reason = reason.as_str(), "upgraded connection closed");
    drop(open);
    drop(hold);
}

/// A `Sec-WebSocket-Key` for the upstream leg of an HTTP/2 WebSocket, whose client
/// sends none (RFC 8441 §5): 16 random bytes, base64.
pub fn websocket_key() -> HeaderValue {
    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD.encode(uuid::Uuid::new_v4().as_bytes());
    HeaderValue::from_str(&key)
        .unwrap_or_else(|_| HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_h1_upgrades_and_refuses_half_ones() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("WebSocket"));
        let ext = http::Extensions::new();
        let r = requested(&Method::GET, &h, &ext).unwrap();
        assert_eq!((r.protocol.as_str(), r.h2), ("websocket", false));
        h.remove(header::UPGRADE);
        assert_eq!(requested(&Method::GET, &h, &ext), None);
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert_eq!(requested(&Method::GET, &h, &ext), None);
        assert_eq!(requested(&Method::CONNECT, &HeaderMap::new(), &ext), None);
    }

    #[test]
    fn websocket_keys_are_sixteen_bytes_of_base64() {
        assert_eq!(websocket_key().len(), 24);
        assert_ne!(websocket_key(), websocket_key());
    }
}
