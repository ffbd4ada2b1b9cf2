//! The official `openai` Python SDK (PyPI, installed by .ci/run) as the client.

use crate::traffic::{POLICY, setup};
use std::time::Duration;

const SCRIPT: &str = r#"
import json, sys, openai
client = openai.OpenAI(base_url=sys.argv[1], api_key="client-a", max_retries=0)
out = {}
r = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
out["text"] = r.choices[0].message.content
out["usage"] = r.usage.total_tokens
chunks = []
# A client that did not ask for usage reads choices[0] of every chunk: the usage chunk
# the gateway asked the provider for must not reach it (IndexError otherwise).
for ev in client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True):
    if ev.choices[0].delta.content:
        chunks.append(ev.choices[0].delta.content)
    if ev.usage:
        out["unrequested_usage"] = ev.usage.total_tokens
out["chunks"] = chunks
# A client that asked for usage gets the usage chunk.
for ev in client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True}):
    if ev.usage:
        out["stream_usage"] = ev.usage.total_tokens
try:
    client.chat.completions.create(model="forbidden-model", messages=[{"role": "user", "content": "hi"}])
except openai.PermissionDeniedError as e:
    out["denied"] = e.code
try:
    openai.OpenAI(base_url=sys.argv[1], api_key="wrong", max_retries=0).chat.completions.create(model="gpt-4o-mini", messages=[])
except openai.AuthenticationError as e:
    out["unauthenticated"] = e.status_code
# app-b may make 2 requests per window: the SDK reads the limit back from the headers.
b = openai.OpenAI(base_url=sys.argv[1], api_key="client-b", max_retries=0)
remaining = []
for _ in range(2):
    raw = b.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    remaining.append(raw.headers.get("x-ratelimit-remaining-requests"))
    out["limit"] = raw.headers.get("x-ratelimit-limit-requests")
out["remaining"] = remaining
try:
    b.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
except openai.RateLimitError as e:
    out["limited"] = [e.code, e.response.headers.get("x-ratelimit-remaining-requests"), e.response.headers.get("retry-after") is not None]
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_openai_sdk_streaming_and_not() {
    let s = setup(POLICY).await;
    let base = format!("http://{}/v1", s.gw.proxy_addr);
    let result = run_sdk_script(SCRIPT, &base).await;
    assert_eq!(result["text"], "Hello there");
    assert_eq!(result["usage"], 17);
    assert_eq!(result["chunks"], serde_json::json!(["Hel", "lo ", "there"]));
    assert_eq!(result["stream_usage"], 15);
    assert!(result.get("unrequested_usage").is_none(), "{result}");
    assert_eq!(result["denied"], "model_not_allowed");
    assert_eq!(result["unauthenticated"], 401);
    assert_eq!(result["limit"], "2");
    assert_eq!(result["remaining"], serde_json::json!(["1", "0"]));
    assert_eq!(
        result["limited"],
        serde_json::json!(["requests_budget_exceeded", "0", true])
    );
}

