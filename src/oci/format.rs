//! Which of the accepted artifact formats a manifest is, chosen by media type, and
//! where its plugin lives: a layer that is the executable itself, or a file inside a
//! container image's layers.
//!
//! The same functions run when a plugin is pulled and every time it is loaded from the
//! cache, so the cached binary is always re-derived from the manifest bytes.

use super::artifact::{self, Descriptor, Manifest, Platform};

/// The artifact formats, for messages and the cache metadata.
pub const ACCEPTED: &str = "a microgateway plugin artifact (layer application/vnd.microgateway.plugin.binary.v1), \
a Tyk AI Studio artifact (layer application/vnd.tyk.plugin.layer.v1), a one-file ORAS artifact, \
or a container image (OCI or Docker schema2, tar, tar+gzip or tar+zstd layers)";

/// Layer media types of container images.
const IMAGE_LAYERS: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar.zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];

/// Where a manifest's plugin is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// The layer blob is the executable.
    Binary {
        /// `microgateway`, `tyk` or `oras`.
        format: &'static str,
        /// The layer.
        layer: Descriptor,
    },
    /// The executable is the image's entrypoint (or `/plugin`), extracted from its layers.
    Image {
        /// The image config (entrypoint, platform).
        config: Descriptor,
        /// The filesystem layers, lowest first.
        layers: Vec<Descriptor>,
    },
}

impl Plan {
    /// `microgateway`, `tyk`, `oras` or `image`.
    pub fn format(&self) -> &'static str {
        match self {
            Plan::Binary { format, .. } => format,
            Plan::Image { .. } => "image",
        }
    }
}

fn starts_tyk(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.starts_with(artifact::TYK_PREFIX))
}

/// Classifies an image manifest. The error names what was found and what is accepted.
pub fn plan(manifest: &Manifest) -> Result<Plan, String> {
    let layers = manifest.layers.as_deref().unwrap_or_default();
    let config_type = manifest.config.as_ref().map(|c| c.media_type.as_str());
    let artifact_type = manifest.artifact_type.as_deref();
    let ours: Vec<&Descriptor> = layers
        .iter()
        .filter(|l| l.media_type == artifact::BINARY_MEDIA_TYPE)
        .collect();
    if !ours.is_empty() || artifact_type == Some(artifact::ARTIFACT_TYPE) {
        return match ours.as_slice() {
            [one] => Ok(Plan::Binary {
                format: "microgateway",
                layer: (*one).clone(),
            }),
            [] => Err(format!(
                "a microgateway artifact without a layer of media type {}",
                artifact::BINARY_MEDIA_TYPE
            )),
            more => Err(format!(
                "a microgateway artifact with {} binary layers; accepted: exactly one",
                more.len()
            )),
        };
    }
    let tyk_layer = layers
        .iter()
        .find(|l| l.media_type == artifact::TYK_LAYER_MEDIA_TYPE);
    if tyk_layer.is_some() || starts_tyk(artifact_type) || starts_tyk(config_type) {
        // Tyk's fetcher takes the first layer; its documented layer type comes first.
        let layer = tyk_layer.or(layers.first()).ok_or_else(|| {
            format!(
                "a Tyk plugin artifact without layers; accepted: a layer of media type {}",
                artifact::TYK_LAYER_MEDIA_TYPE
            )
        })?;
        return Ok(Plan::Binary {
            format: "tyk",
            layer: layer.clone(),
        });
    }
    if matches!(
        config_type,
        Some(artifact::OCI_CONFIG_MEDIA_TYPE | artifact::DOCKER_CONFIG_MEDIA_TYPE)
    ) {
        let config = manifest.config.clone().ok_or("a manifest without config")?;
        if let Some(other) = layers
            .iter()
            .find(|l| !IMAGE_LAYERS.contains(&l.media_type.as_str()))
        {
            return Err(format!(
                "a container image with a layer of media type {}; accepted image layers: tar, tar+gzip, tar+zstd (OCI or Docker)",
                other.media_type
            ));
        }
        if layers.is_empty() {
            return Err("a container image without layers".into());
        }
        return Ok(Plan::Image {
            config,
            layers: layers.to_vec(),
        });
    }
    match layers {
        [one] => {
            let unpack = one
                .annotations
                .as_ref()
                .and_then(|a| a.get(artifact::UNPACK_ANNOTATION))
                .is_some_and(|v| v == "true");
            if unpack {
                return Err(format!(
                    "an ORAS artifact holding a directory ({}); accepted: one file pushed by itself (`oras push REF plugin`)",
                    one.media_type
                ));
            }
            Ok(Plan::Binary {
                format: "oras",
                layer: one.clone(),
            })
        }
        [] => Err(format!(
            "a manifest without layers (config {}); accepted: {ACCEPTED}",
            config_type.unwrap_or("none")
        )),
        more => Err(format!(
            "an artifact of {} layers with config {} (not a container image); accepted: {ACCEPTED}",
            more.len(),
            config_type.unwrap_or("none")
        )),
    }
}

