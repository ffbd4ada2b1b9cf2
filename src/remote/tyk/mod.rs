//! Tyk AI Studio's plugin contract (`plugin.PluginService`, `proto/tyk/plugin.proto`)
//! behind the gateway's [`Plugin`](crate::plugin::Plugin) hooks.
//!
//! | Tyk RPC | gateway stage |
//! |---|---|
//! | `ProcessPreAuth` | `pre_auth` |
//! | `Authenticate` | `auth` |
//! | `ProcessPostAuth` | `post_auth` |
//! | `OnBeforeWriteHeaders`, `OnBeforeWrite`, `OnStreamComplete` | `on_response` (headers, buffered body, finished exchange) |
//! | `HandleProxyLog`, `HandleAnalytics`, `HandleBudgetUsage` | `data_collection` (the last two for exchanges with token usage) |
//! | `Initialize`, `Ping`, `Shutdown` | load, health pings of `grpc://` servers, stop |
//!
//! A Tyk plugin has no manifest: its hooks are the configured stage's ([`manifest`]).
//! `context.rs` builds `PluginContext`, `convert.rs` the messages and decisions.

mod context;
mod convert;

/// Generated from `proto/tyk/plugin.proto` (package `plugin`) by `build.rs`.
pub mod pb {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    include!(concat!(env!("OUT_DIR"), "/tyk/plugin.rs"));
}

use super::RemotePlugin;
use crate::hook::{Hook, HookType};
use crate::plugin::{
    BodyMode, BodyMutations, CompletedExchange, Decision, HookFuture, Manifest, PluginError,
    RequestView, ResponseMutations, ResponseView,
};
use bytes::Bytes;
use context::Source;
use pb::plugin_service_client::PluginServiceClient;
use std::time::Duration;
use tonic::transport::Channel;

type Client = PluginServiceClient<Channel>;

/// The manifest of a Tyk plugin attached to `hook_type`: the stage's hooks; request
/// stages see the request body (Tyk always sends it) and `on_response` buffers the
/// response body for `OnBeforeWrite`.
pub fn manifest(name: &str, hook_type: HookType) -> Manifest {
    let hooks = match hook_type {
        HookType::OnResponse => vec![
            Hook::OnResponseHeaders,
            Hook::OnResponseBody,
            Hook::OnStreamComplete,
        ],
        other => other.hooks().to_vec(),
    };
    let request = matches!(
        hook_type,
        HookType::PreAuth | HookType::Auth | HookType::PostAuth
    );
    Manifest {
        name: name.to_string(),
        version: "tyk".to_string(),
        hooks,
        response_body: if hook_type == HookType::OnResponse {
            BodyMode::BufferedUnlessStream
        } else {
            BodyMode::None
        },
        request_body: request,
        config_schema: String::new(),
    }
}

fn unix_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The configuration as Tyk passes it: strings as they are, other values as JSON text.
fn config_map(config: &serde_json::Value) -> std::collections::HashMap<String, String> {
    let Some(object) = config.as_object() else {
        return Default::default();
    };
    object
        .iter()
        .map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect()
}

/// `Initialize` with the instance's configuration.
pub async fn initialize(
    channel: &Channel,
    config: &serde_json::Value,
    timeout: Duration,
) -> Result<(), PluginError> {
    let mut client = Client::new(channel.clone());
    let request = pb::InitRequest {
        config: config_map(config),
    };
    match tokio::time::timeout(timeout, client.initialize(request)).await {
        Err(_) => Err(PluginError::Load("Tyk Initialize timed out".into())),
        Ok(Err(s)) if s.code() == tonic::Code::Unimplemented => Err(PluginError::Load(
            "plugin does not serve Tyk AI Studio's plugin.PluginService (Initialize is UNIMPLEMENTED)".into(),
        )),
        Ok(Err(s)) => Err(PluginError::Load(format!(
            "Tyk Initialize failed: {}",
            s.message()
        ))),
        Ok(Ok(r)) if r.get_ref().success => Ok(()),
        Ok(Ok(r)) => Err(PluginError::Load(format!(
            "plugin refused its configuration: {}",
            r.get_ref().error_message
        ))),
    }
}

/// `Ping` as a contract probe: any answer means the plugin speaks Tyk's contract.
pub async fn probe(channel: &Channel, timeout: Duration) -> Result<(), String> {
    let mut client = Client::new(channel.clone());
    let request = pb::PingRequest {
        timestamp: unix_seconds(),
    };
    match tokio::time::timeout(timeout, client.ping(request)).await {
        Err(_) => Err(format!("nothing within {timeout:?}")),
        Ok(Err(s)) => Err(format!("{:?} ({})", s.code(), s.message())),
        Ok(Ok(_)) => Ok(()),
    }
}

