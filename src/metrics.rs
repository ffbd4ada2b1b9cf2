//! Prometheus metrics: one process-wide recorder, metric names, and recording helpers.
//!
//! The recorder is installed once per process (the `metrics` facade is global); the
//! admin listener renders it at `/metrics`. Request latency is measured to the
//! response head, so a long stream does not inflate it.

use http::StatusCode;
use metrics::{Counter, Histogram, counter, gauge, histogram};
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
const PLUGIN_CALLS: &str = "microgateway_plugin_calls_total";
const PLUGIN_DURATION: &str = "microgateway_plugin_duration_seconds";
const PLUGIN_ERRORS: &str = "microgateway_plugin_errors_total";
const PLUGIN_TIMEOUTS: &str = "microgateway_plugin_timeouts_total";
const PLUGIN_FAIL_OPEN: &str = "microgateway_plugin_fail_open_total";
const COLLECT_DROPPED: &str = "microgateway_collect_dropped_total";
const LLM_REQUESTS: &str = "microgateway_llm_requests_total";
const LLM_TOKENS: &str = "microgateway_llm_tokens_total";
const ADMIN_REFUSED: &str = "microgateway_admin_refused_total";
const PLUGIN_LOAD_FAILURES: &str = "microgateway_plugin_load_failures_total";
const TASK_PANICS: &str = "microgateway_task_panics_total";

/// Latency buckets in seconds, from 100 µs to 30 s.
const BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0, 30.0,
];

/// Plugin hook latency buckets in seconds, from 1 µs to 5 s.
const PLUGIN_BUCKETS: [f64; 14] = [
    0.000001, 0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.005, 0.025,
    0.1, 1.0, 5.0,
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
                .ok()?
                .set_buckets_for_metric(Matcher::Full(PLUGIN_DURATION.to_string()), &PLUGIN_BUCKETS)
                .ok()?;
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .clone()
}

/// Starts (once per process) the task that periodically folds recorded histogram samples
/// into their buckets, so memory stays bounded even when nobody scrapes `/metrics`.
pub fn spawn_upkeep() {
    static STARTED: OnceLock<()> = OnceLock::new();
    let Some(handle) = install() else { return };
    STARTED.get_or_init(|| {
        // A plain thread, independent of any Tokio runtime's lifetime.
        let spawned = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(5));
                    handle.run_upkeep();
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the metrics upkeep thread");
        }
    });
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
    metrics::describe_counter!(PLUGIN_CALLS, "Plugin hook calls, by plugin and hook.");
    metrics::describe_histogram!(
        PLUGIN_DURATION,
        metrics::Unit::Seconds,
        "Plugin hook latency, by plugin and hook."
    );
    metrics::describe_counter!(
        PLUGIN_ERRORS,
        "Plugin hook calls that failed (timeouts excluded)."
    );
    metrics::describe_counter!(PLUGIN_TIMEOUTS, "Plugin hook calls that timed out.");
    metrics::describe_counter!(
        PLUGIN_FAIL_OPEN,
        "Failed plugin hook calls skipped because the instance is fail_open."
    );
    metrics::describe_counter!(
        LLM_REQUESTS,
        "LLM exchanges, by provider, model, app and status."
    );
    metrics::describe_counter!(
        LLM_TOKENS,
        "LLM tokens, by provider, model, app and kind (prompt, completion)."
    );
    metrics::describe_counter!(
        COLLECT_DROPPED,
        "Completed-request records dropped because the collection queue was full."
    );
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

/// Pre-registered metric handles for one plugin instance and hook; recording is an atomic add.
#[derive(Clone)]
pub struct HookMetrics {
    /// Calls made.
    pub calls: Counter,
    /// Latency per call.
    pub latency: Histogram,
    /// Failed calls (not timeouts).
    pub errors: Counter,
    /// Timed-out calls.
    pub timeouts: Counter,
    /// Failures passed because of `fail_open`.
    pub fail_open: Counter,
}

impl HookMetrics {
    /// Registers the handles for `plugin` and `hook`.
    pub fn new(plugin: &str, hook: &'static str) -> HookMetrics {
        let labels = [("plugin", plugin.to_string()), ("hook", hook.to_string())];
        HookMetrics {
            calls: counter!(PLUGIN_CALLS, &labels),
            latency: histogram!(PLUGIN_DURATION, &labels),
            errors: counter!(PLUGIN_ERRORS, &labels),
            timeouts: counter!(PLUGIN_TIMEOUTS, &labels),
            fail_open: counter!(PLUGIN_FAIL_OPEN, &labels),
        }
    }
}

/// Records an admin API request refused before it reached a handler (`reason`: bad
/// host, foreign origin, wrong content type, missing or wrong token).
pub fn admin_refused(reason: &'static str) {
    counter!(ADMIN_REFUSED, "reason" => reason).increment(1);
}

/// Records a detached background task that panicked.
pub fn task_panic(task: &'static str) {
    counter!(TASK_PANICS, "task" => task).increment(1);
}

/// Records a plugin that could not be loaded and now runs as an unavailable stand-in.
pub fn plugin_load_failure(plugin: &str) {
    counter!(PLUGIN_LOAD_FAILURES, "plugin" => plugin.to_string()).increment(1);
}

/// Records a completed-request record dropped at a full queue.
pub fn collect_dropped() {
    counter!(COLLECT_DROPPED).increment(1);
}

/// Records one completed LLM exchange and its token usage: `tokens` is the prompt and
/// the completion token count, when the response reported them.
pub fn llm_exchange(
    provider: &'static str,
    model: &str,
    app: &str,
    status: &str,
    tokens: Option<(u64, u64)>,
) {
    counter!(LLM_REQUESTS, "provider" => provider, "model" => model.to_string(), "app" => app.to_string(), "status" => status.to_string())
        .increment(1);
    if let Some((prompt, completion)) = tokens {
        for (kind, n) in [("prompt", prompt), ("completion", completion)] {
            counter!(LLM_TOKENS, "provider" => provider, "model" => model.to_string(), "app" => app.to_string(), "kind" => kind)
                .increment(n);
        }
    }
}
