//! Native (in-process) types of the plugin contract: stages, views handed to hooks and
//! the decisions hooks return. Remote plugins convert these to and from `proto`.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

pub use crate::hook::{Hook, HookType};

/// How a response plugin wants to see the body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BodyMode {
    /// Not at all.
    #[default]
    None,
    /// The whole body, buffered by the gateway (`OnResponseBody`).
    Buffered,
    /// The whole body of responses that are not event streams; a `text/event-stream`
    /// response passes this plugin's `OnResponseBody` by, unbuffered, so streaming
    /// stays streaming (Tyk AI Studio's `OnBeforeWrite` sees whole bodies only).
    BufferedUnlessStream,
    /// Each body frame (`OnResponseChunk`).
    Chunks,
    /// Each complete SSE event (`OnResponseChunk` with `sse_event = true`).
    SseEvents,
}

/// What a plugin declares about itself.
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    /// The name the plugin gives itself (logs only; the instance name is the config's).
    pub name: String,
    /// Free-form version string reported by the plugin, shown in logs and health.
    pub version: String,
    /// Hooks the plugin implements.
    pub hooks: Vec<Hook>,
    /// Response body access.
    pub response_body: BodyMode,
    /// Whether request hooks need the request body.
    pub request_body: bool,
    /// JSON Schema of the config object (informational).
    pub config_schema: String,
}

impl Manifest {
    /// True when the plugin implements `hook`.
    pub fn implements(&self, hook: Hook) -> bool {
        self.hooks.contains(&hook)
    }
}

/// The authenticated caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthInfo {
    /// Caller identity (user, key id, subject).
    pub identity: String,
    /// Application the caller belongs to.
    pub app_id: String,
    /// Extra claims as ordered pairs; later hooks and upstream headers may read them.
    pub claims: Vec<(String, String)>,
    /// Plugin instance that authenticated the request.
    pub plugin: String,
}

/// State shared by all hooks of one request.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// Free-form values set by hooks for later hooks.
    pub values: HashMap<String, String>,
    /// Set once the auth stage succeeded.
    pub auth: Option<AuthInfo>,
}

/// What request-stage hooks see.
#[derive(Debug)]
pub struct RequestView<'a> {
    /// The request id (`server.request_id_header`), as sent upstream and back.
    pub request_id: &'a str,
    /// Matched route name.
    pub route: &'a str,
    /// The TCP peer's address (not `X-Forwarded-For`, which a client can forge).
    pub client_ip: IpAddr,
    /// Whether the client connection is TLS.
    pub tls: bool,
    /// Host the client addressed.
    pub host: &'a str,
    /// The method as received; plugins cannot change it.
    pub method: &'a Method,
    /// Request URI, including earlier hooks' path/query changes.
    pub uri: &'a Uri,
    /// Request headers, including earlier hooks' changes.
    pub headers: &'a HeaderMap,
    /// The buffered body, when a plugin of the route asked for it.
    pub body: Option<&'a Bytes>,
    /// The LLM provider of the route's upstream, for LLM routes.
    pub llm: Option<crate::config::Provider>,
    /// Shared per-request context.
    pub context: &'a RequestContext,
}

/// Header changes requested by a hook. Names and values are already typed; the pipeline
/// still rejects framing and hop-by-hop names and control characters.
#[derive(Debug, Clone, Default)]
pub struct HeaderMutations {
    /// Replace all values of these names.
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// Append these values.
    pub add: Vec<(HeaderName, HeaderValue)>,
    /// Remove these names.
    pub remove: Vec<HeaderName>,
}

