//! OCI plugin settings: the `[oci]` table overridden by `OCI_PLUGINS_*` variables, and
//! per-registry credentials from `OCI_PLUGINS_REGISTRY_<HOST>_*`.

use crate::config::OciConfig;
use oci_client::errors::OciDistributionError;
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

/// Tyk AI Studio's public-key variables: `OCI_PLUGINS_PUBKEY_<N>`, `…_<NAME>`,
/// `…_FILE_<NAME>`.
const PUBKEY_PREFIX: &str = "OCI_PLUGINS_PUBKEY_";

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
        let mut s = Self::with_env(config, &|name| env(name))?;
        // Tyk AI Studio's named keys: `OCI_PLUGINS_PUBKEY_<NAME>` (a PEM) and
        // `OCI_PLUGINS_PUBKEY_FILE_<NAME>` (a path); numbered ones are read by `with_env`.
        let mut named: Vec<(String, String)> = std::env::vars()
            .filter(|(k, v)| {
                k.strip_prefix(PUBKEY_PREFIX)
                    .is_some_and(|rest| rest.parse::<u32>().is_err())
                    && !v.trim().is_empty()
            })
            .collect();
        named.sort();
        for (name, value) in named {
            s.public_keys
                .push(parse_public_key(&value).map_err(|e| SettingsError(format!("{name}: {e}")))?);
        }
        Ok(s)
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
            for name in [
                format!("OCI_PLUGINS_PUBLIC_KEY_{n}"),
                format!("{PUBKEY_PREFIX}{n}"),
            ] {
                if let Some(v) = get(&name) {
                    sources.push((name, v));
                }
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

/// Registry credentials and the variables they came from (never the secret itself).
#[derive(Debug, Clone)]
pub struct Credentials {
    /// What is sent to the registry.
    pub auth: RegistryAuth,
    /// The variables used, e.g. `OCI_PLUGINS_REGISTRY_CP_ICR_IO_ENTITLEMENT (username
    /// "token")`; `None` when no credentials are configured (anonymous).
    pub source: Option<String>,
}

impl Credentials {
    /// `source` for logs: the variables, or `anonymous`.
    pub fn describe(&self) -> String {
        self.source.clone().unwrap_or_else(|| "anonymous".into())
    }
}

/// Registry credentials from `OCI_PLUGINS_REGISTRY_<HOST>_*` (every character other
/// than letters and digits in the host becomes `_`), in Tyk AI Studio's precedence:
/// `ENTITLEMENT`/`ENTITLEMENTENV` (Basic, username `ENTITLEMENTUSERNAME`, default
/// `token`), then `TOKEN`/`TOKENENV` (Basic, username `oauth2accesstoken`, exchanged
/// for a registry token as Tyk's oras-go client does), then `USERNAME` with
/// `PASSWORD`/`PASSWORDENV`, then our own `BEARER`/`BEARERENV` (sent as it is). The `…ENV` forms name another variable holding the secret;
/// `PASSWORD_ENV`, `TOKEN_ENV` and `ENTITLEMENT_ENV` are read as well.
pub fn registry_credentials(registry: &str, get: &dyn Fn(&str) -> Option<String>) -> Credentials {
    let prefix = registry_env_prefix(registry);
    let name = |suffix: &str| format!("{prefix}_{suffix}");
    let var = |suffix: &str| get(&name(suffix)).filter(|v| !v.is_empty());
    // A secret given directly or through a variable naming another one: (value, source).
    let secret = |direct: &str| -> Option<(String, String)> {
        if let Some(v) = var(direct) {
            return Some((v, name(direct)));
        }
        for indirect in [format!("{direct}ENV"), format!("{direct}_ENV")] {
            if let Some(other) = var(&indirect) {
                return get(&other)
                    .filter(|v| !v.is_empty())
                    .map(|v| (v, format!("{} (= ${other})", name(&indirect))));
            }
        }
        None
    };
    if let Some((key, source)) = secret("ENTITLEMENT") {
        let user = var("ENTITLEMENTUSERNAME").unwrap_or_else(|| "token".to_string());
        return Credentials {
            source: Some(format!("{source} (username {user:?})")),
            auth: RegistryAuth::Basic(user, key),
        };
    }
    if let Some((token, source)) = secret("TOKEN") {
        return Credentials {
            source: Some(format!("{source} (username \"{TOKEN_USERNAME}\")")),
            auth: RegistryAuth::Basic(TOKEN_USERNAME.to_string(), token),
        };
    }
    if let Some(user) = var("USERNAME") {
        let (password, source) = secret("PASSWORD").unwrap_or_default();
        let source = if source.is_empty() {
            format!("{} (username {user:?}, no password set)", name("USERNAME"))
        } else {
            format!("{} (username {user:?}) + {source}", name("USERNAME"))
        };
        return Credentials {
            source: Some(source),
            auth: RegistryAuth::Basic(user, password),
        };
    }
    if let Some((token, source)) = secret("BEARER") {
        return Credentials {
            source: Some(format!("{source} (bearer)")),
            auth: RegistryAuth::Bearer(token),
        };
    }
    Credentials {
        auth: RegistryAuth::Anonymous,
        source: None,
    }
}

/// The username Tyk AI Studio sends with `…_TOKEN` (Google's and others' convention for
/// an access token given as a Basic password).
pub const TOKEN_USERNAME: &str = "oauth2accesstoken";

/// [`registry_credentials`] without the source.
pub fn registry_auth(registry: &str, get: &dyn Fn(&str) -> Option<String>) -> RegistryAuth {
    registry_credentials(registry, get).auth
}

/// True when `e` is the registry refusing access (401/403, `UNAUTHORIZED`/`DENIED`).
pub fn is_auth_error(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => true,
        OciDistributionError::ServerError { code, .. } => matches!(code, 401 | 403),
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(
                e.code,
                oci_client::errors::OciErrorCode::Unauthorized
                    | oci_client::errors::OciErrorCode::Denied
            )
        }),
        _ => false,
    }
}

