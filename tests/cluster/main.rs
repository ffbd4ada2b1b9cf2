//! A fleet of real gateway processes sharing one real `redis-server` (Debian's) on
//! loopback: shared request budgets, token budgets and rate limits, budgets that survive
//! a restart, Redis killed and restarted under each `on_unavailable`, and `rediss://`
//! with a test CA.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

#[path = "../common/mod.rs"]
pub mod common;

mod cache;
mod fleet;
mod outage;
mod plugins;
mod sentinel;