/// Runs a Python `script` that uses the official SDK against `base` (its first argument)
/// and returns the JSON it prints.
pub async fn run_sdk_script(script: &str, base: &str) -> serde_json::Value {
    let out = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(base)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "python failed (are `openai` and `anthropic` installed?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

const ANTHROPIC_SCRIPT: &str = r#"
import json, sys, anthropic
# The client's gateway key goes in Authorization (the api_key plugin's default header);
# the gateway replaces it with the provider's x-api-key.
client = anthropic.Anthropic(base_url=sys.argv[1], api_key=None, auth_token="client-a", max_retries=0)
out = {}
r = client.messages.create(model="claude-3-5-haiku", max_tokens=32, messages=[{"role": "user", "content": "hi"}])
out["text"] = r.content[0].text
out["usage"] = [r.usage.input_tokens, r.usage.output_tokens]
text = []
for ev in client.messages.create(model="claude-3-5-haiku", max_tokens=32, messages=[{"role": "user", "content": "hi"}], stream=True):
    if ev.type == "content_block_delta":
        text.append(ev.delta.text)
    if ev.type == "message_delta":
        out["stream_output_tokens"] = ev.usage.output_tokens
out["stream"] = "".join(text)
try:
    client.messages.create(model="claude-forbidden", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
except anthropic.PermissionDeniedError as e:
    out["denied"] = e.status_code
print(json.dumps(out))
"#;

/// The official `anthropic` SDK straight through an anthropic route: key injection,
/// JSON and SSE, and a policy refusal surfacing as the SDK's typed error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_anthropic_sdk_through_an_anthropic_route() {
    let s = setup(POLICY).await;
    let base = format!("http://{}", s.gw.proxy_addr);
    let result = run_sdk_script(ANTHROPIC_SCRIPT, &base).await;
    assert_eq!(result["text"], "Hello");
    assert_eq!(result["usage"], serde_json::json!([21, 4]));
    assert_eq!(result["stream"], "Hello");
    assert_eq!(result["stream_output_tokens"], 7);
    assert_eq!(result["denied"], 403);
    let (headers, _) = s.seen.0.lock().unwrap()[0].clone();
    assert_eq!(headers["x-api-key"], crate::provider::ANTHROPIC_KEY);
}

const FRONT_SCRIPT: &str = r#"
import json, sys, openai
client = openai.OpenAI(base_url=sys.argv[1], api_key="client-a", max_retries=0)
out = {}
msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
r = client.chat.completions.create(model="claude-3-5-haiku", messages=msgs)
out["text"] = r.choices[0].message.content
out["finish"] = r.choices[0].finish_reason
out["usage"] = [r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens]
tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
t = client.chat.completions.create(model="claude-3-5-haiku", messages=msgs, tools=tools, tool_choice="auto")
call = t.choices[0].message.tool_calls[0]
out["tool"] = [call.function.name, json.loads(call.function.arguments), t.choices[0].finish_reason]
chunks = []
# No usage asked for: every chunk has a choice.
for ev in client.chat.completions.create(model="claude-3-5-haiku", messages=msgs, stream=True):
    if ev.choices[0].delta.content:
        chunks.append(ev.choices[0].delta.content)
    if ev.usage:
        out["unrequested_usage"] = True
out["chunks"] = chunks
for ev in client.chat.completions.create(model="claude-3-5-haiku", messages=msgs, stream=True, stream_options={"include_usage": True}):
    if ev.usage:
        out["stream_usage"] = [ev.usage.prompt_tokens, ev.usage.completion_tokens]
try:
    client.chat.completions.create(model="claude-overloaded", messages=msgs)
except openai.APIStatusError as e:
    out["error"] = [e.status_code, e.body.get("type") if isinstance(e.body, dict) else None]
out["models"] = [m.id for m in client.models.list()]
m = client.chat.completions.create(model="fast", messages=msgs)
out["mapped"] = m.model
print(json.dumps(out))
"#;

/// The official `openai` SDK against an Anthropic provider through the gateway's
/// OpenAI-compatible front door: JSON, tools, streams with and without the usage chunk,
/// a provider error in the OpenAI shape, and the route's model list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_openai_sdk_through_the_anthropic_front_door() {
    let s = setup(POLICY).await;
    let base = format!("http://{}/front/v1", s.gw.proxy_addr);
    let result = run_sdk_script(FRONT_SCRIPT, &base).await;
    assert_eq!(result["text"], "Hello", "{result}");
    assert_eq!(result["finish"], "stop");
    assert_eq!(result["usage"], serde_json::json!([21, 4, 25]));
    assert_eq!(
        result["tool"],
        serde_json::json!(["get_weather", {"city": "Paris"}, "tool_calls"])
    );
    assert_eq!(result["chunks"], serde_json::json!(["Hel", "lo"]));
    assert!(result.get("unrequested_usage").is_none(), "{result}");
    assert_eq!(result["stream_usage"], serde_json::json!([21, 7]));
    assert_eq!(result["error"][0], 529);
    assert_eq!(
        result["models"],
        serde_json::json!(["claude-3-5-haiku", "fast"])
    );
    // `fast` is mapped to anthropic/claude-3-5-haiku; the client sees its own name.
    assert_eq!(result["mapped"], "fast");
    assert_eq!(
        s.seen.0.lock().unwrap().last().unwrap().1["model"],
        "claude-3-5-haiku"
    );
    // The provider got Anthropic's API: /v1/messages bodies with the system prompt on top.
    let seen = s.seen.0.lock().unwrap().clone();
    let (headers, first) = &seen[0];
    assert_eq!(headers["x-api-key"], crate::provider::ANTHROPIC_KEY);
    assert_eq!(first["system"], "Be brief.");
    assert_eq!(first["messages"][0]["role"], "user");
    assert!(first["max_tokens"].as_u64().is_some(), "{first}");
    assert_eq!(seen[1].1["tools"][0]["name"], "get_weather");
    // Streams are metered from the translated usage chunk, which the client never asked for.
    assert!(s.gw.proxy().flush_collectors(Duration::from_secs(5)).await);
    let collected = s.collected.lock().unwrap().clone();
    let streamed = collected
        .iter()
        .filter_map(|e| e.usage.as_ref())
        .filter(|u| u.completion_tokens == 7)
        .count();
    assert_eq!(streamed, 2, "both streams metered");
}
