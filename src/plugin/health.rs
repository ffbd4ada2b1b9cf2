//! Lifecycle state of plugin instances, as the admin API reports it.

/// Lifecycle state of a plugin instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    /// Starting or connecting for the first time.
    Loading,
    /// Serving hook calls.
    Ready,
    /// Not serving; no restart pending (remote server unreachable, gave up).
    Failed,
    /// Crashed or unreachable; being restarted or reconnected with backoff.
    Restarting,
}

/// Health of a plugin instance, as reported by the admin API.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PluginHealth {
    /// Current state; a `failed` instance is reloaded by the health trigger, a `failed`
    /// stand-in (a plugin that never loaded) is retried.
    pub state: HealthState,
    /// Most recent error, if any.
    pub last_error: Option<String>,
    /// Restarts (file://) or reconnects (grpc://) so far.
    pub restarts: u32,
    /// The contract an out-of-process plugin speaks (`microgateway` or `tyk`), once known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contract: Option<&'static str>,
    /// How the gateway reaches an out-of-process plugin (`unix`, `unix+mtls`, `tcp`,
    /// `tcp+tls`, `tcp+mtls`), once connected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport: Option<&'static str>,
}

impl PluginHealth {
    /// A ready instance without history.
    pub fn ready() -> PluginHealth {
        PluginHealth {
            state: HealthState::Ready,
            last_error: None,
            restarts: 0,
            contract: None,
            transport: None,
        }
    }
}
