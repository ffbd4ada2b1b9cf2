//! `oci://` plugin distribution: pull a plugin binary from an OCI registry, verify its
//! digest and (optionally) its cosign signature, cache it, and hand back a local path
//! that is then run exactly like a `file://` plugin.
//!
//! - `artifact`: media types and manifest JSON.
//! - `format`: which accepted format a manifest is, and where its plugin is.
//! - `resolve`: fetching a manifest's plan into the cache.
//! - `extract` (+ `extract/unpack`) and `image`: a container image's entrypoint out of
//!   its layers, safely.
//! - `cache`: the content-addressed on-disk cache and metadata; `gc`: its cleanup.
//! - `chain`: the re-derivation every cache load makes.
//! - `cosign`: legacy simple-signing signatures (`.sig` tags) with `p256`.
//! - `bundle`: sigstore bundles (cosign v3's default) with `p256`.
//! - `referrers`: bundles stored as OCI 1.1 referrers (API and fallback tag).
//! - `signing`: which signature a pull checks.
//! - `verify`: offline re-verification of cached signature records.
//! - `settings`: `[oci]` + `OCI_PLUGINS_*` variables, registry credentials.
//! - `pull`: resolving references and fetching into the cache ([`OciStore`]).
//! - `push`: publishing and signing, for `microgateway plugin push|sign`.

pub mod artifact;
pub mod bundle;
pub mod cache;
mod chain;
pub mod cosign;
pub mod extract;
pub mod format;
mod gc;
mod image;
mod pull;
pub mod push;
pub mod referrers;
mod resolve;
pub mod settings;
mod signing;
mod verify;

pub use pull::{EnvLookup, Fetched, OciStore, parse_reference};

/// Errors of the OCI subsystem.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// The reference does not parse.
    #[error("invalid OCI reference {reference:?}: {reason}")]
    Reference {
        /// The reference exactly as configured, so the operator can find it.
        reference: String,
        /// Which part did not parse (registry, repository, tag or digest).
        reason: String,
    },
    /// The registry is not in `allowed_registries`.
    #[error("registry {0} is not in OCI_PLUGINS_ALLOWED_REGISTRIES")]
    NotAllowed(String),
    /// The registry answered with an error or could not be reached.
    #[error("registry: {0}")]
    Registry(String),
    /// The manifest is not a usable plugin artifact.
    #[error("not a plugin artifact: {0}")]
    Artifact(String),
    /// The plugin binary is larger than allowed.
    #[error("plugin binary of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The size the descriptor declares, checked before any byte is downloaded.
        size: u64,
        /// `oci.max_plugin_bytes`.
        max: u64,
    },
    /// A signature is missing or invalid where one is required.
    #[error("signature: {0}")]
    Signature(String),
    /// Cache I/O or digest failure.
    #[error(transparent)]
    Cache(#[from] cache::CacheError),
    /// Settings are invalid.
    #[error(transparent)]
    Settings(#[from] settings::SettingsError),
}
