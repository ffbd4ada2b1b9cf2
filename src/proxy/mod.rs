//! The proxy handler: limits, routing, the hook pipeline, forwarding and back.
//!
//! [`Proxy::handle`] is the whole request path. It makes one [`RequestCtx`] per request
//! and passes it `&mut` through the phases in order, as pingora passes its `CTX`:
//! limits, routing and the path check (`forward`), the request and response stages
//! when the route has plugins (`hooked.rs`), the send (`forward.rs`); at the end the
//! access log and the tail record are built from it once. It never panics and never
//! returns an error to hyper: every failure becomes a [`GatewayError`] and, in exactly
//! one place, a JSON response. Bodies stream in both directions unless a plugin asks
//! for a buffer. Each request loads one plugin-set snapshot and uses it to the end.

mod attempt;
mod forward;
mod front;
mod hooked;
mod llm;
mod path;
mod replay;
mod retry;
mod upgraded;

pub use attempt::UPSTREAM_HEADER;
pub use llm::COST_HEADER;

use crate::body::{Body, BoxError, ReadTimeoutBody};
use crate::config::{Config, ConfigError, PipelineConfig, PluginConfig, Resolved};
use crate::error::GatewayError;
use crate::headers;
use crate::loader::{PluginSet, Registry, SetError};
use crate::metrics;
use crate::pipeline::collect::Collector;
pub use crate::pipeline::ctx::ConnInfo;
use crate::pipeline::ctx::RequestCtx;
use crate::pipeline::tail;
use crate::routing::{Route, Router};
use crate::upstream::{Upstream, UpstreamError};
use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Errors building a [`Proxy`] from configuration.
#[derive(Debug, thiserror::Error)]
pub enum ProxyBuildError {
    /// An upstream group could not be built.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The configuration is inconsistent.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The plugin set could not be built.
    #[error(transparent)]
    Plugins(#[from] SetError),
    /// `[llm.prices]` is invalid.
    #[error(transparent)]
    Prices(#[from] crate::llm::price::PriceError),
    /// `[cluster]` could not be set up (a bad URL or CA file; an unreachable Redis is
    /// no error).
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
}

/// Request limits enforced before and while forwarding.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest pause between two request body frames.
    pub body_read_timeout: Duration,
    /// Maximum number of header values.
    pub max_header_count: usize,
    /// Maximum bytes of header names plus values.
    pub max_header_bytes: usize,
    /// Maximum request body bytes.
    pub max_body_bytes: u64,
}

/// The proxy state shared by all connections.
pub struct Proxy {
    router: Router,
    upstreams: Vec<Upstream>,
    limits: Limits,
    request_id_header: HeaderName,
    plugins: ArcSwap<PluginSet>,
    registry: Registry,
    route_names: Vec<String>,
    collector: Collector,
    pipeline: PipelineConfig,
    /// Per route (by configuration index): retry budget and attempt counters.
    route_states: Vec<retry::RouteState>,
    /// Per upstream and target: the `x-microgateway-upstream` value, made on first use.
    answered: Vec<Vec<std::sync::OnceLock<Option<HeaderValue>>>>,
    /// The LLM response cache, when a route caches.
    cache: Option<Arc<crate::llm::cache::Store>>,
    /// Upgraded connections in flight.
    upgrades: crate::upgrade::Upgrades,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("router", &self.router)
            .field("upstreams", &self.upstreams)
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// Builds routes, upstream clients and the initial plugin set. Must run inside a
    /// Tokio runtime (it starts the data-collection worker).
    /// `resolved` is what `config.validate()` returned: the proxy uses the routes'
    /// upstream indices, the parsed targets and the request id header from it.
    pub async fn build(
        config: &Config,
        resolved: &Resolved,
        registry: Registry,
    ) -> Result<Proxy, ProxyBuildError> {
        Self::build_tolerating(config, resolved, registry, &[]).await
    }

