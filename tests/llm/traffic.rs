//! The gateway in front of the fake provider: key injection, usage metering for JSON and
//! streams (both providers), allowlists, budgets and OpenAI-style errors.

use crate::common::PluginEntry;
use crate::common::client::{Reply, full, request};
use crate::provider::{self, ANTHROPIC_KEY, OPENAI_KEY, Seen};
use microgateway::RunningGateway;
use microgateway::loader::Registry;
use microgateway::plugin::{CompletedExchange, Hook, HookFuture, Manifest, Plugin};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Records every completed exchange handed to data_collection.
struct Collector(Manifest, Arc<Mutex<Vec<CompletedExchange>>>);

impl Plugin for Collector {
    fn manifest(&self) -> &Manifest {
        &self.0
    }
    fn collect<'a>(&'a self, record: &'a CompletedExchange) -> HookFuture<'a, ()> {
        self.1.lock().unwrap().push(record.clone());
        HookFuture::ok(())
    }
}

pub struct Setup {
    pub gw: RunningGateway,
    pub seen: Arc<Seen>,
    pub collected: Arc<Mutex<Vec<CompletedExchange>>>,
    _dir: tempfile::TempDir,
}

pub async fn setup(policy: &str) -> Setup {
    setup_with(policy, true).await
}

pub async fn setup_with(policy: &str, collector: bool) -> Setup {
    let (addr, seen) = provider::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("openai.key"), format!("{OPENAI_KEY}\n")).unwrap();
    std::fs::write(dir.path().join("anthropic.key"), ANTHROPIC_KEY).unwrap();
    let mut plugins = PluginEntry::new("client-keys", "builtin://api_key", "auth")
        .extra(r#"config = { keys = [{ key = "client-a", identity = "alice", app_id = "app-a" }, { key = "client-b", identity = "bob", app_id = "app-b" }, { key = "client-c", identity = "carol", app_id = "app-c" }, { key = "client-d", identity = "dave", app_id = "app-metrics" }, { key = "client-e", identity = "erin", app_id = "app-cost" }, { key = "client-f", identity = "frank", app_id = "app-cache" }, { key = "client-g", identity = "grace", app_id = "app-cache-2" }] }"#)
        .toml()
        + &PluginEntry::new("policy", "builtin://llm_policy", "post_auth")
            .extra(&format!("config = {policy}"))
            .toml();
    if collector {
        plugins += &PluginEntry::new("collector", "builtin://collector", "data_collection").toml();
    }
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
data_dir = "{dir}/data"
[log]
level = "warn"
[[upstreams]]
name = "openai"
targets = ["http://{addr}"]
llm = {{ provider = "openai", api_key_file = "{dir}/openai.key" }}
[[upstreams]]
name = "anthropic"
targets = ["http://{addr}"]
llm = {{ provider = "anthropic", api_key_file = "{dir}/anthropic.key" }}
[[routes]]
name = "anthropic"
path_prefix = "/v1/messages"
upstream = "anthropic"
[[routes]]
name = "front"
path_prefix = "/front"
upstream = "anthropic"
llm = {{ models = ["claude-3-5-haiku"], model_map = {{ "fast" = "anthropic/claude-3-5-haiku" }} }}
[[routes]]
name = "cached"
path_prefix = "/cached"
upstream = "openai"
llm = {{ cache = {{ ttl = "1m" }} }}
[[routes]]
name = "cached-stream"
path_prefix = "/cstream"
upstream = "openai"
llm = {{ cache = {{}} }}
[[routes]]
name = "cached-front"
path_prefix = "/cfront"
upstream = "anthropic"
llm = {{ cache = {{ scope = "global" }} }}
[[routes]]
name = "openai"
path_prefix = "/v1"
upstream = "openai"
{plugins}"#,
        dir = dir.path().display(),
    );
    let collected = Arc::new(Mutex::new(Vec::new()));
    let mut registry = Registry::with_builtins();
    let sink = collected.clone();
    registry.register("collector", move |_| {
        let manifest = Manifest {
            name: "collector".into(),
            hooks: vec![Hook::Collect],
            ..Manifest::default()
        };
        Ok(Arc::new(Collector(manifest, sink.clone())))
    });
    let gw = microgateway::start_with(microgateway::Config::from_toml(&toml).unwrap(), registry)
        .await
        .unwrap();
    Setup {
        gw,
        seen,
        collected,
        _dir: dir,
    }
}

