//! Tyk's `PluginContext` from what the gateway knows about a request.
//!
//! - `request_id`: the gateway's request id.
//! - `vendor`, `llm_slug`: for LLM routes, the upstream's provider (`openai`,
//!   `anthropic`) and the route name; empty elsewhere. `llm_id` stays 0: the gateway has
//!   no numeric LLM ids.
//! - `app_id`, `user_id`: the auth result's app id and identity when they are numbers
//!   (Tyk's are database ids), else 0; the text forms are in `metadata` as `app_id` and
//!   `user_id` unless a hook already set those keys.
//! - `metadata`: the request's shared context values, which include every earlier
//!   hook's `context_updates`.
//! - `trace_context`: the request's W3C `traceparent` and `tracestate` headers.

use super::pb;
use crate::config::Provider;
use crate::plugin::RequestContext;
use http::HeaderMap;
use std::collections::HashMap;

/// The W3C trace context headers copied into `trace_context`.
const TRACE_HEADERS: [&str; 2] = ["traceparent", "tracestate"];

/// What a `PluginContext` is built from.
pub struct Source<'a> {
    /// The gateway's request id.
    pub request_id: &'a str,
    /// The matched route's name.
    pub route: &'a str,
    /// The LLM provider, for LLM routes.
    pub llm: Option<Provider>,
    /// The request's headers (for the trace context).
    pub headers: &'a HeaderMap,
    /// Shared values and the auth result.
    pub context: &'a RequestContext,
}

/// Builds the `PluginContext` Tyk's hooks receive.
pub fn build(source: &Source<'_>) -> pb::PluginContext {
    let auth = source.context.auth.as_ref();
    let mut metadata = source.context.values.clone();
    if let Some(a) = auth {
        metadata
            .entry("app_id".to_string())
            .or_insert_with(|| a.app_id.clone());
        metadata
            .entry("user_id".to_string())
            .or_insert_with(|| a.identity.clone());
    }
    pb::PluginContext {
        request_id: source.request_id.to_string(),
        vendor: source
            .llm
            .map(|p| p.as_str().to_string())
            .unwrap_or_default(),
        llm_id: 0,
        llm_slug: if source.llm.is_some() {
            source.route.to_string()
        } else {
            String::new()
        },
        app_id: auth.map_or(0, |a| numeric(&a.app_id)),
        user_id: auth.map_or(0, |a| numeric(&a.identity)),
        metadata,
        trace_context: trace_context(source.headers),
    }
}

/// A Tyk id: the number a string holds, or 0.
pub fn numeric(id: &str) -> u32 {
    id.parse().unwrap_or(0)
}

fn trace_context(headers: &HeaderMap) -> HashMap<String, String> {
    TRACE_HEADERS
        .iter()
        .filter_map(|name| {
            let value = headers.get(*name)?.to_str().ok()?;
            Some((name.to_string(), value.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::AuthInfo;

    #[test]
    fn llm_fields_auth_ids_and_trace_context() {
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", "00-abc-def-01".parse().unwrap());
        headers.insert("x-other", "1".parse().unwrap());
        let mut context = RequestContext::default();
        context.values.insert("tier".into(), "gold".into());
        context.auth = Some(AuthInfo {
            identity: "alice".into(),
            app_id: "42".into(),
            claims: Vec::new(),
            plugin: "auth".into(),
        });
        let source = Source {
            request_id: "r-1",
            route: "chat",
            llm: Some(Provider::Openai),
            headers: &headers,
            context: &context,
        };
        let c = build(&source);
        assert_eq!(c.vendor, "openai");
        assert_eq!(c.llm_slug, "chat");
        assert_eq!((c.app_id, c.user_id), (42, 0));
        assert_eq!(c.metadata.get("user_id").map(String::as_str), Some("alice"));
        assert_eq!(c.metadata.get("tier").map(String::as_str), Some("gold"));
        assert_eq!(c.trace_context.len(), 1);
        assert_eq!(c.trace_context["traceparent"], "00-abc-def-01");
        let plain = build(&Source {
            llm: None,
            ..source
        });
        assert_eq!((plain.vendor.as_str(), plain.llm_slug.as_str()), ("", ""));
    }
}
