//! `[upstreams.llm]`: which LLM provider an upstream is and where the key the gateway
//! injects comes from. The provider API family is configuration, so it lives here; the
//! `llm` module, which injects keys and reads usage, re-exports both types.

use super::duration_serde as duration;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Supported provider API families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// OpenAI and OpenAI-compatible APIs (`Authorization: Bearer`).
    Openai,
    /// Anthropic messages (`x-api-key`, `anthropic-version`).
    Anthropic,
}

impl Provider {
    /// Label used in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Openai => "openai",
            Provider::Anthropic => "anthropic",
        }
    }
}

/// `[upstreams.llm]`: the provider behind an upstream and the key the gateway injects.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LlmUpstreamConfig {
    /// API family.
    pub provider: Provider,
    /// Environment variable holding the provider key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// File holding the provider key.
    #[serde(default)]
    pub api_key_file: Option<std::path::PathBuf>,
    /// Environment variables holding a pool of provider keys, rotated round robin.
    #[serde(default)]
    pub api_keys_env: Option<Vec<String>>,
    /// File holding a pool of provider keys, one per line (`#` starts a comment);
    /// re-read without a restart when it changes.
    #[serde(default)]
    pub api_keys_file: Option<std::path::PathBuf>,
    /// How long a key that got 429 without `Retry-After` is left out of the rotation.
    #[serde(
        default = "default_key_cooldown",
        deserialize_with = "duration::deserialize",
        serialize_with = "duration::serialize"
    )]
    pub key_cooldown: Duration,
    /// How long a key that got 401 is left out: longer, because a revoked or mistyped
    /// key does not heal by itself (fix the key file and the fixed key is used at once).
    #[serde(
        default = "default_key_auth_cooldown",
        deserialize_with = "duration::deserialize",
        serialize_with = "duration::serialize"
    )]
    pub key_auth_cooldown: Duration,
    /// The longest cooldown a provider's `Retry-After` may ask for.
    #[serde(
        default = "default_key_cooldown_max",
        deserialize_with = "duration::deserialize",
        serialize_with = "duration::serialize"
    )]
    pub key_cooldown_max: Duration,
}

impl LlmUpstreamConfig {
    /// The key sources that are set, by their setting names; a valid config has one.
    pub fn key_sources(&self) -> Vec<&'static str> {
        [
            ("api_key_env", self.api_key_env.is_some()),
            ("api_key_file", self.api_key_file.is_some()),
            ("api_keys_env", self.api_keys_env.is_some()),
            ("api_keys_file", self.api_keys_file.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }
}

fn default_key_cooldown() -> Duration {
    Duration::from_secs(60)
}

fn default_key_auth_cooldown() -> Duration {
    Duration::from_secs(600)
}

fn default_key_cooldown_max() -> Duration {
    Duration::from_secs(900)
}

/// `[routes.llm]`: what an LLM route offers its clients: the models `GET /v1/models`
/// lists, which provider model a requested name means, and the OpenAI-compatible
/// front door's defaults.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteLlmConfig {
    /// Models this route allows, listed by `GET /v1/models` (with the `model_map`
    /// names). Empty: the listing has only the `model_map` names.
    #[serde(default)]
    pub models: Vec<String>,
    /// Client model name → `provider/model` (or a bare model name), or a list of them:
    /// the model name sent to the provider, and with a list, the providers in the order
    /// they are tried (cross-family fallback). The answer names the client's model.
    #[serde(default)]
    pub model_map: std::collections::BTreeMap<String, ModelTargets>,
    /// `max_tokens` sent to Anthropic when an OpenAI-shaped request names none
    /// (Anthropic requires it).
    #[serde(default = "default_max_tokens")]
    pub default_max_tokens: u64,
    /// `[routes.llm.cache]`: answers of this route are kept and served again for the
    /// same request. Absent: nothing is cached.
    #[serde(default)]
    pub cache: Option<RouteCacheConfig>,
}

/// A `model_map` value: one `provider/model` name or several, in the order tried.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ModelTargets {
    /// One name.
    One(String),
    /// Several names, the first preferred.
    Many(Vec<String>),
}

