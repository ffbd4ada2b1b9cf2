//! Criterion benchmarks of LLM traffic through the gateway against a local fake provider
//! (OpenAI- and Anthropic-style SSE of 20 events, JSON answers with usage, no gaps).
//!
//! Wall time of a whole exchange, provider direct against the gateway:
//! - `first_event/{direct,gateway}`: request sent → first SSE event received.
//! - `stream_20_events/{direct,gateway,translated,cache_hit}`: request sent → whole
//!   stream received; `translated` is an OpenAI request on the front door to an
//!   Anthropic stream, `cache_hit` a stream replayed from the response cache.
//!
//! Gateway CPU per exchange (`gateway_cpu/*`): the run time of every thread of this
//! process except the client's (this thread) and the provider's (named `provider`),
//! from `/proc/self/task/*/schedstat`, so the number is what the gateway spent:
//! - `stream/{openai,translated,cache_hit}`: the added CPU of translation per event is
//!   (translated − openai) / 20; the goal for a cached 20-event stream is < 50 µs.
//! - `json/{plain,llm,llm_policy}`: a plain route, an LLM route (key injection, the
//!   cost header, usage metering) and the same with `llm_policy`; the goal for the
//!   last two over the plain route is ≤ 10 µs.
//!
//!
//! The summary at the end measures each case twice, over a fixed number of exchanges:
//! one at a time, where each exchange also pays for waking the gateway's idle threads
//! (most of it kernel time), and 16 in flight, where the threads stay busy as under load.
//!
//! In process (`cost/*`, `translate/*`): reading usage and pricing a JSON answer, and
//! translating one Anthropic event. A summary with PASS/MISS is printed at the end.
//! The routes of the production-like cases have API-key auth and `llm_policy`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

#[path = "../tests/common/serve.rs"]
mod serve;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt, Full, StreamBody};
use std::convert::Infallible;
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

const EVENTS: usize = 20;

fn openai_events() -> Vec<Bytes> {
    let mut events: Vec<Bytes> = (0..EVENTS - 2)
        .map(|i| {
            Bytes::from(format!(
                "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"token{i}\"}}}}]}}\n\n"
            ))
        })
        .collect();
    events.push(Bytes::from_static(b"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":18,\"total_tokens\":27}}\n\n"));
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

fn anthropic_events() -> Vec<Bytes> {
    let mut events = vec![Bytes::from_static(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-3-5-haiku\",\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\n")];
    for i in 0..EVENTS - 3 {
        events.push(Bytes::from(format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"token{i}\"}}}}\n\n")));
    }
    events.push(Bytes::from_static(b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":17}}\n\n"));
    events.push(Bytes::from_static(
        b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    ));
    events
}

const JSON_ANSWER: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}"#;

type ProviderBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// The fake provider: Anthropic SSE on `/v1/messages`, else OpenAI SSE when the request
/// streams and a JSON answer when it does not.
async fn provider() -> SocketAddr {
    serve::http1(|req: hyper::Request<hyper::body::Incoming>| async move {
        let anthropic = req.uri().path() == "/v1/messages";
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let stream = memchr_stream(&body);
        let mut r: hyper::Response<ProviderBody> = if stream {
            let events = if anthropic {
                anthropic_events()
            } else {
                openai_events()
            };
            let frames = events.into_iter().map(|e| Ok(hyper::body::Frame::data(e)));
            let mut r =
                hyper::Response::new(StreamBody::new(futures_util::stream::iter(frames)).boxed());
            r.headers_mut()
                .insert("content-type", "text/event-stream".parse().unwrap());
            r
        } else {
            let mut r =
                hyper::Response::new(Full::new(Bytes::from_static(JSON_ANSWER.as_bytes())).boxed());
            r.headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            r
        };
        r.headers_mut()
            .insert("x-provider", "fake".parse().unwrap());
        r
    })
    .await
}

