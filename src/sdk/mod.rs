//! The Rust plugin SDK: implement [`Handler`] and call [`serve`].
//!
//! ```no_run
//! use microgateway::sdk::{self, pb, Handler};
//!
//! struct Hello;
//!
//! impl Handler for Hello {
//!     fn manifest(&self) -> pb::Manifest {
//!         sdk::manifest("hello", &[pb::Hook::PreAuth])
//!     }
//!     async fn pre_auth(&self, _req: pb::HookRequest) -> Result<pb::HookResponse, tonic::Status> {
//!         Ok(sdk::continue_with(sdk::set_header("x-hello", "world")))
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() {
//!     if let Err(e) = sdk::serve(Hello).await {
//!         eprintln!("{e}");
//!         std::process::exit(1);
//!     }
//! }
//! ```
//!
//! [`serve`] speaks the go-plugin protocol when started by the gateway (`file://`): it
//! checks the magic cookie, listens on a unix socket in `PLUGIN_UNIX_SOCKET_DIR`, prints
//! the handshake line, serves `grpc.health.v1` ("plugin"), `plugin.GRPCController` and the
//! plugin contract, and exits after `Shutdown`. With `--listen ADDR` (or
//! `MICROGATEWAY_PLUGIN_LISTEN=ADDR`) it serves the same services on TCP for `grpc://`.

mod server;

pub use crate::plugin::proto as pb;
pub use server::{SdkError, serve};

use bytes::Bytes;
use std::future::Future;
use tonic::Status;

/// A plugin implementation. Every hook has a pass-through default; implement the ones
/// the manifest lists.
pub trait Handler: Send + Sync + 'static {
    /// Name, version, hooks and body modes.
    fn manifest(&self) -> pb::Manifest;

    /// Receives the instance configuration (the gateway's `config` table) once per start.
    fn initialize(
        &self,
        config: serde_json::Value,
    ) -> impl Future<Output = Result<(), String>> + Send {
        let _ = config;
        async { Ok(()) }
    }

    /// `PreAuth`: runs before authentication; may edit the request or answer it.
    fn pre_auth(
        &self,
        req: pb::HookRequest,
    ) -> impl Future<Output = Result<pb::HookResponse, Status>> + Send {
        let _ = req;
        async { Ok(pass()) }
    }

    /// `Auth`: returns the caller's identity, a refusal, or nothing (the next auth plugin decides).
    fn auth(
        &self,
        req: pb::HookRequest,
    ) -> impl Future<Output = Result<pb::HookResponse, Status>> + Send {
        let _ = req;
        async { Ok(pass()) }
    }

    /// `PostAuth`: runs with the authenticated identity, before the upstream is called.
    fn post_auth(
        &self,
        req: pb::HookRequest,
    ) -> impl Future<Output = Result<pb::HookResponse, Status>> + Send {
        let _ = req;
        async { Ok(pass()) }
    }

    /// `OnResponseHeaders`: edits the status and headers before any body byte is sent.
    fn on_response_headers(
        &self,
        req: pb::ResponseHeadersRequest,
    ) -> impl Future<Output = Result<pb::ResponseHeadersResponse, Status>> + Send {
        let _ = req;
        async { Ok(pb::ResponseHeadersResponse::default()) }
    }

    /// `OnResponseBody` (manifest `response_body = BUFFERED`).
    fn on_response_body(
        &self,
        req: pb::ResponseBodyRequest,
    ) -> impl Future<Output = Result<pb::ResponseBodyResponse, Status>> + Send {
        let _ = req;
        async { Ok(pb::ResponseBodyResponse::default()) }
    }

    /// `OnResponseChunk` (manifest `response_body = CHUNKS` or `SSE_EVENTS`).
    fn on_response_chunk(
        &self,
        req: pb::ChunkRequest,
    ) -> impl Future<Output = Result<pb::ChunkResponse, Status>> + Send {
        let _ = req;
        async {
            Ok(pb::ChunkResponse {
                action: Some(pb::chunk_response::Action::Pass(true)),
            })
        }
    }

    /// `OnStreamComplete`: sees the finished exchange off the request path; its answer
    /// cannot change what the client got.
    fn on_stream_complete(
        &self,
        req: pb::StreamCompleteRequest,
    ) -> impl Future<Output = Result<(), Status>> + Send {
        let _ = req;
        async { Ok(()) }
    }

    /// `Collect` (data_collection).
    fn collect(&self, req: pb::CollectRequest) -> impl Future<Output = Result<(), Status>> + Send {
        let _ = req;
        async { Ok(()) }
    }

    /// `OnWebsocketMessage` (manifest hook `WebsocketMessage`): each text or binary
    /// message of a route's upgraded WebSockets, to pass, replace or drop.
    fn on_websocket_message(
        &self,
        req: pb::WebsocketMessageRequest,
    ) -> impl Future<Output = Result<pb::WebsocketMessageResponse, Status>> + Send {
        let _ = req;
        async {
            Ok(pb::WebsocketMessageResponse {
                action: Some(pb::websocket_message_response::Action::Pass(true)),
            })
        }
    }
}

/// A manifest with `hooks` and no body access.
pub fn manifest(name: &str, hooks: &[pb::Hook]) -> pb::Manifest {
    pb::Manifest {
        name: name.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        hooks: hooks.iter().map(|h| *h as i32).collect(),
        ..pb::Manifest::default()
    }
}

/// Continue without changes.
pub fn pass() -> pb::HookResponse {
    continue_with(pb::Continue::default())
}

/// Continue with `changes`.
pub fn continue_with(changes: pb::Continue) -> pb::HookResponse {
    pb::HookResponse {
        decision: Some(pb::hook_response::Decision::ContinueRequest(changes)),
        auth: None,
    }
}

/// A `Continue` that sets one request header.
pub fn set_header(name: &str, value: &str) -> pb::Continue {
    pb::Continue {
        headers: Some(pb::HeaderMutations {
            set: vec![header(name, value)],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A single-valued protobuf header (the contract's headers are multi-valued).
pub fn header(name: &str, value: &str) -> pb::Header {
    pb::Header {
        name: name.to_string(),
        value: Bytes::copy_from_slice(value.as_bytes()),
    }
}

/// Answer the client now with a JSON error body in the gateway's error shape.
pub fn respond_error(status: u16, kind: &str, message: &str) -> pb::HookResponse {
    let body = serde_json::json!({ "error": { "type": kind, "message": message } });
    pb::HookResponse {
        decision: Some(pb::hook_response::Decision::Respond(pb::Respond {
            status: u32::from(status),
            headers: vec![header("content-type", "application/json")],
            body: Bytes::from(body.to_string()),
        })),
        auth: None,
    }
}

/// Authenticated as `identity`.
pub fn authenticated(
    identity: &str,
    app_id: &str,
    claims: Vec<(String, String)>,
) -> pb::HookResponse {
    pb::HookResponse {
        decision: Some(pb::hook_response::Decision::ContinueRequest(
            pb::Continue::default(),
        )),
        auth: Some(pb::AuthResult {
            authenticated: true,
            identity: identity.to_string(),
            app_id: app_id.to_string(),
            claims: claims.into_iter().collect(),
            cache_ttl_seconds: 0,
        }),
    }
}

/// The first value of header `name` in a request, as text.
pub fn request_header<'a>(req: &'a pb::HookRequest, name: &str) -> Option<&'a str> {
    req.request
        .as_ref()?
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .and_then(|h| std::str::from_utf8(&h.value).ok())
}