    /// Like [`Proxy::build`]; plugins that are not required, and the plugins named in
    /// `persisted` (created through the API, so the API must come up to fix them), that
    /// cannot load start as unavailable stand-ins instead of stopping the start.
    pub async fn build_tolerating(
        config: &Config,
        resolved: &Resolved,
        mut registry: Registry,
        persisted: &[String],
    ) -> Result<Proxy, ProxyBuildError> {
        // A `Resolved` of another configuration is a caller's bug, refused by key.
        let mismatch =
            |key: String| ConfigError::invalid(key, "does not match the validated configuration");
        registry.set_runtime(config.plugin_runtime.clone(), config.oci.clone());
        // One connection to the fleet's Redis per process, kept across plugin reloads.
        if let Some(cluster) = &config.cluster
            && registry.cluster().is_none()
        {
            registry.set_cluster(Some(crate::cluster::Cluster::start(cluster).await?));
        }
        // The price table is process-wide: the configuration built last sets it.
        crate::llm::price::install(crate::llm::price::Prices::new(&config.llm)?);
        // Without worker threads every request runs on the shared runtime (index 0).
        let workers = crate::worker::count(config.server.thread_per_core, config.server.workers);
        let mut upstreams = Vec::with_capacity(config.upstreams.len());
        for (i, u) in config.upstreams.iter().enumerate() {
            let targets = resolved
                .targets
                .get(i)
                .ok_or_else(|| mismatch(format!("upstreams[{i}]")))?;
            upstreams.push(Upstream::with_targets(u, targets, workers)?);
        }
        let mut routes = Vec::with_capacity(config.routes.len());
        for (i, r) in config.routes.iter().enumerate() {
            let upstream = resolved
                .route_upstreams
                .get(i)
                .copied()
                .filter(|&u| u < upstreams.len())
                .ok_or_else(|| mismatch(format!("routes[{i}].upstream")))?;
            let fallback = resolved
                .route_fallbacks
                .get(i)
                .filter(|f| f.iter().all(|&u| u < upstreams.len()))
                .ok_or_else(|| mismatch(format!("routes[{i}].fallback")))?;
            routes.push(Route::new(r, upstream, i).with_fallback(fallback.clone()));
        }
        let route_states = retry::RouteState::for_routes(config, resolved);
        let answered = attempt::answered_table(&upstreams);
        let request_id_header = resolved.request_id_header.clone();
        let route_names: Vec<String> = config.routes.iter().map(|r| r.name.clone()).collect();
        let tolerate = |c: &PluginConfig| !c.required() || persisted.contains(&c.name);
        let set =
            PluginSet::build_tolerant(&config.plugins, &route_names, &registry, &tolerate).await?;
        let cache = llm::store_for(config, registry.cluster());
        Ok(Proxy {
            router: Router::new(routes),
            upstreams,
            limits: Limits {
                body_read_timeout: config.server.body_read_timeout,
                max_header_count: config.server.max_header_count,
                max_header_bytes: config.server.max_header_bytes,
                max_body_bytes: config.server.max_body_bytes,
            },
            request_id_header,
            plugins: ArcSwap::from_pointee(set),
            registry,
            route_names,
            collector: Collector::spawn(config.pipeline.collect_queue_capacity),
            pipeline: config.pipeline.clone(),
            route_states,
            answered,
            cache,
            upgrades: crate::upgrade::Upgrades::default(),
        })
    }

    /// The upstream groups, in configuration order (for `GET /api/v1/upstreams`).
    pub fn upstreams(&self) -> &[Upstream] {
        &self.upstreams
    }

    /// The route table.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The registry plugin commands are resolved with.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The current plugin set.
    pub fn plugins(&self) -> Arc<PluginSet> {
        self.plugins.load_full()
    }

    /// Replaces the plugin set: builds the new set completely (a failure leaves the
    /// running set untouched), stores it atomically, then shuts the old instances down
    /// once no request uses them any more (waiting at most `drain`).
    pub async fn reload_plugins(
        &self,
        configs: &[PluginConfig],
        drain: Duration,
    ) -> Result<(), SetError> {
        #[expect(clippy::disallowed_methods, reason = "the two halves of this call")]
        let new = self.prepare_plugins(configs, None).await?;
        #[expect(clippy::disallowed_methods, reason = "the two halves of this call")]
        self.commit_plugins(new, drain);
        Ok(())
    }

    /// Builds a complete set for `configs` without touching the running one. A plugin
    /// that is not required (and is not `focus`, the one an API call is about) and
    /// cannot load becomes an unavailable stand-in; anything else that fails fails it.
    pub async fn prepare_plugins(
        &self,
        configs: &[PluginConfig],
        focus: Option<&str>,
    ) -> Result<PluginSet, SetError> {
        let tolerate = |c: &PluginConfig| !c.required() && Some(c.name.as_str()) != focus;
        PluginSet::build_tolerant(configs, &self.route_names, &self.registry, &tolerate).await
    }

