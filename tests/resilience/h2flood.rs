//! HTTP/2 abuse on the cleartext (h2c) listener, driven by python `h2`
//! (`h2_attack.py`): rapid reset, concurrent-stream floods, CONTINUATION floods and PING
//! floods. The attacking connection must be cut or throttled, the upstream must not see
//! the flood, other clients must keep being served, and nothing may leak.

use crate::common::get;
use crate::support::{Watched, config, recorder, rss_kib};
use crate::traffic::{Load, h2_attack};

#[tokio::test]
async fn rapid_reset_gets_goaway_and_never_reaches_the_upstream_in_bulk() {
    let up = recorder().await;
    let gw = Watched::start(&config(&up, &[], "")).await;
    let addr = gw.gw.proxy_addr;
    let load = Load::start(addr, "/bystander", 2);
    let report = h2_attack("rapid-reset", addr, 20_000).await;
    assert_eq!(
        report["goaway"], "ENHANCE_YOUR_CALM",
        "rapid reset was not stopped: {report}"
    );
    assert!(report["closed"].as_bool().unwrap(), "{report}");
    let sent = report["sent"].as_u64().unwrap();
    assert!(sent < 20_000, "all streams were accepted: {report}");
    // Only streams the gateway accepted before the GOAWAY can have been forwarded.
    let forwarded = up.count("/attack");
    assert!(
        forwarded <= 200,
        "{forwarded} reset streams reached the upstream"
    );
    load.stop().await.assert_clean();
    gw.finish("rapid reset").await;
}

#[tokio::test]
async fn streams_beyond_the_concurrency_limit_are_refused() {
    let up = recorder().await;
    // Held-open uploads are released by the body read timeout.
    let gw = Watched::start(&config(&up, &["body_read_timeout = \"2s\""], "")).await;
    let addr = gw.gw.proxy_addr;
    let report = h2_attack("stream-flood", addr, 1_000).await;
    assert_eq!(report["max_concurrent_streams"], 200, "{report}");
    let refused = report["resets"]["REFUSED_STREAM"].as_u64().unwrap_or(0);
    assert!(refused >= 800, "only {refused} streams refused: {report}");
    assert!(
        up.count("/attack") <= 200,
        "{} streams forwarded",
        up.count("/attack")
    );
    assert_eq!(get(addr, "/after").await.status, 200);
    gw.finish("stream flood").await;
}

#[tokio::test]
async fn continuation_flood_is_cut() {
    let up = recorder().await;
    let gw = Watched::start(&config(&up, &[], "")).await;
    let addr = gw.gw.proxy_addr;
    let before = rss_kib(gw.pid);
    let report = h2_attack("continuation", addr, 1_000_000).await;
    assert!(report["closed"].as_bool().unwrap(), "{report}");
    assert_eq!(report["goaway"], "ENHANCE_YOUR_CALM", "{report}");
    assert!(report["sent"].as_u64().unwrap() < 1_000_000, "{report}");
    assert!(
        rss_kib(gw.pid) < before + 32 * 1024,
        "memory grew during the flood"
    );
    assert_eq!(up.count("/attack"), 0);
    assert_eq!(get(addr, "/after").await.status, 200);
    gw.finish("CONTINUATION flood").await;
}

#[tokio::test]
async fn ping_flood_without_reading_is_throttled() {
    let up = recorder().await;
    let gw = Watched::start(&config(&up, &[], "")).await;
    let addr = gw.gw.proxy_addr;
    let before = rss_kib(gw.pid);
    let load = Load::start(addr, "/bystander", 2);
    let report = h2_attack("ping-flood", addr, 20_000).await;
    // Pongs that cannot be written stop the reading: memory stays flat.
    assert!(
        rss_kib(gw.pid) < before + 32 * 1024,
        "memory grew by {} KiB: {report}",
        rss_kib(gw.pid) - before
    );
    load.stop().await.assert_clean();
    gw.finish("PING flood").await;
}
