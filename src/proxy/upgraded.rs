//! Upgrade requests on the request path: whether the route passes the protocol the
//! client asks for (and has room for one more upgraded connection), and, once the
//! upstream switched protocols, the answer to the client (`101`, or `200` to an HTTP/2
//! extended CONNECT) and the task that joins the two connections (`crate::upgrade`).

use super::Proxy;
use crate::body::Body;
use crate::error::GatewayError;
use crate::hook::Hook;
use crate::loader::PluginSet;
use crate::pipeline::ctx::RequestCtx;
use crate::pipeline::invoke;
use crate::plugin::{MessageAction, MessageView};
use crate::routing::Route;
use crate::upgrade::{self, Limits};
use bytes::Bytes;
use http::{HeaderName, Response, StatusCode, header};
use hyper::upgrade::OnUpgrade;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

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
        set: &PluginSet,
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
        let hooked = !set.plan(route.index).websocket_messages.is_empty();
        if let Some(asked) = ctx.upgrade.as_mut() {
            asked.inspect = hooked;
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
    /// splice holds the request's plugin-set snapshot, the route's slot and, over
    /// HTTP/2, the client connection's busy mark.
    pub(super) fn upgraded(
        &self,
        response: &mut Response<Body>,
        ctx: &mut RequestCtx<'_>,
        client: Option<(OnUpgrade, Option<upgrade::ConnectionHold>)>,
    ) {
        let (Some(asked), Some((client, connection)), Some(route)) =
            (ctx.upgrade.as_ref(), client, ctx.route)
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
        let hold = (ctx.plugins.clone(), ctx.upgrade_slot.take(), connection);
        let stop = self.upgrades.stop_token();
        // Message hooks make the splice read messages; without them bytes pass unread.
        let filter = ctx
            .plugins
            .clone()
            .filter(|set| !set.plan(route.index).websocket_messages.is_empty())
            .map(|set| {
                let hooks = MessageHooks {
                    set,
                    route: route.index,
                    route_name: route.name.clone(),
                    request_id: ctx.request_id_str().to_string(),
                };
                let boxed: Box<dyn upgrade::Filter + Send> = Box::new(hooks);
                (boxed, route.upgraded.max_message_bytes)
            });
        self.upgrades.spawn(upgrade::run(
            client,
            upstream,
            route.name.clone(),
            limits,
            stop,
            filter,
            hold,
        ));
    }
}

/// The route's message hooks over one session, in plan order: the first that drops a
/// message ends its way; a replacement is what the next hook sees.
struct MessageHooks {
    set: Arc<PluginSet>,
    route: usize,
    route_name: Arc<str>,
    request_id: String,
}

impl upgrade::Filter for MessageHooks {
    fn filter<'a>(
        &'a self,
        direction: upgrade::Direction,
        text: bool,
        payload: Bytes,
    ) -> Pin<Box<dyn Future<Output = upgrade::Verdict> + Send + 'a>> {
        Box::pin(async move {
            let mut current = payload;
            let mut changed = false;
            for instance in &self.set.plan(self.route).websocket_messages {
                let view = MessageView {
                    request_id: &self.request_id,
                    route: &self.route_name,
                    from_client: direction == upgrade::Direction::ToUpstream,
                    text,
                    payload: &current,
                };
                let action = invoke(instance, Hook::WebsocketMessage, || {
                    instance.plugin.on_websocket_message(&view)
                })
                .await;
                match action {
                    // A fail_open hook that failed is skipped.
                    Ok(None) | Ok(Some(MessageAction::Pass)) => {}
                    Ok(Some(MessageAction::Replace(b))) => {
                        current = b;
                        changed = true;
                    }
                    // A fail_closed hook that failed lets nothing through.
                    Ok(Some(MessageAction::Drop)) | Err(_) => return upgrade::Verdict::Drop,
                }
            }
            match changed {
                true => upgrade::Verdict::Replace(current),
                false => upgrade::Verdict::Pass,
            }
        })
    }
}
