//! Resilience suite: the real gateway binary under attack and failure, with every test
//! ending by checking that the process is back to its baseline of open descriptors and
//! child processes and that SIGTERM stops it cleanly with no plugin process left.
//!
//! Peers are real: raw sockets for request smuggling, python `h2` for HTTP/2 floods,
//! `slowhttptest` for slowloris and slow bodies, example plugin subprocesses that crash
//! or hang, and Debian's `docker-registry` taken down during a reload.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

#[path = "../common/mod.rs"]
pub mod common;

mod h2flood;
mod oversized;
mod plugins;
#[path = "../oci/registry.rs"]
#[allow(dead_code)]
mod registry;
mod reload;
mod slow;
mod smuggling;
mod support;
mod traffic;
mod upgrade;
