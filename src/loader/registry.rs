//! Resolving a plugin `command` to a running instance.
//!
//! `builtin://NAME` looks up an in-process factory. Embedders and tests register their
//! own factories with [`Registry::register`], so custom in-process plugins go through the
//! exact same pipeline as the built-in ones.

use crate::config::PluginConfig;
use crate::plugin::{BuiltinFactory, Plugin, PluginError};
use std::collections::HashMap;
use std::sync::Arc;

/// Known plugin sources.
#[derive(Clone, Default)]
pub struct Registry {
    builtins: HashMap<String, BuiltinFactory>,
    runtime: crate::config::PluginRuntimeConfig,
    oci: crate::config::OciConfig,
    oci_store: Arc<std::sync::OnceLock<Arc<crate::oci::OciStore>>>,
    context: crate::plugin::BuiltinContext,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.builtins.keys().collect();
        names.sort();
        f.debug_struct("Registry")
            .field("builtins", &names)
            .finish()
    }
}

impl Registry {
    /// A registry with every built-in plugin of this crate.
    pub fn with_builtins() -> Registry {
        let mut registry = Registry::default();
        for (name, factory) in crate::builtin::factories() {
            registry.builtins.insert(name.to_string(), factory);
        }
        registry
    }

    /// Adds or replaces the factory for `builtin://NAME`.
    pub fn register(
        &mut self,
        name: &str,
        factory: impl Fn(&PluginConfig) -> Result<Arc<dyn Plugin>, PluginError> + Send + Sync + 'static,
    ) {
        self.builtins
            .insert(name.to_string(), Arc::new(move |c, _: &_| factory(c)));
    }

    /// Sets the fleet's Redis that built-ins with shared limits use.
    pub fn set_cluster(&mut self, cluster: Option<Arc<crate::cluster::Cluster>>) {
        self.context.cluster = cluster;
    }

    /// The fleet's Redis, when `[cluster]` is configured.
    pub fn cluster(&self) -> Option<&Arc<crate::cluster::Cluster>> {
        self.context.cluster.as_ref()
    }

    /// Sets how out-of-process plugins are started and restricted, and where `oci://`
    /// plugins come from.
    pub fn set_runtime(
        &mut self,
        runtime: crate::config::PluginRuntimeConfig,
        oci: crate::config::OciConfig,
    ) {
        self.runtime = runtime;
        self.oci = oci;
        self.oci_store = Arc::default();
    }

    /// The OCI store, created on first use.
    pub fn oci_store(&self) -> Result<Arc<crate::oci::OciStore>, PluginError> {
        if let Some(store) = self.oci_store.get() {
            return Ok(store.clone());
        }
        let settings = crate::oci::settings::OciSettings::from_config(&self.oci)
            .map_err(|e| PluginError::Load(e.to_string()))?;
        let store = Arc::new(
            crate::oci::OciStore::new(settings).map_err(|e| PluginError::Load(e.to_string()))?,
        );
        Ok(self.oci_store.get_or_init(|| store).clone())
    }

    /// Names of registered in-process plugins, sorted.
    pub fn builtin_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.builtins.keys().cloned().collect();
        names.sort();
        names
    }

    /// Checks an entry without starting anything external: built-ins are constructed
    /// (which validates their `config`) and dropped.
    pub fn validate(&self, config: &PluginConfig) -> Result<(), PluginError> {
        match config.command.strip_prefix("builtin://") {
            Some(_) => self.construct_builtin(config).map(drop),
            None => Ok(()),
        }
    }

    fn construct_builtin(&self, config: &PluginConfig) -> Result<Arc<dyn Plugin>, PluginError> {
        let name = config
            .command
            .strip_prefix("builtin://")
            .unwrap_or_default();
        let factory = self.builtins.get(name).ok_or_else(|| {
            PluginError::Load(format!(
                "unknown built-in plugin {name:?}; known: {}",
                self.builtin_names().join(", ")
            ))
        })?;
        factory(config, &self.context)
    }

    /// Creates and initialises the instance described by `config`.
    pub async fn load(&self, config: &PluginConfig) -> Result<Arc<dyn Plugin>, PluginError> {
        if config.command.starts_with("builtin://") {
            return self.construct_builtin(config);
        }
        let command = config.effective_command();
        if let Some(reference) = command.strip_prefix("oci://") {
            let fetched = self
                .oci_store()?
                .fetch(reference)
                .await
                .map_err(|e| PluginError::Load(format!("{command}: {e}")))?;
            let plugin =
                crate::remote::RemotePlugin::launch_file(config, fetched.path, &self.runtime)
                    .await?;
            return Ok(Arc::new(plugin));
        }
        if ["file://", "grpc://", "grpcs://"]
            .iter()
            .any(|s| config.command.starts_with(s))
        {
            let plugin = crate::remote::RemotePlugin::load(config, &self.runtime).await?;
            return Ok(Arc::new(plugin));
        }
        Err(PluginError::Load(format!(
            "plugin command {:?} is not supported by this build",
            config.command
        )))
    }
}
