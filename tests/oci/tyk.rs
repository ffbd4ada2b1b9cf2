//! A plugin written for Tyk AI Studio, built with Debian's go-plugin 1.0.1 and pushed to
//! a registry, runs as `oci://` like a `file://` plugin, its contract detected.

use crate::common::gateway::{toml_path, toml_str};
use crate::common::{GatewayConfig, PluginEntry, TestUpstream, get_with, golang};
use crate::registry::{Registry, push, settings, store};

#[tokio::test]
async fn tyk_go_plugin_runs_from_a_registry() {
    let reg = Registry::start().await;
    let cache = tempfile::tempdir().unwrap();
    let s = store(settings(cache.path(), &reg), &[]);
    let binary = std::fs::read(golang::build(&golang::example_dir("tyk-plugin"))).unwrap();
    let reference = format!("{}/plugins/tyk:1.0", reg.host);
    push(&s, &reference, &binary).await;
    let up = TestUpstream::start("up").await;
    let oci = format!(
        "[oci]\ncache_dir = {}\ninsecure_registries = [{}]\n",
        toml_path(cache.path()),
        toml_str(&reg.host)
    );
    let pre = PluginEntry::new("tyk-pre", &format!("oci://{reference}"), "pre_auth")
        .extra("config = { greeting = \"from-oci\" }");
    let post = PluginEntry::new("tyk-post", "oci://", "post_auth").extra(&format!(
        "oci_reference = {}\ncontract = \"tyk\"",
        toml_str(&reference)
    ));
    let gw = GatewayConfig::new()
        .upstream("main", &[&up])
        .route("main", "main", "")
        .raw(&oci)
        .plugin(pre)
        .plugin(post)
        .start()
        .await;
    let set = gw.proxy().plugins();
    for instance in set.instances() {
        assert_eq!(
            instance.plugin.health().contract,
            Some("tyk"),
            "{}",
            instance.name
        );
    }
    let reply = get_with(gw.proxy_addr, "/x", &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let echo = reply.echo();
    assert_eq!(echo.header("x-tyk-greeting"), Some("from-oci"));
    // The pre-auth hook's context update reached the post-auth instance.
    assert_eq!(echo.header("x-tyk-tier"), Some("gold"));
    let blocked = get_with(gw.proxy_addr, "/x", &[("x-block", "1")]).await;
    assert_eq!(blocked.status, 451, "{}", blocked.text());
}
