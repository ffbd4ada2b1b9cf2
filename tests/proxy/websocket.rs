//! WebSockets through the gateway, with the PyPI `websockets` package on both ends (an
//! echo server as the upstream, a client): text, a 2 MiB message, fragmentation,
//! ping/pong and the close handshake over HTTP/1.1 Upgrade; the same echo over an
//! HTTP/2 extended CONNECT stream (RFC 8441) from hyper's client; an auth plugin
//! refusing the upgrade; a plugin reload and a gateway shutdown with sessions open; the
//! idle timeout and the per-route connection cap.

use crate::common::websocket::{Echo, client, client_with, echo, echo_with};
use crate::common::{GatewayConfig, PluginEntry};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// A gateway with route `route` (metrics are per process: each test has its own name)
/// to the echo server.
fn gateway(echo: &Echo, route: &str, route_extra: &str) -> GatewayConfig {
    GatewayConfig::new()
        .upstream_urls("ws", &[format!("http://127.0.0.1:{}", echo.port)], "")
        .route(route, "ws", route_extra)
}

const TALK: &str = r#"
import asyncio, json, os, sys, websockets
async def main():
    out = {}
    async with websockets.connect(sys.argv[1], max_size=None, ping_interval=None) as ws:
        await ws.send("hello")
        out["text"] = await ws.recv()
        # Random, so permessage-deflate cannot shrink it on the wire.
        big = os.urandom(2 * 1024 * 1024)
        await ws.send(big)
        out["big"] = (await ws.recv()) == big
        await ws.send(["frag", "ment", "ed"])
        out["fragmented"] = await ws.recv()
        pong = await ws.ping()
        await asyncio.wait_for(pong, 5)
        out["pong"] = True
    out["close_code"] = ws.close_code
    print(json.dumps(out))
asyncio.run(main())
"#;

/// The value of the metric line starting with `series`, 0 when there is none.
pub async fn metric(admin: std::net::SocketAddr, series: &str) -> f64 {
    crate::health::metric(admin, series).await.unwrap_or(0.0)
}

