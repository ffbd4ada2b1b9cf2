//! Configuration: typed settings, loading (embedded default, file, environment) and validation.
//!
//! Layers are merged in this order, later winning: the default compiled into the
//! binary from `config/microgateway.toml`, the file given with `--config`, then
//! environment variables `MICROGATEWAY_<SECTION>__<KEY>`. The merged document is
//! deserialised into [`Config`] (unknown keys are errors, so typos surface) and then
//! checked by [`validate`](validate::validate), whose errors name the offending key:
//! first every numeric and duration key against its documented range ([`ranges`]), then
//! cross-references and files. A TOML syntax error starts with `FILE:LINE:COLUMN`.

mod allowlist;
mod balance;
mod cluster;
pub mod duration_serde;
mod llm;
mod plugins;
pub mod ranges;
mod resolved;
mod retry;
mod sandbox;
mod types;
mod upgrade;
mod validate;

pub use ranges::{MAX_HEADER_BYTES, MAX_HEADER_COUNT, MAX_WORKERS};

pub use allowlist::Allowlist;
pub use balance::{Balance, HashOn, HealthCheckConfig};
pub use cluster::{ClusterConfig, OnUnavailable, redacted};
pub use llm::{
    CacheBackend, CacheConfig, CacheScope, LlmConfig, LlmUpstreamConfig, ModelTargets, Price,
    Provider, RouteCacheConfig, RouteLlmConfig, split_family,
};
pub use plugins::{
    AutoMtls, GrpcTlsConfig, OciConfig, OnError, PipelineConfig, PluginConfig, PluginContract,
    PluginRuntimeConfig,
};
pub use resolved::Resolved;
pub use retry::{RetryConfig, RetryOn};
pub use sandbox::{DEFAULT_ENV_ALLOWLIST, SandboxConfig, env_refusal};
pub use upgrade::UpgradedConfig;

pub use types::{
    AdminConfig, Config, LogConfig, LogFormat, RouteConfig, Secret, ServerConfig, TlsConfig,
    UpstreamConfig, UpstreamProtocol,
};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use std::path::{Path, PathBuf};

/// The default configuration compiled into the binary.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../config/microgateway.toml");

/// Prefix of environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "MICROGATEWAY_";

