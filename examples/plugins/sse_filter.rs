//! Example plugin: SSE and WebSocket content filter.
//!
//! Sees each complete SSE event of `text/event-stream` responses and each text message
//! of a route's upgraded WebSockets (both ways): replaces every configured `redact`
//! word with `[redacted]` and drops events and messages containing any
//! `drop_if_contains` marker. Binary messages pass unread. `OnStreamComplete` logs how
//! many events passed.
//!
//! Config: `{ redact = ["secret"], drop_if_contains = ["[internal]"] }`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use microgateway::sdk::{self, Handler, pb};
use std::sync::RwLock;
use tonic::Status;

#[derive(Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    redact: Vec<String>,
    #[serde(default)]
    drop_if_contains: Vec<String>,
}

#[derive(Default)]
struct Filter(RwLock<Settings>);

/// What the settings make of one event or message.
enum Verdict {
    Pass,
    Replace(Bytes),
    Drop,
}

impl Filter {
    fn judge(&self, data: &[u8]) -> Verdict {
        let settings = self.0.read().unwrap();
        let text = String::from_utf8_lossy(data);
        if settings
            .drop_if_contains
            .iter()
            .any(|m| text.contains(m.as_str()))
        {
            return Verdict::Drop;
        }
        let mut out = text.to_string();
        for word in &settings.redact {
            out = out.replace(word.as_str(), "[redacted]");
        }
        match out == text {
            true => Verdict::Pass,
            false => Verdict::Replace(Bytes::from(out)),
        }
    }
}

impl Handler for Filter {
    fn manifest(&self) -> pb::Manifest {
        pb::Manifest {
            response_body: pb::BodyMode::SseEvents as i32,
            ..sdk::manifest(
                "sse-filter",
                &[
                    pb::Hook::OnResponseChunk,
                    pb::Hook::OnStreamComplete,
                    pb::Hook::WebsocketMessage,
                ],
            )
        }
    }

    async fn initialize(&self, config: serde_json::Value) -> Result<(), String> {
        let settings = if config.is_null() {
            Settings::default()
        } else {
            serde_json::from_value(config).map_err(|e| e.to_string())?
        };
        *self.0.write().unwrap() = settings;
        Ok(())
    }

    async fn on_response_chunk(&self, req: pb::ChunkRequest) -> Result<pb::ChunkResponse, Status> {
        use pb::chunk_response::Action;
        let action = match self.judge(&req.data) {
            Verdict::Pass => Action::Pass(true),
            Verdict::Replace(b) => Action::Replace(b),
            Verdict::Drop => Action::Drop(true),
        };
        Ok(pb::ChunkResponse {
            action: Some(action),
        })
    }

    async fn on_websocket_message(
        &self,
        req: pb::WebsocketMessageRequest,
    ) -> Result<pb::WebsocketMessageResponse, Status> {
        use pb::websocket_message_response::Action;
        let action = match req.text {
            false => Action::Pass(true),
            true => match self.judge(&req.payload) {
                Verdict::Pass => Action::Pass(true),
                Verdict::Replace(b) => Action::Replace(b),
                Verdict::Drop => Action::Drop(true),
            },
        };
        Ok(pb::WebsocketMessageResponse {
            action: Some(action),
        })
    }

    async fn on_stream_complete(&self, req: pb::StreamCompleteRequest) -> Result<(), Status> {
        eprintln!(
            "stream complete: {} events, {} bytes",
            req.chunks, req.bytes
        );
        Ok(())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if let Err(e) = sdk::serve(Filter::default()).await {
        eprintln!("sse-filter: {e}");
        std::process::exit(1);
    }
}
