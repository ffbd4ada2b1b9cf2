//! Limits, the path check, building the upstream request of each attempt from what
//! the attempts share, and classifying client errors.

use super::retry::Kind;
use super::{Limits, Proxy};
use crate::body::{self, Body};
use crate::error::GatewayError;
use crate::headers;
use crate::metrics;
use crate::pipeline::ctx::RequestCtx;
use crate::routing::Route;
use crate::upstream::{Target, Upstream};
use http::header::{self, HeaderValue};
use http::{Request, Response, Version};
use std::error::Error as _;

/// Rejects requests whose head or declared body exceeds the limits.
pub(super) fn check_limits<B>(req: &Request<B>, limits: &Limits) -> Result<(), GatewayError> {
    let headers = req.headers();
    if headers.len() > limits.max_header_count {
        return Err(GatewayError::HeadersTooLarge(format!(
            "{} headers, limit {}",
            headers.len(),
            limits.max_header_count
        )));
    }
    let bytes =
        headers::header_bytes(headers) + req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if bytes > limits.max_header_bytes {
        return Err(GatewayError::HeadersTooLarge(format!(
            "{bytes} bytes, limit {}",
            limits.max_header_bytes
        )));
    }
    if let Some(len) = headers.get(header::CONTENT_LENGTH) {
        let len: u64 = len
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| GatewayError::BadRequest("invalid content-length".into()))?;
        if len > limits.max_body_bytes {
            return Err(GatewayError::BodyTooLarge {
                limit: limits.max_body_bytes,
            });
        }
    }
    Ok(())
}

/// The host the client addressed: the URI authority (HTTP/2, absolute-form) or the Host header.
pub(super) fn request_host<B>(req: &Request<B>) -> String {
    req.uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_default()
}

/// The upstream request as it is before a target is chosen: everything but the URI,
/// the Host header and the provider key, which each attempt sets for its target.
pub(super) struct Prepared {
    pub(super) method: http::Method,
    uri: http::Uri,
    rewritten: Option<String>,
    authority: Option<String>,
    host: Option<HeaderValue>,
    pub(super) headers: http::HeaderMap,
    /// An OpenAI chat request planned per provider family (`front::plan`): each
    /// attempt takes its group's body and path from it.
    pub(super) chat: Option<std::sync::Arc<super::front::Chat>>,
    /// The upgrade passed upstream: an HTTP/1.1 `Upgrade` whichever way the client
    /// asked (an HTTP/2 extended CONNECT becomes a GET with `Upgrade`).
    upgrade: Option<crate::upgrade::Requested>,
}

impl Proxy {
    /// Strips hop-by-hop headers, sets the forwarding headers and the request id, and
    /// rewrites the path: the parts of the upstream request every attempt shares.
    pub(super) fn prepare(
        &self,
        mut parts: http::request::Parts,
        route: &Route,
        ctx: &RequestCtx<'_>,
    ) -> Prepared {
        let rewritten = match ctx.path_is_final {
            true => None,
            false => match route.rewrite_path(parts.uri.path()) {
                std::borrow::Cow::Borrowed(p) if p == parts.uri.path() => None,
                rewritten => Some(rewritten.into_owned()),
            },
        };
        let client_host = (!ctx.host.is_empty()).then_some(ctx.host.as_str());
        // With preserve_host the client's host also becomes the URI authority, so an HTTP/2
        // upstream sees a consistent :authority; the connection still goes to the target.
        let authority = client_host
            .filter(|h| route.preserve_host && http::uri::Authority::try_from(*h).is_ok())
            .map(str::to_string);
        let wants_trailers = parts.headers.get_all(header::TE).iter().any(|v| {
            v.to_str().is_ok_and(|s| {
                s.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
            })
        });
        headers::strip_hop_by_hop(&mut parts.headers);
        if wants_trailers {
            parts
                .headers
                .insert(header::TE, HeaderValue::from_static("trailers"));
        }
        headers::set_forwarded(
            &mut parts.headers,
            ctx.conn.remote.ip(),
            ctx.conn.tls,
            client_host,
        );
        parts.headers.remove(header::HOST);
        parts.headers.remove(super::retry::ATTEMPT_HEADER);
        let host = match (route.preserve_host, client_host) {
            (true, Some(h)) => HeaderValue::from_str(h).ok(),
            _ => None,
        };
        parts
            .headers
            .insert(self.request_id_header.clone(), ctx.request_id.clone());
        Prepared {
            method: parts.method,
            uri: parts.uri,
            rewritten,
            authority,
            host,
            headers: parts.headers,
            chat: None,
            upgrade: ctx.upgrade.clone(),
        }
    }
}

impl Prepared {
    /// Whether the request asks the upstream to switch protocols.
    pub(super) fn upgrades(&self) -> bool {
        self.upgrade.is_some()
    }

