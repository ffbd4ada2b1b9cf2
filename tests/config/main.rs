//! Configuration range tests: every numeric and duration key either is refused by
//! `Config::from_toml` and `microgateway check` with an error naming it, or yields a
//! gateway that starts, serves through a real upstream, answers `/readyz` and shuts down
//! (property tests over extremes), plus the first line of TOML syntax errors and the
//! test harness's own TOML quoting.
//!
//! Every gateway binds 127.0.0.1:0, so the tests run in parallel.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

#[path = "../common/mod.rs"]
pub mod common;

mod check;
mod network;
mod quoting;
mod ranges;