    /// Swaps a prepared set in (infallible), then retires the old one once no request
    /// holds it (waiting at most `drain`).
    pub fn commit_plugins(&self, set: PluginSet, drain: Duration) {
        let old = self.plugins.swap(Arc::new(set));
        crate::task::detach("retire-plugin-set", retire(old, drain));
    }

    /// Retries the stand-ins of plugins that could not load; true when one was replaced.
    /// The new set shares every other instance, so the old one is dropped, not retired.
    pub async fn retry_stand_ins(&self) -> bool {
        let current = self.plugins.load_full();
        match current.retry_stand_ins(&self.registry).await {
            Some(next) => {
                self.plugins.store(Arc::new(next));
                true
            }
            None => false,
        }
    }

    /// Waits until queued stream-complete and collect hooks have run, at most `timeout`.
    pub async fn flush_collectors(&self, timeout: Duration) -> bool {
        self.collector.flush(timeout).await
    }

    /// Handles one request end to end; always produces a response.
    pub async fn handle<B>(&self, mut req: Request<B>, conn: ConnInfo) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let start = Instant::now();
        let request_id = headers::request_id(req.headers(), &self.request_id_header);
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let mut ctx = RequestCtx::new(start, conn, request_id, method, path);
        // An upgrade request: the client's side of the connection, once it switches.
        ctx.upgrade = crate::upgrade::requested(req.method(), req.headers(), req.extensions());
        let client_upgrade = ctx.upgrade.is_some().then(|| {
            let hold = req
                .extensions_mut()
                .remove::<crate::upgrade::ConnectionHold>();
            (hyper::upgrade::on(&mut req), hold)
        });
        let stalled = Arc::new(AtomicBool::new(false));
        let timeout = self.limits.body_read_timeout;
        let req = req.map(|b| ReadTimeoutBody::new(b, timeout, stalled.clone()));
        let mut trace = retry::Trace::default();
        let mut response = match self.forward(req, &mut ctx, &mut trace).await {
            Ok(response) => response,
            Err(err) => {
                let route = route_label(&ctx);
                // Whatever the stalled body broke on its way (a plugin reading it, the
                // upstream client), the cause is the client's silence.
                let err = if stalled.load(Ordering::Acquire) {
                    GatewayError::BodyReadTimeout {
                        timeout_ms: timeout.as_millis(),
                    }
                } else {
                    tracing::debug!(route, error = %err, "request answered by the gateway");
                    err
                };
                metrics::gateway_error(route, err.kind());
                err.into_response(ctx.request_id_str())
            }
        };
        self.upgraded(&mut response, &mut ctx, client_upgrade);
        let status = response.status();
        response
            .headers_mut()
            .insert(self.request_id_header.clone(), ctx.request_id.clone());
        // A limiter that admitted the request says how much is left, as OpenAI does.
        headers::add_ratelimit_headers(&ctx.hook_state.values, response.headers_mut());
        access_log(&ctx, status, &trace);
        let strip_usage = ctx
            .hook_state
            .values
            .contains_key(crate::llm::strip::USAGE_ADDED)
            && headers::is_event_stream(response.headers());
        let accumulate = self.pipeline.stream_accumulate_bytes;
        let response = tail::attach(response, ctx, &self.collector, accumulate);
        // Outside the tail record, which meters the usage chunk the client never sees.
        // The stripped stream is shorter than the provider's: its length no longer holds.
        match strip_usage {
            true => {
                let (mut parts, body) = response.into_parts();
                parts.headers.remove(http::header::CONTENT_LENGTH);
                Response::from_parts(parts, crate::llm::strip::without_usage_chunk(body))
            }
            false => response,
        }
    }

