//! Oversized requests in bulk: heads far beyond the limit (never finished), bodies that
//! declare or stream more than `server.max_body_bytes`. Each is refused early, memory
//! stays flat while many arrive at once, and nothing oversized reaches the upstream whole.

use crate::common::client::{ReqBody, chunked, h1};
use crate::support::{Watched, config, recorder, rss_kib};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// 64 connections each start a head with a 1 MiB header and wait for the answer.
#[tokio::test]
async fn huge_heads_get_431_and_memory_stays_flat() {
    let up = recorder().await;
    let gw = Watched::start(&config(&up, &[], "")).await;
    let addr = gw.gw.proxy_addr;
    let before = rss_kib(gw.pid);
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            tokio::spawn(async move {
                let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
                let head = format!("GET /huge-{i} HTTP/1.1\r\nHost: gw\r\nx-big: ");
                tcp.write_all(head.as_bytes()).await.unwrap();
                // Write until the gateway stops reading (it answers and closes).
                let filler = vec![b'a'; 64 * 1024];
                for _ in 0..16 {
                    if tcp.write_all(&filler).await.is_err() {
                        break;
                    }
                }
                let mut out = Vec::new();
                let _ =
                    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut out)).await;
                String::from_utf8_lossy(&out).into_owned()
            })
        })
        .collect();
    let mut answered = 0;
    for task in tasks {
        let reply = task.await.unwrap();
        // The answer may be lost to a reset when the gateway closes while we still write.
        if !reply.is_empty() {
            assert!(reply.starts_with("HTTP/1.1 431 "), "{reply}");
            answered += 1;
        }
    }
    assert!(answered > 0, "no connection got its 431");
    let grown = rss_kib(gw.pid).saturating_sub(before);
    assert!(grown < 32 * 1024, "RSS grew by {grown} KiB");
    assert_eq!(up.count("/huge"), 0, "{:?}", up.seen());
    gw.finish("huge heads").await;
}

#[tokio::test]
async fn declared_oversized_bodies_are_refused_before_any_byte_is_forwarded() {
    let up = recorder().await;
    let gw = Watched::start(&config(&up, &["max_body_bytes = 1048576"], "")).await;
    let mut tcp = tokio::net::TcpStream::connect(gw.gw.proxy_addr)
        .await
        .unwrap();
    tcp.write_all(b"POST /declared HTTP/1.1\r\nHost: gw\r\nContent-Length: 107374182400\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
        .await
        .expect("no answer to a 100 GiB Content-Length")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
    assert!(text.contains("payload_too_large"), "{text}");
    drop(tcp);
    assert_eq!(up.count("/declared"), 0);
    gw.finish("declared oversized body").await;
}

/// 16 concurrent chunked uploads of 32 MiB each against a 1 MiB limit. The gateway
/// answers 413 and closes the connection while the client may still be writing, so a
/// client can also see its write fail (broken pipe, reset) before it reads the answer;
/// either way the upload is cut, and most clients get the 413.
#[tokio::test]
async fn streamed_oversized_bodies_are_cut_at_the_limit() {
    let up = recorder().await;
    let gw = Watched::start(&config(&up, &["max_body_bytes = 1048576"], "")).await;
    let addr = gw.gw.proxy_addr;
    let before = rss_kib(gw.pid);
    let uploads: Vec<_> = (0..16)
        .map(|_| {
            tokio::spawn(async move {
                let body: ReqBody = chunked(512, 64 * 1024);
                let req = hyper::Request::post(format!("http://{addr}/streamed"))
                    .body(body)
                    .unwrap();
                let sent = tokio::time::timeout(Duration::from_secs(20), h1().request(req))
                    .await
                    .expect("upload neither answered nor cut");
                match sent {
                    Ok(resp) => Ok(crate::common::client::collect(resp).await),
                    Err(e) => Err(format!("{e:?}")),
                }
            })
        })
        .collect();
    let mut answered = 0;
    for upload in uploads {
        match upload.await.unwrap() {
            Ok(reply) => {
                reply.assert_error(hyper::StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
                answered += 1;
            }
            Err(e) => assert!(
                e.contains("BodyWrite")
                    || e.contains("BrokenPipe")
                    || e.contains("ConnectionReset"),
                "upload failed otherwise: {e}"
            ),
        }
    }
    assert!(answered > 0, "no upload got its 413");
    let grown = rss_kib(gw.pid).saturating_sub(before);
    assert!(
        grown < 64 * 1024,
        "RSS grew by {grown} KiB for 512 MiB of uploads"
    );
    // The upstream may have seen the heads (bodies stream), never a complete body.
    assert_eq!(up.complete_bodies("/streamed"), Vec::<usize>::new());
    assert_eq!(crate::common::get(addr, "/after").await.text(), "ok 0");
    gw.finish("streamed oversized bodies").await;
}