/// `Ping` as a health check: the plugin must answer `healthy`.
pub async fn ping(channel: &Channel, timeout: Duration) -> Result<(), String> {
    let mut client = Client::new(channel.clone());
    let request = pb::PingRequest {
        timestamp: unix_seconds(),
    };
    match tokio::time::timeout(timeout, client.ping(request)).await {
        Err(_) => Err("ping timed out".to_string()),
        Ok(Err(s)) => Err(format!("ping failed: {}", s.message())),
        Ok(Ok(r)) if r.get_ref().healthy => Ok(()),
        Ok(Ok(_)) => Err("ping reports the plugin unhealthy".to_string()),
    }
}

/// `Shutdown`, waiting at most `grace`; the answer does not matter.
pub async fn shutdown(channel: &Channel, grace: Duration) {
    let mut client = Client::new(channel.clone());
    let request = pb::ShutdownRequest {
        timeout_seconds: i64::try_from(grace.as_secs().max(1)).unwrap_or(1),
    };
    let _ = tokio::time::timeout(grace, client.shutdown(request)).await;
}

async fn client(p: &RemotePlugin) -> Result<Client, PluginError> {
    p.channel().await.map(Client::new)
}

/// `ProcessPreAuth`, `Authenticate` or `ProcessPostAuth`.
pub(super) fn on_request<'a>(
    p: &'a RemotePlugin,
    stage: HookType,
    view: &'a RequestView<'a>,
) -> HookFuture<'a, Decision> {
    let context = context::build(&Source {
        request_id: view.request_id,
        route: view.route,
        llm: view.llm,
        headers: view.headers,
        context: view.context,
    });
    let request = convert::plugin_request(view, context.clone());
    HookFuture::pending(async move {
        let mut client = client(p).await?;
        match stage {
            HookType::PreAuth => {
                let r = client.process_pre_auth(request).await.map_err(status)?;
                convert::decision(r.into_inner())
            }
            HookType::Auth => {
                let message = pb::AuthRequest {
                    credential: convert::credential(view.headers),
                    auth_type: "bearer".to_string(),
                    request: Some(request),
                    context: Some(context),
                };
                let r = client.authenticate(message).await.map_err(status)?;
                Ok(convert::auth_decision(r.into_inner()))
            }
            _ => {
                let auth = view.context.auth.as_ref();
                let message = pb::EnrichedRequest {
                    request: Some(request),
                    user_id: auth.map(|a| a.identity.clone()).unwrap_or_default(),
                    app_id: auth.map(|a| a.app_id.clone()).unwrap_or_default(),
                    auth_claims: auth
                        .map(|a| a.claims.iter().cloned().collect())
                        .unwrap_or_default(),
                    authenticated: auth.is_some(),
                };
                let r = client.process_post_auth(message).await.map_err(status)?;
                convert::decision(r.into_inner())
            }
        }
    })
}

fn response_context(view: &ResponseView<'_>) -> pb::PluginContext {
    context::build(&Source {
        request_id: &view.request.request_id,
        route: &view.request.route,
        llm: view.request.llm,
        headers: &view.request.headers,
        context: view.context,
    })
}

/// `OnBeforeWriteHeaders`: when `modified`, its headers become the response's.
pub(super) fn on_response_headers<'a>(
    p: &'a RemotePlugin,
    view: &'a ResponseView<'a>,
) -> HookFuture<'a, ResponseMutations> {
    let message = pb::HeadersRequest {
        headers: convert::headers_to_map(view.headers),
        context: Some(response_context(view)),
    };
    HookFuture::pending(async move {
        let mut client = client(p).await?;
        let r = client
            .on_before_write_headers(message)
            .await
            .map_err(status)?
            .into_inner();
        if !r.modified {
            return Ok(ResponseMutations::default());
        }
        Ok(ResponseMutations {
            headers: convert::replace_headers(view.headers, r.headers)?,
            ..Default::default()
        })
    })
}

/// `OnBeforeWrite` with the buffered body (`is_stream_chunk` false, as Tyk's REST path
/// does): when `modified`, its body and headers replace the response's.
pub(super) fn on_response_body<'a>(
    p: &'a RemotePlugin,
    view: &'a ResponseView<'a>,
    body: &'a Bytes,
) -> HookFuture<'a, BodyMutations> {
    let message = pb::ResponseWriteRequest {
        body: body.clone(),
        headers: convert::headers_to_map(view.headers),
        is_stream_chunk: false,
        context: Some(response_context(view)),
    };
    HookFuture::pending(async move {
        let mut client = client(p).await?;
        let r = client
            .on_before_write(message)
            .await
            .map_err(status)?
            .into_inner();
        if !r.modified {
            return Ok(BodyMutations::default());
        }
        Ok(BodyMutations {
            body: Some(r.body),
            headers: convert::replace_headers(view.headers, r.headers)?,
        })
    })
}

