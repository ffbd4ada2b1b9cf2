//! Publishing plugins: `microgateway plugin push` (one platform, or an index of several)
//! and `sign`.

use super::artifact::{self, Descriptor, Manifest, Platform, PluginConfigBlob};
use super::{OciError, OciStore, cosign};
use p256::ecdsa::SigningKey;
use p256::pkcs8::DecodePrivateKey;
use std::collections::BTreeMap;

/// Uploads `binary` as a plugin artifact for the current platform under `reference`
/// and returns the manifest digest.
pub async fn push(
    store: &OciStore,
    reference: &str,
    binary: &[u8],
    name: &str,
) -> Result<String, OciError> {
    let reference = store.parse(reference)?;
    let (manifest, _) = upload(store, &reference, binary, name, &Platform::current()).await?;
    push_manifest(store, &reference, &manifest, artifact::MANIFEST_MEDIA_TYPE).await
}

/// Uploads one artifact per `(platform, binary)` and an OCI image index naming them
/// under `reference`; returns the index digest. The gateway picks its own platform's
/// entry when it pulls.
pub async fn push_index(
    store: &OciStore,
    reference: &str,
    binaries: &[(Platform, Vec<u8>)],
    name: &str,
) -> Result<String, OciError> {
    let reference = store.parse(reference)?;
    let mut entries = Vec::new();
    for (platform, binary) in binaries {
        let (manifest, body) = upload(store, &reference, binary, name, platform).await?;
        let digest = artifact::digest(&body);
        let by_digest = oci_client::Reference::with_digest(
            reference.registry().into(),
            reference.repository().into(),
            digest.clone(),
        );
        push_manifest(store, &by_digest, &manifest, artifact::MANIFEST_MEDIA_TYPE).await?;
        entries.push(Descriptor {
            media_type: artifact::MANIFEST_MEDIA_TYPE.into(),
            digest,
            size: body.len() as i64,
            annotations: None,
            platform: Some(platform.clone()),
        });
    }
    let index = Manifest {
        schema_version: 2,
        media_type: Some(artifact::INDEX_MEDIA_TYPE.into()),
        artifact_type: Some(artifact::ARTIFACT_TYPE.into()),
        manifests: Some(entries),
        ..Manifest::default()
    };
    push_manifest(store, &reference, &index, artifact::INDEX_MEDIA_TYPE).await
}

/// Uploads the config and binary blobs for `platform`; returns the manifest to push
/// and its serialized bytes.
async fn upload(
    store: &OciStore,
    reference: &oci_client::Reference,
    binary: &[u8],
    name: &str,
    platform: &Platform,
) -> Result<(Manifest, Vec<u8>), OciError> {
    let auth = store.auth(reference);
    let config = serde_json::to_vec(&PluginConfigBlob {
        os: platform.os.clone(),
        architecture: platform.architecture.clone(),
        name: name.to_string(),
    })
    .map_err(|e| OciError::Artifact(e.to_string()))?;
    let client = store.client();
    client
        .store_auth_if_needed(reference.resolve_registry(), &auth)
        .await;
    let config_digest = artifact::digest(&config);
    let binary_digest = artifact::digest(binary);
    client
        .auth(reference, &auth, oci_client::RegistryOperation::Push)
        .await
        .map_err(|e| OciError::Registry(e.to_string()))?;
    client
        .push_blob(reference, config.clone(), &config_digest)
        .await
        .map_err(|e| OciError::Registry(e.to_string()))?;
    client
        .push_blob(reference, binary.to_vec(), &binary_digest)
        .await
        .map_err(|e| OciError::Registry(e.to_string()))?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(artifact::MANIFEST_MEDIA_TYPE.into()),
        artifact_type: Some(artifact::ARTIFACT_TYPE.into()),
        config: Some(Descriptor {
            media_type: artifact::CONFIG_MEDIA_TYPE.into(),
            digest: config_digest,
            size: config.len() as i64,
            annotations: None,
            platform: None,
        }),
        layers: Some(vec![Descriptor {
            media_type: artifact::BINARY_MEDIA_TYPE.into(),
            digest: binary_digest,
            size: binary.len() as i64,
            annotations: Some(BTreeMap::from([(
                "org.opencontainers.image.title".to_string(),
                name.to_string(),
            )])),
            platform: None,
        }]),
        manifests: None,
        annotations: None,
    };
    let body = serde_json::to_vec(&manifest).map_err(|e| OciError::Artifact(e.to_string()))?;
    Ok((manifest, body))
}

