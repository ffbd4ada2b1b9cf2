//! `builtin://api_key`: API-key authentication.
//!
//! Keys come from the instance config (`keys`) and/or a JSON file (`keys_file`, an
//! array of `{key, identity, app_id}` objects, re-read when it changes). Keys may be
//! given in clear or as `sha256:<hex>`; only SHA-256 digests are kept in memory.
//! Lookups (hits and misses) are cached in moka for `cache_ttl`, which bounds how long
//! a key removed from the file keeps working.

use super::{manifest, settings};
use crate::config::PluginConfig;
use crate::plugin::{
    AuthResult, Decision, Hook, HookFuture, HookType, Manifest, Mutations, Plugin, PluginError,
    RequestView,
};
use http::HeaderName;
use moka::sync::Cache;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    key: String,
    identity: String,
    #[serde(default)]
    app_id: String,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Settings {
    header: String,
    keys: Vec<KeyEntry>,
    keys_file: Option<PathBuf>,
    #[serde(with = "crate::config::duration_serde")]
    cache_ttl: Duration,
    cache_capacity: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            header: "authorization".into(),
            keys: Vec::new(),
            keys_file: None,
            cache_ttl: Duration::from_secs(60),
            cache_capacity: 100_000,
        }
    }
}

type Digest32 = [u8; 32];

#[derive(Debug, Clone)]
struct Identity {
    identity: String,
    app_id: String,
}

/// Key digest → identity, shared with the cache without copying.
type KeyIndex = HashMap<Digest32, Arc<Identity>>;

/// The file-backed part of the key store, reloaded when the file's mtime changes.
struct FileKeys {
    path: PathBuf,
    mtime: Option<SystemTime>,
    checked: Instant,
    keys: KeyIndex,
}

/// The longest `config.cache_ttl`.
const MAX_CACHE_TTL: Duration = Duration::from_secs(24 * 3600);

/// The API-key plugin.
pub struct ApiKey {
    manifest: Manifest,
    instance: String,
    header: HeaderName,
    bearer: bool,
    inline: KeyIndex,
    file: Option<Mutex<FileKeys>>,
    cache: Cache<Digest32, Option<Arc<Identity>>>,
    ttl: Duration,
}

impl ApiKey {
    /// Loads keys from the instance config and the optional file.
    pub fn new(config: &PluginConfig) -> Result<ApiKey, PluginError> {
        let s: Settings = settings(config)?;
        // moka panics on lifetimes beyond 1000 years; a day bounds how long a removed key
        // from `keys_file` can still be accepted.
        if s.cache_ttl > MAX_CACHE_TTL {
            return Err(PluginError::Load(format!(
                "plugins.{}.config.cache_ttl: at most {}, got {}",
                config.name,
                humantime::format_duration(MAX_CACHE_TTL),
                humantime::format_duration(s.cache_ttl)
            )));
        }
        let header = super::header_name(&config.name, &s.header)?;
        let inline = index(&config.name, &s.keys)?;
        let file = match s.keys_file {
            Some(path) => {
                let (keys, mtime) = read_file(&config.name, &path)?;
                Some(Mutex::new(FileKeys {
                    path,
                    mtime,
                    checked: Instant::now(),
                    keys,
                }))
            }
            None => None,
        };
        if inline.is_empty() && file.is_none() {
            return Err(PluginError::Load(format!(
                "plugins.{}.config: set `keys` or `keys_file`",
                config.name
            )));
        }
        Ok(ApiKey {
            manifest: manifest("api_key", &[Hook::Auth]),
            instance: config.name.clone(),
            bearer: header == http::header::AUTHORIZATION,
            header,
            inline,
            file,
            cache: Cache::builder()
                .max_capacity(s.cache_capacity)
                .time_to_live(s.cache_ttl)
                .build(),
            ttl: s.cache_ttl,
        })
    }

