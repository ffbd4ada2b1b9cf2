//! The request path when the route has plugins or an LLM upstream: the request
//! stages, the send, the response stages. What the tail record needs is left in the
//! request context, from which `Proxy::handle` builds it once at the end.

use super::Proxy;
use super::attempt::UPSTREAM_HEADER;
use super::retry::Trace;
use crate::body::{self, Body};
use crate::error::GatewayError;
use crate::llm::cache::Lookup;
use crate::loader::PluginSet;
use crate::pipeline::ctx::RequestCtx;
use crate::pipeline::request::{self, HookedRequest};
use crate::pipeline::response;
use crate::plugin::RequestSummary;
use crate::routing::Route;
use crate::upstream::Upstream;
use bytes::Bytes;
use http::{Request, Response};
use std::sync::Arc;

impl Proxy {
    /// Runs the plan of `route` in `set` (the request's snapshot) around the upstream
    /// exchange.
    pub(super) async fn hooked(
        &self,
        req: Request<Body>,
        route: &Route,
        upstream: &Upstream,
        set: &Arc<PluginSet>,
        ctx: &mut RequestCtx<'_>,
        trace: &mut Trace,
    ) -> Result<Response<Body>, GatewayError> {
        let plan = set.plan(route.index);
        let (parts, incoming) = req.into_parts();
        // A chat request planned per provider family (the front door, `model_map`)
        // and a cached one need the body whole.
        let planning = super::front::plans(route, &self.upstreams, &parts);
        let caching = self.caches(route, &parts);
        let (buffered, incoming) = if plan.request_body || planning || caching {
            let bytes = read_body(incoming, self.limits.max_body_bytes).await?;
            (Some(bytes), None)
        } else {
            (None, Some(incoming))
        };
        let mut req = Request::from_parts(parts, buffered);
        let early = request::run(plan, &mut req, ctx).await;
        // Recorded before an early answer returns, so the tail sees that exchange too.
        if plan.has_response_hooks() || plan.has_tail() || upstream.llm.is_some() {
            ctx.summary = Some(summary(&req, upstream, ctx));
        }
        ctx.request_bytes = req.body().as_ref().map_or(0, |b| b.len() as u64);
        if let Some(response) = early? {
            return Ok(response);
        }

        let (mut parts, buffered) = req.into_parts();
        if super::front::lists_models(route, &parts) {
            return Ok(super::front::models(route, upstream));
        }
        let cache = self
            .cache_lookup(route, &mut parts, buffered.as_deref(), ctx)
            .await;
        let sent = match &cache {
            Some((Lookup::Hit(entry), _)) => {
                ctx.cache_hit = true;
                Ok(entry.response())
            }
            _ => {
                let req = Request::from_parts(parts, (buffered, incoming));
                self.exchange(req, planning, route, upstream, ctx, trace)
                    .await
            }
        };
        // A whole LLM answer says what it cost, and is metered here rather than later.
        let sent = match sent {
            Ok(response) if upstream.llm.is_some() => {
                Ok(super::llm::with_cost(response, ctx).await)
            }
            other => other,
        };
        let sent = match (sent, cache) {
            (Ok(response), Some((lookup, ttl))) => Ok(self.cache_store(response, lookup, ttl)),
            (sent, _) => sent,
        };
        match sent {
            Ok(response) if plan.has_response_hooks() => {
                // Response hooks may not hide who answered: the value is put back.
                let answered = response.headers().get(UPSTREAM_HEADER).cloned();
                let max = self.pipeline.max_response_buffer_bytes;
                let mut response = response::run(set, response, ctx, max).await?;
                if let Some(v) = answered {
                    response.headers_mut().insert(UPSTREAM_HEADER, v);
                }
                Ok(response)
            }
            other => other,
        }
    }

    /// The provider exchange of a hooked request: a chat request planned per provider
    /// family when `planning` (the front door, `model_map`), the send with retries and
    /// fallback, and an Anthropic group's answer translated back for an OpenAI client.
    async fn exchange(
        &self,
        req: Request<(Option<Bytes>, Option<Body>)>,
        planning: bool,
        route: &Route,
        upstream: &Upstream,
        ctx: &mut RequestCtx<'_>,
        trace: &mut Trace,
    ) -> Result<Response<Body>, GatewayError> {
        let (parts, (buffered, incoming)) = req.into_parts();
        let chat = match (planning, &buffered) {
            (true, Some(bytes)) => Some(Arc::new(super::front::plan(
                bytes,
                route,
                &self.upstreams,
                ctx,
            )?)),
            _ => None,
        };
        let body = match (buffered, incoming) {
            (Some(bytes), _) => body::full(bytes),
            (None, Some(stream)) => stream,
            (None, None) => body::empty(),
        };
        let req = Request::from_parts(parts, body);
        let sent = self
            .send_planned(req, chat.clone(), route, upstream, ctx, trace)
            .await;
        let answered = trace
            .answered()
            .and_then(|name| self.upstreams.iter().find(|u| *u.name == *name));
        // The exchange is recorded under the group that answered, a fallback included,
        // and metered as its provider's.
        if let (Ok(_), Some(summary), Some(group)) = (&sent, ctx.summary.as_mut(), answered) {
            if *group.name != *summary.upstream {
                summary.upstream = group.name.to_string();
            }
            summary.llm = group.llm.as_ref().map(|l| l.provider);
        }
        let anthropic = |g: &Upstream| {
            g.llm
                .as_ref()
                .is_some_and(|l| l.provider == crate::llm::Provider::Anthropic)
        };
        match (sent, chat, answered) {
            (Ok(response), Some(chat), Some(group)) if anthropic(group) => {
                super::front::response(response, &chat.model, group).await
            }
            (sent, _, _) => sent,
        }
    }
}

/// The request as forwarded, for response hooks, the tail and LLM usage.
fn summary(req: &HookedRequest, upstream: &Upstream, ctx: &RequestCtx<'_>) -> RequestSummary {
    RequestSummary {
        request_id: ctx.request_id_str().to_string(),
        route: ctx.route_name().to_string(),
        upstream: upstream.name.to_string(),
        client_ip: ctx.client_ip(),
        tls: ctx.conn.tls,
        host: ctx.host.clone(),
        method: req.method().clone(),
        uri: req.uri().clone(),
        headers: req.headers().clone(),
        llm: upstream.llm.as_ref().map(|l| l.provider),
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
