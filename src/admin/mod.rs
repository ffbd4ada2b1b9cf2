//! The admin listener: `/healthz`, `/readyz`, Prometheus `/metrics` and the plugin API
//! under `/api/v1` (bearer token, see [`auth`]; `Host`, `Origin` and content-type rules,
//! see [`guard`]).
//!
//! It listens on loopback by default and serves HTTP/1.1 only. It stays up while the
//! proxy drains so orchestrators can watch `/readyz` turn 503.

pub mod api;
pub mod auth;
mod commands;
pub mod fleet;
pub mod guard;
pub mod manager;
mod readiness;
pub mod records;
pub mod triggers;

pub use readiness::Readiness;

use crate::body::{self, Body};
use crate::error::json_error;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::PrometheusHandle;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What the admin listener serves.
pub struct Admin {
    /// Draining state, set by the server; `/readyz` turns 503 once it drains.
    pub readiness: Arc<Readiness>,
    /// Renders `/metrics`; `None` when an embedder installed another recorder.
    pub metrics: Option<PrometheusHandle>,
    /// API token; there is always one (configured or generated).
    pub token: auth::AdminToken,
    /// `Host` and `Origin` rules of `/api/v1`.
    pub guard: guard::Guard,
    /// The plugin manager behind `/api/v1`.
    pub manager: Arc<manager::PluginManager>,
}

/// Serves admin requests until `stop` is cancelled.
pub async fn serve(listener: TcpListener, admin: Arc<Admin>, stop: CancellationToken) {
    let tracker = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, local) = match accepted.and_then(|(s, _)| {
            let local = s.local_addr()?;
            Ok((s, local))
        }) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let admin = admin.clone();
        let stop = stop.clone();
        tracker.spawn(async move {
            let service = service_fn(move |req| {
                let admin = admin.clone();
                async move { Ok::<_, Infallible>(route(req, &admin, local).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "admin connection error");
                    }
                }
                _ = stop.cancelled() => {}
            }
        });
    }
    tracker.close();
    tracker.wait().await;
}

async fn route(req: Request<Incoming>, admin: &Admin, local: SocketAddr) -> Response<Body> {
    if req.uri().path().starts_with("/api/v1/") {
        if let Err(refusal) = admin.guard.check_origin(req.headers(), local) {
            crate::metrics::admin_refused(refusal.kind);
            return json_error(refusal.status, refusal.kind, &refusal.message, "");
        }
        if let Err(reason) = admin.token.check(req.headers(), req.uri().query()) {
            crate::metrics::admin_refused("unauthorized");
            let mut r = json_error(StatusCode::UNAUTHORIZED, "unauthorized", reason, "");
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
        if let Err(refusal) = guard::check_content_type(req.headers()) {
            crate::metrics::admin_refused(refusal.kind);
            return json_error(refusal.status, refusal.kind, &refusal.message, "");
        }
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        return api::handle(&admin.manager, method, &path, req.into_body()).await;
    }
    let readiness = &admin.readiness;
    let metrics = admin.metrics.as_ref();
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "admin endpoints accept GET",
            "",
        );
    }
    match req.uri().path() {
        "/healthz" => json(StatusCode::OK, r#"{"status":"ok"}"#),
        "/readyz" if !readiness.is_ready() => {
            json(StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"draining"}"#)
        }
        "/readyz" => {
            // Only required plugins decide readiness; others degrade by `on_error`.
            let unready = admin.manager.unready_required();
            if unready.is_empty() {
                json(StatusCode::OK, r#"{"status":"ready"}"#)
            } else {
                let body =
                    serde_json::json!({ "status": "plugins_unavailable", "plugins": unready });
                let mut r = Response::new(body::full(body.to_string()));
                *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                r
            }
        }
        "/metrics" => match metrics {
            Some(handle) => {
                let mut response = Response::new(body::full(handle.render()));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                response
            }
            None => json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "metrics_unavailable",
                "another metrics recorder is installed in this process",
                "",
            ),
        },
        other => json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no admin endpoint at {other}"),
            "",
        ),
    }
}

fn json(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(body::full(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
