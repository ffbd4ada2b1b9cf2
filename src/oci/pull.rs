//! Resolving `oci://` references and fetching plugin binaries into the cache.

use super::artifact;
use super::cache::{Cache, RefMeta};
use super::chain::{self, Chain};
use super::format;
use super::settings::{self, OciSettings};
use super::{OciError, verify};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// A plugin binary ready to run.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Executable path in the cache.
    pub path: PathBuf,
    /// Metadata recorded for the reference.
    pub meta: RefMeta,
    /// True when no registry was contacted.
    pub from_cache: bool,
}

/// Looks up an environment variable (the process environment, or a test's own).
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Pulls, verifies and caches plugin artifacts. One per process is enough; it is cheap
/// to share behind an `Arc`.
pub struct OciStore {
    pub(super) settings: OciSettings,
    pub(super) cache: Cache,
    pub(super) client: Client,
    env: EnvLookup,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for OciStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OciStore")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(super) fn registry_error(e: impl std::fmt::Display) -> OciError {
    OciError::Registry(e.to_string())
}

impl OciStore {
    /// Opens the cache and prepares the registry client; credentials come from the
    /// process environment.
    pub fn new(settings: OciSettings) -> Result<OciStore, OciError> {
        Self::with_env(settings, Arc::new(|name: &str| std::env::var(name).ok()))
    }

    /// Like [`OciStore::new`] with an explicit variable lookup.
    pub fn with_env(settings: OciSettings, env: EnvLookup) -> Result<OciStore, OciError> {
        // reqwest is built without a default TLS provider; use ring, like the rest of the gateway.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let cache = Cache::open(&settings.cache_dir)?;
        let client = Client::new(ClientConfig {
            protocol: ClientProtocol::HttpsExcept(settings.insecure_registries.clone()),
            connect_timeout: Some(std::time::Duration::from_secs(5)),
            read_timeout: Some(std::time::Duration::from_secs(60)),
            ..ClientConfig::default()
        });
        Ok(OciStore {
            settings,
            cache,
            client,
            env,
            locks: Mutex::new(HashMap::new()),
        })
    }

    /// The content-addressed cache behind this store (for `plugin` CLI commands and GC).
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// The client and credentials for `reference`'s registry.
    pub fn auth(&self, reference: &Reference) -> RegistryAuth {
        settings::registry_auth(reference.resolve_registry(), &|n| (self.env)(n))
    }

    /// The registry client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Parses a reference (without `oci://`) and checks the registry allowlist.
    pub fn parse(&self, text: &str) -> Result<Reference, OciError> {
        parse_reference(text, &self.settings.allowed_registries)
    }