fn memchr_stream(body: &[u8]) -> bool {
    body.windows(13).any(|w| w == b"\"stream\":true")
}

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"
# Longer than any pause between benchmarks, so the client never reuses a connection
# the gateway is closing.
idle_timeout = "1h"
[admin]
listen = "127.0.0.1:0"
data_dir = "{dir}"
[log]
level = "error"
[[upstreams]]
name = "plain"
targets = ["http://{up}"]
[[upstreams]]
name = "llm"
targets = ["http://{up}"]
llm = { provider = "openai", api_key_file = "{dir}/key" }
[[upstreams]]
name = "anthropic"
targets = ["http://{up}"]
llm = { provider = "anthropic", api_key_file = "{dir}/key" }
[[routes]]
name = "plain"
path_prefix = "/plain"
upstream = "plain"
[[routes]]
name = "bare-llm"
path_prefix = "/bare"
upstream = "llm"
[[routes]]
name = "policy-only"
path_prefix = "/policy"
upstream = "llm"
[[routes]]
name = "llm"
path_prefix = "/v1"
upstream = "llm"
[[routes]]
name = "front"
path_prefix = "/front"
upstream = "anthropic"
[[routes]]
name = "cached"
path_prefix = "/cached"
upstream = "llm"
llm = { cache = { ttl = "1h" } }
[[plugins]]
name = "keys"
command = "builtin://api_key"
hook_type = "auth"
routes = ["llm", "front", "cached"]
config = { keys = [{ key = "client", identity = "bench", app_id = "bench" }] }
[[plugins]]
name = "policy"
command = "builtin://llm_policy"
hook_type = "post_auth"
routes = ["llm", "front", "cached", "policy-only"]
config = { models = ["m", "gpt-4o-mini", "claude-3-5-haiku"] }
"#;