/// The index entry for `host`: the best fitting platform; entries without a platform
/// (such as attestations) are skipped. The error lists what the index offers.
pub fn select_platform<'a>(
    entries: &'a [Descriptor],
    host: &Platform,
) -> Result<&'a Descriptor, String> {
    entries
        .iter()
        .filter_map(|e| Some((e.platform.as_ref()?.fit(host)?, e)))
        .max_by_key(|(score, _)| *score)
        .map(|(_, e)| e)
        .ok_or_else(|| {
            let offered: Vec<String> = entries
                .iter()
                .filter_map(|e| e.platform.as_ref().map(Platform::to_string))
                .collect();
            format!(
                "an index with no entry for {host} (it offers: {})",
                if offered.is_empty() {
                    "no platforms".to_string()
                } else {
                    offered.join(", ")
                }
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(media_type: &str) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest: format!("sha256:{}", media_type.len()),
            size: 1,
            annotations: None,
            platform: None,
        }
    }

    fn manifest(config: &str, layers: &[&str]) -> Manifest {
        Manifest {
            schema_version: 2,
            config: Some(layer(config)),
            layers: Some(layers.iter().map(|l| layer(l)).collect()),
            ..Manifest::default()
        }
    }

    #[test]
    fn formats_by_media_type() {
        let own = manifest(artifact::CONFIG_MEDIA_TYPE, &[artifact::BINARY_MEDIA_TYPE]);
        assert_eq!(plan(&own).unwrap().format(), "microgateway");
        let tyk = manifest(
            "application/vnd.tyk.plugin.config.v1+json",
            &[artifact::TYK_LAYER_MEDIA_TYPE],
        );
        assert_eq!(plan(&tyk).unwrap().format(), "tyk");
        let oras = manifest(
            "application/vnd.unknown.config.v1+json",
            &["application/vnd.oci.image.layer.v1.tar"],
        );
        assert_eq!(plan(&oras).unwrap().format(), "oras");
        let image = manifest(
            artifact::DOCKER_CONFIG_MEDIA_TYPE,
            &["application/vnd.docker.image.rootfs.diff.tar.gzip"],
        );
        assert_eq!(plan(&image).unwrap().format(), "image");
        let odd = manifest(artifact::OCI_CONFIG_MEDIA_TYPE, &["application/x-foo"]);
        assert!(plan(&odd).unwrap_err().contains("application/x-foo"));
        let mut dir = manifest(
            "application/vnd.oci.empty.v1+json",
            &["application/vnd.oci.image.layer.v1.tar+gzip"],
        );
        if let Some(l) = dir.layers.as_mut().and_then(|l| l.first_mut()) {
            l.annotations =
                Some([(artifact::UNPACK_ANNOTATION.to_string(), "true".to_string())].into());
        }
        assert!(plan(&dir).unwrap_err().contains("directory"));
        let two = manifest("application/vnd.unknown.config.v1+json", &["a", "b"]);
        assert!(plan(&two).unwrap_err().contains("accepted"));
    }

    #[test]
    fn platform_selection_prefers_the_exact_variant() {
        let entry = |p: &str| Descriptor {
            platform: Platform::parse(p),
            ..layer(p)
        };
        let entries = vec![
            entry("linux/amd64"),
            entry("linux/arm64"),
            entry("linux/arm64/v8"),
            entry("unknown/unknown"),
        ];
        let arm = Platform::parse("linux/arm64").unwrap();
        assert_eq!(
            select_platform(&entries, &arm).unwrap().platform,
            Platform::parse("linux/arm64/v8")
        );
        let amd = Platform::parse("linux/amd64").unwrap();
        assert_eq!(
            select_platform(&entries, &amd).unwrap().platform,
            Platform::parse("linux/amd64")
        );
        let riscv = Platform::parse("linux/riscv64").unwrap();
        let err = select_platform(&entries, &riscv).unwrap_err();
        assert!(
            err.contains("linux/riscv64") && err.contains("linux/arm64/v8"),
            "{err}"
        );
    }
}
