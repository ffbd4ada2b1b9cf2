//! Path traversal across prefix rewrites: a route `/n` stripped onto `/tenant-a` must not
//! let `..%2f`, `%2e%2e%2f`, `..%5c` or a raw backslash reach `/tenant-b` after the
//! upstream decodes and normalises the path. Every refusal is a `400` that never reaches
//! the upstream; `allow_encoded_slashes` lets encoded slashes through, never dot segments.

use crate::common::client::{raw, raw_status};
use crate::common::{GatewayConfig, TestUpstream, get};
use hyper::StatusCode;
use microgateway::RunningGateway;

/// An upstream whose base path is `/tenant-a`, behind three routes: `/n` (strip), `/old`
/// (rewrite to `/new`) and `/raw` (strip, `allow_encoded_slashes`).
async fn gateway() -> (RunningGateway, TestUpstream) {
    let up = TestUpstream::start("tenants").await;
    let base = format!("{}/tenant-a", up.url());
    let gw = GatewayConfig::new()
        .upstream_urls("tenants", &[base], "")
        .route("n", "tenants", "path_prefix = \"/n\"\nstrip_prefix = true")
        .route(
            "old",
            "tenants",
            "path_prefix = \"/old\"\nrewrite_prefix = \"/new\"",
        )
        .route(
            "raw",
            "tenants",
            "path_prefix = \"/raw\"\nstrip_prefix = true\nallow_encoded_slashes = true",
        )
        .start()
        .await;
    (gw, up)
}

/// Asserts `path` is answered `400 bad_request` naming `found`, and the upstream saw nothing.
async fn assert_refused(gw: &RunningGateway, up: &TestUpstream, path: &str, found: &str) {
    let before = up.hits();
    let reply = get(gw.proxy_addr, path).await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "{path}: {}",
        reply.text()
    );
    let error = reply.assert_error(StatusCode::BAD_REQUEST, "bad_request");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(message.contains(found), "{path}: {message}");
    assert_eq!(up.hits(), before, "{path} reached the upstream");
}

#[tokio::test]
async fn encoded_traversal_across_strip_and_rewrite_is_refused() {
    let (gw, up) = gateway().await;
    // The routes work, and the rewrite is what the attack would abuse.
    assert_eq!(
        get(gw.proxy_addr, "/n/data").await.echo().path,
        "/tenant-a/data"
    );
    assert_eq!(
        get(gw.proxy_addr, "/old/data").await.echo().path,
        "/tenant-a/new/data"
    );
    for path in [
        "/n/..%2ftenant-b/data",
        "/n/..%2Ftenant-b/data",
        "/n/%2e%2e%2ftenant-b",
        "/n/%2E%2e%2Ftenant-b",
        "/n/%2e%2e/tenant-b",
        "/n/..%5ctenant-b",
        "/n/..%5Ctenant-b",
        "/n/%2e%2e%5c%2e%2e%5Ctenant-b",
        "/n/x%2f..%2f..%2ftenant-b",
        "/n/..;/tenant-b",
        "/old/..%2fsecret",
        "/old/%2E%2E%2Fsecret",
        "/old/..%5Csecret",
        // The route flag allows encoded slashes, never what they spell.
        "/raw/..%2ftenant-b/data",
        "/raw/%2e%2e%2Ftenant-b",
        "/raw/..%5ctenant-b",
    ] {
        assert_refused(&gw, &up, path, "dot segment").await;
    }
}

#[tokio::test]
async fn encoded_separators_need_allow_encoded_slashes() {
    let (gw, up) = gateway().await;
    for (path, found) in [
        ("/n/a%2fb", "encoded slash (%2f)"),
        ("/n/a%2Fb", "encoded slash (%2F)"),
        ("/n/a%5cb", "encoded backslash (%5c)"),
        ("/n/a%5Cb", "encoded backslash (%5C)"),
        ("/old/a%2Fb", "encoded slash (%2F)"),
    ] {
        assert_refused(&gw, &up, path, found).await;
    }
    for (path, upstream) in [
        ("/raw/a%2fb", "/tenant-a/a%2fb"),
        ("/raw/a%2Fb", "/tenant-a/a%2Fb"),
        ("/raw/a%5Cb", "/tenant-a/a%5Cb"),
    ] {
        let reply = get(gw.proxy_addr, path).await;
        assert_eq!(reply.echo().path, upstream, "{path}");
    }
    // Double encoding is decoded once: the upstream gets a literal `%2e`, not a dot.
    assert_eq!(
        get(gw.proxy_addr, "/n/%252e%252e/x").await.echo().path,
        "/tenant-a/%252e%252e/x"
    );
}

#[tokio::test]
async fn raw_backslashes_are_always_refused() {
    let (gw, up) = gateway().await;
    for path in ["/n/a\\b", "/n/..\\tenant-b", "/raw/a\\b", "/old/..\\secret"] {
        let before = up.hits();
        let request = format!("GET {path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n");
        let response = raw(gw.proxy_addr, request.as_bytes()).await;
        assert_eq!(raw_status(&response), 400, "{path}: {response}");
        assert!(response.contains("raw backslash"), "{path}: {response}");
        assert_eq!(up.hits(), before, "{path} reached the upstream");
    }
}
