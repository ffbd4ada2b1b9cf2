//! Sigstore bundles stored as OCI 1.1 referrers, as cosign v3 stores image signatures.
//!
//! A bundle referrer is an image manifest with `artifactType`
//! [`BUNDLE_MEDIA_TYPE`](super::bundle::BUNDLE_MEDIA_TYPE), the empty config, one layer
//! (the bundle JSON) and `subject` = the signed manifest. It is found through the
//! referrers API (`GET /v2/<repo>/referrers/<digest>`) and, on registries without it
//! (the API answers 404, as Debian's docker-registry 2.8 does), through the fallback tag
//! `sha256-<hex>`: an image index listing the referrers (distribution-spec "referrers tag
//! schema"). Publishing always updates the fallback tag as well, which registries with
//! the API simply keep as one more tag.

use super::artifact::{self, Descriptor};
use super::bundle::{self, BUNDLE_MEDIA_TYPE};
use super::push;
use super::{OciError, OciStore};
use oci_client::Reference;
use oci_client::secrets::RegistryAuth;
use p256::ecdsa::SigningKey;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Media type of the empty config (`{}`) of artifacts without configuration.
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";

/// Referrers looked at per subject, so a flooded referrers list cannot stall a pull.
const MAX_REFERRERS: usize = 16;

/// The referrer manifest (an image manifest with `subject`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReferrerManifest {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    artifact_type: Option<String>,
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<String, String>>,
}

/// An index entry (the fallback tag's list), with the `artifactType` it must carry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct Entry {
    media_type: String,
    digest: String,
    size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<Entry>,
}

fn registry(e: impl std::fmt::Display) -> OciError {
    OciError::Registry(e.to_string())
}

fn with_digest(reference: &Reference, digest: &str) -> Reference {
    Reference::with_digest(
        reference.registry().into(),
        reference.repository().into(),
        digest.into(),
    )
}

impl OciStore {
    /// The sigstore bundles attached to `digest` as referrers (API, else fallback tag),
    /// each checked against its descriptor digest and its referrer's `subject`.
    pub(super) async fn bundles_for(
        &self,
        reference: &Reference,
        auth: &RegistryAuth,
        digest: &str,
    ) -> Result<Vec<Vec<u8>>, OciError> {
        let client = self.client();
        client
            .store_auth_if_needed(reference.resolve_registry(), auth)
            .await;
        let subject = with_digest(reference, digest);
        let index = client
            .pull_referrers(&subject, Some(BUNDLE_MEDIA_TYPE))
            .await
            .map_err(registry)?;
        let mut bundles = Vec::new();
        for entry in index
            .manifests
            .iter()
            .filter(|e| e.artifact_type.as_deref() == Some(BUNDLE_MEDIA_TYPE))
            .take(MAX_REFERRERS)
        {
            let at = with_digest(reference, &entry.digest);
            let (raw, _) = client
                .pull_manifest_raw(&at, auth, &[artifact::MANIFEST_MEDIA_TYPE])
                .await
                .map_err(registry)?;
            if artifact::digest(&raw) != entry.digest {
                return Err(OciError::Signature(format!(
                    "referrer manifest does not match its digest {}",
                    entry.digest
                )));
            }
            let manifest: ReferrerManifest = serde_json::from_slice(&raw)
                .map_err(|e| OciError::Signature(format!("referrer manifest JSON: {e}")))?;
            if manifest.subject.as_ref().map(|s| s.digest.as_str()) != Some(digest) {
                // Listed under this digest but about another one: not a signature of it.
                continue;
            }
            let Some(layer) = manifest
                .layers
                .iter()
                .find(|l| l.media_type == BUNDLE_MEDIA_TYPE)
            else {
                continue;
            };
            if layer.size < 0 || layer.size as usize > bundle::MAX_BUNDLE_BYTES {
                return Err(OciError::Signature(format!(
                    "bundle of {} bytes exceeds {}",
                    layer.size,
                    bundle::MAX_BUNDLE_BYTES
                )));
            }
            let mut data = Vec::new();
            client
                .pull_blob(&at, layer.digest.as_str(), &mut data)
                .await
                .map_err(registry)?;
            if artifact::digest(&data) != layer.digest {
                return Err(OciError::Signature(
                    "bundle does not match its digest".into(),
                ));
            }
            bundles.push(data);
        }
        Ok(bundles)
    }
}

/// How `microgateway plugin sign` stores a signature (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SignFormat {
    /// A sigstore bundle stored as a referrer, as cosign v3 signs by default.
    #[default]
    Bundle,
    /// Simple signing under `sha256-<hex>.sig`, as cosign signed before v3.
    Legacy,
}

/// Signs `digest` in `format`; returns where the signature went (the referrer manifest's
/// digest, or the `.sig` tag).
pub async fn sign(
    store: &OciStore,
    reference: &str,
    digest: &str,
    key: &SigningKey,
    format: SignFormat,
) -> Result<String, OciError> {
    match format {
        SignFormat::Bundle => sign_bundle(store, reference, digest, key).await,
        SignFormat::Legacy => super::push::sign(store, reference, digest, key).await,
    }
}

/// Signs `digest` of `reference`'s repository as cosign v3 does by default: a sigstore
/// bundle stored as a referrer. Returns the referrer manifest's digest.
pub async fn sign_bundle(
    store: &OciStore,
    reference: &str,
    digest: &str,
    key: &SigningKey,
) -> Result<String, OciError> {
    attach(store, reference, digest, &bundle::make(key, digest)).await
}

