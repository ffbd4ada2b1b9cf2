//! Plugins written for Tyk AI Studio's microgateway, hosted unchanged: a Go plugin built
//! with Debian's go-plugin 1.0.1 against `proto/tyk/plugin.proto` (`file://` with
//! `contract` auto and tyk, and its standalone `grpc://` form), and a Python plugin
//! (`file://` and `grpc://`). Each request is modified, one is blocked, context updates
//! reach a later stage and data collection receives a record; on an LLM route the
//! vendor and token usage reach `HandleAnalytics` and `HandleBudgetUsage`.

use crate::common::golang;
use crate::common::{GatewayConfig, PluginEntry, TestUpstream, get_with};
use crate::support::{config, eventually, start_error};
use microgateway::RunningGateway;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

fn go_plugin() -> PathBuf {
    golang::build(&golang::example_dir("tyk-plugin"))
}

const PYTHON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/python/tyk_plugin.py");

/// The contract the running instance `name` reports in its health.
fn contract_of(gw: &RunningGateway, name: &str) -> Option<&'static str> {
    let set = gw.proxy().plugins();
    let instance = set.instances().iter().find(|i| &*i.name == name)?;
    instance.plugin.health().contract
}

fn quoted(path: &Path) -> String {
    crate::common::gateway::toml_path(path)
}

/// Lines of the plugin's record file that mention `request_id`.
fn records(log: &Path, request_id: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["request_id"] == request_id)
        .collect()
}

/// All five stages served by the Go plugin, at `command`, with `contract`; one
/// configuration for all, because one `grpc://` server holds one configuration.
fn go_entries(command: &str, contract: &str, log: &Path) -> String {
    let extra = format!(
        "contract = \"{contract}\"\nconfig = {{ greeting = \"hi\", block_status = 429, log_file = {} }}",
        quoted(log)
    );
    [
        ("tyk-pre", "pre_auth"),
        ("tyk-auth", "auth"),
        ("tyk-post", "post_auth"),
        ("tyk-resp", "on_response"),
        ("tyk-log", "data_collection"),
    ]
    .iter()
    .map(|(name, stage)| PluginEntry::new(name, command, stage).extra(&extra).toml())
    .collect()
}

async fn start(gateway: &GatewayConfig) -> RunningGateway {
    // Python compiles its stubs at start-up: give slow machines time.
    let toml = gateway
        .toml()
        .replace("start_timeout = \"5s\"", "start_timeout = \"60s\"");
    microgateway::start(microgateway::Config::from_toml(&toml).unwrap())
        .await
        .unwrap()
}