/// A registry error in words: for access refusals, whether credentials were missing
/// (naming the variables to set) or rejected (naming the variables used, never the
/// secret), followed by the registry's own answer.
pub fn describe_registry_error(
    registry: &str,
    get: &dyn Fn(&str) -> Option<String>,
    e: &OciDistributionError,
) -> String {
    if !is_auth_error(e) {
        return e.to_string();
    }
    let credentials = registry_credentials(registry, get);
    match credentials.source {
        None => {
            let prefix = registry_env_prefix(registry);
            format!(
                "missing credentials: {registry} requires authentication and none are configured (set {prefix}_ENTITLEMENT, {prefix}_TOKEN, or {prefix}_USERNAME and {prefix}_PASSWORD): {e}"
            )
        }
        Some(source) => format!("{registry} rejected the credentials from {source}: {e}"),
    }
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
        assert!(
            matches!(registry_auth("ghcr.io", &get), RegistryAuth::Basic(u, t) if u == TOKEN_USERNAME && t == "t")
        );
        assert!(
            matches!(registry_auth("cp.icr.io", &get), RegistryAuth::Basic(u, p) if u == "token" && p == "key")
        );
        assert!(matches!(
            registry_auth("other.io", &get),
            RegistryAuth::Anonymous
        ));
    }

    #[test]
    fn tyk_precedence_and_sources_without_secrets() {
        let vars = [
            ("OCI_PLUGINS_REGISTRY_R_IO_USERNAME", "u"),
            ("OCI_PLUGINS_REGISTRY_R_IO_PASSWORD_ENV", "PW"),
            ("PW", "pw-secret"),
            ("OCI_PLUGINS_REGISTRY_R_IO_TOKEN", "tok-secret"),
            ("OCI_PLUGINS_REGISTRY_R_IO_ENTITLEMENTENV", "ENT"),
            ("ENT", "ent-secret"),
        ];
        // The first `n` variables (ENTITLEMENTENV, TOKEN, USERNAME…) plus the referenced ones.
        let upto = |n: usize| {
            move |name: &str| {
                let referenced = ["PW", "ENT"];
                vars.iter()
                    .enumerate()
                    .filter(|(i, (k, _))| *i < n || referenced.contains(k))
                    .find(|(_, (k, _))| *k == name)
                    .map(|(_, (_, v))| v.to_string())
            }
        };
        let c = registry_credentials("r.io", &upto(6));
        assert!(matches!(&c.auth, RegistryAuth::Basic(u, p) if u == "token" && p == "ent-secret"));
        assert_eq!(
            c.describe(),
            "OCI_PLUGINS_REGISTRY_R_IO_ENTITLEMENTENV (= $ENT) (username \"token\")"
        );
        let c = registry_credentials("r.io", &upto(4));
        assert!(
            matches!(&c.auth, RegistryAuth::Basic(u, t) if u == TOKEN_USERNAME && t == "tok-secret")
        );
        let c = registry_credentials("r.io", &upto(3));
        assert!(matches!(&c.auth, RegistryAuth::Basic(u, p) if u == "u" && p == "pw-secret"));
        for secret in ["pw-secret", "tok-secret", "ent-secret"] {
            assert!(!c.describe().contains(secret));
        }
    }
}
