//! Building the upstream request, sending it with a timeout and mapping failures.

use super::{ConnInfo, Limits};
use crate::body::{self, Body, BoxError};
use crate::error::GatewayError;
use crate::headers;
use crate::metrics as m;
use crate::routing::Route;
use crate::upstream::Upstream;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderName, Request, Response, Version};
use std::error::Error as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Everything [`send`] needs besides the request itself.
#[derive(Clone, Copy)]
pub(super) struct ForwardCtx<'a> {
    pub route: &'a Route,
    pub upstream: &'a Upstream,
    pub conn: ConnInfo,
    pub host: &'a str,
    pub request_id: &'a HeaderValue,
    pub request_id_header: &'a HeaderName,
    pub max_body_bytes: u64,
    /// A plugin set the path: forward it verbatim instead of applying the route rewrite.
    pub path_is_final: bool,
}

/// Rejects requests whose head or declared body exceeds the limits, and paths with dot
/// segments (`/a/../b`, also percent-encoded), which could match one route here and
/// reach another resource after the upstream normalises them.
pub(super) fn check_limits<B>(req: &Request<B>, limits: &Limits) -> Result<(), GatewayError> {
    if has_dot_segment(req.uri().path()) {
        return Err(GatewayError::BadRequest(
            "path contains a dot segment (/./ or /../)".into(),
        ));
    }
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

/// Rewrites the request for the upstream, sends it and maps the outcome.
pub(super) async fn send<B>(
    ctx: ForwardCtx<'_>,
    req: Request<B>,
) -> Result<Response<Body>, GatewayError>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (mut parts, incoming) = req.into_parts();
    let target = ctx.upstream.pick();
    let path = if ctx.path_is_final {
        std::borrow::Cow::Borrowed(parts.uri.path())
    } else {
        ctx.route.rewrite_path(parts.uri.path())
    };
    let client_host = (!ctx.host.is_empty()).then_some(ctx.host);
    // With preserve_host the client's host also becomes the URI authority, so an HTTP/2
    // upstream sees a consistent :authority; the connection still goes to the target.
    let authority = client_host
        .filter(|h| ctx.route.preserve_host && http::uri::Authority::try_from(*h).is_ok());
    parts.uri = target
        .uri(&path, parts.uri.query(), authority)
        .map_err(|e| GatewayError::BadRequest(format!("cannot build upstream URI: {e}")))?;
    // The pooled client negotiates HTTP/2 per connection; requests always start as HTTP/1.1.
    parts.version = Version::HTTP_11;

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
    let host_value = match (ctx.route.preserve_host, client_host) {
        (true, Some(h)) => HeaderValue::from_str(h).ok(),
        _ => HeaderValue::from_str(target.authority().as_str()).ok(),
    };
    if let Some(h) = host_value {
        parts.headers.insert(header::HOST, h);
    }
    parts
        .headers
        .insert(ctx.request_id_header.clone(), ctx.request_id.clone());
    if let Some(llm) = &ctx.upstream.llm {
        llm.inject(&mut parts.headers);
    }

    let tripped = Arc::new(AtomicBool::new(false));
    let limited = body::LimitBody::new(incoming, ctx.max_body_bytes, tripped.clone());
    let upstream_req = Request::from_parts(parts, body::boxed(limited));
    let timeout = ctx.route.timeout;
    let client = target
        .client()
        .ok_or_else(|| GatewayError::UpstreamUnavailable {
            upstream: ctx.upstream.name.to_string(),
            reason: "target has no client".into(),
        })?;
    let sent = tokio::time::timeout(timeout, client.request(upstream_req)).await;
    let upstream_name = &ctx.upstream.name;
    let response = match sent {
        Err(_) => {
            m::upstream_error(&ctx.route.name, upstream_name, "timeout");
            return Err(GatewayError::UpstreamTimeout {
                upstream: upstream_name.to_string(),
                timeout_ms: timeout.as_millis(),
            });
        }
        Ok(Err(_)) if tripped.load(Ordering::Acquire) => {
            return Err(GatewayError::BodyTooLarge {
                limit: ctx.max_body_bytes,
            });
        }
        Ok(Err(err)) => return Err(map_client_error(&err, ctx)),
        Ok(Ok(response)) => response,
    };
    let (mut parts, incoming) = response.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers);
    // The client connection has its own protocol; an HTTP/1.0 or h2 upstream must not leak through.
    parts.version = Version::HTTP_11;
    Ok(Response::from_parts(parts, body::boxed(incoming)))
}

/// Classifies a client error: body limit (413), connect timeout (504) or unavailable (502).
fn map_client_error(err: &hyper_util::client::legacy::Error, ctx: ForwardCtx<'_>) -> GatewayError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = err.source();
    let mut timed_out = false;
    let mut innermost = err.to_string();
    while let Some(e) = source {
        if let Some(b) = e.downcast_ref::<body::BodyLimitExceeded>() {
            return GatewayError::BodyTooLarge { limit: b.0 };
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            timed_out |= io.kind() == std::io::ErrorKind::TimedOut;
        }
        innermost = e.to_string();
        source = e.source();
    }
    let upstream = ctx.upstream.name.to_string();
    if err.is_connect() && timed_out {
        m::upstream_error(&ctx.route.name, &ctx.upstream.name, "connect_timeout");
        return GatewayError::UpstreamTimeout {
            upstream,
            timeout_ms: ctx.upstream.connect_timeout.as_millis(),
        };
    }
    let kind = if err.is_connect() {
        "connect"
    } else {
        "protocol"
    };
    m::upstream_error(&ctx.route.name, &ctx.upstream.name, kind);
    GatewayError::UpstreamUnavailable {
        upstream,
        reason: innermost,
    }
}

/// True when a path segment is `.` or `..`, counting `%2e` as a dot.
fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|segment| {
        let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
        decoded == "." || decoded == ".."
    })
}

#[cfg(test)]
mod tests {
    use super::has_dot_segment;

    #[test]
    fn dot_segments() {
        for bad in ["/a/../b", "/..", "/./x", "/a/%2E%2e/b", "/a/.%2e"] {
            assert!(has_dot_segment(bad), "{bad}");
        }
        for ok in ["/", "/a/b", "/a/..b", "/.well-known/x", "/a/b.."] {
            assert!(!has_dot_segment(ok), "{ok}");
        }
    }
}
