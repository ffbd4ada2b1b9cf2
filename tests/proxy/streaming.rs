//! Streaming in both directions: server-sent events reach the client as the upstream
//! produces them (HTTP/1.1 and h2c), a quiet stream outlives the idle timeout, and
//! request bodies are forwarded while still arriving, at any size under the limit.

use crate::common::client::{self, BoxError, ReqBody};
use crate::common::{TestUpstream, single, single_with};
use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use std::time::{Duration, Instant};

/// Reads an SSE body, returning each complete event with the time it arrived after `start`.
async fn events(resp: Response<Incoming>, start: Instant) -> Vec<(String, Duration)> {
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let mut body = resp.into_body();
    let mut pending = String::new();
    let mut out = Vec::new();
    while let Some(frame) = tokio::time::timeout(client::EXCHANGE_TIMEOUT, body.frame())
        .await
        .expect("stream stalled")
    {
        let frame = frame.expect("stream failed");
        if let Some(data) = frame.data_ref() {
            pending.push_str(std::str::from_utf8(data).unwrap());
            while let Some(end) = pending.find("\n\n") {
                out.push((pending[..end].to_string(), start.elapsed()));
                pending.drain(..end + 2);
            }
        }
    }
    assert!(
        pending.is_empty(),
        "incomplete event at the end: {pending:?}"
    );
    out
}

fn assert_incremental(events: &[(String, Duration)]) {
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(names, ["data: event-0", "data: event-1", "data: event-2"]);
    let first = events[0].1;
    let last = events[2].1;
    // The upstream spaces the events 300 ms apart: a buffering proxy would deliver the
    // first event together with the last, about 600 ms after the start.
    assert!(
        first + Duration::from_millis(400) < last,
        "first event at {first:?}, last at {last:?}: the stream was buffered"
    );
}

#[tokio::test]
async fn sse_events_reach_an_http1_client_as_they_are_produced() {
    let up = TestUpstream::start("U").await;
    let gw = single(&up).await;
    let req = Request::get(client::url(gw.proxy_addr, "/sse?n=3&gap_ms=300"))
        .body(client::empty())
        .unwrap();
    let start = Instant::now();
    let resp = client::h1().request(req).await.unwrap();
    assert_incremental(&events(resp, start).await);
}

#[tokio::test]
async fn sse_events_reach_an_h2c_client_as_they_are_produced() {
    let up = TestUpstream::start("U").await;
    let gw = single(&up).await;
    let mut h2 = client::h2c(gw.proxy_addr).await;
    let req = Request::get(client::url(gw.proxy_addr, "/sse?n=3&gap_ms=300"))
        .body(client::empty())
        .unwrap();
    let start = Instant::now();
    let resp = h2.send_request(req).await.unwrap();
    assert_incremental(&events(resp, start).await);
}

#[tokio::test]
async fn quiet_stream_is_not_cut_by_the_idle_timeout() {
    let up = TestUpstream::start("U").await;
    let gw = single_with(&up, &["idle_timeout = \"200ms\""], "").await;
    let req = Request::get(client::url(gw.proxy_addr, "/sse?n=3&gap_ms=500"))
        .body(client::empty())
        .unwrap();
    let resp = client::h1().request(req).await.unwrap();
    let got = events(resp, Instant::now()).await;
    assert_eq!(got.len(), 3, "{got:?}");
}

#[tokio::test]
async fn large_chunked_upload_arrives_whole() {
    let up = TestUpstream::start("U").await;
    let gw = single(&up).await;
    let size = 5 * 1024 * 1024;
    let reply = client::request(
        gw.proxy_addr,
        "POST",
        "/upload",
        &[("content-type", "application/octet-stream")],
        client::chunked(size / 65536, 65536),
    )
    .await;
    let echo = reply.echo();
    assert_eq!(echo.body_len, size as u64);
    assert_eq!(echo.method, "POST");
    assert!(
        echo.header("content-length").is_none(),
        "{:?}",
        echo.headers
    );
}

#[tokio::test]
async fn large_upload_with_content_length_arrives_whole() {
    let up = TestUpstream::start("U").await;
    let gw = single(&up).await;
    let size = 3 * 1024 * 1024 + 17;
    let reply = client::request(
        gw.proxy_addr,
        "POST",
        "/upload",
        &[],
        client::full(vec![7u8; size]),
    )
    .await;
    let echo = reply.echo();
    assert_eq!(echo.body_len, size as u64);
    assert_eq!(
        echo.header("content-length"),
        Some(size.to_string().as_str())
    );
}

#[tokio::test]
async fn request_body_is_forwarded_before_it_is_complete() {
    let up = TestUpstream::start("U").await;
    let gw = single(&up).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((Ok::<_, BoxError>(Frame::data(chunk)), rx))
    });
    let body: ReqBody = StreamBody::new(stream).boxed();
    let req = Request::post(client::url(gw.proxy_addr, "/upload"))
        .body(body)
        .unwrap();
    let pending = tokio::spawn(async move { client::send(&client::h1(), req).await });
    tx.send(Bytes::from_static(b"first chunk;")).await.unwrap();
    // The upstream sees the request while the client still holds back the rest of the body.
    up.wait_for_hits(1).await;
    tx.send(Bytes::from_static(b"second chunk")).await.unwrap();
    drop(tx);
    let echo = pending.await.unwrap().echo();
    assert_eq!(echo.body_len, 24);
}
