//! The OpenAI-compatible front door of LLM routes: `POST …/chat/completions` on a route
//! with an Anthropic group is sent to that group as `/v1/messages` and answered in the
//! OpenAI shape (JSON, streams event by event, errors), `model_map` names the model per
//! provider family and the order the families are tried in (cross-family fallback),
//! and `GET …/models` lists the models the route allows. The translation itself is
//! `llm::translate`; this file decides when it applies and fits it into the request
//! path.

use crate::body::{self, Body};
use crate::error::GatewayError;
use crate::llm::{Provider, targets, translate};
use crate::pipeline::ctx::RequestCtx;
use crate::routing::Route;
use crate::upstream::Upstream;
use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header};

/// The largest non-streaming provider answer translated (larger ones are refused, 502).
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// An OpenAI chat request as each provider family of its route gets it: the groups in
/// the order they are tried, and the body of each family that is tried. Anthropic
/// groups get it translated to `/v1/messages`; OpenAI groups get it with the model
/// named for them. Groups of a family no target names are not tried.
#[derive(Debug)]
pub(super) struct Chat {
    /// The model the client named, reported in a translated answer.
    pub(super) model: String,
    /// Upstream indices of the route's groups, in the order tried.
    pub(super) order: Vec<usize>,
    openai: Option<Bytes>,
    anthropic: Option<Bytes>,
}

/// The path of Anthropic's messages API, where translated requests go.
const MESSAGES_PATH: &str = "/v1/messages";

impl Chat {
    /// The body for a group of `provider`, and the path it goes to when that is not the
    /// route's own rewrite of the client's path.
    pub(super) fn for_family(
        &self,
        provider: Option<Provider>,
    ) -> Option<(Bytes, Option<&'static str>)> {
        match provider? {
            Provider::Openai => self.openai.clone().map(|b| (b, None)),
            Provider::Anthropic => self.anthropic.clone().map(|b| (b, Some(MESSAGES_PATH))),
        }
    }
}

/// The groups of `route` as upstream indices, the route's own first.
fn groups(route: &Route) -> impl Iterator<Item = usize> + '_ {
    std::iter::once(route.upstream).chain(route.fallback.iter().copied())
}

fn family(upstreams: &[Upstream], i: usize) -> Option<Provider> {
    upstreams.get(i)?.llm.as_ref().map(|l| l.provider)
}

/// Whether `parts` is an OpenAI chat request the gateway plans per provider family:
/// the route has an Anthropic group (the front door) or a `model_map`.
pub(super) fn plans(route: &Route, upstreams: &[Upstream], parts: &http::request::Parts) -> bool {
    parts.method == Method::POST
        && parts.uri.path().ends_with("/chat/completions")
        && family(upstreams, route.upstream).is_some()
        && (groups(route).any(|i| family(upstreams, i) == Some(Provider::Anthropic))
            || route.llm.as_ref().is_some_and(|l| !l.model_map.is_empty()))
}

/// Plans the chat request with the OpenAI-shaped `body`. A stream always reports usage,
/// so the gateway can meter it; a client that did not ask for the usage chunk does not
/// get it (`llm::strip`).
pub(super) fn plan(
    body: &[u8],
    route: &Route,
    upstreams: &[Upstream],
    ctx: &mut RequestCtx<'_>,
) -> Result<Chat, GatewayError> {
    let chat: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| GatewayError::BadRequest(format!("request body is not JSON: {e}")))?;
    if !chat.is_object() {
        return Err(GatewayError::BadRequest(
            "request body must be a JSON object".into(),
        ));
    }
    let model = chat["model"].as_str().unwrap_or_default().to_string();
    let own = family(upstreams, route.upstream).unwrap_or(Provider::Openai);
    let targets = targets::targets(route.llm.as_ref().map(|l| &l.model_map), &model);
    // Families in the order their first target names them; groups in route order.
    let mut order = Vec::new();
    for t in &targets {
        let wanted = t.provider.unwrap_or(own);
        for i in groups(route).filter(|&i| family(upstreams, i) == Some(wanted)) {
            if !order.contains(&i) {
                order.push(i);
            }
        }
    }
    if order.is_empty() {
        return Err(GatewayError::BadRequest(format!(
            "model {model:?} names a provider this route has no upstream for"
        )));
    }
    let tried = |f: Provider| order.iter().any(|&i| family(upstreams, i) == Some(f));
    let stream = chat["stream"].as_bool() == Some(true);
    let asked = chat["stream_options"]["include_usage"].as_bool() == Some(true);
    let renamed = |name: &str| {
        let mut c = chat.clone();
        c["model"] = serde_json::Value::String(name.to_string());
        c
    };
    let openai = match targets::model_for(&targets, Provider::Openai, own) {
        Some(name) if tried(Provider::Openai) => {
            let mut c = renamed(name);
            if stream && !asked {
                c["stream_options"] = serde_json::json!({"include_usage": true});
            }
            Some(Bytes::from(c.to_string()))
        }
        _ => None,
    };
    let anthropic = match targets::model_for(&targets, Provider::Anthropic, own) {
        Some(name) if tried(Provider::Anthropic) => {
            let max_tokens = route.llm.as_ref().map_or(4096, |l| l.default_max_tokens);
            let translated = translate::request(&renamed(name), max_tokens)
                .map_err(|e| GatewayError::BadRequest(e.to_string()))?;
            Some(translated)
        }
        _ => None,
    };
    if stream && !asked {
        ctx.hook_state
            .values
            .insert(crate::llm::strip::USAGE_ADDED.into(), "true".into());
    }
    Ok(Chat {
        model,
        order,
        openai,
        anthropic,
    })
}

/// The provider's answer in the OpenAI shape.
pub(super) async fn response(
    response: Response<Body>,
    model: &str,
    upstream: &Upstream,
) -> Result<Response<Body>, GatewayError> {
    let (mut parts, body) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let sse = crate::headers::is_event_stream(&parts.headers);
    if parts.status == StatusCode::OK && sse {
        let stream = translate::Stream::new(model, true);
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
        StatusCode::OK => translate::response(&bytes, model)
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
