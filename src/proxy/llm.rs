//! LLM answers on the request path: the response cache of routes with
//! `[routes.llm.cache]` (the store is `llm::cache`), and the cost of a whole JSON
//! answer, read once here: it becomes the `x-microgateway-cost-usd` header and the
//! usage of the tail record, so the collect worker does not parse the body again.

use super::Proxy;
use crate::body::{self, Body, BoxError};
use crate::llm::cache::{CACHE_HEADER, Lookup, Store};
use crate::pipeline::ctx::RequestCtx;
use crate::routing::Route;
use bytes::{Bytes, BytesMut};
use http::{HeaderName, HeaderValue, Method, Response, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;
use std::time::Duration;

/// The response header with the answer's cost in US dollars, by the price table.
pub const COST_HEADER: HeaderName = HeaderName::from_static("x-microgateway-cost-usd");

/// The largest JSON answer read whole for its cost; a larger one streams on unpriced
/// here (the collect worker still meters what it kept of it).
const MAX_PRICED_BYTES: usize = 16 * 1024 * 1024;

impl Proxy {
    /// Whether the request may be answered from, or stored in, the route's cache, so
    /// its body must be read whole.
    pub(super) fn caches(&self, route: &Route, parts: &http::request::Parts) -> bool {
        self.cache.is_some()
            && parts.method == Method::POST
            && route.llm.as_ref().is_some_and(|l| l.cache.is_some())
    }

    /// The cache's decision for a request whose stages have run (so its app is known),
    /// with the TTL of what it stores; `None` when the route caches nothing.
    pub(super) async fn cache_lookup(
        &self,
        route: &Route,
        parts: &mut http::request::Parts,
        body: Option<&[u8]>,
        ctx: &RequestCtx<'_>,
    ) -> Option<(Lookup, Duration)> {
        let config = route.llm.as_ref()?.cache.as_ref()?;
        let store = self.cache.as_ref()?;
        let body = body.filter(|_| parts.method == Method::POST)?;
        let app = crate::llm::app_in(&ctx.hook_state);
        let mut lookup = store.lookup(route.index, config, &parts.headers, body, app);
        // A miss here may be another gateway's hit (`llm.cache.backend = "redis"`).
        if let Lookup::Miss(key) = &lookup
            && let Some(entry) = store.fill(key).await
        {
            lookup = Lookup::Hit(entry);
        }
        crate::metrics::llm_cache_lookup(&route.name, lookup.label());
        Some((lookup, config.ttl))
    }

    /// Stores the answer of a miss or refresh as it streams to the client, and says
    /// what the cache did in `x-microgateway-cache`.
    pub(super) fn cache_store(
        &self,
        response: Response<Body>,
        lookup: Lookup,
        ttl: Duration,
    ) -> Response<Body> {
        let label = lookup.label();
        let mut response = match (lookup.store_key(), &self.cache) {
            (Some(key), Some(store)) => store.capture(key, ttl, response),
            _ => response,
        };
        response
            .headers_mut()
            .insert(CACHE_HEADER, HeaderValue::from_static(label));
        response
    }
}

/// The store of a configuration: one when a route caches and `llm.cache.max_bytes`
/// leaves room.
pub(super) fn store_for(
    config: &crate::Config,
    cluster: Option<&std::sync::Arc<crate::cluster::Cluster>>,
) -> Option<std::sync::Arc<Store>> {
    let cached = config
        .routes
        .iter()
        .any(|r| r.llm.as_ref().is_some_and(|l| l.cache.is_some()));
    if !cached {
        return None;
    }
    Store::new(&config.llm.cache, cluster)
}

/// Reads a whole `200` JSON answer for its usage: records the usage in `ctx` and sets
/// `x-microgateway-cost-usd` (0 for a cache hit). Streams, other statuses and answers
/// beyond 16 MiB pass as they are.
pub(super) async fn with_cost(
    response: Response<Body>,
    ctx: &mut RequestCtx<'_>,
) -> Response<Body> {
    if response.status() != StatusCode::OK || crate::headers::is_event_stream(response.headers()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match read_whole(body, MAX_PRICED_BYTES).await {
        Ok(bytes) => bytes,
        Err(body) => return Response::from_parts(parts, body),
    };
    let mut meter = crate::llm::usage::Meter::default();
    meter.json(&bytes);
    if let Some(usage) = meter.usage() {
        let cost = match ctx.cache_hit {
            true => Some(0.0),
            false => crate::llm::price::current().cost(&usage),
        };
        if let Some(v) = cost.and_then(|c| HeaderValue::from_str(&show_usd(c)).ok()) {
            parts.headers.insert(COST_HEADER, v);
        }
        ctx.usage = Some(usage);
    }
    Response::from_parts(parts, body::full(bytes))
}

/// Dollars with up to ten decimals and no trailing zeros (`0.00045`, `0`).
fn show_usd(usd: f64) -> String {
    let s = format!("{usd:.10}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() { "0".into() } else { s.into() }
}

/// The whole body when it ends within `max` bytes without trailers; otherwise a body
/// that yields what was read and then the rest, so nothing is lost.
async fn read_whole(mut body: Body, max: usize) -> Result<Bytes, Body> {
    let mut buf = BytesMut::new();
    let stop = loop {
        match body.frame().await {
            None => return Ok(buf.freeze()),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    buf.extend_from_slice(&data);
                    if buf.len() > max {
                        break None;
                    }
                }
                Err(trailers) => break Some(Ok(trailers)),
            },
            Some(Err(e)) => break Some(Err(e)),
        }
    };
    let mut head: Vec<Result<Frame<Bytes>, BoxError>> = vec![Ok(Frame::data(buf.freeze()))];
    let ended = stop.is_some();
    head.extend(stop);
    let head = futures_util::stream::iter(head);
    let rest = http_body_util::BodyStream::new(body);
    Err(match ended {
        true => body::boxed(http_body_util::StreamBody::new(head)),
        false => {
            use futures_util::StreamExt;
            body::boxed(http_body_util::StreamBody::new(head.chain(rest)))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_are_written_short() {
        assert_eq!(show_usd(0.0), "0");
        assert_eq!(show_usd(0.00045), "0.00045");
        assert_eq!(show_usd(0.000_000_45), "0.00000045");
        assert_eq!(show_usd(1.5), "1.5");
    }

    #[tokio::test]
    async fn a_body_past_the_limit_is_passed_on_whole() {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = ["abc", "def", "ghi"]
            .into_iter()
            .map(|f| Ok(Frame::data(Bytes::from(f))))
            .collect();
        let body = body::boxed(http_body_util::StreamBody::new(futures_util::stream::iter(
            frames,
        )));
        let Err(rest) = read_whole(body, 4).await else {
            panic!("the body is larger than the limit");
        };
        assert_eq!(rest.collect().await.unwrap().to_bytes(), "abcdefghi");
        let whole = read_whole(body::full("abc"), 4).await.unwrap();
        assert_eq!(whole, "abc");
    }
}
