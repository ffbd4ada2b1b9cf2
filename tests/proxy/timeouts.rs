//! Upstream failures: a route timeout answers 504 `upstream_timeout` without waiting for
//! the slow upstream, and an unreachable upstream answers 502 `upstream_unavailable`.

use crate::common::{GatewayConfig, TestUpstream, closed_port, get};
use hyper::StatusCode;
use std::time::{Duration, Instant};

#[tokio::test]
async fn route_timeout_answers_504() {
    let up = TestUpstream::start("U").await;
    let gw = GatewayConfig::new()
        .upstream("u", &[&up])
        .route("quick", "u", "path_prefix = \"/slow\"\ntimeout = \"300ms\"")
        .route(
            "patient",
            "u",
            "path_prefix = \"/patient\"\nstrip_prefix = true\ntimeout = \"5s\"",
        )
        .start()
        .await;
    let start = Instant::now();
    let reply = get(gw.proxy_addr, "/slow?ms=2000").await;
    let elapsed = start.elapsed();
    let error = reply.assert_error(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout");
    assert!(
        elapsed < Duration::from_millis(1500),
        "504 came after {elapsed:?}, not at the 300ms route timeout"
    );
    assert!(
        error["message"].as_str().unwrap().contains("300"),
        "{error}"
    );
    assert_eq!(error["request_id"], reply.header("x-request-id").unwrap());

    // The timeout is per route: another route to the same upstream waits longer.
    let reply = get(gw.proxy_addr, "/patient/slow?ms=600").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.text(), "slow done");
}

#[tokio::test]
async fn unreachable_upstream_answers_502() {
    let down = closed_port().await;
    let gw = GatewayConfig::new()
        .upstream_urls("gone", &[format!("http://{down}")], "")
        .route("gone", "gone", "")
        .start()
        .await;
    let reply = get(gw.proxy_addr, "/echo").await;
    let error = reply.assert_error(StatusCode::BAD_GATEWAY, "upstream_unavailable");
    assert!(
        error["message"].as_str().unwrap().contains("gone"),
        "{error}"
    );
}

#[tokio::test]
async fn connect_timeout_answers_504() {
    let (addr, _held, _listener) = crate::common::upstream::blackhole().await;
    let gw = GatewayConfig::new()
        .upstream_urls(
            "hung",
            &[format!("http://{addr}")],
            "connect_timeout = \"300ms\"",
        )
        .route("hung", "hung", "timeout = \"10s\"")
        .start()
        .await;
    let start = Instant::now();
    let reply = get(gw.proxy_addr, "/echo").await;
    let elapsed = start.elapsed();
    let error = reply.assert_error(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout");
    assert!(elapsed < Duration::from_secs(3), "504 after {elapsed:?}");
    assert!(
        error["message"].as_str().unwrap().contains("300"),
        "{error}"
    );
}

#[tokio::test]
async fn garbage_from_the_upstream_answers_502() {
    let addr = crate::common::upstream::scripted_upstream(b"this is not http\r\n\r\n").await;
    let gw = GatewayConfig::new()
        .upstream_urls("junk", &[format!("http://{addr}")], "")
        .route("junk", "junk", "")
        .start()
        .await;
    let reply = get(gw.proxy_addr, "/echo").await;
    reply.assert_error(StatusCode::BAD_GATEWAY, "upstream_unavailable");
}

#[tokio::test]
async fn truncated_upstream_body_is_not_passed_off_as_complete() {
    let addr = crate::common::upstream::scripted_upstream(
        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly-part",
    )
    .await;
    let gw = GatewayConfig::new()
        .upstream_urls("short", &[format!("http://{addr}")], "")
        .route("short", "short", "")
        .start()
        .await;
    let req = hyper::Request::get(crate::common::client::url(gw.proxy_addr, "/x"))
        .body(crate::common::client::empty())
        .unwrap();
    let resp = crate::common::client::h1().request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = tokio::time::timeout(
        Duration::from_secs(10),
        http_body_util::BodyExt::collect(resp.into_body()),
    )
    .await
    .expect("truncated body never ended");
    assert!(
        body.is_err(),
        "a truncated upstream body must reach the client as an error, not a clean end"
    );
}
