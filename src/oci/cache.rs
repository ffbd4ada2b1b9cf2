//! The on-disk plugin cache.
//!
//! Layout under the cache directory:
//!
//! ```text
//! sha256/<hex>                        plugin binaries, content-addressed, mode 0755
//! refs/<registry>/<repo>_<tag>.json   one metadata file per reference; characters other
//!                                     than [A-Za-z0-9/._-] become `_`, and a digest
//!                                     reference is stored as <repo>/sha256-<hex>.json
//! tmp/                                downloads in progress (emptied at start)
//! ```
//!
//! Blobs are written to `tmp/`, hashed while streaming, fsynced, then renamed into
//! place, so a crash or a full disk never leaves a partial blob under `sha256/`.
//! Metadata files are replaced the same way.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// Signature state recorded with a cached reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SignatureRecord {
    /// No keys configured: not checked.
    Unverified,
    /// No signature was found.
    Missing,
    /// Verified; payload and signature are kept to re-verify on cache loads.
    Verified {
        /// The simple-signing payload (base64).
        payload: String,
        /// The DER signature (base64).
        signature: String,
    },
    /// Verified as a sigstore bundle (cosign v3); the bundle JSON is kept to re-verify
    /// on cache loads, offline.
    Bundle {
        /// The bundle exactly as fetched (JSON text).
        bundle: String,
    },
}

/// Metadata stored per reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefMeta {
    /// The reference as given (`registry/repo:tag` or `@sha256:…`).
    pub reference: String,
    /// `registry/repo`.
    pub repository: String,
    /// Digest of the platform manifest.
    pub manifest_digest: String,
    /// Digest of the plugin binary.
    pub blob_digest: String,
    /// Size of the plugin binary.
    pub size: u64,
    /// Unix seconds of the pull.
    pub pulled_at: u64,
    /// What signature check this binary passed when it was cached; re-verified on load.
    pub signature: SignatureRecord,
}

