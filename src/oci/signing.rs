//! Cosign signature lookup for pulled artifacts (see [`super::cosign`] for the format).

use super::artifact::{self, Manifest};
use super::cache::SignatureRecord;
use super::{OciError, OciStore, cosign};
use base64::Engine as _;
use oci_client::Reference;
use oci_client::secrets::RegistryAuth;

impl OciStore {
    /// Looks up and checks the cosign signature of `manifest_digest` (and of the index
    /// digest, for multi-platform artifacts signed at the index).
    pub(super) async fn check_signature(
        &self,
        reference: &Reference,
        auth: &RegistryAuth,
        manifest_digest: &str,
        top_digest: &str,
    ) -> Result<SignatureRecord, OciError> {
        let keys = &self.settings.public_keys;
        if keys.is_empty() {
            if self.settings.require_signature {
                return Err(OciError::Signature(
                    "signatures are required but no public keys are configured".into(),
                ));
            }
            return Ok(SignatureRecord::Unverified);
        }
        let mut candidates = vec![top_digest.to_string()];
        if manifest_digest != top_digest {
            candidates.push(manifest_digest.to_string());
        }
        let mut last_error = None;
        for digest in candidates {
            match self.signature_for(reference, auth, &digest).await {
                Ok(Some((payload, signature))) => {
                    match cosign::verify(&payload, &signature, keys, &digest) {
                        Ok(_) => {
                            let payload =
                                base64::engine::general_purpose::STANDARD.encode(&payload);
                            return Ok(SignatureRecord::Verified { payload, signature });
                        }
                        Err(e) => last_error = Some(e),
                    }
                }
                Ok(None) => {}
                Err(e) => last_error = Some(e.to_string()),
            }
        }
        match last_error {
            // A signature that exists but does not verify is refused even when not required.
            Some(e) => Err(OciError::Signature(e)),
            None if self.settings.require_signature => Err(OciError::Signature(format!(
                "no signature found for {top_digest} and OCI_PLUGINS_REQUIRE_SIGNATURE is set"
            ))),
            None => {
                tracing::warn!(digest = %top_digest, "plugin is not signed");
                Ok(SignatureRecord::Missing)
            }
        }
    }

    async fn signature_for(
        &self,
        reference: &Reference,
        auth: &RegistryAuth,
        digest: &str,
    ) -> Result<Option<(Vec<u8>, String)>, OciError> {
        let sig_ref = Reference::with_tag(
            reference.registry().into(),
            reference.repository().into(),
            cosign::signature_tag(digest),
        );
        let raw = match self
            .client
            .pull_manifest_raw(&sig_ref, auth, &[artifact::MANIFEST_MEDIA_TYPE])
            .await
        {
            Ok((raw, _)) => raw,
            Err(oci_client::errors::OciDistributionError::ImageManifestNotFoundError(_)) => {
                return Ok(None);
            }
            Err(e) if is_not_found(&e.to_string()) => return Ok(None),
            Err(e) => return Err(registry_error(e)),
        };
        let manifest: Manifest = serde_json::from_slice(&raw)
            .map_err(|e| OciError::Signature(format!("signature manifest: {e}")))?;
        let layer = manifest
            .layers
            .unwrap_or_default()
            .into_iter()
            .find(|l| l.media_type == cosign::SIMPLESIGNING_MEDIA_TYPE)
            .ok_or_else(|| {
                OciError::Signature("signature manifest has no simple-signing layer".into())
            })?;
        let signature = layer
            .annotations
            .as_ref()
            .and_then(|a| a.get(cosign::SIGNATURE_ANNOTATION))
            .cloned()
            .ok_or_else(|| {
                OciError::Signature("signature layer has no signature annotation".into())
            })?;
        if layer.size > 1 << 20 {
            return Err(OciError::Signature("signature payload too large".into()));
        }
        let mut payload = Vec::new();
        self.client
            .pull_blob(&sig_ref, layer.digest.as_str(), &mut payload)
            .await
            .map_err(registry_error)?;
        if artifact::digest(&payload) != layer.digest {
            return Err(OciError::Signature(
                "signature payload does not match its digest".into(),
            ));
        }
        Ok(Some((payload, signature)))
    }
}

fn registry_error(e: impl std::fmt::Display) -> OciError {
    OciError::Registry(e.to_string())
}

/// True for registry answers meaning "no such manifest" (no signature pushed).
fn is_not_found(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("manifest unknown") || m.contains("manifest_unknown") || m.contains("not found")
}
