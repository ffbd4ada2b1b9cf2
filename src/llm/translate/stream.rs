//! Anthropic Messages SSE stream -> OpenAI `chat.completion.chunk` SSE stream, one
//! whole event at a time (nothing is buffered beyond the event being translated).

use super::{Usage, finish_reason, now, openai_error};
use crate::llm::sse;
use bytes::Bytes;
use serde_json::{Value, json};
use std::collections::HashMap;

/// The translation state of one streamed response.
#[derive(Debug)]
pub struct Stream {
    model: String,
    include_usage: bool,
    id: String,
    created: u64,
    usage: Usage,
    /// Anthropic content block index -> OpenAI tool call index (tool blocks only).
    tools: HashMap<u64, u64>,
    finished: bool,
}

impl Stream {
    /// A stream reporting `model` to the client; `include_usage` mirrors the client's
    /// `stream_options.include_usage`.
    pub fn new(model: &str, include_usage: bool) -> Stream {
        Stream {
            model: model.to_owned(),
            include_usage,
            id: "chatcmpl-".to_owned(),
            created: now(),
            usage: Usage::default(),
            tools: HashMap::new(),
            finished: false,
        }
    }

    /// One whole Anthropic SSE event -> zero or more whole OpenAI SSE events
    /// (`data: {json}\n\n`), appended to `out`. Events that are not JSON, and event
    /// types without an OpenAI equivalent, produce nothing.
    pub fn event(&mut self, event: &[u8], out: &mut Vec<Bytes>) {
        let Some(data) = sse::data(event) else { return };
        let Ok(v) = serde_json::from_str::<Value>(&data) else {
            return;
        };
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .or_else(|| sse::event_name(event))
            .unwrap_or_default();
        let index = v.get("index").and_then(Value::as_u64).unwrap_or_default();
        match kind {
            "message_start" => {
                let m = &v["message"];
                if let Some(id) = m.get("id").and_then(Value::as_str) {
                    self.id = format!("chatcmpl-{id}");
                }
                if let Some(u) = m.get("usage") {
                    self.usage.update(u);
                }
                out.push(self.chunk(json!({"role": "assistant", "content": ""}), Value::Null));
            }
            "content_block_start" => {
                let b = &v["content_block"];
                match b.get("type").and_then(Value::as_str) {
                    Some("tool_use") => {
                        let n = self.tools.len() as u64;
                        self.tools.insert(index, n);
                        let call = json!({
                            "index": n,
                            "id": b.get("id").cloned().unwrap_or(Value::Null),
                            "type": "function",
                            "function": {
                                "name": b.get("name").cloned().unwrap_or(Value::Null),
                                "arguments": "",
                            },
                        });
                        out.push(self.chunk(json!({"tool_calls": [call]}), Value::Null));
                    }
                    Some("text") => {
                        let text = b.get("text").and_then(Value::as_str).unwrap_or_default();
                        if !text.is_empty() {
                            out.push(self.chunk(json!({"content": text}), Value::Null));
                        }
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let d = &v["delta"];
                match d.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        let text = d.get("text").cloned().unwrap_or_else(|| json!(""));
                        out.push(self.chunk(json!({"content": text}), Value::Null));
                    }
                    Some("input_json_delta") => {
                        let Some(&n) = self.tools.get(&index) else {
                            return;
                        };
                        let part = d.get("partial_json").and_then(Value::as_str);
                        let Some(part) = part.filter(|p| !p.is_empty()) else {
                            return;
                        };
                        let call = json!({"index": n, "function": {"arguments": part}});
                        out.push(self.chunk(json!({"tool_calls": [call]}), Value::Null));
                    }
                    // Thinking and signature deltas have no chat/completions equivalent.
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(u) = v.get("usage") {
                    self.usage.update(u);
                }
                let stop = v["delta"].get("stop_reason").and_then(Value::as_str);
                if stop.is_some() {
                    out.push(self.chunk(json!({}), finish_reason(stop)));
                }
            }
            "error" => {
                let e = v.get("error").cloned().unwrap_or_else(|| json!({}));
                out.push(sse_data(&openai_error(None, &e)));
            }
            // message_stop (finish emits the end), content_block_stop and ping.
            _ => {}
        }
    }

    /// End of the upstream stream: the final usage chunk (only when include_usage) and
    /// `data: [DONE]\n\n`; idempotent.
    pub fn finish(&mut self, out: &mut Vec<Bytes>) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        if self.include_usage {
            let mut chunk = self.base();
            chunk["choices"] = json!([]);
            chunk["usage"] = self.usage.to_openai();
            out.push(sse_data(&chunk));
        }
        out.push(Bytes::from_static(b"data: [DONE]\n\n"));
    }

