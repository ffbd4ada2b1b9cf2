//! LLM traffic: provider upstreams with credential injection, token usage from JSON and
//! SSE responses (metrics and data collection), and shared per-app usage windows that
//! the `llm_policy` built-in enforces budgets against.

mod budget;
pub mod cache;
pub mod keys;
mod lenient;
pub mod policy;
pub mod price;
pub mod sse;
pub mod strip;
pub mod targets;
pub mod translate;
pub mod usage;

pub use crate::config::{LlmUpstreamConfig, Provider};
pub use budget::{Budgets, record_usage};
pub use keys::{KeyError, KeyPool};
pub use usage::TokenUsage;

use http::{HeaderMap, HeaderName, HeaderValue, header};

/// A provider with its loaded key pool (one key is a pool of one).
#[derive(Debug, Clone)]
pub struct ProviderAuth {
    /// API family: decides the key header and how usage is parsed.
    pub provider: Provider,
    pool: std::sync::Arc<KeyPool>,
}

impl ProviderAuth {
    /// Loads the keys from the environment or a file; the error names the setting
    /// (never a key). An `api_keys_file` is then watched for changes.
    pub fn load(upstream: &str, config: &LlmUpstreamConfig) -> Result<ProviderAuth, String> {
        let (setting, raw) = load_keys(config).map_err(|e| format!("llm.{e}"))?;
        let cooldowns = keys::Cooldowns {
            rate_limited: config.key_cooldown,
            unauthorized: config.key_auth_cooldown,
            max: config.key_cooldown_max,
        };
        let pool = KeyPool::new(upstream, config.provider, cooldowns, setting, raw)
            .map_err(|e| format!("llm.{e}"))?;
        let pool = std::sync::Arc::new(pool);
        keys::watch(&pool, config.api_keys_file.clone());
        Ok(ProviderAuth {
            provider: config.provider,
            pool,
        })
    }

    /// How many keys the pool holds.
    pub fn key_count(&self) -> usize {
        self.pool.len()
    }

    /// Records how the provider answered a request sent with `key`: a 429 or 401 cools
    /// that key down (for `retry_after`, capped, when the provider sent one).
    pub fn report(
        &self,
        key: KeyUse,
        status: http::StatusCode,
        retry_after: Option<std::time::Duration>,
    ) {
        self.pool.report(key.0, status, retry_after);
    }

    /// Replaces the client's credentials with the next provider key and says which key
    /// of the pool it was, for [`ProviderAuth::report`].
    pub fn inject(&self, headers: &mut HeaderMap) -> KeyUse {
        let (value, used) = self.pool.select();
        self.inject_one(headers, value);
        KeyUse(used)
    }

    fn inject_one(&self, headers: &mut HeaderMap, key: HeaderValue) {
        let x_api_key = HeaderName::from_static("x-api-key");
        // The gateway reads usage from the answer (and the front door, the cache and the
        // usage-chunk strip rewrite or keep it), so the answer must come uncompressed.
        headers.remove(header::ACCEPT_ENCODING);
        headers.remove(header::AUTHORIZATION);
        headers.remove(&x_api_key);
        match self.provider {
            Provider::Openai => {
                headers.insert(header::AUTHORIZATION, key);
            }
            Provider::Anthropic => {
                headers.insert(x_api_key, key);
                let version = HeaderName::from_static("anthropic-version");
                if !headers.contains_key(&version) {
                    headers.insert(version, HeaderValue::from_static("2023-06-01"));
                }
            }
        }
    }
}

