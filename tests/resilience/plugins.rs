//! Plugins failing while a response streams through them: a chunk plugin that crashes
//! after two chunks and one that hangs. `fail_open` must deliver the whole stream,
//! `fail_closed` must abort it visibly (never pass a cut stream off as complete), the
//! plugin must come back, and no process or descriptor may be left behind.

use crate::common::PluginEntry;
use crate::common::client::{empty, h1};
use crate::support::{CHAOS, Watched, children, config, recorder};
use crate::traffic::plugin_ready;
use http_body_util::BodyExt;
use std::time::Duration;

/// Streams `/stream?n=6&gap_ms=40` and returns the body, or the error that cut it.
async fn stream(addr: std::net::SocketAddr) -> Result<String, String> {
    let req = hyper::Request::get(format!("http://{addr}/stream?n=6&gap_ms=40"))
        .body(empty())
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(20), h1().request(req))
        .await
        .expect("no response head")
        .map_err(|e| e.to_string())?;
    assert_eq!(resp.status(), 200);
    match tokio::time::timeout(Duration::from_secs(20), resp.into_body().collect()).await {
        Err(_) => Err("body timed out".into()),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(body)) => Ok(String::from_utf8_lossy(&body.to_bytes()).into_owned()),
    }
}

fn whole() -> String {
    (0..6).map(|i| format!("chunk-{i}\n")).collect()
}

fn chaos(mode: &str, on_error: &str) -> String {
    PluginEntry::file("chaos", CHAOS, "on_response")
        .extra(&format!("timeout = \"300ms\"\non_error = \"{on_error}\""))
        .env("CHAOS_MODE", mode)
        .toml()
}

/// Waits until the gateway has exactly one plugin child again that is not `old`, and
/// the plugin reports ready.
async fn restarted(gw: &Watched, old: u32) -> u32 {
    for _ in 0..100 {
        let kids = children(gw.pid);
        if kids.len() == 1 && !kids.contains(&old) {
            plugin_ready(gw.gw.admin_addr, "chaos").await;
            return *kids.iter().next().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "plugin {old} was not replaced: children {:?}",
        children(gw.pid)
    );
}

#[tokio::test]
async fn crash_mid_stream_with_fail_open_delivers_the_whole_stream() {
    let up = recorder().await;
    let gw = Watched::start(&config(&up, &[], &chaos("crash_after:3", "fail_open"))).await;
    let first = *children(gw.pid).iter().next().expect("plugin process");
    // The plugin exits on its third chunk call, in the middle of the stream.
    assert_eq!(stream(gw.gw.proxy_addr).await, Ok(whole()));
    let second = restarted(&gw, first).await;
    gw.note_children();
    assert_eq!(stream(gw.gw.proxy_addr).await, Ok(whole()));
    let _ = restarted(&gw, second).await;
    gw.finish("plugin crashes with fail_open").await;
}

#[tokio::test]
async fn crash_mid_stream_with_fail_closed_aborts_the_stream() {
    let up = recorder().await;
    let gw = Watched::start(&config(&up, &[], &chaos("crash_after:3", "fail_closed"))).await;
    let first = *children(gw.pid).iter().next().expect("plugin process");
    let cut = stream(gw.gw.proxy_addr).await;
    assert!(
        cut.is_err(),
        "a cut stream was passed off as complete: {cut:?}"
    );
    let _ = restarted(&gw, first).await;
    gw.note_children();
    // The restarted plugin passes chunks again until its own third call.
    let reply = crate::common::get(gw.gw.proxy_addr, "/after").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    gw.finish("plugin crashes with fail_closed").await;
}

#[tokio::test]
async fn hanging_chunk_plugin_is_timed_out_per_chunk() {
    let up = recorder().await;
    let gw = Watched::start(&config(&up, &[], &chaos("hang", "fail_open"))).await;
    let streams: Vec<_> = (0..8)
        .map(|_| tokio::spawn(stream(gw.gw.proxy_addr)))
        .collect();
    for s in streams {
        assert_eq!(s.await.unwrap(), Ok(whole()));
    }
    gw.finish("hanging chunk plugin").await;

    let up = recorder().await;
    let gw = Watched::start(&config(&up, &[], &chaos("hang", "fail_closed"))).await;
    assert!(stream(gw.gw.proxy_addr).await.is_err());
    gw.finish("hanging chunk plugin, fail_closed").await;
}

#[tokio::test]
async fn hanging_request_plugin_answers_every_concurrent_request_by_policy() {
    for (on_error, status) in [("fail_open", 200), ("fail_closed", 503)] {
        let up = recorder().await;
        let entry = PluginEntry::file("chaos", CHAOS, "pre_auth")
            .extra(&format!("timeout = \"300ms\"\non_error = \"{on_error}\""))
            .env("CHAOS_MODE", "hang")
            .toml();
        let gw = Watched::start(&config(&up, &[], &entry)).await;
        let addr = gw.gw.proxy_addr;
        let requests: Vec<_> = (0..32)
            .map(|i| {
                tokio::spawn(async move { crate::common::get(addr, &format!("/hang-{i}")).await })
            })
            .collect();
        for r in requests {
            let reply = r.await.unwrap();
            assert_eq!(reply.status, status, "{on_error}: {}", reply.text());
        }
        let forwarded = up.count("/hang-");
        assert_eq!(forwarded, if status == 200 { 32 } else { 0 }, "{on_error}");
        gw.finish(&format!("hanging plugin, {on_error}")).await;
    }
}
