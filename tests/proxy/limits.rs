//! Request limits: body size (declared and streamed) → 413, header count and header
//! bytes → 431 (the gateway's JSON answer, and hyper's own hard cap beyond it), and
//! malformed requests → 400.

use crate::common::client::{self, full, raw, raw_status};
use crate::common::gateway::toml_path;
use crate::common::{TestUpstream, request, single_with};
use hyper::StatusCode;
use microgateway::RunningGateway;

const LIMITS: [&str; 3] = [
    "max_header_count = 20",
    "max_header_bytes = 1024",
    "max_body_bytes = 1024",
];

async fn limited(up: &TestUpstream) -> RunningGateway {
    single_with(up, &LIMITS, "").await
}

#[tokio::test]
async fn declared_body_over_the_limit_is_413() {
    let up = TestUpstream::start("U").await;
    let gw = limited(&up).await;
    let reply = request(gw.proxy_addr, "POST", "/echo", &[], full(vec![b'a'; 2048])).await;
    let error = reply.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert_eq!(error["request_id"], reply.header("x-request-id").unwrap());
    assert_eq!(
        up.hits(),
        0,
        "a declared oversized body must not be forwarded"
    );
}

#[tokio::test]
async fn body_at_the_limit_passes() {
    let up = TestUpstream::start("U").await;
    let gw = limited(&up).await;
    let reply = request(gw.proxy_addr, "POST", "/echo", &[], full(vec![b'a'; 1024])).await;
    assert_eq!(reply.echo().body_len, 1024);
    let reply = request(gw.proxy_addr, "POST", "/echo", &[], client::chunked(4, 256)).await;
    assert_eq!(reply.echo().body_len, 1024);
}

#[tokio::test]
async fn streamed_body_over_the_limit_is_413() {
    let up = TestUpstream::start("U").await;
    let gw = limited(&up).await;
    let reply = request(gw.proxy_addr, "POST", "/echo", &[], client::chunked(4, 512)).await;
    reply.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
}

#[tokio::test]
async fn too_many_headers_is_431() {
    let up = TestUpstream::start("U").await;
    let gw = limited(&up).await;
    let names: Vec<String> = (0..25).map(|i| format!("x-h-{i}")).collect();
    let many: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    let reply = request(gw.proxy_addr, "GET", "/echo", &many, client::empty()).await;
    reply.assert_error(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "request_header_fields_too_large",
    );
    assert_eq!(up.hits(), 0);

    // Exactly at the limit: 19 custom headers plus Host.
    let reply = request(gw.proxy_addr, "GET", "/echo", &many[..19], client::empty()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
}

#[tokio::test]
async fn too_many_header_bytes_is_431() {
    let up = TestUpstream::start("U").await;
    let gw = limited(&up).await;
    let big = "b".repeat(1500);
    let reply = request(
        gw.proxy_addr,
        "GET",
        "/echo",
        &[("x-big", big.as_str())],
        client::empty(),
    )
    .await;
    reply.assert_error(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "request_header_fields_too_large",
    );
    // A long request target counts towards the head size too.
    let long_path = format!("/echo?{}", "q".repeat(1500));
    let reply = client::get(gw.proxy_addr, &long_path).await;
    assert_eq!(reply.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn head_beyond_the_connection_buffer_is_431() {
    let up = TestUpstream::start("U").await;
    let gw = limited(&up).await;
    let huge = format!(
        "GET /echo HTTP/1.1\r\nhost: x\r\nx-huge: {}\r\nconnection: close\r\n\r\n",
        "h".repeat(20_000)
    );
    let response = raw(gw.proxy_addr, huge.as_bytes()).await;
    assert_eq!(raw_status(&response), 431, "{response}");

    let mut many = String::from("GET /echo HTTP/1.1\r\nhost: x\r\nconnection: close\r\n");
    for i in 0..200 {
        many.push_str(&format!("x-{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let response = raw(gw.proxy_addr, many.as_bytes()).await;
    assert_eq!(raw_status(&response), 431, "{response}");
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn malformed_request_is_400() {
    let up = TestUpstream::start("U").await;
    let gw = limited(&up).await;
    let response = raw(gw.proxy_addr, b"THIS IS NOT HTTP\r\n\r\n").await;
    assert_eq!(raw_status(&response), 400, "{response:?}");
    let response = raw(
        gw.proxy_addr,
        b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: ten\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&response), 400, "{response:?}");
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn streamed_body_over_the_limit_is_413_towards_an_h2_upstream() {
    let up = TestUpstream::start("U").await;
    let mut config = crate::common::GatewayConfig::new();
    for line in LIMITS {
        config = config.server(line);
    }
    let gw = config
        .upstream_urls("h2", &[up.url()], "protocol = \"http2\"")
        .route("h2", "h2", "")
        .start()
        .await;
    let reply = request(gw.proxy_addr, "POST", "/echo", &[], client::chunked(4, 512)).await;
    reply.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
}

#[tokio::test]
async fn streamed_body_over_the_limit_is_413_towards_an_https_upstream() {
    // `protocol = "auto"` negotiates h2 through ALPN with https targets.
    let pki = crate::common::TestPki::new();
    let up = TestUpstream::start_tls("T", &pki).await;
    let mut config = crate::common::GatewayConfig::new();
    for line in LIMITS {
        config = config.server(line);
    }
    let ca = format!("ca_file = {}", toml_path(&pki.ca_path));
    let gw = config
        .upstream_urls("tls", &[up.url()], &ca)
        .route("tls", "tls", "")
        .start()
        .await;
    let reply = request(gw.proxy_addr, "POST", "/echo", &[], client::chunked(4, 512)).await;
    reply.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
}
