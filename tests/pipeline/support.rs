//! Support for the pipeline tests: a real upstream on 127.0.0.1:0, a scripted
//! in-process test plugin, and gateway start-up with a registry that knows it.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use microgateway::loader::Registry;
use microgateway::plugin::{
    AuthResult, BodyMode, ChunkAction, ChunkView, CompletedExchange, Decision, HeaderMutations,
    Hook, HookFuture, HookType, ImmediateResponse, Manifest, Mutations, Plugin, PluginError,
    RequestView,
};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running upstream and the number of requests it received.
pub struct Upstream {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
}

/// Starts the upstream. `/sse` streams three events split across frames; anything
/// else echoes the request headers as JSON.
pub async fn upstream() -> Upstream {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let addr = crate::serve::http1(move |req| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move { handle(req).await.unwrap_or_else(|never| match never {}) }
    })
    .await;
    Upstream { addr, hits }
}

type UpBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn handle(req: Request<Incoming>) -> Result<Response<UpBody>, Infallible> {
    if req.uri().path().ends_with("/sse") {
        // Event boundaries deliberately fall inside frames.
        let frames = ["data: one\n", "\ndata: tw", "o\n\ndata: three\n\n"];
        let stream = futures_util::stream::iter(
            frames.map(|f| Ok::<_, Infallible>(Frame::data(Bytes::from_static(f.as_bytes())))),
        );
        let mut resp = Response::new(StreamBody::new(stream).boxed());
        resp.headers_mut()
            .insert("content-type", "text/event-stream".parse().unwrap());
        return Ok(resp);
    }
    let mut headers = serde_json::Map::new();
    for (k, v) in req.headers() {
        let entry = headers
            .entry(k.as_str())
            .or_insert_with(|| serde_json::json!([]));
        entry
            .as_array_mut()
            .unwrap()
            .push(v.to_str().unwrap_or("").into());
    }
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let json = serde_json::json!({ "path": path, "headers": headers, "body": String::from_utf8_lossy(&body) });
    let mut resp = Response::new(Full::new(Bytes::from(json.to_string())).boxed());
    resp.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    Ok(resp)
}

/// What the scripted plugin records.
#[derive(Default)]
pub struct Journal {
    pub chunks: Mutex<Vec<String>>,
    pub collected: Mutex<Vec<CompletedExchange>>,
    pub completed: Mutex<Vec<CompletedExchange>>,
}

/// A plugin whose behaviour comes from its `config.action`:
/// `append` (adds `x-order: <name>`), `respond` (418), `fail`, `sleep` (`ms`),
/// `bad_header` (sets content-length), `auth` (authenticates as `alice`),
/// `sse` (records and upper-cases SSE event "two"), `collect`, `set_path`.
pub struct Scripted {
    manifest: Manifest,
    name: String,
    action: String,
    ms: u64,
    journal: Arc<Journal>,
}

impl Scripted {
    fn decide(&self) -> HookFuture<'_, Decision> {
        match self.action.as_str() {
            "append" => HookFuture::ok(Decision::Continue(Mutations {
                headers: HeaderMutations {
                    add: vec![("x-order".parse().unwrap(), self.name.parse().unwrap())],
                    ..Default::default()
                },
                ..Default::default()
            })),
            "respond" => HookFuture::ok(Decision::Respond(ImmediateResponse {
                status: http::StatusCode::IM_A_TEAPOT,
                headers: vec![("x-by".parse().unwrap(), self.name.parse().unwrap())],
                body: Bytes::from_static(b"short-circuit"),
            })),
            "fail" => HookFuture::err(PluginError::Failed("scripted failure".into())),
            "sleep" => {
                let ms = self.ms;
                HookFuture::pending(async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Ok(Decision::pass())
                })
            }
            "bad_header" => HookFuture::ok(Decision::Continue(Mutations {
                headers: HeaderMutations {
                    set: vec![(http::header::CONTENT_LENGTH, "5".parse().unwrap())],
                    ..Default::default()
                },
                ..Default::default()
            })),
            "auth" => HookFuture::ok(Decision::Continue(Mutations {
                auth: Some(AuthResult {
                    identity: "alice".into(),
                    app_id: "app".into(),
                    ..Default::default()
                }),
                ..Default::default()
            })),
            "set_path" => HookFuture::ok(Decision::Continue(Mutations {
                path: Some("/rewritten/by/plugin".into()),
                context: vec![("seen".into(), self.name.clone())],
                ..Default::default()
            })),
            _ => HookFuture::ok(Decision::pass()),
        }
    }
}

