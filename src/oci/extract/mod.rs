//! Reading one file out of container image layers, safely.
//!
//! Nothing is unpacked to disk: [`View::scan`] reads every layer's headers (lowest
//! first) into the image's own view of its filesystem, applying whiteouts (`.wh.NAME`)
//! and opaque directories (`.wh..wh..opq`) so that later layers win. [`View::resolve`]
//! follows a path through that view, symlinks included, and [`View::copy`] streams the
//! one regular file it ends at. The rules:
//!
//! - an entry name that is absolute or climbs out with `..` makes the image unusable;
//! - symlinks resolve inside the image (an absolute target starts at the image root),
//!   at most [`MAX_HOPS`] of them, and never above the root;
//! - a hardlink must name a regular file earlier in the image;
//! - only a regular file is extracted: directories, devices, FIFOs and sparse files
//!   are refused, and so is a file larger than the plugin limit;
//! - the decompressed bytes of all layers together and the number of entries are capped,
//!   so a compression bomb stops early.

mod unpack;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use unpack::{Budget, open};

/// Symlinks followed while resolving one path, like Linux's `MAXSYMLINKS`.
pub const MAX_HOPS: usize = 40;

/// Caps applied while reading layers.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest file that may be extracted.
    pub max_file: u64,
    /// Decompressed bytes read across all layers.
    pub max_unpacked: u64,
    /// Tar entries across all layers.
    pub max_entries: usize,
}

/// A layer blob on disk.
#[derive(Debug, Clone)]
pub struct Layer {
    /// The blob file (compressed as it came from the registry).
    pub path: PathBuf,
    /// `sha256:…`, for messages.
    pub digest: String,
}

/// Why a file cannot be taken from the image; each message says what was found and
/// what is accepted.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// A layer could not be read or decompressed.
    #[error("layer {layer}: {error}; accepted: tar, tar+gzip or tar+zstd")]
    Layer {
        /// The layer digest.
        layer: String,
        /// The read or decompression error, shown in the message.
        error: std::io::Error,
    },
    /// The layers unpack to more than allowed.
    #[error(
        "the layers unpack to more than {0} bytes (a compression bomb?); accepted: at most twice oci.max_plugin_bytes"
    )]
    Unpacked(u64),
    /// Too many entries.
    #[error("the layers hold more than {0} entries; accepted: at most {0}")]
    Entries(usize),
    /// An entry name leaves the image.
    #[error(
        "layer {layer} has an entry {name:?} that {found}; accepted: relative names inside the image"
    )]
    Name {
        /// The layer digest.
        layer: String,
        /// The entry name as stored.
        name: String,
        /// What is wrong with it.
        found: &'static str,
    },
    /// The path does not end at a usable regular file.
    #[error("{path} {found}; accepted: a regular file inside the image")]
    Resolve {
        /// The path as asked for.
        path: String,
        /// What it leads to.
        found: String,
    },
}

/// What a path in the image is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir,
    File {
        layer: usize,
        ordinal: usize,
        size: u64,
    },
    Symlink(Vec<u8>),
    Refused(String),
}

/// The merged filesystem view of an image's layers (paths without a leading `/`).
#[derive(Debug, Default)]
pub struct View {
    nodes: BTreeMap<Vec<u8>, Node>,
    layers: Vec<Layer>,
    limits: Option<Limits>,
}

/// Splits an entry name into clean components; `Err` says how it leaves the image.
fn components(name: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    if name.starts_with(b"/") {
        return Err("is an absolute path");
    }
    let mut out = Vec::new();
    for part in name.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err("climbs out with \"..\""),
            p => out.push(p),
        }
    }
    Ok(out)
}

fn remove_below(nodes: &mut BTreeMap<Vec<u8>, Node>, dir: &[u8], including: bool) {
    let mut prefix = dir.to_vec();
    if !prefix.is_empty() {
        prefix.push(b'/');
    }
    let doomed: Vec<Vec<u8>> = nodes
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .map(|(k, _)| k.clone())
        .collect();
    for k in doomed {
        nodes.remove(&k);
    }
    if including {
        nodes.remove(dir);
    }
}