    pub(super) fn lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(key.to_string()).or_default().clone()
    }

    /// Returns a verified local executable for `text` (`oci://` optional), pulling only
    /// when needed: a cached pinned digest needs no network; a tag is re-resolved within
    /// `resolve_timeout` and falls back to its cached digest when the registry is down.
    pub async fn fetch(&self, text: &str) -> Result<Fetched, OciError> {
        let reference = self.parse(text)?;
        let key = reference.whole();
        let lock = self.lock(&key);
        let _guard = lock.lock().await;
        if let Some(pinned) = reference.digest()
            && let Some(meta) = self.cache.read_ref(&key)
            && let Some(fetched) = self
                .load_cached(meta, "pinned digest", Some(pinned))
                .await?
        {
            return Ok(fetched);
        }
        let auth = self.auth(&reference);
        let resolved = tokio::time::timeout(
            self.settings.resolve_timeout,
            self.client
                .pull_manifest_raw(&reference, &auth, artifact::ACCEPT),
        )
        .await;
        let (raw, digest) = match resolved {
            Ok(Ok(pair)) => pair,
            failure => {
                let why = match failure {
                    Err(_) => format!("no answer within {:?}", self.settings.resolve_timeout),
                    Ok(Err(e)) => settings::describe_registry_error(
                        reference.resolve_registry(),
                        &|n| (self.env)(n),
                        &e,
                    ),
                    Ok(Ok(_)) => String::new(),
                };
                if let Some(meta) = self.cache.read_ref(&key) {
                    tracing::warn!(reference = %key, error = %why, digest = %meta.manifest_digest, "registry unavailable; using the cached digest");
                    return self
                        .load_cached(meta, "registry unavailable", None)
                        .await?
                        .ok_or_else(|| {
                            OciError::Registry(format!(
                                "{key}: {why}; the cached copy is incomplete and cannot be verified"
                            ))
                        });
                }
                // The caller names the reference (the loader prefixes the command).
                return Err(OciError::Registry(why));
            }
        };
        if artifact::digest(&raw) != digest {
            return Err(OciError::Artifact(format!(
                "manifest content does not match its digest {digest}"
            )));
        }
        if let Some(pinned) = reference.digest()
            && pinned != digest
        {
            return Err(OciError::Artifact(format!(
                "registry returned {digest} for pinned {pinned}"
            )));
        }
        let resolved = self
            .platform_manifest(&reference, &auth, raw, &digest)
            .await?;
        let plan = format::plan(&resolved.manifest).map_err(OciError::Artifact)?;
        let signature = self
            .check_signature(&reference, &auth, &resolved.digest, &digest)
            .await?;
        let mut blobs = vec![resolved.digest.clone()];
        if let Some((index_digest, index_raw)) = &resolved.index {
            self.cache.write_support(index_digest, index_raw)?;
            blobs.push(index_digest.clone());
        }
        self.cache.write_support(&resolved.digest, &resolved.raw)?;
        let got = self.materialize(&resolved.reference, &plan).await?;
        blobs.extend(got.blobs);
        let path = got.path;
        let meta = RefMeta {
            reference: key.clone(),
            repository: format!("{}/{}", reference.registry(), reference.repository()),
            manifest_digest: resolved.digest,
            blob_digest: got.digest,
            index_digest: resolved.index.map(|(d, _)| d),
            format: plan.format().to_string(),
            entrypoint: got.entrypoint,
            blobs,
            size: got.size,
            pulled_at: now(),
            signature,
        };
        self.cache.write_ref(&meta)?;
        let by_digest = format!(
            "{}/{}@{}",
            reference.registry(),
            reference.repository(),
            digest
        );
        if by_digest != key {
            self.cache.write_ref(&RefMeta {
                reference: by_digest,
                ..meta.clone()
            })?;
        }
        self.cache.gc(
            self.settings.keep_versions,
            self.settings.max_cache_bytes,
            std::slice::from_ref(&meta.blob_digest),
        );
        let credentials =
            settings::registry_credentials(reference.resolve_registry(), &|n| (self.env)(n));
        tracing::info!(reference = %key, digest = %meta.manifest_digest, format = %meta.format, size = meta.size, credentials = %credentials.describe(), "pulled plugin");
        Ok(Fetched {
            path,
            meta,
            from_cache: false,
        })
    }

    /// Loads a cached reference after re-deriving its binary from the cached manifest
    /// (see `chain`); `Ok(None)` when the cache lacks a link, so the caller may pull.
    async fn load_cached(
        &self,
        meta: RefMeta,
        why: &str,
        pinned: Option<&str>,
    ) -> Result<Option<Fetched>, OciError> {
        let cache = self.cache.clone();
        let limits = chain::limits(self.settings.max_plugin_bytes);
        let pinned = pinned.map(str::to_string);
        let (meta, state) = tokio::task::spawn_blocking(move || {
            let state = chain::check(&cache, &meta, pinned.as_deref(), limits);
            (meta, state)
        })
        .await
        .map_err(|e| OciError::Artifact(format!("cache check stopped: {e}")))?;
        match state? {
            Chain::Intact => self.use_cached(meta, why).map(Some),
            Chain::Incomplete(missing) => {
                tracing::info!(reference = %meta.reference, missing = %missing, "cached plugin incomplete; not using it");
                Ok(None)
            }
        }
    }

    /// Uses a cached reference after re-hashing the binary and re-verifying its signature.
    fn use_cached(&self, meta: RefMeta, why: &str) -> Result<Fetched, OciError> {
        if !self.cache.verify_blob(&meta.blob_digest)? {
            return Err(OciError::Registry(format!(
                "cached binary missing and {why}"
            )));
        }
        // `chain` has tied both the platform manifest and (for a multi-platform
        // artifact) the index to the binary, so a signature over either holds.
        let mut signed = vec![meta.manifest_digest.as_str()];
        signed.extend(meta.index_digest.as_deref());
        // The caller names the reference (the loader prefixes the command).
        verify::reverify(&meta.signature, &self.settings, &signed).map_err(OciError::Signature)?;
        tracing::info!(reference = %meta.reference, digest = %meta.manifest_digest, reason = why, "using cached plugin");
        Ok(Fetched {
            path: self.cache.blob_path(&meta.blob_digest),
            meta,
            from_cache: true,
        })
    }
}

/// Parses a reference (`oci://` optional) and checks it against `allowed` registries
/// (empty: any).
pub fn parse_reference(text: &str, allowed: &[String]) -> Result<Reference, OciError> {
    let text = text.trim_start_matches("oci://");
    let reference: Reference =
        text.parse()
            .map_err(|e: oci_client::ParseError| OciError::Reference {
                reference: text.to_string(),
                reason: e.to_string(),
            })?;
    let registry = reference.registry().to_string();
    if !allowed.is_empty() && !allowed.contains(&registry) {
        return Err(OciError::NotAllowed(registry));
    }
    Ok(reference)
}
