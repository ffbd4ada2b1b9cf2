//! Media types and the small subset of OCI and Docker manifest JSON we read.
//!
//! The project's own plugin is an OCI image manifest (`artifactType`
//! `application/vnd.microgateway.plugin.v1`) with one layer of media type
//! [`BINARY_MEDIA_TYPE`] holding the executable, and a config blob of media type
//! [`CONFIG_MEDIA_TYPE`] naming `os` and `architecture`. Several platforms are published
//! as an OCI image index whose entries carry `platform`. The other formats the gateway
//! accepts (Tyk's ORAS types, generic ORAS files, container images) are told apart in
//! `format`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `artifactType` of plugin manifests.
pub const ARTIFACT_TYPE: &str = "application/vnd.microgateway.plugin.v1";
/// Media type of the layer holding the plugin executable.
pub const BINARY_MEDIA_TYPE: &str = "application/vnd.microgateway.plugin.binary.v1";
/// Media type of the config blob.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.microgateway.plugin.config.v1+json";
/// OCI image manifest.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema2 image manifest.
pub const DOCKER_MANIFEST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker schema2 manifest list.
pub const DOCKER_LIST_MEDIA_TYPE: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
/// Every manifest type the gateway asks for, in its `Accept` header. Without the Docker
/// types, docker-registry 2.x answers with the old schema1 form.
pub const ACCEPT: &[&str] = &[
    MANIFEST_MEDIA_TYPE,
    INDEX_MEDIA_TYPE,
    DOCKER_MANIFEST_MEDIA_TYPE,
    DOCKER_LIST_MEDIA_TYPE,
];
/// OCI image config (container images).
pub const OCI_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Docker image config (container images).
pub const DOCKER_CONFIG_MEDIA_TYPE: &str = "application/vnd.docker.container.image.v1+json";
/// Tyk AI Studio's media types all start with this.
pub const TYK_PREFIX: &str = "application/vnd.tyk.plugin.";
/// Tyk AI Studio's layer holding the raw plugin binary.
pub const TYK_LAYER_MEDIA_TYPE: &str = "application/vnd.tyk.plugin.layer.v1";
/// The annotation ORAS sets on a file layer: the file's name.
pub const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";
/// The annotation ORAS sets on a directory pushed as a tar.gz.
pub const UNPACK_ANNOTATION: &str = "io.deis.oras.content.unpack";

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type.
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Size in bytes.
    pub size: i64,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Platform (index entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// OS, architecture and (for ARM) variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// e.g. `linux`.
    pub os: String,
    /// e.g. `amd64`.
    pub architecture: String,
    /// e.g. `v8` for `arm64`, `v7` for `arm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this gateway runs on, in OCI spelling.
    pub fn current() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            other => other,
        };
        Platform {
            os: std::env::consts::OS.to_string(),
            architecture: architecture.to_string(),
            variant: None,
        }
    }

    /// Parses `os/arch[/variant]`.
    pub fn parse(text: &str) -> Option<Platform> {
        let mut parts = text.split('/');
        let os = parts.next().filter(|s| !s.is_empty())?;
        let architecture = parts.next().filter(|s| !s.is_empty())?;
        let variant = parts.next().map(str::to_string);
        if parts.next().is_some() {
            return None;
        }
        Some(Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant,
        })
    }

    /// How well an entry for `self` fits a host of platform `host`: `None` when it
    /// cannot run there, higher is better. The variant matters only for ARM: `arm64`
    /// entries fit with no variant or `v8`; 32-bit `arm` entries fit up to the host's own
    /// variant (`v7` unless the build says otherwise), the newest first.
    pub fn fit(&self, host: &Platform) -> Option<u8> {
        if self.os != host.os || self.architecture != host.architecture {
            return None;
        }
        let variant = self.variant.as_deref().unwrap_or_default();
        match self.architecture.as_str() {
            "arm64" => match variant {
                "" => Some(1),
                "v8" => Some(2),
                _ => None,
            },
            "arm" => {
                let own: u8 = if cfg!(target_feature = "v7") { 7 } else { 6 };
                match variant.trim_start_matches('v').parse::<u8>() {
                    Ok(v) if v <= own => Some(v),
                    Ok(_) => None,
                    Err(_) => variant.is_empty().then_some(1),
                }
            }
            _ => Some(1),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// An image manifest or an image index.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    #[serde(default)]
    pub schema_version: u32,
    /// Manifest media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Artifact type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Config descriptor (image manifests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Descriptor>,
    /// Layers (image manifests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<Vec<Descriptor>>,
    /// Entries (image indexes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifests: Option<Vec<Descriptor>>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// The config blob of a plugin artifact.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PluginConfigBlob {
    /// `GOOS` spelling (`linux`), compared with the host when an index is resolved.
    pub os: String,
    /// `GOARCH` spelling (`amd64`, `arm64`), not Rust's (`x86_64`, `aarch64`).
    pub architecture: String,
    /// Plugin name (informational).
    #[serde(default)]
    pub name: String,
}

/// The subset of an OCI or Docker image config the gateway reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ImageConfig {
    /// `linux`.
    #[serde(default)]
    pub os: String,
    /// `amd64`, `arm64`, …
    #[serde(default)]
    pub architecture: String,
    /// ARM variant.
    #[serde(default)]
    pub variant: Option<String>,
    /// The runtime configuration (`docker build`'s `ENTRYPOINT`, `CMD`, `ENV`, `WORKDIR`).
    #[serde(default)]
    pub config: Option<ContainerConfig>,
}

/// The `config` object of an image config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    /// `ENTRYPOINT`, exec form.
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    /// `CMD`, exec form.
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    /// `ENV` as `NAME=value`.
    #[serde(default)]
    pub env: Option<Vec<String>>,
    /// `WORKDIR`.
    #[serde(default)]
    pub working_dir: Option<String>,
}

/// `sha256:<hex>` of `data`.
pub fn digest(data: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{:x}", sha2::Sha256::digest(data))
}
