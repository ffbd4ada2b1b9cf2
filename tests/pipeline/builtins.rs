//! Built-in plugins end to end: api_key, headers, ip_filter, rate_limit, request_guard.

use crate::common::client::{empty, full};
use crate::common::gateway::toml_path;
use crate::common::{PluginEntry, get, request};
use crate::support::{Journal, gateway, upstream};
use std::sync::Arc;

#[tokio::test]
async fn api_key_accepts_known_keys_only() {
    let up = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.json");
    std::fs::write(
        &file,
        r#"[{"key":"file-key","identity":"carol","app_id":"f"}]"#,
    )
    .unwrap();
    let hashed = "sha256:8a2cd8eb6df1a0a4cdc6f4e3f4bbd7a0c4a2aa1e14e6c5b0fe49a4e43f1b3f36";
    let extra = format!(
        "config = {{ keys = [{{ key = \"k1\", identity = \"alice\", app_id = \"demo\" }}, {{ key = \"{hashed}\", identity = \"h\" }}], keys_file = {} }}",
        toml_path(&file)
    );
    let plugins = [
        PluginEntry::new("keys", "builtin://api_key", "auth").extra(&extra),
        PluginEntry::new("echo-id", "builtin://headers", "post_auth")
            .extra("config = { set = { \"x-seen\" = \"yes\" } }"),
    ]
    .map(|p| p.toml())
    .concat();
    let gw = gateway(&up, &plugins, Arc::new(Journal::default())).await;
    let ok = request(
        gw.proxy_addr,
        "GET",
        "/x",
        &[("authorization", "Bearer k1")],
        empty(),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["headers"]["x-seen"][0], "yes");
    let from_file = request(
        gw.proxy_addr,
        "GET",
        "/x",
        &[("authorization", "bearer file-key")],
        empty(),
    )
    .await;
    assert_eq!(from_file.status, 200);
    for headers in [
        vec![],
        vec![("authorization", "Bearer nope")],
        vec![("authorization", "Basic k1")],
    ] {
        let denied = request(gw.proxy_addr, "GET", "/x", &headers, empty()).await;
        assert_eq!(denied.status, 401, "{headers:?}");
        assert_eq!(denied.json()["error"]["type"], "unauthorized");
    }
}

#[tokio::test]
async fn api_key_rejects_bad_config_at_load() {
    let plugin = PluginEntry::new("k", "builtin://api_key", "auth")
        .extra("config = { keys = [], typo = 1 }")
        .toml();
    let config = microgateway::Config::from_toml(&format!(
        "[[upstreams]]\nname = \"local-app\"\ntargets = [\"http://127.0.0.1:9\"]\n{plugin}"
    ))
    .unwrap();
    let err = microgateway::start(config).await.err().unwrap().to_string();
    assert!(
        err.contains("plugins.k.config") && err.contains("typo"),
        "{err}"
    );
}

#[tokio::test]
async fn headers_plugin_edits_request_and_response() {
    let up = upstream().await;
    let plugins = [
        PluginEntry::new("req", "builtin://headers", "pre_auth").extra("config = { set = { \"x-a\" = \"1\" }, add = { \"x-b\" = \"2\" }, remove = [\"x-drop\"], rename = { \"x-old\" = \"x-new\" } }"),
        PluginEntry::new("resp", "builtin://headers", "on_response").extra("config = { set = { \"x-served-by\" = \"mg\" }, remove = [\"content-type\"] }"),
    ]
    .map(|p| p.toml())
    .concat();
    let gw = gateway(&up, &plugins, Arc::new(Journal::default())).await;
    let got = request(
        gw.proxy_addr,
        "GET",
        "/x",
        &[("x-drop", "1"), ("x-old", "v"), ("x-b", "0")],
        empty(),
    )
    .await;
    let h = &got.json()["headers"];
    assert_eq!(h["x-a"], serde_json::json!(["1"]));
    assert_eq!(h["x-b"], serde_json::json!(["0", "2"]));
    assert!(h["x-drop"].is_null() && h["x-old"].is_null());
    assert_eq!(h["x-new"], serde_json::json!(["v"]));
    assert_eq!(got.headers["x-served-by"], "mg");
    assert!(got.headers.get("content-type").is_none());
}

#[tokio::test]
async fn headers_plugin_refuses_framing_headers_at_load() {
    let plugin = PluginEntry::new("h", "builtin://headers", "pre_auth")
        .extra("config = { set = { \"transfer-encoding\" = \"chunked\" } }")
        .toml();
    let config = microgateway::Config::from_toml(&format!(
        "[[upstreams]]\nname = \"local-app\"\ntargets = [\"http://127.0.0.1:9\"]\n{plugin}"
    ))
    .unwrap();
    let err = microgateway::start(config).await.err().unwrap().to_string();
    assert!(err.contains("transfer-encoding"), "{err}");
}

#[tokio::test]
async fn ip_filter_denies_and_allows() {
    let up = upstream().await;
    let plugins = [
        PluginEntry::new("deny-local", "builtin://ip_filter", "pre_auth")
            .extra("routes = [\"other\"]\nconfig = { deny = [\"127.0.0.0/8\"] }"),
        PluginEntry::new("allow-local", "builtin://ip_filter", "pre_auth")
            .extra("routes = [\"r\"]\nconfig = { allow = [\"127.0.0.1\"] }"),
    ]
    .map(|p| p.toml())
    .concat();
    let gw = gateway(&up, &plugins, Arc::new(Journal::default())).await;
    let denied = get(gw.proxy_addr, "/other/x").await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.json()["error"]["type"], "forbidden");
    assert_eq!(get(gw.proxy_addr, "/x").await.status, 200);
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let up = upstream().await;
    let plugin = PluginEntry::new("rl", "builtin://rate_limit", "pre_auth")
        .extra("config = { requests_per_second = 0.5, burst = 3, key = \"ip\" }")
        .toml();
    let gw = gateway(&up, &plugin, Arc::new(Journal::default())).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(get(gw.proxy_addr, "/x").await);
    }
    let codes: Vec<u16> = statuses.iter().map(|g| g.status.as_u16()).collect();
    assert_eq!(codes, vec![200, 200, 200, 429, 429]);
    let limited = &statuses[3];
    assert_eq!(limited.json()["error"]["type"], "rate_limit_exceeded");
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    // Another route has its own bucket.
    assert_eq!(get(gw.proxy_addr, "/other/x").await.status, 200);
}

#[tokio::test]
async fn request_guard_checks_method_and_size() {
    let up = upstream().await;
    let plugin = PluginEntry::new("guard", "builtin://request_guard", "pre_auth")
        .extra("config = { methods = [\"GET\", \"post\"], max_body_bytes = 10 }")
        .toml();
    let gw = gateway(&up, &plugin, Arc::new(Journal::default())).await;
    assert_eq!(
        request(gw.proxy_addr, "DELETE", "/x", &[], empty())
            .await
            .status,
        405
    );
    assert_eq!(
        request(gw.proxy_addr, "POST", "/x", &[], full("0123456789abc"))
            .await
            .status,
        413
    );
    let ok = request(gw.proxy_addr, "POST", "/x", &[], full("small")).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json()["body"], "small");
}
