//! Go plugins built in the test with Debian's Go and go-plugin 1.0.1 against the
//! gateway's own contract (`examples/go/microgateway-plugin`), and go-plugin AutoMTLS:
//! the socket lands in the plugin's private directory (`TMPDIR`), traffic flows through
//! the plugin with AutoMTLS (the default) and without it, the Rust SDK answers AutoMTLS
//! over TCP, and handshakes `plugin_runtime.auto_mtls` forbids are refused.

use crate::common::golang;
use crate::common::{GatewayConfig, PluginEntry, TestUpstream, get};
use crate::support::{ENRICHER, eventually, gone, start_error};
use base64::Engine as _;
use microgateway::plugin::HealthState;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn go_plugin() -> PathBuf {
    golang::build(&golang::example_dir("microgateway-plugin"))
}

/// One route to `up`, the given `[plugin_runtime]` lines, and the given plugin entries.
fn runtime_config(up: &TestUpstream, runtime: &str, entries: &str) -> GatewayConfig {
    GatewayConfig::new()
        .upstream("main", &[up])
        .route("main", "main", "path_prefix = \"/\"")
        .raw(&format!(
            "[plugin_runtime]\nstart_timeout = \"20s\"\nping_interval = \"300ms\"\n{runtime}\n"
        ))
        .raw(entries)
}

/// The Go plugin at `pre_auth`, `post_auth` and `on_response`.
fn go_config(up: &TestUpstream, runtime: &str) -> GatewayConfig {
    let plugin = go_plugin();
    let entries = PluginEntry::file("go-pre", &plugin, "pre_auth")
        .extra("config = { tag = \"pre\" }\nrequired = true")
        .toml()
        + &PluginEntry::file("go-post", &plugin, "post_auth")
            .extra("config = { tag = \"post\" }\nrequired = true")
            .toml()
        + &PluginEntry::file("go-resp", &plugin, "on_response")
            .extra("required = true")
            .toml();
    runtime_config(up, runtime, &entries)
}

/// Sends a request through the Go plugin and returns how each hook saw its connection.
async fn go_traffic(runtime: &str) -> (String, String) {
    let up = TestUpstream::start("up").await;
    let gw = go_config(&up, runtime).start().await;
    let reply = get(gw.proxy_addr, "/x").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let echo = reply.echo();
    assert_eq!(echo.header("x-go-plugin-pre-auth"), Some("pre"));
    assert_eq!(echo.header("x-go-plugin-post-auth"), Some("post"));
    assert_eq!(
        echo.header("x-go-plugin-request-id"),
        reply.header("x-request-id")
    );
    let blocked = get(gw.proxy_addr, "/go-block").await;
    assert_eq!(blocked.status, 403);
    assert_eq!(blocked.text(), "blocked by the go plugin\n");
    let request = echo.header("x-go-plugin-tls").unwrap().to_string();
    let response = reply.header("x-go-plugin-response").unwrap().to_string();
    (request, response)
}

#[tokio::test]
async fn go_plugin_1_0_1_uses_automtls_by_default() {
    // go-plugin 1.0.1 ignores PLUGIN_UNIX_SOCKET_DIR: the start succeeding means its
    // socket (created in TMPDIR) was in the private directory. The plugin saw a TLS
    // connection with a client certificate.
    let (request, response) = go_traffic("").await;
    assert_eq!((request.as_str(), response.as_str()), ("mtls", "mtls"));
}

#[tokio::test]
async fn go_plugin_1_0_1_meets_auto_mtls_always() {
    let (request, response) = go_traffic("auto_mtls = \"always\"").await;
    assert_eq!((request.as_str(), response.as_str()), ("mtls", "mtls"));
}

#[tokio::test]
async fn go_plugin_1_0_1_is_plain_with_auto_mtls_off() {
    let (request, response) = go_traffic("auto_mtls = \"off\"").await;
    assert_eq!((request.as_str(), response.as_str()), ("plain", "plain"));
}

