//! Reloads under fire: a loop of plugin reloads while requests flow (zero may fail, every
//! replaced plugin process must end), and a reload while the OCI registry is down (the
//! cached digest keeps serving; a plugin that is not cached fails the reload cleanly and
//! leaves the running set in place).

use crate::common::client::full;
use crate::common::gateway::{toml_path, toml_str};
use crate::common::{PluginEntry, TestUpstream, get, request};
use crate::registry::{Registry, push, settings, store};
use crate::support::{ENRICHER, Watched, children, config, gone, recorder};
use crate::traffic::Load;
use std::time::Duration;

/// `POST` to the admin API (open on loopback without a token) with an optional JSON body.
async fn admin_post(
    gw: &Watched,
    path: &str,
    body: Option<serde_json::Value>,
) -> crate::common::Reply {
    let auth = ("authorization", crate::common::gateway::ADMIN_AUTH);
    let (headers, payload) = match body {
        Some(v) => (
            vec![auth, ("content-type", "application/json")],
            full(v.to_string()),
        ),
        None => (vec![auth], crate::common::client::empty()),
    };
    request(gw.gw.admin_addr, "POST", path, &headers, payload).await
}

#[tokio::test]
async fn reload_loop_under_load_loses_no_request() {
    let up = recorder().await;
    let plugin = PluginEntry::file("enricher", ENRICHER, "pre_auth")
        .extra("timeout = \"2s\"")
        .toml();
    let gw = Watched::start(&config(&up, &[], &plugin)).await;
    let load = Load::start(gw.gw.proxy_addr, "/loaded", 4);
    let mut replaced = Vec::new();
    for i in 0..30 {
        replaced.extend(children(gw.pid));
        let reply = admin_post(&gw, "/api/v1/plugins/enricher/reload", None).await;
        assert_eq!(reply.status, 200, "reload {i}: {}", reply.text());
        assert_eq!(reply.json()["health"]["state"], "ready", "reload {i}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let during = load.ok();
    load.stop().await.assert_clean();
    assert!(during > 30, "only {during} requests during 30 reloads");
    gw.assert_no_leaks("30 reloads").await;
    let current = children(gw.pid);
    for pid in replaced.into_iter().filter(|p| !current.contains(p)) {
        assert!(gone(pid), "replaced plugin process {pid} still runs");
    }
    gw.finish("reload loop").await;
}

#[tokio::test]
async fn registry_down_during_reload_keeps_serving() {
    let mut registry = Registry::start().await;
    let work = tempfile::tempdir().unwrap();
    let publisher = store(settings(&work.path().join("publisher"), &registry), &[]);
    let binary = std::fs::read(ENRICHER).unwrap();
    let reference = format!("{}/plugins/enricher:1", registry.host);
    push(&publisher, &reference, &binary).await;

    let up = TestUpstream::start("up").await;
    let cache = work.path().join("cache");
    let extra = format!(
        "[oci]\ncache_dir = {}\ninsecure_registries = [{}]\nresolve_timeout = \"1s\"\n\n{}",
        toml_path(&cache),
        toml_str(&registry.host),
        PluginEntry::new("enricher", &format!("oci://{reference}"), "pre_auth").toml()
    );
    let gw = Watched::start(&config(&up, &[], &extra)).await;
    let enriched =
        |reply: crate::common::Reply| reply.echo().header("x-enriched-by").map(str::to_string);
    assert_eq!(
        enriched(get(gw.gw.proxy_addr, "/echo").await).as_deref(),
        Some("header-enricher")
    );

    let load = Load::start(gw.gw.proxy_addr, "/echo", 4);
    registry.stop().await;
    // The tag cannot be re-resolved: the cached digest is used and verified again.
    let reply = admin_post(&gw, "/api/v1/plugins/enricher/reload", None).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["health"]["state"], "ready");
    // A plugin that was never pulled cannot be prepared: the reload fails, nothing changes.
    let other = serde_json::json!({
        "name": "other", "hook_type": "pre_auth",
        "command": format!("oci://{}/plugins/other:1", registry.host),
    });
    let reply = admin_post(&gw, "/api/v1/plugins", Some(other)).await;
    assert_eq!(reply.status, 422, "{}", reply.text());
    assert_eq!(
        reply.json()["error"]["type"],
        "reload_failed",
        "{}",
        reply.text()
    );
    assert!(reply.text().contains(&registry.host), "{}", reply.text());
    assert_eq!(
        enriched(get(gw.gw.proxy_addr, "/echo").await).as_deref(),
        Some("header-enricher")
    );
    load.stop().await.assert_clean();
    gw.finish("registry outage").await;
}
