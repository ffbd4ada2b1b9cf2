//! Swapping the plugin set while traffic flows loses no request, and a failed reload
//! leaves the running set in place.

use crate::common::{PluginEntry, get};
use crate::support::{Journal, gateway, upstream};
use microgateway::config::PluginConfig;
use std::sync::Arc;
use std::time::Duration;

fn set(value: &str) -> Vec<PluginConfig> {
    let toml = format!(
        "[[upstreams]]\nname = \"local-app\"\ntargets = [\"http://127.0.0.1:9\"]\n{}",
        PluginEntry::new("tag", "builtin://headers", "on_response")
            .extra(&format!(
                "config = {{ set = {{ \"x-set\" = \"{value}\" }} }}"
            ))
            .toml()
    );
    microgateway::Config::from_toml(&toml).unwrap().plugins
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapping_mid_traffic_loses_no_request() {
    let up = upstream().await;
    let gw = gateway(&up, "", Arc::new(Journal::default())).await;
    let addr = gw.proxy_addr;
    let clients: Vec<_> = (0..4)
        .map(|_| {
            tokio::spawn(async move {
                let mut seen = std::collections::BTreeMap::<String, usize>::new();
                for _ in 0..150 {
                    let got = get(addr, "/x").await;
                    assert_eq!(got.status, 200, "{}", got.text());
                    let tag = got
                        .headers
                        .get("x-set")
                        .map(|v| v.to_str().unwrap().to_string());
                    *seen.entry(tag.unwrap_or_default()).or_default() += 1;
                }
                seen
            })
        })
        .collect();
    let proxy = gw.proxy().clone();
    for i in 0..60 {
        let value = if i % 2 == 0 { "a" } else { "b" };
        proxy
            .reload_plugins(&set(value), Duration::from_secs(5))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let mut total = std::collections::BTreeMap::<String, usize>::new();
    for c in clients {
        for (k, v) in c.await.unwrap() {
            *total.entry(k).or_default() += v;
        }
    }
    assert_eq!(total.values().sum::<usize>(), 600);
    assert!(
        total.contains_key("a") && total.contains_key("b"),
        "{total:?}"
    );
}

#[tokio::test]
async fn failed_reload_keeps_running_set() {
    let up = upstream().await;
    let gw = gateway(&up, "", Arc::new(Journal::default())).await;
    gw.proxy()
        .reload_plugins(&set("kept"), Duration::from_secs(1))
        .await
        .unwrap();
    let mut broken = set("x");
    broken[0].command = "builtin://does_not_exist".into();
    let err = gw
        .proxy()
        .reload_plugins(&broken, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does_not_exist"), "{err}");
    assert_eq!(get(gw.proxy_addr, "/x").await.headers["x-set"], "kept");
}
