//! Container images as plugins: the plugin is the image's entrypoint (`ENTRYPOINT`,
//! else `CMD`, first element, exec form), or `/plugin` when neither is set, taken from
//! the merged layers by [`super::extract`]. The file must be an ELF executable for this
//! platform or a `#!` script, checked here before it reaches the cache.

use super::artifact::{ImageConfig, Platform};
use super::extract::{Layer, Limits, View};
use sha2::{Digest, Sha256};
use std::io::Write;

/// Used when the image sets neither `ENTRYPOINT` nor `CMD`.
pub const DEFAULT_ENTRYPOINT: &str = "/plugin";

/// `PATH` when the image config sets none (Docker's default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Bytes kept from the start of a file to tell what it is.
pub const HEAD: usize = 512;

/// What the gateway runs, for refusals.
pub fn accepted() -> String {
    format!(
        "an ELF executable for {} or a #! script",
        std::env::consts::ARCH
    )
}

/// Checks that `head` (the first bytes of a file) is something the gateway may run;
/// the error names what was found and what is accepted.
pub fn executable(what: &str, head: &[u8]) -> Result<(), String> {
    let found = if head.len() >= 262 && &head[257..262] == b"ustar" {
        Err("a tar archive".to_string())
    } else {
        crate::remote::exec::kind(head).map(|_| ())
    };
    found.map_err(|found| {
        format!(
            "{what} is {found}, not an executable; accepted: {}",
            accepted()
        )
    })
}

/// A writer that hashes what passes through and keeps its first [`HEAD`] bytes.
pub struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    head: Vec<u8>,
}

impl<W: Write> Hashing<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            head: Vec::new(),
        }
    }

    /// `sha256:<hex>` of everything written, the first bytes, and the writer.
    pub fn finish(self) -> (String, Vec<u8>, W) {
        (
            format!("sha256:{:x}", self.hasher.finalize()),
            self.head,
            self.inner,
        )
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        let room = HEAD.saturating_sub(self.head.len()).min(n);
        self.head.extend_from_slice(&buf[..room]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Parses the image config and checks that it is for this platform.
pub fn config(bytes: &[u8]) -> Result<ImageConfig, String> {
    let config: ImageConfig =
        serde_json::from_slice(bytes).map_err(|e| format!("image config JSON: {e}"))?;
    let host = Platform::current();
    let image = Platform {
        os: config.os.clone(),
        architecture: config.architecture.clone(),
        variant: config.variant.clone(),
    };
    if !config.os.is_empty() && image.fit(&host).is_none() {
        return Err(format!(
            "an image for {image}; this gateway runs on {host} (push an index with a {host} entry)"
        ));
    }
    Ok(config)
}

/// The paths the entrypoint may be at, most likely first: an absolute path, a path
/// relative to `WORKDIR`, or a bare name looked up in the image's `PATH`.
pub fn candidates(config: &ImageConfig) -> Result<Vec<String>, String> {
    let runtime = config.config.clone().unwrap_or_default();
    let command = runtime
        .entrypoint
        .filter(|e| !e.is_empty())
        .or(runtime.cmd.filter(|c| !c.is_empty()))
        .unwrap_or_else(|| vec![DEFAULT_ENTRYPOINT.to_string()]);
    let first = command.first().cloned().unwrap_or_default();
    let shell = ["/bin/sh", "sh", "/bin/bash", "bash"].contains(&first.as_str());
    if shell && command.get(1).map(String::as_str) == Some("-c") {
        return Err(format!(
            "an image whose entrypoint is a shell command ({command:?}); accepted: the exec form, ENTRYPOINT [\"/plugin\"]"
        ));
    }
    if first.is_empty() {
        return Err("an image with an empty entrypoint; accepted: ENTRYPOINT [\"/plugin\"]".into());
    }
    if first.starts_with('/') {
        return Ok(vec![first]);
    }
    if first.contains('/') {
        let dir = runtime.working_dir.unwrap_or_default();
        return Ok(vec![format!("/{}/{first}", dir.trim_matches('/'))]);
    }
    let path = runtime
        .env
        .unwrap_or_default()
        .iter()
        .find_map(|e| e.strip_prefix("PATH=").map(str::to_string))
        .unwrap_or_else(|| DEFAULT_PATH.to_string());
    Ok(path
        .split(':')
        .filter(|d| d.starts_with('/'))
        .map(|d| format!("{}/{first}", d.trim_end_matches('/')))
        .collect())
}

/// Finds the entrypoint in `layers` and streams it into `out`. Returns the entrypoint
/// path, the file's digest and size; the file has been checked to be executable.
pub fn extract<W: Write>(
    config_bytes: &[u8],
    layers: Vec<Layer>,
    limits: Limits,
    out: W,
) -> Result<(String, String, u64, W), String> {
    let config = config(config_bytes)?;
    let candidates = candidates(&config)?;
    let view = View::scan(layers, limits).map_err(|e| e.to_string())?;
    let mut first_error = None;
    let mut chosen = None;
    for path in &candidates {
        match view.resolve(path) {
            Ok(_) => {
                chosen = Some(path.clone());
                break;
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let Some(path) = chosen else {
        return Err(match first_error {
            Some(e) => format!("entrypoint {e}"),
            None => "an image with no entrypoint candidates".into(),
        });
    };
    let mut sink = Hashing::new(out);
    let size = view
        .copy(&path, &mut sink)
        .map_err(|e| format!("entrypoint {e}"))?;
    let (digest, head, out) = sink.finish();
    executable(&format!("entrypoint {path}"), &head)?;
    Ok((path, digest, size, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(entrypoint: Option<&[&str]>, env: Option<&[&str]>) -> ImageConfig {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        ImageConfig {
            config: Some(super::super::artifact::ContainerConfig {
                entrypoint: entrypoint.map(owned),
                env: env.map(owned),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn entrypoint_candidates() {
        assert_eq!(candidates(&ImageConfig::default()).unwrap(), ["/plugin"]);
        assert_eq!(
            candidates(&with(Some(&["/app/p", "--x"]), None)).unwrap(),
            ["/app/p"]
        );
        assert_eq!(
            candidates(&with(Some(&["p"]), Some(&["PATH=/opt/bin:/bin"]))).unwrap(),
            ["/opt/bin/p", "/bin/p"]
        );
        let shell = candidates(&with(Some(&["/bin/sh", "-c", "run"]), None)).unwrap_err();
        assert!(shell.contains("exec form"), "{shell}");
    }

    #[test]
    fn executables_and_archives() {
        assert!(executable("x", b"#!/bin/sh\n").is_ok());
        let gz = executable("layer", &[0x1f, 0x8b, 8, 0]).unwrap_err();
        assert!(gz.contains("gzip") && gz.contains("accepted"), "{gz}");
        let mut tar = vec![0u8; 512];
        tar[..6].copy_from_slice(b"plugin");
        tar[257..262].copy_from_slice(b"ustar");
        assert!(
            executable("layer", &tar)
                .unwrap_err()
                .contains("a tar archive")
        );
    }

    #[test]
    fn foreign_image_config_is_refused() {
        let foreign = if Platform::current().architecture == "arm64" {
            "amd64"
        } else {
            "arm64"
        };
        let json = format!(r#"{{"os":"linux","architecture":"{foreign}"}}"#);
        let err = config(json.as_bytes()).unwrap_err();
        assert!(err.contains(foreign), "{err}");
    }
}
