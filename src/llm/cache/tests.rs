//! Unit tests of the response cache: keys, bypass rules, and what is stored.

use super::*;
use http_body_util::BodyExt;

fn config(scope: CacheScope, tool_results: bool) -> RouteCacheConfig {
    RouteCacheConfig {
        ttl: Duration::from_secs(60),
        scope,
        tool_results,
    }
}

fn store(max_bytes: u64, max_entry_bytes: u64) -> Arc<Store> {
    Store::new(
        &CacheConfig {
            max_bytes,
            max_entry_bytes,
            backend: crate::config::CacheBackend::Memory,
        },
        None,
    )
    .unwrap()
}

fn stream_response(frames: &[&'static str]) -> Response<Body> {
    let frames: Vec<Result<Frame<Bytes>, BoxError>> = frames
        .iter()
        .map(|f| Ok(Frame::data(Bytes::from_static(f.as_bytes()))))
        .collect();
    let body = crate::body::boxed(http_body_util::StreamBody::new(futures_util::stream::iter(
        frames,
    )));
    let mut r = Response::new(body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    r
}

#[test]
fn the_key_ignores_key_order_and_whitespace_but_not_values() {
    let c = config(CacheScope::App, false);
    let a = key(
        0,
        &c,
        br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
        Some("a"),
    );
    let b = key(
        0,
        &c,
        br#"{ "messages": [ {"content":"hi", "role":"user"} ], "model": "m" }"#,
        Some("a"),
    );
    assert!(a.is_some());
    assert_eq!(a, b);
    let other = key(
        0,
        &c,
        br#"{"model":"m","messages":[{"role":"user","content":"ho"}]}"#,
        Some("a"),
    );
    assert_ne!(a, other);
    // Another route, or another app, is another key.
    let body = br#"{"model":"m"}"#;
    assert_ne!(key(0, &c, body, Some("a")), key(1, &c, body, Some("a")));
    assert_ne!(key(0, &c, body, Some("a")), key(0, &c, body, Some("b")));
}

#[test]
fn apps_share_only_under_global_scope_and_anonymous_is_never_cached_per_app() {
    let body = br#"{"model":"m"}"#;
    let app = config(CacheScope::App, false);
    assert_eq!(key(0, &app, body, None), None);
    let global = config(CacheScope::Global, false);
    assert_eq!(
        key(0, &global, body, Some("a")),
        key(0, &global, body, Some("b"))
    );
    assert!(key(0, &global, body, None).is_some());
}

#[test]
fn tool_results_and_non_objects_are_not_cached_unless_configured() {
    let openai = br#"{"model":"m","messages":[{"role":"tool","tool_call_id":"1","content":"42"}]}"#;
    let anthropic = br#"{"model":"m","messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"42"}]}]}"#;
    let no = config(CacheScope::Global, false);
    let yes = config(CacheScope::Global, true);
    for body in [&openai[..], &anthropic[..]] {
        assert_eq!(key(0, &no, body, None), None);
        assert!(key(0, &yes, body, None).is_some());
    }
    assert_eq!(key(0, &yes, b"[1,2]", None), None);
    assert_eq!(key(0, &yes, b"not json", None), None);
}

#[tokio::test]
async fn a_whole_200_stream_is_stored_and_replayed_frame_by_frame() {
    let s = store(1 << 20, 1 << 16);
    let c = config(CacheScope::Global, false);
    let body = br#"{"model":"m","stream":true}"#;
    let headers = HeaderMap::new();
    let Lookup::Miss(k) = s.lookup(0, &c, &headers, body, None) else {
        panic!("expected a miss");
    };
    let frames = [
        "data: {\"a\":1}\n\n",
        "data: {\"b\":2}\n\n",
        "data: [DONE]\n\n",
    ];
    let passed = s.capture(k, c.ttl, stream_response(&frames));
    let passed = passed.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(passed, frames.concat());
    let Lookup::Hit(entry) = s.lookup(0, &c, &headers, body, None) else {
        panic!("expected a hit");
    };
    let replay = entry.response();
    assert_eq!(replay.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = replay.into_body();
    let mut seen = Vec::new();
    while let Some(frame) = body.frame().await {
        seen.push(frame.unwrap().into_data().unwrap());
    }
    assert_eq!(seen, frames.map(Bytes::from));
}

#[tokio::test]
async fn errors_cut_streams_other_statuses_and_large_answers_are_not_stored() {
    let s = store(1 << 20, 16);
    let c = config(CacheScope::Global, false);
    let headers = HeaderMap::new();
    let lookup_key = |body: &[u8]| s.lookup(0, &c, &headers, body, None).store_key().unwrap();

    // Larger than max_entry_bytes (16).
    let k = lookup_key(br#"{"n":1}"#);
    let r = s.capture(k, c.ttl, stream_response(&["0123456789", "0123456789"]));
    r.into_body().collect().await.unwrap();
    assert!(matches!(
        s.lookup(0, &c, &headers, br#"{"n":1}"#, None),
        Lookup::Miss(_)
    ));

    // A 500 passes without being kept.
    let k = lookup_key(br#"{"n":2}"#);
    let mut r = stream_response(&["x"]);
    *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    s.capture(k, c.ttl, r).into_body().collect().await.unwrap();
    assert!(matches!(
        s.lookup(0, &c, &headers, br#"{"n":2}"#, None),
        Lookup::Miss(_)
    ));

    // A body dropped before its end (the client went away).
    let k = lookup_key(br#"{"n":3}"#);
    let mut body = s
        .capture(k, c.ttl, stream_response(&["a", "b"]))
        .into_body();
    body.frame().await.unwrap().unwrap();
    drop(body);
    assert!(matches!(
        s.lookup(0, &c, &headers, br#"{"n":3}"#, None),
        Lookup::Miss(_)
    ));

    // A body that fails half way.
    let k = lookup_key(br#"{"n":4}"#);
    let frames: Vec<Result<Frame<Bytes>, BoxError>> = vec![
        Ok(Frame::data(Bytes::from_static(b"a"))),
        Err("reset".into()),
    ];
    let body = crate::body::boxed(http_body_util::StreamBody::new(futures_util::stream::iter(
        frames,
    )));
    let _ = s
        .capture(k, c.ttl, Response::new(body))
        .into_body()
        .collect()
        .await;
    assert!(matches!(
        s.lookup(0, &c, &headers, br#"{"n":4}"#, None),
        Lookup::Miss(_)
    ));

    // A whole JSON body (one frame, ends at once) is stored.
    let k = lookup_key(br#"{"n":5}"#);
    let r = s.capture(k, c.ttl, Response::new(crate::body::full("{}")));
    r.into_body().collect().await.unwrap();
    assert!(matches!(
        s.lookup(0, &c, &headers, br#"{"n":5}"#, None),
        Lookup::Hit(_)
    ));
}

#[tokio::test]
async fn cache_control_no_store_bypasses_and_no_cache_refreshes() {
    let s = store(1 << 20, 1 << 16);
    let c = config(CacheScope::Global, false);
    let body = br#"{"model":"m"}"#;
    let k = s
        .lookup(0, &c, &HeaderMap::new(), body, None)
        .store_key()
        .unwrap();
    s.capture(k, c.ttl, Response::new(crate::body::full("old")))
        .into_body()
        .collect()
        .await
        .unwrap();
    let mut h = HeaderMap::new();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    assert!(matches!(s.lookup(0, &c, &h, body, None), Lookup::Bypass));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=0, No-Cache"),
    );
    let refresh = s.lookup(0, &c, &h, body, None);
    assert_eq!(refresh.label(), "bypass");
    let k = refresh.store_key().unwrap();
    s.capture(k, c.ttl, Response::new(crate::body::full("new")))
        .into_body()
        .collect()
        .await
        .unwrap();
    let Lookup::Hit(entry) = s.lookup(0, &c, &HeaderMap::new(), body, None) else {
        panic!("expected a hit");
    };
    let text = entry
        .response()
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(text, "new");
}

#[tokio::test]
async fn entries_expire_after_their_ttl_and_the_byte_cap_evicts() {
    let s = store(4 * (1024 + ENTRY_OVERHEAD), 1024);
    let mut c = config(CacheScope::Global, false);
    c.ttl = Duration::from_millis(50);
    let body = br#"{"model":"short"}"#;
    let k = s
        .lookup(0, &c, &HeaderMap::new(), body, None)
        .store_key()
        .unwrap();
    s.capture(k, c.ttl, Response::new(crate::body::full("x")))
        .into_body()
        .collect()
        .await
        .unwrap();
    assert!(matches!(
        s.lookup(0, &c, &HeaderMap::new(), body, None),
        Lookup::Hit(_)
    ));
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(matches!(
        s.lookup(0, &c, &HeaderMap::new(), body, None),
        Lookup::Miss(_)
    ));

    // Twenty 1 KiB answers into room for four: the store stays within its cap.
    c.ttl = Duration::from_secs(60);
    for n in 0..20 {
        let body = format!("{{\"n\":{n}}}");
        let k = s
            .lookup(0, &c, &HeaderMap::new(), body.as_bytes(), None)
            .store_key()
            .unwrap();
        s.capture(k, c.ttl, Response::new(crate::body::full(vec![b'a'; 1024])))
            .into_body()
            .collect()
            .await
            .unwrap();
    }
    s.cache.run_pending_tasks();
    assert!(s.cache.weighted_size() <= 4 * (1024 + ENTRY_OVERHEAD));
    assert!(s.held.bytes.load(Ordering::Relaxed) <= 4 * 1024);
    assert_eq!(
        s.held.entries.load(Ordering::Relaxed),
        s.cache.entry_count()
    );
}
