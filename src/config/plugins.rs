//! Configuration of plugin instances (`[[plugins]]`) and pipeline settings (`[pipeline]`).

use super::duration_serde as duration;
use crate::hook::HookType;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What happens when a plugin call fails or times out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Reject the request (503 `plugin_unavailable`).
    FailClosed,
    /// Skip the plugin and go on; counted in `microgateway_plugin_fail_open_total`.
    FailOpen,
}

/// Which plugin contract an out-of-process plugin speaks (`contract`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginContract {
    /// Detect it after connecting: microgateway's when the plugin answers `GetManifest`,
    /// Tyk AI Studio's when it answers `plugin.PluginService/Ping`.
    #[default]
    Auto,
    /// `microgateway.plugin.v1.Plugin` (`proto/microgateway`).
    Microgateway,
    /// Tyk AI Studio's `plugin.PluginService` (`proto/tyk`).
    Tyk,
}

impl PluginContract {
    /// Name used in configuration, logs and the health output.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginContract::Auto => "auto",
            PluginContract::Microgateway => "microgateway",
            PluginContract::Tyk => "tyk",
        }
    }
}

/// One plugin instance attached to one stage.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Unique instance name, used in logs, metrics and auth results.
    pub name: String,
    /// Where the plugin comes from: `builtin://NAME` (in-process); remote schemes follow.
    pub command: String,
    /// Stage: `pre_auth`, `auth`, `post_auth`, `on_response` or `data_collection`.
    pub hook_type: HookType,
    /// Position within the stage; lower runs first, ties keep file order.
    #[serde(default)]
    pub order: i32,
    /// Route names the instance applies to; empty means every route.
    #[serde(default)]
    pub routes: Vec<String>,
    /// Time limit of one asynchronous hook call.
    #[serde(default = "default_plugin_timeout", with = "duration")]
    pub timeout: Duration,
    /// Failure policy; `fail_closed` for auth and `fail_open` for other stages when absent.
    #[serde(default)]
    pub on_error: Option<OnError>,
    /// Disabled instances are validated but not loaded.
    #[serde(default = "default_true")]
    pub is_active: bool,
    /// Plugin-specific settings, handed to the plugin as JSON.
    #[serde(default)]
    pub config: serde_json::Value,
    /// Extra environment variables for a `file://` plugin process.
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    /// TLS settings for `grpcs://` plugins.
    #[serde(default)]
    pub tls: Option<GrpcTlsConfig>,
    /// OCI reference (`registry/repo:tag` or `@sha256:…`); same as `command = "oci://…"`.
    #[serde(default)]
    pub oci_reference: Option<String>,
    /// Whether the gateway needs this plugin: a required plugin that cannot load stops a
    /// start or a reload; any other is reported `failed`, retried in the background, and
    /// its hooks fail by `on_error` meanwhile. Default: true for `fail_closed`, false for
    /// `fail_open`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    /// The contract of a `file://`, `grpc://` or `oci://` plugin; `auto` detects it.
    #[serde(default)]
    pub contract: PluginContract,
}

impl PluginConfig {
    /// The command with `oci_reference` folded in (`oci://REFERENCE`).
    pub fn effective_command(&self) -> String {
        match &self.oci_reference {
            Some(r) if !r.is_empty() => format!("oci://{}", r.trim_start_matches("oci://")),
            _ => self.command.clone(),
        }
    }
}

/// Where `oci://` plugins come from and how they are verified and cached (`[oci]`);
/// `OCI_PLUGINS_*` environment variables override and extend it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OciConfig {
    /// Cache directory (`OCI_PLUGINS_CACHE_DIR`).
    pub cache_dir: std::path::PathBuf,
    /// Registries reached over plain HTTP (`OCI_PLUGINS_INSECURE_REGISTRIES`).
    pub insecure_registries: Vec<String>,
    /// When non-empty, the only registries allowed (`OCI_PLUGINS_ALLOWED_REGISTRIES`).
    pub allowed_registries: Vec<String>,
    /// Refuse plugins without a valid cosign signature (`OCI_PLUGINS_REQUIRE_SIGNATURE`).
    pub require_signature: bool,
    /// Trusted cosign public keys, PEM text or file paths (plus `OCI_PLUGINS_PUBLIC_KEY_<N>`).
    pub public_keys: Vec<String>,
    /// Versions kept per repository when the cache is collected.
    pub keep_versions: usize,
    /// Size cap of all cached plugin binaries.
    pub max_cache_bytes: u64,
    /// Largest plugin binary accepted (checked against the descriptor before download).
    pub max_plugin_bytes: u64,
    /// Time allowed to re-resolve a tag before the cached digest is used.
    #[serde(with = "super::duration_serde")]
    pub resolve_timeout: std::time::Duration,
}

impl Default for OciConfig {
    fn default() -> Self {
        OciConfig {
            cache_dir: "/var/lib/microgateway/plugins".into(),
            insecure_registries: Vec::new(),
            allowed_registries: Vec::new(),
            require_signature: false,
            public_keys: Vec::new(),
            keep_versions: 3,
            max_cache_bytes: 1 << 30,
            max_plugin_bytes: 256 << 20,
            resolve_timeout: std::time::Duration::from_secs(5),
        }
    }
}

/// TLS (and mTLS) settings for a `grpcs://` plugin server.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcTlsConfig {
    /// CA bundle (PEM) to trust instead of the system roots.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// Client certificate (PEM) for mTLS.
    #[serde(default)]
    pub cert: Option<std::path::PathBuf>,
    /// Client key (PEM) for mTLS.
    #[serde(default)]
    pub key: Option<std::path::PathBuf>,
    /// Name to verify instead of the host in the URL.
    #[serde(default)]
    pub server_name: Option<String>,
}

