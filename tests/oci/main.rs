//! OCI plugin distribution against a real registry (Debian's `docker-registry`, started
//! on a free loopback port per test): pull by tag and digest, auth, tampering,
//! signatures, offline starts, disk-full, concurrent pulls, GC, and the `plugin` CLI.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

#[path = "../common/mod.rs"]
pub mod common;

mod auth;
mod cli;
mod pull;
mod referrers;
mod registry;
mod signatures;