pub const POLICY: &str = r#"{ models = ["gpt-4o-mini", "text-embedding-3-small", "claude-3-5-haiku", "claude-overloaded", "fast"], max_request_tokens = 1000, apps = { "app-b" = { requests_per_window = 2 }, "app-c" = { tokens_per_window = 10 }, "app-cost" = { cost_per_window = 0.000004 } }, window = "1h" }"#;

pub async fn post(s: &Setup, path: &str, key: &str, body: serde_json::Value) -> Reply {
    let auth = format!("Bearer {key}");
    request(
        s.gw.proxy_addr,
        "POST",
        path,
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        full(body.to_string()),
    )
    .await
}

fn chat(model: &str, stream: bool) -> serde_json::Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "Say hello"}]})
}

async fn metrics(s: &Setup) -> String {
    crate::common::get(s.gw.admin_addr, "/metrics").await.text()
}

#[tokio::test]
async fn non_streaming_chat_injects_the_provider_key_and_meters_tokens() {
    let s = setup(POLICY).await;
    // Metrics are process-wide; this test's app is used by no other test.
    let reply = post(
        &s,
        "/v1/chat/completions",
        "client-d",
        chat("gpt-4o-mini", false),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.json()["choices"][0]["message"]["content"],
        "Hello there"
    );
    let (headers, _) = s.seen.0.lock().unwrap()[0].clone();
    assert_eq!(
        headers["authorization"],
        format!("Bearer {OPENAI_KEY}").as_str()
    );
    assert!(
        !format!("{headers:?}").contains("client-d"),
        "client key leaked upstream"
    );
    assert!(s.gw.proxy().flush_collectors(Duration::from_secs(5)).await);
    let collected = s.collected.lock().unwrap().clone();
    let usage = collected[0]
        .usage
        .clone()
        .expect("usage handed to data collection");
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.model.as_str()
        ),
        (12, 5, "gpt-4o-mini")
    );
    // 12 prompt and 5 completion tokens of gpt-4o-mini at the shipped list price,
    // $0.15 and $0.60 per million tokens.
    let expected = (12.0 * 0.15 + 5.0 * 0.6) / 1e6;
    let cost = collected[0]
        .cost_usd
        .expect("cost handed to data collection");
    assert!((cost - expected).abs() < 1e-12, "{cost}");
    let m = metrics(&s).await;
    let line = m
        .lines()
        .find(|l| l.starts_with(r#"microgateway_llm_cost_usd_total{provider="openai",model="gpt-4o-mini",app="app-metrics"}"#))
        .unwrap_or_else(|| panic!("no cost series: {m}"));
    let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((value - expected).abs() < 1e-12, "{line}");
    assert!(m.contains(r#"microgateway_llm_tokens_total{provider="openai",model="gpt-4o-mini",app="app-metrics",kind="prompt"} 12"#), "{m}");
    assert!(m.contains(r#"microgateway_llm_tokens_total{provider="openai",model="gpt-4o-mini",app="app-metrics",kind="completion"} 5"#));
}

#[tokio::test]
async fn streaming_chat_arrives_event_by_event_with_usage() {
    let s = setup(POLICY).await;
    let auth = "Bearer client-a".to_string();
    let req = http::Request::post(format!("http://{}/v1/chat/completions", s.gw.proxy_addr))
        .header("authorization", auth)
        .header("content-type", "application/json")
        .body(full(chat("gpt-4o-mini", true).to_string()))
        .unwrap();
    let start = Instant::now();
    let resp = crate::common::client::h1().request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut arrivals = Vec::new();
    let mut text = String::new();
    while let Some(frame) = http_body_util::BodyExt::frame(&mut body).await {
        if let Ok(data) = frame.unwrap().into_data() {
            arrivals.push(start.elapsed());
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
    assert!(
        text.contains("\"Hel\"") && text.contains("[DONE]"),
        "{text}"
    );
    // The usage chunk the gateway asked for is metered, but the client did not ask.
    assert!(!text.contains("\"choices\":[]"), "{text}");
    // The first event reached the client well before the stream ended.
    let (first, last) = (arrivals[0], *arrivals.last().unwrap());
    assert!(last - first >= provider::GAP * 3, "{arrivals:?}");
    // The gateway asked the provider to report usage in the stream.
    let (_, sent) = s.seen.0.lock().unwrap()[0].clone();
    assert_eq!(sent["stream_options"]["include_usage"], true);
    assert!(s.gw.proxy().flush_collectors(Duration::from_secs(5)).await);
    let usage = s.collected.lock().unwrap()[0].usage.clone().unwrap();
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (12, 3));
    // GenAI histograms: the first token comes at once, the next ones GAP apart.
    let m = metrics(&s).await;
    let value = |name: &str| -> f64 {
        m.lines()
            .find(|l| {
                l.starts_with(&format!("{name}{{"))
                    && l.contains(r#"gen_ai_request_model="gpt-4o-mini""#)
            })
            .unwrap_or_else(|| panic!("no {name}: {m}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let ttft = value("gen_ai_server_time_to_first_token_seconds_sum")
        / value("gen_ai_server_time_to_first_token_seconds_count");
    assert!(
        ttft < provider::GAP.as_secs_f64(),
        "time to first token {ttft}"
    );
    let tpot = value("gen_ai_server_time_per_output_token_seconds_sum")
        / value("gen_ai_server_time_per_output_token_seconds_count");
    assert!(
        tpot >= provider::GAP.as_secs_f64(),
        "time per output token {tpot}"
    );
    assert!(value("gen_ai_client_token_usage_count") >= 1.0);
}

#[tokio::test]
async fn anthropic_messages_json_and_stream_are_metered() {
    let s = setup(POLICY).await;
    let body = |stream| json!({"model": "claude-3-5-haiku", "max_tokens": 32, "stream": stream, "messages": [{"role": "user", "content": "hi"}]});
    let plain = post(&s, "/v1/messages", "client-a", body(false)).await;
    assert_eq!(plain.status, 200, "{}", plain.text());
    let streamed = post(&s, "/v1/messages", "client-a", body(true)).await;
    assert!(streamed.text().contains("message_stop"));
    for (headers, _) in s.seen.0.lock().unwrap().iter() {
        assert_eq!(headers["x-api-key"], ANTHROPIC_KEY);
        assert!(
            headers.get("authorization").is_none(),
            "client credentials forwarded"
        );
    }
    assert!(s.gw.proxy().flush_collectors(Duration::from_secs(5)).await);
    let usages: Vec<(u64, u64)> = s
        .collected
        .lock()
        .unwrap()
        .iter()
        .map(|c| {
            c.usage
                .clone()
                .map(|u| (u.prompt_tokens, u.completion_tokens))
                .unwrap()
        })
        .collect();
    assert_eq!(usages, vec![(21, 4), (21, 7)]);
}

#[tokio::test]
async fn embeddings_are_metered() {
    let s = setup(POLICY).await;
    let reply = post(
        &s,
        "/v1/embeddings",
        "client-a",
        json!({"model": "text-embedding-3-small", "input": "hello"}),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert!(s.gw.proxy().flush_collectors(Duration::from_secs(5)).await);
    assert_eq!(
        s.collected.lock().unwrap()[0]
            .usage
            .clone()
            .unwrap()
            .prompt_tokens,
        8
    );
}

#[tokio::test]
async fn policy_errors_are_openai_shaped() {
    let s = setup(POLICY).await;
    let denied = post(
        &s,
        "/v1/chat/completions",
        "client-a",
        chat("gpt-5-ultra", false),
    )
    .await;
    assert_eq!(denied.status, 403);
    let e = &denied.json()["error"];
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str(), e["param"].as_str()),
        (
            Some("permission_error"),
            Some("model_not_allowed"),
            Some("model")
        )
    );
    let huge = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x".repeat(8000)}]});
    let too_big = post(&s, "/v1/chat/completions", "client-a", huge).await;
    assert_eq!(too_big.status, 400);
    assert_eq!(too_big.json()["error"]["code"], "request_too_large");
    let unauth = post(
        &s,
        "/v1/chat/completions",
        "not-a-client",
        chat("gpt-4o-mini", false),
    )
    .await;
    assert_eq!(unauth.status, 401);
    assert!(unauth.json()["error"]["message"].is_string());
    assert_eq!(
        s.seen.0.lock().unwrap().len(),
        0,
        "refused requests reached the provider"
    );
}

#[tokio::test]
async fn request_and_token_budgets_answer_429() {
    let s = setup(POLICY).await;
    for _ in 0..2 {
        assert_eq!(
            post(
                &s,
                "/v1/chat/completions",
                "client-b",
                chat("gpt-4o-mini", false)
            )
            .await
            .status,
            200
        );
    }
    let limited = post(
        &s,
        "/v1/chat/completions",
        "client-b",
        chat("gpt-4o-mini", false),
    )
    .await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.json()["error"]["code"], "requests_budget_exceeded");
    assert!(limited.header("retry-after").is_some());
    // app-c may use 10 tokens per window: the first call uses 17, the next is refused.
    assert_eq!(
        post(
            &s,
            "/v1/chat/completions",
            "client-c",
            chat("gpt-4o-mini", false)
        )
        .await
        .status,
        200
    );
    assert!(s.gw.proxy().flush_collectors(Duration::from_secs(5)).await);
    let over = post(
        &s,
        "/v1/chat/completions",
        "client-c",
        chat("gpt-4o-mini", false),
    )
    .await;
    assert_eq!(over.status, 429);
    assert_eq!(over.json()["error"]["code"], "token_budget_exceeded");
    // app-cost may spend $0.000004 per window: the first call costs $0.0000048.
    let first = post(
        &s,
        "/v1/chat/completions",
        "client-e",
        chat("gpt-4o-mini", false),
    )
    .await;
    assert_eq!(first.status, 200);
    assert!(s.gw.proxy().flush_collectors(Duration::from_secs(5)).await);
    let broke = post(
        &s,
        "/v1/chat/completions",
        "client-e",
        chat("gpt-4o-mini", false),
    )
    .await;
    assert_eq!(broke.status, 429);
    assert_eq!(broke.json()["error"]["code"], "cost_budget_exceeded");
    // Other apps are unaffected.
    assert_eq!(
        post(
            &s,
            "/v1/chat/completions",
            "client-a",
            chat("gpt-4o-mini", false)
        )
        .await
        .status,
        200
    );
}

#[tokio::test]
async fn usage_is_metered_without_any_collection_plugin() {
    let s = setup_with(POLICY, false).await;
    // client-d / app-metrics is used by one other test; this one uses the embeddings model.
    let reply = post(
        &s,
        "/v1/embeddings",
        "client-d",
        json!({"model": "text-embedding-3-small", "input": "x"}),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert!(s.gw.proxy().flush_collectors(Duration::from_secs(5)).await);
    let m = metrics(&s).await;
    assert!(
        m.contains(r#"microgateway_llm_tokens_total{provider="openai",model="text-embedding-3-small",app="app-metrics",kind="prompt"} 8"#),
        "{m}"
    );
}