#[tokio::test]
async fn go_plugin_restarts_with_automtls_and_stops() {
    let up = TestUpstream::start("up").await;
    let gw = go_config(&up, "").start().await;
    let pid = |reply: &crate::common::Reply| -> u32 {
        let echo = reply.echo();
        assert_eq!(echo.header("x-go-plugin-tls"), Some("mtls"));
        echo.header("x-go-plugin-pre-auth-pid")
            .unwrap()
            .parse()
            .unwrap()
    };
    let first = pid(&get(gw.proxy_addr, "/x").await);
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(first as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    let set = gw.proxy().plugins();
    let instance = set
        .instances()
        .iter()
        .find(|i| &*i.name == "go-pre")
        .unwrap()
        .clone();
    let back = eventually(Duration::from_secs(20), async || {
        let h = instance.plugin.health();
        h.state == HealthState::Ready && h.restarts >= 1
    })
    .await;
    assert!(back, "not restarted: {:?}", instance.plugin.health());
    // The new process got a new client certificate and answered with its own.
    let reply = get(gw.proxy_addr, "/x").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let second = pid(&reply);
    assert_ne!(first, second);
    // Stopping the gateway leaves no Go plugin process behind.
    gw.shutdown();
    gw.wait().await;
    let stopped = eventually(Duration::from_secs(10), async || gone(second)).await;
    assert!(stopped, "go plugin {second} still running");
}

/// Writes an executable `#!/bin/sh` plugin `name` in `dir`.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The Rust SDK plugin with `PLUGIN_UNIX_SOCKET_DIR` removed, so it serves loopback TCP.
fn enricher_over_tcp(dir: &Path) -> PathBuf {
    script(
        dir,
        "enricher-tcp",
        &format!("unset PLUGIN_UNIX_SOCKET_DIR\nexec {ENRICHER}\n"),
    )
}

async fn enricher_tcp_traffic(runtime: &str) {
    let dir = tempfile::tempdir().unwrap();
    let plugin = enricher_over_tcp(dir.path());
    let up = TestUpstream::start("up").await;
    let entry = PluginEntry::file("enrich", &plugin, "pre_auth")
        .extra("config = { headers = { \"x-hello\" = \"tcp\" } }\nrequired = true")
        .toml();
    let gw = runtime_config(&up, runtime, &entry).start().await;
    let reply = get(gw.proxy_addr, "/x").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.echo().header("x-hello"), Some("tcp"));
    gw.shutdown();
    gw.wait().await;
}

#[tokio::test]
async fn rust_sdk_answers_automtls_over_tcp() {
    // The default refuses a TCP handshake without a certificate, so traffic flowing
    // means the SDK answered PLUGIN_CLIENT_CERT and served mutual TLS.
    enricher_tcp_traffic("").await;
    enricher_tcp_traffic("auto_mtls = \"always\"").await;
}

/// The transport the gateway reports for the Rust SDK plugin on its unix socket.
async fn enricher_unix_transport(runtime: &str) -> Option<&'static str> {
    let up = TestUpstream::start("up").await;
    let entry = PluginEntry::file("enrich", Path::new(ENRICHER), "pre_auth")
        .extra("config = { headers = { \"x-hello\" = \"unix\" } }\nrequired = true")
        .toml();
    let gw = runtime_config(&up, runtime, &entry).start().await;
    let reply = get(gw.proxy_addr, "/x").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.echo().header("x-hello"), Some("unix"));
    let transport = gw.proxy().plugins().instances()[0]
        .plugin
        .health()
        .transport;
    gw.shutdown();
    gw.wait().await;
    transport
}

