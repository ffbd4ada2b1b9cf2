//! Admin API and hot reload: authentication, plugin CRUD with persistence across
//! restarts, validation errors by field, reloads (changed binary, failed prepare), and
//! the SIGHUP and file-watch triggers of the real binary.
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
mod crud;
mod reload;
mod support;
mod tyk;
