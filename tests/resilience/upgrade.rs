//! Abusive upgrade requests: an upgrade with a body that hides a second request, and a
//! `Connection: upgrade` without `Upgrade` followed by a pipelined request. Neither may
//! turn the connection into a tunnel, and the hidden request never reaches the upstream.

use crate::support::{Watched, config, exchange, recorder};
use std::time::Duration;

const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: gw\r\n\r\n";

#[tokio::test]
async fn an_upgrade_request_with_a_body_is_refused_and_its_body_never_forwarded() {
    let up = recorder().await;
    let gw = Watched::start(&config(&up, &[], "")).await;
    let body = SMUGGLED;
    let payload = format!(
        "GET /ws HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let reply = exchange(gw.gw.proxy_addr, &payload, Duration::from_secs(5)).await;
    assert_eq!(reply.statuses(), vec![400], "{}", reply.text);
    assert_eq!(
        up.count("/ws") + up.count("/smuggled"),
        0,
        "{:?}",
        up.seen()
    );
    gw.finish("upgrade with a body").await;
}

#[tokio::test]
async fn connection_upgrade_without_upgrade_stays_http() {
    let up = recorder().await;
    let gw = Watched::start(&config(&up, &[], "")).await;
    // The first request asks for nothing; the second, pipelined behind it, is a request
    // of its own, answered on its own, never bytes of a tunnel.
    let payload =
        format!("GET /first HTTP/1.1\r\nHost: gw\r\nConnection: upgrade\r\n\r\n{SMUGGLED}");
    let reply = exchange(gw.gw.proxy_addr, &payload, Duration::from_secs(5)).await;
    assert_eq!(reply.statuses(), vec![200, 200], "{}", reply.text);
    assert!(!reply.text.contains("101"), "{}", reply.text);
    assert_eq!(
        (up.count("/first"), up.count("/smuggled")),
        (1, 1),
        "{:?}",
        up.seen()
    );
    gw.finish("Connection: upgrade without Upgrade").await;
}
