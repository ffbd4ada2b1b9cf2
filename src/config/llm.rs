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
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteLlmConfig {
    /// Models this route allows, listed by `GET /v1/models` (with the `model_map`
    /// names). Empty: the listing has only the `model_map` names.
    #[serde(default)]
    pub models: Vec<String>,
    /// Client model name → `provider/model` (or a bare model name): the model name sent
    /// to the provider; the answer names the client's.
    #[serde(default)]
    pub model_map: std::collections::BTreeMap<String, String>,
    /// `max_tokens` sent to Anthropic when an OpenAI-shaped request names none
    /// (Anthropic requires it).
    #[serde(default = "default_max_tokens")]
    pub default_max_tokens: u32,
}

fn default_max_tokens() -> u32 {
    4096
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
}
