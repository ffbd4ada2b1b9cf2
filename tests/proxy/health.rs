//! Target health, balancing and circuit breaking against real upstreams: passive
//! ejection and recovery of a dead target, 5xx ejection after `max_fails`, active
//! checks, weighted and consistent-hash distribution, `least_request` avoiding a busy
//! target, `max_requests` answering 503, and a fully ejected group still trying one
//! target. State is read from `GET /api/v1/upstreams` and `/metrics`.

use crate::common::gateway::ADMIN_AUTH;
use crate::common::{GatewayConfig, Respond, TestUpstream, closed_port, get, get_with};
use hyper::StatusCode;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET /api/v1/upstreams`, the group named `name`.
async fn group(admin: SocketAddr, name: &str) -> serde_json::Value {
    let reply = get_with(admin, "/api/v1/upstreams", &[("authorization", ADMIN_AUTH)]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let all = reply.json();
    all["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no upstream {name}: {all}"))
}

/// The state of target `i` of group `name`.
async fn state(admin: SocketAddr, name: &str, i: usize) -> String {
    group(admin, name).await["targets"][i]["state"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Polls until target `i` of `name` is in `wanted` (at most 10 s).
async fn wait_for_state(admin: SocketAddr, name: &str, i: usize, wanted: &str) {
    for _ in 0..200 {
        if state(admin, name, i).await == wanted {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{name}[{i}] never became {wanted}: {}",
        group(admin, name).await
    );
}

/// The value of the metric line starting with `series`.
pub async fn metric(admin: SocketAddr, series: &str) -> Option<f64> {
    let text = get(admin, "/metrics").await.text();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// A raw HTTP/1.1 server on `addr` (or a fresh port) answering every request `200 ok`
/// while `up` is set and `503 down` otherwise, closing each connection after one answer.
async fn toggle_server(addr: Option<SocketAddr>, up: Arc<AtomicBool>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind(addr.unwrap_or("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let local = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            let up = up.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let answer: &[u8] = if up.load(Ordering::SeqCst) {
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-upstream-id: toggle\r\nconnection: close\r\n\r\nok"
                } else {
                    b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\nconnection: close\r\n\r\ndown"
                };
                let _ = tcp.write_all(answer).await;
                let _ = tcp.shutdown().await;
            });
        }
    });
    local
}

#[tokio::test]
async fn a_dead_target_is_ejected_then_probed_back_after_the_backoff() {
    let alive = TestUpstream::start("alive").await;
    let dead = closed_port().await;
    let gw = GatewayConfig::new()
        .server("workers = 1")
        .upstream_urls(
            "health-dead",
            &[alive.url(), format!("http://{dead}")],
            "fail_timeout = \"300ms\"",
        )
        // Without retries, so that the failed attempt reaches the client and can be counted.
        .route("health-dead", "health-dead", "retry = { on = [] }")
        .start()
        .await;
    let mut failed = 0;
    for _ in 0..20 {
        let reply = get(gw.proxy_addr, "/echo").await;
        if reply.status != StatusCode::OK {
            assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
            failed += 1;
        }
    }
    // One failed connect ejects the target: only the first attempt on it failed.
    assert_eq!(failed, 1);
    let g = group(gw.admin_addr, "health-dead").await;
    let target = &g["targets"][1];
    assert!(
        target["state"] == "ejected" || target["state"] == "half_open",
        "{g}"
    );
    assert_eq!(target["ejections"], 1, "{g}");
    assert_eq!(target["last_error"], "connect", "{g}");
    assert_eq!(g["targets"][0]["state"], "healthy", "{g}");
    let labels = format!("{{upstream=\"health-dead\",target=\"{dead}\"}}");
    assert_eq!(
        metric(
            gw.admin_addr,
            &format!("microgateway_upstream_ejections_total{labels}")
        )
        .await,
        Some(1.0)
    );
    assert_eq!(
        metric(
            gw.admin_addr,
            &format!("microgateway_upstream_target_healthy{labels}")
        )
        .await,
        Some(0.0)
    );

    // The target comes back; after the backoff one probe finds it and restores it.
    toggle_server(Some(dead), Arc::new(AtomicBool::new(true))).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut from_revived = 0;
    for _ in 0..10 {
        let reply = get(gw.proxy_addr, "/echo").await;
        assert_eq!(reply.status, StatusCode::OK);
        from_revived += usize::from(reply.header("x-upstream-id") == Some("toggle"));
    }
    assert!(
        from_revived >= 4,
        "{from_revived} of 10 reached the revived target"
    );
    assert_eq!(state(gw.admin_addr, "health-dead", 1).await, "healthy");
    assert_eq!(
        metric(
            gw.admin_addr,
            &format!("microgateway_upstream_target_healthy{labels}")
        )
        .await,
        Some(1.0)
    );
}

#[tokio::test]
async fn a_target_answering_503_is_ejected_after_max_fails() {
    let good = TestUpstream::start("good").await;
    let bad = TestUpstream::builder("bad")
        .fallback(Respond::Status(503))
        .start()
        .await;
    let gw = GatewayConfig::new()
        .upstream_urls(
            "health-503",
            &[good.url(), bad.url()],
            "fail_timeout = \"1m\"",
        )
        .route("health-503", "health-503", "")
        .start()
        .await;
    let mut unavailable = 0;
    for _ in 0..30 {
        let reply = get(gw.proxy_addr, "/echo").await;
        unavailable += usize::from(reply.status == StatusCode::SERVICE_UNAVAILABLE);
    }
    // The default max_fails: three consecutive 5xx, then no request reaches it.
    assert_eq!(bad.hits(), 3);
    assert_eq!(unavailable, 3);
    assert_eq!(good.hits(), 27);
    // The endpoint needs the admin token like every /api/v1 call.
    let anonymous = get(gw.admin_addr, "/api/v1/upstreams").await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let g = group(gw.admin_addr, "health-503").await;
    assert_eq!(g["targets"][1]["state"], "ejected", "{g}");
    assert_eq!(g["targets"][1]["last_error"], "5xx", "{g}");
    assert_eq!(g["targets"][1]["consecutive_failures"], 3, "{g}");
}

#[tokio::test]
async fn active_checks_mark_a_target_unhealthy_and_back() {
    let other = TestUpstream::start("other").await;
    let up = Arc::new(AtomicBool::new(false));
    let checked = toggle_server(None, up.clone()).await;
    let gw = GatewayConfig::new()
        .upstream_urls(
            "health-active",
            &[format!("http://{checked}"), other.url()],
            "max_fails = 0\nhealth_check = { path = \"/health\", interval = \"100ms\", timeout = \"1s\", healthy_threshold = 2, unhealthy_threshold = 2 }",
        )
        .route("health-active", "health-active", "")
        .start()
        .await;
    wait_for_state(gw.admin_addr, "health-active", 0, "unhealthy_active").await;
    let before = other.hits();
    for _ in 0..10 {
        assert_eq!(get(gw.proxy_addr, "/echo").await.status, StatusCode::OK);
    }
    assert_eq!(other.hits() - before, 10);
    up.store(true, Ordering::SeqCst);
    wait_for_state(gw.admin_addr, "health-active", 0, "healthy").await;
    let mut reached = 0;
    for _ in 0..10 {
        let reply = get(gw.proxy_addr, "/echo").await;
        reached += usize::from(reply.header("x-upstream-id") == Some("toggle"));
    }
    assert!(reached > 0, "the recovered target got no request");
    let series = format!(
        "microgateway_upstream_health_checks_total{{upstream=\"health-active\",target=\"{checked}\",result=\"failed\"}}"
    );
    assert!(metric(gw.admin_addr, &series).await.unwrap_or(0.0) >= 2.0);
}

#[tokio::test]
async fn weighted_balancing_follows_the_weights() {
    let heavy = TestUpstream::start("heavy").await;
    let light = TestUpstream::start("light").await;
    let gw = GatewayConfig::new()
        .upstream_urls(
            "health-weighted",
            &[heavy.url(), light.url()],
            "balance = \"weighted\"\nweights = [3, 1]",
        )
        .route("health-weighted", "health-weighted", "")
        .start()
        .await;
    for _ in 0..200 {
        assert_eq!(get(gw.proxy_addr, "/echo").await.status, StatusCode::OK);
    }
    let (h, l) = (heavy.hits(), light.hits());
    assert_eq!(h + l, 200);
    assert!((130..=170).contains(&h), "heavy {h}, light {l}");
    assert_eq!(
        group(gw.admin_addr, "health-weighted").await["targets"][0]["weight"],
        3
    );
}

#[tokio::test]
async fn consistent_hash_keeps_one_header_value_on_one_target() {
    let ups = [
        TestUpstream::start("h0").await,
        TestUpstream::start("h1").await,
        TestUpstream::start("h2").await,
    ];
    let urls: Vec<String> = ups.iter().map(TestUpstream::url).collect();
    let gw = GatewayConfig::new()
        .upstream_urls(
            "health-hash",
            &urls,
            "balance = \"consistent_hash\"\nhash_on = { header = \"x-user\" }",
        )
        .route("health-hash", "health-hash", "")
        .start()
        .await;
    let mut owners = std::collections::HashSet::new();
    for user in 0..12 {
        let name = format!("user-{user}");
        let mut seen = std::collections::HashSet::new();
        for _ in 0..5 {
            let reply = get_with(gw.proxy_addr, "/echo", &[("x-user", &name)]).await;
            assert_eq!(reply.status, StatusCode::OK);
            seen.insert(reply.echo().upstream);
        }
        assert_eq!(seen.len(), 1, "{name} moved between {seen:?}");
        owners.extend(seen);
    }
    assert!(owners.len() >= 2, "every user on {owners:?}");
}

#[tokio::test]
async fn least_request_avoids_the_target_with_a_slow_request_in_flight() {
    let a = TestUpstream::start("a").await;
    let b = TestUpstream::start("b").await;
    let gw = GatewayConfig::new()
        .upstream_urls(
            "health-least",
            &[a.url(), b.url()],
            "balance = \"least_request\"",
        )
        .route("health-least", "health-least", "")
        .start()
        .await;
    let proxy = gw.proxy_addr;
    let slow = tokio::spawn(async move { get(proxy, "/slow?ms=2000").await });
    let mut busy = None;
    for _ in 0..100 {
        let g = group(gw.admin_addr, "health-least").await;
        busy = (0..2).find(|&i| g["targets"][i]["in_flight"] == 1);
        if busy.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let busy = busy.expect("the slow request never showed in flight");
    let idle_id = ["a", "b"][1 - busy];
    for _ in 0..10 {
        let reply = get(gw.proxy_addr, "/echo").await;
        assert_eq!(reply.echo().upstream, idle_id);
    }
    assert_eq!(slow.await.unwrap().status, StatusCode::OK);
}

#[tokio::test]
async fn max_requests_answers_503_upstream_overloaded() {
    let up = TestUpstream::start("limited").await;
    let gw = GatewayConfig::new()
        .upstream_urls("health-limited", &[up.url()], "max_requests = 1")
        .route("health-limited", "health-limited", "")
        .start()
        .await;
    let proxy = gw.proxy_addr;
    let slow = tokio::spawn(async move { get(proxy, "/slow?ms=1500").await });
    for _ in 0..100 {
        if up.hits() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused = get(gw.proxy_addr, "/echo").await;
    refused.assert_error(StatusCode::SERVICE_UNAVAILABLE, "upstream_overloaded");
    assert_eq!(up.hits(), 1);
    assert_eq!(slow.await.unwrap().status, StatusCode::OK);
    // The slot is free again.
    assert_eq!(get(gw.proxy_addr, "/echo").await.status, StatusCode::OK);
    assert_eq!(
        metric(
            gw.admin_addr,
            "microgateway_upstream_overloaded_total{upstream=\"health-limited\",limit=\"max_requests\"}"
        )
        .await,
        Some(1.0)
    );
}

#[tokio::test]
async fn a_fully_ejected_group_still_tries_a_target() {
    let only = TestUpstream::builder("only")
        .fallback(Respond::Status(503))
        .start()
        .await;
    let gw = GatewayConfig::new()
        .upstream_urls(
            "health-all-down",
            &[only.url()],
            "max_fails = 1\nfail_timeout = \"1m\"",
        )
        .route("health-all-down", "health-all-down", "")
        .start()
        .await;
    for _ in 0..3 {
        let reply = get(gw.proxy_addr, "/echo").await;
        // The upstream's own answer, never a gateway refusal.
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(reply.text(), "status 503");
    }
    assert_eq!(only.hits(), 3);
    let g = group(gw.admin_addr, "health-all-down").await;
    assert_eq!(g["targets"][0]["state"], "ejected", "{g}");
    assert_eq!(g["targets"][0]["ejections"], 1, "{g}");
}

#[tokio::test]
async fn max_connections_holds_a_connection_until_the_body_ends_and_max_pending_waits() {
    let up = TestUpstream::builder("conns")
        .route("/sse", Respond::Sse)
        .start()
        .await;
    let gw = GatewayConfig::new()
        .upstream_urls("health-conns", &[up.url()], "max_connections = 1")
        .route("health-conns", "health-conns", "")
        .start()
        .await;
    let proxy = gw.proxy_addr;
    // A stream of 5 events 200 ms apart: its head arrives at once, the body takes 800 ms.
    let stream = tokio::spawn(async move { get(proxy, "/sse?n=5&gap_ms=200").await });
    for _ in 0..100 {
        if up.hits() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = get(gw.proxy_addr, "/echo").await;
    refused.assert_error(StatusCode::SERVICE_UNAVAILABLE, "upstream_overloaded");
    assert!(
        refused.text().contains("max_connections"),
        "{}",
        refused.text()
    );
    let streamed = stream.await.unwrap();
    assert_eq!(streamed.status, StatusCode::OK);
    assert!(streamed.text().contains("event-4"), "{}", streamed.text());
    // Freed when the body ended.
    assert_eq!(get(gw.proxy_addr, "/echo").await.status, StatusCode::OK);
    assert_eq!(
        metric(
            gw.admin_addr,
            "microgateway_upstream_overloaded_total{upstream=\"health-conns\",limit=\"max_connections\"}"
        )
        .await,
        Some(1.0)
    );

    // With a queue, the second request waits for the stream's connection instead.
    let gw = GatewayConfig::new()
        .upstream_urls(
            "health-queue",
            &[up.url()],
            "max_connections = 1\nmax_pending = 1",
        )
        .route("health-queue", "health-queue", "")
        .start()
        .await;
    let proxy = gw.proxy_addr;
    let before = up.hits();
    let stream = tokio::spawn(async move { get(proxy, "/sse?n=5&gap_ms=200").await });
    for _ in 0..100 {
        if up.hits() == before + 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let waited = get(gw.proxy_addr, "/echo").await;
    assert_eq!(waited.status, StatusCode::OK, "{}", waited.text());
    let streamed = stream.await.unwrap();
    assert!(streamed.text().contains("event-4"), "{}", streamed.text());
}
