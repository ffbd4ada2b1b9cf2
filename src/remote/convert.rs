//! Conversions between the native plugin types and the protobuf contract.
//!
//! Everything coming back from a plugin is parsed strictly: a header name or value that
//! does not parse, a status outside 200–599 or a missing decision is a
//! [`PluginError::Invalid`], which the pipeline treats like any plugin failure.

use crate::plugin::proto as pb;
use crate::plugin::{
    AuthInfo, AuthResult, BodyMode, BodyMutations, ChunkAction, ChunkView, CompletedExchange,
    Decision, HeaderMutations, Hook, ImmediateResponse, Manifest, MessageAction, MessageView,
    Mutations, PluginError, RequestContext, RequestSummary, RequestView, ResponseMutations,
    ResponseView,
};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use std::collections::HashMap;
use std::time::Duration;

fn headers_to_pb(headers: &HeaderMap) -> Vec<pb::Header> {
    headers
        .iter()
        .map(|(k, v)| pb::Header {
            name: k.as_str().to_string(),
            value: Bytes::copy_from_slice(v.as_bytes()),
        })
        .collect()
}

fn auth_to_pb(auth: Option<&AuthInfo>) -> Option<pb::AuthInfo> {
    auth.map(|a| pb::AuthInfo {
        identity: a.identity.clone(),
        app_id: a.app_id.clone(),
        claims: a.claims.iter().cloned().collect(),
        plugin: a.plugin.clone(),
    })
}

fn context_to_pb(ctx: &RequestContext) -> HashMap<String, String> {
    ctx.values.clone()
}

/// The request as the proto `RequestInfo`; the buffered body only `with_body` (when the
/// plugin's manifest asked for it: another hook on the route may have buffered it).
pub fn request_to_pb(view: &RequestView<'_>, with_body: bool) -> pb::HookRequest {
    pb::HookRequest {
        request: Some(pb::RequestInfo {
            request_id: view.request_id.to_string(),
            method: view.method.to_string(),
            path: view.uri.path().to_string(),
            query: view.uri.query().unwrap_or_default().to_string(),
            host: view.host.to_string(),
            scheme: if view.tls { "https" } else { "http" }.to_string(),
            client_ip: view.client_ip.to_string(),
            route: view.route.to_string(),
            headers: headers_to_pb(view.headers),
            body: view.body.filter(|_| with_body).cloned().unwrap_or_default(),
        }),
        context: context_to_pb(view.context),
        auth: auth_to_pb(view.context.auth.as_ref()),
    }
}

fn summary_to_pb(s: &RequestSummary) -> pb::RequestInfo {
    pb::RequestInfo {
        request_id: s.request_id.clone(),
        method: s.method.to_string(),
        path: s.uri.path().to_string(),
        query: s.uri.query().unwrap_or_default().to_string(),
        host: s.host.clone(),
        scheme: if s.tls { "https" } else { "http" }.to_string(),
        client_ip: s.client_ip.to_string(),
        route: s.route.clone(),
        headers: headers_to_pb(&s.headers),
        body: Bytes::new(),
    }
}

/// Response head for `OnResponseHeaders`.
pub fn response_headers_to_pb(view: &ResponseView<'_>) -> pb::ResponseHeadersRequest {
    pb::ResponseHeadersRequest {
        request: Some(summary_to_pb(view.request)),
        context: context_to_pb(view.context),
        auth: auth_to_pb(view.context.auth.as_ref()),
        status: u32::from(view.status.as_u16()),
        headers: headers_to_pb(view.headers),
    }
}

/// Buffered body for `OnResponseBody`.
pub fn response_body_to_pb(view: &ResponseView<'_>, body: &Bytes) -> pb::ResponseBodyRequest {
    pb::ResponseBodyRequest {
        request: Some(summary_to_pb(view.request)),
        context: context_to_pb(view.context),
        auth: auth_to_pb(view.context.auth.as_ref()),
        status: u32::from(view.status.as_u16()),
        headers: headers_to_pb(view.headers),
        body: body.clone(),
    }
}

/// One chunk for `OnResponseChunk`.
pub fn chunk_to_pb(chunk: &ChunkView<'_>) -> pb::ChunkRequest {
    pb::ChunkRequest {
        request_id: chunk.request_id.to_string(),
        context: context_to_pb(chunk.context),
        index: chunk.index,
        data: chunk.data.clone(),
        sse_event: chunk.sse_event,
    }
}

