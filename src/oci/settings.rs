//! OCI plugin settings: the `[oci]` table overridden by `OCI_PLUGINS_*` variables, and
//! per-registry credentials from `OCI_PLUGINS_REGISTRY_<HOST>_*`.

use crate::config::OciConfig;
use oci_client::secrets::RegistryAuth;
use p256::ecdsa::VerifyingKey;
use p256::pkcs8::DecodePublicKey;
use std::path::PathBuf;

/// Effective OCI settings.
#[derive(Debug, Clone)]
pub struct OciSettings {
    /// Cache directory.
    pub cache_dir: PathBuf,
    /// Registries reached over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// When non-empty, the only registries plugins may come from.
    pub allowed_registries: Vec<String>,
    /// Refuse unsigned or wrongly signed plugins.
    pub require_signature: bool,
    /// Trusted cosign public keys.
    pub public_keys: Vec<VerifyingKey>,
    /// Versions kept per repository by the cache GC.
    pub keep_versions: usize,
    /// Size cap of cached blobs.
    pub max_cache_bytes: u64,
    /// Largest plugin layer accepted.
    pub max_plugin_bytes: u64,
    /// Time allowed to re-resolve a tag before falling back to the cached digest.
    pub resolve_timeout: std::time::Duration,
}

/// Invalid OCI settings.
#[derive(Debug, thiserror::Error)]
#[error("OCI settings: {0}")]
pub struct SettingsError(pub String);

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn list(text: &str) -> Vec<String> {
    text.split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

impl OciSettings {
    /// Combines `config` with the process environment.
    pub fn from_config(config: &OciConfig) -> Result<OciSettings, SettingsError> {
        Self::with_env(config, &|name| env(name))
    }

    /// Combines `config` with variables read through `get` (tests pass their own).
    pub fn with_env(
        config: &OciConfig,
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<OciSettings, SettingsError> {
        let mut s = OciSettings {
            cache_dir: config.cache_dir.clone(),
            insecure_registries: config.insecure_registries.clone(),
            allowed_registries: config.allowed_registries.clone(),
            require_signature: config.require_signature,
            public_keys: Vec::new(),
            keep_versions: config.keep_versions,
            max_cache_bytes: config.max_cache_bytes,
            max_plugin_bytes: config.max_plugin_bytes,
            resolve_timeout: config.resolve_timeout,
        };
        if let Some(dir) = get("OCI_PLUGINS_CACHE_DIR") {
            s.cache_dir = PathBuf::from(dir);
        }
        if let Some(v) = get("OCI_PLUGINS_INSECURE_REGISTRIES") {
            s.insecure_registries.extend(list(&v));
        }
        if let Some(v) = get("OCI_PLUGINS_ALLOWED_REGISTRIES") {
            s.allowed_registries.extend(list(&v));
        }
        if let Some(v) = get("OCI_PLUGINS_REQUIRE_SIGNATURE") {
            s.require_signature = matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            );
        }
        let mut sources: Vec<(String, String)> = config
            .public_keys
            .iter()
            .enumerate()
            .map(|(i, k)| (format!("oci.public_keys[{i}]"), k.clone()))
            .collect();
        for n in 0..100 {
            let name = format!("OCI_PLUGINS_PUBLIC_KEY_{n}");
            if let Some(v) = get(&name) {
                sources.push((name, v));
            }
        }
        for (name, value) in sources {
            s.public_keys
                .push(parse_public_key(&value).map_err(|e| SettingsError(format!("{name}: {e}")))?);
        }
        Ok(s)
    }
}

/// Parses a PEM public key given inline or as a file path.
pub fn parse_public_key(value: &str) -> Result<VerifyingKey, String> {
    let pem = if value.contains("-----BEGIN") {
        value.to_string()
    } else {
        std::fs::read_to_string(value).map_err(|e| format!("cannot read {value}: {e}"))?
    };
    VerifyingKey::from_public_key_pem(pem.trim())
        .map_err(|e| format!("not an ECDSA P-256 public key: {e}"))
}

/// `OCI_PLUGINS_REGISTRY_<HOST>` for `registry`: upper case, every character other than
/// letters and digits as `_` (`reg.example.com:5000` → `OCI_PLUGINS_REGISTRY_REG_EXAMPLE_COM_5000`).
pub fn registry_env_prefix(registry: &str) -> String {
    let host: String = registry
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("OCI_PLUGINS_REGISTRY_{host}")
}

/// Registry credentials from `OCI_PLUGINS_REGISTRY_<HOST>_*` (dots, colons and dashes
/// in the host become underscores): `USERNAME` + `PASSWORD`/`PASSWORDENV`,
/// `TOKEN`/`TOKENENV`, or `ENTITLEMENT` (+ `ENTITLEMENTUSERNAME`, default `cp`).
pub fn registry_auth(registry: &str, get: &dyn Fn(&str) -> Option<String>) -> RegistryAuth {
    let prefix = registry_env_prefix(registry);
    let var = |suffix: &str| get(&format!("{prefix}_{suffix}"));
    let indirect = |suffix: &str| var(suffix).and_then(|name| get(&name));
    if let Some(token) = var("TOKEN").or_else(|| indirect("TOKENENV")) {
        return RegistryAuth::Bearer(token);
    }
    if let Some(user) = var("USERNAME") {
        let password = var("PASSWORD")
            .or_else(|| indirect("PASSWORDENV"))
            .unwrap_or_default();
        return RegistryAuth::Basic(user, password);
    }
    if let Some(key) = var("ENTITLEMENT") {
        let user = var("ENTITLEMENTUSERNAME").unwrap_or_else(|| "cp".to_string());
        return RegistryAuth::Basic(user, key);
    }
    RegistryAuth::Anonymous
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_from_environment() {
        let vars = [
            ("OCI_PLUGINS_REGISTRY_REG_EXAMPLE_COM_5000_USERNAME", "u"),
            (
                "OCI_PLUGINS_REGISTRY_REG_EXAMPLE_COM_5000_PASSWORDENV",
                "MY_PW",
            ),
            ("MY_PW", "secret"),
            ("OCI_PLUGINS_REGISTRY_GHCR_IO_TOKEN", "t"),
            ("OCI_PLUGINS_REGISTRY_CP_ICR_IO_ENTITLEMENT", "key"),
        ];
        let get = |n: &str| {
            vars.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        };
        assert!(
            matches!(registry_auth("reg.example.com:5000", &get), RegistryAuth::Basic(u, p) if u == "u" && p == "secret")
        );
        assert!(matches!(registry_auth("ghcr.io", &get), RegistryAuth::Bearer(t) if t == "t"));
        assert!(
            matches!(registry_auth("cp.icr.io", &get), RegistryAuth::Basic(u, p) if u == "cp" && p == "key")
        );
        assert!(matches!(
            registry_auth("other.io", &get),
            RegistryAuth::Anonymous
        ));
    }
}
