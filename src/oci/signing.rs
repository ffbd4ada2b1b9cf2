//! Signature lookup for pulled artifacts, and re-verification of cached ones.
//!
//! For each candidate digest (the digest the reference resolved to, then the platform
//! manifest's when that differs) the sigstore bundles attached as referrers
//! ([`super::referrers`], cosign v3's default) are tried first, then the legacy
//! `sha256-<hex>.sig` simple signing ([`super::cosign`]). The first that verifies wins
//! and is recorded ([`SignatureRecord`]) so that a cached plugin is re-verified offline
//! ([`super::verify::reverify`]).

use super::artifact::{self, Manifest};
use super::cache::SignatureRecord;
use super::verify::is_not_found;
use super::{OciError, OciStore, bundle, cosign};
use base64::Engine as _;
use oci_client::Reference;
use oci_client::secrets::RegistryAuth;

impl OciStore {
    /// Looks up and checks the signature of `manifest_digest` (and of the index
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
        // Signatures that exist but do not verify, and lookups that failed.
        let mut errors: Vec<String> = Vec::new();
        let mut lookups: Vec<String> = Vec::new();
        fn failed(what: String, e: OciError, errors: &mut Vec<String>, lookups: &mut Vec<String>) {
            match e {
                OciError::Registry(_) => lookups.push(format!("{what}: {e}")),
                _ => errors.push(format!("{what}: {e}")),
            }
        }
        for digest in candidates {
            match self.bundles_for(reference, auth, &digest).await {
                Ok(bundles) => {
                    for json in bundles {
                        match bundle::verify(&json, keys, &digest) {
                            Ok(_) => {
                                tracing::debug!(digest = %digest, "sigstore bundle verified");
                                return Ok(SignatureRecord::Bundle {
                                    bundle: String::from_utf8_lossy(&json).into_owned(),
                                });
                            }
                            Err(e) => errors.push(format!("sigstore bundle for {digest}: {e}")),
                        }
                    }
                }
                Err(e) => failed(
                    format!("referrers of {digest}"),
                    e,
                    &mut errors,
                    &mut lookups,
                ),
            }
            match self.signature_for(reference, auth, &digest).await {
                Ok(Some((payload, signature))) => {
                    match cosign::verify(&payload, &signature, keys, &digest) {
                        Ok(_) => {
                            let payload =
                                base64::engine::general_purpose::STANDARD.encode(&payload);
                            return Ok(SignatureRecord::Verified { payload, signature });
                        }
                        Err(e) => errors.push(format!("{}: {e}", cosign::signature_tag(&digest))),
                    }
                }
                Ok(None) => {}
                Err(e) => failed(cosign::signature_tag(&digest), e, &mut errors, &mut lookups),
            }
        }
        if !errors.is_empty() {
            // A signature that exists but does not verify is refused even when not required.
            return Err(OciError::Signature(errors.join("; ")));
        }
        if self.settings.require_signature {
            if !lookups.is_empty() {
                return Err(OciError::Signature(lookups.join("; ")));
            }
            return Err(OciError::Signature(format!(
                "no signature found for {top_digest} (no sigstore bundle referrer, no {} tag) and OCI_PLUGINS_REQUIRE_SIGNATURE is set",
                cosign::signature_tag(top_digest)
            )));
        }
        if !lookups.is_empty() {
            tracing::warn!(digest = %top_digest, errors = %lookups.join("; "), "signature lookup failed; loading unsigned");
        }
        tracing::warn!(digest = %top_digest, "plugin is not signed");
        Ok(SignatureRecord::Missing)
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
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(OciError::Registry(e.to_string())),
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
            .map_err(|e| OciError::Registry(e.to_string()))?;
        if artifact::digest(&payload) != layer.digest {
            return Err(OciError::Signature(
                "signature payload does not match its digest".into(),
            ));
        }
        Ok(Some((payload, signature)))
    }
}