/// The keys of `config` and the setting they came from.
fn load_keys(config: &LlmUpstreamConfig) -> Result<(&'static str, Vec<String>), KeyError> {
    let var = |setting: &'static str, var: &String| {
        std::env::var(var).map_err(|_| KeyError::MissingVar {
            setting,
            var: var.clone(),
        })
    };
    if let Some(v) = &config.api_key_env {
        return Ok(("api_key_env", vec![var("api_key_env", v)?]));
    }
    if let Some(path) = &config.api_key_file {
        let text = std::fs::read_to_string(path).map_err(|e| KeyError::File {
            setting: "api_key_file",
            path: path.clone(),
            reason: e.to_string(),
        })?;
        return Ok(("api_key_file", vec![text.trim().to_string()]));
    }
    if let Some(vars) = &config.api_keys_env {
        let raw = vars
            .iter()
            .map(|v| var("api_keys_env", v))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(("api_keys_env", raw));
    }
    if let Some(path) = &config.api_keys_file {
        return Ok(("api_keys_file", keys::read_key_file("api_keys_file", path)?));
    }
    Err(KeyError::Empty(
        "set exactly one of api_key_env, api_key_file, api_keys_env and api_keys_file",
    ))
}

/// Which key of an upstream's pool a request was sent with: an opaque tag of the key's
/// index and the pool's generation, so a report that arrives after `api_keys_file` was
/// reloaded cools nothing rather than another key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyUse(pub usize);

/// The app of a request's hook state: the one `llm_policy` recorded, else the
/// authenticated app (or identity); `None` for an unauthenticated request.
pub fn app_in(context: &crate::plugin::RequestContext) -> Option<&str> {
    context
        .values
        .get("llm.app")
        .map(String::as_str)
        .or_else(|| {
            context.auth.as_ref().map(|a| {
                if a.app_id.is_empty() {
                    a.identity.as_str()
                } else {
                    a.app_id.as_str()
                }
            })
        })
}

/// Settles a finished exchange: its usage (read on the way, else parsed from the bytes
/// kept), its price, and the accounting.
pub fn settle(provider: Provider, exchange: &mut crate::plugin::CompletedExchange) {
    if exchange.usage.is_none() && !exchange.accumulated.is_empty() {
        exchange.usage = usage::parse(&exchange.accumulated);
    }
    price(exchange);
    account(provider, exchange);
}

/// Prices the usage of `exchange` by the current price table (`cost_usd`). An answer
/// from the response cache cost the provider nothing: zero.
pub fn price(exchange: &mut crate::plugin::CompletedExchange) {
    if exchange.cache_hit {
        exchange.cost_usd = Some(0.0);
        return;
    }
    exchange.cost_usd = exchange
        .usage
        .as_ref()
        .and_then(|u| price::current().cost(u));
}

/// Records the usage of a completed LLM exchange: metrics by provider, model and app
/// (tokens by kind and cost), and the shared budget windows. An answer served from the
/// response cache spent no provider tokens: its tokens are counted apart
/// (`microgateway_llm_cache_hit_tokens_total`), never against a budget.
pub fn account(provider: Provider, exchange: &crate::plugin::CompletedExchange) {
    let app = app_in(&exchange.context).unwrap_or("anonymous");
    let model = exchange
        .usage
        .as_ref()
        .map(|u| u.model.as_str())
        .filter(|m| !m.is_empty())
        .or_else(|| exchange.context.values.get("llm.model").map(String::as_str))
        .unwrap_or("unknown");
    let usage = exchange.usage.as_ref();
    crate::metrics::llm_settled(&crate::metrics::LlmRecord {
        provider: provider.as_str(),
        model,
        app,
        status: exchange.status.as_str(),
        cache_hit: exchange.cache_hit,
        tokens: usage.map(|u| (u.prompt_tokens, u.completion_tokens)),
        cached_input: usage.map_or(0, |u| u.cached_input_tokens),
        cache_creation: usage.map_or(0, |u| u.cache_creation_tokens),
        cost_usd: exchange.cost_usd.filter(|_| !exchange.cache_hit),
        duration: exchange.duration,
        first_token: exchange.first_byte.filter(|_| exchange.streamed),
    });
    if let (Some(u), false) = (usage, exchange.cache_hit) {
        record_usage(app, u.total(), exchange.cost_usd.unwrap_or_default());
    }
}
