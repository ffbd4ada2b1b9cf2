//! The plugin manager: merges configuration-file plugins with API plugins, applies
//! changes through a full reload, and persists API plugins.
//!
//! Every change (API call, SIGHUP, config-file change, health-triggered reload) takes the
//! same path under one lock: compute the complete plugin list, validate it against the
//! configuration, build the whole new set off the request path, persist the list, and
//! only then swap the set in. A failure leaves both the running set and the stored state
//! untouched, so the answer, the running set and a restart always agree.

use super::commands;
use super::records::{self, FieldErrors, PluginRecord, Source};
use crate::config::{Config, PluginConfig};
use crate::plugin::HealthState;
use crate::proxy::Proxy;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why an admin operation failed; mapped to HTTP in `admin::api`.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// No plugin with this id.
    #[error("no plugin with id {0:?}")]
    NotFound(String),
    /// The id or name is taken, or the plugin is defined in the configuration file.
    #[error("{0}")]
    Conflict(String),
    /// The body is invalid; `fields` names each problem.
    #[error("invalid plugin definition")]
    Invalid(FieldErrors),
    /// Building the new plugin set failed; the running set is unchanged.
    #[error("reload failed, running plugins unchanged: {0}")]
    Reload(String),
    /// The state file could not be written.
    #[error("cannot persist plugins: {0}")]
    Persist(String),
}

/// Drain time given to requests still using a replaced plugin set.
const DRAIN: Duration = Duration::from_secs(30);

/// Owner of the plugin list.
pub struct PluginManager {
    proxy: Arc<Proxy>,
    config: Mutex<Config>,
    config_path: Option<PathBuf>,
    state_path: PathBuf,
    api: Mutex<Vec<PluginRecord>>,
    serial: tokio::sync::Mutex<()>,
    fleet: Option<super::fleet::Fleet>,
}

impl PluginManager {
    /// Loads persisted API plugins (they are applied by the caller's first reload).
    pub fn new(
        proxy: Arc<Proxy>,
        config: Config,
        config_path: Option<PathBuf>,
    ) -> Result<PluginManager, String> {
        let state_path = records::state_path(&config.admin.data_dir);
        let api = records::load_state(&state_path)?;
        Ok(PluginManager {
            config: Mutex::new(config),
            config_path,
            state_path,
            api: Mutex::new(api),
            serial: tokio::sync::Mutex::new(()),
            fleet: super::fleet::Fleet::new(proxy.registry().cluster()),
            proxy,
        })
    }

