//! Failover between LLM providers of one family: the official `openai` Python SDK
//! (`max_retries=0`, so the SDK itself never retries) succeeds when the first provider
//! answers 429 or 500 and the fallback provider answers.

use crate::common::faulty::{Fault, Faulty};
use crate::provider::{self, OPENAI_KEY};
use crate::python_sdk::run_sdk_script;

const SCRIPT: &str = r#"
import json, sys, openai
client = openai.OpenAI(base_url=sys.argv[1], api_key="client-key", max_retries=0)
raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
r = raw.parse()
chunks = []
for ev in client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True):
    if ev.choices and ev.choices[0].delta.content:
        chunks.append(ev.choices[0].delta.content)
print(json.dumps({"text": r.choices[0].message.content, "upstream": raw.headers.get("x-microgateway-upstream"), "chunks": chunks}))
"#;

/// Runs the SDK against a gateway whose `openai` route's primary provider behaves as
/// `fault` and whose fallback is the fake provider; returns the primary's hit count.
async fn through_fallback(fault: Fault) -> usize {
    let primary = Faulty::start("primary", fault).await;
    let (backup, seen) = provider::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("primary.key"), "sk-primary").unwrap();
    std::fs::write(dir.path().join("backup.key"), OPENAI_KEY).unwrap();
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
data_dir = "{dir}/data"
[log]
level = "warn"
[[upstreams]]
name = "openai"
targets = ["{primary}"]
llm = {{ provider = "openai", api_key_file = "{dir}/primary.key" }}
[[upstreams]]
name = "openai-backup"
targets = ["http://{backup}"]
llm = {{ provider = "openai", api_key_file = "{dir}/backup.key" }}
[[routes]]
name = "openai"
path_prefix = "/v1"
upstream = "openai"
fallback = ["openai-backup"]
retry_non_idempotent = true
retry = {{ attempts = 1, on = ["connect", "429", "5xx"] }}
"#,
        dir = dir.path().display(),
        primary = primary.url(),
    );
    let gw = microgateway::start(microgateway::Config::from_toml(&toml).unwrap())
        .await
        .unwrap();
    let base = format!("http://{}/v1", gw.proxy_addr);
    let result = run_sdk_script(SCRIPT, &base).await;
    assert_eq!(result["text"], "Hello there");
    assert_eq!(result["chunks"], serde_json::json!(["Hel", "lo ", "there"]));
    assert_eq!(result["upstream"], format!("openai-backup/{backup}"));
    // The fallback got the backup's own key, never the primary's.
    for (headers, _) in seen.0.lock().unwrap().iter() {
        assert_eq!(headers["authorization"], format!("Bearer {OPENAI_KEY}"));
    }
    assert_eq!(seen.0.lock().unwrap().len(), 2);
    primary.hits()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_succeeds_when_the_first_provider_answers_429() {
    // Retry-After: 30 is past retry_after_max: no wait, straight to the fallback.
    let fault = Fault::TooManyThenOk {
        retry_after: "30",
        first: usize::MAX,
    };
    assert_eq!(through_fallback(fault).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_succeeds_when_the_first_provider_answers_500() {
    let fault = Fault::Always {
        status: 500,
        delay: std::time::Duration::ZERO,
    };
    assert_eq!(through_fallback(fault).await, 2);
}