fn exchange_context(done: &CompletedExchange) -> pb::PluginContext {
    context::build(&Source {
        request_id: &done.request.request_id,
        route: &done.request.route,
        llm: done.request.llm,
        headers: &done.request.headers,
        context: &done.context,
    })
}

fn saturating_i32(n: u64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// `OnStreamComplete` with the accumulated response.
pub(super) fn on_stream_complete<'a>(
    p: &'a RemotePlugin,
    done: &'a CompletedExchange,
) -> HookFuture<'a, ()> {
    let message = pb::StreamCompleteRequest {
        accumulated_response: done.accumulated.clone(),
        headers: Default::default(),
        status_code: i32::from(done.status.as_u16()),
        context: Some(exchange_context(done)),
        chunk_count: saturating_i32(done.chunks),
        request_body: Bytes::new(),
    };
    HookFuture::pending(async move {
        let mut client = client(p).await?;
        client
            .on_stream_complete(message)
            .await
            .map_err(status)
            .map(drop)
    })
}

/// `HandleProxyLog` for every exchange; `HandleAnalytics` and `HandleBudgetUsage` as
/// well when it reported token usage. An RPC the plugin leaves UNIMPLEMENTED is skipped.
pub(super) fn collect<'a>(p: &'a RemotePlugin, done: &'a CompletedExchange) -> HookFuture<'a, ()> {
    let context = exchange_context(done);
    let timestamp = done.started_at_ms / 1000;
    let vendor = context.vendor.clone();
    let (app_id, user_id) = (context.app_id, context.user_id);
    let log = pb::ProxyLogRequest {
        app_id,
        user_id,
        vendor: vendor.clone(),
        request_body: Bytes::new(),
        response_body: done.accumulated.clone(),
        response_code: i32::from(done.status.as_u16()),
        timestamp,
        request_id: done.request.request_id.clone(),
        context: Some(context.clone()),
    };
    HookFuture::pending(async move {
        let mut client = client(p).await?;
        answered(client.handle_proxy_log(log).await)?;
        let Some(usage) = &done.usage else {
            return Ok(());
        };
        let total = usage.total();
        let analytics = pb::AnalyticsRequest {
            model_name: usage.model.clone(),
            vendor,
            prompt_tokens: saturating_i32(usage.prompt_tokens),
            response_tokens: saturating_i32(usage.completion_tokens),
            total_tokens: saturating_i32(total),
            cache_read_prompt_tokens: saturating_i32(usage.cached_input_tokens),
            cache_write_prompt_tokens: saturating_i32(usage.cache_creation_tokens),
            cost: done.cost_usd.unwrap_or_default(),
            app_id,
            user_id,
            timestamp,
            request_id: done.request.request_id.clone(),
            context: Some(context.clone()),
            ..Default::default()
        };
        answered(client.handle_analytics(analytics).await)?;
        let budget = pb::BudgetUsageRequest {
            app_id,
            tokens_used: i64::try_from(total).unwrap_or(i64::MAX),
            requests_count: 1,
            cost: done.cost_usd.unwrap_or_default(),
            prompt_tokens: i64::try_from(usage.prompt_tokens).unwrap_or(i64::MAX),
            completion_tokens: i64::try_from(usage.completion_tokens).unwrap_or(i64::MAX),
            timestamp,
            request_id: done.request.request_id.clone(),
            context: Some(context),
            ..Default::default()
        };
        answered(client.handle_budget_usage(budget).await)
    })
}

/// A data collection answer: UNIMPLEMENTED is fine, a reported failure is an error.
fn answered(
    r: Result<tonic::Response<pb::DataCollectionResponse>, tonic::Status>,
) -> Result<(), PluginError> {
    match r {
        Err(s) if s.code() == tonic::Code::Unimplemented => Ok(()),
        Err(s) => Err(status(s)),
        Ok(r) => {
            let r = r.into_inner();
            if !r.success && !r.error_message.is_empty() {
                return Err(PluginError::Failed(r.error_message));
            }
            Ok(())
        }
    }
}

fn status(s: tonic::Status) -> PluginError {
    super::convert::status_error(s)
}
