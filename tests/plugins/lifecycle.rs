//! Process hygiene: a scrubbed environment, and no plugin process (or anything it
//! started) left behind after shutdown, also when the gateway binary gets SIGTERM.

use crate::common::binary::GatewayProcess;
use crate::common::{PluginEntry, TestUpstream, get};
use crate::support::{CHAOS, config, gone};
use std::time::Duration;

#[tokio::test]
async fn plugin_environment_is_scrubbed() {
    // The gateway binary runs with a secret in its environment; the plugin must not see it.
    let up = TestUpstream::start("up").await;
    let entry = PluginEntry::file("env", CHAOS, "pre_auth")
        .env("CHAOS_MODE", "env")
        .env("EXTRA_FOR_PLUGIN", "1")
        .toml();
    let cfg = config(&up, &entry);
    let gw = GatewayProcess::spawn_with_env(
        &cfg,
        &[
            ("AWS_SECRET_ACCESS_KEY", "hunter2"),
            ("OPENAI_API_KEY", "sk-x"),
        ],
    )
    .await;
    let reply = get(gw.proxy_addr, "/x").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let names = reply.echo().header("x-env").unwrap().to_string();
    let names: Vec<&str> = names.split(',').collect();
    assert!(
        !names.contains(&"AWS_SECRET_ACCESS_KEY") && !names.contains(&"OPENAI_API_KEY"),
        "{names:?}"
    );
    for expected in [
        "CHAOS_MODE",
        "EXTRA_FOR_PLUGIN",
        "MICROGATEWAY_PLUGIN",
        "PLUGIN_PROTOCOL_VERSIONS",
        "PLUGIN_UNIX_SOCKET_DIR",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    gw.terminate();
    assert!(gw.wait(Duration::from_secs(10)).await.success());
}

/// A chaos plugin that starts a grandchild process on every call.
fn spawner() -> String {
    PluginEntry::file("spawner", CHAOS, "pre_auth")
        .env("CHAOS_MODE", "spawn_child")
        .toml()
}

async fn pids(addr: std::net::SocketAddr) -> (u32, u32) {
    let reply = get(addr, "/x").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let echo = reply.echo();
    let child: u32 = echo.header("x-child-pid").unwrap().parse().unwrap();
    let plugin: u32 = echo.header("x-pid").unwrap().parse().unwrap();
    (plugin, child)
}

#[tokio::test]
async fn shutdown_leaves_no_plugin_processes() {
    let up = TestUpstream::start("up").await;
    let entry = spawner();
    let gw = config(&up, &entry).start().await;
    let (plugin_pid, child_pid) = pids(gw.proxy_addr).await;
    assert!(!gone(plugin_pid) && !gone(child_pid));
    gw.shutdown();
    gw.wait().await;
    assert!(gone(plugin_pid), "plugin {plugin_pid} still running");
    // SIGKILL to the group is delivered asynchronously; give the kernel a moment.
    let dead = crate::support::eventually(Duration::from_secs(5), async || gone(child_pid)).await;
    assert!(dead, "plugin's child {child_pid} still running");
}

#[tokio::test]
async fn sigterm_to_the_binary_stops_plugins() {
    let up = TestUpstream::start("up").await;
    let entry = spawner();
    let gw = GatewayProcess::spawn(&config(&up, &entry)).await;
    let (plugin_pid, child_pid) = pids(gw.proxy_addr).await;
    gw.terminate();
    assert!(gw.wait(Duration::from_secs(10)).await.success());
    // SIGKILL to the group is delivered asynchronously; give the kernel a moment.
    let dead = crate::support::eventually(Duration::from_secs(5), async || {
        gone(plugin_pid) && gone(child_pid)
    })
    .await;
    assert!(dead, "leftover processes {plugin_pid} {child_pid}");
}

#[tokio::test]
async fn replaced_plugin_set_is_shut_down() {
    let up = TestUpstream::start("up").await;
    let entry = spawner();
    let gw = config(&up, &entry).start().await;
    let (plugin_pid, child_pid) = pids(gw.proxy_addr).await;
    gw.proxy()
        .reload_plugins(&[], Duration::from_secs(5))
        .await
        .unwrap();
    let stopped = crate::support::eventually(Duration::from_secs(10), async || {
        gone(plugin_pid) && gone(child_pid)
    })
    .await;
    assert!(stopped, "old plugin processes still running");
    assert_eq!(get(gw.proxy_addr, "/x").await.status, 200);
}
