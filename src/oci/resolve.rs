//! Fetching what a manifest's plan needs into the cache: the platform manifest of an
//! index, the binary layer of an artifact, or an image's config and layers with the
//! entrypoint extracted from them.

use super::artifact::{self, Descriptor, Manifest, Platform};
use super::format::{self, Plan};
use super::pull::registry_error;
use super::{OciError, OciStore, chain, image};
use oci_client::Reference;
use oci_client::secrets::RegistryAuth;
use std::path::PathBuf;

/// The largest image config accepted.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// A reference resolved to this platform's manifest.
pub(super) struct Resolved {
    /// The platform manifest.
    pub manifest: Manifest,
    /// Its digest.
    pub digest: String,
    /// The index the reference named, if any: digest and bytes.
    pub index: Option<(String, bytes::Bytes)>,
    /// The manifest bytes.
    pub raw: bytes::Bytes,
    /// The platform manifest by digest (blobs are fetched through it).
    pub reference: Reference,
}

/// A plugin binary in the cache.
pub(super) struct Materialized {
    pub path: PathBuf,
    pub digest: String,
    pub size: u64,
    pub entrypoint: Option<String>,
    /// Image configs and layers kept under `blobs/`.
    pub blobs: Vec<String>,
}

/// Refuses the old Docker schema1 form with a clear message.
pub(super) fn parse_manifest(raw: &[u8]) -> Result<Manifest, OciError> {
    let manifest: Manifest = serde_json::from_slice(raw)
        .map_err(|e| OciError::Artifact(format!("manifest JSON: {e}")))?;
    if manifest.schema_version == 1 {
        return Err(OciError::Artifact(format!(
            "a Docker schema1 manifest; accepted: {}",
            artifact::ACCEPT.join(", ")
        )));
    }
    Ok(manifest)
}

fn size_of(d: &Descriptor, max: u64) -> Result<u64, OciError> {
    let size =
        u64::try_from(d.size).map_err(|_| OciError::Artifact("negative layer size".into()))?;
    if size > max {
        return Err(OciError::TooLarge { size, max });
    }
    Ok(size)
}

impl OciStore {
    /// Resolves an index to this platform's manifest.
    pub(super) async fn platform_manifest(
        &self,
        reference: &Reference,
        auth: &RegistryAuth,
        raw: bytes::Bytes,
        digest: &str,
    ) -> Result<Resolved, OciError> {
        let manifest = parse_manifest(&raw)?;
        let Some(entries) = &manifest.manifests else {
            return Ok(Resolved {
                manifest,
                digest: digest.to_string(),
                index: None,
                raw,
                reference: reference.clone(),
            });
        };
        let entry =
            format::select_platform(entries, &Platform::current()).map_err(OciError::Artifact)?;
        let by_digest = Reference::with_digest(
            reference.registry().into(),
            reference.repository().into(),
            entry.digest.clone(),
        );
        let (inner_raw, got) = self
            .client
            .pull_manifest_raw(&by_digest, auth, artifact::ACCEPT)
            .await
            .map_err(registry_error)?;
        if artifact::digest(&inner_raw) != entry.digest || got != entry.digest {
            return Err(OciError::Artifact(format!(
                "platform manifest does not match {}",
                entry.digest
            )));
        }
        Ok(Resolved {
            manifest: parse_manifest(&inner_raw)?,
            digest: entry.digest.clone(),
            index: Some((digest.to_string(), raw)),
            raw: inner_raw,
            reference: by_digest,
        })
    }

    /// Puts the plugin of `plan` into the cache.
    pub(super) async fn materialize(
        &self,
        reference: &Reference,
        plan: &Plan,
    ) -> Result<Materialized, OciError> {
        let max = self.settings.max_plugin_bytes;
        match plan {
            Plan::Binary { format, layer } => {
                let size = size_of(layer, max)?;
                let what = format!(
                    "the {format} artifact's layer {} ({})",
                    layer.digest, layer.media_type
                );
                let check = move |head: &[u8]| image::executable(&what, head);
                let path = self.blob(reference, layer, &check).await?;
                Ok(Materialized {
                    path,
                    digest: layer.digest.clone(),
                    size,
                    entrypoint: None,
                    blobs: Vec::new(),
                })
            }
            Plan::Image { config, layers } => self.image(reference, config, layers).await,
        }
    }

    async fn image(
        &self,
        reference: &Reference,
        config: &Descriptor,
        layers: &[Descriptor],
    ) -> Result<Materialized, OciError> {
        let max = self.settings.max_plugin_bytes;
        let config_size = size_of(config, MAX_CONFIG_BYTES)?;
        let stream = self
            .client
            .pull_blob_stream(reference, config.digest.as_str())
            .await
            .map_err(registry_error)?;
        self.cache
            .store_support(&config.digest, config_size, stream.stream)
            .await?;
        let config_bytes = self.cache.read_support(&config.digest)?.ok_or_else(|| {
            OciError::Artifact(format!("image config {} vanished", config.digest))
        })?;
        // Refuse a foreign or shell-form image before downloading its layers.
        let parsed = image::config(&config_bytes).map_err(OciError::Artifact)?;
        image::candidates(&parsed).map_err(OciError::Artifact)?;
        let mut blobs = vec![config.digest.clone()];
        let mut files = Vec::new();
        for layer in layers {
            let size = size_of(layer, max)?;
            if !matches!(self.cache.verify_support(&layer.digest), Ok(true)) {
                let stream = self
                    .client
                    .pull_blob_stream(reference, layer.digest.as_str())
                    .await
                    .map_err(registry_error)?;
                self.cache
                    .store_support(&layer.digest, size, stream.stream)
                    .await?;
            }
            blobs.push(layer.digest.clone());
            files.push(super::extract::Layer {
                path: self.cache.support_path(&layer.digest),
                digest: layer.digest.clone(),
            });
        }
        let cache = self.cache.clone();
        let limits = chain::limits(max);
        let extracted = tokio::task::spawn_blocking(move || {
            let (tmp, file) = cache.temp_file("extract")?;
            let result = image::extract(&config_bytes, files, limits, file)
                .map_err(OciError::Artifact)
                .and_then(|(entry, digest, size, file)| {
                    drop(file);
                    let path = match cache.verify_blob(&digest) {
                        Ok(true) => cache.blob_path(&digest),
                        _ => cache.adopt_binary(&tmp, &digest)?,
                    };
                    Ok((entry, digest, size, path))
                });
            let _ = std::fs::remove_file(&tmp);
            result
        })
        .await
        .map_err(|e| OciError::Artifact(format!("extraction stopped: {e}")))??;
        let (entrypoint, digest, size, path) = extracted;
        Ok(Materialized {
            path,
            digest,
            size,
            entrypoint: Some(entrypoint),
            blobs,
        })
    }

    /// Ensures the binary `layer` is in the cache (downloading it at most once at a time).
    async fn blob(
        &self,
        reference: &Reference,
        layer: &Descriptor,
        check: super::cache::HeadCheck<'_>,
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
            .store_blob(&layer.digest, max, stream.stream, check)
            .await?)
    }
}
