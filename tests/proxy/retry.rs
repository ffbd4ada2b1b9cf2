//! Retries and the default next-upstream behaviour against real misbehaving upstreams
//! (`common::faulty`): thousands of requests across healthy and faulty targets with
//! none failing, non-idempotent requests never replayed, the budget, `Retry-After`, the
//! replay cap, and no retry once a response head was passed on.

use crate::common::binary::GatewayProcess;
use crate::common::client::{self, H1Client, Reply, empty, full};
use crate::common::faulty::{Fault, Faulty, Refused};
use crate::common::{GatewayConfig, get};
use futures_util::StreamExt;
use hyper::{Request, StatusCode};
use std::time::{Duration, Instant};

/// Sends `n` requests of `method` to `path`, `concurrency` at a time; returns the replies.
pub async fn drive(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    n: usize,
    concurrency: usize,
) -> Vec<Reply> {
    let http = client::h1();
    futures_util::stream::iter(0..n)
        .map(|_| {
            let http: H1Client = http.clone();
            let req = Request::builder()
                .method(method)
                .uri(client::url(addr, path))
                .body(empty())
                .unwrap();
            async move { client::send(&http, req).await }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await
}

/// The sum of every sample of `name` whose labels contain all of `labels`.
pub async fn metric(admin: std::net::SocketAddr, name: &str, labels: &[&str]) -> f64 {
    let text = get(admin, "/metrics").await.text();
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub fn failures(replies: &[Reply]) -> Vec<String> {
    replies
        .iter()
        .filter(|r| r.status != StatusCode::OK)
        .map(|r| format!("{} {}", r.status, r.text()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_gets_across_faulty_targets_never_fail() {
    let healthy = Faulty::start("healthy", Fault::Healthy).await;
    let doomed = Faulty::start("doomed", Fault::Healthy).await;
    let flaky = Faulty::start(
        "flaky",
        Fault::StatusThenOk {
            status: 503,
            first: 100,
        },
    )
    .await;
    let reset = Faulty::start("reset", Fault::ResetAfterRequest).await;
    let hang = Faulty::start("hang", Fault::Hang).await;
    let targets: Vec<String> = [&healthy, &doomed, &flaky, &reset, &hang]
        .iter()
        .map(|f| f.url())
        .collect();
    // Passive ejection off (`max_fails = 0`), so that every fault keeps being met and the
    // retries alone keep the requests whole; tests/proxy/health.rs covers ejection.
    let gw = GatewayConfig::new()
        .upstream_urls("mix", &targets, "max_fails = 0")
        .route(
            "mix",
            "mix",
            "timeout = \"150ms\"\nretry = { on = [\"connect\", \"timeout\", \"5xx\", \"reset\"], backoff = \"1ms\", backoff_max = \"5ms\", budget_percent = 100, budget_min = 64 }",
        )
        .start()
        .await;
    let first = drive(gw.proxy_addr, "GET", "/x", 1000, 16).await;
    doomed.kill().await;
    let second = drive(gw.proxy_addr, "GET", "/x", 1000, 16).await;
    let mut all = first;
    all.extend(second);
    assert_eq!(all.len(), 2000);
    assert_eq!(failures(&all), Vec::<String>::new());
    // Every answer came from a target that answers 200, and the header says which.
    for r in &all {
        let named = r.header("x-microgateway-upstream").unwrap();
        let who = r.text().trim_start_matches("ok ").to_string();
        let f = [&healthy, &doomed, &flaky]
            .into_iter()
            .find(|f| f.name() == who)
            .unwrap_or_else(|| panic!("answered by {who}"));
        assert_eq!(named, format!("mix/{}", f.addr));
    }
    // The faults were really met, and every attempt was counted.
    assert!(flaky.hits() >= 100 && reset.hits() > 0 && hang.hits() > 0);
    let admin = gw.admin_addr;
    let attempts = metric(
        admin,
        "microgateway_upstream_attempts_total",
        &["route=\"mix\""],
    )
    .await;
    let success = metric(
        admin,
        "microgateway_upstream_attempts_total",
        &["route=\"mix\"", "outcome=\"success\""],
    )
    .await;
    assert_eq!(success, 2000.0);
    assert!(attempts >= 2000.0 + 100.0, "{attempts}");
    for outcome in ["5xx", "reset", "timeout", "connect"] {
        let n = metric(
            admin,
            "microgateway_upstream_attempts_total",
            &[&format!("outcome=\"{outcome}\"")],
        )
        .await;
        assert!(n > 0.0, "no {outcome} attempt counted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_one_dead_target_of_two_costs_no_failed_get() {
    let healthy = Faulty::start("healthy", Fault::Healthy).await;
    let refused = Refused::new();
    let dead = refused.url();
    let gw = GatewayConfig::new()
        .upstream_urls("pair", &[healthy.url(), dead], "")
        .route("pair", "pair", "")
        .start()
        .await;
    let replies = drive(gw.proxy_addr, "GET", "/x", 2000, 16).await;
    assert_eq!(failures(&replies), Vec::<String>::new());
    assert_eq!(healthy.hits(), 2000);
    let connect = metric(
        gw.admin_addr,
        "microgateway_upstream_attempts_total",
        &["outcome=\"connect\""],
    )
    .await;
    assert!(connect > 0.0, "the dead target was never tried");
    // A POST is not idempotent: by default even a refused connect is not retried. With
    // ejection on, the dead target is out of rotation by now, so a group without
    // ejection shows it.
    let gw = GatewayConfig::new()
        .upstream_urls("pair", &[healthy.url(), refused.url()], "max_fails = 0")
        .route("pair", "pair", "")
        .start()
        .await;
    let posts = drive(gw.proxy_addr, "POST", "/x", 20, 4).await;
    assert!(posts.iter().any(|r| r.status == StatusCode::BAD_GATEWAY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_target_mid_run_costs_no_failed_get_by_default() {
    let healthy = Faulty::start("healthy", Fault::Healthy).await;
    let doomed = Faulty::start("doomed", Fault::Healthy).await;
    let gw = GatewayConfig::new()
        .upstream_urls("pair", &[healthy.url(), doomed.url()], "")
        .route("pair", "pair", "")
        .start()
        .await;
    let before = drive(gw.proxy_addr, "GET", "/x", 200, 16).await;
    assert_eq!(failures(&before), Vec::<String>::new());
    assert!(doomed.hits() > 0);
    doomed.kill().await;
    let after = drive(gw.proxy_addr, "GET", "/x", 1000, 16).await;
    assert_eq!(failures(&after), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_idempotent_requests_are_not_replayed() {
    let reset = Faulty::start("reset", Fault::ResetAfterRequest).await;
    let healthy = Faulty::start("healthy", Fault::Healthy).await;
    let reset2 = Faulty::start("reset2", Fault::ResetAfterRequest).await;
    let healthy2 = Faulty::start("healthy2", Fault::Healthy).await;
    let on = "retry = { on = [\"reset\", \"5xx\", \"connect\"], backoff = \"1ms\" }";
    let gw = GatewayConfig::new()
        .upstream_urls("strict", &[reset.url(), healthy.url()], "")
        .upstream_urls("loose", &[reset2.url(), healthy2.url()], "")
        .route(
            "strict",
            "strict",
            &format!("path_prefix = \"/strict\"\n{on}"),
        )
        .route(
            "loose",
            "loose",
            &format!("path_prefix = \"/loose\"\n{on}\nretry_non_idempotent = true"),
        )
        .start()
        .await;
    let replies = drive(gw.proxy_addr, "POST", "/strict/x", 40, 4).await;
    let failed = replies
        .iter()
        .filter(|r| r.status == StatusCode::BAD_GATEWAY)
        .count();
    // Each POST reached exactly one target: the resets were answered 502, never resent.
    assert_eq!(reset.hits(), failed);
    assert!(failed > 0);
    assert_eq!(reset.hits() + healthy.hits(), 40);
    assert_eq!(healthy.retries(), 0);
    // The same with retry_non_idempotent: every POST succeeds.
    let replies = drive(gw.proxy_addr, "POST", "/loose/x", 40, 4).await;
    assert_eq!(failures(&replies), Vec::<String>::new());
    assert_eq!(healthy2.hits(), 40);
    assert_eq!(healthy2.retries(), reset2.hits());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_caps_retries_in_flight() {
    let failing = Faulty::start(
        "failing",
        Fault::Always {
            status: 503,
            delay: Duration::from_millis(30),
        },
    )
    .await;
    let gw = GatewayConfig::new()
        .upstream_urls("down", &[failing.url()], "")
        .route(
            "down",
            "down",
            "retry = { attempts = 3, on = [\"5xx\"], backoff = \"0s\", budget_percent = 0, budget_min = 2 }",
        )
        .start()
        .await;
    let replies = drive(gw.proxy_addr, "GET", "/x", 96, 16).await;
    assert!(
        replies
            .iter()
            .all(|r| r.status == StatusCode::SERVICE_UNAVAILABLE)
    );
    // Retries happened, but never more than two at once, so far fewer than 2 per request.
    assert!(failing.retries() > 0);
    assert!(
        failing.max_retries_in_flight() <= 2,
        "{}",
        failing.max_retries_in_flight()
    );
    assert!(failing.hits() < 96 * 3, "{}", failing.hits());
    assert_eq!(failing.hits(), 96 + failing.retries());
}

#[tokio::test]
async fn retry_after_is_honoured_up_to_the_cap() {
    let busy = Faulty::start(
        "busy",
        Fault::TooManyThenOk {
            retry_after: "1",
            first: 1,
        },
    )
    .await;
    let busier = Faulty::start(
        "busier",
        Fault::TooManyThenOk {
            retry_after: "1",
            first: 1,
        },
    )
    .await;
    let gw = GatewayConfig::new()
        .upstream_urls("busy", &[busy.url()], "")
        .upstream_urls("busier", &[busier.url()], "")
        .route("waits", "busy", "path_prefix = \"/waits\"\nretry = { attempts = 2, on = [\"429\"] }")
        .route(
            "short",
            "busier",
            "path_prefix = \"/short\"\nretry = { attempts = 2, on = [\"429\"], retry_after_max = \"200ms\" }",
        )
        .start()
        .await;
    let started = Instant::now();
    let r = get(gw.proxy_addr, "/waits/x").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "did not wait for Retry-After"
    );
    assert_eq!(busy.hits(), 2);
    // Retry-After: 1 is longer than retry_after_max: the 429 is returned, not waited out.
    let r = get(gw.proxy_addr, "/short/x").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(busier.hits(), 1);
}

#[tokio::test]
async fn a_body_over_the_replay_cap_is_sent_once() {
    let flaky = Faulty::start(
        "flaky",
        Fault::StatusThenOk {
            status: 503,
            first: 1,
        },
    )
    .await;
    let gw = GatewayConfig::new()
        .upstream_urls("flaky", &[flaky.url()], "")
        .route(
            "flaky",
            "flaky",
            "retry = { attempts = 2, on = [\"5xx\"], backoff = \"1ms\", max_body_bytes = 1024 }",
        )
        .start()
        .await;
    let big = client::request(gw.proxy_addr, "PUT", "/x", &[], full(vec![b'x'; 4096])).await;
    assert_eq!(big.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(flaky.hits(), 1);
    // A small body is replayed: the second attempt gets it whole and answers.
    let flaky = Faulty::start(
        "flaky2",
        Fault::StatusThenOk {
            status: 503,
            first: 1,
        },
    )
    .await;
    let streamed = Faulty::start(
        "streamed",
        Fault::StatusThenOk {
            status: 503,
            first: 1,
        },
    )
    .await;
    let gw = GatewayConfig::new()
        .upstream_urls("flaky", &[flaky.url()], "")
        .upstream_urls("streamed", &[streamed.url()], "")
        .route("flaky", "flaky", "retry = { attempts = 2, on = [\"5xx\"], backoff = \"1ms\", max_body_bytes = 1024 }")
        .route("streamed", "streamed", "path_prefix = \"/s\"\nretry = { attempts = 2, on = [\"5xx\"], backoff = \"1ms\", max_body_bytes = 1024 }")
        .start()
        .await;
    let small = client::request(gw.proxy_addr, "PUT", "/x", &[], full(vec![b'x'; 100])).await;
    assert_eq!(small.status, StatusCode::OK, "{}", small.text());
    assert_eq!(flaky.hits(), 2);
    // A body of unknown length that outgrows the cap while streaming is not retried.
    let chunked = client::request(gw.proxy_addr, "PUT", "/s/x", &[], client::chunked(8, 512)).await;
    assert_eq!(chunked.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(streamed.hits(), 1);
}

#[tokio::test]
async fn a_reset_after_the_response_head_is_never_retried() {
    let reset = Faulty::start("reset", Fault::ResetAfterHeaders).await;
    let gw = GatewayConfig::new()
        .upstream_urls("r", &[reset.url()], "")
        .route("r", "r", "retry = { attempts = 3, on = [\"connect\", \"timeout\", \"5xx\", \"429\", \"reset\"] }")
        .start()
        .await;
    let req = Request::get(client::url(gw.proxy_addr, "/x"))
        .body(empty())
        .unwrap();
    let response = client::h1().request(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = http_body_util::BodyExt::collect(response.into_body()).await;
    assert!(body.is_err(), "a truncated body must not look complete");
    assert_eq!(reset.hits(), 1);
}

/// The access log line of the shipped binary has the attempt count and the outcome
/// chain: a connect failure on one target of two moves the GET to the other.
#[tokio::test]
async fn the_access_log_lists_every_attempt() {
    let healthy = Faulty::start("healthy", Fault::Healthy).await;
    let refused = Refused::new();
    let config = GatewayConfig::new()
        .upstream_urls("pair", &[refused.url(), healthy.url()], "")
        .route("pair", "pair", "");
    let process = GatewayProcess::spawn(&config).await;
    let reply = get(process.proxy_addr, "/x").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let log = process.log.clone();
    let mut found = false;
    for _ in 0..50 {
        let text = log.lock().unwrap().clone();
        if text.contains("\"attempts\":2") && text.contains("\"outcomes\":\"connect,success\"") {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        found,
        "no access log line with both attempts:\n{}",
        log.lock().unwrap()
    );
    process.terminate();
    process.wait(Duration::from_secs(15)).await;
}