impl View {
    /// Reads the headers of `layers`, lowest first, into the merged view.
    pub fn scan(layers: Vec<Layer>, limits: Limits) -> Result<View, ExtractError> {
        let mut view = View {
            limits: Some(limits),
            ..View::default()
        };
        let mut budget = limits.max_unpacked;
        let mut entries = 0usize;
        for (index, layer) in layers.iter().enumerate() {
            let fail = |error| ExtractError::Layer {
                layer: layer.digest.clone(),
                error,
            };
            let mut reader = Budget::new(open(&layer.path).map_err(fail)?, budget);
            let result = view.scan_layer(index, layer, &mut reader, &mut entries, limits);
            if reader.exceeded {
                return Err(ExtractError::Unpacked(limits.max_unpacked));
            }
            result?;
            budget = reader.left;
        }
        view.layers = layers;
        Ok(view)
    }

    fn scan_layer(
        &mut self,
        index: usize,
        layer: &Layer,
        reader: &mut dyn Read,
        entries: &mut usize,
        limits: Limits,
    ) -> Result<(), ExtractError> {
        let fail = |error| ExtractError::Layer {
            layer: layer.digest.clone(),
            error,
        };
        let mut upper: BTreeMap<Vec<u8>, Node> = BTreeMap::new();
        let mut whiteouts: Vec<(Vec<u8>, bool)> = Vec::new();
        let mut archive = tar::Archive::new(reader);
        for (ordinal, entry) in archive.entries().map_err(fail)?.enumerate() {
            let mut entry = entry.map_err(fail)?;
            *entries += 1;
            if *entries > limits.max_entries {
                return Err(ExtractError::Entries(limits.max_entries));
            }
            let raw = entry.path_bytes().into_owned();
            let parts = components(&raw).map_err(|found| ExtractError::Name {
                layer: layer.digest.clone(),
                name: String::from_utf8_lossy(&raw).into_owned(),
                found,
            })?;
            let Some((last, parents)) = parts.split_last() else {
                continue;
            };
            let parent = parents.join(&b'/');
            let join = |name: &[u8]| {
                let mut k = parent.clone();
                if !k.is_empty() {
                    k.push(b'/');
                }
                k.extend_from_slice(name);
                k
            };
            if *last == b".wh..wh..opq" {
                whiteouts.push((parent.clone(), false));
                continue;
            }
            if let Some(hidden) = last.strip_prefix(b".wh.") {
                whiteouts.push((join(hidden), true));
                continue;
            }
            let key = join(last);
            let sparse = entry.header().entry_type().is_gnu_sparse()
                || entry.pax_extensions().ok().flatten().is_some_and(|mut p| {
                    p.any(|e| e.is_ok_and(|e| e.key_bytes().starts_with(b"GNU.sparse")))
                });
            use tar::EntryType as T;
            let node = match entry.header().entry_type() {
                _ if sparse => Node::Refused("is a sparse file".into()),
                T::Regular | T::Continuous => Node::File {
                    layer: index,
                    ordinal,
                    size: entry.size(),
                },
                T::Directory => Node::Dir,
                T::Symlink => match entry.link_name_bytes() {
                    Some(target) => Node::Symlink(target.into_owned()),
                    None => Node::Refused("is a symlink without a target".into()),
                },
                T::Link => {
                    let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                    let shown = String::from_utf8_lossy(&target).into_owned();
                    match components(&target) {
                        Err(how) => Node::Refused(format!(
                            "is a hardlink to {shown:?}, which {how} of the image"
                        )),
                        Ok(p) => {
                            let k = p.join(&b'/');
                            match upper.get(&k).or_else(|| self.nodes.get(&k)) {
                                Some(file @ Node::File { .. }) => file.clone(),
                                _ => Node::Refused(format!(
                                    "is a hardlink to {shown:?}, which is not a regular file earlier in the image"
                                )),
                            }
                        }
                    }
                }
                T::Char => Node::Refused("is a character device".into()),
                T::Block => Node::Refused("is a block device".into()),
                T::Fifo => Node::Refused("is a FIFO".into()),
                other => Node::Refused(format!("is a tar entry of type {:?}", other.as_byte())),
            };
            if node != Node::Dir {
                remove_below(&mut upper, &key, false);
            }
            upper.insert(key, node);
            // Drain the rest of the entry through the budget.
            std::io::copy(&mut entry, &mut std::io::sink()).map_err(fail)?;
        }
        for (path, including) in whiteouts {
            remove_below(&mut self.nodes, &path, including);
        }
        for (key, node) in upper {
            if node != Node::Dir {
                remove_below(&mut self.nodes, &key, false);
            }
            self.nodes.insert(key, node);
        }
        Ok(())
    }

