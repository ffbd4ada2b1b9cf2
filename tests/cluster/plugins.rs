//! Fleet-wide plugin changes (`cluster.plugins = true`): a plugin created through one
//! gateway's admin API serves on the others within 2 s, a gateway that joins later
//! converges, and a change made while Redis is down reaches the fleet when it returns.

use crate::common::binary::GatewayProcess;
use crate::common::client::{empty, full, request};
use crate::common::gateway::ADMIN_AUTH;
use crate::common::redis::Redis;
use crate::common::{GatewayConfig, TestUpstream};
use crate::fleet::prefix;
use serde_json::json;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn config(
    redis: &Redis,
    prefix: &str,
    upstream: &TestUpstream,
    data: &std::path::Path,
) -> GatewayConfig {
    GatewayConfig::new()
        .server("workers = 1")
        .admin_data_dir(data)
        .upstream("main", &[upstream])
        .route("main", "main", "")
        .raw(&format!(
            "[cluster]\nredis_url = \"{}\"\nkey_prefix = \"{prefix}\"\nplugins = true\nretry_interval = \"100ms\"",
            redis.url()
        ))
}

async fn admin(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> crate::common::Reply {
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

fn tagger(value: &str) -> serde_json::Value {
    json!({
        "name": "Fleet Tag",
        "command": "builtin://headers",
        "hook_type": "pre_auth",
        "config": { "set": { "x-fleet": value } }
    })
}

/// The `x-fleet` header the upstream saw for one request through `gw`.
async fn tag(gw: &GatewayProcess) -> Option<String> {
    let reply = crate::common::get(gw.proxy_addr, "/x").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.echo().header("x-fleet").map(str::to_string)
}

/// Waits (at most `limit`) for `gw` to tag requests with `want`; returns how long it took.
async fn until_tagged(gw: &GatewayProcess, want: Option<&str>, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if tag(gw).await.as_deref() == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "gateway never tagged {want:?} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_created_on_one_gateway_serves_on_the_others_within_2s() {
    let redis = Redis::start();
    let upstream = TestUpstream::start("up").await;
    let prefix = prefix();
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = GatewayProcess::spawn(&config(&redis, &prefix, &upstream, dirs[0].path())).await;
    let b = GatewayProcess::spawn(&config(&redis, &prefix, &upstream, dirs[1].path())).await;
    let c = GatewayProcess::spawn(&config(&redis, &prefix, &upstream, dirs[2].path())).await;
    assert_eq!(tag(&b).await, None);
    let created = admin(a.admin_addr, "POST", "/api/v1/plugins", Some(tagger("one"))).await;
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(tag(&a).await.as_deref(), Some("one"));
    for gw in [&b, &c] {
        let took = until_tagged(gw, Some("one"), Duration::from_secs(2)).await;
        eprintln!("converged in {took:?}");
    }
    // Each gateway shows the fleet version it runs, and keeps the list for a start
    // without Redis.
    let version = admin(a.admin_addr, "GET", "/api/v1/plugins", None)
        .await
        .json()["fleet"]["version"]
        .clone();
    assert!(version.as_u64().unwrap() >= 1, "{version}");
    let listed = admin(b.admin_addr, "GET", "/api/v1/plugins", None)
        .await
        .json();
    assert_eq!(listed["fleet"]["version"], version, "{listed}");
    assert_eq!(listed["fleet"]["redis_up"], true);
    let kept = std::fs::read_to_string(dirs[2].path().join("plugins.json")).unwrap();
    assert!(kept.contains("Fleet Tag"), "{kept}");
    // A change on B reaches A; a gateway that joins later converges at once.
    let id = listed["plugins"][0]["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/plugins/{id}");
    let patched = admin(
        b.admin_addr,
        "PATCH",
        &path,
        Some(json!({ "config": { "set": { "x-fleet": "two" } } })),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.text());
    until_tagged(&a, Some("two"), Duration::from_secs(2)).await;
    let d = GatewayProcess::spawn(&config(&redis, &prefix, &upstream, dirs[3].path())).await;
    until_tagged(&d, Some("two"), Duration::from_secs(2)).await;
    // A delete on C removes it everywhere.
    assert_eq!(admin(c.admin_addr, "DELETE", &path, None).await.status, 204);
    for gw in [&a, &b, &d] {
        until_tagged(gw, None, Duration::from_secs(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_while_redis_is_down_reaches_the_fleet_when_it_returns() {
    let mut redis = Redis::start();
    let upstream = TestUpstream::start("up").await;
    let prefix = prefix();
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = GatewayProcess::spawn(&config(&redis, &prefix, &upstream, dirs[0].path())).await;
    let b = GatewayProcess::spawn(&config(&redis, &prefix, &upstream, dirs[1].path())).await;
    redis.kill();
    // Applied on A at once, announced later.
    let created = admin(
        a.admin_addr,
        "POST",
        "/api/v1/plugins",
        Some(tagger("late")),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(tag(&a).await.as_deref(), Some("late"));
    let listed = admin(a.admin_addr, "GET", "/api/v1/plugins", None)
        .await
        .json();
    assert_eq!(listed["fleet"]["unpublished"], true, "{listed}");
    assert_eq!(tag(&b).await, None);
    // Redis returns empty; A publishes, B converges.
    redis.restart();
    until_tagged(&b, Some("late"), Duration::from_secs(5)).await;
    let listed = admin(a.admin_addr, "GET", "/api/v1/plugins", None)
        .await
        .json();
    assert_eq!(listed["fleet"]["unpublished"], false, "{listed}");
}
