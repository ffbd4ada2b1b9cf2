//! Misbehaving plugins: crash → restart, hang → timeout + fail policy, garbage and bad
//! handshakes, silence, oversized answers.

use crate::common::{PluginEntry, TestUpstream, get};
use crate::support::{CHAOS, config, eventually, start_error};
use microgateway::plugin::HealthState;
use std::time::Duration;

fn chaos(name: &str, mode: &str, extra: &str) -> String {
    PluginEntry::file(name, CHAOS, "pre_auth")
        .env("CHAOS_MODE", mode)
        .extra(extra)
        .toml()
}

#[tokio::test]
async fn crashed_plugin_restarts_and_fail_policy_applies_meanwhile() {
    let up = TestUpstream::start("up").await;
    let entry = chaos("crashy", "crash_after:2", "on_error = \"fail_closed\"");
    let gw = config(&up, &entry).start().await;
    let first = get(gw.proxy_addr, "/x").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.echo().header("x-calls"), Some("1"));
    // The second call kills the plugin: fail_closed answers 503.
    let second = get(gw.proxy_addr, "/x").await;
    second.assert_error(http::StatusCode::SERVICE_UNAVAILABLE, "plugin_unavailable");
    let set = gw.proxy().plugins();
    let instance = set.instances()[0].clone();
    let restarted = crate::support::eventually(Duration::from_secs(10), async || {
        let h = instance.plugin.health();
        h.state == HealthState::Ready && h.restarts >= 1
    })
    .await;
    assert!(
        restarted,
        "plugin did not come back: {:?}",
        instance.plugin.health()
    );
    assert!(
        instance
            .plugin
            .health()
            .last_error
            .unwrap_or_default()
            .contains("exited")
    );
    // A fresh process counts from 1 again.
    let after = get(gw.proxy_addr, "/x").await;
    assert_eq!(after.status, 200);
    assert_eq!(after.echo().header("x-calls"), Some("1"));
}

#[tokio::test]
async fn crashed_fail_open_plugin_is_skipped() {
    let up = TestUpstream::start("up").await;
    let gw = config(
        &up,
        &chaos("crashy", "crash_after:1", "on_error = \"fail_open\""),
    )
    .start()
    .await;
    for _ in 0..3 {
        assert_eq!(get(gw.proxy_addr, "/x").await.status, 200);
    }
}

#[tokio::test]
async fn hanging_plugin_times_out_under_both_policies() {
    let up = TestUpstream::start("up").await;
    let entries = chaos(
        "hang-closed",
        "hang",
        "timeout = \"200ms\"\non_error = \"fail_closed\"\nroutes = [\"closed\"]",
    ) + &chaos(
        "hang-open",
        "hang",
        "timeout = \"200ms\"\nroutes = [\"main\"]",
    );
    let gw = config(&up, &entries)
        .route("closed", "main", "path_prefix = \"/closed\"")
        .start()
        .await;
    let closed = get(gw.proxy_addr, "/closed/x").await;
    let body = closed.assert_error(http::StatusCode::SERVICE_UNAVAILABLE, "plugin_unavailable");
    assert!(
        body["message"].as_str().unwrap().contains("timed out"),
        "{body}"
    );
    assert_eq!(get(gw.proxy_addr, "/x").await.status, 200);
}

#[tokio::test]
async fn oversized_answer_is_a_plugin_error() {
    let up = TestUpstream::start("up").await;
    let gw = config(&up, &chaos("huge", "huge", "on_error = \"fail_closed\""))
        .start()
        .await;
    get(gw.proxy_addr, "/x")
        .await
        .assert_error(http::StatusCode::SERVICE_UNAVAILABLE, "plugin_unavailable");
}

#[tokio::test]
async fn garbage_handshake_is_refused() {
    let up = TestUpstream::start("up").await;
    let err = start_error(&config(&up, &chaos("junk", "garbage", "required = true"))).await;
    assert!(
        err.contains("invalid plugin handshake") && err.contains("junk"),
        "{err}"
    );
}

#[tokio::test]
async fn non_loopback_handshake_is_refused() {
    let up = TestUpstream::start("up").await;
    let err = start_error(&config(
        &up,
        &chaos("bad", "bad_handshake", "required = true"),
    ))
    .await;
    assert!(err.contains("not loopback"), "{err}");
}

#[tokio::test]
async fn silent_plugin_hits_the_start_timeout() {
    let up = TestUpstream::start("up").await;
    let cfg = config(&up, &chaos("quiet", "silent", "required = true")).raw("");
    let toml = cfg
        .toml()
        .replace("start_timeout = \"5s\"", "start_timeout = \"700ms\"");
    let err = match microgateway::start(microgateway::Config::from_toml(&toml).unwrap()).await {
        Ok(_) => panic!("started"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("no handshake within"), "{err}");
}

#[tokio::test]
async fn restart_eventually_gives_fresh_process_for_every_crash() {
    let up = TestUpstream::start("up").await;
    let gw = config(
        &up,
        &chaos("crashy", "crash_after:1", "on_error = \"fail_open\""),
    )
    .start()
    .await;
    let instance = gw.proxy().plugins().instances()[0].clone();
    for round in 1..=2u32 {
        assert_eq!(get(gw.proxy_addr, "/x").await.status, 200);
        let ok = eventually(Duration::from_secs(10), async || {
            let h = instance.plugin.health();
            h.state == HealthState::Ready && h.restarts >= round
        })
        .await;
        assert!(ok, "round {round}: {:?}", instance.plugin.health());
    }
}
