//! A thousand idle WebSockets through the real binary: the gateway's resident memory
//! grows by a bounded amount per session and stays flat while they sit idle.
//!
//! The clients are raw TCP sockets that send the HTTP/1.1 upgrade and read the `101`;
//! the upstream is the `websockets` echo server. The gateway is its own process, so its
//! RSS (`/proc/PID/status`) holds nothing of the clients or of the test harness.

use crate::common::GatewayConfig;
use crate::common::binary::GatewayProcess;
use crate::common::websocket::echo;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sessions opened before the first reading, so allocator arenas and the runtime's
/// first buffers are already in place when growth is measured.
const WARM: usize = 100;
/// Sessions open at the second reading.
const SESSIONS: usize = 1000;
/// The most an idle session may add to the gateway's RSS. Measured: about 6.5 KB;
/// with a 16 KiB buffer held per direction, before the quiet-direction buffers, 37 KB.
const MAX_BYTES_PER_SESSION: f64 = 16.0 * 1024.0;

/// The gateway's resident set in bytes.
fn rss(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib * 1024.0
}

/// Opens one WebSocket through the gateway and returns its socket once switched.
async fn open(addr: std::net::SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /chat HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    s.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut byte).await.unwrap(),
            1,
            "closed in the handshake"
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s
}

async fn open_many(addr: std::net::SocketAddr, n: usize, into: &mut Vec<TcpStream>) {
    for _ in 0..n {
        into.push(open(addr).await);
    }
}

async fn open_sessions(admin: std::net::SocketAddr) -> f64 {
    let series = r#"microgateway_upgraded_connections{route="idle1k"}"#;
    crate::websocket::metric(admin, series).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_websockets_hold_flat_memory() {
    let echo = echo().await;
    let config = GatewayConfig::new()
        .upstream_urls("ws", &[format!("http://127.0.0.1:{}", echo.port)], "")
        .route("idle1k", "ws", "");
    let gw = GatewayProcess::spawn(&config).await;
    let pid = gw.pid();
    let mut sessions = Vec::with_capacity(SESSIONS);
    open_many(gw.proxy_addr, WARM, &mut sessions).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let warm = rss(pid);
    open_many(gw.proxy_addr, SESSIONS - WARM, &mut sessions).await;
    // Every upstream leg has switched too, not only the client's.
    for _ in 0..100 {
        if open_sessions(gw.admin_addr).await == SESSIONS as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(open_sessions(gw.admin_addr).await, SESSIONS as f64);
    let full = rss(pid);
    let per_session = (full - warm) / (SESSIONS - WARM) as f64;
    eprintln!(
        "{SESSIONS} idle WebSockets: RSS {:.1} MiB with {WARM}, {:.1} MiB with {SESSIONS}: \
         {per_session:.0} bytes per session",
        warm / 1048576.0,
        full / 1048576.0
    );
    assert!(
        per_session < MAX_BYTES_PER_SESSION,
        "{per_session:.0} bytes per idle session"
    );
    // Idle means idle: nothing grows while they sit there.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = rss(pid);
    assert!(
        later - full < 1024.0 * 1024.0,
        "RSS grew by {:.0} bytes while {SESSIONS} sessions sat idle",
        later - full
    );
    // The sessions still work.
    let last = sessions.last_mut().unwrap();
    last.write_all(&[0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2])
        .await
        .unwrap();
    let mut back = [0u8; 4];
    last.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, &[0x81, 2, b'h', b'i']);
    drop(sessions);
    for _ in 0..100 {
        if open_sessions(gw.admin_addr).await == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(open_sessions(gw.admin_addr).await, 0.0);
}
