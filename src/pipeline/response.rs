//! Response stage on the request path: `OnResponseHeaders`, then either the buffered
//! `OnResponseBody` or the streaming chunk/SSE hooks.

use super::ctx::RequestCtx;
use super::{failure, invoke, mutate, stream};
use crate::body::{self, Body};
use crate::error::GatewayError;
use crate::loader::PluginSet;
use crate::plugin::{BodyMode, Hook, PluginError, RequestContext, RequestSummary, ResponseView};
use http::{HeaderValue, Response, header};
use std::sync::Arc;

/// Runs the response hooks of the matched route's plan in `set` on `response`.
///
/// They see the request summary in `ctx`, which is built whenever the plan has
/// response hooks; without a route or a summary there is nothing to run.
pub async fn run(
    set: &Arc<PluginSet>,
    response: Response<Body>,
    ctx: &mut RequestCtx<'_>,
    max_buffer: usize,
) -> Result<Response<Body>, GatewayError> {
    let (Some(route), Some(summary)) = (ctx.route, ctx.summary.as_ref()) else {
        return Ok(response);
    };
    let plan = set.plan(route.index);
    let hook_state = &mut ctx.hook_state;
    let (mut parts, mut body) = response.into_parts();
    for instance in &plan.response_headers {
        let result = {
            let view = view(summary, &parts, hook_state);
            let hook = Hook::OnResponseHeaders;
            invoke(instance, hook, || {
                instance.plugin.on_response_headers(&view)
            })
            .await?
        };
        let Some(mutations) = result else { continue };
        if let Some(status) = mutations.status
            && status.is_informational()
        {
            let e =
                PluginError::Invalid(format!("status {status} cannot replace a response status"));
            failure(instance, Hook::OnResponseHeaders, e)?;
            continue;
        }
        if let Err(e) = mutate::apply_headers(&mut parts.headers, mutations.headers) {
            failure(instance, Hook::OnResponseHeaders, e)?;
            continue;
        }
        if let Some(status) = mutations.status {
            parts.status = status;
        }
        hook_state.values.extend(mutations.context);
    }

    // Only body and chunk hooks care whether this is an event stream.
    let streaming = (!plan.response_body.is_empty() || !plan.response_chunk.is_empty())
        && crate::headers::is_event_stream(&parts.headers);
    let buffered = |instance: &&Arc<crate::loader::Instance>| {
        !(streaming && instance.plugin.manifest().response_body == BodyMode::BufferedUnlessStream)
    };
    if plan.response_body.iter().any(|i| buffered(&i)) {
        let mut bytes = body::collect_limited(body, max_buffer)
            .await
            .map_err(|e| match e {
                body::CollectError::TooLarge(limit) => GatewayError::ResponseTooLarge { limit },
                body::CollectError::Body(e) => GatewayError::UpstreamUnavailable {
                    upstream: summary.upstream.clone(),
                    reason: format!("reading response body: {e}"),
                },
            })?;
        for instance in plan.response_body.iter().filter(buffered) {
            let result = {
                let view = view(summary, &parts, hook_state);
                let hook = Hook::OnResponseBody;
                invoke(instance, hook, || {
                    instance.plugin.on_response_body(&view, &bytes)
                })
                .await?
            };
            let Some(mutations) = result else { continue };
            if let Err(e) = mutate::apply_headers(&mut parts.headers, mutations.headers) {
                failure(instance, Hook::OnResponseBody, e)?;
                continue;
            }
            if let Some(new) = mutations.body {
                bytes = new;
            }
        }
        parts.headers.remove(header::TRANSFER_ENCODING);
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
        body = body::full(bytes);
    }

    if !plan.response_chunk.is_empty() {
        let sse = plan.sse_events && streaming;
        // Hooks may change chunk sizes, so the upstream length no longer holds.
        parts.headers.remove(header::CONTENT_LENGTH);
        body = stream::chunk_hooks(
            body,
            set.clone(),
            route.index,
            Arc::new(hook_state.clone()),
            Arc::from(summary.request_id.as_str()),
            sse,
        );
    }
    Ok(Response::from_parts(parts, body))
}

/// What response hooks see of the response as it stands.
fn view<'a>(
    request: &'a RequestSummary,
    parts: &'a http::response::Parts,
    hook_state: &'a RequestContext,
) -> ResponseView<'a> {
    ResponseView {
        request,
        status: parts.status,
        headers: &parts.headers,
        context: hook_state,
    }
}
