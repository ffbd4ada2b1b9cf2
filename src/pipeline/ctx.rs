//! The one per-request context, [`RequestCtx`], and the client connection it came on.
//!
//! `Proxy::handle` makes a context when a request arrives and passes it `&mut` through
//! every phase: limits and routing fill in the host, route, upstream and plugin-set
//! snapshot; the request stages record what hooks share and decide; the response
//! stage reads it. At the end, the access log and the tail record are built from it
//! once, whichever way the request ended. This is the shape of pingora's `CTX`: one
//! value per request that each phase receives.
//!
//! It lives in the pipeline, not in the proxy, because the pipeline's stages take it
//! and the pipeline sits below the proxy in the import order.

use crate::loader::{PluginSet, RoutePlan};
use crate::plugin::{RequestContext, RequestSummary};
use crate::routing::Route;
use crate::upstream::Upstream;
use http::{HeaderValue, Method};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::time::Instant;

/// Facts about the client connection a request arrived on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// Client socket address.
    pub remote: SocketAddr,
    /// Whether the client connection is TLS.
    pub tls: bool,
}

/// Everything the gateway knows about one request besides the request itself.
///
/// Fields that a phase fills in start empty (`None`, `false`, 0), so a request that
/// ended early, say at the limits, still logs with what was known by then. The
/// lifetime is the proxy's: the route and upstream are borrowed from its tables.
#[derive(Debug)]
pub struct RequestCtx<'a> {
    /// The client's request id when it sent a valid one, otherwise a generated one;
    /// sent upstream, echoed in the response and in gateway error bodies.
    pub request_id: HeaderValue,
    /// When the request arrived: the access log's duration and the tail's start.
    pub start: Instant,
    /// The client connection.
    pub conn: ConnInfo,
    /// The method as the client sent it, for the access log.
    pub method: Method,
    /// The path as the client sent it, for the access log; hooks and the route
    /// rewrite change only what goes upstream.
    pub path: String,
    /// The host the client addressed (URI authority or `Host` header), port included;
    /// empty until the limits have passed, or when the client named none.
    pub host: String,
    /// The matched route; `None` until routing, and when no route matched.
    pub route: Option<&'a Route>,
    /// The route's upstream group; `None` until it was looked up.
    pub upstream: Option<&'a Upstream>,
    /// The plugin-set snapshot this request uses from its first hook to its last tail
    /// hook, loaded once after routing.
    pub plugins: Option<Arc<PluginSet>>,
    /// What the route's hooks share: values they set for later hooks, and the
    /// identity the auth stage established.
    pub hook_state: RequestContext,
    /// A hook set the path: it is forwarded verbatim, without the route's rewrite.
    pub path_is_final: bool,
    /// The request as forwarded, for response hooks, the tail hooks and LLM usage;
    /// built after the request stages, and only when one of those needs it.
    pub summary: Option<RequestSummary>,
    /// Bytes of the request body buffered for hooks; 0 when the body streamed.
    pub request_bytes: u64,
    /// The answer came from the LLM response cache, not the provider.
    pub cache_hit: bool,
    /// The upgrade the client asked for and the route allows (WebSocket, extended
    /// CONNECT); `None` for every other request.
    pub upgrade: Option<crate::upgrade::Requested>,
    /// The route's slot for the upgraded connection, held until it ends.
    pub upgrade_slot: Option<tokio::sync::OwnedSemaphorePermit>,
    /// Token usage already read on the request path (a whole JSON answer), so the
    /// collect worker need not parse the body again.
    pub usage: Option<crate::llm::TokenUsage>,
}

impl<'a> RequestCtx<'a> {
    /// A context for a request that arrived at `start` on `conn`, before any phase ran.
    pub fn new(
        start: Instant,
        conn: ConnInfo,
        request_id: HeaderValue,
        method: Method,
        path: String,
    ) -> RequestCtx<'a> {
        RequestCtx {
            request_id,
            start,
            conn,
            method,
            path,
            host: String::new(),
            route: None,
            upstream: None,
            plugins: None,
            hook_state: RequestContext::default(),
            path_is_final: false,
            summary: None,
            request_bytes: 0,
            cache_hit: false,
            upgrade: None,
            upgrade_slot: None,
            usage: None,
        }
    }

    /// The request id as text. `headers::request_id` accepts only visible ASCII, so
    /// the empty fallback is never seen.
    pub fn request_id_str(&self) -> &str {
        self.request_id.to_str().unwrap_or_default()
    }

    /// The matched route's name; empty before routing or when no route matched.
    pub fn route_name(&self) -> &str {
        self.route.map_or("", |r| &r.name)
    }

    /// The client address as hooks see it: an IPv4-mapped IPv6 address as plain IPv4.
    pub fn client_ip(&self) -> IpAddr {
        self.conn.remote.ip().to_canonical()
    }

    /// The plan of the matched route in the snapshot; `None` before both are known.
    pub fn plan(&self) -> Option<&RoutePlan> {
        Some(self.plugins.as_ref()?.plan(self.route?.index))
    }

    /// The LLM provider of the route's upstream, when it has one.
    pub fn provider(&self) -> Option<crate::llm::Provider> {
        // The group that answered (a fallback of another family included) once known.
        if let Some(provider) = self.summary.as_ref().and_then(|s| s.llm) {
            return Some(provider);
        }
        self.upstream?.llm.as_ref().map(|l| l.provider)
    }
}
