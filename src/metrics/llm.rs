//! LLM metrics (#18): tokens by kind and cost per provider, model and app.

use super::LLM_TOKENS;
use metrics::{counter, gauge};

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
