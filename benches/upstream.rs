//! Criterion benchmark of target selection: `select` plus `report(Success)` on a
//! four-target group per balancing policy (goal: under 100 ns), with the Prometheus
//! recorder installed so the metric handles are real.
//!
//! - `select_report/{round_robin,weighted,least_request,consistent_hash}`: every target
//!   healthy.
//! - `select_report/round_robin_one_ejected`: one target ejected, so selection reads
//!   the clock and skips it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

use criterion::{Criterion, criterion_group, criterion_main};
use microgateway::Config;
use microgateway::upstream::{Affinity, Outcome, Upstream};
use std::hint::black_box;

/// A four-target group with the `extra` keys.
fn group(extra: &str) -> Upstream {
    let toml = format!(
        "[[upstreams]]\nname = \"local-app\"\ntargets = [\"http://127.0.0.1:9001\", \"http://127.0.0.1:9002\", \"http://127.0.0.1:9003\", \"http://127.0.0.1:9004\"]\n{extra}\n"
    );
    let config = Config::from_toml(&toml).unwrap();
    Upstream::new(&config.upstreams[0], 0).unwrap()
}

fn select_report(c: &mut Criterion) {
    microgateway::metrics::install();
    let mut headers = http::HeaderMap::new();
    headers.insert("x-user", "user-42".parse().unwrap());
    let affinity = Affinity {
        headers: &headers,
        client_ip: "10.1.2.3".parse().unwrap(),
    };
    let mut g = c.benchmark_group("select_report");
    for (name, extra) in [
        ("round_robin", ""),
        ("weighted", "balance = \"weighted\"\nweights = [4, 3, 2, 1]"),
        ("least_request", "balance = \"least_request\""),
        (
            "consistent_hash",
            "balance = \"consistent_hash\"\nhash_on = { header = \"x-user\" }",
        ),
    ] {
        let upstream = group(extra);
        g.bench_function(name, |b| {
            b.iter(|| {
                let pick = upstream.select(black_box(&affinity), &[]).unwrap();
                black_box(pick.index());
                pick.report(Outcome::Success);
            })
        });
    }
    let upstream = group("fail_timeout = \"1day\"");
    // Eject one target: a failed connect ejects at once.
    loop {
        let pick = upstream.select(&affinity, &[]).unwrap();
        if pick.index() == 2 {
            pick.report(Outcome::ConnectFailed);
            break;
        }
        pick.report(Outcome::Success);
    }
    g.bench_function("round_robin_one_ejected", |b| {
        b.iter(|| {
            let pick = upstream.select(black_box(&affinity), &[]).unwrap();
            black_box(pick.index());
            pick.report(Outcome::Success);
        })
    });
    g.finish();
}

criterion_group!(benches, select_report);
criterion_main!(benches);
