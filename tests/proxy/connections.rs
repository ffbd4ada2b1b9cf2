//! Connection management: the `max_connections` cap, the header read timeout for
//! stalled request heads, and the idle timeout for quiet keep-alive connections.

use crate::common::client::{self, empty, read_until_close};
use crate::common::{TestUpstream, single_with};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

type H1Sender = hyper::client::conn::http1::SendRequest<client::ReqBody>;

async fn h1_conn(addr: SocketAddr) -> (H1Sender, tokio::task::JoinHandle<()>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    (sender, task)
}

fn echo_req() -> Request<client::ReqBody> {
    Request::get("/echo")
        .header("host", "x")
        .body(empty())
        .unwrap()
}

#[tokio::test]
async fn connections_beyond_max_connections_wait_for_a_free_slot() {
    let up = TestUpstream::start("U").await;
    let gw = single_with(&up, &["max_connections = 1"], "").await;

    let (mut first, first_task) = h1_conn(gw.proxy_addr).await;
    let resp = first.send_request(echo_req()).await.unwrap();
    assert_eq!(client::collect(resp).await.status, StatusCode::OK);

    // The second connection sits in the backlog while the first stays open.
    let (mut second, _second_task) = h1_conn(gw.proxy_addr).await;
    let waiting = tokio::spawn(async move {
        let resp = second.send_request(echo_req()).await.unwrap();
        client::collect(resp).await.status
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        !waiting.is_finished(),
        "second connection was served past the cap"
    );
    assert_eq!(up.hits(), 1);

    // Closing the first connection frees the slot.
    drop(first);
    first_task.await.unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("queued connection never served")
        .unwrap();
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn stalled_request_head_is_cut_by_the_header_read_timeout() {
    let up = TestUpstream::start("U").await;
    let gw = single_with(&up, &["header_read_timeout = \"300ms\""], "").await;
    let mut tcp = TcpStream::connect(gw.proxy_addr).await.unwrap();
    tcp.write_all(b"GET /echo HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let start = Instant::now();
    let response = read_until_close(&mut tcp).await;
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(5),
        "connection closed after {elapsed:?}"
    );
    assert!(!response.contains("200"), "{response}");
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn quiet_keep_alive_connection_is_closed_by_the_idle_timeout() {
    let up = TestUpstream::start("U").await;
    let gw = single_with(&up, &["idle_timeout = \"300ms\""], "").await;

    // After a complete exchange on a keep-alive connection.
    let mut tcp = TcpStream::connect(gw.proxy_addr).await.unwrap();
    tcp.write_all(b"GET /echo HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let start = Instant::now();
    let response = read_until_close(&mut tcp).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "idle connection held open for {:?}",
        start.elapsed()
    );

    // And a connection that never sends anything.
    let mut tcp = TcpStream::connect(gw.proxy_addr).await.unwrap();
    let start = Instant::now();
    let response = read_until_close(&mut tcp).await;
    assert!(response.is_empty(), "{response}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "silent connection held open for {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn slow_upstream_is_not_cut_by_the_idle_timeout() {
    let up = TestUpstream::start("U").await;
    let gw = single_with(&up, &["idle_timeout = \"200ms\""], "").await;
    let reply = crate::common::get(gw.proxy_addr, "/slow?ms=800").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), "slow done");
}