#[tokio::test]
async fn rust_sdk_unix_socket_is_plain_unless_policy_is_always() {
    // Under the default the SDK skips TLS on its private socket, which the policy allows;
    // under `always` it answers the offered certificate, as go-plugin does.
    assert_eq!(enricher_unix_transport("").await, Some("unix"));
    assert_eq!(
        enricher_unix_transport("auto_mtls = \"always\"").await,
        Some("unix+mtls")
    );
    assert_eq!(
        enricher_unix_transport("auto_mtls = \"off\"").await,
        Some("unix")
    );
}

#[tokio::test]
async fn rust_sdk_serves_plain_tcp_with_auto_mtls_off() {
    enricher_tcp_traffic("auto_mtls = \"off\"").await;
}

/// The start error of a gateway running the fake plugin `body` under `runtime`.
async fn fake_start_error(runtime: &str, body: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let plugin = script(dir.path(), "fake", body);
    let up = TestUpstream::start("up").await;
    let entry = PluginEntry::file("fake", &plugin, "pre_auth")
        .extra("required = true")
        .toml();
    start_error(&runtime_config(&up, runtime, &entry)).await
}

#[tokio::test]
async fn tcp_handshake_without_certificate_is_refused_by_default() {
    // The script exits (a different error) unless it was offered a client certificate.
    let body = "[ -n \"$PLUGIN_CLIENT_CERT\" ] || exit 3\n\
                echo '1|1|tcp|127.0.0.1:1|grpc|'\nsleep 10\n";
    let err = fake_start_error("", body).await;
    assert!(
        err.contains("tcp 127.0.0.1:1 without an AutoMTLS certificate")
            && err.contains("auto_mtls = \"tcp\" requires one for a TCP handshake"),
        "{err}"
    );
}

#[tokio::test]
async fn plain_unix_handshake_is_refused_under_always() {
    let body = "echo \"1|1|unix|$PLUGIN_UNIX_SOCKET_DIR/plugin1|grpc|\"\nsleep 10\n";
    let err = fake_start_error("auto_mtls = \"always\"", body).await;
    assert!(
        err.contains("without an AutoMTLS certificate")
            && err.contains("requires one for every handshake"),
        "{err}"
    );
}

#[tokio::test]
async fn certificate_is_refused_when_auto_mtls_is_off() {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
    let der = params.self_signed(&key).unwrap().der().to_vec();
    let field = base64::engine::general_purpose::STANDARD_NO_PAD.encode(der);
    // With auto_mtls off the gateway offers no certificate at all.
    let body = format!(
        "if [ -n \"$PLUGIN_CLIENT_CERT\" ]; then exit 3; fi\n\
         echo '1|1|tcp|127.0.0.1:1|grpc|{field}'\nsleep 10\n"
    );
    let err = fake_start_error("auto_mtls = \"off\"", &body).await;
    assert!(
        err.contains("auto_mtls = \"off\" offered it no client certificate"),
        "{err}"
    );
}

#[tokio::test]
async fn every_go_plugin_handshake_field_is_understood() {
    // A go-plugin 1.6 server asked about multiplexing (it is not: the gateway never sets
    // PLUGIN_MULTIPLEX_GRPC) answers in a seventh field; the gateway accepts it.
    let dir = tempfile::tempdir().unwrap();
    let plugin = script(
        dir.path(),
        "mux",
        &format!("{ENRICHER} | while read -r line; do echo \"$line|true\"; exec cat; done\n"),
    );
    let up = TestUpstream::start("up").await;
    let entry = PluginEntry::file("mux", &plugin, "pre_auth")
        .extra("config = { headers = { \"x-hello\" = \"mux\" } }\nrequired = true")
        .toml();
    let gw = runtime_config(&up, "", &entry).start().await;
    let reply = get(gw.proxy_addr, "/x").await;
    assert_eq!(reply.echo().header("x-hello"), Some("mux"));
    // The wrapper's shell runs the plugin as its child, which only the gateway's stop
    // (a kill of the whole process group) ends; the test process exiting would not.
    gw.shutdown();
    gw.wait().await;
}
