//! Reloads: a changed plugin binary takes effect, a failed prepare keeps the running set,
//! and the binary reloads on SIGHUP and on configuration-file changes.

use crate::common::binary::GatewayProcess;
use crate::common::{PluginEntry, get};
use crate::support::{Admin, call};
use serde_json::json;
use std::time::Duration;

const ENRICHER: &str = env!("CARGO_BIN_EXE_mg-plugin-header-enricher");
const CHAOS: &str = env!("CARGO_BIN_EXE_mg-plugin-chaos");

/// Replaces `dest` atomically (a running executable cannot be overwritten in place).
fn install(src: &str, dest: &std::path::Path) {
    let tmp = dest.with_extension("new");
    std::fs::copy(src, &tmp).unwrap();
    std::fs::rename(&tmp, dest).unwrap();
}

#[tokio::test]
async fn reload_picks_up_a_changed_plugin_binary() {
    let admin = Admin::new().await;
    // The binary lives in a temporary directory, outside the standard plugin directories.
    let gw = admin
        .start("[plugin_runtime]\nallow_api_file_paths = true")
        .await;
    let binary = admin.dir.path().join("plugin");
    install(ENRICHER, &binary);
    let body = json!({ "name": "swap", "command": format!("file://{}", binary.display()), "hook_type": "pre_auth" });
    let created = call(gw.admin_addr, "POST", "/api/v1/plugins", Some(body)).await;
    assert_eq!(created.status, 201, "{}", created.text());
    let before = get(gw.proxy_addr, "/echo").await.echo();
    assert_eq!(before.header("x-enriched-by"), Some("header-enricher"));
    install(CHAOS, &binary);
    let reloaded = call(gw.admin_addr, "POST", "/api/v1/plugins/swap/reload", None).await;
    assert_eq!(reloaded.status, 200, "{}", reloaded.text());
    assert_eq!(reloaded.json()["health"]["state"], "ready");
    let after = get(gw.proxy_addr, "/echo").await.echo();
    assert_eq!(after.header("x-enriched-by"), None);
    assert_eq!(after.header("x-calls"), Some("1"));
}

#[tokio::test]
async fn failed_prepare_keeps_the_running_set() {
    let admin = Admin::new().await;
    let gw = admin
        .start("[plugin_runtime]\nallow_api_file_paths = true")
        .await;
    let good = json!({ "name": "good", "command": "builtin://headers", "hook_type": "pre_auth", "config": { "set": { "x-good": "1" } } });
    assert_eq!(
        call(gw.admin_addr, "POST", "/api/v1/plugins", Some(good))
            .await
            .status,
        201
    );
    // A plugin whose process never hand-shakes cannot be prepared.
    let broken = json!({
        "name": "broken", "command": format!("file://{CHAOS}"), "hook_type": "pre_auth",
        "env": { "CHAOS_MODE": "garbage" }
    });
    let reply = call(gw.admin_addr, "POST", "/api/v1/plugins", Some(broken)).await;
    assert_eq!(reply.status, 422, "{}", reply.text());
    assert_eq!(reply.json()["error"]["type"], "reload_failed");
    assert!(reply.text().contains("handshake"), "{}", reply.text());
    assert_eq!(
        get(gw.proxy_addr, "/echo").await.echo().header("x-good"),
        Some("1")
    );
    let ids: Vec<String> = call(gw.admin_addr, "GET", "/api/v1/plugins", None)
        .await
        .json()["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, vec!["good"]);
    // Nothing of the failed attempt was persisted either.
    let state = std::fs::read_to_string(admin.dir.path().join("data/plugins.json")).unwrap();
    assert!(!state.contains("broken"));
}

fn plugin_toml(value: &str) -> String {
    PluginEntry::new("tag", "builtin://headers", "pre_auth")
        .extra(&format!(
            "config = {{ set = {{ \"x-tag\" = \"{value}\" }} }}"
        ))
        .toml()
}

async fn tag(addr: std::net::SocketAddr) -> Option<String> {
    get(addr, "/echo")
        .await
        .echo()
        .header("x-tag")
        .map(str::to_string)
}

async fn wait_for_tag(addr: std::net::SocketAddr, want: &str) -> bool {
    for _ in 0..100 {
        if tag(addr).await.as_deref() == Some(want) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn binary_reloads_on_sighup_and_on_file_change() {
    let admin = Admin::new().await;
    let data = admin.dir.path().join("data").display().to_string();
    let make = |value: &str, watch: bool| {
        admin
            .config(&plugin_toml(value))
            .raw(&format!("# data_dir {data}"))
            .toml()
            .replacen("[admin]\nlisten = \"127.0.0.1:0\"\n", "", 1)
            .replace("token_file", &format!("watch_config = {watch}\ntoken_file"))
    };
    // SIGHUP with watching off.
    let gw = GatewayProcess::spawn_toml(&make("one", false)).await;
    assert_eq!(tag(gw.proxy_addr).await.as_deref(), Some("one"));
    std::fs::write(gw.config_path(), make("two", false)).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        tag(gw.proxy_addr).await.as_deref(),
        Some("one"),
        "reloaded without SIGHUP while watching is off"
    );
    gw.signal("-HUP");
    assert!(
        wait_for_tag(gw.proxy_addr, "two").await,
        "SIGHUP did not reload"
    );
    // A broken file keeps the running plugins.
    std::fs::write(
        gw.config_path(),
        make("three", false).replace("builtin://headers", "builtin://nope"),
    )
    .unwrap();
    gw.signal("-HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(tag(gw.proxy_addr).await.as_deref(), Some("two"));
    gw.terminate();
    assert!(gw.wait(Duration::from_secs(10)).await.success());

    // File watching.
    let gw = GatewayProcess::spawn_toml(&make("one", true)).await;
    assert_eq!(tag(gw.proxy_addr).await.as_deref(), Some("one"));
    std::fs::write(gw.config_path(), make("four", true)).unwrap();
    assert!(
        wait_for_tag(gw.proxy_addr, "four").await,
        "file change did not reload"
    );
    gw.terminate();
    assert!(gw.wait(Duration::from_secs(10)).await.success());
}
