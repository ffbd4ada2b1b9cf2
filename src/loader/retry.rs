//! Retrying stand-ins: a new set in which every stand-in that now loads is replaced by
//! the real plugin, sharing every other instance with the running set.

use super::registry::Registry;
use super::set::{Instance, PluginSet};
use std::sync::Arc;

impl PluginSet {
    /// True when some instance is a stand-in.
    pub fn has_stand_ins(&self) -> bool {
        self.instances().iter().any(|i| i.load_error.is_some())
    }

    /// Tries to load every stand-in again. `None` when none loaded; otherwise a new set
    /// sharing every other instance with this one, so swapping it in needs no shutdown
    /// of the old set (only the replaced stand-ins are dropped).
    pub async fn retry_stand_ins(&self, registry: &Registry) -> Option<PluginSet> {
        let mut replaced = false;
        let mut instances = Vec::with_capacity(self.instances().len());
        for instance in self.instances() {
            if instance.load_error.is_none() {
                instances.push(instance.clone());
                continue;
            }
            let config = &instance.config;
            match registry.load(config).await {
                Ok(plugin) => {
                    let fresh = Arc::new(Instance::new(config, plugin));
                    if config.hook_type.hooks().iter().any(|&h| fresh.runs(h)) {
                        tracing::info!(plugin = %config.name, "plugin loaded on retry");
                        instances.push(fresh);
                        replaced = true;
                    } else {
                        tracing::error!(plugin = %config.name, "plugin loaded on retry but implements none of its stage's hooks");
                        let _ = super::pipeline_shutdown(&fresh).await;
                        instances.push(instance.clone());
                    }
                }
                Err(e) => {
                    tracing::warn!(plugin = %config.name, error = %e, "plugin still cannot load");
                    instances.push(instance.clone());
                }
            }
        }
        replaced.then(|| PluginSet::assemble(instances, self.routes()))
    }
}
