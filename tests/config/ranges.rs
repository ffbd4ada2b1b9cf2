//! Property tests over every numeric and duration key of [`RANGES`]: random values and
//! extremes (0, 1, both ends and one past them, `i64::MAX`, `u64::MAX`, `1ns`,
//! `18446744073709551615s` and beyond) never panic. `Config::from_toml` either refuses
//! the value with an error naming its key, exactly when it lies outside the documented
//! range, or accepts it unchanged; and an accepted value yields a gateway that starts
//! on 127.0.0.1:0, serves a request through a real upstream, answers `/readyz` and shuts
//! down cleanly, with no panic on any thread.

use crate::common::gateway::toml_str;
use crate::common::{PluginEntry, TestUpstream};
use microgateway::Config;
use microgateway::config::ConfigError;
use microgateway::config::ranges::{self, Limit, RANGES, Value};
use proptest::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once};
use std::time::Duration;

/// Example plugin binary used for the `plugin_runtime` keys.
const ENRICHER: &str = env!("CARGO_BIN_EXE_mg-plugin-header-enricher");

/// Panics raised outside the tests' own code (the gateway, Tokio, hyper…) on any thread.
static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Counts every panic raised outside `tests/` (spawned tasks and worker threads
/// included; a failing assertion of a parallel test is not the gateway's), then reports
/// it as usual.
fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info
                .location()
                .is_none_or(|l| !l.file().starts_with("tests/"))
            {
                PANICS.fetch_add(1, Ordering::SeqCst);
            }
            previous(info);
        }));
    });
}

/// A value as written into the TOML document.
#[derive(Debug, Clone)]
enum Literal {
    /// An integer (TOML holds at most `i64::MAX`; larger ones are a syntax error).
    Unsigned(u64),
    /// A signed integer.
    Signed(i64),
    /// A duration string, which humantime may or may not parse.
    Text(String),
}

impl Literal {
    fn toml(&self) -> String {
        match self {
            Literal::Unsigned(v) => v.to_string(),
            Literal::Signed(v) => v.to_string(),
            Literal::Text(t) => toml_str(t),
        }
    }
}

/// A duration as `"<secs>s <nanos>ns"`, the longest form of every duration.
fn text(d: Duration) -> Literal {
    Literal::Text(format!("{}s {}ns", d.as_secs(), d.subsec_nanos()))
}

/// The last segment of a dotted key (`upstreams[].connect_timeout` → `connect_timeout`,
/// `upstreams[].weights[]` → `weights`).
fn field(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key).trim_end_matches("[]")
}

/// `field = literal`, or `field = [literal]` for an array element key (`weights[]`); a
/// route's nested key is written dotted into the route (`retry.attempts = literal`).
fn assignment(key: &str, literal: &Literal) -> String {
    if key.starts_with("routes[].") {
        format!("{} = {}\n", dotted(key), literal.toml())
    } else if key.ends_with("[]") {
        format!("{} = [{}]\n", field(key), literal.toml())
    } else {
        format!("{} = {}\n", field(key), literal.toml())
    }
}

/// The key as written in its array element: `routes[].retry.attempts` →
/// `retry.attempts` (a dotted key into the element's table), else the last segment.
fn dotted(key: &str) -> &str {
    key.split_once("[].").map_or(field(key), |(_, rest)| rest)
}

/// `upstreams[].connect_timeout` → `upstreams[0].connect_timeout`.
fn concrete(key: &str) -> String {
    key.replace("[]", "[0]")
}