    /// The request of one attempt on `target` with `headers` (the shared ones, with the
    /// attempt's provider key) and `body`, to `path` when the attempt's family has its
    /// own (Anthropic's messages API), else to the route's rewrite of the client's path.
    pub(super) fn request(
        &self,
        target: &Target,
        mut headers: http::HeaderMap,
        body: Body,
        path: Option<&str>,
    ) -> Result<Request<Body>, GatewayError> {
        let path = path.unwrap_or(self.rewritten.as_deref().unwrap_or(self.uri.path()));
        let uri = target
            .uri(path, self.uri.query(), self.authority.as_deref())
            .map_err(|e| GatewayError::BadRequest(format!("cannot build upstream URI: {e}")))?;
        let host = match &self.host {
            Some(h) => Some(h.clone()),
            None => HeaderValue::from_str(target.authority().as_str()).ok(),
        };
        if let Some(h) = host {
            headers.insert(header::HOST, h);
        }
        let mut method = self.method.clone();
        if let Some(upgrade) = &self.upgrade {
            // Stripped as hop-by-hop with the rest; the upstream leg is HTTP/1.1.
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            if let Some(v) = upgrade.header() {
                headers.insert(header::UPGRADE, v);
            }
            if upgrade.inspect {
                headers.remove(http::HeaderName::from_static("sec-websocket-extensions"));
            }
            if upgrade.h2 {
                method = http::Method::GET;
                let key = http::HeaderName::from_static("sec-websocket-key");
                if upgrade.protocol == "websocket" && !headers.contains_key(&key) {
                    headers.insert(key, crate::upgrade::websocket_key());
                }
            }
        }
        let mut req = Request::new(body);
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        // The pooled client negotiates HTTP/2 per connection; requests always start as HTTP/1.1.
        *req.version_mut() = Version::HTTP_11;
        *req.headers_mut() = headers;
        Ok(req)
    }
}

/// The response as the client gets it: hop-by-hop headers stripped, HTTP/1.1 (the client
/// connection has its own protocol; an HTTP/1.0 or h2 upstream must not leak through),
/// and the body cut with an error (`stalled` called once) when the upstream sends
/// nothing for `body_timeout`.
pub(super) fn downstream(
    response: Response<hyper::body::Incoming>,
    body_timeout: std::time::Duration,
    stalled: impl FnOnce() + Send + Sync + 'static,
) -> Response<Body> {
    let (mut parts, incoming) = response.into_parts();
    // A switch of protocols keeps the two headers that say so.
    let switched = (parts.status == http::StatusCode::SWITCHING_PROTOCOLS)
        .then(|| parts.headers.get(header::UPGRADE).cloned())
        .flatten();
    headers::strip_hop_by_hop(&mut parts.headers);
    if let Some(upgrade) = switched {
        parts.headers.insert(header::UPGRADE, upgrade);
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    parts.version = Version::HTTP_11;
    let incoming = body::StallBody::new(incoming, body_timeout, stalled);
    Response::from_parts(parts, body::boxed(incoming))
}

/// Classifies a client error: body limit (413), connect failure or timeout (502/504),
/// the client's own body failing (no retry), or a broken exchange (502).
pub(super) fn map_client_error(
    err: &hyper_util::client::legacy::Error,
    route: &Route,
    upstream: &Upstream,
) -> (Kind, GatewayError) {
    let mut source: Option<&(dyn std::error::Error + 'static)> = err.source();
    let mut timed_out = false;
    let mut client_side = false;
    let mut innermost = err.to_string();
    while let Some(e) = source {
        if let Some(b) = e.downcast_ref::<body::BodyLimitExceeded>() {
            return (Kind::Neutral, GatewayError::BodyTooLarge { limit: b.0 });
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            timed_out |= io.kind() == std::io::ErrorKind::TimedOut;
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            client_side |= h.is_user();
        }
        innermost = e.to_string();
        source = e.source();
    }
    if err.is_connect() && timed_out {
        metrics::upstream_error(&route.name, &upstream.name, "connect_timeout");
        let e = GatewayError::UpstreamTimeout {
            upstream: upstream.name.to_string(),
            timeout_ms: upstream.connect_timeout.as_millis(),
        };
        return (Kind::ConnectTimeout, e);
    }
    let (kind, label) = match (err.is_connect(), client_side) {
        (true, _) => (Kind::Connect, "connect"),
        (false, true) => (Kind::Neutral, "protocol"),
        (false, false) => (Kind::Reset, "protocol"),
    };
    metrics::upstream_error(&route.name, &upstream.name, label);
    let e = GatewayError::UpstreamUnavailable {
        upstream: upstream.name.to_string(),
        reason: innermost,
    };
    (kind, e)
}
