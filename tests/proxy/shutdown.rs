//! Graceful shutdown: in-flight requests finish, `/readyz` turns 503 while draining, new
//! connections are refused, idle keep-alive connections do not hold the drain up, the
//! shutdown timeout cuts what is left, and the real binary drains on SIGTERM and exits 0.

use crate::common::binary::GatewayProcess;
use crate::common::client::{self, empty};
use crate::common::{GatewayConfig, TestUpstream, get, single, single_with};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Polls `/readyz` until it answers 503 (at most 5 s); every earlier answer must be 200.
async fn wait_until_draining(admin: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ready = get(admin, "/readyz").await;
        if ready.status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(ready.json()["status"], "draining");
            return;
        }
        assert_eq!(ready.status, StatusCode::OK);
        assert!(Instant::now() < deadline, "/readyz never turned 503");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests() {
    // Per-core worker threads (the default) and the shared runtime drain alike.
    for mode in ["thread_per_core = true", "thread_per_core = false"] {
        graceful_shutdown_in(mode).await;
    }
}

async fn graceful_shutdown_in(mode: &str) {
    let up = TestUpstream::start("U").await;
    let gw = single_with(&up, &[mode], "").await;
    let (proxy, admin) = (gw.proxy_addr, gw.admin_addr);
    assert_eq!(get(admin, "/readyz").await.status, StatusCode::OK);

    let in_flight = tokio::spawn(get(proxy, "/slow?ms=800"));
    up.wait_for_hits(1).await;
    gw.shutdown();

    wait_until_draining(admin).await;
    assert!(
        TcpStream::connect(proxy).await.is_err(),
        "new connections must be refused while draining"
    );
    let reply = in_flight.await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{mode}");
    assert_eq!(reply.text(), "slow done");

    tokio::time::timeout(Duration::from_secs(10), gw.wait())
        .await
        .expect("wait() did not return after the drain");
    assert!(
        TcpStream::connect(admin).await.is_err(),
        "admin listener must be closed once stopped"
    );
}

#[tokio::test]
async fn idle_keep_alive_connections_do_not_delay_shutdown() {
    let up = TestUpstream::start("U").await;
    // Default shutdown_timeout is 30 s: returning quickly proves the idle connection was closed.
    let gw = single(&up).await;
    let tcp = TcpStream::connect(gw.proxy_addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let req = Request::get("/echo")
        .header("host", "x")
        .body(empty())
        .unwrap();
    let reply = client::collect(sender.send_request(req).await.unwrap()).await;
    assert_eq!(reply.status, StatusCode::OK);

    let start = Instant::now();
    gw.shutdown();
    tokio::time::timeout(Duration::from_secs(10), gw.wait())
        .await
        .expect("an idle keep-alive connection held the drain up");
    assert!(start.elapsed() < Duration::from_secs(10));
    // The client side sees its connection closed.
    tokio::time::timeout(Duration::from_secs(5), conn)
        .await
        .expect("client connection still open after shutdown")
        .unwrap()
        .ok();
}

#[tokio::test]
async fn shutdown_timeout_cuts_requests_that_outlast_it() {
    let up = TestUpstream::start("U").await;
    let gw = single_with(&up, &["shutdown_timeout = \"300ms\""], "").await;
    let proxy = gw.proxy_addr;
    let slow = tokio::spawn(async move {
        let req = Request::get(client::url(proxy, "/slow?ms=5000"))
            .body(empty())
            .unwrap();
        client::h1().request(req).await.map(|r| r.status())
    });
    up.wait_for_hits(1).await;
    let start = Instant::now();
    gw.shutdown();
    tokio::time::timeout(Duration::from_secs(4), gw.wait())
        .await
        .expect("wait() did not return after the shutdown timeout");
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(250),
        "stopped after {elapsed:?}, before the shutdown timeout"
    );
    let outcome = tokio::time::timeout(Duration::from_secs(5), slow)
        .await
        .expect("cut request never ended")
        .unwrap();
    assert!(
        outcome.is_err(),
        "request outlasting the shutdown timeout must be cut, got {outcome:?}"
    );
}

#[tokio::test]
async fn binary_drains_on_sigterm_and_exits_zero() {
    let up = TestUpstream::start("U").await;
    let config = GatewayConfig::new()
        .upstream("main", &[&up])
        .route("main", "main", "");
    let process = GatewayProcess::spawn(&config).await;
    let healthy = get(process.admin_addr, "/healthz").await;
    assert_eq!(healthy.status, StatusCode::OK);

    let in_flight = tokio::spawn(get(process.proxy_addr, "/slow?ms=1000"));
    up.wait_for_hits(1).await;
    process.terminate();
    wait_until_draining(process.admin_addr).await;

    let reply = in_flight.await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), "slow done");
    let log = process.log.clone();
    let status = process.wait(Duration::from_secs(15)).await;
    let log = log.lock().unwrap().clone();
    assert_eq!(
        status.code(),
        Some(0),
        "exit status {status:?}; stderr:\n{log}"
    );
    assert!(log.contains("shutdown signal received"), "{log}");
    assert!(log.contains("microgateway stopped"), "{log}");
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_h2_streams() {
    let up = TestUpstream::start("U").await;
    let gw = single(&up).await;
    let mut h2 = client::h2c(gw.proxy_addr).await;
    let req = Request::get(client::url(gw.proxy_addr, "/slow?ms=800"))
        .body(empty())
        .unwrap();
    let in_flight = tokio::spawn(async move { client::send_h2(&mut h2, req).await });
    up.wait_for_hits(1).await;
    gw.shutdown();
    let reply = in_flight.await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), "slow done");
    tokio::time::timeout(Duration::from_secs(10), gw.wait())
        .await
        .expect("wait() did not return after the h2 drain");
}

#[tokio::test]
async fn binary_second_sigterm_stops_without_waiting() {
    let up = TestUpstream::start("U").await;
    let config = GatewayConfig::new()
        .upstream("main", &[&up])
        .route("main", "main", "")
        .server("shutdown_timeout = \"60s\"");
    let process = GatewayProcess::spawn(&config).await;
    let req = Request::get(client::url(process.proxy_addr, "/slow?ms=30000"))
        .body(empty())
        .unwrap();
    let in_flight = tokio::spawn(client::h1().request(req));
    up.wait_for_hits(1).await;
    process.terminate();
    wait_until_draining(process.admin_addr).await;
    let start = Instant::now();
    process.terminate();
    let status = process.wait(Duration::from_secs(10)).await;
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{status:?}");
    in_flight.abort();
}
