//! Upstream body stalls (`routes[].body_timeout`): an upstream that sends part of a
//! response body and then nothing is cut, so the client sees an aborted response (the
//! connection closes short of Content-Length, or without the final chunk; an HTTP/2
//! stream is reset) instead of a complete one; a slow but steady stream is never cut.

use crate::common::client::read_until_close;
use crate::common::{GatewayConfig, get};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the fake upstream writes after it read a request head.
#[derive(Clone, Copy)]
enum Script {
    /// `Content-Length: 100`, 10 bytes, then silence.
    ShortLength,
    /// A chunked SSE response: one event, then silence (no final chunk).
    ChunkedStall,
    /// Ten chunks 100 ms apart, then the final chunk.
    Steady,
}

/// A raw HTTP/1.1 upstream that plays `script` on every connection and keeps each
/// connection open until the test ends (a stall, never a close).
async fn upstream(script: Script) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(play(tcp, script));
        }
    });
    addr
}

async fn play(mut tcp: TcpStream, script: Script) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    match script {
        Script::ShortLength => {
            let _ = tcp
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
                .await;
        }
        Script::ChunkedStall => {
            let _ = tcp
                .write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                      Transfer-Encoding: chunked\r\n\r\n9\r\ndata: x\n\n\r\n",
                )
                .await;
        }
        Script::Steady => {
            let _ = tcp
                .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await;
            for i in 0..10 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let chunk = format!("7\r\ntick {i:02}\r\n");
                if tcp.write_all(chunk.as_bytes()).await.is_err() {
                    return;
                }
            }
            let _ = tcp.write_all(b"0\r\n\r\n").await;
        }
    }
    // Hold the connection: the upstream stalls rather than closing.
    tokio::time::sleep(Duration::from_secs(30)).await;
}

/// Sends one GET over a raw connection and returns what arrived before the gateway
/// closed it, and how long that took.
async fn fetch(gateway: SocketAddr) -> (String, Duration) {
    let mut tcp = TcpStream::connect(gateway).await.unwrap();
    tcp.write_all(b"GET /s HTTP/1.1\r\nHost: stall.test\r\n\r\n")
        .await
        .unwrap();
    let start = Instant::now();
    let text = read_until_close(&mut tcp).await;
    (text, start.elapsed())
}

/// A gateway with one route `name` to `up`. Metrics are process-wide, so every test
/// names its route and upstream differently.
async fn gateway(up: SocketAddr, name: &str) -> microgateway::server::RunningGateway {
    GatewayConfig::new()
        .upstream_urls(name, &[format!("http://{up}")], "")
        .route(name, name, "timeout = \"5s\"\nbody_timeout = \"300ms\"")
        .start()
        .await
}

fn stalls_metric(text: &str, name: &str) -> f64 {
    let (route, upstream) = (format!("route=\"{name}\""), format!("upstream=\"{name}\""));
    text.lines()
        .find(|l| {
            l.starts_with("microgateway_upstream_body_stalls_total{")
                && l.contains(&route)
                && l.contains(&upstream)
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn short_content_length_stall_closes_the_client_connection() {
    let up = upstream(Script::ShortLength).await;
    let gw = gateway(up, "stall-length").await;
    let (text, elapsed) = fetch(gw.proxy_addr).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text:?}");
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.to_ascii_lowercase().contains("content-length: 100"),
        "{head}"
    );
    assert_eq!(body, "0123456789", "only the 10 bytes sent, never 100");
    // The close comes from the body timeout, not the client's 10 s read limit.
    assert!(elapsed < Duration::from_secs(5), "closed after {elapsed:?}");
    assert!(
        elapsed >= Duration::from_millis(250),
        "cut after {elapsed:?}"
    );
    let metrics = get(gw.admin_addr, "/metrics").await.text();
    assert_eq!(stalls_metric(&metrics, "stall-length"), 1.0, "{metrics}");
}

#[tokio::test]
async fn chunked_stall_never_sends_the_final_chunk() {
    let up = upstream(Script::ChunkedStall).await;
    let gw = gateway(up, "stall-chunked").await;
    let (text, elapsed) = fetch(gw.proxy_addr).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text:?}");
    assert!(text.contains("data: x\n\n"), "{text:?}");
    assert!(
        !text.ends_with("0\r\n\r\n"),
        "the stalled stream was ended cleanly: {text:?}"
    );
    assert!(elapsed < Duration::from_secs(5), "closed after {elapsed:?}");
    let metrics = get(gw.admin_addr, "/metrics").await.text();
    assert_eq!(stalls_metric(&metrics, "stall-chunked"), 1.0, "{metrics}");
}

#[tokio::test]
async fn slow_but_steady_stream_is_not_cut() {
    let up = upstream(Script::Steady).await;
    let gw = gateway(up, "stall-steady").await;
    let mut tcp = TcpStream::connect(gw.proxy_addr).await.unwrap();
    tcp.write_all(b"GET /s HTTP/1.1\r\nHost: stall.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let text = read_until_close(&mut tcp).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text:?}");
    for i in 0..10 {
        assert!(text.contains(&format!("tick {i:02}")), "tick {i}: {text:?}");
    }
    assert!(text.ends_with("0\r\n\r\n"), "not completed: {text:?}");
    let metrics = get(gw.admin_addr, "/metrics").await.text();
    assert_eq!(stalls_metric(&metrics, "stall-steady"), 0.0, "{metrics}");
}

#[tokio::test]
async fn http2_client_sees_the_stalled_stream_reset() {
    use http_body_util::BodyExt as _;
    let up = upstream(Script::ChunkedStall).await;
    let gw = gateway(up, "stall-h2").await;
    let mut sender = crate::common::client::h2c(gw.proxy_addr).await;
    let req = hyper::Request::builder()
        .uri(format!("http://{}/s", gw.proxy_addr))
        .body(crate::common::client::empty())
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(5), sender.send_request(req))
        .await
        .expect("no response head")
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut received = Vec::new();
    let outcome = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => {
                    if let Some(data) = frame.data_ref() {
                        received.extend_from_slice(data);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    })
    .await
    .expect("the stalled stream was neither ended nor reset");
    assert!(
        outcome.is_err(),
        "the stalled stream ended cleanly after {:?}",
        String::from_utf8_lossy(&received)
    );
    assert_eq!(received, b"data: x\n\n");
    let metrics = get(gw.admin_addr, "/metrics").await.text();
    assert_eq!(stalls_metric(&metrics, "stall-h2"), 1.0, "{metrics}");
}