async fn push_manifest(
    store: &OciStore,
    reference: &oci_client::Reference,
    manifest: &Manifest,
    media_type: &'static str,
) -> Result<String, OciError> {
    let body = serde_json::to_vec(manifest).map_err(|e| OciError::Artifact(e.to_string()))?;
    let digest = artifact::digest(&body);
    store
        .client()
        .push_manifest_raw(reference, body, http::HeaderValue::from_static(media_type))
        .await
        .map_err(|e| OciError::Registry(e.to_string()))?;
    Ok(digest)
}

/// Loads an unencrypted PKCS#8 or SEC1 PEM ECDSA P-256 private key.
pub fn signing_key(pem: &str) -> Result<SigningKey, String> {
    SigningKey::from_pkcs8_pem(pem.trim())
        .or_else(|_| p256::SecretKey::from_sec1_pem(pem.trim()).map(SigningKey::from))
        .map_err(|e| {
            format!("not an unencrypted ECDSA P-256 private key (PKCS#8 or SEC1 PEM): {e}")
        })
}

/// The `{}` config blob of signature and referrer manifests, which carry no config.
pub(super) const EMPTY_CONFIG: &[u8] = b"{}";

/// Pushes [`EMPTY_CONFIG`] and `payload` as blobs of `reference`'s repository (the two
/// blobs of a one-layer signature or referrer manifest); returns their digests.
pub(super) async fn push_empty_config_and(
    store: &OciStore,
    reference: &oci_client::Reference,
    payload: &[u8],
) -> Result<(String, String), OciError> {
    let empty_digest = artifact::digest(EMPTY_CONFIG);
    let payload_digest = artifact::digest(payload);
    for (data, digest) in [(EMPTY_CONFIG, &empty_digest), (payload, &payload_digest)] {
        store
            .client()
            .push_blob(reference, data.to_vec(), digest)
            .await
            .map_err(|e| OciError::Registry(e.to_string()))?;
    }
    Ok((empty_digest, payload_digest))
}

/// Signs the manifest `digest` of `reference`'s repository and pushes the signature to
/// `<repo>:sha256-<hex>.sig`. Returns the signature tag.
pub async fn sign(
    store: &OciStore,
    reference: &str,
    digest: &str,
    key: &SigningKey,
) -> Result<String, OciError> {
    let reference = store.parse(reference)?;
    let auth = store.auth(&reference);
    let repository = format!("{}/{}", reference.registry(), reference.repository());
    let payload = cosign::payload(&repository, digest);
    let signature = cosign::sign(key, &payload);
    let tag = cosign::signature_tag(digest);
    let sig_ref = oci_client::Reference::with_tag(
        reference.registry().into(),
        reference.repository().into(),
        tag.clone(),
    );
    let client = store.client();
    client
        .auth(&sig_ref, &auth, oci_client::RegistryOperation::Push)
        .await
        .map_err(|e| OciError::Registry(e.to_string()))?;
    let (empty_digest, payload_digest) = push_empty_config_and(store, &sig_ref, &payload).await?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(artifact::MANIFEST_MEDIA_TYPE.into()),
        artifact_type: None,
        config: Some(Descriptor {
            media_type: "application/vnd.oci.image.config.v1+json".into(),
            digest: empty_digest,
            size: EMPTY_CONFIG.len() as i64,
            annotations: None,
            platform: None,
        }),
        layers: Some(vec![Descriptor {
            media_type: cosign::SIMPLESIGNING_MEDIA_TYPE.into(),
            digest: payload_digest,
            size: payload.len() as i64,
            annotations: Some(BTreeMap::from([(
                cosign::SIGNATURE_ANNOTATION.to_string(),
                signature,
            )])),
            platform: None,
        }]),
        manifests: None,
        annotations: None,
    };
    push_manifest(store, &sig_ref, &manifest, artifact::MANIFEST_MEDIA_TYPE).await?;
    Ok(tag)
}
