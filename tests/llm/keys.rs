//! Provider key pools against a real fake provider: keys rotate round robin, a key
//! answered 429 or 401 is left out for its cooldown, and rewriting `api_keys_file` swaps
//! the keys without a restart. The provider records the key of every request.

use crate::common::client::full;
use crate::common::{GatewayConfig, get, request, serve};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Response;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The key the fake provider answers 429 (Retry-After: 30) for.
const HOT_KEY: &str = "sk-hot";
/// The key the fake provider answers 401 for.
const REVOKED_KEY: &str = "sk-revoked";

/// Starts a provider that records the bearer key of every request and answers 429 for
/// [`HOT_KEY`], 401 for [`REVOKED_KEY`], 200 with a chat completion otherwise.
async fn provider() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let addr = serve::http1(move |req: hyper::Request<hyper::body::Incoming>| {
        let log = log.clone();
        async move {
            let key = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("")
                .to_string();
            let _ = req.into_body().collect().await;
            log.lock().unwrap().push(key.clone());
            let (status, body) = if key == HOT_KEY {
                (429, r#"{"error":{"type":"rate_limit_exceeded"}}"#.to_string())
            } else if key == REVOKED_KEY {
                (401, r#"{"error":{"type":"invalid_api_key"}}"#.to_string())
            } else {
                (
                    200,
                    r#"{"id":"c1","object":"chat.completion","model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#.to_string(),
                )
            };
            let mut r = Response::new(Full::new(Bytes::from(body)));
            *r.status_mut() = http::StatusCode::from_u16(status).unwrap();
            r.headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            if status == 429 {
                r.headers_mut().insert("retry-after", "30".parse().unwrap());
            }
            r
        }
    })
    .await;
    (addr, seen)
}

/// A gateway with one OpenAI upstream `name` whose keys come from `file`.
async fn gateway(
    provider: SocketAddr,
    name: &str,
    file: &std::path::Path,
) -> microgateway::server::RunningGateway {
    let llm = format!(
        "llm = {{ provider = \"openai\", api_keys_file = {} }}",
        crate::common::gateway::toml_path(file)
    );
    GatewayConfig::new()
        .upstream_urls(name, &[format!("http://{provider}")], &llm)
        .route(name, name, "path_prefix = \"/v1\"")
        .start()
        .await
}

async fn chat(gateway: SocketAddr) -> u16 {
    let body = full(r#"{"model":"gpt-4o-mini","messages":[]}"#);
    let reply = request(
        gateway,
        "POST",
        "/v1/chat/completions",
        &[
            ("content-type", "application/json"),
            ("authorization", "Bearer client-key"),
        ],
        body,
    )
    .await;
    reply.status.as_u16()
}

fn metric(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn keys_rotate_round_robin() {
    let (addr, seen) = provider().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys");
    std::fs::write(&file, "# pool\nsk-a\n\nsk-b\nsk-c\n").unwrap();
    let gw = gateway(addr, "keys-rotate", &file).await;
    for _ in 0..6 {
        assert_eq!(chat(gw.proxy_addr).await, 200);
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 6, "{seen:?}");
    assert!(!seen.iter().any(|k| k == "client-key"), "{seen:?}");
    for window in seen.chunks(3) {
        let mut keys = window.to_vec();
        keys.sort();
        assert_eq!(keys, ["sk-a", "sk-b", "sk-c"], "{seen:?}");
    }
}

#[tokio::test]
async fn a_key_answered_429_is_skipped_for_its_cooldown() {
    let (addr, seen) = provider().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys");
    std::fs::write(&file, format!("{HOT_KEY}\nsk-cool\n")).unwrap();
    let gw = gateway(addr, "keys-cooldown", &file).await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(chat(gw.proxy_addr).await);
    }
    let seen = seen.lock().unwrap().clone();
    // The hot key is used once, answered 429 with Retry-After: 30, and left out after.
    assert_eq!(seen.iter().filter(|k| *k == HOT_KEY).count(), 1, "{seen:?}");
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        1,
        "{statuses:?}"
    );
    let hot = seen.iter().position(|k| k == HOT_KEY).unwrap();
    assert!(seen[hot + 1..].iter().all(|k| k == "sk-cool"), "{seen:?}");
    let m = get(gw.admin_addr, "/metrics").await.text();
    assert_eq!(
        metric(
            &m,
            "microgateway_llm_key_cooldowns_total{",
            &["upstream=\"keys-cooldown\"", "key=\"0\""]
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "microgateway_llm_keys_available{",
            &["upstream=\"keys-cooldown\""]
        ),
        Some(1.0),
        "{m}"
    );
    // The key never appears in the metrics.
    assert!(!m.contains(HOT_KEY));
}

#[tokio::test]
async fn a_key_answered_401_is_left_out() {
    let (addr, seen) = provider().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys");
    std::fs::write(&file, format!("sk-fine\n{REVOKED_KEY}\n")).unwrap();
    let gw = gateway(addr, "keys-revoked", &file).await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(chat(gw.proxy_addr).await);
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.iter().filter(|k| *k == REVOKED_KEY).count(),
        1,
        "{seen:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        1,
        "{statuses:?}"
    );
    let m = get(gw.admin_addr, "/metrics").await.text();
    assert_eq!(
        metric(
            &m,
            "microgateway_llm_key_cooldowns_total{",
            &["upstream=\"keys-revoked\"", "key=\"1\""]
        ),
        Some(1.0),
        "{m}"
    );
}

