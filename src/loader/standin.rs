//! Plugins that could not load: an unavailable stand-in keeps their place in the plan
//! until a retry ([`super::retry`]) swaps the real plugin in without touching any other
//! instance.
//!
//! A stand-in implements the first hook of its stage (the request hook, the response
//! headers hook, or collect) and fails every call with `Unavailable`, so the pipeline
//! applies the plugin's `on_error` exactly as it would for a crashed plugin: a
//! `fail_closed` stand-in answers 503, a `fail_open` one is skipped and counted. Its
//! health is `failed` with the load error, and `/readyz` turns 503 while a required
//! plugin is a stand-in.

use crate::config::PluginConfig;
use crate::plugin::{
    BodyMode, ChunkAction, ChunkView, CompletedExchange, Decision, HealthState, HookFuture,
    HookType, Manifest, Plugin, PluginError, PluginHealth, RequestView, ResponseMutations,
    ResponseView,
};
use std::sync::Arc;

/// The stand-in for one plugin that failed to load.
pub struct StandIn {
    manifest: Manifest,
    error: Arc<str>,
}

impl StandIn {
    /// A stand-in for `config` that reports `error`.
    pub fn new(config: &PluginConfig, error: Arc<str>) -> StandIn {
        let hooks = config.hook_type.hooks().iter().take(1).copied().collect();
        StandIn {
            manifest: Manifest {
                name: config.name.clone(),
                version: "unavailable".into(),
                hooks,
                response_body: BodyMode::None,
                request_body: false,
                config_schema: String::new(),
            },
            error,
        }
    }

    fn unavailable(&self) -> PluginError {
        PluginError::Unavailable(format!("not loaded: {}", self.error))
    }
}

impl Plugin for StandIn {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn on_request<'a>(
        &'a self,
        _stage: HookType,
        _request: &'a RequestView<'a>,
    ) -> HookFuture<'a, Decision> {
        HookFuture::err(self.unavailable())
    }

    fn on_response_headers<'a>(
        &'a self,
        _response: &'a ResponseView<'a>,
    ) -> HookFuture<'a, ResponseMutations> {
        HookFuture::err(self.unavailable())
    }

    fn on_response_chunk<'a>(&'a self, _chunk: &'a ChunkView<'a>) -> HookFuture<'a, ChunkAction> {
        HookFuture::err(self.unavailable())
    }

    fn collect<'a>(&'a self, _record: &'a CompletedExchange) -> HookFuture<'a, ()> {
        HookFuture::err(self.unavailable())
    }

    fn health(&self) -> PluginHealth {
        PluginHealth {
            state: HealthState::Failed,
            last_error: Some(self.error.to_string()),
            restarts: 0,
            contract: None,
            transport: None,
        }
    }
}