impl HeaderMutations {
    /// True when nothing changes.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

/// Authentication outcome of an auth hook.
#[derive(Debug, Clone, Default)]
pub struct AuthResult {
    /// Identity of the caller.
    pub identity: String,
    /// The application the caller belongs to; budgets and LLM metering key on it.
    pub app_id: String,
    /// Extra claims as ordered pairs, kept in the request's `AuthInfo`.
    pub claims: Vec<(String, String)>,
    /// How long the result may be cached for the same credentials.
    pub cache_ttl: Option<Duration>,
}

/// Changes a `Continue` decision applies to the request.
#[derive(Debug, Clone, Default)]
pub struct Mutations {
    /// Header changes applied to the upstream request, validated before use.
    pub headers: HeaderMutations,
    /// New upstream path (final, not rewritten by the route).
    pub path: Option<String>,
    /// New query string without `?`.
    pub query: Option<String>,
    /// New request body.
    pub body: Option<Bytes>,
    /// Context values for later hooks.
    pub context: Vec<(String, String)>,
    /// Auth stage: the caller is authenticated as this.
    pub auth: Option<AuthResult>,
}

/// One whole message of an upgraded WebSocket, as a message hook sees it.
#[derive(Debug)]
pub struct MessageView<'a> {
    /// The request id of the upgrade request.
    pub request_id: &'a str,
    /// Matched route name.
    pub route: &'a str,
    /// True when the client sent it (to the upstream), false for the upstream's.
    pub from_client: bool,
    /// A text message (UTF-8); otherwise binary.
    pub text: bool,
    /// The message, reassembled from its frames.
    pub payload: &'a Bytes,
}

/// What a message hook does with a WebSocket message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageAction {
    /// Passed on unchanged.
    Pass,
    /// Passed on as this payload instead (a text message must stay UTF-8).
    Replace(Bytes),
    /// Not passed on.
    Drop,
}

/// A response produced by a plugin instead of the upstream.
#[derive(Debug, Clone)]
pub struct ImmediateResponse {
    /// Status of the answer given instead of calling the upstream.
    pub status: StatusCode,
    /// Headers of that answer; framing headers are refused, the gateway sets them.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Body of that answer, sent with a matching `Content-Length`.
    pub body: Bytes,
}

/// The result of a request-stage hook.
#[derive(Debug, Clone)]
pub enum Decision {
    /// Go on, applying the mutations.
    Continue(Mutations),
    /// Answer the client now.
    Respond(ImmediateResponse),
}

impl Decision {
    /// Continue without changes.
    pub fn pass() -> Decision {
        Decision::Continue(Mutations::default())
    }
}

/// What response hooks see.
#[derive(Debug)]
pub struct ResponseView<'a> {
    /// The request, as forwarded.
    pub request: &'a RequestSummary,
    /// Upstream status, including earlier hooks' changes.
    pub status: StatusCode,
    /// Response headers, including earlier hooks' changes.
    pub headers: &'a HeaderMap,
    /// Shared per-request context.
    pub context: &'a RequestContext,
}

/// The parts of a request kept for response hooks and data collection.
#[derive(Debug, Clone)]
pub struct RequestSummary {
    /// The request id, as sent upstream and back.
    pub request_id: String,
    /// The matched route's name (as in metrics labels).
    pub route: String,
    /// Upstream group name.
    pub upstream: String,
    /// The TCP peer's address (not `X-Forwarded-For`).
    pub client_ip: IpAddr,
    /// Whether the client connection is TLS.
    pub tls: bool,
    /// Host the client addressed.
    pub host: String,
    /// The method as received.
    pub method: Method,
    /// URI as received from the client.
    pub uri: Uri,
    /// Request headers after request hooks.
    pub headers: HeaderMap,
    /// The LLM provider of the upstream, for LLM routes.
    pub llm: Option<crate::config::Provider>,
}

/// Changes from `OnResponseHeaders`.
#[derive(Debug, Clone, Default)]
pub struct ResponseMutations {
    /// Header changes applied to the response before its head is sent.
    pub headers: HeaderMutations,
    /// A replacement status; `None` keeps the upstream's.
    pub status: Option<StatusCode>,
    /// Values added to the request context, visible to later hooks and collection.
    pub context: Vec<(String, String)>,
}

/// Changes from `OnResponseBody`.
#[derive(Debug, Clone, Default)]
pub struct BodyMutations {
    /// A replacement body; `None` keeps the buffered one (`Content-Length` follows).
    pub body: Option<Bytes>,
    /// Header changes, still possible because the head waits for a buffered body.
    pub headers: HeaderMutations,
}