/// A complete configuration with `key = literal` and everything else at test defaults:
/// both listeners on 127.0.0.1:0, one worker, upstream `u` at `upstream`, route `r`, a
/// built-in plugin for `plugins[]` keys and the example `file://` plugin for
/// `plugin_runtime` keys when `with_process` is set.
fn document(key: &str, literal: &Literal, upstream: &str, with_process: bool) -> String {
    let line = assignment(key, literal);
    let section = key.split(['.', '[']).next().unwrap_or_default();
    let only = |name: &str| if section == name { line.as_str() } else { "" };
    let mut doc = String::from("[server]\nlisten = \"127.0.0.1:0\"\n");
    if key != "server.workers" {
        doc.push_str("workers = 1\n");
    }
    doc.push_str(only("server"));
    doc.push_str("\n[admin]\nlisten = \"127.0.0.1:0\"\n");
    doc.push_str(only("admin"));
    doc.push_str("\n[log]\nlevel = \"warn\"\n");
    // Keys of an upstream's subtable (`upstreams[].health_check.interval`) go into it;
    // `weights` needs the weighted policy.
    let subtable = key
        .strip_prefix("upstreams[].")
        .and_then(|rest| rest.split_once('.'))
        .map(|(table, _)| table);
    let (flat, nested) = match subtable {
        // An LLM table needs its provider and a key source: `HOME` is set wherever the
        // tests run, and its value serves as the key.
        Some("llm") => (
            String::new(),
            format!(
                "[upstreams.llm]\nprovider = \"openai\"\napi_keys_env = [\"HOME\"]\n{}",
                only("upstreams")
            ),
        ),
        Some(table) => (
            String::new(),
            format!("[upstreams.{table}]\n{}", only("upstreams")),
        ),
        None if key == "upstreams[].weights[]" => {
            (format!("balance = \"weighted\"\n{line}"), String::new())
        }
        None if key == "upstreams[].max_pending" => {
            (format!("max_connections = 1\n{line}"), String::new())
        }
        // A route's `[routes.llm]` needs an LLM upstream.
        None if key.starts_with("routes[].llm.") => (
            String::new(),
            "[upstreams.llm]\nprovider = \"openai\"\napi_keys_env = [\"HOME\"]\n".to_string(),
        ),
        None => (only("upstreams").to_string(), String::new()),
    };
    doc.push_str(&format!(
        "\n[[upstreams]]\nname = \"u\"\ntargets = [{}]\n{flat}{nested}",
        toml_str(upstream),
    ));
    doc.push_str(&format!(
        "\n[[routes]]\nname = \"r\"\nupstream = \"u\"\n{}",
        only("routes")
    ));
    if section == "plugins" {
        let entry = PluginEntry::new("h", "builtin://headers", "pre_auth")
            .extra("config = { set = { x-range = \"1\" } }")
            .extra(line.trim_end());
        doc.push_str(&format!("\n{}", entry.toml()));
    }
    if section == "plugin_runtime" && with_process {
        let entry = PluginEntry::file("p", ENRICHER, "pre_auth");
        doc.push_str(&format!("\n{}", entry.toml()));
    }
    for name in ["pipeline", "plugin_runtime", "oci"] {
        if section == name {
            doc.push_str(&format!("\n[{name}]\n{line}"));
        }
    }
    // `[cluster]` needs its Redis URL: nothing listens on port 9, so the gateway
    // starts degraded, which is what it does when Redis is down.
    if section == "cluster" {
        doc.push_str(&format!(
            "\n[cluster]\nredis_url = \"redis://127.0.0.1:9\"\n{line}"
        ));
    }
    // `llm.cache.max_bytes` and its siblings live in a subtable of `[llm]`.
    if let Some(table) = key.strip_prefix("llm.").and_then(|k| k.rsplit_once('.')) {
        doc.push_str(&format!("\n[llm.{}]\n{line}", table.0));
    }
    doc
}

/// Values for `limit`: random ones and every extreme, valid or not.
fn any_literal(limit: Limit) -> BoxedStrategy<Literal> {
    match limit {
        Limit::Count { min, max } | Limit::Bytes { min, max } => prop_oneof![
            prop::sample::select(vec![
                0,
                1,
                min,
                max,
                min.saturating_sub(1),
                max + 1,
                i64::MAX as u64,
                i64::MAX as u64 + 1,
                u64::MAX,
            ]),
            min..=max,
            any::<u64>(),
            0..=max.saturating_mul(4),
        ]
        .prop_map(Literal::Unsigned)
        .boxed(),
        Limit::Signed { min, max } => prop_oneof![
            prop::sample::select(vec![0, min, max, min - 1, max + 1, i64::MIN, i64::MAX]),
            any::<i64>(),
            min..=max,
        ]
        .prop_map(Literal::Signed)
        .boxed(),
        Limit::Duration { min, max } => {
            let one = Duration::from_nanos(1);
            prop_oneof![
                prop::sample::select(vec![
                    Duration::ZERO,
                    one,
                    Duration::from_millis(1),
                    min,
                    max,
                    min.saturating_sub(one),
                    max + one,
                    Duration::new(u64::MAX, 0),
                    Duration::new(u64::MAX, 999_999_999),
                ])
                .prop_map(text),
                prop::sample::select(vec![
                    "18446744073709551615s",
                    "18446744073709551616s",
                    "1ns",
                    "0s",
                    "1day",
                    "100000000000years",
                ])
                .prop_map(|t| Literal::Text(t.to_string())),
                (min.as_nanos() as u64..=max.as_nanos() as u64)
                    .prop_map(|n| text(Duration::from_nanos(n))),
                any::<u64>().prop_map(|n| text(Duration::from_nanos(n))),
                any::<u64>().prop_map(|s| text(Duration::from_secs(s))),
            ]
            .boxed()
        }
    }
}

