//! Cache garbage collection: old binaries per repository, the size cap, and the
//! manifests and layers no remaining reference needs.

use super::cache::Cache;

impl Cache {
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
        self.sweep_support();
        doomed
    }

    /// Removes `blobs/` entries that no reference lists any more and that are older
    /// than an hour (younger ones may belong to a pull still in progress).
    fn sweep_support(&self) {
        let wanted: std::collections::HashSet<String> = self
            .all_refs()
            .into_iter()
            .flat_map(|(_, m)| m.blobs)
            .map(|d| d.trim_start_matches("sha256:").to_string())
            .collect();
        let Ok(entries) = std::fs::read_dir(self.root.join("blobs")) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let young = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_none_or(|age| age < std::time::Duration::from_secs(3600));
            if !wanted.contains(&name) && !young {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}
