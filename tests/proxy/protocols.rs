//! HTTP/2 and TLS on both sides: h2c prior-knowledge clients, the TLS listener with ALPN
//! (http/1.1 and h2), https upstreams trusted through `ca_file`, and h2c upstreams with
//! `protocol = "http2"`.

use crate::common::client::{self, empty};
use crate::common::gateway::toml_path;
use crate::common::pki::TestPki;
use crate::common::{GatewayConfig, TestUpstream, get, single};
use futures_util::future::join_all;
use hyper::{Request, StatusCode, Version};
use microgateway::RunningGateway;

#[tokio::test]
async fn h2c_client_gets_proxied_responses() {
    let up = TestUpstream::start("U").await;
    let gw = single(&up).await;
    let mut h2 = client::h2c(gw.proxy_addr).await;
    let req = Request::get(client::url(gw.proxy_addr, "/echo?via=h2c"))
        .body(empty())
        .unwrap();
    let reply = client::send_h2(&mut h2, req).await;
    assert_eq!(reply.version, Version::HTTP_2);
    assert_eq!(reply.header("x-upstream-id"), Some("U"));
    assert!(reply.header("x-request-id").is_some());
    let echo = reply.echo();
    assert_eq!(echo.path, "/echo");
    assert_eq!(echo.query.as_deref(), Some("via=h2c"));
    // The upstream connection is HTTP/1.1 whatever the client spoke.
    assert_eq!(echo.version, "HTTP/1.1");
    // Without a Host header the :authority is the client's host.
    assert_eq!(
        echo.header("x-forwarded-host"),
        Some(gw.proxy_addr.to_string().as_str())
    );
    assert_eq!(echo.all("host"), [up.addr.to_string()]);

    // Many concurrent streams on the one connection.
    let replies = join_all((0..8).map(|i| {
        let mut h2 = h2.clone();
        let req = Request::get(client::url(gw.proxy_addr, &format!("/echo/{i}")))
            .body(empty())
            .unwrap();
        async move { client::send_h2(&mut h2, req).await }
    }))
    .await;
    for (i, reply) in replies.iter().enumerate() {
        assert_eq!(reply.echo().path, format!("/echo/{i}"));
    }
}

async fn tls_gateway(pki: &TestPki, up: &TestUpstream) -> RunningGateway {
    GatewayConfig::new()
        .upstream("main", &[up])
        .route("main", "main", "")
        .raw(&format!(
            "[server.tls]\ncert = {}\nkey = {}",
            toml_path(&pki.cert_path),
            toml_path(&pki.key_path)
        ))
        .start()
        .await
}

#[tokio::test]
async fn tls_listener_serves_http1_over_alpn() {
    let pki = TestPki::new();
    let up = TestUpstream::start("U").await;
    let gw = tls_gateway(&pki, &up).await;
    let stream = client::tls(gw.proxy_addr, &pki, &[b"http/1.1"]).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let mut h1 = client::h1_over(stream).await;
    let req = Request::get("/echo")
        .header("host", "localhost")
        .body(empty())
        .unwrap();
    let resp = h1.send_request(req).await.unwrap();
    let reply = client::collect(resp).await;
    assert_eq!(reply.version, Version::HTTP_11);
    let echo = reply.echo();
    assert_eq!(echo.all("x-forwarded-proto"), ["https"]);
    assert_eq!(echo.all("x-forwarded-host"), ["localhost"]);
}

#[tokio::test]
async fn tls_listener_serves_h2_over_alpn() {
    let pki = TestPki::new();
    let up = TestUpstream::start("U").await;
    let gw = tls_gateway(&pki, &up).await;
    let stream = client::tls(gw.proxy_addr, &pki, &[b"h2", b"http/1.1"]).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut h2 = client::h2_over(stream).await;
    let authority = format!("localhost:{}", gw.proxy_addr.port());
    let req = Request::get(format!("https://{authority}/echo"))
        .body(empty())
        .unwrap();
    let reply = client::send_h2(&mut h2, req).await;
    assert_eq!(reply.version, Version::HTTP_2);
    let echo = reply.echo();
    assert_eq!(echo.all("x-forwarded-proto"), ["https"]);
    assert_eq!(echo.all("x-forwarded-host"), [authority]);
}

