//! Shared integration-test harness: one fake upstream ([`TestUpstream`]: echo, SSE,
//! chunked streams, delays, hop-by-hop headers, a request log; HTTP/1.1, h2c, optional
//! TLS), a throw-away PKI, test clients (h1, h2c, h2/TLS, raw TCP), gateway configuration
//! builders ([`GatewayConfig`], [`PluginEntry`]) and a driver for the real binary.
//!
//! Everything binds `127.0.0.1:0`, so tests run in parallel without port clashes.
//! Include it from a test crate root with `#[path = "../common/mod.rs"] pub mod common;`:
//! each crate uses a different subset, and as a public module the rest counts as exported
//! rather than dead code.

pub mod binary;
pub mod client;
pub mod faulty;
pub mod gateway;
pub mod golang;
pub mod pki;
pub mod process;
pub mod redis;
pub mod serve;
pub mod upstream;
pub mod websocket;

pub use client::{Reply, get, get_with, request};
pub use gateway::{GatewayConfig, PluginEntry, closed_port, single, single_with};
pub use pki::TestPki;
pub use upstream::{Echo, Respond, TestUpstream};
