//! Checks that need no registry round trip: re-verifying a cached plugin's signature
//! record against the keys configured now, and telling "not found" registry answers.

use super::cache::SignatureRecord;
use super::settings::OciSettings;
use super::{bundle, cosign};
use base64::Engine as _;
use oci_client::errors::OciDistributionError;

/// Re-verifies a cached plugin's signature record offline against the trusted keys.
/// `signed` lists the digests the cache has tied to the cached binary (the platform
/// manifest's, and the index's when the cache holds the index that lists it); the
/// signature must name one of them. With `require_signature`, a record other than a
/// verified one is refused. The error says why, for the caller to name the reference.
pub(super) fn reverify(
    record: &SignatureRecord,
    settings: &OciSettings,
    signed: &[&str],
) -> Result<(), String> {
    let keys = &settings.public_keys;
    let verified = match record {
        SignatureRecord::Verified { .. } | SignatureRecord::Bundle { .. } => true,
        SignatureRecord::Unverified | SignatureRecord::Missing => false,
    };
    if !verified {
        if settings.require_signature {
            return Err("cached without a verified signature".into());
        }
        return Ok(());
    }
    if keys.is_empty() {
        if settings.require_signature {
            return Err("no public keys configured".into());
        }
        return Ok(());
    }
    let mut last = String::from("no digest to check");
    for digest in signed {
        let outcome = match record {
            SignatureRecord::Verified { payload, signature } => {
                let payload = base64::engine::general_purpose::STANDARD
                    .decode(payload)
                    .map_err(|e| format!("cached payload unreadable: {e}"))?;
                cosign::verify(&payload, signature, keys, digest)
            }
            SignatureRecord::Bundle { bundle } => bundle::verify(bundle.as_bytes(), keys, digest),
            SignatureRecord::Unverified | SignatureRecord::Missing => Ok(0),
        };
        match outcome {
            Ok(_) => return Ok(()),
            Err(e) => last = e,
        }
    }
    Err(format!("cached signature no longer verifies: {last}"))
}

/// True for registry answers meaning "no such manifest" (nothing was pushed there).
pub(super) fn is_not_found(e: &OciDistributionError) -> bool {
    if let OciDistributionError::ImageManifestNotFoundError(_)
    | OciDistributionError::ServerError { code: 404, .. } = e
    {
        return true;
    }
    let m = e.to_string().to_ascii_lowercase();
    m.contains("manifest unknown") || m.contains("manifest_unknown") || m.contains("not found")
}
