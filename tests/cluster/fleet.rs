//! Three gateway processes on one Redis: a request budget admitted exactly once across
//! the fleet, tokens spent on one gateway refused on another, a budget that survives a
//! restart, a shared rate limit, and `rediss://` with a test CA.

use crate::common::binary::GatewayProcess;
use crate::common::client::{Reply, full, request};
use crate::common::redis::{Redis, RedisTls};
use crate::common::{GatewayConfig, PluginEntry, TestPki};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Tokens the fake provider reports for every answer (20 prompt + 10 completion).
pub const TOKENS_PER_ANSWER: u64 = 30;

/// A fake OpenAI chat endpoint answering every request with the same usage.
pub async fn provider() -> SocketAddr {
    crate::common::serve::http1(|_req| async {
        let body = serde_json::json!({
            "id": "c1", "object": "chat.completion", "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30}
        });
        hyper::Response::builder()
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(body.to_string())))
            .unwrap()
    })
    .await
}

/// A key prefix no other test uses, so tests share one Redis server safely.
pub fn prefix() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "t{}-{}:",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A gateway of the fleet: `/v1` under `llm_policy` with `policy`, `/rl` under a shared
/// `rate_limit`, both to the fake provider, and `[cluster]` with `cluster` lines.
pub fn config(provider: SocketAddr, cluster: &str, policy: &str) -> GatewayConfig {
    let keys = r#"config = { keys = [{ key = "k-r", identity = "r", app_id = "app-r" }, { key = "k-t", identity = "t", app_id = "app-t" }, { key = "k-s", identity = "s", app_id = "app-s" }, { key = "k-l", identity = "l", app_id = "app-l" }] }"#;
    GatewayConfig::new()
        .server("workers = 1")
        .upstream_urls(
            "llm",
            &[format!("http://{provider}")],
            r#"llm = { provider = "openai", api_key_env = "HOME" }"#,
        )
        .route("v1", "llm", "path_prefix = \"/v1\"")
        .route("rl", "llm", "path_prefix = \"/rl\"")
        .plugin(PluginEntry::new("keys", "builtin://api_key", "auth").extra(keys))
        .plugin(
            PluginEntry::new("policy", "builtin://llm_policy", "post_auth")
                .extra(&format!("config = {policy}\nroutes = [\"v1\"]")),
        )
        .plugin(
            PluginEntry::new("limit", "builtin://rate_limit", "post_auth").extra(
                "config = { key = \"app\", requests_per_second = 1, burst = 30 }\nroutes = [\"rl\"]",
            ),
        )
        .raw(&format!("[cluster]\nsync_interval = \"50ms\"\n{cluster}"))
}

/// `[cluster]` lines for `redis` under a fresh prefix.
pub fn cluster_lines(redis: &Redis, prefix: &str, extra: &str) -> String {
    format!(
        "redis_url = \"{}\"\nkey_prefix = \"{prefix}\"\n{extra}",
        redis.url()
    )
}

/// One chat request with client key `key` to `path`.
pub async fn chat(addr: SocketAddr, path: &str, key: &str) -> Reply {
    let auth = format!("Bearer {key}");
    let body = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
    request(
        addr,
        "POST",
        path,
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        full(body),
    )
    .await
}