async fn check_go(command: &str, contract: &str) {
    let up = TestUpstream::start("up").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("records.jsonl");
    let gw = start(&config(&up, &go_entries(command, contract, &log))).await;
    for name in ["tyk-pre", "tyk-auth", "tyk-post", "tyk-resp", "tyk-log"] {
        assert_eq!(contract_of(&gw, name), Some("tyk"), "{name}");
    }
    // Authenticate rejects an unknown token: no plugin authenticated, so 401.
    let denied = get_with(gw.proxy_addr, "/x", &[("authorization", "Bearer nope")]).await;
    assert_eq!(denied.status, 401, "{}", denied.text());
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let ok = get_with(
        gw.proxy_addr,
        "/x",
        &[
            ("authorization", "Bearer moocow"),
            ("traceparent", traceparent),
        ],
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    // The response stage: OnBeforeWriteHeaders added a header, OnBeforeWrite wrapped the body.
    assert_eq!(ok.header("x-tyk-response"), Some("yes"));
    let body = ok.text();
    assert!(body.starts_with("{\"tyk_wrapped\":"), "{body}");
    let wrapped: serde_json::Value = serde_json::from_str(&body).unwrap();
    let echo: crate::common::Echo = serde_json::from_value(wrapped["tyk_wrapped"].clone()).unwrap();
    // ProcessPreAuth modified the request; its context update reached ProcessPostAuth,
    // which also saw the app id of Authenticate and the W3C trace context.
    assert_eq!(echo.header("x-tyk-greeting"), Some("hi"));
    assert_eq!(echo.header("x-tyk-tier"), Some("gold"));
    assert_eq!(echo.header("x-tyk-app"), Some("42/42"));
    assert_eq!(echo.header("x-tyk-traceparent"), Some(traceparent));
    // A blocked request gets the plugin's status, headers and body; the upstream never sees it.
    let hits = up.hits();
    let blocked = get_with(
        gw.proxy_addr,
        "/x",
        &[("authorization", "Bearer moocow"), ("x-block", "1")],
    )
    .await;
    assert_eq!(blocked.status, 429, "{}", blocked.text());
    assert_eq!(blocked.header("x-blocked-by"), Some("tyk-go"));
    assert_eq!(blocked.header("content-type"), Some("application/json"));
    assert_eq!(blocked.text(), "{\"error\":\"blocked by tyk plugin\"}");
    assert_eq!(up.hits(), hits);
    // HandleProxyLog and OnStreamComplete received the exchange, with the auth ids
    // and the context update.
    let id = ok.header("x-request-id").unwrap().to_string();
    // OnStreamComplete and HandleProxyLog run independently: wait for the proxy log.
    let seen = eventually(Duration::from_secs(10), async || {
        records(&log, &id).iter().any(|r| r["kind"] == "proxy_log")
    })
    .await;
    assert!(
        seen,
        "no proxy_log record for {id}: {:?}",
        std::fs::read_to_string(&log)
    );
    let proxy_log = records(&log, &id)
        .into_iter()
        .find(|r| r["kind"] == "proxy_log")
        .unwrap();
    assert_eq!(proxy_log["status"], 200);
    assert_eq!(proxy_log["app_id"], 42);
    assert_eq!(proxy_log["user_id"], 7);
    assert_eq!(proxy_log["tier"], "gold");
    gw.shutdown();
    gw.wait().await;
}

#[tokio::test]
async fn go_tyk_plugin_via_file_detected() {
    let command = format!("file://{}", go_plugin().display());
    check_go(&command, "auto").await;
}

#[tokio::test]
async fn go_tyk_plugin_via_file_declared() {
    let command = format!("file://{}", go_plugin().display());
    check_go(&command, "tyk").await;
}

/// A standalone plugin server (`--listen 127.0.0.1:0`) that prints its address to stderr.
struct Standalone {
    url: String,
    _child: tokio::process::Child,
}

impl Standalone {
    async fn start(program: &Path, args: &[&str]) -> Standalone {
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let url = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                let line = lines.next_line().await.unwrap().expect("server exited");
                if let Some(at) = line.find("grpc://") {
                    return line[at..].trim().to_string();
                }
            }
        })
        .await
        .expect("plugin server did not start");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Standalone { url, _child: child }
    }
}

#[tokio::test]
async fn go_tyk_plugin_via_grpc_standalone() {
    let server = Standalone::start(&go_plugin(), &["--listen", "127.0.0.1:0"]).await;
    check_go(&server.url, "auto").await;
}

async fn check_python(command: &str) {
    let up = TestUpstream::start("up").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("records.jsonl");
    let extra = format!(
        "config = {{ greeting = \"from-python\", log_file = {} }}",
        quoted(&log)
    );
    let entries: String = [
        ("py-pre", "pre_auth"),
        ("py-post", "post_auth"),
        ("py-log", "data_collection"),
    ]
    .iter()
    .map(|(name, stage)| PluginEntry::new(name, command, stage).extra(&extra).toml())
    .collect();
    let gw = start(&config(&up, &entries)).await;
    assert_eq!(contract_of(&gw, "py-pre"), Some("tyk"));
    let ok = get_with(gw.proxy_addr, "/x", &[]).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.echo().header("x-tyk-python"), Some("from-python"));
    assert_eq!(ok.echo().header("x-py-seen"), Some("yes"));
    let blocked = get_with(gw.proxy_addr, "/x", &[("x-block", "1")]).await;
    assert_eq!(blocked.status, 418, "{}", blocked.text());
    assert_eq!(blocked.header("x-blocked-by"), Some("tyk-python"));
    let id = ok.header("x-request-id").unwrap().to_string();
    let seen = eventually(Duration::from_secs(10), async || {
        records(&log, &id)
            .iter()
            .any(|r| r["kind"] == "proxy_log" && r["status"] == 200)
    })
    .await;
    assert!(
        seen,
        "no record for {id}: {:?}",
        std::fs::read_to_string(&log)
    );
    gw.shutdown();
    gw.wait().await;
}