#[tokio::test]
async fn rewriting_the_key_file_swaps_the_keys_without_a_restart() {
    let (addr, seen) = provider().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys");
    std::fs::write(&file, "sk-old\n").unwrap();
    let gw = gateway(addr, "keys-reload", &file).await;
    assert_eq!(chat(gw.proxy_addr).await, 200);
    assert_eq!(seen.lock().unwrap().as_slice(), ["sk-old"]);

    // Write a new file and move it into place, as secret managers do.
    let next = dir.path().join("keys.next");
    std::fs::write(&next, "# rotated\nsk-new-1\nsk-new-2\n").unwrap();
    std::fs::rename(&next, &file).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        assert_eq!(chat(gw.proxy_addr).await, 200);
        if seen.lock().unwrap().last().is_some_and(|k| k != "sk-old") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "keys not reloaded: {:?}",
            seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let before = seen.lock().unwrap().len();
    for _ in 0..4 {
        assert_eq!(chat(gw.proxy_addr).await, 200);
    }
    let after: Vec<String> = seen.lock().unwrap()[before..].to_vec();
    assert!(after.iter().all(|k| k.starts_with("sk-new-")), "{after:?}");
    assert!(after.iter().any(|k| k == "sk-new-1") && after.iter().any(|k| k == "sk-new-2"));

    // A broken rewrite (no keys at all) is refused and the current keys stay.
    std::fs::write(&file, "# nothing here\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let m = get(gw.admin_addr, "/metrics").await.text();
        if metric(
            &m,
            "microgateway_llm_key_reloads_total{",
            &["upstream=\"keys-reload\"", "result=\"error\""],
        )
        .is_some()
        {
            assert_eq!(
                metric(
                    &m,
                    "microgateway_llm_key_reloads_total{",
                    &["upstream=\"keys-reload\"", "result=\"ok\""]
                ),
                Some(1.0),
                "{m}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no failed reload recorded: {m}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(chat(gw.proxy_addr).await, 200);
    assert!(seen.lock().unwrap().last().unwrap().starts_with("sk-new-"));
}

#[test]
fn key_settings_are_validated_by_their_dotted_keys() {
    use microgateway::config::{Config, ConfigError};
    let invalid = |llm: &str| -> (String, String) {
        let toml = format!(
            "[[upstreams]]\nname = \"u\"\ntargets = [\"http://127.0.0.1:9\"]\nllm = {{ provider = \"openai\", {llm} }}\n[[routes]]\nname = \"r\"\nupstream = \"u\""
        );
        match Config::from_toml(&toml) {
            Err(ConfigError::Invalid { key, message }) => (key, message),
            other => panic!("expected an Invalid error for {llm}, got {other:?}"),
        }
    };
    let (key, message) = invalid("api_key_env = \"A\", api_keys_file = \"/k\"");
    assert_eq!(key, "upstreams[0].llm");
    assert!(message.contains("api_key_env, api_keys_file"), "{message}");
    let (key, message) = invalid("key_cooldown = \"1s\"");
    assert_eq!(key, "upstreams[0].llm");
    assert!(message.contains("none"), "{message}");
    let (key, _) = invalid("api_keys_env = []");
    assert_eq!(key, "upstreams[0].llm.api_keys_env");
    let (key, _) = invalid("api_keys_env = [\"A\"], key_cooldown = \"2days\"");
    assert_eq!(key, "upstreams[0].llm.key_cooldown");
}
