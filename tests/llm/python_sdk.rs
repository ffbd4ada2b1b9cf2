//! The official `openai` Python SDK (PyPI, installed by .ci/run) as the client.

use crate::traffic::{POLICY, setup};

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
