//! Which plugin commands the admin API may create, beyond what the configuration rules
//! allow: the network is not trusted the way the configuration file is.
//!
//! Each rule answers with the message for the record's `command` field.

use super::records::PluginRecord;
use crate::config::PluginRuntimeConfig;
use crate::remote::security::{Policy, STANDARD_DIRS, check_grpc_target};

/// The plugin command policy of `runtime`, as the loaders build it.
fn command_policy(runtime: &PluginRuntimeConfig) -> Result<Policy, String> {
    Policy::new(
        &runtime.command_allowlist,
        runtime.allow_internal_network_access,
    )
    .map(|p| p.block_internal(runtime.block_internal_urls))
}

/// Through the API, a `file://` command must lie in a standard plugin directory or
/// match an allowlisted path pattern, unless `plugin_runtime.allow_api_file_paths`.
pub(super) fn api_file_rule(
    runtime: &PluginRuntimeConfig,
    record: &PluginRecord,
) -> Result<(), String> {
    if !record.command.starts_with("file://") {
        return Ok(());
    }
    let policy = command_policy(runtime)?;
    let canonical = policy.check_file(&record.command).map_err(|e| e.rule)?;
    let standard = STANDARD_DIRS.iter().any(|d| canonical.starts_with(d));
    if standard || policy.has_path_rules() || runtime.allow_api_file_paths {
        return Ok(());
    }
    Err(format!(
        "{} is outside the standard plugin directories ({}); through the API only those, PLUGIN_COMMAND_ALLOWLIST paths, or any path with plugin_runtime.allow_api_file_paths = true",
        canonical.display(),
        STANDARD_DIRS.join(", ")
    ))
}

/// A `grpc://` or `grpcs://` command passes the same resolution and address checks that
/// precede a dial when the plugin is created.
pub(super) async fn grpc_target_rule(
    runtime: &PluginRuntimeConfig,
    record: &PluginRecord,
) -> Result<(), String> {
    if !(record.command.starts_with("grpc://") || record.command.starts_with("grpcs://")) {
        return Ok(());
    }
    let policy = command_policy(runtime)?;
    check_grpc_target(&policy, &record.command)
        .await
        .map(drop)
        .map_err(|e| e.rule)
}