/// What the configuration should hold for `literal`, or `None` when it cannot be parsed
/// into the key's type at all.
fn parsed(limit: Limit, literal: &Literal) -> Option<Value> {
    match (limit, literal) {
        (_, Literal::Unsigned(v)) => i64::try_from(*v).ok().map(|_| Value::Unsigned(*v)),
        (Limit::Signed { .. }, Literal::Signed(v)) => {
            i32::try_from(*v).ok().map(|_| Value::Signed(*v))
        }
        (_, Literal::Signed(_)) => None,
        (_, Literal::Text(t)) => humantime::parse_duration(t).ok().map(Value::Duration),
    }
}

/// `n` cases; failures print their minimal input instead of writing regression files
/// into the source tree.
fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(cases(1024))]

    /// Validation refuses exactly the values outside the range, naming the key.
    #[test]
    fn from_toml_refuses_exactly_the_values_outside_the_range(
        (index, literal) in (0..RANGES.len()).prop_flat_map(|i| (Just(i), any_literal(RANGES[i].limit)))
    ) {
        count_panics();
        let range = &RANGES[index];
        let key = concrete(range.key);
        let toml = document(range.key, &literal, "http://127.0.0.1:9", false);
        let result = Config::from_toml(&toml);
        match (parsed(range.limit, &literal), result) {
            (None, Err(ConfigError::Parse(message))) => {
                prop_assert!(message.contains(field(range.key)), "{key}: {message}");
            }
            (Some(value), Ok(config)) => {
                prop_assert!(range.limit.admits(value), "{key} = {literal:?} accepted outside {}", range.limit);
                let held = ranges::values(&config).into_iter().find(|(k, _)| *k == key).map(|(_, v)| v);
                prop_assert_eq!(held, Some(value));
            }
            (Some(value), Err(ConfigError::Invalid { key: named, message })) => {
                prop_assert_eq!(&named, &key, "{}", message);
                prop_assert!(!range.limit.admits(value), "{key} = {literal:?} refused inside {}: {message}", range.limit);
                prop_assert!(message.starts_with("must be between"), "{}", message);
            }
            (expected, other) => {
                prop_assert!(false, "{key} = {literal:?}: expected {expected:?}, got {other:?}");
            }
        }
    }
}

/// Where a key's values start to make one plain GET succeed: shorter timeouts may
/// legitimately answer 408/504 or close the connection first (but must not panic).
fn serving_floor(key: &str) -> Option<Duration> {
    match key {
        "server.header_read_timeout"
        | "server.idle_timeout"
        | "upstreams[].connect_timeout"
        | "routes[].timeout" => Some(Duration::from_secs(1)),
        "plugin_runtime.start_timeout" => Some(Duration::from_secs(5)),
        _ => None,
    }
}

/// Valid values for `limit`: both ends and random ones in between.
fn valid_literal(limit: Limit) -> BoxedStrategy<Literal> {
    match limit {
        Limit::Count { min, max } | Limit::Bytes { min, max } => {
            prop_oneof![Just(min), Just(max), min..=max]
                .prop_map(Literal::Unsigned)
                .boxed()
        }
        Limit::Signed { min, max } => prop_oneof![Just(min), Just(max), min..=max]
            .prop_map(Literal::Signed)
            .boxed(),
        Limit::Duration { min, max } => {
            let (lo, hi) = (min.as_nanos() as u64, max.as_nanos() as u64);
            prop_oneof![Just(lo), Just(hi), lo..=hi]
                .prop_map(|n| text(Duration::from_nanos(n)))
                .boxed()
        }
    }
}

