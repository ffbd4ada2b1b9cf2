//! Each example plugin loads via `file://` and via `grpc://` and works end to end.

use crate::common::{PluginEntry, TestUpstream, get, get_with};
use crate::support::{AUTH, ENRICHER, PluginServer, SSE_FILTER, config, file};
use base64::Engine as _;
use hmac::{Hmac, Mac};

/// Two instances of one plugin; the same config for both, because one `grpc://` server
/// holds one configuration.
fn enricher_entry(command: &str) -> String {
    let config = "config = { headers = { \"x-hello\" = \"world\" }, response_headers = { \"x-resp\" = \"yes\" } }";
    PluginEntry::new("enrich", command, "pre_auth")
        .extra(config)
        .toml()
        + &PluginEntry::new("enrich-resp", command, "on_response")
            .extra(config)
            .toml()
}

async fn check_enricher(command: &str) {
    let up = TestUpstream::start("up").await;
    let gw = config(&up, &enricher_entry(command)).start().await;
    let reply = get(gw.proxy_addr, "/x").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let echo = reply.echo();
    assert_eq!(echo.header("x-hello"), Some("world"));
    assert_eq!(
        echo.header("x-plugin-request-id"),
        reply.header("x-request-id")
    );
    assert_eq!(reply.header("x-resp"), Some("yes"));
}

#[tokio::test]
async fn header_enricher_via_file() {
    check_enricher(&file(ENRICHER)).await;
}

#[tokio::test]
async fn header_enricher_via_grpc() {
    let server = PluginServer::start(ENRICHER).await;
    check_enricher(&server.url()).await;
}

fn jwt(secret: &str, claims: serde_json::Value) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let head = b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = b64.encode(claims.to_string());
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{head}.{body}").as_bytes());
    format!("{head}.{body}.{}", b64.encode(mac.finalize().into_bytes()))
}

async fn check_auth(command: &str) {
    let up = TestUpstream::start("up").await;
    let entry = PluginEntry::new("auth", command, "auth")
        .extra("config = { api_keys = { \"k-123\" = \"svc-a\" }, jwt_secret = \"s3cret\" }")
        .toml();
    let gw = config(&up, &entry).start().await;
    assert_eq!(
        get_with(gw.proxy_addr, "/x", &[("x-api-key", "k-123")])
            .await
            .status,
        200
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let good = jwt(
        "s3cret",
        serde_json::json!({"sub": "alice", "app": "demo", "exp": now + 60}),
    );
    let bearer = format!("Bearer {good}");
    assert_eq!(
        get_with(gw.proxy_addr, "/x", &[("authorization", &bearer)])
            .await
            .status,
        200
    );
    let forged = format!(
        "Bearer {}",
        jwt(
            "wrong",
            serde_json::json!({"sub": "mallory", "exp": now + 60})
        )
    );
    let denied = get_with(gw.proxy_addr, "/x", &[("authorization", &forged)]).await;
    assert_eq!(denied.status, 401);
    assert_eq!(denied.json()["error"]["type"], "unauthorized");
    let expired = format!(
        "Bearer {}",
        jwt(
            "s3cret",
            serde_json::json!({"sub": "alice", "exp": now - 1})
        )
    );
    let reply = get_with(gw.proxy_addr, "/x", &[("authorization", &expired)]).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json()["error"]["type"], "token_expired");
    assert_eq!(get(gw.proxy_addr, "/x").await.status, 401);
}

#[tokio::test]
async fn auth_plugin_via_file() {
    check_auth(&file(AUTH)).await;
}

#[tokio::test]
async fn auth_plugin_via_grpc() {
    let server = PluginServer::start(AUTH).await;
    check_auth(&server.url()).await;
}