/// Nanoseconds run by every thread of this process but the current one and the
/// provider's threads.
fn gateway_cpu_ns() -> u64 {
    let me = std::fs::read_link("/proc/thread-self").unwrap();
    let me = me.file_name().unwrap().to_owned();
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        if task.file_name() == me {
            continue;
        }
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.starts_with("provider") {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        total += stat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

fn client() -> Client {
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_nodelay(true);
    // Idle connections are dropped well before the gateway closes them (it closes a
    // keep-alive connection that waits longer than `server.header_read_timeout` for
    // the next request), so a POST never meets a connection that is going away.
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(Duration::from_millis(500))
        .build::<_, Full<Bytes>>(connector)
}

const STREAM_BODY: &str =
    r#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
const FRONT_BODY: &str =
    r#"{"model":"claude-3-5-haiku","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
const JSON_BODY: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;

/// One exchange: POST `body` to `addr` + `path`, read the whole answer.
async fn exchange(client: &Client, addr: SocketAddr, path: &str, body: &'static str) {
    let req = hyper::Request::post(format!("http://{addr}{path}"))
        .header("authorization", "Bearer client")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    black_box(resp.into_body().collect().await.unwrap());
}

/// Gateway CPU per exchange over `n` exchanges of one case, `inflight` at a time (1:
/// sequential, so every exchange also pays for waking the gateway's threads; more: the
/// threads stay busy, as under load), after a warm-up.
async fn cpu_per_exchange(
    client: &Client,
    addr: SocketAddr,
    (path, body): (&str, &'static str),
    n: u32,
    inflight: u32,
) -> f64 {
    for _ in 0..20 {
        exchange(client, addr, path, body).await;
    }
    let before = gateway_cpu_ns();
    let lanes = (0..inflight).map(|_| async {
        for _ in 0..n / inflight {
            exchange(client, addr, path, body).await;
        }
    });
    futures_util::future::join_all(lanes).await;
    let done = n / inflight * inflight;
    (gateway_cpu_ns() - before) as f64 / 1000.0 / f64::from(done)
}

/// Exchanges in flight for the loaded figures of the summary.
const INFLIGHT: u32 = 16;

/// The cases measured for gateway CPU, as (name, path, body).
const CPU_CASES: [(&str, &str, &str); 6] = [
    ("stream/openai", "/v1/chat/completions", STREAM_BODY),
    (
        "stream/translated",
        "/front/v1/chat/completions",
        FRONT_BODY,
    ),
    (
        "stream/cache_hit",
        "/cached/v1/chat/completions",
        STREAM_BODY,
    ),
    ("json/plain", "/plain/v1/chat/completions", JSON_BODY),
    ("json/llm", "/bare/v1/chat/completions", JSON_BODY),
    ("json/llm_policy", "/policy/v1/chat/completions", JSON_BODY),
];

fn bench(c: &mut Criterion) {
    // The gateway's runtime; the provider has its own, with named threads.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("gateway")
        .enable_all()
        .build()
        .unwrap();
    let provider_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("provider")
        .enable_all()
        .build()
        .unwrap();
    // The client runs on this thread only.
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), "sk-bench").unwrap();
    let direct = provider_rt.block_on(provider());
    let toml = CONFIG
        .replace("{dir}", &dir.path().display().to_string())
        .replace("{up}", &direct.to_string());
    let gateway = rt.block_on(async {
        microgateway::start(microgateway::Config::from_toml(&toml).unwrap())
            .await
            .unwrap()
    });
    let addr = gateway.proxy_addr;
    let client = client_rt.block_on(async { client() });
    // The first request of the cached route stores the answer.
    client_rt.block_on(exchange(
        &client,
        addr,
        "/cached/v1/chat/completions",
        STREAM_BODY,
    ));

    for (group, whole) in [("first_event", false), ("stream_20_events", true)] {
        let mut g = c.benchmark_group(group);
        let mut cases = vec![
            ("direct", direct, "/v1/chat/completions", STREAM_BODY),
            ("gateway", addr, "/v1/chat/completions", STREAM_BODY),
        ];
        if whole {
            cases.push(("translated", addr, "/front/v1/chat/completions", FRONT_BODY));
            cases.push((
                "cache_hit",
                addr,
                "/cached/v1/chat/completions",
                STREAM_BODY,
            ));
        }
        for (label, to, path, body) in cases {
            // Timed to the first frame (or the end); the rest is always read, so every
            // connection goes back to the pool whole.
            g.bench_function(label, |b| {
                b.iter_custom(|iters| {
                    client_rt.block_on(async {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let req = hyper::Request::post(format!("http://{to}{path}"))
                                .header("authorization", "Bearer client")
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from_static(body.as_bytes())))
                                .unwrap();
                            let start = std::time::Instant::now();
                            let resp = client.request(req).await.unwrap();
                            let mut body = resp.into_body();
                            black_box(body.frame().await);
                            if !whole {
                                total += start.elapsed();
                            }
                            black_box(body.collect().await.unwrap());
                            if whole {
                                total += start.elapsed();
                            }
                        }
                        total
                    })
                })
            });
        }
        g.finish();
    }

    let mut g = c.benchmark_group("gateway_cpu");
    for (name, path, body) in CPU_CASES {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                client_rt.block_on(async {
                    let before = gateway_cpu_ns();
                    for _ in 0..iters {
                        exchange(&client, addr, path, body).await;
                    }
                    Duration::from_nanos(gateway_cpu_ns() - before)
                })
            })
        });
    }
    g.finish();

    in_process(c);

    // The summary: a long fixed run of each case, then the goals. `MG_BENCH_CASES`
    // (names, comma-separated) and `MG_BENCH_N` narrow it, e.g. to count instructions
    // of one case under callgrind with `--bench none`.
    let n: u32 = std::env::var("MG_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let only = std::env::var("MG_BENCH_CASES").ok();
    let chosen = |name: &str| {
        only.as_ref()
            .is_none_or(|o| o.split(',').any(|c| c == name))
    };
    let mut per = std::collections::HashMap::new();
    let mut loaded = std::collections::HashMap::new();
    println!(
        "\ngateway CPU per exchange ({n} keep-alive exchanges each; sequential, and {INFLIGHT} in flight):"
    );
    for (name, path, body) in CPU_CASES.into_iter().filter(|(n, _, _)| chosen(n)) {
        let seq = client_rt.block_on(cpu_per_exchange(&client, addr, (path, body), n, 1));
        let busy = client_rt.block_on(cpu_per_exchange(&client, addr, (path, body), n, INFLIGHT));
        println!("  {name:<20} {seq:>8.1} µs {busy:>8.1} µs");
        per.insert(name, seq);
        loaded.insert(name, busy);
    }
    if only.is_some() {
        gateway.shutdown();
        rt.block_on(gateway.wait());
        return;
    }
    let mark = |ok: bool| if ok { "PASS" } else { "MISS" };
    let per_event = (per["stream/translated"] - per["stream/openai"]) / EVENTS as f64;
    println!("translation, added per event: {per_event:.2} µs");
    for (how, per) in [("sequential", &per), ("16 in flight", &loaded)] {
        let hit = per["stream/cache_hit"];
        println!(
            "{how}: cache hit of a {EVENTS}-event stream: {hit:.1} µs (goal < 50 µs) {}",
            mark(hit < 50.0)
        );
        let metering = per["json/llm"] - per["json/plain"];
        let with_policy = per["json/llm_policy"] - per["json/plain"];
        println!(
            "{how}: LLM route over plain: {metering:.1} µs; with llm_policy {with_policy:.1} µs (goal <= 10 µs) {}",
            mark(with_policy <= 10.0)
        );
    }
    gateway.shutdown();
    rt.block_on(gateway.wait());
}