/// Stores `bundle_json` as a referrer of `digest` and lists it under the fallback tag.
/// Returns the referrer manifest's digest.
pub async fn attach(
    store: &OciStore,
    reference: &str,
    digest: &str,
    bundle_json: &[u8],
) -> Result<String, OciError> {
    let reference = store.parse(reference)?;
    let auth = store.auth(&reference);
    let client = store.client();
    let subject_ref = with_digest(&reference, digest);
    client
        .auth(&subject_ref, &auth, oci_client::RegistryOperation::Push)
        .await
        .map_err(registry)?;
    let (subject_raw, _) = client
        .pull_manifest_raw(
            &subject_ref,
            &auth,
            &[artifact::MANIFEST_MEDIA_TYPE, artifact::INDEX_MEDIA_TYPE],
        )
        .await
        .map_err(registry)?;
    let subject_type = serde_json::from_slice::<serde_json::Value>(&subject_raw)
        .ok()
        .and_then(|v| v["mediaType"].as_str().map(str::to_string))
        .unwrap_or_else(|| artifact::MANIFEST_MEDIA_TYPE.to_string());
    let (empty_digest, bundle_digest) =
        push::push_empty_config_and(store, &subject_ref, bundle_json).await?;
    let annotations = BTreeMap::from([
        (
            "dev.sigstore.bundle.content".to_string(),
            "dsse-envelope".to_string(),
        ),
        (
            "dev.sigstore.bundle.predicateType".to_string(),
            bundle::COSIGN_SIGN_PREDICATE.to_string(),
        ),
        (
            "org.opencontainers.image.created".to_string(),
            humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        ),
    ]);
    let descriptor = |media_type: &str, digest: &str, size: usize| Descriptor {
        media_type: media_type.into(),
        digest: digest.into(),
        size: size as i64,
        annotations: None,
        platform: None,
    };
    let mut layer = descriptor(BUNDLE_MEDIA_TYPE, &bundle_digest, bundle_json.len());
    layer.annotations = Some(BTreeMap::from([(
        "org.opencontainers.image.title".to_string(),
        format!("{}.sigstore.json", bundle_digest.replace(':', "-")),
    )]));
    let manifest = ReferrerManifest {
        schema_version: 2,
        media_type: Some(artifact::MANIFEST_MEDIA_TYPE.into()),
        artifact_type: Some(BUNDLE_MEDIA_TYPE.into()),
        config: descriptor(EMPTY_MEDIA_TYPE, &empty_digest, push::EMPTY_CONFIG.len()),
        layers: vec![layer],
        subject: Some(descriptor(&subject_type, digest, subject_raw.len())),
        annotations: Some(annotations.clone()),
    };
    let body = serde_json::to_vec(&manifest).map_err(|e| OciError::Signature(e.to_string()))?;
    let referrer_digest = artifact::digest(&body);
    let size = body.len();
    client
        .push_manifest_raw(
            &with_digest(&reference, &referrer_digest),
            body,
            http::HeaderValue::from_static(artifact::MANIFEST_MEDIA_TYPE),
        )
        .await
        .map_err(registry)?;
    update_fallback_tag(
        store,
        &reference,
        &auth,
        digest,
        Entry {
            media_type: artifact::MANIFEST_MEDIA_TYPE.into(),
            digest: referrer_digest.clone(),
            size: size as i64,
            artifact_type: Some(BUNDLE_MEDIA_TYPE.into()),
            annotations: Some(annotations),
        },
    )
    .await?;
    Ok(referrer_digest)
}

/// The referrers tag schema's tag for `digest`: `sha256-<hex>`.
pub fn fallback_tag(digest: &str) -> String {
    digest.replace(':', "-")
}

/// Adds `entry` to the index under the fallback tag of `digest`, keeping what it lists.
async fn update_fallback_tag(
    store: &OciStore,
    reference: &Reference,
    auth: &RegistryAuth,
    digest: &str,
    entry: Entry,
) -> Result<(), OciError> {
    let tag = Reference::with_tag(
        reference.registry().into(),
        reference.repository().into(),
        fallback_tag(digest),
    );
    let client = store.client();
    let mut index = match client
        .pull_manifest_raw(&tag, auth, &[artifact::INDEX_MEDIA_TYPE])
        .await
    {
        Ok((raw, _)) => serde_json::from_slice::<Index>(&raw)
            .map_err(|e| OciError::Signature(format!("fallback tag {tag} is not an index: {e}")))?,
        Err(e) if !super::verify::is_not_found(&e) => return Err(registry(e)),
        Err(_) => Index {
            schema_version: 2,
            media_type: Some(artifact::INDEX_MEDIA_TYPE.into()),
            manifests: Vec::new(),
        },
    };
    index.manifests.retain(|e| e.digest != entry.digest);
    index.manifests.push(entry);
    let body = serde_json::to_vec(&index).map_err(|e| OciError::Signature(e.to_string()))?;
    client
        .push_manifest_raw(
            &tag,
            body,
            http::HeaderValue::from_static(artifact::INDEX_MEDIA_TYPE),
        )
        .await
        .map_err(registry)?;
    Ok(())
}
