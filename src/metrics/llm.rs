//! LLM metrics (#18): tokens by kind and cost per provider, model and app, and the
//! OpenTelemetry GenAI client and server histograms under their Prometheus names.

use super::LLM_TOKENS;
use metrics::{counter, gauge, histogram};
use std::time::Duration;

const LLM_COST: &str = "microgateway_llm_cost_usd_total";

/// The prompt-cache token kinds of one exchange (`cached_input`, `cache_creation`),
/// counted beside `prompt` and `completion` in `microgateway_llm_tokens_total`. Kinds
/// with no tokens are not recorded, so a provider without prompt caching adds no series.
pub fn llm_cache_tokens(
    provider: &'static str,
    model: &str,
    app: &str,
    kinds: [(&'static str, u64); 2],
) {
    for (kind, n) in kinds.into_iter().filter(|(_, n)| *n > 0) {
        counter!(LLM_TOKENS, "provider" => provider, "model" => model.to_string(), "app" => app.to_string(), "kind" => kind)
            .increment(n);
    }
}

/// Adds the cost of one exchange in US dollars. Prometheus counters of the `metrics`
/// facade count integers, so the running sum is a gauge that only ever grows.
pub fn llm_cost(provider: &'static str, model: &str, app: &str, usd: f64) {
    gauge!(LLM_COST, "provider" => provider, "model" => model.to_string(), "app" => app.to_string())
        .increment(usd);
}

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

/// One finished exchange of `system` (the provider) and `model`, as GenAI metrics.
pub struct GenAi<'a> {
    /// `gen_ai_system`: `openai` or `anthropic`.
    pub system: &'static str,
    /// `gen_ai_request_model`.
    pub model: &'a str,
    /// Input and output tokens, when the provider reported them.
    pub tokens: Option<(u64, u64)>,
    /// Arrival to the end of the body.
    pub duration: Duration,
    /// Arrival to the first body byte, for streams.
    pub first_token: Option<Duration>,
}

/// Records the GenAI histograms of one exchange. Time per output token is the time
/// after the first token divided by the tokens after it, so it needs two or more.
pub fn gen_ai(e: &GenAi<'_>) {
    let labels = |extra: Option<&'static str>| {
        let mut l = vec![
            ("gen_ai_system", e.system.to_string()),
            ("gen_ai_request_model", e.model.to_string()),
            ("gen_ai_operation_name", "chat".to_string()),
        ];
        if let Some(t) = extra {
            l.push(("gen_ai_token_type", t.to_string()));
        }
        l
    };
    histogram!(GEN_AI_OPERATION_DURATION, &labels(None)).record(e.duration.as_secs_f64());
    if let Some((input, output)) = e.tokens {
        histogram!(GEN_AI_TOKEN_USAGE, &labels(Some("input"))).record(input as f64);
        histogram!(GEN_AI_TOKEN_USAGE, &labels(Some("output"))).record(output as f64);
    }
    let Some(first) = e.first_token else { return };
    histogram!(GEN_AI_TIME_TO_FIRST_TOKEN, &labels(None)).record(first.as_secs_f64());
    if let Some((_, output)) = e.tokens.filter(|(_, o)| *o > 1) {
        let after = e.duration.saturating_sub(first).as_secs_f64();
        histogram!(GEN_AI_TIME_PER_OUTPUT_TOKEN, &labels(None)).record(after / (output - 1) as f64);
    }
}

const CACHE_LOOKUPS: &str = "microgateway_llm_cache_requests_total";
const CACHE_HIT_TOKENS: &str = "microgateway_llm_cache_hit_tokens_total";
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

/// The tokens of an exchange served from the response cache (`prompt`, `completion`).
pub fn llm_cache_hit_tokens(
    provider: &'static str,
    model: &str,
    app: &str,
    tokens: Option<(u64, u64)>,
) {
    let Some((prompt, completion)) = tokens else {
        return;
    };
    for (kind, n) in [("prompt", prompt), ("completion", completion)] {
        counter!(CACHE_HIT_TOKENS, "provider" => provider, "model" => model.to_string(), "app" => app.to_string(), "kind" => kind)
            .increment(n);
    }
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