/// The pieces of the LLM path in process.
fn in_process(c: &mut Criterion) {
    let mut g = c.benchmark_group("cost");
    g.bench_function("usage_and_price_of_a_json_answer", |b| {
        b.iter(|| {
            let mut meter = microgateway::llm::usage::Meter::default();
            meter.json(black_box(JSON_ANSWER.as_bytes()));
            let usage = meter.usage().unwrap();
            black_box(microgateway::llm::price::current().cost(&usage))
        })
    });
    g.finish();
    let mut g = c.benchmark_group("cache");
    let store =
        microgateway::llm::cache::Store::new(&microgateway::config::CacheConfig::default(), None)
            .unwrap();
    let route_cache = microgateway::config::RouteCacheConfig {
        ttl: Duration::from_secs(3600),
        scope: microgateway::config::CacheScope::Global,
        tool_results: false,
    };
    let headers = http::HeaderMap::new();
    let key = store
        .lookup(0, &route_cache, &headers, STREAM_BODY.as_bytes(), None)
        .store_key()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let frames = openai_events()
            .into_iter()
            .map(|e| Ok::<_, Infallible>(hyper::body::Frame::data(e)));
        let body = microgateway::body::boxed(StreamBody::new(futures_util::stream::iter(frames)));
        let stored = store.capture(key, route_cache.ttl, hyper::Response::new(body));
        stored.into_body().collect().await.unwrap();
    });
    // The cache's own work on a hit: the key of the request, the lookup, and the 20
    // events handed out again.
    g.bench_function("hit_of_a_20_event_stream", |b| {
        b.iter(|| {
            let lookup = store.lookup(
                0,
                &route_cache,
                &headers,
                black_box(STREAM_BODY.as_bytes()),
                None,
            );
            let microgateway::llm::cache::Lookup::Hit(entry) = lookup else {
                panic!("not stored");
            };
            let body = entry.response().into_body();
            rt.block_on(async { black_box(body.collect().await.unwrap()) })
        })
    });
    g.finish();
    let mut g = c.benchmark_group("translate");
    let events = anthropic_events();
    g.bench_function("one_anthropic_event", |b| {
        let mut out = Vec::with_capacity(4);
        b.iter(|| {
            let mut stream = microgateway::llm::translate::Stream::new("gpt-x", true);
            stream.event(black_box(&events[1]), &mut out);
            out.clear();
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
