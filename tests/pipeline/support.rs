//! Support for the pipeline tests: the shared upstream with a frame-splitting `/sse`, a
//! scripted in-process test plugin, and gateway start-up with a registry that knows it.

use crate::common::{GatewayConfig, Respond, TestUpstream};
use bytes::Bytes;
use microgateway::loader::Registry;
use microgateway::plugin::{
    AuthResult, BodyMode, ChunkAction, ChunkView, CompletedExchange, Decision, HeaderMutations,
    Hook, HookFuture, HookType, ImmediateResponse, Manifest, Mutations, Plugin, PluginError,
    RequestView,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Starts the upstream: `/sse` streams three events whose boundaries deliberately fall
/// inside frames; anything else echoes the request.
pub async fn upstream() -> TestUpstream {
    let frames = &["data: one\n", "\ndata: tw", "o\n\ndata: three\n\n"];
    TestUpstream::builder("up")
        .route("/sse", Respond::SseFrames(frames))
        .start()
        .await
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

/// Starts a gateway with routes `r` (prefix `/`) and `other` (prefix `/other`) to `up`,
/// plus `plugins` TOML.
pub async fn gateway(
    up: &TestUpstream,
    plugins: &str,
    journal: Arc<Journal>,
) -> microgateway::RunningGateway {
    GatewayConfig::new()
        .upstream("up", &[up])
        .route("r", "up", "path_prefix = \"/\"")
        .route("other", "up", "path_prefix = \"/other\"")
        .raw(plugins)
        .start_with(registry(journal))
        .await
}
