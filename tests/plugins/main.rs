//! Out-of-process plugin tests: the example plugins as real subprocesses (`file://`) and
//! as servers (`grpc://`), crash/restart, hangs, bad handshakes, SSRF and allowlist
//! rules, environment scrubbing and process clean-up; plugins written for Tyk AI Studio.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

#[path = "../common/mod.rs"]
pub mod common;

mod chaos;
mod examples;
mod go_plugin;
mod lifecycle;
mod security;
mod support;
mod tyk;
mod workers;
