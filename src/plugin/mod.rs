//! Plugins: the contract (native types, the [`Plugin`] trait, generated gRPC types), the
//! registry resolving `command` strings, and the immutable [`PluginSet`].

mod api;
mod health;
pub mod proto;
mod registry;
mod set;
mod standin;
mod types;

pub use api::{HookFuture, HookResult, Plugin};
pub use health::{HealthState, PluginHealth};
pub use registry::{BuiltinFactory, Registry};
pub use set::{Instance, PluginSet, RoutePlan, SetError};
pub use types::*;

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
