//! Stored and running plugin state agree: a change that cannot be persisted (full or
//! read-only `data_dir`, a real 64 KiB tmpfs) is not live, and one broken plugin never
//! keeps the gateway, or its admin API, down.

use crate::common::client::{Reply, empty, full, request};
use crate::common::gateway::ADMIN_AUTH;
use crate::common::{GatewayConfig, PluginEntry, TestUpstream, get};
use microgateway::RunningGateway;
use serde_json::json;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

const ENRICHER: &str = env!("CARGO_BIN_EXE_mg-plugin-header-enricher");
const CHAOS: &str = env!("CARGO_BIN_EXE_mg-plugin-chaos");

async fn admin(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> Reply {
    let mut headers = vec![("authorization", ADMIN_AUTH)];
    let payload = match body {
        Some(v) => {
            headers.push(("content-type", "application/json"));
            full(v.to_string())
        }
        None => empty(),
    };
    request(addr, method, path, &headers, payload).await
}

fn config(up: &TestUpstream, data: &Path, extra: &str) -> GatewayConfig {
    GatewayConfig::new()
        .upstream("main", &[up])
        .route("main", "main", "")
        .raw(&format!(
            "[pipeline]\ncollect_queue_capacity = 100\n{extra}"
        ))
        .admin_data_dir(data)
}

/// A tmpfs mounted for the test and unmounted when dropped (before its parent
/// temporary directory, which the second field keeps alive).
struct Tmpfs(PathBuf, #[allow(dead_code)] tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs(path, dir))
    }

    fn remount(&self, mode: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Fills the file system to the last byte.
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.0.join("filler")).unwrap();
        let block = [0u8; 4096];
        while f.write_all(&block).is_ok() {}
        let _ = f.write_all(&[0u8; 1]);
        while f.write_all(&[0u8; 1]).is_ok() {}
    }

    fn free(&self) {
        std::fs::remove_file(self.0.join("filler")).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

fn headers_plugin(name: &str, value: &str) -> serde_json::Value {
    json!({ "name": name, "command": "builtin://headers", "hook_type": "pre_auth", "config": { "set": { "x-set": value } } })
}

async fn names(gw: &RunningGateway) -> Vec<String> {
    let list = admin(gw.admin_addr, "GET", "/api/v1/plugins", None)
        .await
        .json();
    list["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

async fn served(gw: &RunningGateway) -> Option<String> {
    get(gw.proxy_addr, "/x")
        .await
        .echo()
        .header("x-set")
        .map(str::to_string)
}

#[tokio::test]
async fn a_change_that_cannot_be_persisted_is_not_live() {
    let Some(fs) = Tmpfs::mount("64k") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let up = TestUpstream::start("up").await;
    let cfg = config(&up, &fs.0, "");
    let gw = cfg.start().await;
    // Disk full: create answers 500, and nothing runs or is listed.
    fs.fill();
    let reply = admin(
        gw.admin_addr,
        "POST",
        "/api/v1/plugins",
        Some(headers_plugin("a", "1")),
    )
    .await;
    assert_eq!(reply.status, 500, "{}", reply.text());
    assert_eq!(reply.json()["error"]["type"], "persist_failed");
    assert!(names(&gw).await.is_empty());
    assert_eq!(served(&gw).await, None);
    fs.free();
    let reply = admin(
        gw.admin_addr,
        "POST",
        "/api/v1/plugins",
        Some(headers_plugin("a", "1")),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert_eq!(served(&gw).await.as_deref(), Some("1"));
    // Read-only: update and delete answer 500 and change nothing.
    fs.remount("ro");
    let reply = admin(
        gw.admin_addr,
        "PUT",
        "/api/v1/plugins/a",
        Some(headers_plugin("a", "2")),
    )
    .await;
    assert_eq!(reply.status, 500, "{}", reply.text());
    assert_eq!(served(&gw).await.as_deref(), Some("1"));
    let reply = admin(gw.admin_addr, "DELETE", "/api/v1/plugins/a", None).await;
    assert_eq!(reply.status, 500, "{}", reply.text());
    assert_eq!(names(&gw).await, ["a"]);
    assert_eq!(served(&gw).await.as_deref(), Some("1"));
    gw.shutdown();
    gw.wait().await;
    // A restart loads exactly what was answered.
    fs.remount("rw");
    let gw = cfg.start().await;
    assert_eq!(names(&gw).await, ["a"]);
    assert_eq!(served(&gw).await.as_deref(), Some("1"));
}

async fn eventually<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if probe().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within 10 s");
}

#[tokio::test]
async fn a_persisted_plugin_whose_binary_is_gone_keeps_the_api_up() {
    let up = TestUpstream::start("up").await;
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("enricher");
    std::fs::copy(ENRICHER, &binary).unwrap();
    let cfg = config(
        &up,
        &dir.path().join("data"),
        "[plugin_runtime]\nallow_api_file_paths = true\n",
    );
    let gw = cfg.start().await;
    // fail_closed, so required by default.
    let body = json!({ "name": "guard", "command": format!("file://{}", binary.display()), "hook_type": "pre_auth", "on_error": "fail_closed" });
    let reply = admin(gw.admin_addr, "POST", "/api/v1/plugins", Some(body)).await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    gw.shutdown();
    gw.wait().await;
    std::fs::remove_file(&binary).unwrap();
    let gw = cfg.start().await;
    let health = admin(gw.admin_addr, "GET", "/api/v1/plugins/guard/health", None)
        .await
        .json();
    assert_eq!(health["state"], "failed", "{health}");
    assert!(
        health["last_error"]
            .as_str()
            .unwrap()
            .contains("cannot resolve"),
        "{health}"
    );
    let ready = get(gw.admin_addr, "/readyz").await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json()["plugins"], json!(["guard"]));
    // Fail closed: nothing passes the missing guard.
    get(gw.proxy_addr, "/x")
        .await
        .assert_error(http::StatusCode::SERVICE_UNAVAILABLE, "plugin_unavailable");
    let reply = admin(gw.admin_addr, "DELETE", "/api/v1/plugins/guard", None).await;
    assert_eq!(reply.status, 204, "{}", reply.text());
    assert_eq!(get(gw.admin_addr, "/readyz").await.status, 200);
    assert_eq!(get(gw.proxy_addr, "/x").await.status, 200);
}

#[tokio::test]
async fn a_plugin_that_is_not_required_degrades_and_is_retried() {
    let up = TestUpstream::start("up").await;
    let dir = tempfile::tempdir().unwrap();
    let later = dir.path().join("enricher");
    let gw = GatewayConfig::new()
        .admin("health_check_interval = \"200ms\"")
        .upstream("main", &[&up])
        .route("main", "main", "")
        .plugin(PluginEntry::file("later", &later, "pre_auth"))
        .plugin(PluginEntry::file("junk", CHAOS, "post_auth").env("CHAOS_MODE", "garbage"))
        .start()
        .await;
    // Both fail_open: the gateway serves, reports them, and stays ready.
    let reply = get(gw.proxy_addr, "/x").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.echo().header("x-enriched-by"), None);
    assert_eq!(get(gw.admin_addr, "/readyz").await.status, 200);
    for name in ["later", "junk"] {
        let h = admin(
            gw.admin_addr,
            "GET",
            &format!("/api/v1/plugins/{name}/health"),
            None,
        )
        .await
        .json();
        assert_eq!(h["state"], "failed", "{name}: {h}");
    }
    let junk = admin(gw.admin_addr, "GET", "/api/v1/plugins/junk/health", None)
        .await
        .json();
    assert!(
        junk["last_error"].as_str().unwrap().contains("handshake"),
        "{junk}"
    );
    // The binary appears: a background retry loads it, without restarting anything else.
    std::fs::copy(ENRICHER, &later).unwrap();
    eventually("the retry", || async {
        get(gw.proxy_addr, "/x")
            .await
            .echo()
            .header("x-enriched-by")
            == Some("header-enricher")
    })
    .await;
    let h = admin(gw.admin_addr, "GET", "/api/v1/plugins/later/health", None)
        .await
        .json();
    assert_eq!(h["state"], "ready", "{h}");
    let metrics = get(gw.admin_addr, "/metrics").await.text();
    assert!(
        metrics.contains("microgateway_plugin_load_failures_total{plugin=\"junk\"}"),
        "{metrics}"
    );
}
