//! The plugin contract: native types, the [`Plugin`] trait, the header rule plugins are
//! held to, and the generated gRPC types. Everything that implements or runs plugins
//! (built-ins, remote plugins, [`crate::loader`], the pipeline) builds on it; it builds
//! only on configuration and leaves.

mod api;
mod health;
pub mod proto;
mod rules;
mod types;

pub use api::{BuiltinContext, BuiltinFactory, HookFuture, HookResult, Plugin};
pub use health::{HealthState, PluginHealth};
pub use rules::check_header;
pub use types::*;