    /// Extracts the presented key from the request.
    fn presented<'a>(&self, request: &'a RequestView<'a>) -> Option<&'a str> {
        let raw = request.headers.get(&self.header)?.to_str().ok()?.trim();
        let key = if self.bearer {
            let (scheme, rest) = raw.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then_some(rest.trim())?
        } else {
            raw
        };
        (!key.is_empty()).then_some(key)
    }

    /// Resolves a key digest: the inline keys (a map lookup, no cache needed), then,
    /// when a keys file is configured, the cache in front of the file.
    fn lookup(&self, digest: Digest32) -> Option<Arc<Identity>> {
        if let Some(id) = self.inline.get(&digest) {
            return Some(id.clone());
        }
        let file = self.file.as_ref()?;
        self.cache.get_with(digest, || {
            let mut file = file.lock().ok()?;
            if file.checked.elapsed() >= Duration::from_secs(1) {
                file.checked = Instant::now();
                let mtime = std::fs::metadata(&file.path).and_then(|m| m.modified()).ok();
                if mtime != file.mtime {
                    match read_file(&self.instance, &file.path) {
                        Ok((keys, mtime)) => {
                            tracing::info!(plugin = %self.instance, keys = keys.len(), "reloaded API keys file");
                            file.keys = keys;
                            file.mtime = mtime;
                        }
                        Err(e) => tracing::warn!(plugin = %self.instance, error = %e, "keeping previous API keys"),
                    }
                }
            }
            file.keys.get(&digest).cloned()
        })
    }
}

impl Plugin for ApiKey {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn on_request<'a>(
        &'a self,
        _stage: HookType,
        request: &'a RequestView<'a>,
    ) -> HookFuture<'a, Decision> {
        // No key or an unknown key: pass without identity; the stage answers 401 when
        // no auth plugin of the route authenticates the request.
        let Some(key) = self.presented(request) else {
            return HookFuture::ok(Decision::pass());
        };
        let Some(id) = self.lookup(Sha256::digest(key.as_bytes()).into()) else {
            return HookFuture::ok(Decision::pass());
        };
        HookFuture::ok(Decision::Continue(Mutations {
            auth: Some(AuthResult {
                identity: id.identity.clone(),
                app_id: id.app_id.clone(),
                claims: Vec::new(),
                cache_ttl: Some(self.ttl),
            }),
            ..Mutations::default()
        }))
    }
}

/// Key digest → identity for `entries` (clear keys are hashed, `sha256:` ones parsed).
fn index(plugin: &str, entries: &[KeyEntry]) -> Result<KeyIndex, PluginError> {
    let mut map = HashMap::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let digest = match e.key.strip_prefix("sha256:") {
            Some(hex) => parse_hex(hex).ok_or_else(|| {
                PluginError::Load(format!(
                    "plugins.{plugin}.config.keys[{i}]: invalid sha256 digest"
                ))
            })?,
            None if e.key.is_empty() => {
                return Err(PluginError::Load(format!(
                    "plugins.{plugin}.config.keys[{i}]: empty key"
                )));
            }
            None => Sha256::digest(e.key.as_bytes()).into(),
        };
        let identity = Identity {
            identity: e.identity.clone(),
            app_id: e.app_id.clone(),
        };
        map.insert(digest, Arc::new(identity));
    }
    Ok(map)
}

fn read_file(
    plugin: &str,
    path: &std::path::Path,
) -> Result<(KeyIndex, Option<SystemTime>), PluginError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        PluginError::Load(format!(
            "plugins.{plugin}.config.keys_file {}: {e}",
            path.display()
        ))
    })?;
    let entries: Vec<KeyEntry> = serde_json::from_str(&text).map_err(|e| {
        PluginError::Load(format!(
            "plugins.{plugin}.config.keys_file {}: {e}",
            path.display()
        ))
    })?;
    let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    Ok((index(plugin, &entries)?, mtime))
}

fn parse_hex(hex: &str) -> Option<Digest32> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}
