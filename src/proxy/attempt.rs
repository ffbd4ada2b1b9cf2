//! The send: one or more attempts on the route's upstream group, then on its fallback
//! groups, by the route's retry policy (see `retry.rs`). Each attempt picks a target it
//! has not tried yet, reports its outcome to the group and the provider key pool, is
//! counted and recorded, and the answering target is named in `x-microgateway-upstream`.

mod ended;

use super::Proxy;
use super::forward::{self, Prepared};
use super::replay::Replay;
use super::retry::{self, ATTEMPT_HEADER, Kind, Retrying, Trace};
use crate::body::{self, Body, BoxError};
use crate::config::RetryOn;
use crate::error::GatewayError;
use crate::metrics;
use crate::pipeline::ctx::RequestCtx;
use crate::routing::Route;
use crate::upstream::{Affinity, Outcome, Upstream};
use bytes::Bytes;
pub(super) use ended::answered_table;
use ended::{neutral, overloaded};
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// On every proxied response: `<upstream>/<target authority>` of who answered.
pub const UPSTREAM_HEADER: HeaderName = HeaderName::from_static("x-microgateway-upstream");

/// Targets remembered as tried per group (a larger group may repeat one).
const TRIED: usize = 16;

/// How one attempt ended.
struct Attempted {
    kind: Kind,
    result: Result<Response<hyper::body::Incoming>, GatewayError>,
    retry_after: Option<Duration>,
    /// The group's connection held for the response body (`max_connections`).
    connection: Option<crate::upstream::ConnectionPermit>,
    /// The attempt's target was ejected by passive health once it was reported, and
    /// another target of the group is healthy: the retry fails over from a dead target
    /// to a live one and needs no budget slot.
    gone: bool,
}

impl Proxy {
    /// Sends the request of `route`, retrying and failing over by its policy; `upstream`
    /// is the route's own group. Every attempt is recorded in `trace`.
    pub(super) async fn send<B>(
        &self,
        req: Request<B>,
        route: &Route,
        upstream: &Upstream,
        ctx: &RequestCtx<'_>,
        trace: &mut Trace,
    ) -> Result<Response<Body>, GatewayError>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.send_planned(req, None, route, upstream, ctx, trace)
            .await
    }

    /// [`Proxy::send`] of a chat request planned per provider family (`chat`), whose
    /// attempts take their group's body and path from the plan and try its groups in
    /// its order.
    pub(super) async fn send_planned<B>(
        &self,
        req: Request<B>,
        chat: Option<Arc<super::front::Chat>>,
        route: &Route,
        upstream: &Upstream,
        ctx: &RequestCtx<'_>,
        trace: &mut Trace,
    ) -> Result<Response<Body>, GatewayError>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (parts, incoming) = req.into_parts();
        let mut prepared = self.prepare(parts, route, ctx);
        if chat.is_some() {
            // Each family's body has its own length, set from the body itself.
            prepared.headers.remove(http::header::CONTENT_LENGTH);
            prepared.headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        prepared.chat = chat;
        let tripped = Arc::new(AtomicBool::new(false));
        let limited = body::LimitBody::new(incoming, self.limits.max_body_bytes, tripped.clone());
        let policy = &route.retry;
        let may_retry = policy.allows(&prepared.method)
            && (policy.attempts_for(upstream.len()) > 1 || !route.fallback.is_empty());
        let replay = match may_retry {
            true => Replay::new(body::boxed(limited), policy.max_body_bytes),
            false => Replay::Once(Some(body::boxed(limited))),
        };
        let state = self.route_states.get(route.index);
        let _active = state.map(|s| s.enter());
        let mut run = Run {
            proxy: self,
            route,
            ctx,
            prepared,
            replay,
            tripped,
            may_retry,
            trace,
        };
        run.groups(upstream).await
    }
}

/// The attempts of one request.
struct Run<'p, 'r> {
    proxy: &'p Proxy,
    route: &'p Route,
    ctx: &'r RequestCtx<'p>,
    prepared: Prepared,
    replay: Replay,
    tripped: Arc<AtomicBool>,
    may_retry: bool,
    trace: &'r mut Trace,
}

