//! Plugin records as the admin API shows and accepts them, their JSON validation with
//! per-field errors, and the persisted state file.

use crate::config::{OnError, PluginConfig, PluginContract};
use crate::plugin::HookType;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where a plugin entry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The configuration file (read-only through the API).
    Config,
    /// Created through the API and persisted in the state file.
    Api,
}

/// One plugin entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginRecord {
    /// Identifier used in URLs (the slug).
    pub id: String,
    /// Display name; also the instance name in logs and metrics.
    pub name: String,
    /// URL-safe identifier: lower-case letters, digits and dashes, derived from `name`
    /// when not given; equal to `id`.
    pub slug: String,
    /// `builtin://`, `file://`, `grpc://`, `grpcs://` or `oci://` command.
    pub command: String,
    /// OCI reference, when the plugin comes from a registry.
    #[serde(default)]
    pub oci_reference: Option<String>,
    /// The stage the instance is attached to; decides which hooks of the plugin run.
    pub hook_type: HookType,
    /// Free-form classification (default `gateway`).
    pub plugin_type: String,
    /// Loaded only when true.
    pub is_active: bool,
    /// Settings handed to the plugin as JSON (`Initialize`); a JSON object or null.
    pub config: Value,
    /// Position within the stage.
    pub order: i32,
    /// Routes it applies to (empty: all).
    pub routes: Vec<String>,
    /// Hook timeout, e.g. `"500ms"`.
    #[serde(with = "crate::config::duration_serde")]
    pub timeout: Duration,
    /// Failure policy; stage default when absent.
    pub on_error: Option<OnError>,
    /// Extra environment for `file://` plugins.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Whether a load failure stops a reload; default from `on_error`.
    #[serde(default)]
    pub required: Option<bool>,
    /// Plugin contract (`auto`, `microgateway` or `tyk`).
    #[serde(default)]
    pub contract: PluginContract,
    /// Configuration file or API: only API records can be changed through the API.
    pub source: Source,
    /// Unix seconds of the first creation; kept by PUT and PATCH (0 for config entries).
    pub created_at: u64,
    /// Unix seconds of the last change (0 for config entries).
    pub updated_at: u64,
}