/// One WebSocket message for `OnWebsocketMessage`; the payload is shared, not copied.
pub fn message_to_pb(message: &MessageView<'_>) -> pb::WebsocketMessageRequest {
    pb::WebsocketMessageRequest {
        request_id: message.request_id.to_string(),
        route: message.route.to_string(),
        from_client: message.from_client,
        text: message.text,
        payload: message.payload.clone(),
    }
}

/// What the plugin does with the message; an empty answer passes it.
pub fn message_action_from_pb(r: pb::WebsocketMessageResponse) -> MessageAction {
    use pb::websocket_message_response::Action;
    match r.action {
        Some(Action::Replace(b)) => MessageAction::Replace(b),
        Some(Action::Drop(true)) => MessageAction::Drop,
        _ => MessageAction::Pass,
    }
}

/// The finished exchange for `OnStreamComplete`.
pub fn complete_to_pb(done: &CompletedExchange) -> pb::StreamCompleteRequest {
    pb::StreamCompleteRequest {
        request: Some(summary_to_pb(&done.request)),
        context: context_to_pb(&done.context),
        auth: auth_to_pb(done.context.auth.as_ref()),
        status: u32::from(done.status.as_u16()),
        chunks: done.chunks,
        bytes: done.response_bytes,
        accumulated: done.accumulated.clone(),
        truncated: done.truncated,
        usage: usage_to_pb(done),
    }
}

/// The finished exchange for `Collect`.
pub fn collect_to_pb(done: &CompletedExchange) -> pb::CollectRequest {
    pb::CollectRequest {
        request: Some(summary_to_pb(&done.request)),
        context: context_to_pb(&done.context),
        auth: auth_to_pb(done.context.auth.as_ref()),
        status: u32::from(done.status.as_u16()),
        duration_micros: u64::try_from(done.duration.as_micros()).unwrap_or(u64::MAX),
        request_bytes: done.request_bytes,
        response_bytes: done.response_bytes,
        upstream: done.request.upstream.clone(),
        started_at_ms: done.started_at_ms,
        usage: usage_to_pb(done),
    }
}

fn usage_to_pb(done: &CompletedExchange) -> Option<pb::TokenUsage> {
    done.usage.as_ref().map(|u| pb::TokenUsage {
        model: u.model.clone(),
        prompt_tokens: u.prompt_tokens,
        completion_tokens: u.completion_tokens,
        cached_input_tokens: u.cached_input_tokens,
        cache_creation_tokens: u.cache_creation_tokens,
        cost_usd: done.cost_usd.unwrap_or_default(),
        cache_hit: done.cache_hit,
    })
}

fn header(h: pb::Header) -> Result<(HeaderName, HeaderValue), PluginError> {
    let name = HeaderName::from_bytes(h.name.as_bytes())
        .map_err(|_| PluginError::Invalid(format!("invalid header name {:?}", h.name)))?;
    let value = HeaderValue::from_maybe_shared(h.value).map_err(|_| {
        PluginError::Invalid(format!(
            "invalid value for header {name} (control characters?)"
        ))
    })?;
    Ok((name, value))
}

fn mutations_from_pb(m: Option<pb::HeaderMutations>) -> Result<HeaderMutations, PluginError> {
    let Some(m) = m else {
        return Ok(HeaderMutations::default());
    };
    Ok(HeaderMutations {
        set: m.set.into_iter().map(header).collect::<Result<_, _>>()?,
        add: m.add.into_iter().map(header).collect::<Result<_, _>>()?,
        remove: m
            .remove
            .into_iter()
            .map(|n| {
                HeaderName::from_bytes(n.as_bytes())
                    .map_err(|_| PluginError::Invalid(format!("invalid header name {n:?}")))
            })
            .collect::<Result<_, _>>()?,
    })
}

fn status(code: u32) -> Result<StatusCode, PluginError> {
    u16::try_from(code)
        .ok()
        .filter(|c| (200..=599).contains(c))
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or_else(|| PluginError::Invalid(format!("status {code} is not between 200 and 599")))
}