impl Plugin for Scripted {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    fn on_request<'a>(&'a self, _: HookType, _: &'a RequestView<'a>) -> HookFuture<'a, Decision> {
        self.decide()
    }
    fn on_response_chunk<'a>(&'a self, chunk: &'a ChunkView<'a>) -> HookFuture<'a, ChunkAction> {
        let text = String::from_utf8_lossy(chunk.data).to_string();
        self.journal.chunks.lock().unwrap().push(text.clone());
        if text.contains("two") {
            return HookFuture::ok(ChunkAction::Replace(Bytes::from(text.to_uppercase())));
        }
        HookFuture::ok(ChunkAction::Pass)
    }
    fn on_stream_complete<'a>(&'a self, done: &'a CompletedExchange) -> HookFuture<'a, ()> {
        self.journal.completed.lock().unwrap().push(done.clone());
        HookFuture::ok(())
    }
    fn collect<'a>(&'a self, record: &'a CompletedExchange) -> HookFuture<'a, ()> {
        self.journal.collected.lock().unwrap().push(record.clone());
        HookFuture::ok(())
    }
}

/// A registry with `builtin://scripted` writing to `journal`.
pub fn registry(journal: Arc<Journal>) -> Registry {
    let mut r = Registry::with_builtins();
    r.register("scripted", move |c| {
        let action = c
            .config
            .get("action")
            .and_then(|v| v.as_str())
            .unwrap_or("pass")
            .to_string();
        let ms = c.config.get("ms").and_then(|v| v.as_u64()).unwrap_or(0);
        let (hooks, body) = match action.as_str() {
            "sse" => (
                vec![Hook::OnResponseChunk, Hook::OnStreamComplete],
                BodyMode::SseEvents,
            ),
            "collect" => (vec![Hook::Collect], BodyMode::None),
            _ => (
                vec![Hook::PreAuth, Hook::Auth, Hook::PostAuth],
                BodyMode::None,
            ),
        };
        Ok(Arc::new(Scripted {
            manifest: Manifest {
                name: "scripted".into(),
                hooks,
                response_body: body,
                ..Default::default()
            },
            name: c.name.clone(),
            action,
            ms,
            journal: journal.clone(),
        }))
    });
    r
}

/// Starts a gateway with one route `r` (prefix `/`) to `up`, plus `plugins` TOML.
pub async fn gateway(
    up: SocketAddr,
    plugins: &str,
    journal: Arc<Journal>,
) -> microgateway::RunningGateway {
    let toml = format!(
        r#"
        [server]
        listen = "127.0.0.1:0"
        [admin]
        listen = "127.0.0.1:0"
        [[upstreams]]
        name = "up"
        targets = ["http://{up}"]
        [[routes]]
        name = "r"
        path_prefix = "/"
        upstream = "up"
        [[routes]]
        name = "other"
        path_prefix = "/other"
        upstream = "up"
        {plugins}
        "#
    );
    let config = microgateway::Config::from_toml(&toml).unwrap();
    microgateway::start_with(config, registry(journal))
        .await
        .unwrap()
}

/// A plugin TOML entry.
pub fn entry(name: &str, command: &str, hook: &str, extra: &str) -> String {
    format!(
        "[[plugins]]\nname = \"{name}\"\ncommand = \"{command}\"\nhook_type = \"{hook}\"\n{extra}\n"
    )
}

/// A finished response: status, headers and body text.
pub struct Got {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Got {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Sends one request with `headers` and returns the whole response.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Got {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client
        .request(req.body(Full::new(Bytes::from(body.to_string()))).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Got {
        status,
        headers,
        body: String::from_utf8_lossy(&body).to_string(),
    }
}

/// GETs `path` without headers.
pub async fn get(addr: SocketAddr, path: &str) -> Got {
    send(addr, "GET", path, &[], "").await
}