/// Per-field validation errors (`field → message`).
pub type FieldErrors = BTreeMap<String, String>;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Lower-case letters, digits and dashes derived from `name`.
pub fn slugify(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

impl PluginRecord {
    /// A record for a plugin from the configuration file.
    pub fn from_config(c: &PluginConfig) -> PluginRecord {
        let slug = slugify(&c.name);
        PluginRecord {
            id: slug.clone(),
            name: c.name.clone(),
            slug,
            command: c.command.clone(),
            oci_reference: c.oci_reference.clone(),
            hook_type: c.hook_type,
            plugin_type: "gateway".into(),
            is_active: c.is_active,
            config: c.config.clone(),
            order: c.order,
            routes: c.routes.clone(),
            timeout: c.timeout,
            on_error: c.on_error,
            env: c.env.clone(),
            required: c.required,
            contract: c.contract,
            source: Source::Config,
            created_at: 0,
            updated_at: 0,
        }
    }

    /// The instance configuration this record stands for.
    pub fn to_config(&self) -> PluginConfig {
        PluginConfig {
            name: self.name.clone(),
            command: self.command.clone(),
            hook_type: self.hook_type,
            order: self.order,
            routes: self.routes.clone(),
            timeout: self.timeout,
            on_error: self.on_error,
            is_active: self.is_active,
            config: self.config.clone(),
            env: self.env.clone(),
            tls: None,
            oci_reference: self.oci_reference.clone(),
            required: self.required,
            contract: self.contract,
        }
    }

    /// Builds a record from a JSON body. With `base` (PATCH) only given fields change;
    /// without it (POST, PUT) `name`, `hook_type` and `command` or `oci_reference` are required.
    pub fn from_json(
        body: &Value,
        base: Option<&PluginRecord>,
    ) -> Result<PluginRecord, FieldErrors> {
        let mut errors = FieldErrors::new();
        let Some(obj) = body.as_object() else {
            errors.insert("body".into(), "must be a JSON object".into());
            return Err(errors);
        };
        const KNOWN: [&str; 15] = [
            "name",
            "slug",
            "command",
            "oci_reference",
            "hook_type",
            "plugin_type",
            "is_active",
            "config",
            "order",
            "routes",
            "timeout",
            "on_error",
            "env",
            "required",
            "contract",
        ];
        for key in obj.keys() {
            if !KNOWN.contains(&key.as_str())
                && key != "id"
                && key != "source"
                && key != "created_at"
                && key != "updated_at"
            {
                errors.insert(key.clone(), "unknown field".into());
            }
        }
        let text = |k: &str, errors: &mut FieldErrors| -> Option<String> {
            match obj.get(k) {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => {
                    errors.insert(k.into(), "must be a string".into());
                    None
                }
            }
        };
        let name = text("name", &mut errors).or_else(|| base.map(|b| b.name.clone()));
        let slug = text("slug", &mut errors);
        let command = text("command", &mut errors).or_else(|| base.map(|b| b.command.clone()));
        let oci_reference = if obj.contains_key("oci_reference") {
            text("oci_reference", &mut errors)
        } else {
            base.and_then(|b| b.oci_reference.clone())
        };
        let plugin_type = text("plugin_type", &mut errors)
            .or_else(|| base.map(|b| b.plugin_type.clone()))
            .unwrap_or_else(|| "gateway".into());
        let hook_type = match obj.get("hook_type") {
            None => base.map(|b| b.hook_type),
            Some(v) => {
                match serde_json::from_value::<HookType>(v.clone()) {
                    Ok(h) => Some(h),
                    Err(_) => {
                        errors.insert("hook_type".into(), "must be one of pre_auth, auth, post_auth, on_response, data_collection".into());
                        None
                    }
                }
            }
        };
        let on_error = match obj.get("on_error") {
            None => base.and_then(|b| b.on_error),
            Some(Value::Null) => None,
            Some(v) => match serde_json::from_value::<OnError>(v.clone()) {
                Ok(o) => Some(o),
                Err(_) => {
                    errors.insert("on_error".into(), "must be fail_closed or fail_open".into());
                    None
                }
            },
        };
        let is_active = match obj.get("is_active") {
            None => base.is_none_or(|b| b.is_active),
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                errors.insert("is_active".into(), "must be a boolean".into());
                true
            }
        };
        let order = match obj.get("order") {
            None => base.map_or(0, |b| b.order),
            Some(v) => match v.as_i64().and_then(|n| i32::try_from(n).ok()) {
                Some(n) => n,
                None => {
                    errors.insert("order".into(), "must be an integer".into());
                    0
                }
            },
        };
        let routes = match obj.get("routes") {
            None => base.map(|b| b.routes.clone()).unwrap_or_default(),
            Some(v) => serde_json::from_value::<Vec<String>>(v.clone()).unwrap_or_else(|_| {
                errors.insert("routes".into(), "must be an array of route names".into());
                Vec::new()
            }),
        };
        let env = match obj.get("env") {
            None => base.map(|b| b.env.clone()).unwrap_or_default(),
            Some(v) => serde_json::from_value::<BTreeMap<String, String>>(v.clone())
                .unwrap_or_else(|_| {
                    errors.insert("env".into(), "must be an object of strings".into());
                    BTreeMap::new()
                }),
        };
        let required = match obj.get("required") {
            None => base.and_then(|b| b.required),
            Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                errors.insert("required".into(), "must be a boolean".into());
                None
            }
        };
        let contract = match obj.get("contract") {
            None => base.map(|b| b.contract).unwrap_or_default(),
            Some(v) => serde_json::from_value::<PluginContract>(v.clone()).unwrap_or_else(|_| {
                errors.insert(
                    "contract".into(),
                    "must be auto, microgateway or tyk".into(),
                );
                PluginContract::Auto
            }),
        };
        let timeout = match obj.get("timeout") {
            None => base.map_or(Duration::from_secs(1), |b| b.timeout),
            Some(Value::String(s)) => humantime::parse_duration(s).unwrap_or_else(|_| {
                errors.insert(
                    "timeout".into(),
                    format!("{s:?} is not a duration like \"500ms\" or \"2s\""),
                );
                Duration::from_secs(1)
            }),
            Some(Value::Number(n)) => Duration::from_millis(n.as_u64().unwrap_or(1000)),
            Some(_) => {
                errors.insert(
                    "timeout".into(),
                    "must be a duration string such as \"500ms\"".into(),
                );
                Duration::from_secs(1)
            }
        };
        let config = match obj.get("config") {
            None => base
                .map(|b| b.config.clone())
                .unwrap_or(Value::Object(Map::new())),
            Some(v @ (Value::Object(_) | Value::Null)) => v.clone(),
            Some(_) => {
                errors.insert("config".into(), "must be an object".into());
                Value::Null
            }
        };
        if name.as_deref().is_none_or(str::is_empty) {
            errors.insert("name".into(), "is required".into());
        }
        if hook_type.is_none() && !errors.contains_key("hook_type") {
            errors.insert("hook_type".into(), "is required".into());
        }
        let command = match (command, &oci_reference) {
            (Some(c), _) if !c.is_empty() => c,
            (_, Some(_)) => "oci://".to_string(),
            _ => {
                errors.insert(
                    "command".into(),
                    "is required (or give oci_reference)".into(),
                );
                String::new()
            }
        };
        let slug = slug
            .or_else(|| base.map(|b| b.slug.clone()))
            .unwrap_or_else(|| slugify(name.as_deref().unwrap_or_default()));
        if slug.is_empty()
            || !slug
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            errors.insert(
                "slug".into(),
                "must be non-empty lower-case letters, digits and dashes".into(),
            );
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let now = now();
        Ok(PluginRecord {
            id: slug.clone(),
            name: name.unwrap_or_default(),
            slug,
            command,
            oci_reference,
            hook_type: hook_type.unwrap_or(HookType::PreAuth),
            plugin_type,
            is_active,
            config,
            order,
            routes,
            timeout,
            on_error,
            env,
            required,
            contract,
            source: Source::Api,
            created_at: base.map_or(now, |b| b.created_at),
            updated_at: now,
        })
    }
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    version: u32,
    plugins: Vec<PluginRecord>,
}

/// Path of the state file in `data_dir`.
pub fn state_path(data_dir: &Path) -> PathBuf {
    data_dir.join("plugins.json")
}

/// Reads persisted API plugins; a missing file is an empty list.
pub fn load_state(path: &Path) -> Result<Vec<PluginRecord>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str::<StateFile>(&text)
            .map(|s| s.plugins)
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Writes the API plugins atomically (temp file, fsync, rename, fsync of the directory).
pub fn save_state(path: &Path, plugins: &[PluginRecord]) -> Result<(), String> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let text = serde_json::to_vec_pretty(&StateFile {
        version: 1,
        plugins: plugins.to_vec(),
    })
    .map_err(|e| e.to_string())?;
    let tmp = dir.join(format!(".plugins.json.{}", uuid::Uuid::new_v4()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| format!("{}: {e}", path.display()))
}
