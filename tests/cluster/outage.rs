//! Redis killed under a running gateway and started again, under each
//! `on_unavailable`: `local` and `allow` fail no request and add what they admitted to
//! the fleet's counters when Redis returns; `deny` refuses with 503 until it does.

use crate::common::binary::GatewayProcess;
use crate::common::redis::Redis;
use crate::fleet::{TOKENS_PER_ANSWER, chat, cluster_lines, config, metric, prefix, provider};
use std::net::SocketAddr;
use std::time::Duration;

const POLICY: &str = r#"{ window = "1h", apps = { "app-r" = { requests_per_window = 1000 }, "app-s" = { requests_per_window = 2 } } }"#;

/// Waits (at most 10 s) for `microgateway_cluster_up` to be `want`.
async fn wait_up(admin: SocketAddr, want: f64) {
    for _ in 0..200 {
        if metric(admin, "microgateway_cluster_up").await == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("microgateway_cluster_up never became {want}");
}

/// The value of the one key matching `pattern`, waiting (at most 10 s) for it to be
/// `want`; returns what it last was.
async fn key_reaching(redis: &Redis, pattern: &str, want: &str) -> String {
    let mut last = String::new();
    for _ in 0..200 {
        let key = redis.cli(&["--scan", "--pattern", pattern]);
        if !key.is_empty() {
            last = redis.cli(&["GET", key.lines().next().unwrap_or_default()]);
            if last == want {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_serves_through_an_outage_and_resyncs_when_redis_returns() {
    let mut redis = Redis::start();
    let (provider, prefix) = (provider().await, prefix());
    let lines = cluster_lines(
        &redis,
        &prefix,
        "on_unavailable = \"local\"\nretry_interval = \"100ms\"",
    );
    let gw = GatewayProcess::spawn(&config(provider, &lines, POLICY)).await;
    for _ in 0..5 {
        assert_eq!(
            chat(gw.proxy_addr, "/v1/chat/completions", "k-r")
                .await
                .status,
            200
        );
    }
    // Their usage is settled before the outage.
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.kill();
    // Every request of the outage is answered, none fails.
    for i in 0..20 {
        let reply = chat(gw.proxy_addr, "/v1/chat/completions", "k-r").await;
        assert_eq!(
            reply.status,
            200,
            "request {i} of the outage: {}",
            reply.text()
        );
        let reply = chat(gw.proxy_addr, "/rl/x", "k-l").await;
        assert_eq!(
            reply.status,
            200,
            "rate-limited request {i}: {}",
            reply.text()
        );
    }
    wait_up(gw.admin_addr, 0.0).await;
    let degraded =
        r#"microgateway_cluster_degraded_total{limit="llm_policy",on_unavailable="local"}"#;
    // The requests of the outage beyond the lease taken before it were admitted by the
    // gateway's own window.
    let local = metric(gw.admin_addr, degraded).await.unwrap_or(0.0) as u64;
    assert!(local >= 1, "no request was admitted locally");
    // Redis returns empty (no persistence here): what the gateway admitted on its own
    // and metered meanwhile is added.
    redis.restart();
    wait_up(gw.admin_addr, 1.0).await;
    let pattern = format!("{prefix}*app-r:*:requests");
    let requests = key_reaching(&redis, &pattern, &local.to_string()).await;
    assert_eq!(
        requests,
        local.to_string(),
        "requests admitted locally during the outage"
    );
    let tokens = (20 * TOKENS_PER_ANSWER).to_string();
    let spent = key_reaching(&redis, &format!("{prefix}*app-r:*:tokens"), &tokens).await;
    assert_eq!(spent, tokens, "tokens used during the outage");
    // And the fleet's limits apply again.
    assert_eq!(
        chat(gw.proxy_addr, "/v1/chat/completions", "k-r")
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_admits_past_the_limit_while_redis_is_down() {
    let mut redis = Redis::start();
    let (provider, prefix) = (provider().await, prefix());
    let lines = cluster_lines(&redis, &prefix, "on_unavailable = \"allow\"");
    let gw = GatewayProcess::spawn(&config(provider, &lines, POLICY)).await;
    redis.kill();
    for i in 0..5 {
        let reply = chat(gw.proxy_addr, "/v1/chat/completions", "k-s").await;
        assert_eq!(
            reply.status,
            200,
            "request {i} (limit 2, Redis down): {}",
            reply.text()
        );
    }
    let degraded =
        r#"microgateway_cluster_degraded_total{limit="llm_policy",on_unavailable="allow"}"#;
    assert!(metric(gw.admin_addr, degraded).await.unwrap_or(0.0) >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_refuses_with_503_until_redis_returns() {
    let mut redis = Redis::start();
    let (provider, prefix) = (provider().await, prefix());
    let lines = cluster_lines(
        &redis,
        &prefix,
        "on_unavailable = \"deny\"\nretry_interval = \"100ms\"",
    );
    let gw = GatewayProcess::spawn(&config(provider, &lines, POLICY)).await;
    assert_eq!(
        chat(gw.proxy_addr, "/v1/chat/completions", "k-s")
            .await
            .status,
        200
    );
    redis.kill();
    let mut refused = None;
    for _ in 0..50 {
        let reply = chat(gw.proxy_addr, "/v1/chat/completions", "k-s").await;
        if reply.status == 503 {
            refused = Some(reply);
            break;
        }
        // The lease taken before the outage may still admit one request.
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let reply = refused.expect("no 503 while Redis was down");
    assert_eq!(reply.json()["error"]["code"], "budget_unavailable");
    let reply = chat(gw.proxy_addr, "/rl/x", "k-l").await;
    assert_eq!(reply.status, 503, "rate limit under deny: {}", reply.text());
    redis.restart();
    wait_up(gw.admin_addr, 1.0).await;
    assert_eq!(
        chat(gw.proxy_addr, "/v1/chat/completions", "k-s")
            .await
            .status,
        200
    );
}