/// A request-stage answer.
pub fn decision_from_pb(resp: pb::HookResponse) -> Result<Decision, PluginError> {
    match resp.decision {
        Some(pb::hook_response::Decision::Respond(r)) => Ok(Decision::Respond(ImmediateResponse {
            status: status(r.status)?,
            headers: r
                .headers
                .into_iter()
                .map(header)
                .collect::<Result<_, _>>()?,
            body: r.body,
        })),
        Some(pb::hook_response::Decision::ContinueRequest(c)) => {
            Ok(Decision::Continue(Mutations {
                headers: mutations_from_pb(c.headers)?,
                path: c.path.filter(|p| !p.is_empty()),
                query: c.query,
                body: c.body,
                context: c.context.into_iter().collect(),
                auth: resp.auth.filter(|a| a.authenticated).map(|a| AuthResult {
                    identity: a.identity,
                    app_id: a.app_id,
                    claims: a.claims.into_iter().collect(),
                    cache_ttl: (a.cache_ttl_seconds > 0)
                        .then(|| Duration::from_secs(u64::from(a.cache_ttl_seconds))),
                }),
            }))
        }
        None => Err(PluginError::Invalid(
            "hook response carries no decision".into(),
        )),
    }
}

/// An `OnResponseHeaders` answer.
pub fn response_mutations_from_pb(
    r: pb::ResponseHeadersResponse,
) -> Result<ResponseMutations, PluginError> {
    Ok(ResponseMutations {
        headers: mutations_from_pb(r.headers)?,
        status: if r.status == 0 {
            None
        } else {
            Some(status(r.status)?)
        },
        context: r.context.into_iter().collect(),
    })
}

/// An `OnResponseBody` answer.
pub fn body_mutations_from_pb(r: pb::ResponseBodyResponse) -> Result<BodyMutations, PluginError> {
    Ok(BodyMutations {
        body: r.body,
        headers: mutations_from_pb(r.headers)?,
    })
}

/// An `OnResponseChunk` answer; no action means pass.
pub fn chunk_action_from_pb(r: pb::ChunkResponse) -> ChunkAction {
    match r.action {
        Some(pb::chunk_response::Action::Replace(b)) => ChunkAction::Replace(b),
        Some(pb::chunk_response::Action::Drop(true)) => ChunkAction::Drop,
        _ => ChunkAction::Pass,
    }
}

/// The plugin's manifest.
pub fn manifest_from_pb(m: pb::Manifest) -> Manifest {
    let hooks = m
        .hooks
        .iter()
        .filter_map(|h| match pb::Hook::try_from(*h).ok()? {
            pb::Hook::PreAuth => Some(Hook::PreAuth),
            pb::Hook::Auth => Some(Hook::Auth),
            pb::Hook::PostAuth => Some(Hook::PostAuth),
            pb::Hook::OnResponseHeaders => Some(Hook::OnResponseHeaders),
            pb::Hook::OnResponseBody => Some(Hook::OnResponseBody),
            pb::Hook::OnResponseChunk => Some(Hook::OnResponseChunk),
            pb::Hook::OnStreamComplete => Some(Hook::OnStreamComplete),
            pb::Hook::Collect => Some(Hook::Collect),
            pb::Hook::WebsocketMessage => Some(Hook::WebsocketMessage),
            pb::Hook::Unspecified => None,
        })
        .collect();
    let response_body = match pb::BodyMode::try_from(m.response_body).unwrap_or(pb::BodyMode::None)
    {
        pb::BodyMode::None => BodyMode::None,
        pb::BodyMode::Buffered => BodyMode::Buffered,
        pb::BodyMode::Chunks => BodyMode::Chunks,
        pb::BodyMode::SseEvents => BodyMode::SseEvents,
    };
    Manifest {
        name: m.name,
        version: m.version,
        hooks,
        response_body,
        request_body: m.request_body,
        config_schema: m.config_schema,
    }
}

/// Maps a gRPC status to a plugin error.
pub fn status_error(s: tonic::Status) -> PluginError {
    match s.code() {
        tonic::Code::Unavailable | tonic::Code::Cancelled => {
            PluginError::Unavailable(s.message().to_string())
        }
        tonic::Code::DeadlineExceeded => {
            PluginError::Failed(format!("deadline exceeded: {}", s.message()))
        }
        code => PluginError::Failed(format!("{code:?}: {}", s.message())),
    }
}
