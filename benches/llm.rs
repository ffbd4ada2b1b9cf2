//! Criterion benchmarks of LLM streaming through the gateway vs directly to a local fake
//! provider (OpenAI-style SSE, 20 events, no artificial gaps):
//!
//! - `first_event/{direct,gateway}`: request sent → first SSE event received.
//! - `stream_20_events/{direct,gateway}`: request sent → whole stream received.
//!
//! The gateway route has an LLM upstream (key injection, usage metering), API-key auth
//! and the `llm_policy` built-in, as in production.
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

const EVENTS: usize = 20;

async fn provider() -> SocketAddr {
    serve::http1(|req: hyper::Request<hyper::body::Incoming>| async move {
        let _ = req.into_body().collect().await;
        let frames = (0..EVENTS).map(|i| {
            let e = format!("data: {{\"model\":\"m\",\"choices\":[{{\"delta\":{{\"content\":\"token{i}\"}}}}]}}\n\n");
            Ok::<_, Infallible>(hyper::body::Frame::data(Bytes::from(e)))
        });
        let mut r = hyper::Response::new(StreamBody::new(futures_util::stream::iter(frames)));
        r.headers_mut().insert("content-type", "text/event-stream".parse().unwrap());
        r
    })
    .await
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), "sk-bench").unwrap();
    let (direct, gateway, client) = rt.block_on(async {
        let up = provider().await;
        let toml = format!(
            r#"
[server]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
data_dir = "{dir}"
[log]
level = "error"
[[upstreams]]
name = "llm"
targets = ["http://{up}"]
llm = {{ provider = "openai", api_key_file = "{dir}/key" }}
[[routes]]
name = "llm"
upstream = "llm"
[[plugins]]
name = "keys"
command = "builtin://api_key"
hook_type = "auth"
config = {{ keys = [{{ key = "client", identity = "bench", app_id = "bench" }}] }}
[[plugins]]
name = "policy"
command = "builtin://llm_policy"
hook_type = "post_auth"
config = {{ models = ["m"] }}
"#,
            dir = dir.path().display()
        );
        let gw = microgateway::start(microgateway::Config::from_toml(&toml).unwrap())
            .await
            .unwrap();
        let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
        connector.set_nodelay(true);
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build::<_, Full<Bytes>>(connector);
        (up, gw, client)
    });
    let body = r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let request = move |addr: SocketAddr| {
        hyper::Request::post(format!("http://{addr}/v1/chat/completions"))
            .header("authorization", "Bearer client")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap()
    };
    for (group, whole) in [("first_event", false), ("stream_20_events", true)] {
        let mut g = c.benchmark_group(group);
        for (label, addr) in [("direct", direct), ("gateway", gateway.proxy_addr)] {
            g.bench_function(label, |b| {
                b.to_async(&rt).iter(|| {
                    let client = client.clone();
                    async move {
                        let resp = client.request(request(addr)).await.unwrap();
                        let mut body = resp.into_body();
                        if whole {
                            black_box(body.collect().await.unwrap());
                        } else {
                            black_box(body.frame().await);
                        }
                    }
                })
            });
        }
        g.finish();
    }
    gateway.shutdown();
    rt.block_on(gateway.wait());
}

criterion_group!(benches, bench);
criterion_main!(benches);