#[tokio::test]
async fn python_tyk_plugin_via_file() {
    check_python(&format!("file://{PYTHON}")).await;
}

#[tokio::test]
async fn python_tyk_plugin_via_grpc_standalone() {
    let server = Standalone::start(Path::new(PYTHON), &["--listen", "127.0.0.1:0"]).await;
    check_python(&server.url).await;
}

#[tokio::test]
async fn a_declared_contract_the_plugin_does_not_speak_is_a_clear_error() {
    let up = TestUpstream::start("up").await;
    // Our own example plugin declared as Tyk's.
    let ours = PluginEntry::file("ours", crate::support::ENRICHER, "pre_auth")
        .extra("contract = \"tyk\"\nrequired = true")
        .toml();
    let err = start_error(&config(&up, &ours)).await;
    assert!(
        err.contains("does not serve Tyk AI Studio's plugin.PluginService"),
        "{err}"
    );
    // The Go Tyk plugin declared as microgateway's.
    let tyk = PluginEntry::file("tyk", go_plugin(), "pre_auth")
        .extra("contract = \"microgateway\"\nrequired = true")
        .toml();
    let err = start_error(&config(&up, &tyk)).await;
    assert!(err.contains("GetManifest failed"), "{err}");
}

#[tokio::test]
async fn the_native_contract_is_detected_and_reported_too() {
    let up = TestUpstream::start("up").await;
    let entry = PluginEntry::file("ours", crate::support::ENRICHER, "pre_auth").toml();
    let gw = config(&up, &entry).start().await;
    assert_eq!(contract_of(&gw, "ours"), Some("microgateway"));
}

#[tokio::test]
async fn a_refused_tyk_configuration_fails_the_load() {
    let up = TestUpstream::start("up").await;
    let entry = PluginEntry::file("tyk", go_plugin(), "pre_auth")
        .extra("config = { refuse = true }\nrequired = true")
        .toml();
    let err = start_error(&config(&up, &entry)).await;
    assert!(
        err.contains("refused its configuration: configured to refuse"),
        "{err}"
    );
}

#[tokio::test]
async fn a_crashed_tyk_plugin_is_restarted_with_its_contract() {
    let up = TestUpstream::start("up").await;
    let entry = PluginEntry::file("tyk", go_plugin(), "pre_auth")
        .extra("config = { greeting = \"again\" }")
        .toml();
    let gw = config(&up, &entry).start().await;
    let crashed = get_with(gw.proxy_addr, "/x", &[("x-crash", "1")]).await;
    // fail_open: the request goes on without the plugin.
    assert_eq!(crashed.status, 200, "{}", crashed.text());
    let back = eventually(Duration::from_secs(10), async || {
        let reply = get_with(gw.proxy_addr, "/x", &[]).await;
        reply.status == 200 && reply.echo().header("x-tyk-greeting") == Some("again")
    })
    .await;
    assert!(back, "the plugin did not come back");
    let set = gw.proxy().plugins();
    let health = set.instances()[0].plugin.health();
    assert_eq!(health.contract, Some("tyk"));
    assert!(health.restarts >= 1, "{health:?}");
}

const OPENAI_STREAM: &[&str] = &[
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3,\"total_tokens\":15}}\n\n",
    "data: [DONE]\n\n",
];

