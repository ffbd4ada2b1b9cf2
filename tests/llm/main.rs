//! LLM traffic: a fake OpenAI/Anthropic provider in the test (real HTTP, real SSE), the
//! gateway injecting provider keys, metering tokens from JSON and streams, enforcing
//! model allowlists and budgets, and the official `openai` Python SDK as a client.
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
mod cross;
mod fallback;
mod keys;
mod provider;
mod python_sdk;
mod traffic;
