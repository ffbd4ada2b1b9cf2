//! LLM metrics (#18): the names and buckets of tokens by kind and cost per provider,
//! model and app and of the OpenTelemetry GenAI client and server histograms under their
//! Prometheus names (recorded per exchange by `exchange.rs`), and the response cache's.

use metrics::{counter, gauge};

pub(super) const LLM_COST: &str = "microgateway_llm_cost_usd_total";

/// `gen_ai.client.token.usage` (tokens per exchange, by `gen_ai_token_type`).
pub const GEN_AI_TOKEN_USAGE: &str = "gen_ai_client_token_usage";
/// `gen_ai.client.operation.duration` in seconds.
pub const GEN_AI_OPERATION_DURATION: &str = "gen_ai_client_operation_duration_seconds";
/// `gen_ai.server.time_to_first_token` in seconds (streams).
pub const GEN_AI_TIME_TO_FIRST_TOKEN: &str = "gen_ai_server_time_to_first_token_seconds";
/// `gen_ai.server.time_per_output_token` in seconds (streams, after the first token).
pub const GEN_AI_TIME_PER_OUTPUT_TOKEN: &str = "gen_ai_server_time_per_output_token_seconds";

/// Bucket boundaries of the GenAI token histogram: OpenTelemetry's advice, powers of 4.
pub const GEN_AI_TOKEN_BUCKETS: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];
/// Time to first token buckets in seconds (OpenTelemetry's advice).
pub const GEN_AI_TTFT_BUCKETS: [f64; 16] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// Time per output token buckets in seconds (OpenTelemetry's advice).
pub const GEN_AI_TPOT_BUCKETS: [f64; 13] = [
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
];

const CACHE_LOOKUPS: &str = "microgateway_llm_cache_requests_total";
pub(super) const CACHE_HIT_TOKENS: &str = "microgateway_llm_cache_hit_tokens_total";
const CACHE_BYTES: &str = "microgateway_llm_cache_bytes";
const CACHE_ENTRIES: &str = "microgateway_llm_cache_entries";
const CACHE_EVICTIONS: &str = "microgateway_llm_cache_evictions_total";
const CACHE_SKIPPED: &str = "microgateway_llm_cache_skipped_total";

/// Describes the LLM metrics that have a help text.
pub(super) fn describe_llm() {
    metrics::describe_gauge!(
        LLM_COST,
        "LLM spend in US dollars by the price table, by provider, model and app (only grows)."
    );
    metrics::describe_counter!(
        CACHE_LOOKUPS,
        "Requests of cached LLM routes, by route and result (hit, miss, bypass)."
    );
    metrics::describe_counter!(
        CACHE_HIT_TOKENS,
        "Tokens of answers served from the LLM response cache (not spent at the provider), by provider, model, app and kind."
    );
    metrics::describe_gauge!(
        CACHE_BYTES,
        "Bytes of answers held by the LLM response cache."
    );
    metrics::describe_gauge!(CACHE_ENTRIES, "Answers held by the LLM response cache.");
    metrics::describe_counter!(
        CACHE_EVICTIONS,
        "Answers removed from the LLM response cache, by cause (size, expired, replaced)."
    );
    metrics::describe_counter!(
        CACHE_SKIPPED,
        "Answers of cache misses not stored, by reason (too_large, incomplete)."
    );
}

/// One request of a cached route: `hit`, `miss` or `bypass`.
pub fn llm_cache_lookup(route: &str, result: &'static str) {
    counter!(CACHE_LOOKUPS, "route" => route.to_string(), "result" => result).increment(1);
}

/// What the response cache holds now.
pub fn llm_cache_size(bytes: u64, entries: u64) {
    gauge!(CACHE_BYTES).set(bytes as f64);
    gauge!(CACHE_ENTRIES).set(entries as f64);
}

/// An answer left the cache: `size`, `expired`, `replaced` or `explicit`.
pub fn llm_cache_eviction(cause: &'static str) {
    counter!(CACHE_EVICTIONS, "cause" => cause).increment(1);
}

/// An answer of a miss was not stored: `too_large` or `incomplete`.
pub fn llm_cache_skipped(reason: &'static str) {
    counter!(CACHE_SKIPPED, "reason" => reason).increment(1);
}
