//! Proxy semantics: hop-by-hop headers stripped in both directions, `X-Forwarded-*`,
//! request ids, the Host sent upstream, and method/query/body passing through unchanged.

use crate::common::client::full;
use crate::common::{GatewayConfig, TestUpstream, get, get_with, request, single, single_with};
use hyper::StatusCode;

fn is_uuid(id: &str) -> bool {
    id.len() == 36
        && id.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[tokio::test]
async fn hop_by_hop_request_headers_are_stripped() {
    let up = TestUpstream::start("U").await;
    let gw = single(&up).await;
    let echo = get_with(
        gw.proxy_addr,
        "/echo",
        &[
            ("connection", "x-client-private, X-Other-Private"),
            ("x-client-private", "secret"),
            ("x-other-private", "2"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers, deflate"),
            ("x-normal", "kept"),
            ("authorization", "Bearer end-to-end"),
        ],
    )
    .await
    .echo();
    for gone in [
        "x-client-private",
        "x-other-private",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
    ] {
        assert!(echo.header(gone).is_none(), "{gone} reached the upstream");
    }
    assert!(
        echo.all("connection")
            .iter()
            .all(|v| !v.to_ascii_lowercase().contains("private")),
        "client Connection header reached the upstream: {:?}",
        echo.all("connection")
    );
    assert_eq!(echo.all("te"), ["trailers"], "TE keeps only `trailers`");
    assert_eq!(echo.header("x-normal"), Some("kept"));
    assert_eq!(echo.header("authorization"), Some("Bearer end-to-end"));
}

#[tokio::test]
async fn te_without_trailers_is_not_forwarded() {
    let up = TestUpstream::start("U").await;
    let gw = single(&up).await;
    let echo = get_with(gw.proxy_addr, "/echo", &[("te", "deflate")])
        .await
        .echo();
    assert!(echo.header("te").is_none(), "{:?}", echo.all("te"));
}

#[tokio::test]
async fn hop_by_hop_response_headers_are_stripped() {
    let up = TestUpstream::start("U").await;
    let gw = single(&up).await;
    let reply = get(gw.proxy_addr, "/hop").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), "hop");
    assert_eq!(reply.header("x-normal"), Some("yes"));
    assert!(
        reply.header("x-upstream-private").is_none(),
        "{:?}",
        reply.headers
    );
    assert!(reply.header("keep-alive").is_none(), "{:?}", reply.headers);
    assert!(
        !reply
            .header("connection")
            .unwrap_or_default()
            .contains("x-upstream-private"),
        "{:?}",
        reply.headers
    );
}

