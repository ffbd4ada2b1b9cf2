//! The splice over in-memory pipes: both ways, who closed, the idle timeout and the
//! shutdown putting close frames in at frame boundaries.

use super::*;
use crate::upgrade::frames::close_frame;
use tokio::io::duplex;

fn no_count(_: Direction, _: u64) {}

fn limits(idle_ms: u64) -> Limits {
    Limits {
        idle_timeout: Duration::from_millis(idle_ms),
        max_duration: Duration::from_secs(3600),
    }
}

#[tokio::test]
async fn bytes_flow_both_ways_and_the_first_to_close_is_named() {
    let (client, mut client_peer) = duplex(64);
    let (upstream, mut upstream_peer) = duplex(64);
    let stop = CancellationToken::new();
    let counted = std::sync::Mutex::new((0u64, 0u64));
    let count = |d: Direction, n: u64| {
        let mut c = counted.lock().unwrap();
        match d {
            Direction::ToUpstream => c.0 += n,
            Direction::ToClient => c.1 += n,
        }
    };
    let run = splice(client, upstream, limits(60_000), &stop, &count);
    let talk = async {
        // More than both pipes hold, both ways at once: neither direction may stall.
        let big = vec![7u8; 100_000];
        let (w1, r1, w2, r2) = tokio::join!(
            client_peer.write_all(&big),
            async {
                let mut got = vec![0u8; 100_000];
                upstream_peer.read_exact(&mut got).await.map(|_| got)
            },
            async { Ok::<_, std::io::Error>(()) },
            async { Ok::<_, std::io::Error>(()) },
        );
        w1.unwrap();
        assert_eq!(r1.unwrap(), big);
        w2.unwrap();
        r2.unwrap();
        upstream_peer.write_all(b"pong").await.unwrap();
        let mut back = [0u8; 4];
        client_peer.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"pong");
        client_peer.shutdown().await.unwrap();
        // The client's close reaches the upstream as end of stream.
        let mut rest = Vec::new();
        upstream_peer.read_to_end(&mut rest).await.unwrap();
        upstream_peer.shutdown().await.unwrap();
    };
    let (reason, ()) = tokio::join!(run, talk);
    assert_eq!(reason, Reason::Client);
    assert_eq!(*counted.lock().unwrap(), (100_000, 4));
}

#[tokio::test]
async fn an_idle_connection_gets_close_frames_both_ways() {
    let (client, mut client_peer) = duplex(1024);
    let (upstream, mut upstream_peer) = duplex(1024);
    let stop = CancellationToken::new();
    let run = splice(client, upstream, limits(100), &stop, &no_count);
    let peers = async {
        let mut to_client = vec![0u8; 14];
        client_peer.read_exact(&mut to_client).await.unwrap();
        assert_eq!(to_client, close_frame(1001, "going away", None));
        let mut to_upstream = vec![0u8; 18];
        upstream_peer.read_exact(&mut to_upstream).await.unwrap();
        // Masked: the mask bit and four key bytes.
        assert_eq!((to_upstream[0], to_upstream[1]), (0x88, 0x80 | 12));
        drop(client_peer);
        drop(upstream_peer);
    };
    let (reason, ()) = tokio::join!(run, peers);
    assert_eq!(reason, Reason::Idle);
}

#[tokio::test]
async fn shutdown_waits_for_the_frame_in_flight() {
    let (client, mut client_peer) = duplex(1024);
    let (upstream, mut upstream_peer) = duplex(1024);
    let stop = CancellationToken::new();
    let run = splice(client, upstream, limits(600_000), &stop, &no_count);
    let peers = async {
        // Half of an unmasked 10-byte text frame from the upstream, then the shutdown.
        upstream_peer
            .write_all(&[0x81, 10, b'h', b'e'])
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        stop.cancel();
        tokio::time::sleep(Duration::from_millis(10)).await;
        upstream_peer.write_all(b"llo worl").await.unwrap();
        // The client gets the whole frame first, then the close frame.
        let mut got = vec![0u8; 12 + 14];
        client_peer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[..12], b"\x81\x0ahello worl");
        assert_eq!(&got[12..], close_frame(1001, "going away", None));
        drop(client_peer);
        drop(upstream_peer);
    };
    let (reason, ()) = tokio::join!(run, peers);
    assert_eq!(reason, Reason::Shutdown);
}
