//! Typed configuration structures, deserialised from the merged figment document.
//!
//! Every struct denies unknown fields so that a misspelt key is reported instead of
//! silently ignored. Durations are human-readable strings such as `"30s"` or `"250ms"`.

use super::duration_serde as duration;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The complete gateway configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Proxy listener and its limits.
    pub server: ServerConfig,
    /// Admin listener (health, readiness, metrics).
    pub admin: AdminConfig,
    /// Logging format and filter.
    #[serde(default)]
    pub log: LogConfig,
    /// Named upstream groups that routes forward to.
    #[serde(default)]
    pub upstreams: Vec<UpstreamConfig>,
    /// Routes, matched by host and longest path prefix.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Plugin instances, each attached to one stage.
    #[serde(default)]
    pub plugins: Vec<super::PluginConfig>,
    /// Pipeline-wide settings.
    #[serde(default)]
    pub pipeline: super::PipelineConfig,
    /// Out-of-process plugin runtime and security settings.
    #[serde(default)]
    pub plugin_runtime: super::PluginRuntimeConfig,
    /// OCI plugin distribution settings.
    #[serde(default)]
    pub oci: super::OciConfig,
    /// Process-wide LLM settings (the price table).
    #[serde(default)]
    pub llm: super::LlmConfig,
    /// The Redis a fleet of gateways shares limits and budgets through; none by default.
    #[serde(default)]
    pub cluster: Option<super::ClusterConfig>,
}

/// Settings of the proxy listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Socket address to listen on.
    pub listen: SocketAddr,
    /// Serve the proxy on per-core worker threads (true) or on the shared runtime.
    pub thread_per_core: bool,
    /// Proxy worker threads, each with its own single-threaded runtime; 0 = one per CPU.
    pub workers: usize,
    /// Maximum number of concurrently open client connections.
    pub max_connections: usize,
    /// Time allowed for a client to send a complete request head.
    #[serde(deserialize_with = "duration::deserialize")]
    pub header_read_timeout: Duration,
    /// Longest pause allowed between two pieces of a request body (408 above).
    #[serde(deserialize_with = "duration::deserialize")]
    pub body_read_timeout: Duration,
    /// Idle time after which a connection without in-flight requests is closed.
    #[serde(deserialize_with = "duration::deserialize")]
    pub idle_timeout: Duration,
    /// How long graceful shutdown waits for in-flight requests.
    #[serde(deserialize_with = "duration::deserialize")]
    pub shutdown_timeout: Duration,
    /// Maximum number of request headers (431 above).
    pub max_header_count: usize,
    /// Maximum total size of request header names and values in bytes (431 above).
    pub max_header_bytes: usize,
    /// Maximum request body size in bytes (413 above).
    pub max_body_bytes: u64,
    /// Name of the request id header.
    pub request_id_header: String,
    /// Optional TLS settings; plain HTTP when absent.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

/// Certificate and key for a TLS listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file holding the certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM file holding the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Settings of the admin listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Socket address of the admin listener; loopback by default.
    pub listen: SocketAddr,
    /// File holding the admin API bearer token (`MICROGATEWAY_ADMIN_TOKEN` also works).
    /// Without either, a token is generated into `data_dir/admin-token` on first start
    /// (loopback listeners only; any other listener needs a configured token).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Directory of the persisted plugin registry (`plugins.json`).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Watch the configuration file and reload plugins when it changes.
    #[serde(default = "default_true")]
    pub watch_config: bool,
    /// How often plugin health is checked; instances that gave up trigger a reload, and
    /// plugins that could not load are retried.
    #[serde(
        default = "default_health_interval",
        deserialize_with = "duration::deserialize"
    )]
    pub health_check_interval: Duration,
    /// `Host` values accepted on `/api/v1` besides the listener's own address and the
    /// loopback names (`localhost`, `127.0.0.1`, `[::1]`): `name` or `name:port`.
    /// Anything else is refused, which closes DNS rebinding.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// `Origin` values (`scheme://host[:port]`) accepted on `/api/v1`. A request that
    /// carries any other `Origin` is refused: browsers send one on cross-site requests.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// The token from `MICROGATEWAY_ADMIN_TOKEN`, read by `Config::load` (never from a
    /// file, so tests and embedders are not steered by the caller's environment).
    #[serde(skip)]
    pub token_env: Option<Secret>,
}

/// A secret string whose `Debug` form never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/microgateway")
}

fn default_true() -> bool {
    true
}

fn default_health_interval() -> Duration {
    Duration::from_secs(10)
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Output format.
    #[serde(default)]
    pub format: LogFormat,
    /// A `tracing_subscriber::EnvFilter` directive such as `info`.
    #[serde(default = "default_log_level")]
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: default_log_level(),
        }
    }
}

fn default_log_level() -> String {
    "info".to_string()
}

/// HTTP protocol used towards an upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamProtocol {
    /// HTTP/1.1 for `http://`, ALPN (h2 preferred) for `https://`.
    #[default]
    Auto,
    /// HTTP/1.1 only.
    Http1,
    /// HTTP/2 only (prior knowledge for `http://`, i.e. h2c).
    Http2,
}