impl<'p> Run<'p, '_> {
    /// The route's group, then its fallbacks while the failures are retryable.
    async fn groups(&mut self, primary: &'p Upstream) -> Result<Response<Body>, GatewayError> {
        let state = self.proxy.route_states.get(self.route.index);
        let mut slot: Option<Retrying<'_>> = None;
        let mut last: Option<Attempted> = None;
        let mut answered: Option<&'p Upstream> = None;
        let order = self.order(primary);
        let mut retries = 0u32;
        for (g, (position, group)) in order.into_iter().enumerate() {
            if g > 0 && !self.may_continue(last.as_ref(), &mut slot, state) {
                break;
            }
            let max = self.route.retry.attempts_for(group.len());
            let mut tried = [0usize; TRIED];
            let mut n = 0;
            for k in 0..max {
                if k > 0 {
                    if !self.may_continue(last.as_ref(), &mut slot, state) {
                        break;
                    }
                    let ask = last.as_ref().and_then(|a| a.retry_after);
                    if ask.is_some_and(|d| d > self.route.retry.retry_after_max) {
                        // Too long to wait here; another group may still answer.
                        break;
                    }
                    retries += 1;
                    let wait = match last.as_ref().map(|a| a.kind.class()) {
                        Some(Some(RetryOn::Connect)) => Duration::ZERO,
                        _ => {
                            retry::backoff(&self.route.retry, retries).max(ask.unwrap_or_default())
                        }
                    };
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                    }
                } else if g > 0 {
                    retries += 1;
                }
                let attempted = self.attempt(group, &mut tried, &mut n).await;
                drop(slot.take());
                if let Some(s) = state {
                    s.count(position, attempted.kind);
                }
                self.trace.push(attempted.kind);
                let retryable = attempted.kind.class().is_some();
                let overloaded = attempted.kind == Kind::Overloaded;
                last = Some(attempted);
                answered = Some(group);
                if !retryable || !self.may_retry {
                    return self.finish(last, answered);
                }
                if overloaded {
                    // The group's breaker refuses every target alike: on to a fallback.
                    break;
                }
            }
        }
        self.finish(last, answered)
    }

    /// The groups to try, each with its position among the route's groups (0 is the
    /// route's own): a planned chat request's order; else the route's group and its
    /// fallbacks, leaving out LLM groups of another provider family than the route's
    /// own, which only a planned chat request can be translated for.
    fn order(&self, primary: &'p Upstream) -> Vec<(usize, &'p Upstream)> {
        let upstreams = &self.proxy.upstreams;
        let positions =
            std::iter::once(self.route.upstream).chain(self.route.fallback.iter().copied());
        let position = |i: usize| positions.clone().position(|p| p == i).unwrap_or(0);
        if let Some(chat) = &self.prepared.chat {
            return chat
                .order
                .iter()
                .filter_map(|&i| Some((position(i), upstreams.get(i)?)))
                .collect();
        }
        let family = |u: &Upstream| u.llm.as_ref().map(|l| l.provider);
        let own = family(primary);
        let fallbacks = self
            .route
            .fallback
            .iter()
            .enumerate()
            .filter_map(|(j, &i)| {
                let group = upstreams.get(i)?;
                (family(group) == own).then_some((j + 1, group))
            });
        std::iter::once((0, primary)).chain(fallbacks).collect()
    }

    /// Whether another attempt may follow `last`: its class is in `retry.on`, the body
    /// can be sent again, and (except after a connect failure, which reached no upstream)
    /// the budget has a slot, which `slot` then holds until the next attempt ends.
    fn may_continue<'s>(
        &self,
        last: Option<&Attempted>,
        slot: &mut Option<Retrying<'s>>,
        state: Option<&'s retry::RouteState>,
    ) -> bool {
        let Some(class) = last.and_then(|a| a.kind.class()) else {
            return false;
        };
        let replayable = self.prepared.chat.is_some() || self.replay.replayable();
        if !self.may_retry || !self.route.retry.retries(class) || !replayable {
            return false;
        }
        // A failed connect reached no upstream, and a target that passive health has
        // ejected while others are healthy is gone: moving its requests to those is
        // failover, not a retry that could multiply an outage, so neither takes a
        // budget slot.
        let gone = last.is_some_and(|a| a.gone);
        if class == RetryOn::Connect || gone || slot.is_some() {
            return true;
        }
        *slot = state.and_then(|s| s.try_retry(&self.route.retry));
        slot.is_some()
    }

    /// One attempt on a target of `group` not among the first `n` of `tried`, which it
    /// joins.
    async fn attempt(
        &mut self,
        group: &'p Upstream,
        tried: &mut [usize; TRIED],
        n: &mut usize,
    ) -> Attempted {
        let affinity = Affinity {
            headers: &self.prepared.headers,
            client_ip: self.ctx.client_ip(),
        };
        let seen = tried.get(..*n).unwrap_or(tried.as_slice());
        let pick = match group.select(&affinity, seen) {
            Ok(pick) => pick,
            Err(o) => return overloaded(group, o),
        };
        let index = pick.index();
        if let Some(slot) = tried.get_mut(*n) {
            *slot = index;
        }
        *n += 1;
        // A planned chat request has a body per provider family, sent whole each time.
        let family = group.llm.as_ref().map(|l| l.provider);
        let planned = self
            .prepared
            .chat
            .as_ref()
            .and_then(|c| c.for_family(family));
        let (body, path) = match planned {
            // An upgrade request has no body: after the switch the connection is the tunnel.
            _ if self.prepared.upgrades() => (body::empty(), None),
            Some((bytes, path)) => (body::full(bytes), path),
            None => match self.replay.attempt() {
                Some(body) => (body, None),
                None => {
                    pick.report(Outcome::Neutral);
                    return neutral(GatewayError::Internal("request body already sent".into()));
                }
            },
        };
        // The only attempt of a request that cannot retry takes the headers; any other
        // keeps them for the next one.
        let mut headers = match self.may_retry {
            true => self.prepared.headers.clone(),
            false => std::mem::take(&mut self.prepared.headers),
        };
        let key = group.llm.as_ref().map(|l| l.inject(&mut headers));
        let number = self.trace.count() + 1;
        if number > 1
            && let Ok(v) = HeaderValue::from_str(&number.to_string())
        {
            headers.insert(ATTEMPT_HEADER, v);
        }
        let target = pick.target();
        let req = match self.prepared.request(target, headers, body, path) {
            Ok(req) => req,
            Err(e) => {
                pick.report(Outcome::Neutral);
                return neutral(e);
            }
        };
        let Some(client) = target.client() else {
            pick.report(Outcome::Neutral);
            return neutral(GatewayError::UpstreamUnavailable {
                upstream: group.name.to_string(),
                reason: "target has no client".into(),
            });
        };
        let timeout = self.route.timeout;
        let connection = match group.connection(timeout).await {
            Ok(connection) => connection,
            Err(o) => {
                pick.report(Outcome::Neutral);
                return overloaded(group, o);
            }
        };
        let sent = tokio::time::timeout(timeout, client.request(req)).await;
        let (kind, outcome, result) = match sent {
            Err(_) => {
                metrics::upstream_error(&self.route.name, &group.name, "timeout");
                let e = GatewayError::UpstreamTimeout {
                    upstream: group.name.to_string(),
                    timeout_ms: timeout.as_millis(),
                };
                (Kind::Timeout, Outcome::TimedOut, Err(e))
            }
            Ok(Err(_)) if self.tripped.load(Ordering::Acquire) => {
                let e = GatewayError::BodyTooLarge {
                    limit: self.proxy.limits.max_body_bytes,
                };
                (Kind::Neutral, Outcome::Neutral, Err(e))
            }
            Ok(Err(err)) => {
                let (kind, e) = forward::map_client_error(&err, self.route, group);
                let outcome = match kind {
                    Kind::Connect => Outcome::ConnectFailed,
                    Kind::ConnectTimeout => Outcome::TimedOut,
                    Kind::Reset => Outcome::Reset,
                    _ => Outcome::Neutral,
                };
                (kind, outcome, Err(e))
            }
            Ok(Ok(response)) => {
                let (kind, outcome) = match response.status() {
                    StatusCode::TOO_MANY_REQUESTS => {
                        (Kind::TooManyRequests, Outcome::TooManyRequests)
                    }
                    s if s.is_server_error() => (Kind::ServerError, Outcome::ServerError),
                    _ => (Kind::Success, Outcome::Success),
                };
                (kind, outcome, Ok(response))
            }
        };
        pick.report(outcome);
        let gone = group.fails_over_from(index);
        let mut retry_after = None;
        if let Ok(response) = &result {
            let status = response.status();
            if matches!(
                status,
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
            ) {
                retry_after =
                    crate::headers::retry_after(response.headers(), std::time::SystemTime::now());
            }
            if let (Some(llm), Some(key)) = (group.llm.as_ref(), key) {
                llm.report(key, status, retry_after);
            }
        }
        let result = result.map(|mut response| {
            let upstream = self
                .proxy
                .upstreams
                .iter()
                .position(|u| std::ptr::eq(u, group))
                .unwrap_or(self.route.upstream);
            if let Some(v) = self.proxy.answered(upstream, index, group, target) {
                response.headers_mut().insert(UPSTREAM_HEADER, v);
            }
            response
        });
        Attempted {
            kind,
            result,
            retry_after,
            connection,
            gone,
        }
    }
}