/// How out-of-process plugins are started, supervised and restricted (`[plugin_runtime]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginRuntimeConfig {
    /// Allowed plugin commands: absolute path globs (`/opt/plugins/*`), `grpc://CIDR`,
    /// `grpc://HOSTGLOB[:PORT]`. Extended by `PLUGIN_COMMAND_ALLOWLIST` (comma-separated).
    pub command_allowlist: Vec<String>,
    /// Allow `grpc://` plugins on internal addresses; `ALLOW_INTERNAL_NETWORK_ACCESS=true` sets it.
    pub allow_internal_network_access: bool,
    /// Refuse internal addresses outright, even allowlisted ones and even with
    /// `allow_internal_network_access` (the stricter setting wins);
    /// `PLUGIN_BLOCK_INTERNAL_URLS=true` sets it.
    pub block_internal_urls: bool,
    /// Environment variables passed from the gateway to `file://` plugins.
    pub env_allowlist: Vec<String>,
    /// Time for a plugin to hand-shake (file://) or connect (grpc://) and initialise.
    #[serde(with = "super::duration_serde")]
    pub start_timeout: std::time::Duration,
    /// Interval of health pings to running plugins.
    #[serde(with = "super::duration_serde")]
    pub ping_interval: std::time::Duration,
    /// Time a plugin gets to exit after `Shutdown` before its process group is killed.
    #[serde(with = "super::duration_serde")]
    pub shutdown_grace: std::time::Duration,
    /// Longest wait between restarts of a crashed plugin (backoff doubles from 200 ms).
    #[serde(with = "super::duration_serde")]
    pub max_restart_backoff: std::time::Duration,
    /// Variable names a plugin's `env` may set although the deny list names them
    /// (loader and interpreter variables such as `LD_PRELOAD` or `PYTHONPATH`).
    pub env_allow_names: Vec<String>,
    /// Let the admin API create `file://` plugins outside the standard plugin
    /// directories and the allowlisted paths. A configuration file is trusted; the
    /// network is not, so this is off by default.
    pub allow_api_file_paths: bool,
    /// What a `file://` or `oci://` plugin process may do.
    pub sandbox: super::SandboxConfig,
    /// go-plugin AutoMTLS between the gateway and its `file://` plugins.
    pub auto_mtls: AutoMtls,
}

/// When the gateway speaks mutual TLS with a `file://` plugin (`plugin_runtime.auto_mtls`),
/// the way HashiCorp go-plugin's host does: the gateway offers a fresh client certificate
/// in `PLUGIN_CLIENT_CERT`, and a plugin that accepts answers with its own certificate in
/// the handshake line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoMtls {
    /// Offer a certificate to every plugin, use mTLS whenever the plugin answers with
    /// one, and refuse a TCP handshake without one (a unix socket in the plugin's
    /// private directory may stay plain).
    #[default]
    Tcp,
    /// Like `tcp`, but every handshake must carry a certificate.
    Always,
    /// Offer no certificate and speak plain gRPC; a handshake with a certificate is refused.
    Off,
}

impl AutoMtls {
    /// The setting as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            AutoMtls::Tcp => "tcp",
            AutoMtls::Always => "always",
            AutoMtls::Off => "off",
        }
    }
}

impl Default for PluginRuntimeConfig {
    fn default() -> Self {
        PluginRuntimeConfig {
            command_allowlist: Vec::new(),
            allow_internal_network_access: false,
            block_internal_urls: false,
            env_allowlist: super::DEFAULT_ENV_ALLOWLIST
                .iter()
                .map(|s| s.to_string())
                .collect(),
            start_timeout: std::time::Duration::from_secs(10),
            ping_interval: std::time::Duration::from_secs(10),
            shutdown_grace: std::time::Duration::from_secs(2),
            max_restart_backoff: std::time::Duration::from_secs(30),
            env_allow_names: Vec::new(),
            allow_api_file_paths: false,
            sandbox: super::SandboxConfig::default(),
            auto_mtls: AutoMtls::default(),
        }
    }
}

impl PluginConfig {
    /// The effective failure policy.
    pub fn on_error(&self) -> OnError {
        self.on_error.unwrap_or(match self.hook_type {
            HookType::Auth => OnError::FailClosed,
            _ => OnError::FailOpen,
        })
    }

    /// Whether a load failure stops the start or reload (see [`PluginConfig::required`]).
    pub fn required(&self) -> bool {
        self.required
            .unwrap_or(self.on_error() == OnError::FailClosed)
    }
}

fn default_plugin_timeout() -> Duration {
    Duration::from_secs(1)
}

fn default_true() -> bool {
    true
}

/// Pipeline-wide settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Records waiting for data_collection and stream-complete hooks; beyond it new records are dropped and counted.
    #[serde(default = "default_queue")]
    pub collect_queue_capacity: usize,
    /// Largest response body buffered for `OnResponseBody` (502 above).
    #[serde(default = "default_buffer")]
    pub max_response_buffer_bytes: usize,
    /// Bytes of a streamed response kept for `OnStreamComplete`.
    #[serde(default = "default_accumulate")]
    pub stream_accumulate_bytes: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            collect_queue_capacity: default_queue(),
            max_response_buffer_bytes: default_buffer(),
            stream_accumulate_bytes: default_accumulate(),
        }
    }
}

fn default_queue() -> usize {
    10_000
}

fn default_buffer() -> usize {
    10 * 1024 * 1024
}

fn default_accumulate() -> usize {
    1024 * 1024
}