async fn check_sse(command: &str) {
    let up = TestUpstream::start("up").await;
    let entry = PluginEntry::new("filter", command, "on_response")
        .extra("config = { redact = [\"event-1\"], drop_if_contains = [\"event-2\"] }")
        .toml();
    let gw = config(&up, &entry).start().await;
    let reply = get(gw.proxy_addr, "/sse?n=4&gap_ms=20").await;
    assert_eq!(reply.status, 200);
    let text = reply.text();
    assert!(
        text.contains("event-0") && text.contains("event-3"),
        "{text}"
    );
    assert!(
        text.contains("[redacted]") && !text.contains("event-1"),
        "{text}"
    );
    assert!(!text.contains("event-2"), "{text}");
}

#[tokio::test]
async fn sse_filter_via_file() {
    check_sse(&file(SSE_FILTER)).await;
}

#[tokio::test]
async fn sse_filter_via_grpc() {
    let server = PluginServer::start(SSE_FILTER).await;
    check_sse(&server.url()).await;
}

const GUARDED: &str = r#"
import asyncio, json, sys, websockets
async def main():
    out = {}
    async with websockets.connect(sys.argv[1], ping_interval=None) as ws:
        await ws.send("my secret key")
        out["redacted"] = await ws.recv()
        await ws.send("please drop-me")
        await ws.send(b"secret bytes")
        out["binary"] = (await ws.recv()).decode()
        await ws.send(["sec", "ret in ", "fragments"])
        out["fragmented"] = await ws.recv()
    out["close_code"] = ws.close_code
    print(json.dumps(out))
asyncio.run(main())
"#;

/// The SSE filter's `WebsocketMessage` hook over the contract: text messages are
/// redacted both ways and dropped on a marker; binary ones pass unread.
async fn check_websocket_messages(command: &str) {
    let echo = crate::common::websocket::echo().await;
    let entry = PluginEntry::new("filter", command, "on_response")
        .extra("config = { redact = [\"secret\"], drop_if_contains = [\"drop-me\"] }")
        .toml();
    let gw = crate::common::GatewayConfig::new()
        .upstream_urls("ws", &[format!("http://127.0.0.1:{}", echo.port)], "")
        .route("guarded", "ws", "")
        .raw("[plugin_runtime]\nallow_internal_network_access = true\nstart_timeout = \"5s\"\n")
        .raw(&entry)
        .start()
        .await;
    let url = format!("ws://{}/chat", gw.proxy_addr);
    let out = crate::common::websocket::client(GUARDED, &url).await;
    assert_eq!(out["redacted"], "my [redacted] key");
    // The dropped message never reached the echo server, so the next answer is the
    // binary message, unchanged.
    assert_eq!(out["binary"], "secret bytes");
    assert_eq!(out["fragmented"], "[redacted] in fragments");
    assert_eq!(out["close_code"], 1000);
}

#[tokio::test]
async fn websocket_message_hook_via_file() {
    check_websocket_messages(&file(SSE_FILTER)).await;
}

#[tokio::test]
async fn websocket_message_hook_via_grpc() {
    let server = PluginServer::start(SSE_FILTER).await;
    check_websocket_messages(&server.url()).await;
}

#[tokio::test]
async fn plugin_refusing_its_config_fails_the_load() {
    let up = TestUpstream::start("up").await;
    let entry = PluginEntry::file("auth", AUTH, "auth")
        .extra("config = { nothing = true }")
        .toml();
    let err = crate::support::start_error(&config(&up, &entry)).await;
    assert!(err.contains("refused its configuration"), "{err}");
}

#[tokio::test]
async fn python_example_plugin_via_file() {
    // Needs grpcio, grpcio-tools and grpcio-health-checking (installed by .ci/run).
    let up = TestUpstream::start("up").await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/python/plugin.py");
    let entry = PluginEntry::file("py", script, "pre_auth")
        .extra("config = { headers = { \"x-from-python\" = \"yes\" } }")
        .toml();
    let toml = config(&up, &entry)
        .toml()
        .replace("start_timeout = \"5s\"", "start_timeout = \"60s\"");
    let gw = microgateway::start(microgateway::Config::from_toml(&toml).unwrap())
        .await
        .unwrap();
    let reply = get(gw.proxy_addr, "/x").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.echo().header("x-from-python"), Some("yes"));
    gw.shutdown();
    gw.wait().await;
}