#[tokio::test]
async fn tls_listener_does_not_answer_plain_http() {
    let pki = TestPki::new();
    let up = TestUpstream::start("U").await;
    let gw = tls_gateway(&pki, &up).await;
    let response = client::raw(
        gw.proxy_addr,
        b"GET /echo HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(!response.contains("200 OK"), "{response}");
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn https_upstream_trusted_through_ca_file() {
    let pki = TestPki::new();
    let up = TestUpstream::start_tls("T", &pki).await;
    let ca = format!("ca_file = {}", toml_path(&pki.ca_path));
    let gw = GatewayConfig::new()
        .upstream_urls("auto", &[up.url()], &ca)
        .upstream_urls("h1", &[up.url()], &format!("{ca}\nprotocol = \"http1\""))
        .route("h1", "h1", "path_prefix = \"/h1\"")
        .route("auto", "auto", "")
        .start()
        .await;
    assert!(up.url().starts_with("https://"));
    let echo = get(gw.proxy_addr, "/echo").await.echo();
    assert_eq!(echo.upstream, "T");
    // `auto` prefers h2 through ALPN on https targets.
    assert_eq!(echo.version, "HTTP/2.0");
    let echo = get(gw.proxy_addr, "/h1/echo").await.echo();
    assert_eq!(echo.version, "HTTP/1.1");
    assert_eq!(echo.path, "/h1/echo");
}

#[tokio::test]
async fn https_upstream_with_untrusted_certificate_is_502() {
    let pki = TestPki::new();
    let up = TestUpstream::start_tls("T", &pki).await;
    // No ca_file: the system roots do not know the test CA.
    let gw = GatewayConfig::new()
        .upstream_urls("untrusted", &[up.url()], "")
        .route("untrusted", "untrusted", "")
        .start()
        .await;
    let reply = get(gw.proxy_addr, "/echo").await;
    reply.assert_error(StatusCode::BAD_GATEWAY, "upstream_unavailable");
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn h2c_upstream_with_protocol_http2() {
    let up = TestUpstream::start("H2").await;
    let gw = GatewayConfig::new()
        .upstream_urls("h2", &[up.url()], "protocol = \"http2\"")
        .route("h2", "h2", "")
        .start()
        .await;
    let reply = client::request(gw.proxy_addr, "POST", "/echo", &[], client::full("abc")).await;
    let echo = reply.echo();
    assert_eq!(echo.version, "HTTP/2.0");
    assert_eq!(echo.body_len, 3);
    assert_eq!(echo.method, "POST");
    // The client still gets HTTP/1.1 on its HTTP/1.1 connection.
    assert_eq!(reply.version, Version::HTTP_11);

    let sse = get(gw.proxy_addr, "/sse?n=3&gap_ms=10").await;
    assert_eq!(
        sse.text(),
        "data: event-0\n\ndata: event-1\n\ndata: event-2\n\n"
    );
}

#[tokio::test]
async fn preserve_host_is_consistent_towards_an_h2_upstream() {
    let up = TestUpstream::start("H2").await;
    let gw = GatewayConfig::new()
        .upstream_urls("h2", &[up.url()], "protocol = \"http2\"")
        .route("h2", "h2", "preserve_host = true")
        .start()
        .await;
    let echo = crate::common::get_with(gw.proxy_addr, "/echo", &[("host", "front.example")])
        .await
        .echo();
    // On HTTP/2 the host travels as :authority; a Host field, if any, must agree with it.
    assert_eq!(echo.authority.as_deref(), Some("front.example"), "{echo:?}");
    assert!(
        echo.all("host").iter().all(|h| h == "front.example"),
        "{echo:?}"
    );
}

#[tokio::test]
async fn start_fails_cleanly_when_certificate_and_key_do_not_match() {
    let one = TestPki::new();
    let other = TestPki::new();
    let up = TestUpstream::start("U").await;
    let config = GatewayConfig::new()
        .upstream("main", &[&up])
        .route("main", "main", "")
        .raw(&format!(
            "[server.tls]\ncert = {}\nkey = {}",
            toml_path(&one.cert_path),
            toml_path(&other.key_path)
        ))
        .config();
    match microgateway::start(config).await {
        Ok(_) => panic!("gateway started with a key that does not match its certificate"),
        Err(e) => assert!(
            matches!(e, microgateway::server::ServerError::Tls(_)),
            "unexpected error: {e}"
        ),
    }
}
