//! Hook pipeline tests: stage order, short-circuits, auth policies, timeouts, header
//! validation, SSE chunk hooks, data collection, built-in plugins and plugin-set swaps
//! under traffic. Real gateway, real upstream on 127.0.0.1:0, in-process plugins.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

#[path = "../common/mod.rs"]
pub mod common;

mod builtins;
mod stages;
mod streaming;
mod support;
mod swap;
