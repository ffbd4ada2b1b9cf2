//! `[upstreams.llm]`: which LLM provider an upstream is and where the key the gateway
//! injects comes from. The provider API family is configuration, so it lives here; the
//! `llm` module, which injects keys and reads usage, re-exports both types.

use serde::{Deserialize, Serialize};

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
}
