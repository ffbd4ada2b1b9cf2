//! Metrics of the fleet's shared state in Redis: whether Redis is reachable, the
//! commands sent and how they ended, the decisions taken without Redis, and the usage
//! waiting to be added.

use metrics::{counter, gauge, histogram};

const UP: &str = "microgateway_cluster_up";
const COMMANDS: &str = "microgateway_cluster_commands_total";
const LATENCY: &str = "microgateway_cluster_command_duration_seconds";
const DEGRADED: &str = "microgateway_cluster_degraded_total";
const PENDING: &str = "microgateway_cluster_pending_keys";
const DROPPED: &str = "microgateway_cluster_dropped_total";
const PLUGIN_SYNCS: &str = "microgateway_cluster_plugin_syncs_total";
const CACHE: &str = "microgateway_cluster_cache_total";

/// Describes the metrics of this file.
pub(super) fn describe_cluster() {
    metrics::describe_gauge!(
        UP,
        "1 while the cluster's Redis answers, 0 while it does not."
    );
    metrics::describe_counter!(
        COMMANDS,
        "Redis commands (scripts and pipelines) sent, by op (bucket, window, settle, read, ping) and outcome (ok, error, timeout)."
    );
    metrics::describe_histogram!(
        LATENCY,
        metrics::Unit::Seconds,
        "Time of one Redis command or pipeline, by op."
    );
    metrics::describe_counter!(
        DEGRADED,
        "Shared-limit decisions taken without Redis, by limit (rate_limit, llm_policy) and on_unavailable (local, deny, allow)."
    );
    metrics::describe_gauge!(
        PENDING,
        "Shared counters with usage not yet added to Redis."
    );
    metrics::describe_counter!(
        DROPPED,
        "Usage not added to Redis because too many counters were waiting (Redis down for long)."
    );
    metrics::describe_counter!(
        CACHE,
        "The Redis tier of the LLM cache, by outcome (hit, miss, error, corrupt, stored)."
    );
    metrics::describe_counter!(
        PLUGIN_SYNCS,
        "Fleet plugin-record changes, by outcome (published, deferred, applied, failed)."
    );
}

/// One lookup or write of the Redis tier of the LLM cache, by `outcome`.
pub fn cluster_cache(outcome: &'static str) {
    counter!(CACHE, "outcome" => outcome).increment(1);
}

/// One fleet plugin-record change of `outcome`.
pub fn cluster_plugin_sync(outcome: &'static str) {
    counter!(PLUGIN_SYNCS, "outcome" => outcome).increment(1);
}

/// Whether the cluster's Redis answers.
pub fn cluster_up(up: bool) {
    gauge!(UP).set(if up { 1.0 } else { 0.0 });
}

/// One Redis command of `op` that ended with `outcome` after `seconds`.
pub fn cluster_command(op: &'static str, outcome: &'static str, seconds: f64) {
    counter!(COMMANDS, "op" => op, "outcome" => outcome).increment(1);
    histogram!(LATENCY, "op" => op).record(seconds);
}

/// A decision of `limit` taken without Redis, by `mode`.
pub fn cluster_degraded(limit: &'static str, mode: &'static str) {
    counter!(DEGRADED, "limit" => limit, "on_unavailable" => mode).increment(1);
}

/// Counters waiting to be added to Redis.
pub fn cluster_pending(keys: usize) {
    gauge!(PENDING).set(keys as f64);
}

/// Usage of one counter dropped because the queue was full.
pub fn cluster_dropped() {
    counter!(DROPPED).increment(1);
}
