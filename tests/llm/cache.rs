//! The LLM response cache through the gateway, against the fake provider: misses,
//! hits and bypasses with their header and metrics, apps kept apart, streams replayed
//! as streams, the front door cached across apps under `scope = "global"`, and a hit
//! costing nothing.

use crate::common::client::{Reply, full, request};
use crate::traffic::{POLICY, Setup, setup};
use serde_json::json;
use std::time::Duration;

/// Sends `body` as written (so key order and spacing are the test's choice).
async fn post_raw(s: &Setup, path: &str, key: &str, body: &str, extra: &[(&str, &str)]) -> Reply {
    let auth = format!("Bearer {key}");
    let mut headers = vec![
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    headers.extend_from_slice(extra);
    request(
        s.gw.proxy_addr,
        "POST",
        path,
        &headers,
        full(body.to_string()),
    )
    .await
}

fn sent(s: &Setup) -> usize {
    s.seen.0.lock().unwrap().len()
}

async fn metrics(s: &Setup) -> String {
    crate::common::get(s.gw.admin_addr, "/metrics").await.text()
}

fn value(m: &str, series: &str) -> f64 {
    m.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn hits_misses_and_bypasses_are_told_apps_are_kept_apart_and_hits_cost_nothing() {
    let s = setup(POLICY).await;
    let path = "/cached/v1/chat/completions";
    let body = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"cache me"}]}"#;
    let same =
        r#"{ "messages": [ { "content": "cache me", "role": "user" } ], "model": "gpt-4o-mini" }"#;

    let miss = post_raw(&s, path, "client-f", body, &[]).await;
    assert_eq!(miss.status, 200, "{}", miss.text());
    assert_eq!(miss.header("x-microgateway-cache"), Some("miss"));
    // 12 prompt and 5 completion tokens of gpt-4o-mini at $0.15 and $0.60 per million.
    assert_eq!(miss.header("x-microgateway-cost-usd"), Some("0.0000048"));
    assert_eq!(sent(&s), 1);

    // The same request, written differently: served from the cache.
    let hit = post_raw(&s, path, "client-f", same, &[]).await;
    assert_eq!(hit.header("x-microgateway-cache"), Some("hit"));
    assert_eq!(hit.header("x-microgateway-cost-usd"), Some("0"));
    assert_eq!(hit.json(), miss.json());
    assert_eq!(sent(&s), 1, "a hit must not reach the provider");

    // Another app never gets app-a's answer.
    let other = post_raw(&s, path, "client-g", body, &[]).await;
    assert_eq!(other.header("x-microgateway-cache"), Some("miss"));
    assert_eq!(sent(&s), 2);

    // no-store: neither read nor written; no-cache: forwarded, and the answer refreshed.
    let bypass = post_raw(&s, path, "client-f", body, &[("cache-control", "no-store")]).await;
    assert_eq!(bypass.header("x-microgateway-cache"), Some("bypass"));
    let refresh = post_raw(&s, path, "client-f", body, &[("cache-control", "no-cache")]).await;
    assert_eq!(refresh.header("x-microgateway-cache"), Some("bypass"));
    assert_eq!(sent(&s), 4);
    let again = post_raw(&s, path, "client-f", body, &[]).await;
    assert_eq!(again.header("x-microgateway-cache"), Some("hit"));
    assert_eq!(sent(&s), 4);

    // A request carrying a tool result is not cached.
    let tool = json!({"model": "gpt-4o-mini", "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"}]})
    .to_string();
    for _ in 0..2 {
        let r = post_raw(&s, path, "client-f", &tool, &[]).await;
        assert_eq!(r.header("x-microgateway-cache"), Some("bypass"));
    }
    assert_eq!(sent(&s), 6);

    // Data collection sees the hits as hits that cost nothing; the tokens they
    // carried are counted apart from those spent.
    assert!(s.gw.proxy().flush_collectors(Duration::from_secs(5)).await);
    let collected = s.collected.lock().unwrap().clone();
    let hits: Vec<_> = collected.iter().filter(|e| e.cache_hit).collect();
    assert_eq!(hits.len(), 2);
    assert!(hits.iter().all(|e| e.cost_usd == Some(0.0)));
    assert_eq!(hits[0].usage.as_ref().unwrap().prompt_tokens, 12);
    let m = metrics(&s).await;
    let series = |result: &str| {
        format!(r#"microgateway_llm_cache_requests_total{{route="cached",result="{result}"}}"#)
    };
    assert_eq!(value(&m, &series("hit")), 2.0, "{m}");
    assert_eq!(value(&m, &series("miss")), 2.0);
    assert_eq!(value(&m, &series("bypass")), 4.0);
    let hit_tokens = r#"microgateway_llm_cache_hit_tokens_total{provider="openai",model="gpt-4o-mini",app="app-cache",kind="prompt"}"#;
    assert_eq!(value(&m, hit_tokens), 24.0, "{m}");
    let spent = r#"microgateway_llm_tokens_total{provider="openai",model="gpt-4o-mini",app="app-cache",kind="prompt"}"#;
    // The miss, the no-store, the no-cache and the two tool requests: 5 × 12.
    assert_eq!(value(&m, spent), 60.0, "{m}");
    assert!(value(&m, "microgateway_llm_cache_bytes") > 0.0, "{m}");
    assert!(value(&m, "microgateway_llm_cache_entries") >= 2.0, "{m}");
}

