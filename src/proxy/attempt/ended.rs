//! How attempts end: the `x-microgateway-upstream` value of the target that answered
//! (made once per target), the attempts that end before reaching the upstream, and the
//! last attempt's answer as the client gets it.

use super::{Attempted, Run};
use crate::body::Body;
use crate::error::GatewayError;
use crate::proxy::Proxy;
use crate::proxy::forward;
use crate::proxy::retry::Kind;
use crate::upstream::Upstream;
use http::{HeaderValue, Response};
use std::sync::{Arc, OnceLock};

/// One empty `x-microgateway-upstream` cell per target of every group.
pub(in crate::proxy) fn answered_table(
    upstreams: &[Upstream],
) -> Vec<Vec<OnceLock<Option<HeaderValue>>>> {
    upstreams
        .iter()
        .map(|u| (0..u.len()).map(|_| OnceLock::new()).collect())
        .collect()
}

impl Proxy {
    /// The `x-microgateway-upstream` value naming target `index` of upstream `u`, made
    /// once per target.
    pub(super) fn answered(
        &self,
        u: usize,
        index: usize,
        group: &Upstream,
        target: &crate::upstream::Target,
    ) -> Option<HeaderValue> {
        let make = || HeaderValue::from_str(&format!("{}/{}", group.name, target.authority())).ok();
        match self.answered.get(u).and_then(|t| t.get(index)) {
            Some(cell) => cell.get_or_init(make).clone(),
            None => make(),
        }
    }
}

/// An attempt abandoned before it reached the upstream, for a reason of its own.
pub(super) fn neutral(e: GatewayError) -> Attempted {
    unsent(Kind::Neutral, e)
}

/// An attempt refused by a circuit-breaker limit of `group`.
pub(super) fn overloaded(group: &Upstream, o: crate::upstream::Overloaded) -> Attempted {
    let e = GatewayError::UpstreamOverloaded {
        upstream: group.name.to_string(),
        limit: o.limit,
    };
    unsent(Kind::Overloaded, e)
}

/// An attempt that ended as `kind` before anything reached the upstream.
fn unsent(kind: Kind, e: GatewayError) -> Attempted {
    Attempted {
        kind,
        result: Err(e),
        retry_after: None,
        connection: None,
        gone: false,
    }
}

impl Run<'_, '_> {
    /// The last attempt's answer, as the client gets it, its body cut when `answered`
    /// (the group of that attempt) stops sending for the route's `body_timeout`.
    pub(super) fn finish(
        &mut self,
        last: Option<Attempted>,
        answered: Option<&Upstream>,
    ) -> Result<Response<Body>, GatewayError> {
        let group = answered.map_or_else(|| Arc::from(""), |u| Arc::clone(&u.name));
        self.trace.answered = answered.map(|u| Arc::clone(&u.name));
        let stalled = (Arc::clone(&self.route.name), group);
        let timeout = self.route.body_timeout;
        match last {
            Some(a) => {
                // The connection stays counted until the body ends: the closure lives
                // as long as the response body.
                let connection = a.connection;
                a.result.map(|response| {
                    forward::downstream(response, timeout, move || {
                        drop(connection);
                        crate::metrics::upstream_body_stall(&stalled.0, &stalled.1);
                    })
                })
            }
            None => Err(GatewayError::Internal(
                "no upstream attempt was made".into(),
            )),
        }
    }
}
