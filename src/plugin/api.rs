//! The [`Plugin`] trait implemented by built-in (in-process) and remote (gRPC) plugins.
//!
//! Hooks return a [`HookFuture`]: in-process plugins answer with
//! [`HookFuture::Ready`], which costs no allocation and is never subject to a timeout;
//! remote plugins return [`HookFuture::Pending`], which the pipeline awaits under the
//! instance's timeout. Default methods pass everything through unchanged, so a plugin
//! implements only the hooks its manifest lists.

use super::types::{
    BodyMutations, ChunkAction, ChunkView, CompletedExchange, Decision, HookType, Manifest,
    MessageAction, MessageView, PluginError, RequestView, ResponseMutations, ResponseView,
};
use crate::config::PluginConfig;
use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Result of one hook call.
pub type HookResult<T> = Result<T, PluginError>;

/// Builds an in-process plugin from its configuration entry and what the process
/// shares with it.
pub type BuiltinFactory = Arc<
    dyn Fn(&PluginConfig, &BuiltinContext) -> Result<Arc<dyn Plugin>, PluginError> + Send + Sync,
>;

/// What the process shares with in-process plugins when it builds them.
#[derive(Debug, Clone, Default)]
pub struct BuiltinContext {
    /// The fleet's Redis (`[cluster]`), when configured: shared limits use it.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

/// A hook's answer: immediate (in-process) or a future (remote).
pub enum HookFuture<'a, T> {
    /// Already computed (in-process plugins): no allocation, no timeout.
    Ready(HookResult<T>),
    /// Computed asynchronously; awaited under the plugin's timeout.
    Pending(Pin<Box<dyn Future<Output = HookResult<T>> + Send + 'a>>),
}

impl<'a, T> HookFuture<'a, T> {
    /// An immediate success.
    pub fn ok(value: T) -> Self {
        HookFuture::Ready(Ok(value))
    }

    /// An immediate failure.
    pub fn err(error: PluginError) -> Self {
        HookFuture::Ready(Err(error))
    }

    /// Boxes an asynchronous computation.
    pub fn pending(future: impl Future<Output = HookResult<T>> + Send + 'a) -> Self {
        HookFuture::Pending(Box::pin(future))
    }
}

/// A plugin instance. One instance serves one configured entry (name, stage, config).
pub trait Plugin: Send + Sync + 'static {
    /// What the plugin implements; must not change after construction.
    fn manifest(&self) -> &Manifest;

    /// `PreAuth`, `Auth` or `PostAuth`, selected by `stage`.
    fn on_request<'a>(
        &'a self,
        stage: HookType,
        request: &'a RequestView<'a>,
    ) -> HookFuture<'a, Decision> {
        let _ = (stage, request);
        HookFuture::ok(Decision::pass())
    }

    /// `OnResponseHeaders`.
    fn on_response_headers<'a>(
        &'a self,
        response: &'a ResponseView<'a>,
    ) -> HookFuture<'a, ResponseMutations> {
        let _ = response;
        HookFuture::ok(ResponseMutations::default())
    }

    /// `OnResponseBody`, with the whole buffered body.
    fn on_response_body<'a>(
        &'a self,
        response: &'a ResponseView<'a>,
        body: &'a Bytes,
    ) -> HookFuture<'a, BodyMutations> {
        let _ = (response, body);
        HookFuture::ok(BodyMutations::default())
    }

    /// `OnResponseChunk`, per frame or per SSE event.
    fn on_response_chunk<'a>(&'a self, chunk: &'a ChunkView<'a>) -> HookFuture<'a, ChunkAction> {
        let _ = chunk;
        HookFuture::ok(ChunkAction::Pass)
    }

    /// `OnStreamComplete`, after the response body finished; runs off the request path.
    fn on_stream_complete<'a>(&'a self, done: &'a CompletedExchange) -> HookFuture<'a, ()> {
        let _ = done;
        HookFuture::ok(())
    }

    /// `Collect` (data_collection stage); runs off the request path.
    fn collect<'a>(&'a self, record: &'a CompletedExchange) -> HookFuture<'a, ()> {
        let _ = record;
        HookFuture::ok(())
    }

    /// `WebsocketMessage`: one whole text or binary message of an upgraded WebSocket,
    /// to pass, replace or drop.
    fn on_websocket_message<'a>(
        &'a self,
        message: &'a MessageView<'a>,
    ) -> HookFuture<'a, MessageAction> {
        let _ = message;
        HookFuture::ok(MessageAction::Pass)
    }

    /// Current lifecycle state; in-process plugins are always ready.
    fn health(&self) -> super::health::PluginHealth {
        super::health::PluginHealth::ready()
    }

    /// Releases resources (processes, connections) once the instance is no longer in use.
    fn shutdown(&self) -> HookFuture<'_, ()> {
        HookFuture::ok(())
    }
}
