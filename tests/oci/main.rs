//! OCI plugin distribution against a real registry (Debian's `docker-registry`, started
//! on a free loopback port per test): pull by tag and digest, auth, tampering,
//! signatures, offline starts, disk-full, concurrent pulls, GC, the `plugin` CLI,
//! container images, ORAS pushes, hostile layers and the cache-swap attack.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

mod auth;
mod cache_swap;
mod cli;
#[path = "../common/mod.rs"]
pub mod common;
mod hostile;
mod images;
mod layout;
mod oras;
mod pull;
mod referrers;
mod registry;
mod signatures;
mod tyk;
