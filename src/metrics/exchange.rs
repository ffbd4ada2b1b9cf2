//! The metrics of one settled LLM exchange ([`llm_settled`]): requests, tokens by kind,
//! cost, tokens served from the response cache, and the GenAI histograms.
//!
//! Each exchange touches up to ten series labelled by provider, model and app. Looking
//! each up through the `metrics` macros costs a label allocation and a registry search
//! per series, about 30,000 instructions per exchange (callgrind, `benches/llm.rs`).
//! So each worker thread keeps the handles of the series it has seen, by app, provider,
//! model and status; a known exchange costs a hash lookup and atomic adds. Handles are
//! registered on first use, one by one, so `/metrics` shows the same series as before:
//! a kind that never had a token has no series.

use super::llm::{
    CACHE_HIT_TOKENS, GEN_AI_OPERATION_DURATION, GEN_AI_TIME_PER_OUTPUT_TOKEN,
    GEN_AI_TIME_TO_FIRST_TOKEN, GEN_AI_TOKEN_USAGE, LLM_COST,
};
use super::{HandleCache, LLM_REQUESTS, LLM_TOKENS, with_cached};
use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::time::Duration;

/// One settled LLM exchange, as its metrics see it.
#[derive(Debug, Clone, Copy)]
pub struct LlmRecord<'a> {
    /// `openai` or `anthropic`.
    pub provider: &'static str,
    /// The model the answer named (or the request), `unknown` when neither did.
    pub model: &'a str,
    /// The app it is accounted to.
    pub app: &'a str,
    /// The status sent to the client, as digits.
    pub status: &'a str,
    /// Served from the response cache: its tokens cost nothing and are counted apart.
    pub cache_hit: bool,
    /// Prompt and completion tokens, when the provider reported them.
    pub tokens: Option<(u64, u64)>,
    /// Of the prompt, tokens read from the provider's prompt cache.
    pub cached_input: u64,
    /// Of the prompt, tokens written to the provider's prompt cache.
    pub cache_creation: u64,
    /// The price of the exchange, when the model has one.
    pub cost_usd: Option<f64>,
    /// Arrival to the end of the body.
    pub duration: Duration,
    /// Arrival to the first body byte, for streams.
    pub first_token: Option<Duration>,
}

/// Records every metric of one settled exchange.
///
/// Time per output token is the time after the first token divided by the tokens after
/// it, so it needs two or more.
pub fn llm_settled(r: &LlmRecord<'_>) {
    with_cached(
        &SERIES,
        r.app,
        MAX_CACHED_SERIES,
        |s: &Series| s.is(r),
        || Series::new(r),
        |s| s.record(r),
    );
}

/// Series sets one thread keeps.
const MAX_CACHED_SERIES: usize = 4096;

thread_local! {
    /// This thread's series handles by app (see [`llm_settled`]).
    static SERIES: HandleCache<Series> = RefCell::new(HashMap::new());
}

/// The handles of one provider, model, app and status, each registered on first use.
struct Series {
    provider: &'static str,
    model: Box<str>,
    app: Box<str>,
    status: Box<str>,
    requests: OnceCell<Counter>,
    /// `prompt`, `completion`, `cached_input`, `cache_creation`.
    tokens: [OnceCell<Counter>; 4],
    /// Cache hits: `prompt`, `completion`.
    hit_tokens: [OnceCell<Counter>; 2],
    cost: OnceCell<Gauge>,
    operation: OnceCell<Histogram>,
    /// `input`, `output`.
    token_usage: [OnceCell<Histogram>; 2],
    first_token: OnceCell<Histogram>,
    per_output_token: OnceCell<Histogram>,
}

const TOKEN_KINDS: [&str; 4] = ["prompt", "completion", "cached_input", "cache_creation"];
const GEN_AI_TOKEN_TYPES: [&str; 2] = ["input", "output"];

