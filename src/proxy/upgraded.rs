//! Upgrade requests on the request path: whether the route passes the protocol the
//! client asks for (and has room for one more upgraded connection), and, once the
//! upstream switched protocols, the answer to the client (`101`, or `200` to an HTTP/2
//! extended CONNECT) and the task that joins the two connections (`crate::upgrade`).

use super::Proxy;
use crate::body::Body;
use crate::error::GatewayError;
use crate::pipeline::ctx::RequestCtx;
use crate::routing::Route;
use crate::upgrade::{self, Limits};
use http::{HeaderName, Response, StatusCode, header};
use hyper::upgrade::OnUpgrade;

impl Proxy {
    /// The upgraded connections in flight.
    pub fn upgrades(&self) -> &upgrade::Upgrades {
        &self.upgrades
    }

    /// Takes a slot of `route` for the upgrade `ctx` asks for, or forgets the upgrade
    /// when the route does not pass its protocol: an HTTP/1.1 request then goes on as a
    /// plain one (without `Upgrade`), an extended CONNECT is refused. An HTTP/1.1
    /// upgrade request with a body is refused (400).
    pub(super) fn admit_upgrade(
        &self,
        route: &Route,
        headers: &http::HeaderMap,
        ctx: &mut RequestCtx<'_>,
    ) -> Result<(), GatewayError> {
        let Some(asked) = &ctx.upgrade else {
            return Ok(());
        };
        // After the switch the connection is the tunnel: bytes sent as a body would be
        // neither a body nor frames.
        let with_body = headers.contains_key(header::TRANSFER_ENCODING)
            || headers
                .get(header::CONTENT_LENGTH)
                .is_some_and(|v| v.as_bytes() != b"0");
        if with_body && !asked.h2 {
            return Err(GatewayError::BadRequest(
                "an upgrade request has no body".into(),
            ));
        }
        if !route.upgrade.contains(&asked.protocol) {
            if asked.h2 {
                return Err(GatewayError::BadRequest(format!(
                    "route {} does not pass the {:?} protocol",
                    route.name, asked.protocol
                )));
            }
            ctx.upgrade = None;
            return Ok(());
        }
        match route.upgrade_slots.clone().try_acquire_owned() {
            Ok(slot) => {
                ctx.upgrade_slot = Some(slot);
                Ok(())
            }
            Err(_) => {
                crate::metrics::upgrade_refused(&route.name, "max_connections");
                Err(GatewayError::TooManyUpgraded {
                    route: route.name.to_string(),
                    max: route.upgraded.max_connections,
                })
            }
        }
    }

    /// When the upstream switched protocols for the upgrade `ctx` asked for, answers
    /// the client in its protocol's terms and starts joining the two connections; the
    /// splice holds the request's plugin-set snapshot and the route's slot.
    pub(super) fn upgraded(
        &self,
        response: &mut Response<Body>,
        ctx: &mut RequestCtx<'_>,
        client: Option<OnUpgrade>,
    ) {
        let (Some(asked), Some(client), Some(route)) = (ctx.upgrade.as_ref(), client, ctx.route)
        else {
            return;
        };
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            return;
        }
        let upstream = hyper::upgrade::on(&mut *response);
        if asked.h2 {
            // RFC 8441: the stream is the tunnel once the CONNECT is answered 200; the
            // HTTP/1.1 handshake headers are the upstream leg's own.
            *response.status_mut() = StatusCode::OK;
            let h = response.headers_mut();
            h.remove(header::UPGRADE);
            h.remove(header::CONNECTION);
            h.remove(HeaderName::from_static("sec-websocket-accept"));
        }
        let limits = Limits {
            idle_timeout: route.upgraded.idle_timeout,
            max_duration: route.upgraded.max_duration,
        };
        let hold = (ctx.plugins.clone(), ctx.upgrade_slot.take());
        let stop = self.upgrades.stop_token();
        self.upgrades.spawn(upgrade::run(
            client,
            upstream,
            route.name.clone(),
            limits,
            stop,
            hold,
        ));
    }
}