/// `GET path` on a fresh connection; `None` when no response arrived within 5 s.
async fn try_get(addr: std::net::SocketAddr, path: &str) -> Option<(u16, Vec<u8>)> {
    use http_body_util::BodyExt;
    let request = hyper::Request::get(format!("http://{addr}{path}"))
        .body(crate::common::client::empty())
        .unwrap();
    let exchange = async {
        let response = crate::common::client::h1().request(request).await.ok()?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.ok()?.to_bytes();
        Some((status, body.to_vec()))
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .ok()
        .flatten()
}

/// Starts a gateway with `key = literal`, serves one request, checks `/readyz` and
/// shuts it down; returns why the case failed.
async fn start_and_serve(key: &str, literal: &Literal, strict: bool) -> Result<(), String> {
    let upstream = TestUpstream::start("ranges").await;
    let toml = document(key, literal, &upstream.url(), true);
    let config = Config::from_toml(&toml).map_err(|e| format!("refused: {e}\n{toml}"))?;
    let gateway = match microgateway::start(config).await {
        Ok(gateway) => gateway,
        Err(_) if !strict => return Ok(()),
        Err(e) => return Err(format!("did not start: {e}\n{toml}")),
    };
    let proxied = try_get(gateway.proxy_addr, "/echo").await;
    let ready = try_get(gateway.admin_addr, "/readyz").await;
    let (proxy_addr, admin_addr) = (gateway.proxy_addr, gateway.admin_addr);
    gateway.shutdown();
    if tokio::time::timeout(Duration::from_secs(10), gateway.wait())
        .await
        .is_err()
    {
        return Err(format!("did not shut down within 10 s\n{toml}"));
    }
    if tokio::net::TcpStream::connect(proxy_addr).await.is_ok() {
        return Err(format!("proxy {proxy_addr} still accepts after shutdown"));
    }
    if tokio::net::TcpStream::connect(admin_addr).await.is_ok() {
        return Err(format!("admin {admin_addr} still accepts after shutdown"));
    }
    if ready.as_ref().map(|r| r.0) != Some(200) {
        return Err(format!("/readyz answered {ready:?}\n{toml}"));
    }
    if strict {
        let Some((200, body)) = &proxied else {
            return Err(format!("GET /echo through the proxy: {proxied:?}\n{toml}"));
        };
        let echo: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        if key.starts_with("plugins[]") && echo["headers"]["x-range"][0] != "1" {
            return Err(format!("the plugin did not run: {echo}"));
        }
    }
    Ok(())
}

/// Runs [`start_and_serve`] on a fresh runtime and fails on a panic on any thread.
/// Cases run one at a time, so a panic is charged to the case that caused it.
fn serve_case(key: &str, literal: &Literal) -> Result<(), String> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    count_panics();
    let strict = match (serving_floor(key), literal) {
        (Some(floor), Literal::Text(t)) => humantime::parse_duration(t).is_ok_and(|d| d >= floor),
        _ => true,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let before = PANICS.load(Ordering::SeqCst);
    let outcome = runtime.block_on(start_and_serve(key, literal, strict));
    drop(runtime);
    if PANICS.load(Ordering::SeqCst) != before {
        return Err(format!("{key} = {literal:?} panicked"));
    }
    outcome.map_err(|e| format!("{key} = {literal:?}: {e}"))
}

/// Both ends of every range, deterministically.
#[test]
fn both_ends_of_every_range_start_serve_and_shut_down() {
    for range in RANGES {
        let ends = match range.limit {
            Limit::Count { min, max } | Limit::Bytes { min, max } => {
                [Literal::Unsigned(min), Literal::Unsigned(max)]
            }
            Limit::Signed { min, max } => [Literal::Signed(min), Literal::Signed(max)],
            Limit::Duration { min, max } => [text(min), text(max)],
        };
        for literal in &ends {
            if let Err(e) = serve_case(range.key, literal) {
                panic!("{e}");
            }
        }
    }
}

proptest! {
    #![proptest_config(cases(64))]

    /// Every accepted value yields a gateway that serves, reports ready and stops, and
    /// nothing panics on any thread meanwhile.
    #[test]
    fn accepted_values_start_serve_and_shut_down(
        (index, literal) in (0..RANGES.len()).prop_flat_map(|i| (Just(i), valid_literal(RANGES[i].limit)))
    ) {
        let outcome = serve_case(RANGES[index].key, &literal);
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    }
}

#[test]
fn every_range_key_has_a_place_in_the_test_document() {
    for range in RANGES {
        let literal = Literal::Unsigned(0);
        let doc = document(range.key, &literal, "http://127.0.0.1:9", true);
        assert!(
            doc.contains(&format!("\n{}", assignment(range.key, &literal))),
            "{} is not placed:\n{doc}",
            range.key
        );
    }
}
