//! The on-disk plugin cache.
//!
//! Layout under the cache directory:
//!
//! ```text
//! sha256/<hex>                        plugin binaries, content-addressed, mode 0755
//! blobs/<hex>                         manifests, indexes, image configs and image
//!                                     layers, content-addressed, mode 0644: what every
//!                                     load re-checks the binary against
//! refs/<registry>/<repo>_<tag>.json   one metadata file per reference; characters other
//!                                     than [A-Za-z0-9/._-] become `_`, and a digest
//!                                     reference is stored as <repo>/sha256-<hex>.json
//! tmp/                                downloads in progress (emptied at start)
//! ```
//!
//! Blobs are written to `tmp/`, hashed while streaming, fsynced, then renamed into
//! place, so a crash or a full disk never leaves a partial blob under `sha256/`.
//! Metadata files are replaced the same way. The metadata is not trusted on load: the
//! chain from the signed manifest digest to the binary is re-derived from `blobs/`
//! (see `chain`).

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
    /// Digest of the index the reference resolved to, when it was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_digest: Option<String>,
    /// `microgateway`, `tyk`, `oras` or `image` (informational; re-derived on load).
    #[serde(default)]
    pub format: String,
    /// For images, the entrypoint the binary was taken from (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<String>,
    /// The `blobs/` digests this reference needs (only for GC; never trusted).
    #[serde(default)]
    pub blobs: Vec<String>,
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
    /// The content is not something the gateway may run (the message says what it is).
    #[error("{0}")]
    Refused(String),
    /// The cached binary is not the one its signed manifest names.
    #[error(
        "cached plugin does not match its manifest: {0}; refusing it (remove the cache entry to pull again)"
    )]
    Tampered(String),
}

/// What a stored blob is checked for before it is renamed into place.
pub type HeadCheck<'a> = &'a (dyn Fn(&[u8]) -> Result<(), String> + Sync);

/// Bytes of a blob's start handed to a [`HeadCheck`].
const HEAD: usize = 512;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |error| CacheError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// The cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    pub(super) root: PathBuf,
}

impl Cache {
    /// Opens (creating) the layout and empties `tmp/`.
    pub fn open(root: &Path) -> Result<Cache, CacheError> {
        for dir in ["sha256", "blobs", "refs", "tmp"] {
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

    /// Path of the manifest, config or image layer with `digest`.
    pub fn support_path(&self, digest: &str) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.trim_start_matches("sha256:"))
    }

    /// Atomically stores small `data` (a manifest or config) under `blobs/`.
    pub fn write_support(&self, digest: &str, data: &[u8]) -> Result<(), CacheError> {
        let actual = format!("sha256:{:x}", Sha256::digest(data));
        if actual != digest {
            return Err(CacheError::Digest {
                expected: digest.to_string(),
                actual,
            });
        }
        let (tmp, _) = self.temp_file("support")?;
        std::fs::write(&tmp, data).map_err(io(&tmp))?;
        let dest = self.support_path(digest);
        std::fs::rename(&tmp, &dest).map_err(io(&dest))
    }

    /// Reads a `blobs/` entry and checks its digest; `Ok(None)` when absent.
    pub fn read_support(&self, digest: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let path = self.support_path(digest);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        check_digest(digest, &format!("sha256:{:x}", Sha256::digest(&data)))?;
        Ok(Some(data))
    }

    /// Re-hashes a `blobs/` entry by streaming it; `Ok(true)` when present and intact.
    pub fn verify_support(&self, digest: &str) -> Result<bool, CacheError> {
        hash_file(&self.support_path(digest), digest)
    }

    /// A new empty file under `tmp/` (removed at the next start if left behind).
    pub fn temp_file(&self, what: &str) -> Result<(PathBuf, std::fs::File), CacheError> {
        let tmp = self
            .root
            .join("tmp")
            .join(format!("{what}-{}", uuid::Uuid::new_v4()));
        let file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        Ok((tmp, file))
    }

    /// Moves a fully written, checked temp file into `sha256/` as the binary `digest`:
    /// fsync, chmod 0755, rename.
    pub fn adopt_binary(&self, tmp: &Path, digest: &str) -> Result<PathBuf, CacheError> {
        use std::os::unix::fs::PermissionsExt;
        let file = std::fs::File::open(tmp).map_err(io(tmp))?;
        file.sync_all().map_err(io(tmp))?;
        std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(0o755)).map_err(io(tmp))?;
        let dest = self.blob_path(digest);
        std::fs::rename(tmp, &dest).map_err(io(&dest))?;
        if let Ok(dir) = std::fs::File::open(self.root.join("sha256")) {
            let _ = dir.sync_all();
        }
        Ok(dest)
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

    /// Re-hashes a cached binary; `Ok(true)` when present and intact.
    pub fn verify_blob(&self, digest: &str) -> Result<bool, CacheError> {
        hash_file(&self.blob_path(digest), digest)
    }

    /// Streams `chunks` into the cache as the binary `digest`: temp file, hash, size
    /// check, `check` on its first bytes, fsync, chmod 0755, rename. On any failure the
    /// temp file is removed.
    pub async fn store_blob<S, E>(
        &self,
        digest: &str,
        max: u64,
        chunks: S,
        check: HeadCheck<'_>,
    ) -> Result<PathBuf, CacheError>
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        self.store(digest, max, chunks, Some(check)).await
    }

    /// Streams `chunks` into `blobs/` (an image layer), like [`Cache::store_blob`]
    /// without the executable check, mode 0644.
    pub async fn store_support<S, E>(
        &self,
        digest: &str,
        max: u64,
        chunks: S,
    ) -> Result<PathBuf, CacheError>
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        self.store(digest, max, chunks, None).await
    }

    async fn store<S, E>(
        &self,
        digest: &str,
        max: u64,
        mut chunks: S,
        check: Option<HeadCheck<'_>>,
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
            let mut head = Vec::new();
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk.map_err(|e| CacheError::Download(e.to_string()))?;
                size += chunk.len() as u64;
                if size > max {
                    return Err(CacheError::TooLarge(max));
                }
                let room = HEAD.saturating_sub(head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..room]);
                hasher.update(&chunk);
                file.write_all(&chunk).await.map_err(io(&tmp))?;
            }
            file.flush().await.map_err(io(&tmp))?;
            file.sync_all().await.map_err(io(&tmp))?;
            check_digest(digest, &format!("sha256:{:x}", hasher.finalize()))?;
            let Some(check) = check else {
                let dest = self.support_path(digest);
                tokio::fs::rename(&tmp, &dest).await.map_err(io(&dest))?;
                return Ok(dest);
            };
            check(&head).map_err(CacheError::Refused)?;
            self.adopt_binary(&tmp, digest)
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
}

fn check_digest(expected: &str, actual: &str) -> Result<(), CacheError> {
    if actual != expected {
        return Err(CacheError::Digest {
            expected: expected.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(())
}

/// Hashes the file at `path` by streaming it; `Ok(false)` when it does not exist.
fn hash_file(path: &Path, digest: &str) -> Result<bool, CacheError> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io(path)(e)),
    };
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(io(path))?;
    check_digest(digest, &format!("sha256:{:x}", hasher.finalize()))?;
    Ok(true)
}
