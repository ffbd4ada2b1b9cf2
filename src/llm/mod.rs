//! LLM traffic: provider upstreams with credential injection, token usage from JSON and
//! SSE responses (metrics and data collection), and shared per-app usage windows that
//! the `llm_policy` built-in enforces budgets against.

mod budget;
pub mod policy;
pub mod usage;

pub use crate::config::{LlmUpstreamConfig, Provider};
pub use budget::{Budgets, record_usage};
pub use usage::TokenUsage;

use http::{HeaderMap, HeaderName, HeaderValue, header};

/// A provider with its loaded key.
#[derive(Debug, Clone)]
pub struct ProviderAuth {
    /// API family: decides the key header and how usage is parsed.
    pub provider: Provider,
    key: HeaderValue,
}

impl ProviderAuth {
    /// Loads the key from the environment or a file; the error names the setting.
    pub fn load(config: &LlmUpstreamConfig) -> Result<ProviderAuth, String> {
        let raw = match (&config.api_key_env, &config.api_key_file) {
            (Some(var), None) => std::env::var(var)
                .map_err(|_| format!("llm.api_key_env: variable {var} is not set"))?,
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| format!("llm.api_key_file {}: {e}", path.display()))?,
            _ => return Err("llm: set exactly one of api_key_env and api_key_file".into()),
        };
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("llm: the provider key is empty".into());
        }
        let value = match config.provider {
            Provider::Openai => format!("Bearer {raw}"),
            Provider::Anthropic => raw.to_string(),
        };
        let mut key = HeaderValue::from_str(&value)
            .map_err(|_| "llm: the provider key contains invalid characters".to_string())?;
        key.set_sensitive(true);
        Ok(ProviderAuth {
            provider: config.provider,
            key,
        })
    }

    /// Records how the provider answered a request sent with `key`: a 429 or 401 cools
    /// that key down (for `retry_after` when the provider sent one).
    pub fn report(
        &self,
        _key: KeyUse,
        _status: http::StatusCode,
        _retry_after: Option<std::time::Duration>,
    ) {
    }

    /// Replaces the client's credentials with the provider key and says which key of
    /// the pool it was, for [`ProviderAuth::report`].
    pub fn inject(&self, headers: &mut HeaderMap) -> KeyUse {
        self.inject_one(headers);
        KeyUse(0)
    }

    fn inject_one(&self, headers: &mut HeaderMap) {
        let x_api_key = HeaderName::from_static("x-api-key");
        headers.remove(header::AUTHORIZATION);
        headers.remove(&x_api_key);
        match self.provider {
            Provider::Openai => {
                headers.insert(header::AUTHORIZATION, self.key.clone());
            }
            Provider::Anthropic => {
                headers.insert(x_api_key, self.key.clone());
                let version = HeaderName::from_static("anthropic-version");
                if !headers.contains_key(&version) {
                    headers.insert(version, HeaderValue::from_static("2023-06-01"));
                }
            }
        }
    }
}

/// Which key of an upstream's pool a request was sent with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyUse(pub usize);

/// Records the usage of a completed LLM exchange: metrics by provider, model and app,
/// and the shared budget windows.
pub fn account(provider: Provider, exchange: &crate::plugin::CompletedExchange) {
    let app = exchange
        .context
        .values
        .get("llm.app")
        .cloned()
        .or_else(|| {
            exchange.context.auth.as_ref().map(|a| {
                if a.app_id.is_empty() {
                    a.identity.clone()
                } else {
                    a.app_id.clone()
                }
            })
        })
        .unwrap_or_else(|| "anonymous".to_string());
    let model = exchange
        .usage
        .as_ref()
        .map(|u| u.model.clone())
        .filter(|m| !m.is_empty())
        .or_else(|| exchange.context.values.get("llm.model").cloned())
        .unwrap_or_else(|| "unknown".to_string());
    crate::metrics::llm_exchange(
        provider.as_str(),
        &model,
        &app,
        exchange.status.as_str(),
        exchange
            .usage
            .as_ref()
            .map(|u| (u.prompt_tokens, u.completion_tokens)),
    );
    if let Some(u) = &exchange.usage {
        record_usage(&app, u.total());
    }
}
