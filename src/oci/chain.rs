//! The check every cache load makes: the cached binary is re-derived from the bytes
//! the signed digest names, never taken from the (unsigned) metadata.
//!
//! The chain is: the reference's digest (pinned, or the one recorded for a tag) → the
//! index bytes, whose entry for this platform → the manifest bytes, whose plugin layer
//! (by the same rules as a pull, in `format`) → the binary's hash. For a container
//! image, the config and every layer are re-hashed and the entrypoint is extracted
//! again, so its hash is computed, not read. The signature over the top digest is
//! re-verified separately (in `pull`).

use super::artifact::{Manifest, Platform};
use super::cache::{Cache, CacheError, RefMeta};
use super::extract::{Layer, Limits};
use super::format::{self, Plan};
use super::image;

/// Entries read from all layers of one image, at most.
const MAX_ENTRIES: usize = 100_000;

/// The extraction caps for a plugin limit of `max_plugin_bytes`.
pub fn limits(max_plugin_bytes: u64) -> Limits {
    Limits {
        max_file: max_plugin_bytes,
        max_unpacked: max_plugin_bytes.saturating_mul(2),
        max_entries: MAX_ENTRIES,
    }
}

/// The outcome of a chain check that found nothing wrong.
#[derive(Debug, PartialEq, Eq)]
pub enum Chain {
    /// Every link holds.
    Intact,
    /// A link is not cached (an older cache, or a blob removed); nothing is known to
    /// be wrong, but the cached binary cannot be vouched for.
    Incomplete(String),
}

fn tampered(why: String) -> CacheError {
    CacheError::Tampered(why)
}

/// Re-checks `meta` against the cached manifest bytes. `pinned` is the digest the
/// reference names, when it names one.
pub fn check(
    cache: &Cache,
    meta: &RefMeta,
    pinned: Option<&str>,
    limits: Limits,
) -> Result<Chain, CacheError> {
    let top = meta
        .index_digest
        .as_deref()
        .unwrap_or(&meta.manifest_digest);
    if let Some(pinned) = pinned
        && pinned != top
    {
        return Err(tampered(format!(
            "the metadata for {pinned} describes {top}"
        )));
    }
    if let Some(index_digest) = &meta.index_digest {
        let Some(raw) = cache.read_support(index_digest)? else {
            return Ok(Chain::Incomplete(format!(
                "index {index_digest} is not cached"
            )));
        };
        let index: Manifest = serde_json::from_slice(&raw)
            .map_err(|e| tampered(format!("index {index_digest}: {e}")))?;
        let entry = format::select_platform(
            index.manifests.as_deref().unwrap_or_default(),
            &Platform::current(),
        )
        .map_err(tampered)?;
        if entry.digest != meta.manifest_digest {
            return Err(tampered(format!(
                "index {index_digest} names {} for this platform, the metadata {}",
                entry.digest, meta.manifest_digest
            )));
        }
    }
    let Some(raw) = cache.read_support(&meta.manifest_digest)? else {
        return Ok(Chain::Incomplete(format!(
            "manifest {} is not cached",
            meta.manifest_digest
        )));
    };
    let manifest: Manifest = serde_json::from_slice(&raw)
        .map_err(|e| tampered(format!("manifest {}: {e}", meta.manifest_digest)))?;
    let plan = format::plan(&manifest).map_err(|e| tampered(format!("its manifest is {e}")))?;
    let derived = match plan {
        Plan::Binary { layer, .. } => layer.digest,
        Plan::Image { config, layers } => {
            let Some(config_bytes) = cache.read_support(&config.digest)? else {
                return Ok(Chain::Incomplete(format!(
                    "image config {} is not cached",
                    config.digest
                )));
            };
            let mut files = Vec::new();
            for layer in &layers {
                if !cache.verify_support(&layer.digest)? {
                    return Ok(Chain::Incomplete(format!(
                        "image layer {} is not cached",
                        layer.digest
                    )));
                }
                files.push(Layer {
                    path: cache.support_path(&layer.digest),
                    digest: layer.digest.clone(),
                });
            }
            let (_, digest, _, _) =
                image::extract(&config_bytes, files, limits, std::io::sink()).map_err(tampered)?;
            digest
        }
    };
    if derived != meta.blob_digest {
        return Err(tampered(format!(
            "manifest {} leads to binary {derived}, the metadata names {}",
            meta.manifest_digest, meta.blob_digest
        )));
    }
    if !cache.verify_blob(&meta.blob_digest)? {
        return Ok(Chain::Incomplete(format!(
            "binary {} is not cached",
            meta.blob_digest
        )));
    }
    Ok(Chain::Intact)
}
