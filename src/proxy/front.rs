//! The OpenAI-compatible front door of LLM routes: `POST …/chat/completions` on a route
//! whose upstream is an Anthropic provider is sent as `/v1/messages` and answered in the
//! OpenAI shape (JSON, streams event by event, errors), and `GET …/models` lists the
//! models the route allows. The translation itself is `llm::translate`; this file
//! decides when it applies and fits it into the request path.

use crate::body::{self, Body};
use crate::error::GatewayError;
use crate::llm::{Provider, translate};
use crate::pipeline::ctx::RequestCtx;
use crate::routing::Route;
use crate::upstream::Upstream;
use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header};

/// The largest non-streaming provider answer translated (larger ones are refused, 502).
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// What the answer of a translated request needs: the model the client named.
pub(super) struct Front {
    model: String,
}

/// Whether `parts` is an OpenAI chat request to be translated for `upstream`.
pub(super) fn translates(upstream: &Upstream, parts: &http::request::Parts) -> bool {
    parts.method == Method::POST
        && parts.uri.path().ends_with("/chat/completions")
        && upstream
            .llm
            .as_ref()
            .is_some_and(|l| l.provider == Provider::Anthropic)
}

/// Rewrites the request to Anthropic's `/v1/messages` with the translated `body`. The
/// stream always reports usage, so the gateway can meter it; a client that did not ask
/// for the usage chunk does not get it (`llm::strip`).
pub(super) fn request(
    parts: &mut http::request::Parts,
    body: &[u8],
    route: &Route,
    ctx: &mut RequestCtx<'_>,
) -> Result<(Bytes, Front), GatewayError> {
    let mut chat: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| GatewayError::BadRequest(format!("request body is not JSON: {e}")))?;
    if !chat.is_object() {
        return Err(GatewayError::BadRequest(
            "request body must be a JSON object".into(),
        ));
    }
    let model = chat["model"].as_str().unwrap_or_default().to_string();
    // `model_map` names, and `provider/model` names, become the provider's model name;
    // the answer reports the name the client used.
    let mapped = route
        .llm
        .as_ref()
        .and_then(|l| l.model_map.get(&model))
        .unwrap_or(&model);
    let sent = mapped.split_once('/').map_or(mapped.as_str(), |(_, m)| m);
    if sent != model {
        chat["model"] = serde_json::Value::String(sent.to_string());
    }
    let max_tokens = route.llm.as_ref().map_or(4096, |l| l.default_max_tokens);
    let translated = translate::request(&chat, max_tokens)
        .map_err(|e| GatewayError::BadRequest(e.to_string()))?;
    let stream = chat["stream"].as_bool() == Some(true);
    let asked = chat["stream_options"]["include_usage"].as_bool() == Some(true);
    if stream && !asked {
        ctx.hook_state
            .values
            .insert(crate::llm::strip::USAGE_ADDED.into(), "true".into());
    }
    let path = match parts.uri.query() {
        Some(q) => format!("/v1/messages?{q}"),
        None => "/v1/messages".to_string(),
    };
    parts.uri = path
        .parse()
        .map_err(|_| GatewayError::BadRequest("invalid query".into()))?;
    ctx.path_is_final = true;
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok((translated, Front { model }))
}

/// The provider's answer in the OpenAI shape.
pub(super) async fn response(
    response: Response<Body>,
    front: Front,
    upstream: &Upstream,
) -> Result<Response<Body>, GatewayError> {
    let (mut parts, body) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let sse = crate::headers::is_event_stream(&parts.headers);
    if parts.status == StatusCode::OK && sse {
        let stream = translate::Stream::new(&front.model, true);
        return Ok(Response::from_parts(
            parts,
            translate::stream_body(body, stream),
        ));
    }
    let unavailable = |reason: String| GatewayError::UpstreamUnavailable {
        upstream: upstream.name.to_string(),
        reason,
    };
    let bytes = translate::collect(body, MAX_ANSWER_BYTES)
        .await
        .map_err(|e| unavailable(format!("reading the answer to translate: {e}")))?;
    let out = match parts.status {
        StatusCode::OK => translate::response(&bytes, &front.model)
            .map_err(|e| unavailable(format!("untranslatable answer: {e}")))?,
        status => translate::error(status, &bytes),
    };
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(Response::from_parts(parts, body::full(out)))
}

/// Whether `parts` asks a route with `[routes.llm]` for its model list; without that
/// table the request goes to the provider, whose own list it is.
pub(super) fn lists_models(route: &Route, parts: &http::request::Parts) -> bool {
    parts.method == Method::GET && parts.uri.path().ends_with("/models") && route.llm.is_some()
}

/// `GET /v1/models`: the route's `models` and `model_map` names, in the OpenAI shape.
pub(super) fn models(route: &Route, upstream: &Upstream) -> Response<Body> {
    let owner = upstream
        .llm
        .as_ref()
        .map_or("microgateway", |l| l.provider.as_str());
    let names = route
        .llm
        .iter()
        .flat_map(|l| l.models.iter().chain(l.model_map.keys()));
    let mut seen = std::collections::BTreeSet::new();
    let data: Vec<serde_json::Value> = names
        .filter(|n| seen.insert(n.as_str()))
        .map(|id| serde_json::json!({"id": id, "object": "model", "created": 0, "owned_by": owner}))
        .collect();
    let body = serde_json::json!({"object": "list", "data": data}).to_string();
    let mut r = Response::new(body::full(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
