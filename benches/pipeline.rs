//! Criterion benchmarks of the hook pipeline, with the Prometheus recorder installed.
//!
//! - `request_stages/{0,1,5}`: one request through `pre_auth`/`auth`/`post_auth` with
//!   0, 1 or 5 in-process hooks (no network).
//! - `one_hook/{in_process,api_key,file_unix_socket}`: one header hook in-process, the
//!   `api_key` built-in authenticating a bearer key, and the `file://` header-enricher
//!   example over its unix socket.
//! - `snapshot_load`: `ArcSwap::load_full` of the plugin set while two reader threads
//!   load and one writer stores a new set continuously.
//! - `end_to_end/{bare,hooks5}`: a full HTTP/1.1 request from a pooled client through
//!   the gateway to a local upstream, on a route without plugins and on one with five
//!   built-in hooks (headers ×3, ip_filter, request_guard).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

#[path = "../tests/common/serve.rs"]
mod serve;

use arc_swap::ArcSwap;
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt, Empty, Full};
use microgateway::config::{PluginConfig, RouteConfig};
use microgateway::loader::{PluginSet, Registry};
use microgateway::pipeline::ctx::{ConnInfo, RequestCtx};
use microgateway::pipeline::request;
use microgateway::plugin::{Decision, Hook, HookFuture, HookType, Manifest, Plugin, RequestView};
use microgateway::routing::Route;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::Instant;

struct Pass(Manifest);

impl Plugin for Pass {
    fn manifest(&self) -> &Manifest {
        &self.0
    }
    fn on_request<'a>(&'a self, _: HookType, _: &'a RequestView<'a>) -> HookFuture<'a, Decision> {
        HookFuture::ok(Decision::pass())
    }
}

fn registry() -> Registry {
    let mut r = Registry::with_builtins();
    r.register("pass", |_| {
        Ok(Arc::new(Pass(Manifest {
            name: "pass".into(),
            hooks: vec![Hook::PreAuth, Hook::PostAuth],
            ..Manifest::default()
        })))
    });
    r
}

fn plugin(name: &str, command: &str, hook: HookType, config: serde_json::Value) -> PluginConfig {
    serde_json::from_value(serde_json::json!({
        "name": name, "command": command, "hook_type": hook, "config": config,
    }))
    .unwrap()
}

fn pass_plugins(n: usize) -> Vec<PluginConfig> {
    (0..n)
        .map(|i| {
            let stage = if i % 2 == 0 {
                HookType::PreAuth
            } else {
                HookType::PostAuth
            };
            plugin(
                &format!("p{i}"),
                "builtin://pass",
                stage,
                serde_json::Value::Null,
            )
        })
        .collect()
}

/// The route `r` the request-stage benchmarks run on.
fn route() -> Route {
    let config: RouteConfig = serde_json::from_value(serde_json::json!({
        "name": "r", "path_prefix": "/", "upstream": "up",
    }))
    .unwrap();
    Route::new(&config, 0, 0)
}

/// A fresh context on `route`, as `Proxy::handle` and routing leave it. The access-log
/// path and the host stay empty, so the loop allocates no more than the stages do.
fn ctx(route: &Route, start: Instant) -> RequestCtx<'_> {
    let conn = ConnInfo {
        remote: "127.0.0.1:1".parse().unwrap(),
        tls: false,
    };
    let id = http::HeaderValue::from_static("id");
    let mut ctx = RequestCtx::new(start, conn, id, http::Method::GET, String::new());
    ctx.route = Some(route);
    ctx
}

/// Installs the Prometheus recorder and its upkeep, so hook metrics record as they do
/// in the gateway: without a recorder every metric handle is a no-op.
fn recorder() {
    microgateway::metrics::install().expect("the recorder installs");
    microgateway::metrics::spawn_upkeep();
}

fn request_stages(c: &mut Criterion) {
    recorder();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let routes = vec!["r".to_string()];
    let mut group = c.benchmark_group("request_stages");
    for n in [0usize, 1, 5] {
        let set = rt
            .block_on(PluginSet::build(&pass_plugins(n), &routes, &registry()))
            .unwrap();
        let (route, start) = (route(), Instant::now());
        let template = http::Request::builder()
            .uri("/v1/chat")
            .header("authorization", "Bearer x")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        group.bench_function(n.to_string(), |b| {
            b.to_async(&rt).iter(|| {
                let mut req = http::Request::from_parts(template.clone(), None);
                let mut ctx = ctx(&route, start);
                let plan = set.plan(0);
                async move {
                    let out = request::run(plan, &mut req, &mut ctx).await;
                    black_box(out.is_ok())
                }
            })
        });
    }
    group.finish();
}

