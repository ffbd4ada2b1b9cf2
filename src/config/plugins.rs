//! Configuration of plugin instances (`[[plugins]]`) and pipeline settings (`[pipeline]`).

use super::types::duration;
use crate::plugin::HookType;
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
}

impl PluginConfig {
    /// The effective failure policy.
    pub fn on_error(&self) -> OnError {
        self.on_error.unwrap_or(match self.hook_type {
            HookType::Auth => OnError::FailClosed,
            _ => OnError::FailOpen,
        })
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