    fn config(&self) -> Config {
        self.config
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(super) fn api(&self) -> Vec<PluginRecord> {
        self.api.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The fleet's plugin records, with `cluster.plugins = true`.
    pub fn fleet(&self) -> Option<&super::fleet::Fleet> {
        self.fleet.as_ref()
    }

    /// Applies API plugins published by another gateway of the fleet (an unchanged
    /// list is not rebuilt).
    pub(super) async fn apply_fleet(&self, api: Vec<PluginRecord>) -> Result<(), ManagerError> {
        let _serial = self.serial.lock().await;
        if api == self.api() {
            return Ok(());
        }
        self.apply(api, None).await
    }

    /// After a change through this gateway's API: the fleet's next version.
    async fn publish(&self) {
        if let Some(fleet) = &self.fleet {
            fleet.publish(&self.api()).await;
        }
    }

    /// The health and balancing state of every upstream group.
    pub fn upstreams(&self) -> Vec<crate::upstream::UpstreamStatus> {
        self.proxy.upstreams().iter().map(|u| u.status()).collect()
    }

    /// Every plugin: configuration-file entries first, then API entries.
    pub fn records(&self) -> Vec<PluginRecord> {
        let mut all: Vec<PluginRecord> = self
            .config()
            .plugins
            .iter()
            .map(PluginRecord::from_config)
            .collect();
        all.extend(self.api());
        all
    }

    /// One plugin by id.
    pub fn get(&self, id: &str) -> Result<PluginRecord, ManagerError> {
        self.records()
            .into_iter()
            .find(|r| r.id == id)
            .ok_or_else(|| ManagerError::NotFound(id.to_string()))
    }

    /// Health of the running instance named like the record.
    pub fn health(&self, record: &PluginRecord) -> serde_json::Value {
        let set = self.proxy.plugins();
        let instance = set.instances().iter().find(|i| *i.name == *record.name);
        match instance {
            Some(i) => {
                let h = i.plugin.health();
                serde_json::json!({ "id": record.id, "name": record.name, "state": h.state, "last_error": h.last_error, "restarts": h.restarts, "contract": h.contract })
            }
            None => serde_json::json!({
                "id": record.id, "name": record.name,
                "state": if record.is_active { "failed" } else { "inactive" },
                "last_error": if record.is_active { Some("not loaded") } else { None }, "restarts": 0
            }),
        }
    }

    /// True when some running instance gave up (state `failed`); stand-ins of plugins
    /// that never loaded are retried by [`PluginManager::retry_stand_ins`] instead.
    pub fn any_failed(&self) -> bool {
        self.proxy
            .plugins()
            .instances()
            .iter()
            .any(|i| i.load_error.is_none() && i.plugin.health().state == HealthState::Failed)
    }

    /// Required plugins that are not serving (stand-ins, or instances that gave up);
    /// `/readyz` is 503 while this is not empty.
    pub fn unready_required(&self) -> Vec<String> {
        self.proxy
            .plugins()
            .instances()
            .iter()
            .filter(|i| i.required)
            .filter(|i| i.load_error.is_some() || i.plugin.health().state == HealthState::Failed)
            .map(|i| i.name.to_string())
            .collect()
    }

    /// Retries plugins that could not load, under the same lock as every other change;
    /// other instances keep running untouched.
    pub async fn retry_stand_ins(&self) -> bool {
        if !self.proxy.plugins().has_stand_ins() {
            return false;
        }
        let _serial = self.serial.lock().await;
        #[expect(clippy::disallowed_methods, reason = "PluginManager is the one path")]
        self.proxy.retry_stand_ins().await
    }

    /// Validates `api` together with the file plugins, returning per-field errors for `focus`.
    fn check(
        &self,
        config: &Config,
        api: &[PluginRecord],
        focus: Option<&str>,
    ) -> Result<Vec<PluginConfig>, ManagerError> {
        let mut plugins = config.plugins.clone();
        plugins.extend(api.iter().map(PluginRecord::to_config));
        let mut candidate = config.clone();
        candidate.plugins = plugins.clone();
        if let Err(e) = candidate.validate() {
            let mut fields = FieldErrors::new();
            let (key, message) = match &e {
                crate::config::ConfigError::Invalid { key, message } => {
                    (key.clone(), message.clone())
                }
                other => ("plugins".to_string(), other.to_string()),
            };
            let field = key
                .rsplit('.')
                .next()
                .unwrap_or("plugins")
                .split('[')
                .next()
                .unwrap_or("plugins")
                .to_string();
            let field = if focus.is_some() && key.starts_with("plugins[") {
                field
            } else {
                key
            };
            fields.insert(field, message);
            return Err(ManagerError::Invalid(fields));
        }
        // The proxy's own registry, so embedders' in-process plugins validate too.
        let registry = self.proxy.registry();
        for p in &plugins {
            if let Err(e) = registry.validate(p) {
                let mut fields = FieldErrors::new();
                fields.insert("config".into(), format!("{}: {e}", p.name));
                return Err(ManagerError::Invalid(fields));
            }
        }
        Ok(plugins)
    }

    /// Prepares the set for `api` (+ file plugins), persists `api`, and only then swaps
    /// the set in: what runs is always what a restart will load. A failure at any step
    /// leaves the running set and the state file as they were.
    async fn apply(&self, api: Vec<PluginRecord>, focus: Option<&str>) -> Result<(), ManagerError> {
        let config = self.config();
        let plugins = self.check(&config, &api, focus)?;
        #[expect(clippy::disallowed_methods, reason = "PluginManager is the one path")]
        let prepared = self
            .proxy
            .prepare_plugins(&plugins, focus.and_then(|id| name_of(&api, id)))
            .await
            .map_err(|e| ManagerError::Reload(crate::error::chain(&e)))?;
        if api != self.api()
            && let Err(e) = records::save_state(&self.state_path, &api)
        {
            prepared.shutdown().await;
            return Err(ManagerError::Persist(e));
        }
        *self.api.lock().unwrap_or_else(|p| p.into_inner()) = api;
        #[expect(clippy::disallowed_methods, reason = "PluginManager is the one path")]
        self.proxy.commit_plugins(prepared, DRAIN);
        Ok(())
    }

    fn taken(&self, record: &PluginRecord, except: Option<&str>) -> Option<ManagerError> {
        self.records()
            .into_iter()
            .filter(|r| Some(r.id.as_str()) != except)
            .find_map(|r| {
                if r.id == record.id {
                    Some(ManagerError::Conflict(format!(
                        "a plugin with id {:?} exists",
                        r.id
                    )))
                } else if r.name == record.name {
                    Some(ManagerError::Conflict(format!(
                        "a plugin named {:?} exists",
                        r.name
                    )))
                } else {
                    None
                }
            })
    }

    /// `POST /api/v1/plugins`.
    pub async fn create(&self, body: &serde_json::Value) -> Result<PluginRecord, ManagerError> {
        let _serial = self.serial.lock().await;
        let record = PluginRecord::from_json(body, None).map_err(ManagerError::Invalid)?;
        if let Some(e) = self.taken(&record, None) {
            return Err(e);
        }
        commands::api_file_rule(&self.config().plugin_runtime, &record).map_err(invalid_command)?;
        let mut api = self.api();
        api.push(record.clone());
        self.apply(api, Some(&record.id)).await?;
        self.publish().await;
        Ok(record)
    }

    /// `PUT` (replace) and `PATCH` (merge) of an API plugin.
    pub async fn update(
        &self,
        id: &str,
        body: &serde_json::Value,
        merge: bool,
    ) -> Result<PluginRecord, ManagerError> {
        let _serial = self.serial.lock().await;
        let current = self.get(id)?;
        if current.source == Source::Config {
            return Err(ManagerError::Conflict(format!(
                "plugin {id:?} is defined in the configuration file; edit the file"
            )));
        }
        let mut record = if merge {
            PluginRecord::from_json(body, Some(&current))
        } else {
            PluginRecord::from_json(body, None).map(|mut r| {
                r.created_at = current.created_at;
                r
            })
        }
        .map_err(ManagerError::Invalid)?;
        if record.id != id && body.get("slug").is_none() {
            record.id = id.to_string();
            record.slug = id.to_string();
        }
        if let Some(e) = self.taken(&record, Some(id)) {
            return Err(e);
        }
        commands::api_file_rule(&self.config().plugin_runtime, &record).map_err(invalid_command)?;
        let api: Vec<PluginRecord> = self
            .api()
            .into_iter()
            .map(|r| if r.id == id { record.clone() } else { r })
            .collect();
        self.apply(api, Some(&record.id)).await?;
        self.publish().await;
        Ok(record)
    }

    /// `DELETE /api/v1/plugins/{id}`.
    pub async fn delete(&self, id: &str) -> Result<(), ManagerError> {
        let _serial = self.serial.lock().await;
        let current = self.get(id)?;
        if current.source == Source::Config {
            return Err(ManagerError::Conflict(format!(
                "plugin {id:?} is defined in the configuration file; edit the file"
            )));
        }
        let api: Vec<PluginRecord> = self.api().into_iter().filter(|r| r.id != id).collect();
        self.apply(api, None).await?;
        self.publish().await;
        Ok(())
    }

    /// `POST /api/v1/plugins/validate`: checks a definition without loading anything.
    /// Runs every check creation runs before loading: the configuration rules, the
    /// API path rule for `file://`, and for `grpc://` the same resolution and address
    /// checks that precede a dial.
    pub async fn validate(&self, body: &serde_json::Value) -> Result<PluginRecord, ManagerError> {
        let record = PluginRecord::from_json(body, None).map_err(ManagerError::Invalid)?;
        let mut api = self.api();
        api.retain(|r| r.id != record.id);
        api.push(record.clone());
        let config = self.config();
        self.check(&config, &api, Some(&record.id))?;
        commands::api_file_rule(&config.plugin_runtime, &record).map_err(invalid_command)?;
        commands::grpc_target_rule(&config.plugin_runtime, &record)
            .await
            .map_err(invalid_command)?;
        Ok(record)
    }

    /// Rebuilds the whole set (restarting every out-of-process plugin).
    pub async fn reload(&self) -> Result<(), ManagerError> {
        let _serial = self.serial.lock().await;
        self.apply(self.api(), None).await
    }

    /// Re-reads the plugins of the configuration file (SIGHUP, file change) and reloads.
    /// Other settings need a restart and are left as they are.
    pub async fn reload_config_file(&self) -> Result<(), ManagerError> {
        let _serial = self.serial.lock().await;
        let Some(path) = &self.config_path else {
            return self.apply(self.api(), None).await;
        };
        let fresh = Config::load(Some(path)).map_err(|e| ManagerError::Reload(e.to_string()))?;
        let previous = self.config();
        let mut next = previous.clone();
        next.plugins = fresh.plugins;
        *self.config.lock().unwrap_or_else(|p| p.into_inner()) = next;
        let result = self.apply(self.api(), None).await;
        if result.is_err() {
            *self.config.lock().unwrap_or_else(|p| p.into_inner()) = previous;
        }
        result
    }
}

/// The instance name of the record with `id` in `api`.
fn name_of<'a>(api: &'a [PluginRecord], id: &str) -> Option<&'a str> {
    api.iter().find(|r| r.id == id).map(|r| r.name.as_str())
}

/// A validation error of the `command` field.
fn invalid_command(message: String) -> ManagerError {
    ManagerError::Invalid(FieldErrors::from([("command".to_string(), message)]))
}
