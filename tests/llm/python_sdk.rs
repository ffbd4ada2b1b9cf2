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
        "python failed (is `openai` installed?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
