//! Loading plugins: the registry resolving `command` strings to instances (built-in,
//! `file://`, `grpc://`, `oci://`), the immutable [`PluginSet`] compiled from them, and
//! the unavailable stand-ins of plugins that could not load, with their retry.
//!
//! It sits above the plugin contract and every kind of plugin ([`crate::builtin`],
//! [`crate::remote`], [`crate::oci`]), and below the pipeline that runs a set's plans.

mod registry;
mod retry;
mod set;
mod standin;

pub use registry::Registry;
pub use set::{Instance, PluginSet, RoutePlan, SetError};

use crate::plugin::{HookFuture, HookResult, PluginError};

/// Calls `shutdown` on an instance's plugin under its timeout.
pub(crate) async fn pipeline_shutdown(instance: &Instance) -> HookResult<()> {
    match instance.plugin.shutdown() {
        HookFuture::Ready(r) => r,
        HookFuture::Pending(f) => {
            tokio::time::timeout(instance.timeout.max(std::time::Duration::from_secs(5)), f)
                .await
                .unwrap_or(Err(PluginError::Timeout(instance.timeout)))
        }
    }
}
