//! Routing: host + longest path prefix on segment boundaries, wildcard hosts, prefix
//! stripping and rewriting, upstream base paths, round robin, and the JSON 404.

use crate::common::{GatewayConfig, TestUpstream, get_with};
use hyper::StatusCode;
use std::net::SocketAddr;

/// Three upstreams `a`, `b`, `c` behind a table exercising host and prefix matching.
struct Table {
    addr: SocketAddr,
    _ups: Vec<TestUpstream>,
}

async fn table() -> Table {
    let a = TestUpstream::start("A").await;
    let b = TestUpstream::start("B").await;
    let c = TestUpstream::start("C").await;
    let gw = GatewayConfig::new()
        .upstream("a", &[&a])
        .upstream("b", &[&b])
        .upstream("c", &[&c])
        .route(
            "api",
            "a",
            "host = \"api.example.com\"\npath_prefix = \"/api\"",
        )
        .route(
            "api-v2",
            "b",
            "host = \"api.example.com\"\npath_prefix = \"/api/v2\"",
        )
        .route("wild", "c", "host = \"*.example.com\"\npath_prefix = \"/\"")
        .route("seg", "a", "path_prefix = \"/seg/\"")
        .start()
        .await;
    Table {
        addr: gw.proxy_addr,
        _ups: vec![a, b, c],
    }
}

async fn upstream_for(addr: SocketAddr, host: &str, path: &str) -> Option<String> {
    let reply = get_with(addr, path, &[("host", host)]).await;
    match reply.status {
        StatusCode::OK => {
            let id = reply.header("x-upstream-id").map(str::to_string);
            assert_eq!(id.as_deref(), Some(reply.echo().upstream.as_str()));
            id
        }
        StatusCode::NOT_FOUND => None,
        other => panic!("unexpected status {other}: {}", reply.text()),
    }
}

#[tokio::test]
async fn host_and_longest_prefix_select_the_upstream() {
    let t = table().await;
    let a = Some("A".to_string());
    let b = Some("B".to_string());
    assert_eq!(upstream_for(t.addr, "api.example.com", "/api").await, a);
    assert_eq!(
        upstream_for(t.addr, "api.example.com", "/api/users").await,
        a
    );
    assert_eq!(upstream_for(t.addr, "api.example.com", "/api/v2").await, b);
    assert_eq!(
        upstream_for(t.addr, "api.example.com", "/api/v2/items?x=1").await,
        b
    );
    // /api/v20 is not inside the /api/v2 segment: the shorter /api prefix wins.
    assert_eq!(upstream_for(t.addr, "api.example.com", "/api/v20").await, a);
    // Host matching ignores case and the port.
    assert_eq!(
        upstream_for(t.addr, "API.Example.COM:8443", "/api/x").await,
        a
    );
    // The path seen upstream is unchanged without strip/rewrite.
    let echo = get_with(t.addr, "/api/v2/items?x=1", &[("host", "api.example.com")])
        .await
        .echo();
    assert_eq!(echo.path, "/api/v2/items");
    assert_eq!(echo.query.as_deref(), Some("x=1"));
}

#[tokio::test]
async fn prefixes_match_on_segment_boundaries_only() {
    let t = table().await;
    let a = Some("A".to_string());
    // Route "seg" has path_prefix "/seg/" (trailing slash is not significant).
    assert_eq!(upstream_for(t.addr, "other.test", "/seg").await, a);
    assert_eq!(upstream_for(t.addr, "other.test", "/seg/x/y").await, a);
    assert_eq!(upstream_for(t.addr, "other.test", "/segx").await, None);
    assert_eq!(upstream_for(t.addr, "other.test", "/se").await, None);
    // `/api` must not match `/apix`: with host api.example.com it falls to the wildcard route.
    assert_eq!(
        upstream_for(t.addr, "api.example.com", "/apix").await,
        Some("C".to_string())
    );
}

#[tokio::test]
async fn wildcard_host_matches_subdomains_but_not_the_apex() {
    let t = table().await;
    let c = Some("C".to_string());
    assert_eq!(
        upstream_for(t.addr, "foo.example.com", "/anything").await,
        c
    );
    assert_eq!(upstream_for(t.addr, "a.b.example.com", "/").await, c);
    assert_eq!(upstream_for(t.addr, "example.com", "/anything").await, None);
    assert_eq!(upstream_for(t.addr, "example.org", "/anything").await, None);
    assert_eq!(
        upstream_for(t.addr, "badexample.com", "/anything").await,
        None
    );
}

#[tokio::test]
async fn strip_prefix_and_rewrite_prefix_change_the_upstream_path() {
    let up = TestUpstream::start("U").await;
    let base = format!("{}/base/", up.url());
    let gw = GatewayConfig::new()
        .upstream("u", &[&up])
        .upstream_urls("based", &[base], "")
        .route(
            "strip",
            "u",
            "path_prefix = \"/strip\"\nstrip_prefix = true",
        )
        .route(
            "rewrite",
            "u",
            "path_prefix = \"/old/\"\nrewrite_prefix = \"/new/v2\"",
        )
        .route("based", "based", "path_prefix = \"/based\"")
        .start()
        .await;
    let addr = gw.proxy_addr;
    let path_of = |path: &'static str| async move {
        let echo = crate::common::get(addr, path).await.echo();
        (echo.path, echo.query)
    };
    assert_eq!(
        path_of("/strip/a/b?x=1").await,
        ("/a/b".to_string(), Some("x=1".to_string()))
    );
    assert_eq!(path_of("/strip").await.0, "/");
    assert_eq!(path_of("/strip/").await.0, "/");
    assert_eq!(path_of("/old/x/y").await.0, "/new/v2/x/y");
    assert_eq!(path_of("/old").await.0, "/new/v2");
    // A target URL's base path is prepended to the request path.
    assert_eq!(path_of("/based/z").await.0, "/base/based/z");
}

#[tokio::test]
async fn round_robin_alternates_between_targets() {
    let one = TestUpstream::start("rr-1").await;
    let two = TestUpstream::start("rr-2").await;
    let gw = GatewayConfig::new()
        .upstream("pair", &[&one, &two])
        .route("pair", "pair", "")
        .start()
        .await;
    let mut seen = Vec::new();
    for _ in 0..6 {
        let reply = crate::common::get(gw.proxy_addr, "/echo").await;
        assert_eq!(reply.status, StatusCode::OK);
        seen.push(reply.header("x-upstream-id").unwrap().to_string());
    }
    for pair in seen.windows(2) {
        assert_ne!(pair[0], pair[1], "round robin must alternate: {seen:?}");
    }
    assert_eq!(seen.iter().filter(|s| *s == "rr-1").count(), 3, "{seen:?}");
    assert_eq!(one.hits(), 3);
    assert_eq!(two.hits(), 3);
}

#[tokio::test]
async fn unmatched_request_gets_json_404() {
    let t = table().await;
    let reply = get_with(t.addr, "/nowhere", &[("host", "unknown.test")]).await;
    let error = reply.assert_error(StatusCode::NOT_FOUND, "route_not_found");
    let id = reply
        .header("x-request-id")
        .expect("request id on errors too");
    assert_eq!(error["request_id"], id);
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("/nowhere"), "{message}");
    for up in &t._ups {
        assert_eq!(up.hits(), 0, "no upstream may see an unrouted request");
    }
}