/// The value of the metric line starting with `series` on `admin`.
pub async fn metric(admin: SocketAddr, series: &str) -> Option<f64> {
    let text = crate::common::get(admin, "/metrics").await.text();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// Sends `n` requests to each gateway at once and counts the answers by status.
async fn burst(gateways: &[&GatewayProcess], path: &str, key: &str, n: usize) -> (usize, usize) {
    let mut calls = Vec::new();
    for gw in gateways {
        for _ in 0..n {
            let addr = gw.proxy_addr;
            let (path, key) = (path.to_string(), key.to_string());
            calls.push(tokio::spawn(
                async move { chat(addr, &path, &key).await.status },
            ));
        }
    }
    let (mut ok, mut refused) = (0, 0);
    for call in calls {
        match call.await.unwrap().as_u16() {
            200 => ok += 1,
            429 => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    (ok, refused)
}

const POLICY: &str = r#"{ window = "1h", apps = { "app-r" = { requests_per_window = 60 }, "app-t" = { tokens_per_window = 50 }, "app-s" = { requests_per_window = 3 } } }"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_admit_exactly_one_shared_request_budget() {
    let redis = Redis::start();
    let (provider, prefix) = (provider().await, prefix());
    let config = config(provider, &cluster_lines(&redis, &prefix, ""), POLICY);
    let a = GatewayProcess::spawn(&config).await;
    let b = GatewayProcess::spawn(&config).await;
    let c = GatewayProcess::spawn(&config).await;
    // 40 at once on each gateway, 120 in all, against a budget of 60.
    let (ok, refused) = burst(&[&a, &b, &c], "/v1/chat/completions", "k-r", 40).await;
    let logs: Vec<String> = [&a, &b, &c]
        .iter()
        .map(|g| g.log.lock().unwrap().clone())
        .collect();
    assert_eq!(
        (ok, refused),
        (60, 60),
        "the fleet admitted {ok} of a budget of 60; logs:\n{}",
        logs.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_spent_through_one_gateway_are_refused_on_another() {
    let redis = Redis::start();
    let (provider, prefix) = (provider().await, prefix());
    let config = config(provider, &cluster_lines(&redis, &prefix, ""), POLICY);
    let a = GatewayProcess::spawn(&config).await;
    let b = GatewayProcess::spawn(&config).await;
    // Two answers of 30 tokens each use up the budget of 50 on gateway A.
    for _ in 0..2 {
        let reply = chat(a.proxy_addr, "/v1/chat/completions", "k-t").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    // The usage is settled within one sync_interval (50 ms); B has never seen the app.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reply = chat(b.proxy_addr, "/v1/chat/completions", "k-t").await;
    assert_eq!(reply.status, 429, "{}", reply.text());
    assert_eq!(reply.json()["error"]["code"], "token_budget_exceeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_survives_a_gateway_restart() {
    let redis = Redis::start();
    let (provider, prefix) = (provider().await, prefix());
    let config = config(provider, &cluster_lines(&redis, &prefix, ""), POLICY);
    let a = GatewayProcess::spawn(&config).await;
    for _ in 0..3 {
        let reply = chat(a.proxy_addr, "/v1/chat/completions", "k-s").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    a.terminate();
    assert!(a.wait(Duration::from_secs(15)).await.success());
    let again = GatewayProcess::spawn(&config).await;
    let reply = chat(again.proxy_addr, "/v1/chat/completions", "k-s").await;
    assert_eq!(reply.status, 429, "{}", reply.text());
    assert_eq!(reply.json()["error"]["code"], "requests_budget_exceeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_rate_limit_holds_across_three_gateways() {
    let redis = Redis::start();
    let (provider, prefix) = (provider().await, prefix());
    let config = config(provider, &cluster_lines(&redis, &prefix, ""), POLICY);
    let a = GatewayProcess::spawn(&config).await;
    let b = GatewayProcess::spawn(&config).await;
    let c = GatewayProcess::spawn(&config).await;
    let start = tokio::time::Instant::now();
    // A bucket of 30 refilled at 1 per second, shared: 90 requests at once.
    let (ok, refused) = burst(&[&a, &b, &c], "/rl/x", "k-l", 30).await;
    let refilled = start.elapsed().as_secs() as usize + 1;
    assert!(
        (30..=30 + refilled).contains(&ok),
        "admitted {ok} (refused {refused}) from a shared bucket of 30 (+{refilled} refilled)"
    );
    // Each gateway alone would have admitted 30 from its own bucket.
    assert!(refused >= 90 - 30 - refilled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_a_test_ca() {
    let pki = TestPki::new();
    let redis = Redis::start_tls(RedisTls {
        cert: pki.cert_path.clone(),
        key: pki.key_path.clone(),
        ca: pki.ca_path.clone(),
    });
    let (provider, prefix) = (provider().await, prefix());
    let ca = format!("ca_file = \"{}\"", pki.ca_path.display());
    let config = config(provider, &cluster_lines(&redis, &prefix, &ca), POLICY);
    let a = GatewayProcess::spawn(&config).await;
    let b = GatewayProcess::spawn(&config).await;
    for gw in [&a, &b, &a] {
        let reply = chat(gw.proxy_addr, "/v1/chat/completions", "k-s").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let reply = chat(b.proxy_addr, "/v1/chat/completions", "k-s").await;
    assert_eq!(reply.status, 429, "shared over TLS: {}", reply.text());
    assert_eq!(
        metric(a.admin_addr, "microgateway_cluster_up").await,
        Some(1.0)
    );
    // The counter is in the TLS server.
    let keys = redis.cli(&["--scan", "--pattern", &format!("{prefix}*requests")]);
    assert_eq!(redis.cli(&["GET", keys.trim()]), "3", "{keys}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_on_a_unix_socket() {
    let redis = Redis::start_unix();
    let (provider, prefix) = (provider().await, prefix());
    let config = config(provider, &cluster_lines(&redis, &prefix, ""), POLICY);
    let a = GatewayProcess::spawn(&config).await;
    let b = GatewayProcess::spawn(&config).await;
    for gw in [&a, &b, &b] {
        let reply = chat(gw.proxy_addr, "/v1/chat/completions", "k-s").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let reply = chat(a.proxy_addr, "/v1/chat/completions", "k-s").await;
    assert_eq!(
        reply.status,
        429,
        "shared over the socket: {}",
        reply.text()
    );
}