/// Everything that can go wrong while loading or validating configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read config file {path}: {error}")]
    Read {
        /// Path given by the operator.
        path: PathBuf,
        /// Underlying I/O error, shown in the message (and so not also its `source`).
        error: std::io::Error,
    },
    /// Parsing or type errors reported by figment; the message names the key and source.
    #[error("invalid configuration: {0}")]
    Parse(String),
    /// A semantic check failed; `key` is the dotted path of the offending setting.
    #[error("invalid configuration: {key}: {message}")]
    Invalid {
        /// Dotted key such as `routes[1].upstream`.
        key: String,
        /// Human-readable reason.
        message: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl Config {
    /// Loads the embedded default, then `file` if given, then `MICROGATEWAY_*` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_resolved(file).map(|(config, _)| config)
    }

    /// Like [`Config::load`], also returning what validation parsed ([`Resolved`]).
    pub fn load_resolved(file: Option<&Path>) -> Result<(Config, Resolved), ConfigError> {
        let mut figment = Figment::from(Toml::string(EMBEDDED_DEFAULT));
        if let Some(path) = file {
            // Reading first turns a missing or unreadable file into a clear error of its own.
            std::fs::metadata(path).map_err(|error| ConfigError::Read {
                path: path.to_path_buf(),
                error,
            })?;
            // Arrays such as `routes` in the file replace the embedded ones as a whole.
            figment = figment.merge(Toml::file_exact(path));
        }
        // MICROGATEWAY_CONFIG names the file (a CLI setting), and the plugin variables
        // belong to plugin processes; neither is a configuration key.
        figment = figment.merge(
            Env::prefixed(ENV_PREFIX)
                .ignore(&["CONFIG", "PLUGIN", "PLUGIN_LISTEN", "ADMIN_TOKEN"])
                .split("__"),
        );
        let mut config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Parse(describe_figment_error(e)))?;
        config.apply_plugin_env(
            std::env::var("PLUGIN_COMMAND_ALLOWLIST").ok().as_deref(),
            std::env::var("ALLOW_INTERNAL_NETWORK_ACCESS")
                .ok()
                .as_deref(),
            std::env::var("PLUGIN_BLOCK_INTERNAL_URLS").ok().as_deref(),
        )?;
        config.admin.token_env = std::env::var("MICROGATEWAY_ADMIN_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty())
            .map(Secret);
        let resolved = validate::validate(&config)?;
        Ok((config, resolved))
    }

    /// Applies the operator variables `PLUGIN_COMMAND_ALLOWLIST` (comma-separated entries,
    /// added to `plugin_runtime.command_allowlist`), `ALLOW_INTERNAL_NETWORK_ACCESS` and
    /// `PLUGIN_BLOCK_INTERNAL_URLS`. Blocking wins over allowing, whichever layer set
    /// either: with `PLUGIN_BLOCK_INTERNAL_URLS=true` (or
    /// `plugin_runtime.block_internal_urls`) internal addresses are refused, allowlisted
    /// or not.
    pub fn apply_plugin_env(
        &mut self,
        allowlist: Option<&str>,
        allow_internal: Option<&str>,
        block_internal: Option<&str>,
    ) -> Result<(), ConfigError> {
        if let Some(list) = allowlist {
            let entries = list.split(',').map(str::trim).filter(|e| !e.is_empty());
            self.plugin_runtime
                .command_allowlist
                .extend(entries.map(str::to_string));
        }
        let runtime = &mut self.plugin_runtime;
        if let Some(flag) = allow_internal {
            runtime.allow_internal_network_access =
                env_bool("ALLOW_INTERNAL_NETWORK_ACCESS", flag)?;
        }
        if let Some(flag) = block_internal {
            runtime.block_internal_urls = env_bool("PLUGIN_BLOCK_INTERNAL_URLS", flag)?;
        }
        // Both are kept as set, so that `check` can say where each came from; the plugin
        // command policy applies the block first (`Policy::block_internal`).
        Ok(())
    }

    /// Runs the semantic checks `load` runs and returns what they parsed (for the
    /// proxy, preflight and `check`, and for candidate configurations).
    pub fn validate(&self) -> Result<Resolved, ConfigError> {
        validate::validate(self)
    }

    /// Parses a TOML document on top of the embedded default without reading the environment.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Self::finish(Figment::from(Toml::string(EMBEDDED_DEFAULT)).merge(Toml::string(text)))
    }

    fn finish(figment: Figment) -> Result<Config, ConfigError> {
        let config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Parse(describe_figment_error(e)))?;
        validate::validate(&config)?;
        Ok(config)
    }
}

/// An operator boolean variable: `1|true|yes|on` or `0|false|no|off|` (empty).
fn env_bool(name: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        other => Err(ConfigError::invalid(
            name,
            format!("{other:?} is not a boolean (true/false)"),
        )),
    }
}

/// Joins every error figment collected into one message that names each key.
fn describe_figment_error(err: figment::Error) -> String {
    err.into_iter()
        .map(|e| {
            if let Some(syntax) = describe_syntax_error(&e) {
                return syntax;
            }
            let key = if e.path.is_empty() {
                String::from("<root>")
            } else {
                e.path.join(".")
            };
            let origin = e
                .metadata
                .as_ref()
                .map(|m| format!(" (from {})", m.name))
                .unwrap_or_default();
            format!("{key}: {}{origin}", e.kind)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A TOML syntax error as one line `FILE:LINE:COLUMN: TOML parse error` followed by the
/// toml crate's caret diagram, whose own first line (`TOML parse error at line L,
/// column C`) it replaces; `None` for every other error.
fn describe_syntax_error(e: &figment::Error) -> Option<String> {
    let figment::error::Kind::Message(message) = &e.kind else {
        return None;
    };
    let (first, diagram) = message.split_once('\n').unwrap_or((message.as_str(), ""));
    let (line, column) = first
        .strip_prefix("TOML parse error at line ")?
        .split_once(", column ")?;
    let line: u64 = line.trim().parse().ok()?;
    let column: u64 = column.trim().parse().ok()?;
    let origin = match &e.metadata {
        Some(m) => match &m.source {
            Some(figment::Source::File(path)) => path.display().to_string(),
            _ => m.name.to_string(),
        },
        None => String::from("<configuration>"),
    };
    Some(format!(
        "{origin}:{line}:{column}: TOML parse error\n{}",
        diagram.trim_end()
    ))
}
