//! A fake LLM provider: OpenAI chat/completions and embeddings, Anthropic messages, JSON
//! and SSE, checking the key the gateway injects and recording what it received.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const OPENAI_KEY: &str = "sk-provider-secret";
pub const ANTHROPIC_KEY: &str = "ant-provider-secret";
/// Gap between streamed events.
pub const GAP: Duration = Duration::from_millis(150);

/// What the provider received: headers and JSON body per request.
#[derive(Default)]
pub struct Seen(pub Mutex<Vec<(http::HeaderMap, serde_json::Value)>>);

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn json(status: u16, v: serde_json::Value) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())).boxed());
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap();
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    r
}

fn sse(events: Vec<String>) -> Response<Body> {
    let stream =
        futures_util::stream::unfold(events.into_iter().enumerate(), |mut it| async move {
            let (i, e) = it.next()?;
            if i > 0 {
                tokio::time::sleep(GAP).await;
            }
            Some((Ok::<_, Infallible>(Frame::data(Bytes::from(e))), it))
        });
    let mut r = Response::new(StreamBody::new(stream).boxed());
    r.headers_mut()
        .insert("content-type", "text/event-stream".parse().unwrap());
    r
}

async fn handle(req: Request<Incoming>, seen: Arc<Seen>) -> Response<Body> {
    let path = req.uri().path().to_string();

    let headers = req.headers().clone();
    let body: serde_json::Value =
        serde_json::from_slice(&req.into_body().collect().await.unwrap().to_bytes())
            .unwrap_or_default();
    seen.0.lock().unwrap().push((headers.clone(), body.clone()));
    let model = body["model"].as_str().unwrap_or("unknown").to_string();
    let stream = body["stream"].as_bool().unwrap_or(false);
    if path == "/v1/messages" {
        if headers.get("x-api-key").map(|v| v.as_bytes()) != Some(ANTHROPIC_KEY.as_bytes())
            || !headers.contains_key("anthropic-version")
        {
            return json(
                401,
                serde_json::json!({"type": "error", "error": {"type": "authentication_error", "message": "bad key"}}),
            );
        }
        if model == "claude-overloaded" {
            return json(
                529,
                serde_json::json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
            );
        }
        if !stream && body.get("tools").is_some() {
            return json(
                200,
                serde_json::json!({"id": "msg_2", "type": "message", "role": "assistant", "model": model, "stop_reason": "tool_use",
                    "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}],
                    "usage": {"input_tokens": 30, "output_tokens": 9}}),
            );
        }
        if !stream {
            return json(
                200,
                serde_json::json!({"id": "msg_1", "type": "message", "role": "assistant", "model": model, "stop_reason": "end_turn", "content": [{"type": "text", "text": "Hello"}], "usage": {"input_tokens": 21, "output_tokens": 4}}),
            );
        }
        let events = vec![
            format!("event: message_start\ndata: {}\n\n", serde_json::json!({"type": "message_start", "message": {"model": model, "usage": {"input_tokens": 21, "output_tokens": 1}}})),
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\n".to_string(),
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"lo\"}}\n\n".to_string(),
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":7}}\n\n".to_string(),
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n".to_string(),
        ];
        return sse(events);
    }
    if headers.get("authorization").map(|v| v.as_bytes())
        != Some(format!("Bearer {OPENAI_KEY}").as_bytes())
    {
        return json(
            401,
            serde_json::json!({"error": {"message": "Incorrect API key", "type": "invalid_request_error", "code": "invalid_api_key"}}),
        );
    }
    if path == "/v1/embeddings" {
        return json(
            200,
            serde_json::json!({"object": "list", "model": model, "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}], "usage": {"prompt_tokens": 8, "total_tokens": 8}}),
        );
    }
    if !stream {
        return json(
            200,
            serde_json::json!({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
            }),
        );
    }
    let chunk = |content: &str| {
        let v = serde_json::json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]});
        format!("data: {v}\n\n")
    };
    let mut events = vec![chunk("Hel"), chunk("lo "), chunk("there")];
    if body["stream_options"]["include_usage"].as_bool() == Some(true) {
        let v = serde_json::json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [],
            "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}});
        events.push(format!("data: {v}\n\n"));
    }
    events.push("data: [DONE]\n\n".to_string());
    sse(events)
}

/// Starts the provider on 127.0.0.1:0.
pub async fn start() -> (SocketAddr, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let record = seen.clone();
    let addr = crate::common::serve::http1(move |req| handle(req, record.clone())).await;
    (addr, seen)
}