    /// Usage seen so far (input, output tokens), for metering. Input counts every
    /// prompt token (uncached, cache reads and cache writes), as `prompt_tokens` does.
    pub fn usage(&self) -> (u64, u64) {
        (self.usage.prompt(), self.usage.output)
    }

    /// The fields every chunk has.
    fn base(&self) -> Value {
        let mut c = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
        });
        if self.include_usage {
            c["usage"] = Value::Null;
        }
        c
    }

    /// A chunk with one choice carrying `delta` and `finish`.
    fn chunk(&self, delta: Value, finish: Value) -> Bytes {
        let mut c = self.base();
        c["choices"] = json!([{
            "index": 0,
            "delta": delta,
            "logprobs": null,
            "finish_reason": finish,
        }]);
        sse_data(&c)
    }
}

/// One SSE event carrying `value` as its data.
fn sse_data(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Anthropic SSE event as the API sends it.
    fn ev(data: Value) -> Vec<u8> {
        let name = data["type"].as_str().unwrap().to_owned();
        format!("event: {name}\ndata: {data}\n\n").into_bytes()
    }

    /// Feeds one event and returns the parsed data of every event it produced.
    fn feed(s: &mut Stream, data: Value) -> Vec<Value> {
        let mut out = Vec::new();
        s.event(&ev(data), &mut out);
        out.iter().map(|b| parse(b)).collect()
    }

    fn parse(b: &[u8]) -> Value {
        let text = std::str::from_utf8(b).unwrap();
        let json = text
            .strip_prefix("data: ")
            .unwrap()
            .strip_suffix("\n\n")
            .unwrap();
        serde_json::from_str(json).unwrap()
    }

    fn start() -> Value {
        json!({"type": "message_start", "message": {
            "id": "msg_01XFD", "type": "message", "role": "assistant", "content": [],
            "model": "claude-sonnet-4-5", "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 472, "output_tokens": 2, "cache_read_input_tokens": 100,
                      "cache_creation_input_tokens": 0}}})
    }

    #[test]
    fn streams_text_and_tool_use_event_by_event() {
        let mut s = Stream::new("gpt-gateway", false);
        let first = feed(&mut s, start());
        assert_eq!(first.len(), 1);
        let c = &first[0];
        assert_eq!(c["id"], "chatcmpl-msg_01XFD");
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["model"], "gpt-gateway");
        assert!(c["created"].as_u64().unwrap() > 1_700_000_000);
        assert!(c.get("usage").is_none());
        assert_eq!(
            c["choices"][0]["delta"],
            json!({"role": "assistant", "content": ""})
        );
        assert_eq!(c["choices"][0]["finish_reason"], Value::Null);

        let ping = feed(&mut s, json!({"type": "ping"}));
        assert!(ping.is_empty());
        let text_start = json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""}});
        assert!(feed(&mut s, text_start).is_empty());
        let d = feed(
            &mut s,
            json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": "Let me check."}}),
        );
        assert_eq!(
            d[0]["choices"][0]["delta"],
            json!({"content": "Let me check."})
        );
        assert!(feed(&mut s, json!({"type": "content_block_stop", "index": 0})).is_empty());

        // Two tool blocks at content indexes 1 and 2 become tool calls 0 and 1.
        for (block, n, id, name) in [
            (1, 0, "toolu_01A", "get_weather"),
            (2, 1, "toolu_01B", "get_time"),
        ] {
            let t = feed(
                &mut s,
                json!({"type": "content_block_start", "index": block,
                "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}),
            );
            assert_eq!(
                t[0]["choices"][0]["delta"],
                json!({"tool_calls": [{"index": n, "id": id,
                "type": "function", "function": {"name": name, "arguments": ""}}]})
            );
            let empty = feed(
                &mut s,
                json!({"type": "content_block_delta", "index": block,
                "delta": {"type": "input_json_delta", "partial_json": ""}}),
            );
            assert!(empty.is_empty());
            for part in ["{\"location\":", " \"Paris\"}"] {
                let a = feed(
                    &mut s,
                    json!({"type": "content_block_delta", "index": block,
                    "delta": {"type": "input_json_delta", "partial_json": part}}),
                );
                assert_eq!(
                    a[0]["choices"][0]["delta"],
                    json!({"tool_calls": [{"index": n, "function": {"arguments": part}}]})
                );
            }
            assert!(
                feed(
                    &mut s,
                    json!({"type": "content_block_stop", "index": block})
                )
                .is_empty()
            );
        }

        let end = feed(
            &mut s,
            json!({"type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": null},
            "usage": {"output_tokens": 89}}),
        );
        assert_eq!(end[0]["choices"][0]["delta"], json!({}));
        assert_eq!(end[0]["choices"][0]["finish_reason"], "tool_calls");
        assert!(feed(&mut s, json!({"type": "message_stop"})).is_empty());
        assert_eq!(s.usage(), (572, 89));

        let mut out = Vec::new();
        s.finish(&mut out);
        assert_eq!(out, vec![Bytes::from_static(b"data: [DONE]\n\n")]);
        out.clear();
        s.finish(&mut out);
        assert!(out.is_empty(), "finish is idempotent");
    }

    #[test]
    fn usage_chunk_when_included() {
        let mut s = Stream::new("m", true);
        let first = feed(&mut s, start());
        assert_eq!(first[0]["usage"], Value::Null);
        let d = feed(
            &mut s,
            json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": "Hi"}}),
        );
        assert_eq!(d[0]["usage"], Value::Null);
        let end = feed(
            &mut s,
            json!({"type": "message_delta",
            "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 16}}),
        );
        assert_eq!(end[0]["choices"][0]["finish_reason"], "length");
        let mut out = Vec::new();
        s.finish(&mut out);
        assert_eq!(out.len(), 2);
        let u = parse(&out[0]);
        assert_eq!(u["choices"], json!([]));
        assert_eq!(u["id"], "chatcmpl-msg_01XFD");
        assert_eq!(
            u["usage"],
            json!({"prompt_tokens": 572, "completion_tokens": 16,
            "total_tokens": 588, "prompt_tokens_details": {"cached_tokens": 100}})
        );
        assert_eq!(&out[1][..], b"data: [DONE]\n\n");
    }

    #[test]
    fn error_event_and_garbage() {
        let mut s = Stream::new("m", false);
        feed(&mut s, start());
        let e = feed(
            &mut s,
            json!({"type": "error",
            "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        );
        assert_eq!(
            e,
            vec![
                json!({"error": {"message": "Overloaded", "type": "server_error",
            "param": null, "code": "overloaded_error"}})
            ]
        );
        let mut out = Vec::new();
        s.event(b"event: ping\ndata: not json\n\n", &mut out);
        s.event(b": comment only\n\n", &mut out);
        assert!(out.is_empty());
        // A delta for a block that never started as a tool is dropped, not misindexed.
        s.event(
            &ev(json!({"type": "content_block_delta", "index": 5,
            "delta": {"type": "input_json_delta", "partial_json": "{}"}})),
            &mut out,
        );
        assert!(out.is_empty());
    }
}
