//! The LLM response cache with `llm.cache.backend = "redis"`: an answer stored through
//! one gateway is served by another without a provider call, under the same scoping.

use crate::common::binary::GatewayProcess;
use crate::common::redis::Redis;
use crate::common::{GatewayConfig, PluginEntry};
use crate::fleet::{chat, prefix};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A fake OpenAI chat endpoint that counts its calls.
async fn counting_provider() -> (SocketAddr, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let addr = crate::common::serve::http1(move |_req| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            let body = serde_json::json!({
                "id": format!("c{n}"), "object": "chat.completion", "model": "gpt-4o-mini",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("answer {n}")}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30}
            });
            hyper::Response::builder()
                .header("content-type", "application/json")
                .body(http_body_util::Full::new(bytes::Bytes::from(body.to_string())))
                .unwrap()
        }
    })
    .await;
    (addr, calls)
}

fn config(redis: &Redis, prefix: &str, provider: SocketAddr) -> GatewayConfig {
    let keys = r#"config = { keys = [{ key = "k-r", identity = "r", app_id = "app-r" }, { key = "k-t", identity = "t", app_id = "app-t" }] }"#;
    GatewayConfig::new()
        .server("workers = 1")
        .upstream_urls(
            "llm",
            &[format!("http://{provider}")],
            r#"llm = { provider = "openai", api_key_env = "HOME" }"#,
        )
        .route(
            "v1",
            "llm",
            "path_prefix = \"/v1\"\nllm = { cache = { ttl = \"1m\" } }",
        )
        .plugin(PluginEntry::new("keys", "builtin://api_key", "auth").extra(keys))
        .raw(&format!(
            "[llm.cache]\nbackend = \"redis\"\n\n[cluster]\nredis_url = \"{}\"\nkey_prefix = \"{prefix}\"",
            redis.url()
        ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_cached_through_one_gateway_is_served_by_another() {
    let redis = Redis::start();
    let (provider, calls) = counting_provider().await;
    let prefix = prefix();
    let a = GatewayProcess::spawn(&config(&redis, &prefix, provider)).await;
    let b = GatewayProcess::spawn(&config(&redis, &prefix, provider)).await;
    let first = chat(a.proxy_addr, "/v1/chat/completions", "k-r").await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.headers["x-microgateway-cache"], "miss");
    // The write to Redis is off the request path: wait for it.
    let pattern = format!("{prefix}cache:*");
    for _ in 0..100 {
        if !redis.cli(&["--scan", "--pattern", &pattern]).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // B has never seen the request: its answer comes from Redis.
    let second = chat(b.proxy_addr, "/v1/chat/completions", "k-r").await;
    assert_eq!(second.headers["x-microgateway-cache"], "hit");
    assert_eq!(
        second.json()["choices"][0]["message"]["content"],
        "answer 1"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1, "a hit called the provider");
    let hits = 1;
    // Scoped by app: another app's same request is not served A's answer.
    let other = chat(b.proxy_addr, "/v1/chat/completions", "k-t").await;
    assert_eq!(other.headers["x-microgateway-cache"], "miss");
    assert_eq!(calls.load(Ordering::SeqCst), hits + 1);
    let stored = redis.cli(&["--scan", "--pattern", &format!("{prefix}cache:*")]);
    assert!(stored.lines().count() >= 2, "{stored}");
}