    /// Follows `path` (absolute or relative to the root) through the view, symlinks
    /// included, to a regular file; returns its size.
    pub fn resolve(&self, path: &str) -> Result<u64, ExtractError> {
        self.locate(path).map(|(_, _, size)| size)
    }

    fn locate(&self, path: &str) -> Result<(usize, usize, u64), ExtractError> {
        let refuse = |found: String| ExtractError::Resolve {
            path: path.to_string(),
            found,
        };
        // Components still to walk (reversed), and the resolved prefix.
        let mut pending: Vec<Vec<u8>> = Vec::new();
        push_reversed(&mut pending, path.as_bytes());
        let mut here: Vec<Vec<u8>> = Vec::new();
        let mut hops = 0usize;
        while let Some(part) = pending.pop() {
            match part.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    if here.pop().is_none() {
                        return Err(refuse("leads above the image root through \"..\"".into()));
                    }
                    continue;
                }
                _ => {}
            }
            here.push(part);
            let key = here.join(&b'/');
            match self.nodes.get(&key) {
                Some(Node::Symlink(target)) => {
                    hops += 1;
                    if hops > MAX_HOPS {
                        return Err(refuse(format!(
                            "goes through more than {MAX_HOPS} symlinks (a loop?)"
                        )));
                    }
                    here.pop();
                    if target.starts_with(b"/") {
                        here.clear();
                    }
                    push_reversed(&mut pending, target);
                }
                Some(Node::File {
                    layer,
                    ordinal,
                    size,
                }) if pending.iter().all(|p| p.is_empty() || p == b".") => {
                    let max = self.limits.map(|l| l.max_file).unwrap_or(u64::MAX);
                    if *size > max {
                        return Err(refuse(format!(
                            "is a file of {size} bytes, over the limit of {max}"
                        )));
                    }
                    return Ok((*layer, *ordinal, *size));
                }
                Some(Node::File { .. }) => {
                    return Err(refuse(format!(
                        "goes through /{}, which is a file, not a directory",
                        String::from_utf8_lossy(&key)
                    )));
                }
                Some(Node::Refused(what)) => {
                    return Err(refuse(format!(
                        "ends at /{}, which {what}",
                        String::from_utf8_lossy(&key)
                    )));
                }
                Some(Node::Dir) | None => {
                    let is_dir =
                        matches!(self.nodes.get(&key), Some(Node::Dir)) || self.has_children(&key);
                    if !is_dir {
                        return Err(refuse(format!(
                            "does not exist (no /{} in the image)",
                            String::from_utf8_lossy(&key)
                        )));
                    }
                }
            }
        }
        Err(refuse("is a directory".into()))
    }

    fn has_children(&self, key: &[u8]) -> bool {
        let mut prefix = key.to_vec();
        prefix.push(b'/');
        self.nodes
            .range(prefix.clone()..)
            .next()
            .is_some_and(|(k, _)| k.starts_with(&prefix))
    }

    /// Streams the file `path` resolves to into `out`; returns the bytes written.
    pub fn copy(&self, path: &str, out: &mut dyn Write) -> Result<u64, ExtractError> {
        let (index, ordinal, size) = self.locate(path)?;
        let layer = self
            .layers
            .get(index)
            .ok_or_else(|| ExtractError::Resolve {
                path: path.to_string(),
                found: "names a layer that is gone".into(),
            })?;
        let fail = |error| ExtractError::Layer {
            layer: layer.digest.clone(),
            error,
        };
        let limits = self.limits.unwrap_or(Limits {
            max_file: size,
            max_unpacked: u64::MAX,
            max_entries: usize::MAX,
        });
        let mut reader = Budget::new(open(&layer.path).map_err(fail)?, limits.max_unpacked);
        let mut archive = tar::Archive::new(&mut reader);
        let mut entries = archive.entries().map_err(fail)?;
        let entry = entries.nth(ordinal).ok_or_else(|| ExtractError::Resolve {
            path: path.to_string(),
            found: "names an entry that is not in its layer".into(),
        })?;
        let entry = entry.map_err(fail)?;
        let written = std::io::copy(&mut entry.take(size), out).map_err(fail)?;
        if written != size {
            return Err(fail(std::io::Error::other(format!(
                "entry ended after {written} of {size} bytes"
            ))));
        }
        Ok(written)
    }
}

fn push_reversed(pending: &mut Vec<Vec<u8>>, path: &[u8]) {
    for part in path.split(|b| *b == b'/').rev() {
        pending.push(part.to_vec());
    }
}

#[cfg(test)]
mod tests;