/// Reads a response body frame by frame.
async fn frames(s: &Setup, path: &str, key: &str, body: &str) -> (http::HeaderMap, Vec<String>) {
    let req = http::Request::post(format!("http://{}{path}", s.gw.proxy_addr))
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(full(body.to_string()))
        .unwrap();
    let resp = crate::common::client::h1().request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let headers = resp.headers().clone();
    let mut body = resp.into_body();
    let mut out = Vec::new();
    while let Some(frame) = http_body_util::BodyExt::frame(&mut body).await {
        if let Ok(data) = frame.unwrap().into_data() {
            out.push(String::from_utf8_lossy(&data).into_owned());
        }
    }
    (headers, out)
}

#[tokio::test]
async fn a_cached_stream_is_replayed_as_the_same_stream() {
    let s = setup(POLICY).await;
    // A route of its own: the metrics of the route above count exactly.
    let path = "/cstream/v1/chat/completions";
    let body = r#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"stream me"}]}"#;
    // Another app than the test above's, whose token counts are exact.
    let (h1, first) = frames(&s, path, "client-g", body).await;
    assert_eq!(h1["x-microgateway-cache"], "miss");
    let (h2, replay) = frames(&s, path, "client-g", body).await;
    assert_eq!(h2["x-microgateway-cache"], "hit");
    assert_eq!(h2["content-type"], "text/event-stream");
    assert_eq!(sent(&s), 1, "a hit must not reach the provider");
    // The same events, still more than one frame, and the usage chunk the gateway
    // asked for stays hidden from a client that did not ask for it.
    assert_eq!(first.concat(), replay.concat());
    assert!(replay.len() > 1, "{replay:?}");
    assert!(replay.concat().contains("[DONE]"));
    assert!(!replay.concat().contains("\"choices\":[]"), "{replay:?}");
    // The hit is metered from the stored stream, as a hit.
    assert!(s.gw.proxy().flush_collectors(Duration::from_secs(5)).await);
    let collected = s.collected.lock().unwrap().clone();
    let hit = collected
        .iter()
        .find(|e| e.cache_hit)
        .expect("a hit record");
    assert_eq!(hit.usage.as_ref().unwrap().completion_tokens, 3);
}

#[tokio::test]
async fn the_front_door_caches_across_apps_under_global_scope_but_never_errors() {
    let s = setup(POLICY).await;
    let path = "/cfront/v1/chat/completions";
    let body =
        json!({"model": "claude-3-5-haiku", "messages": [{"role": "user", "content": "shared"}]})
            .to_string();
    let a = post_raw(&s, path, "client-a", &body, &[]).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.header("x-microgateway-cache"), Some("miss"));
    assert_eq!(a.json()["object"], "chat.completion");
    let f = post_raw(&s, path, "client-f", &body, &[]).await;
    assert_eq!(f.header("x-microgateway-cache"), Some("hit"));
    assert_eq!(f.json(), a.json());
    assert_eq!(sent(&s), 1);
    // A provider error is passed on and never stored.
    let overloaded =
        json!({"model": "claude-overloaded", "messages": [{"role": "user", "content": "x"}]})
            .to_string();
    for _ in 0..2 {
        let r = post_raw(&s, path, "client-a", &overloaded, &[]).await;
        assert_eq!(r.status, 529, "{}", r.text());
        assert_eq!(r.header("x-microgateway-cache"), Some("miss"));
    }
    assert_eq!(sent(&s), 3);
}
