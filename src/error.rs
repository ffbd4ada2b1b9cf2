//! The request-path error type and the single place where errors become HTTP responses.
//!
//! Every failure that ends a proxied request early is a [`GatewayError`]. Only
//! [`GatewayError::into_response`] decides status codes and the JSON error body, so
//! clients always see the same shape:
//! `{"error":{"type":"upstream_timeout","message":"…","request_id":"…"}}`.

use crate::body::{self, Body};
use http::{HeaderValue, Response, StatusCode, header};

/// Why a request was answered by the gateway instead of the upstream.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// No route matched the host and path.
    #[error("no route matches host {host:?} and path {path:?}")]
    NoRoute {
        /// Host the client asked for.
        host: String,
        /// The path as received (before any rewrite).
        path: String,
    },
    /// The request head exceeded a configured limit.
    #[error("request headers too large: {0}")]
    HeadersTooLarge(String),
    /// The request body exceeded `server.max_body_bytes`.
    #[error("request body exceeds the limit of {limit} bytes")]
    BodyTooLarge {
        /// Configured limit in bytes.
        limit: u64,
    },
    /// The request could not be forwarded as sent.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The upstream could not be reached (refused, reset, DNS, TLS).
    #[error("upstream {upstream} unavailable: {reason}")]
    UpstreamUnavailable {
        /// Upstream group name.
        upstream: String,
        /// Short reason for operators.
        reason: String,
    },
    /// The upstream did not connect or answer in time.
    #[error("upstream {upstream} did not respond within {timeout_ms} ms")]
    UpstreamTimeout {
        /// Upstream group name.
        upstream: String,
        /// Timeout that expired.
        timeout_ms: u128,
    },
    /// A circuit-breaker limit of the upstream group is reached.
    #[error("upstream {upstream} is overloaded: {limit} reached")]
    UpstreamOverloaded {
        /// Upstream group name.
        upstream: String,
        /// Which limit (`max_requests`, `max_pending`, `max_connections`).
        limit: &'static str,
    },
    /// The route has `upgraded.max_connections` upgraded connections open already.
    #[error("route {route} has {max} upgraded connections open, its upgraded.max_connections")]
    TooManyUpgraded {
        /// Route name.
        route: String,
        /// The route's limit.
        max: usize,
    },
    /// The gateway is draining and accepts no new requests.
    #[error("gateway is shutting down")]
    ShuttingDown,
    /// A fail_closed plugin failed or timed out.
    #[error("plugin {plugin} failed in {hook}: {reason}")]
    PluginFailed {
        /// Instance name.
        plugin: String,
        /// The hook that failed, as in metric labels (`pre_auth`, `on_response_chunk`, …).
        hook: &'static str,
        /// What went wrong (timeout, crash, invalid result), for the JSON body.
        reason: String,
    },
    /// The route has auth plugins and none authenticated the request.
    #[error("{0}")]
    Unauthorized(String),
    /// A response to be buffered for a plugin exceeded the buffer limit.
    #[error("upstream response exceeds the buffering limit of {limit} bytes")]
    ResponseTooLarge {
        /// Limit in bytes.
        limit: usize,
    },
    /// The client stopped sending its request body for `server.body_read_timeout`.
    #[error("client sent no request body data for {timeout_ms} ms")]
    BodyReadTimeout {
        /// Timeout that expired.
        timeout_ms: u128,
    },
    /// The client's request body could not be read.
    #[error("cannot read request body: {0}")]
    ClientBody(String),
    /// The gateway's own state is inconsistent: a bug, never the client's doing.
    #[error("internal error: {0}")]
    Internal(String),
}

impl GatewayError {
    /// HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::NoRoute { .. } => StatusCode::NOT_FOUND,
            GatewayError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            GatewayError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::BadRequest(_) => StatusCode::BAD_REQUEST,
            GatewayError::UpstreamUnavailable { .. } => StatusCode::BAD_GATEWAY,
            GatewayError::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::UpstreamOverloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::TooManyUpgraded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::PluginFailed { .. } => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            GatewayError::ResponseTooLarge { .. } => StatusCode::BAD_GATEWAY,
            GatewayError::BodyReadTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            GatewayError::ClientBody(_) => StatusCode::BAD_REQUEST,
            GatewayError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable machine-readable error type used in the JSON body and metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            GatewayError::NoRoute { .. } => "route_not_found",
            GatewayError::HeadersTooLarge(_) => "request_header_fields_too_large",
            GatewayError::BodyTooLarge { .. } => "payload_too_large",
            GatewayError::BadRequest(_) => "bad_request",
            GatewayError::UpstreamUnavailable { .. } => "upstream_unavailable",
            GatewayError::UpstreamTimeout { .. } => "upstream_timeout",
            GatewayError::UpstreamOverloaded { .. } => "upstream_overloaded",
            GatewayError::TooManyUpgraded { .. } => "too_many_upgraded_connections",
            GatewayError::ShuttingDown => "shutting_down",
            GatewayError::PluginFailed { .. } => "plugin_unavailable",
            GatewayError::Unauthorized(_) => "unauthorized",
            GatewayError::ResponseTooLarge { .. } => "response_too_large",
            GatewayError::BodyReadTimeout { .. } => "body_read_timeout",
            GatewayError::ClientBody(_) => "bad_request",
            GatewayError::Internal(_) => "internal_error",
        }
    }

    /// Builds the JSON error response; `request_id` is echoed in the body.
    pub fn into_response(self, request_id: &str) -> Response<Body> {
        let status = self.status();
        let mut response = json_error(status, self.kind(), &self.to_string(), request_id);
        match self {
            GatewayError::Unauthorized(_) => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            // The rest of the stalled body may still arrive: the connection cannot be reused.
            GatewayError::BodyReadTimeout { .. } => {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

/// Renders the one JSON error shape used by the proxy and the admin listener.
pub fn json_error(
    status: StatusCode,
    kind: &str,
    message: &str,
    request_id: &str,
) -> Response<Body> {
    let payload = serde_json::json!({
        "error": { "type": kind, "message": message, "request_id": request_id }
    });
    let mut response = Response::new(body::full(payload.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Renders an error and its sources once each, outermost first, joined by `": "`: the
/// one reporter for logs, CLI output and API bodies. A source whose text the message
/// so far already ends with (an error that also printed its cause) is not repeated.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !part.is_empty() && !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod chain_tests {
    use super::chain;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read config file /x")]
    struct Outer(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("layer: {0}")]
    struct Echoing(#[source] std::io::Error);

    #[test]
    fn each_cause_appears_once() {
        let io = || std::io::Error::from_raw_os_error(2);
        let text = chain(&Outer(io()));
        assert_eq!(text.matches("os error 2").count(), 1, "{text}");
        assert!(text.starts_with("cannot read config file /x: "), "{text}");
        let text = chain(&Echoing(io()));
        assert_eq!(text.matches("os error 2").count(), 1, "{text}");
    }
}

#[cfg(test)]
mod tests {
    use super::GatewayError;
    use http::StatusCode;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn internal_errors_are_500_internal_error() {
        let err = GatewayError::Internal("route has no upstream".into());
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(err.kind(), "internal_error");
        let response = err.into_response("id-1");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"]["type"], "internal_error");
        assert_eq!(json["error"]["request_id"], "id-1");
        assert_eq!(
            json["error"]["message"],
            "internal error: route has no upstream"
        );
    }
}