#[tokio::test]
async fn forwarding_headers_are_set() {
    let up = TestUpstream::start("U").await;
    let gw = single(&up).await;
    let echo = get_with(
        gw.proxy_addr,
        "/echo",
        &[
            ("host", "front.example"),
            ("x-forwarded-for", "203.0.113.9"),
            // A client cannot claim to have come in over https.
            ("x-forwarded-proto", "https"),
        ],
    )
    .await
    .echo();
    assert_eq!(echo.all("x-forwarded-for"), ["203.0.113.9, 127.0.0.1"]);
    assert_eq!(echo.all("x-forwarded-proto"), ["http"]);
    assert_eq!(echo.all("x-forwarded-host"), ["front.example"]);

    let echo = get(gw.proxy_addr, "/echo").await.echo();
    assert_eq!(echo.all("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(echo.all("x-forwarded-proto"), ["http"]);
    assert_eq!(
        echo.header("x-forwarded-host"),
        Some(gw.proxy_addr.to_string().as_str())
    );
}

#[tokio::test]
async fn request_id_is_generated_and_propagated() {
    let up = TestUpstream::start("U").await;
    let gw = single(&up).await;
    let reply = get(gw.proxy_addr, "/echo").await;
    let id = reply
        .header("x-request-id")
        .expect("response carries a request id");
    assert!(is_uuid(id), "generated id {id:?} is not a UUID");
    assert_eq!(reply.echo().all("x-request-id"), [id]);

    let other = get(gw.proxy_addr, "/echo").await;
    assert_ne!(other.header("x-request-id"), Some(id), "ids must be unique");
}

#[tokio::test]
async fn valid_client_request_id_is_kept_and_invalid_one_replaced() {
    let up = TestUpstream::start("U").await;
    let gw = single(&up).await;
    let reply = get_with(gw.proxy_addr, "/echo", &[("x-request-id", "client-id-42")]).await;
    assert_eq!(reply.header("x-request-id"), Some("client-id-42"));
    assert_eq!(reply.echo().all("x-request-id"), ["client-id-42"]);

    let reply = get_with(gw.proxy_addr, "/echo", &[("x-request-id", "has space")]).await;
    let id = reply.header("x-request-id").unwrap().to_string();
    assert!(
        is_uuid(&id),
        "invalid client id must be replaced, got {id:?}"
    );
    assert_eq!(reply.echo().all("x-request-id"), [id]);
}

#[tokio::test]
async fn request_id_header_name_is_configurable() {
    let up = TestUpstream::start("U").await;
    let gw = single_with(&up, &["request_id_header = \"x-correlation-id\""], "").await;
    let reply = get_with(gw.proxy_addr, "/echo", &[("x-correlation-id", "corr-7")]).await;
    assert_eq!(reply.header("x-correlation-id"), Some("corr-7"));
    let echo = reply.echo();
    assert_eq!(echo.all("x-correlation-id"), ["corr-7"]);
    assert!(echo.header("x-request-id").is_none());
}

#[tokio::test]
async fn host_is_the_target_authority_unless_preserved() {
    let up = TestUpstream::start("U").await;
    let gw = GatewayConfig::new()
        .upstream("u", &[&up])
        .route("plain", "u", "path_prefix = \"/plain\"")
        .route("kept", "u", "path_prefix = \"/kept\"\npreserve_host = true")
        .start()
        .await;
    let client_host = [("host", "front.example:8080")];
    let echo = get_with(gw.proxy_addr, "/plain", &client_host).await.echo();
    assert_eq!(echo.all("host"), [format!("127.0.0.1:{}", up.addr.port())]);
    assert_eq!(echo.all("x-forwarded-host"), ["front.example:8080"]);

    let echo = get_with(gw.proxy_addr, "/kept", &client_host).await.echo();
    assert_eq!(echo.all("host"), ["front.example:8080"]);
}

#[tokio::test]
async fn method_query_and_body_pass_through() {
    let up = TestUpstream::start("U").await;
    let gw = single(&up).await;
    let reply = request(
        gw.proxy_addr,
        "PUT",
        "/items/7?a=1&b=two",
        &[("content-type", "text/plain"), ("x-custom", "v1")],
        full("hello world"),
    )
    .await;
    assert_eq!(reply.header("x-upstream-id"), Some("U"));
    let echo = reply.echo();
    assert_eq!(echo.method, "PUT");
    assert_eq!(echo.path, "/items/7");
    assert_eq!(echo.query.as_deref(), Some("a=1&b=two"));
    assert_eq!(echo.body_len, 11);
    assert_eq!(echo.header("content-length"), Some("11"));
    assert_eq!(echo.header("content-type"), Some("text/plain"));
    assert_eq!(echo.header("x-custom"), Some("v1"));
    assert_eq!(echo.version, "HTTP/1.1");
}

#[tokio::test]
async fn repeated_x_forwarded_for_fields_are_all_kept() {
    // Several X-Forwarded-For field lines form one list (RFC 9110 §5.3); appending the
    // client must keep every earlier hop, not just the first line.
    let up = TestUpstream::start("U").await;
    let gw = single(&up).await;
    let response = crate::common::client::raw(
        gw.proxy_addr,
        b"GET /echo HTTP/1.1\r\nhost: x\r\nx-forwarded-for: 198.51.100.1\r\nx-forwarded-for: 198.51.100.2\r\nconnection: close\r\n\r\n",
    )
    .await;
    let body = &response[response.find("\r\n\r\n").unwrap() + 4..];
    let echo: crate::common::Echo = serde_json::from_str(body).unwrap();
    let joined = echo.all("x-forwarded-for").join(", ");
    assert_eq!(joined, "198.51.100.1, 198.51.100.2, 127.0.0.1");
}

#[tokio::test]
async fn expect_100_continue_lets_the_client_send_its_body() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = TestUpstream::start("U").await;
    let gw = single(&up).await;
    let mut tcp = tokio::net::TcpStream::connect(gw.proxy_addr).await.unwrap();
    tcp.write_all(
        b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .expect("no interim response to Expect: 100-continue")
        .unwrap();
    let interim = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
    tcp.write_all(b"hello").await.unwrap();
    let response = crate::common::client::read_until_close(&mut tcp).await;
    assert!(response.contains(" 200 "), "{interim}{response}");
    assert!(response.contains("\"body_len\":5"), "{response}");
}

#[tokio::test]
async fn http10_client_gets_a_response_it_can_read() {
    let up = TestUpstream::start("U").await;
    let gw = single(&up).await;
    // An unknown-length (streamed) response must not be chunk-encoded for HTTP/1.0.
    let response = crate::common::client::raw(
        gw.proxy_addr,
        b"GET /sse?n=2&gap_ms=10 HTTP/1.0\r\nhost: x\r\n\r\n",
    )
    .await;
    let lower = response.to_ascii_lowercase();
    assert!(lower.starts_with("http/1."), "{response}");
    assert_eq!(crate::common::client::raw_status(&response), 200);
    assert!(!lower.contains("transfer-encoding"), "{response}");
    assert!(
        response.ends_with("\r\n\r\ndata: event-0\n\ndata: event-1\n\n"),
        "{response:?}"
    );
}

#[tokio::test]
async fn head_request_gets_headers_without_body() {
    let up = TestUpstream::start("U").await;
    let gw = single(&up).await;
    let reply = request(
        gw.proxy_addr,
        "HEAD",
        "/echo",
        &[],
        crate::common::client::empty(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.is_empty());
    assert_eq!(reply.header("x-upstream-id"), Some("U"));
}
