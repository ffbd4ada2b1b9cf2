//! The plugin artifact format and the small subset of OCI manifest JSON we read.
//!
//! A plugin is an OCI image manifest (`artifactType`
//! `application/vnd.microgateway.plugin.v1`) with one layer of media type
//! [`BINARY_MEDIA_TYPE`] holding the executable, and a config blob of media type
//! [`CONFIG_MEDIA_TYPE`] naming `os` and `architecture`. Several platforms are published
//! as an OCI image index whose entries carry `platform`.

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

/// OS and architecture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// e.g. `linux`.
    pub os: String,
    /// e.g. `amd64`.
    pub architecture: String,
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
        }
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

/// `sha256:<hex>` of `data`.
pub fn digest(data: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{:x}", sha2::Sha256::digest(data))
}