    /// Limits, routing, the path check and the snapshot, recorded in `ctx`; then the
    /// bare send, or the hooked path when the route has plugins or an LLM upstream.
    async fn forward<'p, B>(
        &'p self,
        req: Request<B>,
        ctx: &mut RequestCtx<'p>,
        trace: &mut retry::Trace,
    ) -> Result<Response<Body>, GatewayError>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        forward::check_limits(&req, &self.limits)?;
        ctx.host = forward::request_host(&req);
        let route = self.router.find(
            crate::routing::host_without_port(&ctx.host),
            req.uri().path(),
        );
        ctx.route = route;
        // Before any plugin sees the request and before the route rewrite: whether an
        // encoded slash may pass is the matched route's choice; traversal never passes,
        // with or without a route.
        path::check_path(
            req.uri().path(),
            route.is_some_and(|r| r.allow_encoded_slashes),
        )?;
        let route = route.ok_or_else(|| GatewayError::NoRoute {
            host: ctx.host.clone(),
            path: req.uri().path().to_string(),
        })?;
        let upstream = self.upstream_of(route)?;
        ctx.upstream = Some(upstream);
        // One snapshot per request, used to the end (including the tail hooks).
        let set = self.plugins.load_full();
        self.admit_upgrade(route, &set, req.headers(), ctx)?;
        if set.plan(route.index).is_empty() && upstream.llm.is_none() && route.llm.is_none() {
            ctx.plugins = Some(set);
            return self.send(req, route, upstream, ctx, trace).await;
        }
        ctx.plugins = Some(set.clone());
        self.hooked(
            req.map(crate::body::boxed),
            route,
            upstream,
            &set,
            ctx,
            trace,
        )
        .await
    }

    /// The upstream group of `route`. Building the proxy resolves every route's
    /// upstream, so a missing one is the gateway's fault, never the client's: a 500.
    fn upstream_of(&self, route: &Route) -> Result<&Upstream, GatewayError> {
        self.upstreams
            .get(route.upstream)
            .ok_or_else(|| GatewayError::Internal("route has no upstream".into()))
    }
}

/// The route's name for logs and metrics, or the placeholder when none matched.
fn route_label<'c>(ctx: &'c RequestCtx<'_>) -> &'c str {
    ctx.route.map_or(metrics::NO_ROUTE, |r| &r.name)
}

/// The one access-log line and the request metrics, once the response head is final:
/// with the number of upstream attempts and how each ended (`connect,success`).
fn access_log(ctx: &RequestCtx<'_>, status: StatusCode, trace: &retry::Trace) {
    let route = route_label(ctx);
    let elapsed = ctx.start.elapsed();
    metrics::request_done(route, status, elapsed);
    tracing::info!(
        target: "microgateway::access",
        request_id = ctx.request_id_str(),
        client = %ctx.conn.remote.ip(),
        method = %ctx.method,
        path = %ctx.path,
        route,
        status = status.as_u16(),
        attempts = trace.count(),
        outcomes = %trace,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
    );
}

/// Waits until no request holds `old`, then shuts its instances down.
async fn retire(old: Arc<PluginSet>, drain: Duration) {
    let deadline = crate::deadline::after(tokio::time::Instant::now(), drain);
    while Arc::strong_count(&old) > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if Arc::strong_count(&old) > 1 {
        tracing::warn!(
            "old plugin set still in use after the drain period; shutting it down anyway"
        );
    }
    old.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::{ConnInfo, Proxy};
    use crate::loader::Registry;
    use crate::routing::{Route, Router};
    use http_body_util::{BodyExt, Empty};

    /// A route whose upstream index is past the table is the gateway's bug, not the
    /// client's: 500 `internal_error`. Building never makes one, so the test does.
    #[tokio::test]
    async fn a_route_without_upstream_is_an_internal_error() {
        let config = crate::Config::from_toml(
            r#"
            [[upstreams]]
            name = "up"
            targets = ["http://127.0.0.1:9"]
            [[routes]]
            name = "r"
            path_prefix = "/"
            upstream = "up"
            "#,
        )
        .unwrap();
        let resolved = config.validate().unwrap();
        let mut proxy = Proxy::build(&config, &resolved, Registry::with_builtins())
            .await
            .unwrap();
        proxy.router = Router::new(vec![Route::new(&config.routes[0], 7, 0)]);
        let req = http::Request::get("/x")
            .header("host", "example.test")
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        let conn = ConnInfo {
            remote: "127.0.0.1:1".parse().unwrap(),
            tls: false,
        };
        let response = proxy.handle(req, conn).await;
        assert_eq!(response.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"]["type"], "internal_error");
        assert_eq!(
            json["error"]["message"],
            "internal error: route has no upstream"
        );
    }
}