/// A named group of upstream targets, balanced round robin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Name that routes refer to.
    pub name: String,
    /// Base URLs such as `http://10.0.0.5:8000`; all must share one scheme.
    pub targets: Vec<String>,
    /// Protocol selection.
    #[serde(default)]
    pub protocol: UpstreamProtocol,
    /// Extra CA bundle (PEM) trusted for `https://` targets instead of the system roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// TCP connect timeout; exceeding it answers 504.
    #[serde(
        default = "default_connect_timeout",
        deserialize_with = "duration::deserialize"
    )]
    pub connect_timeout: Duration,
    /// How long an idle pooled connection is kept.
    #[serde(
        default = "default_pool_idle",
        deserialize_with = "duration::deserialize"
    )]
    pub pool_idle_timeout: Duration,
    /// Maximum idle pooled connections per target.
    #[serde(default = "default_pool_max_idle")]
    pub pool_max_idle_per_host: usize,
    /// LLM provider behind this upstream: the gateway injects its key and meters tokens.
    #[serde(default)]
    pub llm: Option<super::LlmUpstreamConfig>,
    /// How targets are chosen (`round_robin`, `weighted`, `least_request`,
    /// `consistent_hash`).
    #[serde(default)]
    pub balance: super::Balance,
    /// Per-target weights for `balance = "weighted"`, parallel to `targets`.
    #[serde(default)]
    pub weights: Vec<u64>,
    /// What `balance = "consistent_hash"` hashes.
    #[serde(default)]
    pub hash_on: Option<super::HashOn>,
    /// Consecutive failed attempts (5xx, timeouts, resets) that eject a target; a failed
    /// connect ejects at once. 0 turns passive ejection off.
    #[serde(default = "super::balance::default_max_fails")]
    pub max_fails: u64,
    /// The first ejection's length; every further one doubles it.
    #[serde(
        default = "super::balance::default_fail_timeout",
        deserialize_with = "duration::deserialize"
    )]
    pub fail_timeout: Duration,
    /// The longest ejection (raised to `fail_timeout` when shorter).
    #[serde(
        default = "super::balance::default_max_fail_timeout",
        deserialize_with = "duration::deserialize"
    )]
    pub max_fail_timeout: Duration,
    /// Active HTTP checks of every target, off when absent.
    #[serde(default)]
    pub health_check: Option<super::HealthCheckConfig>,
    /// Circuit breaker: attempts in flight across the group beyond which requests are
    /// answered 503 `upstream_overloaded`; unlimited when absent.
    #[serde(default)]
    pub max_requests: Option<usize>,
    /// Circuit breaker: upstream connections in use across the group (an HTTP/1
    /// connection carries one request at a time; for HTTP/2 this bounds concurrent
    /// streams). Unlimited when absent.
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// Requests that may wait for one of the `max_connections`, each at most the
    /// route's `timeout`; beyond them requests are answered 503 `upstream_overloaded`.
    /// `0` when absent: nothing waits.
    #[serde(default)]
    pub max_pending: Option<usize>,
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_pool_idle() -> Duration {
    Duration::from_secs(90)
}

fn default_pool_max_idle() -> usize {
    256
}

/// A route: requests matching `host` and `path_prefix` go to `upstream`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Name used in logs and metric labels.
    pub name: String,
    /// Exact host (`api.example.com`) or wildcard (`*.example.com`); any host when absent.
    #[serde(default)]
    pub host: Option<String>,
    /// Path prefix matched on segment boundaries (`/api` matches `/api/x`, not `/apix`).
    #[serde(default = "default_prefix")]
    pub path_prefix: String,
    /// Name of the upstream group.
    pub upstream: String,
    /// Remove the matched prefix before forwarding.
    #[serde(default)]
    pub strip_prefix: bool,
    /// Replace the matched prefix with this path before forwarding.
    #[serde(default)]
    pub rewrite_prefix: Option<String>,
    /// Time allowed for the upstream to answer with response headers (504 above).
    #[serde(
        default = "default_route_timeout",
        deserialize_with = "duration::deserialize"
    )]
    pub timeout: Duration,
    /// Longest time the upstream may send no response body bytes while the gateway
    /// waits for them; beyond it the response is cut (the client connection or HTTP/2
    /// stream is aborted, never ended cleanly). Default 60 s, nginx's
    /// `proxy_read_timeout`. Time the client spends not reading does not count.
    #[serde(
        default = "default_body_timeout",
        deserialize_with = "duration::deserialize"
    )]
    pub body_timeout: Duration,
    /// Forward the client's Host header instead of the upstream's authority.
    #[serde(default)]
    pub preserve_host: bool,
    /// Accept encoded slashes and backslashes (`%2F`, `%5C`) in request paths, for
    /// upstreams that take them as data (object keys, encoded identifiers). Off by
    /// default, because an upstream that decodes them sees more path segments than the
    /// gateway matched. Dot segments are refused either way, also encoded (`..%2F`).
    #[serde(default)]
    pub allow_encoded_slashes: bool,
    /// When another attempt is made (`retry = { attempts, on, backoff, … }`).
    #[serde(default)]
    pub retry: super::RetryConfig,
    /// Retry methods that are not idempotent (POST, PATCH, CONNECT) as well.
    #[serde(default)]
    pub retry_non_idempotent: bool,
    /// Upstream groups tried in order once the primary group's attempts are exhausted
    /// with a failure `retry.on` names.
    #[serde(default)]
    pub fallback: Vec<String>,
    /// LLM front door settings: model listing and mapping, defaults, response cache.
    #[serde(default)]
    pub llm: Option<super::RouteLlmConfig>,
    /// Upgrade protocols passed to the upstream (`Upgrade: websocket`, or HTTP/2
    /// extended CONNECT with `:protocol`); `[]` passes none.
    #[serde(default = "super::upgrade::default_upgrade")]
    pub upgrade: Vec<String>,
    /// Limits of the route's upgraded connections.
    #[serde(default)]
    pub upgraded: super::UpgradedConfig,
}

fn default_prefix() -> String {
    "/".to_string()
}

fn default_route_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_body_timeout() -> Duration {
    Duration::from_secs(60)
}
