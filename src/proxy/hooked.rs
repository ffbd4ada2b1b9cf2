//! The request path when the route has plugins: request stages, forward, response
//! stages, and the seed for the asynchronous tail (stream-complete and collect hooks).

use super::forward::{self, ForwardCtx};
use crate::body::{self, Body};
use crate::config::PipelineConfig;
use crate::error::GatewayError;
use crate::loader::PluginSet;
use crate::pipeline::collect::Collector;
use crate::pipeline::request::{self, PendingRequest, RequestMeta};
use crate::pipeline::response;
use crate::pipeline::tail::TailSeed;
use crate::plugin::{RequestContext, RequestSummary};
use bytes::Bytes;
use http::{Request, Response};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// The per-request pipeline driver.
pub(super) struct Hooked<'a> {
    /// Snapshot used for the whole request.
    pub set: Arc<PluginSet>,
    /// Pipeline settings.
    pub pipeline: &'a PipelineConfig,
    /// Queue for the tail hooks.
    pub collector: &'a Collector,
    /// Arrival time.
    pub start: Instant,
    /// LLM provider of the route's upstream.
    pub provider: Option<crate::llm::Provider>,
}

impl Hooked<'_> {
    /// Runs the route's plan around the upstream exchange; fills `tail` when the plan has
    /// stream-complete or collect hooks, whatever the outcome.
    pub async fn run(
        self,
        ctx: ForwardCtx<'_>,
        req: Request<Body>,
        tail: &mut Option<TailSeed>,
    ) -> Result<Response<Body>, GatewayError> {
        let route = ctx.route.index;
        let set = self.set.clone();
        let plan = set.plan(route);
        let (parts, incoming) = req.into_parts();
        let mut pending = PendingRequest {
            parts,
            body: None,
            path_is_final: false,
            ctx: RequestContext::default(),
        };
        let mut incoming = Some(incoming);
        if plan.request_body {
            if let Some(b) = incoming.take() {
                pending.body = Some(read_body(b, ctx.max_body_bytes).await?);
            }
        }
        let request_id = ctx.request_id.to_str().unwrap_or_default();
        let meta = RequestMeta {
            request_id,
            route: &ctx.route.name,
            client_ip: ctx.conn.remote.ip().to_canonical(),
            tls: ctx.conn.tls,
            host: ctx.host,
        };
        let early = request::run(plan, meta, &mut pending).await;
        let needs_summary = plan.has_response_hooks() || plan.has_tail() || self.provider.is_some();
        let summary = needs_summary.then(|| RequestSummary {
            request_id: request_id.to_string(),
            route: ctx.route.name.to_string(),
            upstream: ctx.upstream.name.to_string(),
            client_ip: meta.client_ip,
            tls: meta.tls,
            host: ctx.host.to_string(),
            method: pending.parts.method.clone(),
            uri: pending.parts.uri.clone(),
            headers: pending.parts.headers.clone(),
        });
        let request_bytes = pending.body.as_ref().map_or(0, |b| b.len() as u64);
        match early {
            Ok(None) => {}
            Ok(Some(response)) => {
                *tail = self.seed(route, summary, pending.ctx, request_bytes);
                return Ok(response);
            }
            Err(e) => {
                *tail = self.seed(route, summary, pending.ctx, request_bytes);
                return Err(e);
            }
        }

        let body: Body = match (pending.body.take(), incoming) {
            (Some(bytes), _) => body::full(bytes),
            (None, Some(stream)) => stream,
            (None, None) => body::empty(),
        };
        let forward_ctx = ForwardCtx {
            path_is_final: pending.path_is_final,
            ..ctx
        };
        let mut rctx = pending.ctx;
        let sent = forward::send(forward_ctx, Request::from_parts(pending.parts, body)).await;
        let result = match (sent, &summary) {
            (Ok(resp), Some(summary)) if plan.has_response_hooks() => {
                let max = self.pipeline.max_response_buffer_bytes;
                response::run(&set, route, resp, summary, &mut rctx, max).await
            }
            (other, _) => other,
        };
        *tail = self.seed(route, summary, rctx, request_bytes);
        result
    }

    fn seed(
        &self,
        route: usize,
        summary: Option<RequestSummary>,
        ctx: RequestContext,
        request_bytes: u64,
    ) -> Option<TailSeed> {
        let provider = self.provider;
        if !self.set.plan(route).has_tail() && provider.is_none() {
            return None;
        }
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let started_at_ms = now_ms - self.start.elapsed().as_millis() as i64;
        let plan = self.set.plan(route);
        Some(TailSeed {
            set: self.set.clone(),
            route,
            summary: summary?,
            ctx,
            started: self.start,
            started_at_ms,
            request_bytes,
            collector: self.collector.clone(),
            accumulate: if plan.stream_complete.is_empty() && provider.is_none() {
                0
            } else {
                self.pipeline.stream_accumulate_bytes
            },
            provider,
        })
    }
}

/// Buffers the client body for plugins that asked for it, enforcing the body limit.
async fn read_body(body: Body, limit: u64) -> Result<Bytes, GatewayError> {
    let max = usize::try_from(limit).unwrap_or(usize::MAX);
    body::collect_limited(body, max).await.map_err(|e| match e {
        body::CollectError::TooLarge(_) => GatewayError::BodyTooLarge { limit },
        body::CollectError::Body(e) => GatewayError::ClientBody(e.to_string()),
    })
}