/// Cache I/O failures.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// An I/O operation failed.
    #[error("plugin cache {path}: {error}")]
    Io {
        /// The file or directory the operation was on (the cause names the operation).
        path: PathBuf,
        /// OS error, shown in the message (and so not also returned as `source`).
        error: std::io::Error,
    },
    /// Downloaded or cached content does not match its digest.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    Digest {
        /// The digest the manifest or reference promised (`sha256:…`).
        expected: String,
        /// The digest of the bytes actually received or read back from the cache.
        actual: String,
    },
    /// The blob is larger than declared or allowed.
    #[error("blob larger than {0} bytes")]
    TooLarge(u64),
    /// The download stream failed.
    #[error("download failed: {0}")]
    Download(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |error| CacheError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// The cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// Opens (creating) the layout and empties `tmp/`.
    pub fn open(root: &Path) -> Result<Cache, CacheError> {
        for dir in ["sha256", "refs", "tmp"] {
            let p = root.join(dir);
            std::fs::create_dir_all(&p).map_err(io(&p))?;
        }
        let tmp = root.join("tmp");
        if let Ok(entries) = std::fs::read_dir(&tmp) {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        Ok(Cache {
            root: root.to_path_buf(),
        })
    }

    /// Path of the binary with `digest` (`sha256:<hex>`).
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.root
            .join("sha256")
            .join(digest.trim_start_matches("sha256:"))
    }

    fn ref_path(&self, reference: &str) -> PathBuf {
        let safe: String = reference
            .replace('@', "/")
            .replace("sha256:", "sha256-")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "/._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let safe = safe
            .split('/')
            .filter(|s| !s.is_empty() && *s != "." && *s != "..")
            .collect::<Vec<_>>()
            .join("/");
        self.root.join("refs").join(format!("{safe}.json"))
    }

    /// Metadata of `reference`, when cached.
    pub fn read_ref(&self, reference: &str) -> Option<RefMeta> {
        let text = std::fs::read_to_string(self.ref_path(reference)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Atomically writes the metadata of `meta.reference`.
    pub fn write_ref(&self, meta: &RefMeta) -> Result<(), CacheError> {
        let path = self.ref_path(&meta.reference);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let tmp = self
            .root
            .join("tmp")
            .join(format!("ref-{}", uuid::Uuid::new_v4()));
        let text =
            serde_json::to_vec_pretty(meta).map_err(|e| CacheError::Download(e.to_string()))?;
        std::fs::write(&tmp, text).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))
    }

    /// Re-hashes a cached blob; `Ok(true)` when present and intact.
    pub fn verify_blob(&self, digest: &str) -> Result<bool, CacheError> {
        let path = self.blob_path(digest);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io(&path)(e)),
        };
        let actual = format!("sha256:{:x}", Sha256::digest(&data));
        if actual != digest {
            return Err(CacheError::Digest {
                expected: digest.to_string(),
                actual,
            });
        }
        Ok(true)
    }

    /// Streams `chunks` into the cache as the blob `digest`: temp file, hash, size
    /// check, fsync, chmod 0755, rename. On any failure the temp file is removed.
    pub async fn store_blob<S, E>(
        &self,
        digest: &str,
        max: u64,
        mut chunks: S,
    ) -> Result<PathBuf, CacheError>
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        use futures_util::StreamExt as _;
        let tmp = self
            .root
            .join("tmp")
            .join(format!("blob-{}", uuid::Uuid::new_v4()));
        let result = async {
            let mut file = tokio::fs::File::create(&tmp).await.map_err(io(&tmp))?;
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk.map_err(|e| CacheError::Download(e.to_string()))?;
                size += chunk.len() as u64;
                if size > max {
                    return Err(CacheError::TooLarge(max));
                }
                hasher.update(&chunk);
                file.write_all(&chunk).await.map_err(io(&tmp))?;
            }
            file.flush().await.map_err(io(&tmp))?;
            file.sync_all().await.map_err(io(&tmp))?;
            let actual = format!("sha256:{:x}", hasher.finalize());
            if actual != digest {
                return Err(CacheError::Digest {
                    expected: digest.to_string(),
                    actual,
                });
            }
            use std::os::unix::fs::PermissionsExt;
            tokio::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
                .await
                .map_err(io(&tmp))?;
            let dest = self.blob_path(digest);
            tokio::fs::rename(&tmp, &dest).await.map_err(io(&dest))?;
            if let Ok(dir) = std::fs::File::open(self.root.join("sha256")) {
                let _ = dir.sync_all();
            }
            Ok(dest)
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }

    /// All reference metadata.
    pub fn all_refs(&self) -> Vec<(PathBuf, RefMeta)> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.join("refs")];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if let Some(meta) = std::fs::read_to_string(&p)
                    .ok()
                    .and_then(|t| serde_json::from_str(&t).ok())
                {
                    out.push((p, meta));
                }
            }
        }
        out
    }

    /// Keeps the `keep` most recently pulled binaries per repository and, oldest first,
    /// removes binaries beyond `max_bytes`; `pinned` digests are never removed.
    /// Returns the removed digests.
    pub fn gc(&self, keep: usize, max_bytes: u64, pinned: &[String]) -> Vec<String> {
        let refs = self.all_refs();
        // Latest pull time per blob, and the blobs per repository.
        let mut latest: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
        let mut by_repo: std::collections::HashMap<String, Vec<String>> =
            std::collections::HashMap::new();
        for (_, m) in &refs {
            let t = latest.entry(m.blob_digest.clone()).or_default();
            *t = (*t).max(m.pulled_at);
            by_repo
                .entry(m.repository.clone())
                .or_default()
                .push(m.blob_digest.clone());
        }
        let mut doomed: Vec<String> = Vec::new();
        for blobs in by_repo.values_mut() {
            blobs.sort();
            blobs.dedup();
            blobs.sort_by_key(|b| std::cmp::Reverse(latest.get(b).copied().unwrap_or(0)));
            doomed.extend(blobs.iter().skip(keep.max(1)).cloned());
        }
        let mut kept: Vec<(String, u64, u64)> = latest
            .iter()
            .filter(|(d, _)| !doomed.contains(d))
            .map(|(d, t)| {
                (
                    d.clone(),
                    *t,
                    std::fs::metadata(self.blob_path(d))
                        .map(|m| m.len())
                        .unwrap_or(0),
                )
            })
            .collect();
        kept.sort_by_key(|(_, t, _)| *t);
        let mut total: u64 = kept.iter().map(|(_, _, s)| s).sum();
        for (digest, _, size) in kept {
            if total <= max_bytes {
                break;
            }
            if !pinned.contains(&digest) {
                total -= size;
                doomed.push(digest);
            }
        }
        doomed.retain(|d| !pinned.contains(d));
        for digest in &doomed {
            let _ = std::fs::remove_file(self.blob_path(digest));
            for (path, m) in &refs {
                if &m.blob_digest == digest {
                    let _ = std::fs::remove_file(path);
                }
            }
            tracing::info!(digest = %digest, "removed cached plugin binary");
        }
        doomed
    }
}
