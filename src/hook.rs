//! The stages a plugin instance is attached to ([`HookType`], `hook_type` in
//! configuration) and the hook RPCs of the plugin contract ([`Hook`]).
//!
//! A leaf: configuration names the stage of every plugin entry and a stage determines its
//! hooks, so both live below configuration. The plugin contract re-exports them as
//! `plugin::{Hook, HookType}`.

/// The pipeline stage a plugin instance is attached to (`hook_type` in configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HookType {
    /// Before authentication: cheap rejections (IP filters, guards, rate limits by IP).
    PreAuth,
    /// Establishes the caller's identity.
    Auth,
    /// After authentication: policy by identity, request mutation.
    PostAuth,
    /// Response headers, buffered body, chunks/SSE events, stream completion.
    OnResponse,
    /// Asynchronous per-request records, off the hot path.
    DataCollection,
}

impl HookType {
    /// Name used in configuration, logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            HookType::PreAuth => "pre_auth",
            HookType::Auth => "auth",
            HookType::PostAuth => "post_auth",
            HookType::OnResponse => "on_response",
            HookType::DataCollection => "data_collection",
        }
    }

    /// The hooks that run for an instance attached to this stage.
    pub fn hooks(self) -> &'static [Hook] {
        match self {
            HookType::PreAuth => &[Hook::PreAuth],
            HookType::Auth => &[Hook::Auth],
            HookType::PostAuth => &[Hook::PostAuth],
            HookType::OnResponse => &[
                Hook::OnResponseHeaders,
                Hook::OnResponseBody,
                Hook::OnResponseChunk,
                Hook::OnStreamComplete,
                Hook::WebsocketMessage,
            ],
            HookType::DataCollection => &[Hook::Collect],
        }
    }
}

/// One hook RPC of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    /// `PreAuth` RPC: the request before authentication; may mutate or answer it.
    PreAuth,
    /// `Auth` RPC: identifies the caller; the first identity ends the stage.
    Auth,
    /// `PostAuth` RPC: the request with its identity, last before the upstream.
    PostAuth,
    /// `OnResponseHeaders` RPC: status and headers, before any body byte leaves.
    OnResponseHeaders,
    /// `OnResponseBody` RPC: the whole body, buffered by the gateway (`BUFFERED`).
    OnResponseBody,
    /// `OnResponseChunk` RPC: each body frame or SSE event, on the request path.
    OnResponseChunk,
    /// `OnStreamComplete` RPC: the finished exchange, from the bounded queue.
    OnStreamComplete,
    /// `Collect` RPC (`data_collection`): the finished exchange, from the bounded queue.
    Collect,
    /// `OnWebsocketMessage` RPC: each text or binary message of an upgraded WebSocket.
    WebsocketMessage,
}

impl Hook {
    /// All hooks, in pipeline order.
    pub const ALL: [Hook; 9] = [
        Hook::PreAuth,
        Hook::Auth,
        Hook::PostAuth,
        Hook::OnResponseHeaders,
        Hook::OnResponseBody,
        Hook::OnResponseChunk,
        Hook::OnStreamComplete,
        Hook::Collect,
        Hook::WebsocketMessage,
    ];

    /// Snake-case name used in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::PreAuth => "pre_auth",
            Hook::Auth => "auth",
            Hook::PostAuth => "post_auth",
            Hook::OnResponseHeaders => "on_response_headers",
            Hook::OnResponseBody => "on_response_body",
            Hook::OnResponseChunk => "on_response_chunk",
            Hook::OnStreamComplete => "on_stream_complete",
            Hook::Collect => "collect",
            Hook::WebsocketMessage => "websocket_message",
        }
    }

    /// Dense index for per-hook tables.
    pub fn index(self) -> usize {
        self as usize
    }
}