/// `openai/gpt-4o` → (`Openai`, `gpt-4o`); a name without a known family prefix is
/// (`None`, the name): `meta-llama/Llama-3` stays one name.
pub fn split_family(name: &str) -> (Option<Provider>, &str) {
    for provider in [Provider::Openai, Provider::Anthropic] {
        if let Some(model) = name
            .strip_prefix(provider.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
        {
            return (Some(provider), model);
        }
    }
    (None, name)
}

impl ModelTargets {
    /// The names, in order.
    pub fn names(&self) -> &[String] {
        match self {
            ModelTargets::One(name) => std::slice::from_ref(name),
            ModelTargets::Many(names) => names,
        }
    }
}

impl Default for RouteLlmConfig {
    fn default() -> RouteLlmConfig {
        RouteLlmConfig {
            models: Vec::new(),
            model_map: std::collections::BTreeMap::new(),
            default_max_tokens: default_max_tokens(),
            cache: None,
        }
    }
}

fn default_max_tokens() -> u64 {
    4096
}

/// Who may be served an answer another request stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheScope {
    /// Only requests of the same app (or identity) share answers.
    #[default]
    App,
    /// Every client of the route shares answers.
    Global,
}

/// `[routes.llm.cache]`: the exact-match response cache of one route.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteCacheConfig {
    /// How long a stored answer is served.
    #[serde(
        default = "default_cache_ttl",
        deserialize_with = "duration::deserialize",
        serialize_with = "duration::serialize"
    )]
    pub ttl: Duration,
    /// `app` (the default) or `global`.
    #[serde(default)]
    pub scope: CacheScope,
    /// Whether answers to requests that carry tool results are cached too (they are
    /// not by default: a tool's result is live data).
    #[serde(default)]
    pub tool_results: bool,
}

fn default_cache_ttl() -> Duration {
    Duration::from_secs(300)
}

/// `[llm.cache]`: the process-wide store of every route's cached answers.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// The most bytes of answers kept; the least recently used go first.
    #[serde(default = "default_cache_bytes")]
    pub max_bytes: u64,
    /// The largest one answer stored (a larger one is passed on, not kept).
    #[serde(default = "default_cache_entry_bytes")]
    pub max_entry_bytes: u64,
    /// `memory` (this process only) or `redis`: the fleet's Redis (`[cluster]`) as a
    /// second tier behind memory, with the same keys and scoping.
    #[serde(default)]
    pub backend: CacheBackend,
}

/// Where cached LLM answers are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheBackend {
    /// In this process's memory only.
    #[default]
    Memory,
    /// In memory, and in the fleet's Redis for every gateway sharing it.
    Redis,
}

impl Default for CacheConfig {
    fn default() -> CacheConfig {
        CacheConfig {
            max_bytes: default_cache_bytes(),
            max_entry_bytes: default_cache_entry_bytes(),
            backend: CacheBackend::Memory,
        }
    }
}

fn default_cache_bytes() -> u64 {
    64 * 1024 * 1024
}

fn default_cache_entry_bytes() -> u64 {
    1024 * 1024
}

/// The price of one model in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Input (prompt) tokens not read from or written to a prompt cache.
    pub input: f64,
    /// Output (completion) tokens.
    pub output: f64,
    /// Input tokens read from the provider's prompt cache; `input` when absent.
    #[serde(default)]
    pub cached_input: Option<f64>,
    /// Input tokens written to the provider's prompt cache (Anthropic); `input` when absent.
    #[serde(default)]
    pub cache_write: Option<f64>,
}

/// `[llm]`: process-wide LLM settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LlmConfig {
    /// Prices by model name, over the shipped table: an entry here replaces the shipped
    /// one of the same name. A model matches its own name, or else the longest name that
    /// is a prefix of it (`claude-sonnet-4-5` prices `claude-sonnet-4-5-20250929`).
    #[serde(default)]
    pub prices: std::collections::BTreeMap<String, Price>,
    /// The response cache's store (the routes decide what is cached).
    #[serde(default)]
    pub cache: CacheConfig,
}
