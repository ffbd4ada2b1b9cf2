//! Request-stage semantics: ordering, short-circuit, auth fail-closed/fail-open,
//! timeouts, header validation and path mutation.

use crate::common::{PluginEntry, get};
use crate::support::{Journal, gateway, upstream};
use std::sync::Arc;

fn scripted(name: &str, hook: &str, extra: &str) -> String {
    PluginEntry::new(name, "builtin://scripted", hook)
        .extra(extra)
        .toml()
}

#[tokio::test]
async fn hooks_run_in_stage_then_order_sequence() {
    let up = upstream().await;
    // File order differs from execution order on purpose.
    let plugins = [
        scripted("post", "post_auth", "config = { action = \"append\" }"),
        scripted(
            "pre-late",
            "pre_auth",
            "order = 5\nconfig = { action = \"append\" }",
        ),
        scripted(
            "pre-early",
            "pre_auth",
            "order = -1\nconfig = { action = \"append\" }",
        ),
        scripted("auth", "auth", "config = { action = \"auth\" }"),
    ]
    .concat();
    let gw = gateway(&up, &plugins, Arc::new(Journal::default())).await;
    let got = get(gw.proxy_addr, "/x").await;
    assert_eq!(got.status, 200, "{}", got.text());
    let order = &got.json()["headers"]["x-order"];
    assert_eq!(order, &serde_json::json!(["pre-early", "pre-late", "post"]));
}

