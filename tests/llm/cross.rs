//! Cross-family fallback: an OpenAI chat request whose `model_map` entry lists an
//! OpenAI and an Anthropic model is sent to the OpenAI group first and, when that group
//! fails, translated for the Anthropic group; the official `openai` SDK sees one
//! OpenAI-shaped answer either way. A `provider/` model name picks its family's group
//! directly, and requests that cannot be translated never reach the other family.

use crate::common::client::{full, request};
use crate::common::faulty::{Fault, Faulty};
use crate::provider::{self, ANTHROPIC_KEY};
use crate::python_sdk::run_sdk_script;

const SCRIPT: &str = r#"
import json, sys, openai
client = openai.OpenAI(base_url=sys.argv[1], api_key="client-key", max_retries=0)
raw = client.chat.completions.with_raw_response.create(model="smart", messages=[{"role": "user", "content": "hi"}])
r = raw.parse()
chunks = []
for ev in client.chat.completions.create(model="smart", messages=[{"role": "user", "content": "hi"}], stream=True):
    if ev.choices and ev.choices[0].delta.content:
        chunks.append(ev.choices[0].delta.content)
print(json.dumps({"text": r.choices[0].message.content, "model": r.model, "upstream": raw.headers.get("x-microgateway-upstream"), "chunks": chunks}))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openai_chat_fails_over_to_anthropic_translated() {
    let primary = Faulty::start(
        "openai",
        Fault::Always {
            status: 500,
            delay: std::time::Duration::ZERO,
        },
    )
    .await;
    let (claude, seen) = provider::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("openai.key"), "sk-openai").unwrap();
    std::fs::write(dir.path().join("anthropic.key"), ANTHROPIC_KEY).unwrap();
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
llm = {{ provider = "openai", api_key_file = "{dir}/openai.key" }}
[[upstreams]]
name = "anthropic"
targets = ["http://{claude}"]
llm = {{ provider = "anthropic", api_key_file = "{dir}/anthropic.key" }}
[[routes]]
name = "smart"
path_prefix = "/v1"
upstream = "openai"
fallback = ["anthropic"]
retry_non_idempotent = true
retry = {{ attempts = 1, on = ["connect", "5xx"] }}
llm = {{ model_map = {{ "smart" = ["openai/gpt-4o-mini", "anthropic/claude-3-5-haiku"] }} }}
"#,
        dir = dir.path().display(),
        primary = primary.url(),
    );
    let gw = microgateway::start(microgateway::Config::from_toml(&toml).unwrap())
        .await
        .unwrap();
    let base = format!("http://{}/v1", gw.proxy_addr);
    let result = run_sdk_script(SCRIPT, &base).await;
    // Both the JSON answer and the stream came from Anthropic, in the OpenAI shape, under
    // the client's model name.
    assert_eq!(result["text"], "Hello");
    assert_eq!(result["model"], "smart");
    assert_eq!(result["chunks"], serde_json::json!(["Hel", "lo"]));
    assert_eq!(result["upstream"], format!("anthropic/{claude}"));
    assert_eq!(primary.hits(), 2, "the OpenAI group is tried first");
    {
        let seen = seen.0.lock().unwrap();
        assert_eq!(seen.len(), 2);
        for (headers, body) in seen.iter() {
            assert_eq!(headers["x-api-key"], ANTHROPIC_KEY);
            assert_eq!(body["model"], "claude-3-5-haiku");
            assert!(
                body["messages"].is_array() && body["max_tokens"].is_number(),
                "{body}"
            );
        }
    }

    // A model named for Anthropic goes there first: the OpenAI group is not tried.
    let direct = serde_json::json!({"model": "anthropic/claude-3-5-haiku", "messages": [{"role": "user", "content": "hi"}]});
    let reply = request(
        gw.proxy_addr,
        "POST",
        "/v1/chat/completions",
        &[("content-type", "application/json")],
        full(direct.to_string()),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["choices"][0]["message"]["content"], "Hello");
    assert_eq!(primary.hits(), 2);

    // An embeddings request cannot be translated: it stays with the OpenAI family and
    // its failure is the client's answer.
    let embed = serde_json::json!({"model": "text-embedding-3-small", "input": "x"});
    let reply = request(
        gw.proxy_addr,
        "POST",
        "/v1/embeddings",
        &[("content-type", "application/json")],
        full(embed.to_string()),
    )
    .await;
    assert_eq!(reply.status, 500);
    assert_eq!(
        seen.0.lock().unwrap().len(),
        3,
        "only the chat above reached Anthropic"
    );
    gw.shutdown();
    gw.wait().await;
}