/// One hook: in-process `headers` built-in vs the `file://` header-enricher example
/// (a subprocess answering over a unix socket).
fn remote_hook(c: &mut Criterion) {
    recorder();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let routes = vec!["r".to_string()];
    let enricher = format!("file://{}", env!("CARGO_BIN_EXE_mg-plugin-header-enricher"));
    let entries = [
        (
            "in_process",
            plugin(
                "h",
                "builtin://headers",
                HookType::PreAuth,
                serde_json::json!({"set": {"x-a": "1"}}),
            ),
        ),
        (
            "api_key",
            plugin(
                "k",
                "builtin://api_key",
                HookType::Auth,
                serde_json::json!({"keys": [{"key": "k1", "identity": "alice", "app_id": "a"}]}),
            ),
        ),
        (
            "file_unix_socket",
            plugin(
                "h",
                &enricher,
                HookType::PreAuth,
                serde_json::json!({"headers": {"x-a": "1"}}),
            ),
        ),
    ];
    let mut group = c.benchmark_group("one_hook");
    for (label, entry) in entries {
        let set = rt
            .block_on(PluginSet::build(&[entry], &routes, &registry()))
            .unwrap();
        let (route, start) = (route(), Instant::now());
        // Only the api_key run presents a key, so the others clone an empty header map
        // as they always did.
        let mut template = http::Request::builder().uri("/v1/chat");
        if label == "api_key" {
            template = template.header("authorization", "Bearer k1");
        }
        let template = template.body(()).unwrap().into_parts().0;
        group.bench_function(label, |b| {
            b.to_async(&rt).iter(|| {
                let mut req = http::Request::from_parts(template.clone(), None);
                let mut ctx = ctx(&route, start);
                let plan = set.plan(0);
                async move {
                    let out = request::run(plan, &mut req, &mut ctx).await;
                    assert!(matches!(out, Ok(None)));
                    black_box((req.headers().len(), ctx.hook_state.auth.is_some()))
                }
            })
        });
        rt.block_on(set.shutdown());
    }
    group.finish();
}

fn snapshot_load(c: &mut Criterion) {
    let swap = Arc::new(ArcSwap::from_pointee(PluginSet::empty()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for _ in 0..2 {
        let (swap, stop) = (swap.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                black_box(swap.load_full());
            }
        }));
    }
    {
        let (swap, stop) = (swap.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                swap.store(Arc::new(PluginSet::empty()));
                std::thread::sleep(Duration::from_micros(50));
            }
        }));
    }
    c.bench_function("snapshot_load", |b| b.iter(|| black_box(swap.load_full())));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
}

async fn upstream() -> std::net::SocketAddr {
    serve::http1(|_req| async { hyper::Response::new(Full::new(Bytes::from_static(b"ok"))) }).await
}

fn end_to_end(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (gateway, client) = rt.block_on(async {
        let up = upstream().await;
        let toml = format!(
            r#"
            [server]
            listen = "127.0.0.1:0"
            [admin]
            listen = "127.0.0.1:0"
            [log]
            level = "error"
            [[upstreams]]
            name = "up"
            targets = ["http://{up}"]
            [[routes]]
            name = "bare"
            path_prefix = "/bare"
            upstream = "up"
            [[routes]]
            name = "hooked"
            path_prefix = "/hooked"
            upstream = "up"
            [[plugins]]
            name = "ip"
            command = "builtin://ip_filter"
            hook_type = "pre_auth"
            routes = ["hooked"]
            config = {{ allow = ["127.0.0.0/8", "::1/128"] }}
            [[plugins]]
            name = "guard"
            command = "builtin://request_guard"
            hook_type = "pre_auth"
            routes = ["hooked"]
            config = {{ methods = ["GET", "POST"] }}
            [[plugins]]
            name = "h1"
            command = "builtin://headers"
            hook_type = "post_auth"
            routes = ["hooked"]
            config = {{ set = {{ "x-a" = "1" }} }}
            [[plugins]]
            name = "h2"
            command = "builtin://headers"
            hook_type = "post_auth"
            routes = ["hooked"]
            config = {{ remove = ["x-b"] }}
            [[plugins]]
            name = "h3"
            command = "builtin://headers"
            hook_type = "on_response"
            routes = ["hooked"]
            config = {{ set = {{ "x-served-by" = "microgateway" }} }}
            "#
        );
        let config = microgateway::Config::from_toml(&toml).unwrap();
        let gw = microgateway::start(config).await.unwrap();
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Empty<Bytes>>();
        (gw, client)
    });
    let mut group = c.benchmark_group("end_to_end");
    for route in ["bare", "hooked"] {
        let uri: hyper::Uri = format!("http://{}/{route}/x", gateway.proxy_addr)
            .parse()
            .unwrap();
        group.bench_function(route, |b| {
            b.to_async(&rt).iter(|| {
                let (client, uri) = (client.clone(), uri.clone());
                async move {
                    let resp = client.get(uri).await.unwrap();
                    assert_eq!(resp.status(), 200);
                    black_box(resp.into_body().collect().await.unwrap());
                }
            })
        });
    }
    group.finish();
    gateway.shutdown();
    rt.block_on(gateway.wait());
}

criterion_group!(
    benches,
    request_stages,
    remote_hook,
    snapshot_load,
    end_to_end
);
criterion_main!(benches);
