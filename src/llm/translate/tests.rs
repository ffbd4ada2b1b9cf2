//! Unit tests of the translation: requests, JSON responses and errors.

use super::*;

fn parse(b: &[u8]) -> Value {
    serde_json::from_slice(b).unwrap()
}

#[test]
fn translates_anthropic_errors() {
    let body = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
    let out = parse(&error(http::StatusCode::from_u16(529).unwrap(), body));
    assert_eq!(
        out,
        json!({"error":{"message":"Overloaded","type":"server_error","param":null,"code":"overloaded_error"}})
    );
    let body = br#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: too big"}}"#;
    let out = parse(&error(http::StatusCode::BAD_REQUEST, body));
    assert_eq!(out["error"]["type"], "invalid_request_error");
    assert_eq!(out["error"]["message"], "max_tokens: too big");
    let out = parse(&error(http::StatusCode::TOO_MANY_REQUESTS, b""));
    assert_eq!(out["error"]["type"], "rate_limit_error");
    assert!(out["error"]["message"].as_str().unwrap().contains("429"));
    let out = parse(&error(
        http::StatusCode::BAD_GATEWAY,
        b"<html>bad gateway</html>",
    ));
    assert_eq!(out["error"]["type"], "server_error");
    assert_eq!(out["error"]["code"], Value::Null);
}

#[test]
fn maps_finish_reasons_and_usage() {
    assert_eq!(finish_reason(Some("end_turn")), "stop");
    assert_eq!(finish_reason(Some("stop_sequence")), "stop");
    assert_eq!(finish_reason(Some("max_tokens")), "length");
    assert_eq!(finish_reason(Some("tool_use")), "tool_calls");
    assert_eq!(finish_reason(None), Value::Null);
    let mut u = Usage::default();
    u.update(&json!({"input_tokens": 10, "output_tokens": 1, "cache_read_input_tokens": 100}));
    u.update(&json!({"output_tokens": 7}));
    assert_eq!(
        u.to_openai(),
        json!({"prompt_tokens":110,"completion_tokens":7,"total_tokens":117,"prompt_tokens_details":{"cached_tokens":100}})
    );
    u.cache_read = 0;
    assert!(u.to_openai().get("prompt_tokens_details").is_none());
}

fn req(chat: Value) -> Value {
    parse(&request(&chat, 4096).unwrap())
}

fn param(chat: Value) -> Option<String> {
    match request(&chat, 4096) {
        Err(TranslateError::Invalid { param, .. }) => param,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn translates_a_text_request() {
    let out = req(json!({
        "model": "claude-sonnet-4-5",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": "Hello"},
            {"role": "user", "content": [{"type": "text", "text": "Are you there?"}]},
        ],
        "temperature": 0.2, "top_p": 0.9, "stream": true,
        "stream_options": {"include_usage": true},
        "stop": "END", "user": "u-42", "n": 1,
    }));
    assert_eq!(
        out,
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 4096,
            "system": "You are terse.\n\nAnswer in French.",
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "Hello"},
                {"type": "text", "text": "Are you there?"},
            ]}],
            "temperature": 0.2, "top_p": 0.9, "stream": true,
            "stop_sequences": ["END"],
            "metadata": {"user_id": "u-42"},
        })
    );
    let out = req(json!({"messages": [{"role": "user", "content": "x"}],
        "max_tokens": 10, "max_completion_tokens": 20, "stop": ["a", "b"]}));
    assert_eq!(out["max_tokens"], 20);
    assert_eq!(out["stop_sequences"], json!(["a", "b"]));
    assert!(out.get("system").is_none());
    let out = req(json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 10}));
    assert_eq!(out["max_tokens"], 10);
}

#[test]
fn translates_image_parts() {
    let out = req(json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]}]}));
    assert_eq!(
        out["messages"][0]["content"],
        json!([
            {"type": "text", "text": "What is in these?"},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        ])
    );
    let bad = json!({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}}]}]});
    assert_eq!(
        param(bad).as_deref(),
        Some("messages[0].content[0].image_url")
    );
    let audio = json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "hi"}, {"type": "input_audio", "input_audio": {}}]}]});
    assert_eq!(param(audio).as_deref(), Some("messages[0].content[1].type"));
}

#[test]
fn translates_a_tool_round_trip() {
    let out = req(json!({
        "model": "m",
        "messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}},
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "25C"}]},
            {"role": "user", "content": "Thanks, which is warmer?"},
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather",
            "description": "Current weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
            {"type": "function", "function": {"name": "now"}}],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": false,
    }));
    assert_eq!(
        out["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Rome"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "25C"}]},
                {"type": "text", "text": "Thanks, which is warmer?"},
            ]},
        ])
    );
    assert_eq!(
        out["tools"],
        json!([
            {"name": "get_weather", "description": "Current weather",
             "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
            {"name": "now", "input_schema": {"type": "object", "properties": {}}},
        ])
    );
    assert_eq!(
        out["tool_choice"],
        json!({"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true})
    );
    for (choice, want) in [("auto", "auto"), ("none", "none"), ("required", "any")] {
        let out =
            req(json!({"messages": [{"role": "user", "content": "x"}], "tool_choice": choice}));
        assert_eq!(out["tool_choice"], json!({"type": want}));
    }
    let bad_args = json!({"messages": [{"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1"}}]}]});
    assert_eq!(
        param(bad_args).as_deref(),
        Some("messages[0].tool_calls[0].function.arguments")
    );
}