/// One body frame or SSE event shown to `OnResponseChunk`.
#[derive(Debug)]
pub struct ChunkView<'a> {
    /// The request id of the response this chunk belongs to.
    pub request_id: &'a str,
    /// Zero-based chunk/event number.
    pub index: u64,
    /// The frame's bytes, or one whole SSE event including its blank line.
    pub data: &'a Bytes,
    /// True when `data` is one complete SSE event.
    pub sse_event: bool,
    /// Shared per-request context.
    pub context: &'a RequestContext,
}

/// What to do with a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkAction {
    /// Forward the chunk as it is (the cheapest answer: nothing is copied).
    Pass,
    /// Forward these bytes instead.
    Replace(Bytes),
    /// Forward nothing for this chunk; the stream goes on.
    Drop,
}

/// Summary handed to `OnStreamComplete` and `Collect` after the response finished.
#[derive(Debug, Clone)]
pub struct CompletedExchange {
    /// The request as the upstream saw it (after request hooks).
    pub request: RequestSummary,
    /// Shared per-request context at the end of the request.
    pub context: RequestContext,
    /// Final status sent to the client.
    pub status: StatusCode,
    /// Time from arrival to the end of the response body.
    pub duration: Duration,
    /// Request body bytes forwarded (when known).
    pub request_bytes: u64,
    /// Response body bytes sent to the client.
    pub response_bytes: u64,
    /// Number of body chunks (or SSE events) sent.
    pub chunks: u64,
    /// The response body as sent, up to the accumulation limit (only with stream-complete hooks).
    pub accumulated: Bytes,
    /// Whether `accumulated` was cut at the limit.
    pub truncated: bool,
    /// Arrival time, Unix milliseconds.
    pub started_at_ms: i64,
    /// Time from arrival to the first response body byte sent, when one was.
    pub first_byte: Option<Duration>,
    /// The response was a server-sent event stream.
    pub streamed: bool,
    /// Token usage, for exchanges with an LLM upstream whose response reported it
    /// (for a cache hit: the usage of the cached response, which cost no tokens).
    pub usage: Option<TokenUsage>,
    /// What the exchange cost in US dollars by the price table; `None` when the model
    /// has no price or no usage was reported, `Some(0.0)` for a cache hit.
    pub cost_usd: Option<f64>,
    /// The response came from the gateway's response cache.
    pub cache_hit: bool,
}

/// Tokens used by one exchange.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenUsage {
    /// Model named by the response (or the request when the response does not say).
    pub model: String,
    /// Prompt / input tokens, all of them: for Anthropic, `input_tokens` plus the
    /// cache reads and writes, so the meaning is OpenAI's `prompt_tokens` for both.
    pub prompt_tokens: u64,
    /// Completion / output tokens.
    pub completion_tokens: u64,
    /// Of `prompt_tokens`, those read from the provider's prompt cache (OpenAI
    /// `prompt_tokens_details.cached_tokens`, Anthropic `cache_read_input_tokens`).
    pub cached_input_tokens: u64,
    /// Of `prompt_tokens`, those written to the provider's prompt cache (Anthropic
    /// `cache_creation_input_tokens`).
    pub cache_creation_tokens: u64,
}

impl TokenUsage {
    /// Prompt plus completion tokens.
    pub fn total(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }
}

/// Errors a plugin call can produce.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PluginError {
    /// The plugin reported a failure.
    #[error("{0}")]
    Failed(String),
    /// The call did not finish within the plugin's timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The plugin returned something the gateway refuses (bad header, bad status).
    #[error("invalid result: {0}")]
    Invalid(String),
    /// The plugin is not reachable (crashed, restarting, disconnected).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The plugin could not be configured or loaded.
    #[error("{0}")]
    Load(String),
    /// The plugin command breaks the operator's security policy (allowlist, file rules,
    /// internal address): a configuration error, never loaded later by a retry.
    #[error("{0}")]
    Refused(String),
}
