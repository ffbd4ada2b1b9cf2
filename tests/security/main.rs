//! Security review regressions (issue 13), against real servers on 127.0.0.1:0: path
//! traversal across `strip_prefix`/`rewrite_prefix` through encoded separators and dots,
//! and the SSRF guard for `grpc://` targets that embed or are special-purpose addresses.
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
mod cli;
mod paths;
mod plugins;
mod ssrf;
mod state;
