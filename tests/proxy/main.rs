//! Proxy integration tests: routing, proxy header semantics, streaming, HTTP/2 and TLS on
//! both sides, request limits, timeouts, graceful shutdown (in-process and the real binary
//! under SIGTERM), the admin listener, and configuration loading and the `check` command.
//!
//! Every test starts its own gateway and upstreams on 127.0.0.1:0, so they run in parallel.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

#[path = "../common/mod.rs"]
pub mod common;

mod admin;
mod config;
mod connections;
mod failover;
mod health;
mod limits;
mod protocols;
mod retry;
mod routing;
mod semantics;
mod shutdown;
mod stall;
mod streaming;
mod timeouts;
mod websocket;
mod websocket_idle;