#[tokio::test]
async fn respond_short_circuits_later_hooks_and_upstream() {
    let up = upstream().await;
    let plugins = [
        scripted("stop", "pre_auth", "config = { action = \"respond\" }"),
        scripted(
            "never",
            "post_auth",
            "config = { action = \"fail\" }\non_error = \"fail_closed\"",
        ),
    ]
    .concat();
    let gw = gateway(&up, &plugins, Arc::new(Journal::default())).await;
    let got = get(gw.proxy_addr, "/x").await;
    assert_eq!(got.status, 418);
    assert_eq!(got.text(), "short-circuit");
    assert_eq!(got.headers["x-by"], "stop");
    assert!(got.headers.contains_key("x-request-id"));
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn auth_failure_is_fail_closed_by_default() {
    let up = upstream().await;
    let gw = gateway(
        &up,
        &scripted("a", "auth", "config = { action = \"fail\" }"),
        Arc::new(Journal::default()),
    )
    .await;
    let got = get(gw.proxy_addr, "/x").await;
    assert_eq!(got.status, 503);
    assert_eq!(got.json()["error"]["type"], "plugin_unavailable");
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn auth_failure_fail_open_lets_request_through() {
    let up = upstream().await;
    let plugin = scripted(
        "a",
        "auth",
        "on_error = \"fail_open\"\nconfig = { action = \"fail\" }",
    );
    let gw = gateway(&up, &plugin, Arc::new(Journal::default())).await;
    let got = get(gw.proxy_addr, "/x").await;
    assert_eq!(got.status, 200, "{}", got.text());
    let metrics = admin_metrics(gw.admin_addr).await;
    assert!(
        metrics
            .lines()
            .any(|l| l
                .starts_with("microgateway_plugin_fail_open_total{plugin=\"a\",hook=\"auth\"}")),
        "{metrics}"
    );
}

#[tokio::test]
async fn auth_stage_without_identity_answers_401() {
    let up = upstream().await;
    let gw = gateway(
        &up,
        &scripted("a", "auth", "config = { action = \"pass\" }"),
        Arc::new(Journal::default()),
    )
    .await;
    let got = get(gw.proxy_addr, "/x").await;
    assert_eq!(got.status, 401);
    assert_eq!(got.json()["error"]["type"], "unauthorized");
    assert_eq!(got.headers["www-authenticate"], "Bearer");
}

#[tokio::test]
async fn timeout_applies_policy_and_is_counted() {
    let up = upstream().await;
    let plugins = [
        scripted("slow-closed", "pre_auth", "timeout = \"50ms\"\non_error = \"fail_closed\"\nroutes = [\"other\"]\nconfig = { action = \"sleep\", ms = 2000 }"),
        scripted("slow-open", "pre_auth", "timeout = \"50ms\"\nroutes = [\"r\"]\nconfig = { action = \"sleep\", ms = 2000 }"),
    ]
    .concat();
    let gw = gateway(&up, &plugins, Arc::new(Journal::default())).await;
    let closed = get(gw.proxy_addr, "/other/x").await;
    assert_eq!(closed.status, 503);
    assert!(
        closed.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("timed out")
    );
    let open = get(gw.proxy_addr, "/x").await;
    assert_eq!(open.status, 200);
    let metrics = admin_metrics(gw.admin_addr).await;
    for name in ["slow-closed", "slow-open"] {
        let line =
            format!("microgateway_plugin_timeouts_total{{plugin=\"{name}\",hook=\"pre_auth\"}} 1");
        assert!(metrics.contains(&line), "missing {line}");
    }
}

#[tokio::test]
async fn forbidden_header_from_plugin_is_a_plugin_error() {
    let up = upstream().await;
    let plugins = [
        scripted("bad-closed", "pre_auth", "on_error = \"fail_closed\"\nroutes = [\"other\"]\nconfig = { action = \"bad_header\" }"),
        scripted("bad-open", "pre_auth", "routes = [\"r\"]\nconfig = { action = \"bad_header\" }"),
    ]
    .concat();
    let gw = gateway(&up, &plugins, Arc::new(Journal::default())).await;
    let closed = get(gw.proxy_addr, "/other/x").await;
    assert_eq!(closed.status, 503);
    assert!(
        closed.text().contains("content-length"),
        "{}",
        closed.text()
    );
    let open = get(gw.proxy_addr, "/x").await;
    assert_eq!(open.status, 200);
    // The rejected mutation was not applied.
    assert!(open.json()["headers"]["content-length"].is_null());
}

#[tokio::test]
async fn plugin_path_is_forwarded_verbatim() {
    let up = upstream().await;
    let gw = gateway(
        &up,
        &scripted("p", "post_auth", "config = { action = \"set_path\" }"),
        Arc::new(Journal::default()),
    )
    .await;
    let got = get(gw.proxy_addr, "/x?q=1").await;
    assert_eq!(got.json()["target"], "/rewritten/by/plugin?q=1");
}

#[tokio::test]
async fn plugins_apply_only_to_their_routes() {
    let up = upstream().await;
    let plugin = scripted(
        "stop",
        "pre_auth",
        "routes = [\"other\"]\nconfig = { action = \"respond\" }",
    );
    let gw = gateway(&up, &plugin, Arc::new(Journal::default())).await;
    assert_eq!(get(gw.proxy_addr, "/other/x").await.status, 418);
    assert_eq!(get(gw.proxy_addr, "/x").await.status, 200);
}

/// The value of the series `series` (name and labels) in a `/metrics` page.
fn series(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test]
async fn calls_are_counted_exactly_and_in_process_latency_is_sampled() {
    let up = upstream().await;
    // Names unique in this test binary: the metrics registry is process-wide.
    let plugins = [
        scripted(
            "sampled-inproc",
            "pre_auth",
            "config = { action = \"append\" }",
        ),
        scripted(
            "timed-async",
            "post_auth",
            "config = { action = \"sleep\", ms = 0 }",
        ),
    ]
    .concat();
    let gw = gateway(&up, &plugins, Arc::new(Journal::default())).await;
    let n = 640;
    for _ in 0..n {
        assert_eq!(get(gw.proxy_addr, "/x").await.status, 200);
    }
    let m = admin_metrics(gw.admin_addr).await;
    let value = |name: &str, plugin: &str, hook: &str| {
        series(
            &m,
            &format!("{name}{{plugin=\"{plugin}\",hook=\"{hook}\"}}"),
        )
        .unwrap_or_else(|| panic!("no {name} for {plugin}: {m}"))
    };
    let calls = "microgateway_plugin_calls_total";
    let timed = "microgateway_plugin_duration_seconds_count";
    assert_eq!(value(calls, "sampled-inproc", "pre_auth"), f64::from(n));
    assert_eq!(value(calls, "timed-async", "post_auth"), f64::from(n));
    // Every call of a hook that answers asynchronously is timed.
    assert_eq!(value(timed, "timed-async", "post_auth"), f64::from(n));
    // About one in 32 in-process calls is (20 expected here; 0 has odds below 1e-8).
    let sampled = value(timed, "sampled-inproc", "pre_auth");
    assert!(sampled >= 1.0 && sampled <= f64::from(n) / 4.0, "{sampled}");
}

pub async fn admin_metrics(addr: std::net::SocketAddr) -> String {
    get(addr, "/metrics").await.text()
}
