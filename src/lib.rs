//! microgateway: an embedded edge gateway for LLM and API traffic.
//!
//! Code map (see ARCHITECTURE.md for the invariants):
//! - [`config`]: typed configuration, loaded from the embedded default, a file and the environment.
//! - [`server`]: listeners, connection handling, limits, graceful shutdown.
//! - [`proxy`]: the request path: limits, routing, hooks, forwarding, error rescue.
//! - [`plugin`]: the plugin contract (trait, native types, the header rule, proto).
//! - [`loader`]: the registry resolving plugin commands, plugin sets and stand-ins.
//! - [`pipeline`]: running a route's plugin plan: request, response, chunk and tail hooks.
//! - [`llm`]: LLM providers: key injection, token usage, budgets, the `llm_policy` built-in.
//! - [`oci`]: `oci://` plugins: pull, verify (digest, cosign), cache, GC, push/sign.
//! - [`remote`]: out-of-process plugins (`file://` subprocesses, `grpc://` servers), security rules.
//! - [`sdk`]: the Rust plugin SDK (implement `Handler`, call `serve`).
//! - [`builtin`]: in-process plugins (API keys, headers, IP filter, rate limit, request guard).
//! - [`routing`]: the route table (host + longest path prefix, rewrites).
//! - [`upstream`]: upstream groups, round robin, pooled h1/h2/TLS clients.
//! - [`target`]: parsing of upstream target URLs, shared by validation and upstreams.
//! - [`hook`]: plugin stages (`hook_type`) and the hook RPCs, shared by config and contract.
//! - [`headers`]: hop-by-hop stripping, forwarding headers, request ids.
//! - [`error`]: the request-path error type and its single mapping to HTTP responses.
//! - [`body`]: the streaming body type shared by the whole request path.
//! - [`deadline`]: deadline and timer arithmetic that cannot overflow.
//! - [`task`]: the only ways to start a task (a kept handle, or a named detached task).
//! - [`admin`]: health, readiness and metrics endpoints, the plugin API and its guards.
//! - [`metrics`]: the Prometheus recorder and metric names.
//! - [`logging`]: tracing subscriber setup.
//! - [`sdnotify`]: systemd readiness/reload/stop notifications.
//! - [`worker`]: proxy worker threads (one single-threaded runtime per core).

pub mod admin;
pub mod body;
pub mod builtin;
pub mod cluster;
pub mod config;
pub mod deadline;
pub mod error;
pub mod headers;
pub mod hook;
pub mod llm;
pub mod loader;
pub mod logging;
pub mod metrics;
pub mod oci;
pub mod pipeline;
pub mod plugin;
pub mod proxy;
pub mod remote;
pub mod routing;
pub mod sdk;
pub mod sdnotify;
pub mod server;
pub mod target;
pub mod task;
pub mod upgrade;
pub mod upstream;
pub mod worker;

pub use config::Config;
pub use server::{RunningGateway, start, start_with};
