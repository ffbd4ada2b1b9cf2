//! Response-side hooks: SSE chunk hooks see each event, stream-complete gets the
//! accumulated response, and data collection receives every request.

use crate::common::client::empty;
use crate::common::{PluginEntry, get, request};
use crate::support::{Journal, gateway, upstream};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn sse_chunk_hook_sees_each_event_and_can_replace_it() {
    let up = upstream().await;
    let journal = Arc::new(Journal::default());
    let plugin = PluginEntry::new("filter", "builtin://scripted", "on_response")
        .extra("config = { action = \"sse\" }")
        .toml();
    let gw = gateway(&up, &plugin, journal.clone()).await;
    let got = get(gw.proxy_addr, "/sse").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.text(), "data: one\n\nDATA: TWO\n\ndata: three\n\n");
    assert!(got.headers.get("content-length").is_none());
    assert_eq!(
        *journal.chunks.lock().unwrap(),
        vec!["data: one\n\n", "data: two\n\n", "data: three\n\n"]
    );
    assert!(gw.proxy().flush_collectors(Duration::from_secs(5)).await);
    let completed = journal.completed.lock().unwrap();
    assert_eq!(completed.len(), 1);
    assert_eq!(completed[0].chunks, 3);
    assert_eq!(&completed[0].accumulated[..], &got.body[..]);
}

#[tokio::test]
async fn data_collection_receives_every_request() {
    let up = upstream().await;
    let journal = Arc::new(Journal::default());
    let plugins = [
        PluginEntry::new("collector", "builtin://scripted", "data_collection")
            .extra("config = { action = \"collect\" }"),
        PluginEntry::new("keys", "builtin://api_key", "auth")
            .extra("routes = [\"other\"]\nconfig = { keys = [{ key = \"k1\", identity = \"bob\", app_id = \"a\" }] }"),
    ]
    .map(|p| p.toml())
    .concat();
    let gw = gateway(&up, &plugins, journal.clone()).await;
    let mut statuses = Vec::new();
    for i in 0..30 {
        statuses.push(get(gw.proxy_addr, &format!("/n/{i}")).await.status);
    }
    // Rejected requests are collected too, with their final status.
    statuses.push(get(gw.proxy_addr, "/other/denied").await.status);
    statuses.push(
        request(
            gw.proxy_addr,
            "GET",
            "/other/ok",
            &[("authorization", "Bearer k1")],
            empty(),
        )
        .await
        .status,
    );
    assert!(gw.proxy().flush_collectors(Duration::from_secs(5)).await);
    let collected = journal.collected.lock().unwrap();
    assert_eq!(collected.len(), 32);
    assert_eq!(
        collected.iter().filter(|r| r.request.route == "r").count(),
        30
    );
    let denied = collected
        .iter()
        .find(|r| r.request.uri.path() == "/other/denied")
        .unwrap();
    assert_eq!(denied.status, 401);
    let ok = collected
        .iter()
        .find(|r| r.request.uri.path() == "/other/ok")
        .unwrap();
    assert_eq!(ok.status, 200);
    assert_eq!(ok.context.auth.as_ref().unwrap().identity, "bob");
    assert!(ok.response_bytes > 0);
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 31);
}

#[tokio::test]
async fn data_collection_names_the_fallback_group_that_answered() {
    let up = upstream().await;
    let dead = crate::common::gateway::closed_port().await;
    let journal = Arc::new(Journal::default());
    let collector = PluginEntry::new("collector", "builtin://scripted", "data_collection")
        .extra("config = { action = \"collect\" }")
        .toml();
    let gw = crate::common::GatewayConfig::new()
        .upstream_urls("primary", &[format!("http://{dead}")], "")
        .upstream("backup", &[&up])
        .route("r", "primary", "fallback = [\"backup\"]")
        .raw(&collector)
        .start_with(crate::support::registry(journal.clone()))
        .await;
    let reply = get(gw.proxy_addr, "/x").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(gw.proxy().flush_collectors(Duration::from_secs(5)).await);
    let collected = journal.collected.lock().unwrap();
    assert_eq!(collected.len(), 1);
    assert_eq!(collected[0].request.upstream, "backup");
}
