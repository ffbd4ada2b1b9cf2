//! Prometheus metrics: one process-wide recorder, metric names, and recording helpers.
//!
//! The recorder is installed once per process (the `metrics` facade is global); the
//! admin listener renders it at `/metrics`. Request latency is measured to the
//! response head, so a long stream does not inflate it.

use http::StatusCode;
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

/// Route label used for requests that matched no route.
pub const NO_ROUTE: &str = "<none>";

const REQUESTS: &str = "microgateway_requests_total";
const DURATION: &str = "microgateway_request_duration_seconds";
const UPSTREAM_ERRORS: &str = "microgateway_upstream_errors_total";
const GATEWAY_ERRORS: &str = "microgateway_gateway_errors_total";
const CONNECTIONS: &str = "microgateway_connections_active";
const CONNECTIONS_TOTAL: &str = "microgateway_connections_total";

/// Latency buckets in seconds, from 100 µs to 30 s.
const BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0, 30.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the global Prometheus recorder on first call and returns its handle.
///
/// Returns `None` if another recorder was installed by the embedding program.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(DURATION.to_string()), &BUCKETS)
                .ok()?;
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!(REQUESTS, "Requests handled, by route and status.");
    metrics::describe_histogram!(
        DURATION,
        metrics::Unit::Seconds,
        "Time from request arrival to response head, by route and status."
    );
    metrics::describe_counter!(
        UPSTREAM_ERRORS,
        "Failed upstream exchanges, by route, upstream and kind."
    );
    metrics::describe_counter!(
        GATEWAY_ERRORS,
        "Requests answered by the gateway itself, by route and error type."
    );
    metrics::describe_gauge!(CONNECTIONS, "Open client connections.");
    metrics::describe_counter!(CONNECTIONS_TOTAL, "Accepted client connections.");
}

/// Records a finished request.
pub fn request_done(route: &str, status: StatusCode, elapsed: Duration) {
    let labels = [
        ("route", route.to_string()),
        ("status", status.as_str().to_string()),
    ];
    counter!(REQUESTS, &labels).increment(1);
    histogram!(DURATION, &labels).record(elapsed.as_secs_f64());
}

/// Records a failed upstream exchange.
pub fn upstream_error(route: &str, upstream: &str, kind: &'static str) {
    counter!(UPSTREAM_ERRORS, "route" => route.to_string(), "upstream" => upstream.to_string(), "kind" => kind)
        .increment(1);
}

/// Records a request answered by the gateway with an error.
pub fn gateway_error(route: &str, kind: &'static str) {
    counter!(GATEWAY_ERRORS, "route" => route.to_string(), "type" => kind).increment(1);
}

/// Records a connection opening (`+1`) or closing (`-1`).
pub fn connection(delta: f64) {
    if delta > 0.0 {
        counter!(CONNECTIONS_TOTAL).increment(1);
    }
    gauge!(CONNECTIONS).increment(delta);
}