/// The value of `series` once it reaches `want`, or its last value after 5 s. A session's
/// close counter moves just after its close frame is sent, so a client that saw the
/// close may read the metrics a moment before the count.
async fn metric_reaching(admin: std::net::SocketAddr, series: &str, want: f64) -> f64 {
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let value = metric(admin, series).await;
        if value == want || tokio::time::Instant::now() > until {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_echoes_text_large_fragmented_and_pings_over_http1() {
    let echo = echo().await;
    let gw = gateway(&echo, "echo", "").start().await;
    let url = format!("ws://{}/chat", gw.proxy_addr);
    let out = client(TALK, &url).await;
    assert_eq!(out["text"], "hello");
    assert_eq!(out["big"], true, "the 2 MiB message came back intact");
    assert_eq!(out["fragmented"], "fragmented");
    assert_eq!(out["pong"], true);
    assert_eq!(out["close_code"], 1000);
    let up = r#"microgateway_upgraded_bytes_total{route="echo",direction="to_upstream"}"#;
    let down = r#"microgateway_upgraded_bytes_total{route="echo",direction="to_client"}"#;
    let closed = r#"microgateway_upgraded_closed_total{route="echo",reason="client_close"}"#;
    let settled = metric_reaching(gw.admin_addr, closed, 1.0).await == 1.0;
    let all = crate::common::get(gw.admin_addr, "/metrics").await.text();
    assert!(
        settled,
        "the close was not counted: {}",
        all.lines()
            .filter(|l| l.contains("upgraded_closed"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        metric(gw.admin_addr, up).await > 2.0 * 1024.0 * 1024.0,
        "{}",
        all.lines()
            .filter(|l| l.contains("upgraded"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(metric(gw.admin_addr, down).await > 2.0 * 1024.0 * 1024.0);
    let open = r#"microgateway_upgraded_connections{route="echo"}"#;
    assert_eq!(metric(gw.admin_addr, open).await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_over_tls_on_both_legs() {
    let pki = crate::common::pki::TestPki::new();
    let echo = echo_with(&[&pki.cert_path, &pki.key_path]).await;
    let upstream = format!(
        "ca_file = {}\nprotocol = \"http1\"",
        crate::common::gateway::toml_path(&pki.ca_path)
    );
    let gw = GatewayConfig::new()
        .server(&format!(
            "[server.tls]\ncert = {}\nkey = {}",
            crate::common::gateway::toml_path(&pki.cert_path),
            crate::common::gateway::toml_path(&pki.key_path)
        ))
        .upstream_urls(
            "wss",
            &[format!("https://127.0.0.1:{}", echo.port)],
            &upstream,
        )
        .route("tls", "wss", "")
        .start()
        .await;
    let url = format!("wss://localhost:{}/chat", gw.proxy_addr.port());
    let ca = pki.ca_path.display().to_string();
    let out = client_with(TALK, &url, &[("SSL_CERT_FILE", &ca)]).await;
    assert_eq!(out["text"], "hello");
    assert_eq!(out["big"], true);
    assert_eq!(out["close_code"], 1000);
}

/// A masked client text frame.
fn text_frame(text: &str) -> Vec<u8> {
    let key = [1u8, 2, 3, 4];
    let mut f = vec![0x81, 0x80 | text.len() as u8];
    f.extend_from_slice(&key);
    f.extend(text.bytes().enumerate().map(|(i, b)| b ^ key[i % 4]));
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_extended_connect_becomes_an_http1_upgrade_upstream() {
    let echo = echo().await;
    let gw = gateway(&echo, "h2", "").start().await;
    let mut h2 = crate::common::client::h2c(gw.proxy_addr).await;
    let mut io = h2_websocket(&mut h2, gw.proxy_addr).await;
    echoes(&mut io, "over h2").await;
}

const REFUSED: &str = r#"
import asyncio, json, sys, websockets
async def main():
    try:
        async with websockets.connect(sys.argv[1]) as ws:
            print(json.dumps({"status": 101}))
    except websockets.exceptions.InvalidStatus as e:
        print(json.dumps({"status": e.response.status_code}))
asyncio.run(main())
"#;

/// Opens a WebSocket on an HTTP/2 extended CONNECT stream of `h2`: answered `200`,
/// without the HTTP/1.1 handshake's `Sec-WebSocket-Accept`.
async fn h2_websocket(
    h2: &mut hyper::client::conn::http2::SendRequest<crate::common::client::ReqBody>,
    addr: std::net::SocketAddr,
) -> hyper_util::rt::TokioIo<hyper::upgrade::Upgraded> {
    let mut req = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri(format!("http://{addr}/chat"))
        .header("sec-websocket-version", "13")
        .body(crate::common::client::empty())
        .unwrap();
    req.extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    let resp = h2.send_request(req).await.unwrap();
    assert_eq!(
        resp.status(),
        200,
        "extended CONNECT answered {:?}",
        resp.status()
    );
    assert!(resp.headers().get("sec-websocket-accept").is_none());
    hyper_util::rt::TokioIo::new(hyper::upgrade::on(resp).await.unwrap())
}

/// Sends `text` as one text frame on `io` and reads it back from the echo server.
async fn echoes(io: &mut hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>, text: &str) {
    io.write_all(&text_frame(text)).await.unwrap();
    let mut head = [0u8; 2];
    io.read_exact(&mut head).await.unwrap();
    assert_eq!(
        head,
        [0x81, text.len() as u8],
        "an unmasked text frame of {} bytes",
        text.len()
    );
    let mut back = vec![0u8; text.len()];
    io.read_exact(&mut back).await.unwrap();
    assert_eq!(back, text.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_http2_session_outlives_the_connection_idle_timeout() {
    let echo = echo().await;
    // The connection's idle timeout is 300 ms, the session's the default 60 s.
    let gw = gateway(&echo, "h2quiet", "")
        .server("idle_timeout = \"300ms\"")
        .start()
        .await;
    let mut h2 = crate::common::client::h2c(gw.proxy_addr).await;
    let mut io = h2_websocket(&mut h2, gw.proxy_addr).await;
    // Quiet for several connection idle timeouts: before, the connection was closed
    // under the session after two of them.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    echoes(&mut io, "still here").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auth_plugin_refuses_the_upgrade_before_it_switches() {
    let echo = echo().await;
    let keys = PluginEntry::new("keys", "builtin://api_key", "auth")
        .extra(r#"config = { keys = [{ key = "k1", identity = "a" }] }"#);
    let gw = gateway(&echo, "auth", "").plugin(keys).start().await;
    let out = client(REFUSED, &format!("ws://{}/chat", gw.proxy_addr)).await;
    assert_eq!(out["status"], 401);
}

const HOLD: &str = r#"
import asyncio, json, sys, websockets
async def main():
    out = {}
    async with websockets.connect(sys.argv[1], ping_interval=None) as ws:
        await ws.send("before")
        out["before"] = await ws.recv()
        print("ready", flush=True)
        line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        if line.strip() == "talk":
            await ws.send("after")
            out["after"] = await ws.recv()
        else:
            try:
                await asyncio.wait_for(ws.recv(), 10)
            except websockets.ConnectionClosed:
                pass
    out["close_code"] = ws.close_code
    print(json.dumps(out), flush=True)
asyncio.run(main())
"#;

/// A client that holds its session open until told `talk` (send once more) or
/// `wait` (wait for the gateway to close it).
struct Held {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

async fn hold(url: &str) -> Held {
    let mut child = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(HOLD)
        .arg(url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("ready"));
    Held { child, lines }
}

impl Held {
    async fn finish(mut self, say: &str) -> serde_json::Value {
        let mut stdin = self.child.stdin.take().unwrap();
        stdin
            .write_all(format!("{say}\n").as_bytes())
            .await
            .unwrap();
        let line = tokio::time::timeout(Duration::from_secs(20), self.lines.next_line())
            .await
            .expect("the client finished")
            .unwrap()
            .unwrap();
        serde_json::from_str(&line).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_reload_never_cuts_an_open_session() {
    let echo = echo().await;
    let headers = PluginEntry::new("h", "builtin://headers", "pre_auth")
        .extra(r#"config = { set = { x-one = "1" } }"#);
    let gw = gateway(&echo, "reload", "").plugin(headers).start().await;
    let session = hold(&format!("ws://{}/chat", gw.proxy_addr)).await;
    // The set the session started with is replaced and retired (after a short drain).
    gw.proxy()
        .reload_plugins(&[], Duration::from_millis(50))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = session.finish("talk").await;
    assert_eq!(out["before"], "before");
    assert_eq!(out["after"], "after");
    assert_eq!(out["close_code"], 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_open_sessions_with_1001() {
    let echo = echo().await;
    let gw = gateway(&echo, "shutdown", "")
        .server("shutdown_timeout = \"10s\"")
        .start()
        .await;
    let session = hold(&format!("ws://{}/chat", gw.proxy_addr)).await;
    gw.shutdown();
    let out = session.finish("wait").await;
    assert_eq!(out["close_code"], 1001);
    tokio::time::timeout(Duration::from_secs(15), gw.wait())
        .await
        .expect("the gateway stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_is_closed_and_the_route_caps_its_sessions() {
    let echo = echo().await;
    let gw = gateway(
        &echo,
        "idle",
        "[routes.upgraded]\nidle_timeout = \"1s\"\nmax_connections = 1\n",
    )
    .start()
    .await;
    let url = format!("ws://{}/chat", gw.proxy_addr);
    let session = hold(&url).await;
    // The one slot is taken: the next upgrade is refused.
    let out = client(REFUSED, &url).await;
    assert_eq!(out["status"], 503);
    let out = session.finish("wait").await;
    assert_eq!(out["close_code"], 1001, "closed by the idle timeout");
    let idle = r#"microgateway_upgraded_closed_total{route="idle",reason="idle_timeout"}"#;
    assert_eq!(metric_reaching(gw.admin_addr, idle, 1.0).await, 1.0);
    let refused = r#"microgateway_upgrade_refused_total{route="idle",reason="max_connections"}"#;
    assert_eq!(metric(gw.admin_addr, refused).await, 1.0);
    // The slot is free again.
    let out = client(TALK, &url).await;
    assert_eq!(out["text"], "hello");
}

#[tokio::test]
async fn a_plain_request_to_the_route_is_unchanged() {
    let echo = echo().await;
    let gw = gateway(&echo, "plain", "").start().await;
    // `Connection: upgrade` without `Upgrade` asks for nothing: forwarded as it is (the
    // websockets server answers a plain GET with 426).
    let req = http::Request::get(format!("http://{}/chat", gw.proxy_addr))
        .header("connection", "upgrade")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let tcp = tokio::net::TcpStream::connect(gw.proxy_addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 426);
    let _ = resp.into_body().collect().await;
}

/// A message hook: `secret` becomes `******` in text either way; a message that says
/// `drop-me` is not passed on.
struct Redact(microgateway::plugin::Manifest);

impl microgateway::plugin::Plugin for Redact {
    fn manifest(&self) -> &microgateway::plugin::Manifest {
        &self.0
    }
    fn on_websocket_message<'a>(
        &'a self,
        message: &'a microgateway::plugin::MessageView<'a>,
    ) -> microgateway::plugin::HookFuture<'a, microgateway::plugin::MessageAction> {
        use microgateway::plugin::{HookFuture, MessageAction};
        let text = String::from_utf8_lossy(message.payload);
        if !message.text {
            return HookFuture::ok(MessageAction::Pass);
        }
        if text.contains("drop-me") {
            return HookFuture::ok(MessageAction::Drop);
        }
        match text.contains("secret") {
            true => HookFuture::ok(MessageAction::Replace(Bytes::from(
                text.replace("secret", "******"),
            ))),
            false => HookFuture::ok(MessageAction::Pass),
        }
    }
}

const GUARDED: &str = r#"
import asyncio, json, os, sys, websockets
async def main():
    out = {}
    async with websockets.connect(sys.argv[1], max_size=None, ping_interval=None) as ws:
        await ws.send("my secret key")
        out["redacted"] = await ws.recv()
        await ws.send("drop-me please")
        await ws.send("after")
        out["next"] = await ws.recv()
        big = os.urandom(300000)
        await ws.send(big)
        out["binary"] = (await ws.recv()) == big
        await ws.send(["sec", "ret in ", "fragments"])
        out["fragmented"] = await ws.recv()
    out["close_code"] = ws.close_code
    print(json.dumps(out))
asyncio.run(main())
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_hook_redacts_and_drops_messages() {
    let echo = echo().await;
    let mut registry = microgateway::loader::Registry::with_builtins();
    registry.register("redact", |_| {
        let manifest = microgateway::plugin::Manifest {
            name: "redact".into(),
            hooks: vec![microgateway::hook::Hook::WebsocketMessage],
            ..Default::default()
        };
        Ok(std::sync::Arc::new(Redact(manifest)))
    });
    let gw = gateway(&echo, "guarded", "")
        .plugin(PluginEntry::new(
            "redact",
            "builtin://redact",
            "on_response",
        ))
        .start_with(registry)
        .await;
    let out = client(GUARDED, &format!("ws://{}/chat", gw.proxy_addr)).await;
    // Redacted on the way up, and again (already redacted) on the way back.
    assert_eq!(out["redacted"], "my ****** key");
    assert_eq!(out["next"], "after", "the dropped message never came back");
    assert_eq!(out["binary"], true);
    assert_eq!(out["fragmented"], "****** in fragments");
    assert_eq!(out["close_code"], 1000);
}
