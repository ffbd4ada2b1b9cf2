//! Prometheus metrics: one process-wide recorder, metric names, and recording helpers.
//!
//! The recorder is installed once per process (the `metrics` facade is global); the
//! admin listener renders it at `/metrics`. Request latency is measured to the
//! response head, so a long stream does not inflate it.

use http::StatusCode;
use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
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
                .ok()?
                .set_buckets_for_metric(
                    Matcher::Full(GEN_AI_TOKEN_USAGE.to_string()),
                    &GEN_AI_TOKEN_BUCKETS,
                )
                .ok()?
                .set_buckets_for_metric(
                    Matcher::Full(GEN_AI_OPERATION_DURATION.to_string()),
                    &BUCKETS,
                )
                .ok()?
                .set_buckets_for_metric(
                    Matcher::Full(GEN_AI_TIME_TO_FIRST_TOKEN.to_string()),
                    &GEN_AI_TTFT_BUCKETS,
                )
                .ok()?
                .set_buckets_for_metric(
                    Matcher::Full(GEN_AI_TIME_PER_OUTPUT_TOKEN.to_string()),
                    &GEN_AI_TPOT_BUCKETS,
                )
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
        "Plugin hook latency, by plugin and hook: every call of a remote hook, one call in 32 of an in-process hook."
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
    llm::describe_llm();
    upgrade::describe_upgrade();
    cluster::describe_cluster();
}

/// Records a finished request.
///
/// The counter and histogram of each route and status are looked up once per worker
/// thread and kept, so a request costs two atomic records rather than two label
/// allocations and two registry lookups.
pub fn request_done(route: &str, status: StatusCode, elapsed: Duration) {
    let seconds = elapsed.as_secs_f64();
    with_cached(
        &REQUEST_HANDLES,
        route,
        MAX_CACHED_ROUTES,
        |(s, _)| *s == status,
        || (status, RequestHandles::register(route, status)),
        |(_, handles)| handles.record(seconds),
    );
}

/// The handle sets one thread keeps, by a name (a route, an app), each name's sets told
/// apart by what they are for (a status; a provider, model and status).
type HandleCache<V> = RefCell<HashMap<Box<str>, Vec<V>>>;

/// Records with the handle set of `name` that `is` picks from this thread's `cache`,
/// registering it with `register` on first use.
///
/// Before this module's recorder is installed, or while the cache is in use, the set
/// is registered for this one record and not kept: a handle taken before the recorder
/// records nothing, ever. Names come from the configuration and from traffic, so past
/// `max` sets the cache starts over rather than grow without bound.
fn with_cached<V>(
    cache: &'static std::thread::LocalKey<HandleCache<V>>,
    name: &str,
    max: usize,
    is: impl Fn(&V) -> bool,
    register: impl FnOnce() -> V,
    record: impl FnOnce(&V),
) {
    if !installed() {
        record(&register());
        return;
    }
    cache.with(|cache| {
        let Ok(mut cache) = cache.try_borrow_mut() else {
            record(&register());
            return;
        };
        if let Some(set) = cache.get(name).and_then(|sets| sets.iter().find(|s| is(s))) {
            record(set);
            return;
        }
        if cache.values().map(Vec::len).sum::<usize>() >= max {
            cache.clear();
        }
        let set = register();
        record(&set);
        cache.entry(Box::from(name)).or_default().push(set);
    });
}

/// Route and status handle sets one thread keeps.
const MAX_CACHED_ROUTES: usize = 4096;

/// The request counter and duration histogram of one route and status.
struct RequestHandles {
    requests: Counter,
    duration: Histogram,
}

impl RequestHandles {
    fn register(route: &str, status: StatusCode) -> RequestHandles {
        let labels = [
            ("route", route.to_string()),
            ("status", status.as_str().to_string()),
        ];
        RequestHandles {
            requests: counter!(REQUESTS, &labels),
            duration: histogram!(DURATION, &labels),
        }
    }

    fn record(&self, seconds: f64) {
        self.requests.increment(1);
        self.duration.record(seconds);
    }
}

thread_local! {
    /// This thread's request handles by route and status (see [`request_done`]).
    static REQUEST_HANDLES: HandleCache<(StatusCode, RequestHandles)> =
        RefCell::new(HashMap::new());
}

/// True once this module's recorder is the global one, so handles registered now
/// stay valid (a handle taken before any recorder is installed records nothing).
fn installed() -> bool {
    matches!(HANDLE.get(), Some(Some(_)))
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
    static HANDLES: OnceLock<(Counter, Gauge)> = OnceLock::new();
    let register = || (counter!(CONNECTIONS_TOTAL), gauge!(CONNECTIONS));
    let fresh;
    let (total, active) = if installed() {
        HANDLES.get_or_init(register)
    } else {
        fresh = register();
        &fresh
    };
    if delta > 0.0 {
        total.increment(1);
    }
    active.increment(delta);
}

/// One in-process hook call in this many has its latency recorded (see [`HookMetrics::timed`]).
pub const HOOK_SAMPLE: u32 = 32;

/// Pre-registered metric handles for one plugin instance and hook; recording is an atomic add.
pub struct HookMetrics {
    /// Calls made; exact.
    pub calls: Counter,
    /// Latency per call: every call of a hook that answers asynchronously (a remote
    /// plugin), one call in [`HOOK_SAMPLE`] of a hook that answers in-process.
    pub latency: Histogram,
    /// Failed calls (not timeouts); exact.
    pub errors: Counter,
    /// Timed-out calls; exact.
    pub timeouts: Counter,
    /// Failures passed because of `fail_open`; exact.
    pub fail_open: Counter,
    /// The hook has answered asynchronously at least once, so every call is timed.
    asynchronous: AtomicBool,
}

impl Clone for HookMetrics {
    fn clone(&self) -> Self {
        HookMetrics {
            calls: self.calls.clone(),
            latency: self.latency.clone(),
            errors: self.errors.clone(),
            timeouts: self.timeouts.clone(),
            fail_open: self.fail_open.clone(),
            asynchronous: AtomicBool::new(self.asynchronous.load(Ordering::Relaxed)),
        }
    }
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
            asynchronous: AtomicBool::new(false),
        }
    }

    /// Whether the next call should be timed: always once the hook has answered
    /// asynchronously, otherwise one call in [`HOOK_SAMPLE`], chosen at random so that
    /// hooks that always run in the same order are sampled alike.
    ///
    /// An in-process hook costs tens of nanoseconds, as much as the two clock reads
    /// and the histogram record that would time it; sampling keeps its histogram's
    /// shape (and its mean, `_sum / _count`) at a thirty-second of that cost.
    pub fn timed(&self) -> bool {
        self.asynchronous.load(Ordering::Relaxed) || sample()
    }

    /// Notes that the hook answered asynchronously: from now on every call is timed.
    pub fn mark_asynchronous(&self) {
        if !self.asynchronous.load(Ordering::Relaxed) {
            self.asynchronous.store(true, Ordering::Relaxed);
        }
    }
}

thread_local! {
    /// The state of this thread's sampling generator (xorshift32; never 0).
    static SAMPLER: Cell<u32> = const { Cell::new(0x9e37_79b9) };
}

/// True for about one call in [`HOOK_SAMPLE`] on this thread.
fn sample() -> bool {
    SAMPLER.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        state.set(x);
        x % HOOK_SAMPLE == 0
    })
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

mod cluster;
mod exchange;
mod llm;
mod upgrade;
mod upstream;
pub use cluster::*;
pub use exchange::{LlmRecord, llm_settled};
pub use llm::*;
pub use upgrade::*;
pub use upstream::*;