impl Series {
    fn new(r: &LlmRecord<'_>) -> Series {
        Series {
            provider: r.provider,
            model: Box::from(r.model),
            app: Box::from(r.app),
            status: Box::from(r.status),
            requests: OnceCell::new(),
            tokens: Default::default(),
            hit_tokens: Default::default(),
            cost: OnceCell::new(),
            operation: OnceCell::new(),
            token_usage: Default::default(),
            first_token: OnceCell::new(),
            per_output_token: OnceCell::new(),
        }
    }

    fn is(&self, r: &LlmRecord<'_>) -> bool {
        self.provider == r.provider && *self.model == *r.model && *self.status == *r.status
    }

    fn labels(&self) -> [(&'static str, String); 3] {
        [
            ("provider", self.provider.to_string()),
            ("model", self.model.to_string()),
            ("app", self.app.to_string()),
        ]
    }

    fn gen_ai_labels(&self, token_type: Option<&'static str>) -> Vec<(&'static str, String)> {
        let mut l = vec![
            ("gen_ai_system", self.provider.to_string()),
            ("gen_ai_request_model", self.model.to_string()),
            ("gen_ai_operation_name", "chat".to_string()),
        ];
        if let Some(t) = token_type {
            l.push(("gen_ai_token_type", t.to_string()));
        }
        l
    }

    fn token(&self, kind: usize) -> &Counter {
        self.tokens[kind].get_or_init(|| {
            let [p, m, a] = self.labels();
            counter!(
                LLM_TOKENS,
                &[p, m, a, ("kind", TOKEN_KINDS[kind].to_string())]
            )
        })
    }

    fn record(&self, r: &LlmRecord<'_>) {
        self.requests
            .get_or_init(|| {
                let [p, m, a] = self.labels();
                counter!(
                    LLM_REQUESTS,
                    &[p, m, a, ("status", self.status.to_string())]
                )
            })
            .increment(1);
        if r.cache_hit {
            if let Some((prompt, completion)) = r.tokens {
                for (i, n) in [prompt, completion].into_iter().enumerate() {
                    self.hit_tokens[i]
                        .get_or_init(|| {
                            let [p, m, a] = self.labels();
                            let kind = ("kind", TOKEN_KINDS[i].to_string());
                            counter!(CACHE_HIT_TOKENS, &[p, m, a, kind])
                        })
                        .increment(n);
                }
            }
            return;
        }
        if let Some((prompt, completion)) = r.tokens {
            self.token(0).increment(prompt);
            self.token(1).increment(completion);
        }
        // Prompt-cache kinds with no tokens are not recorded, so a provider without
        // prompt caching adds no series.
        for (kind, n) in [(2, r.cached_input), (3, r.cache_creation)] {
            if n > 0 {
                self.token(kind).increment(n);
            }
        }
        self.operation
            .get_or_init(|| histogram!(GEN_AI_OPERATION_DURATION, &self.gen_ai_labels(None)))
            .record(r.duration.as_secs_f64());
        if let Some((input, output)) = r.tokens {
            for (i, n) in [input, output].into_iter().enumerate() {
                self.token_usage[i]
                    .get_or_init(|| {
                        let labels = self.gen_ai_labels(Some(GEN_AI_TOKEN_TYPES[i]));
                        histogram!(GEN_AI_TOKEN_USAGE, &labels)
                    })
                    .record(n as f64);
            }
        }
        if let Some(first) = r.first_token {
            self.first_token
                .get_or_init(|| histogram!(GEN_AI_TIME_TO_FIRST_TOKEN, &self.gen_ai_labels(None)))
                .record(first.as_secs_f64());
            if let Some((_, output)) = r.tokens.filter(|(_, o)| *o > 1) {
                let after = r.duration.saturating_sub(first).as_secs_f64();
                self.per_output_token
                    .get_or_init(|| {
                        histogram!(GEN_AI_TIME_PER_OUTPUT_TOKEN, &self.gen_ai_labels(None))
                    })
                    .record(after / (output - 1) as f64);
            }
        }
        if let Some(usd) = r.cost_usd {
            self.cost
                .get_or_init(|| gauge!(LLM_COST, &self.labels()))
                .increment(usd);
        }
    }
}