#[tokio::test]
async fn llm_routes_give_tyk_plugins_the_vendor_and_token_usage() {
    let up = TestUpstream::builder("llm")
        .route(
            "/v1/chat/completions",
            crate::common::Respond::SseFrames(OPENAI_STREAM),
        )
        .start()
        .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), "sk-test\n").unwrap();
    let log = dir.path().join("records.jsonl");
    let command = format!("file://{}", go_plugin().display());
    let entries: String = [("tyk-resp", "on_response"), ("tyk-log", "data_collection")]
        .iter()
        .map(|(name, stage)| {
            PluginEntry::new(name, &command, stage)
                .extra(&format!("config = {{ log_file = {} }}", quoted(&log)))
                .toml()
        })
        .collect();
    let gw = GatewayConfig::new()
        .upstream_urls(
            "openai",
            &[up.url()],
            &format!(
                "llm = {{ provider = \"openai\", api_key_file = {} }}",
                quoted(&dir.path().join("key"))
            ),
        )
        .route("chat", "openai", "path_prefix = \"/v1\"")
        .raw(&entries)
        .start()
        .await;
    let reply = get_with(gw.proxy_addr, "/v1/chat/completions", &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let id = reply.header("x-request-id").unwrap().to_string();
    let done = eventually(Duration::from_secs(10), async || {
        let kinds: Vec<_> = records(&log, &id)
            .iter()
            .map(|r| r["kind"].clone())
            .collect();
        ["proxy_log", "analytics", "budget", "stream_complete"]
            .iter()
            .all(|k| kinds.contains(&serde_json::json!(k)))
    })
    .await;
    assert!(
        done,
        "records for {id}: {:?}",
        std::fs::read_to_string(&log)
    );
    let all = records(&log, &id);
    let find = |kind: &str| all.iter().find(|r| r["kind"] == kind).unwrap();
    assert_eq!(find("proxy_log")["vendor"], "openai");
    let analytics = find("analytics");
    assert_eq!(analytics["vendor"], "openai");
    assert_eq!(analytics["model"], "gpt-4o-mini");
    assert_eq!(analytics["prompt_tokens"], 12);
    assert_eq!(analytics["response_tokens"], 3);
    assert_eq!(find("budget")["tokens"], 15);
    assert!(find("stream_complete")["bytes"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn a_tyk_response_plugin_leaves_event_streams_streaming() {
    use http_body_util::BodyExt as _;
    let up = TestUpstream::start("up").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("records.jsonl");
    let command = format!("file://{}", go_plugin().display());
    let resp = PluginEntry::new("tyk-resp", &command, "on_response")
        .extra(&format!("config = {{ log_file = {} }}", quoted(&log)))
        .toml();
    let gw = start(&config(&up, &resp)).await;
    // A whole body is still handed to OnBeforeWrite, which wraps it.
    let whole = get_with(gw.proxy_addr, "/x", &[]).await;
    assert!(
        whole.text().starts_with("{\"tyk_wrapped\":"),
        "{}",
        whole.text()
    );
    // An event stream whose second event comes 3 s after the first: the first must
    // reach the client while the upstream is still sending, unwrapped.
    let req = http::Request::get(crate::common::client::url(
        gw.proxy_addr,
        "/sse?n=2&gap_ms=3000",
    ))
    .body(crate::common::client::empty())
    .unwrap();
    let reply = crate::common::client::h1().request(req).await.unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.headers()["x-tyk-response"], "yes");
    let mut body = reply.into_body();
    let first = tokio::time::timeout(Duration::from_millis(2500), body.frame())
        .await
        .expect("the first event waited for the whole stream: the body was buffered")
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    let first = String::from_utf8_lossy(&first).to_string();
    assert!(first.starts_with("data: event-0"), "{first}");
    let rest = body.collect().await.unwrap().to_bytes();
    assert!(!String::from_utf8_lossy(&rest).contains("tyk_wrapped"));
    gw.shutdown();
    gw.wait().await;
}
