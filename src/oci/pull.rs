//! Resolving `oci://` references and fetching plugin binaries into the cache.

use super::artifact::{self, Manifest, Platform};
use super::cache::{Cache, RefMeta};
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
    cache: Cache,
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

fn registry_error(e: impl std::fmt::Display) -> OciError {
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

    fn lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
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
        if reference.digest().is_some()
            && let Some(meta) = self.cache.read_ref(&key)
        {
            return self.use_cached(meta, "pinned digest");
        }
        let auth = self.auth(&reference);
        let resolved = tokio::time::timeout(
            self.settings.resolve_timeout,
            self.client.pull_manifest_raw(
                &reference,
                &auth,
                &[artifact::MANIFEST_MEDIA_TYPE, artifact::INDEX_MEDIA_TYPE],
            ),
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
                    return self.use_cached(meta, "registry unavailable");
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
        let (manifest, manifest_digest, platform_ref) = self
            .platform_manifest(&reference, &auth, &raw, &digest)
            .await?;
        let layer = self.plugin_layer(&manifest)?;
        let signature = self
            .check_signature(&reference, &auth, &manifest_digest, &digest)
            .await?;
        let path = self.blob(&platform_ref, &layer).await?;
        let meta = RefMeta {
            reference: key.clone(),
            repository: format!("{}/{}", reference.registry(), reference.repository()),
            manifest_digest,
            blob_digest: layer.digest.clone(),
            size: layer.size.max(0) as u64,
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
        tracing::info!(reference = %key, digest = %meta.manifest_digest, size = meta.size, credentials = %credentials.describe(), "pulled plugin");
        Ok(Fetched {
            path,
            meta,
            from_cache: false,
        })
    }

    /// Uses a cached reference after re-hashing the binary and re-verifying its signature.
    fn use_cached(&self, meta: RefMeta, why: &str) -> Result<Fetched, OciError> {
        if !self.cache.verify_blob(&meta.blob_digest)? {
            return Err(OciError::Registry(format!(
                "{}: cached binary missing and {why}",
                meta.reference
            )));
        }
        // The caller names the reference (the loader prefixes the command).
        verify::reverify(&meta.signature, &self.settings, &[&meta.manifest_digest])
            .map_err(OciError::Signature)?;
        tracing::info!(reference = %meta.reference, digest = %meta.manifest_digest, reason = why, "using cached plugin");
        Ok(Fetched {
            path: self.cache.blob_path(&meta.blob_digest),
            meta,
            from_cache: true,
        })
    }

    /// Resolves an index to this platform's manifest.
    async fn platform_manifest(
        &self,
        reference: &Reference,
        auth: &RegistryAuth,
        raw: &[u8],
        digest: &str,
    ) -> Result<(Manifest, String, Reference), OciError> {
        let manifest: Manifest = serde_json::from_slice(raw)
            .map_err(|e| OciError::Artifact(format!("manifest JSON: {e}")))?;
        let Some(entries) = &manifest.manifests else {
            return Ok((manifest, digest.to_string(), reference.clone()));
        };
        let want = Platform::current();
        let entry = entries
            .iter()
            .find(|d| d.platform.as_ref() == Some(&want))
            .ok_or_else(|| {
                OciError::Artifact(format!(
                    "index has no entry for {}/{}",
                    want.os, want.architecture
                ))
            })?;
        let by_digest = Reference::with_digest(
            reference.registry().into(),
            reference.repository().into(),
            entry.digest.clone(),
        );
        let (raw, got) = self
            .client
            .pull_manifest_raw(&by_digest, auth, &[artifact::MANIFEST_MEDIA_TYPE])
            .await
            .map_err(registry_error)?;
        if artifact::digest(&raw) != entry.digest || got != entry.digest {
            return Err(OciError::Artifact(format!(
                "platform manifest does not match {}",
                entry.digest
            )));
        }
        let inner: Manifest = serde_json::from_slice(&raw)
            .map_err(|e| OciError::Artifact(format!("manifest JSON: {e}")))?;
        Ok((inner, entry.digest.clone(), by_digest))
    }

    fn plugin_layer(&self, manifest: &Manifest) -> Result<artifact::Descriptor, OciError> {
        let layers = manifest.layers.as_deref().unwrap_or_default();
        let mut plugin = layers
            .iter()
            .filter(|l| l.media_type == artifact::BINARY_MEDIA_TYPE);
        let layer = plugin.next().ok_or_else(|| {
            OciError::Artifact(format!(
                "no layer of media type {}",
                artifact::BINARY_MEDIA_TYPE
            ))
        })?;
        if plugin.next().is_some() {
            return Err(OciError::Artifact(
                "more than one plugin binary layer".into(),
            ));
        }
        let size = u64::try_from(layer.size)
            .map_err(|_| OciError::Artifact("negative layer size".into()))?;
        if size > self.settings.max_plugin_bytes {
            return Err(OciError::TooLarge {
                size,
                max: self.settings.max_plugin_bytes,
            });
        }
        Ok(layer.clone())
    }

    /// Ensures the binary `layer` is in the cache (downloading it at most once at a time).
    async fn blob(
        &self,
        reference: &Reference,
        layer: &artifact::Descriptor,
    ) -> Result<PathBuf, OciError> {
        let lock = self.lock(&layer.digest);
        let _guard = lock.lock().await;
        match self.cache.verify_blob(&layer.digest) {
            Ok(true) => return Ok(self.cache.blob_path(&layer.digest)),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(digest = %layer.digest, error = %e, "cached binary corrupt; downloading again");
                let _ = std::fs::remove_file(self.cache.blob_path(&layer.digest));
            }
        }
        let stream = self
            .client
            .pull_blob_stream(reference, layer.digest.as_str())
            .await
            .map_err(registry_error)?;
        let max = (layer.size.max(0) as u64).min(self.settings.max_plugin_bytes);
        Ok(self
            .cache
            .store_blob(&layer.digest, max, stream.stream)
            .await?)
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