#[test]
fn rejects_unsupported_fields() {
    let base = |k: &str, v: Value| {
        let mut c = json!({"messages": [{"role": "user", "content": "x"}]});
        c[k] = v;
        c
    };
    assert_eq!(param(base("n", json!(2))).as_deref(), Some("n"));
    assert_eq!(
        param(base("logit_bias", json!({}))).as_deref(),
        Some("logit_bias")
    );
    assert_eq!(
        param(base("presence_penalty", json!(0.5))).as_deref(),
        Some("presence_penalty")
    );
    assert_eq!(
        param(base("max_tokens", json!(0))).as_deref(),
        Some("max_tokens")
    );
    assert_eq!(param(base("stop", json!(3))).as_deref(), Some("stop"));
    let ok = req(base("presence_penalty", json!(0)));
    assert!(ok.get("presence_penalty").is_none());
    assert_eq!(param(json!({"messages": []})).as_deref(), Some("messages"));
    let web = base("tools", json!([{"type": "web_search"}]));
    assert_eq!(param(web).as_deref(), Some("tools[0]"));
    let role = json!({"messages": [{"role": "function", "content": "x"}]});
    assert_eq!(param(role).as_deref(), Some("messages[0].role"));
}

#[test]
fn translates_a_text_response() {
    let msg = br#"{"id":"msg_013Zva2CMHLNnXjNJJKqJ2EF","type":"message","role":"assistant",
        "model":"claude-sonnet-4-5","content":[{"type":"text","text":"Hi! "},{"type":"text","text":"Bonjour."}],
        "stop_reason":"end_turn","stop_sequence":null,
        "usage":{"input_tokens":2095,"output_tokens":503,"cache_read_input_tokens":0,"cache_creation_input_tokens":10}}"#;
    let out = parse(&response(msg, "gpt-4o").unwrap());
    assert_eq!(out["id"], "chatcmpl-msg_013Zva2CMHLNnXjNJJKqJ2EF");
    assert_eq!(out["object"], "chat.completion");
    assert_eq!(out["model"], "gpt-4o");
    assert!(out["created"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(
        out["choices"],
        json!([{"index": 0, "logprobs": null, "finish_reason": "stop",
        "message": {"role": "assistant", "content": "Hi! Bonjour.", "refusal": null}}])
    );
    assert_eq!(
        out["usage"],
        json!({"prompt_tokens": 2105, "completion_tokens": 503, "total_tokens": 2608})
    );
    let stop = br#"{"id":"m","type":"message","content":[{"type":"text","text":"a"}],
        "stop_reason":"stop_sequence","stop_sequence":"END","usage":{"input_tokens":1,"output_tokens":1}}"#;
    assert_eq!(
        parse(&response(stop, "x").unwrap())["choices"][0]["finish_reason"],
        "stop"
    );
    let long = br#"{"id":"m","type":"message","content":[{"type":"text","text":"a"}],
        "stop_reason":"max_tokens","usage":{"input_tokens":1,"output_tokens":1}}"#;
    assert_eq!(
        parse(&response(long, "x").unwrap())["choices"][0]["finish_reason"],
        "length"
    );
}

#[test]
fn translates_a_tool_use_response() {
    let msg = br#"{"id":"msg_01Aq9w938a90dw8q","type":"message","role":"assistant","model":"claude-sonnet-4-5",
        "content":[{"type":"thinking","thinking":"hm","signature":"x"},
          {"type":"tool_use","id":"toolu_01A09q90qw90lq917835lq9","name":"get_weather","input":{"location":"San Francisco, CA"}}],
        "stop_reason":"tool_use","usage":{"input_tokens":10,"output_tokens":30,"cache_read_input_tokens":90}}"#;
    let out = parse(&response(msg, "m").unwrap());
    let choice = &out["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["id"], "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"location": "San Francisco, CA"}));
    assert_eq!(out["usage"]["prompt_tokens"], 100);
    assert_eq!(
        out["usage"]["prompt_tokens_details"],
        json!({"cached_tokens": 90})
    );
    assert!(matches!(
        response(b"not json", "m"),
        Err(TranslateError::Upstream(_))
    ));
    let err = br#"{"type":"error","error":{"type":"api_error","message":"x"}}"#;
    assert!(matches!(
        response(err, "m"),
        Err(TranslateError::Upstream(_))
    ));
}
