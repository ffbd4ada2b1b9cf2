//! Built-in in-process plugins, registered as `builtin://NAME`.
//!
//! | name | stages | what it does |
//! |---|---|---|
//! | `api_key` | auth | API keys from config or a file; identities cached in moka |
//! | `headers` | pre_auth, post_auth, on_response | add/set/remove/rename headers |
//! | `ip_filter` | pre_auth, post_auth | CIDR allow/deny lists (403) |
//! | `rate_limit` | pre_auth, post_auth | token bucket per identity/app/IP and route (429) |
//! | `request_guard` | pre_auth, post_auth | allowed methods (405) and body size (413/411) |
//! | `llm_policy` | post_auth | model allowlist per app, token/request budgets, request size (see [`crate::llm::policy`]) |
//!
//! Built-ins answer synchronously ([`HookFuture::Ready`](crate::plugin::HookFuture)), so
//! they never allocate a future and are never subject to timeouts.

mod api_key;
mod headers;
mod ip_filter;
mod rate_limit;
mod request_guard;

use crate::config::PluginConfig;
use crate::plugin::{
    BuiltinContext, BuiltinFactory, Decision, Hook, ImmediateResponse, Manifest, Plugin,
    PluginError,
};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode, header};
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// Every built-in plugin: its `builtin://NAME` name and factory, which
/// [`Registry::with_builtins`](crate::loader::Registry::with_builtins) registers.
pub fn factories() -> Vec<(&'static str, BuiltinFactory)> {
    vec![
        ("api_key", factory(api_key::ApiKey::new)),
        ("headers", factory(headers::Headers::new)),
        ("ip_filter", factory(ip_filter::IpFilter::new)),
        ("rate_limit", shared(rate_limit::RateLimit::new)),
        ("llm_policy", shared(crate::llm::policy::LlmPolicy::new)),
        ("request_guard", factory(request_guard::RequestGuard::new)),
    ]
}

/// The factory of a built-in whose constructor is `new`.
fn factory<P: Plugin + 'static>(
    new: fn(&PluginConfig) -> Result<P, PluginError>,
) -> BuiltinFactory {
    Arc::new(move |c, _| Ok(Arc::new(new(c)?)))
}

/// The factory of a built-in whose constructor also takes what the process shares.
fn shared<P: Plugin + 'static>(
    new: fn(&PluginConfig, &BuiltinContext) -> Result<P, PluginError>,
) -> BuiltinFactory {
    Arc::new(move |c, context| Ok(Arc::new(new(c, context)?)))
}

/// Parses the instance's `config` table into `T`, naming the instance on error.
fn settings<T: DeserializeOwned + Default>(config: &PluginConfig) -> Result<T, PluginError> {
    if config.config.is_null() {
        return Ok(T::default());
    }
    serde_json::from_value(config.config.clone())
        .map_err(|e| PluginError::Load(format!("plugins.{}.config: {e}", config.name)))
}

/// A manifest for a built-in implementing `hooks`.
fn manifest(name: &str, hooks: &[Hook]) -> Manifest {
    Manifest {
        name: name.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        hooks: hooks.to_vec(),
        ..Manifest::default()
    }
}

/// A JSON error response in the gateway's error shape.
fn reject(status: StatusCode, kind: &str, message: &str, request_id: &str) -> Decision {
    let body = serde_json::json!({
        "error": { "type": kind, "message": message, "request_id": request_id }
    });
    Decision::Respond(ImmediateResponse {
        status,
        headers: vec![(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body: Bytes::from(body.to_string()),
    })
}

/// Parses a header name from configuration.
fn header_name(plugin: &str, name: &str) -> Result<HeaderName, PluginError> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        PluginError::Load(format!(
            "plugins.{plugin}.config: invalid header name {name:?}"
        ))
    })
}

/// Parses a header value from configuration.
fn header_value(plugin: &str, value: &str) -> Result<HeaderValue, PluginError> {
    HeaderValue::from_str(value).map_err(|_| {
        PluginError::Load(format!(
            "plugins.{plugin}.config: invalid header value {value:?}"
        ))
    })
}
