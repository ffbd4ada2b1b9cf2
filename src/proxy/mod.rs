//! The proxy handler: limits, routing, forwarding to the upstream and back.
//!
//! [`Proxy::handle`] is the whole request path. It never panics and never returns an
//! error to hyper: every failure becomes a [`GatewayError`] and, in exactly one place,
//! a JSON response. Bodies stream in both directions; nothing is buffered.

mod forward;

use crate::body::{Body, BoxError};
use crate::config::{Config, ConfigError};
use crate::error::GatewayError;
use crate::headers;
use crate::metrics as m;
use crate::routing::{Route, Router};
use crate::upstream::{Upstream, UpstreamError};
use bytes::Bytes;
use http::{HeaderName, Request, Response};
use std::net::SocketAddr;
use std::time::Instant;

/// Errors building a [`Proxy`] from configuration.
#[derive(Debug, thiserror::Error)]
pub enum ProxyBuildError {
    /// An upstream group could not be built.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The configuration is inconsistent.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Facts about the client connection a request arrived on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// Client socket address.
    pub remote: SocketAddr,
    /// Whether the client connection is TLS.
    pub tls: bool,
}

/// Request-size limits enforced before forwarding.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Maximum number of header values.
    pub max_header_count: usize,
    /// Maximum bytes of header names plus values.
    pub max_header_bytes: usize,
    /// Maximum request body bytes.
    pub max_body_bytes: u64,
}

/// The immutable proxy state shared by all connections.
#[derive(Debug)]
pub struct Proxy {
    router: Router,
    upstreams: Vec<Upstream>,
    limits: Limits,
    request_id_header: HeaderName,
}

impl Proxy {
    /// Builds routes and upstream clients from a validated configuration.
    pub fn from_config(config: &Config) -> Result<Proxy, ProxyBuildError> {
        let upstreams = config
            .upstreams
            .iter()
            .map(Upstream::new)
            .collect::<Result<Vec<_>, _>>()?;
        let mut routes = Vec::with_capacity(config.routes.len());
        for (i, r) in config.routes.iter().enumerate() {
            let index = upstreams
                .iter()
                .position(|u| *u.name == *r.upstream)
                .ok_or_else(|| {
                    ConfigError::invalid(
                        format!("routes[{i}].upstream"),
                        format!("unknown upstream {:?}", r.upstream),
                    )
                })?;
            routes.push(Route::new(r, index));
        }
        let request_id_header = HeaderName::from_bytes(config.server.request_id_header.as_bytes())
            .map_err(|_| {
                ConfigError::invalid("server.request_id_header", "not a valid header name")
            })?;
        Ok(Proxy {
            router: Router::new(routes),
            upstreams,
            limits: Limits {
                max_header_count: config.server.max_header_count,
                max_header_bytes: config.server.max_header_bytes,
                max_body_bytes: config.server.max_body_bytes,
            },
            request_id_header,
        })
    }

    /// The route table.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Handles one request end to end; always produces a response.
    pub async fn handle<B>(&self, req: Request<B>, conn: ConnInfo) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let start = Instant::now();
        let request_id = headers::request_id(req.headers(), &self.request_id_header);
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let mut route_label: Option<std::sync::Arc<str>> = None;
        let result = self.forward(req, conn, &request_id, &mut route_label).await;
        let route = route_label.as_deref().unwrap_or(m::NO_ROUTE);
        let mut response = match result {
            Ok(response) => response,
            Err(err) => {
                tracing::debug!(route, error = %err, "request answered by the gateway");
                m::gateway_error(route, err.kind());
                err.into_response(request_id.to_str().unwrap_or_default())
            }
        };
        let status = response.status();
        response
            .headers_mut()
            .insert(self.request_id_header.clone(), request_id.clone());
        let elapsed = start.elapsed();
        m::request_done(route, status, elapsed);
        tracing::info!(
            target: "microgateway::access",
            request_id = request_id.to_str().unwrap_or_default(),
            client = %conn.remote.ip(),
            method = %method,
            path = %path,
            route,
            status = status.as_u16(),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
        );
        response
    }

    async fn forward<B>(
        &self,
        req: Request<B>,
        conn: ConnInfo,
        request_id: &http::HeaderValue,
        route_label: &mut Option<std::sync::Arc<str>>,
    ) -> Result<Response<Body>, GatewayError>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        forward::check_limits(&req, &self.limits)?;
        let host = forward::request_host(&req);
        let route = self
            .router
            .find(crate::routing::host_without_port(&host), req.uri().path())
            .ok_or_else(|| GatewayError::NoRoute {
                host: host.clone(),
                path: req.uri().path().to_string(),
            })?;
        *route_label = Some(route.name.clone());
        let upstream = self
            .upstreams
            .get(route.upstream)
            .ok_or_else(|| GatewayError::BadRequest("route has no upstream".into()))?;
        let ctx = forward::ForwardCtx {
            route,
            upstream,
            conn,
            host: &host,
            request_id,
            request_id_header: &self.request_id_header,
            max_body_bytes: self.limits.max_body_bytes,
        };
        forward::send(ctx, req).await
    }
}
