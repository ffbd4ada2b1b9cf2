//! Cosign "simple signing" signatures, verified and produced in-process with `p256`.
//!
//! A signature for manifest digest `sha256:<hex>` of `registry/repo` lives at
//! `registry/repo:sha256-<hex>.sig`: an OCI manifest whose layer (media type
//! `application/vnd.dev.cosign.simplesigning.v1+json`) is the JSON payload and whose
//! annotation `dev.cosignproject.cosign/signature` is the base64 DER ECDSA-P256-SHA256
//! signature over that payload. The payload's `critical.image.docker-manifest-digest`
//! must equal the digest that was pulled. Early cosign releases (and other simple-signing
//! producers) capitalised the keys (`Critical.Image.Docker-manifest-digest`); both
//! spellings are read, as sigstore-rs and Kyverno do.

use base64::Engine as _;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{DerSignature, Signature, SigningKey, VerifyingKey};

/// Media type of the signature layer.
pub const SIMPLESIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Annotation carrying the signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// The tag holding the signature of `digest`.
pub fn signature_tag(digest: &str) -> String {
    format!("{}.sig", digest.replace(':', "-"))
}

/// The simple-signing payload for `repository` at `digest`.
pub fn payload(repository: &str, digest: &str) -> Vec<u8> {
    serde_json::json!({
        "critical": {
            "identity": { "docker-reference": repository },
            "image": { "docker-manifest-digest": digest },
            "type": "cosign container image signature"
        },
        "optional": null
    })
    .to_string()
    .into_bytes()
}

/// `critical.image.docker-manifest-digest` of a simple-signing payload, in either spelling.
pub fn signed_digest(payload: &serde_json::Value) -> Option<&str> {
    fn field<'a>(v: &'a serde_json::Value, names: &[&str]) -> Option<&'a serde_json::Value> {
        names.iter().find_map(|n| v.get(*n))
    }
    let critical = field(payload, &["critical", "Critical"])?;
    let image = field(critical, &["image", "Image"])?;
    field(image, &["docker-manifest-digest", "Docker-manifest-digest"])?.as_str()
}

/// Signs `payload`, returning the base64 DER signature.
pub fn sign(key: &SigningKey, payload: &[u8]) -> String {
    let signature: Signature = key.sign(payload);
    let der: DerSignature = signature.to_der();
    base64::engine::general_purpose::STANDARD.encode(der.as_bytes())
}

/// Checks `signature_b64` over `payload` with any of `keys`, and that the payload names
/// `digest`. Returns the index of the key that verified.
pub fn verify(
    payload: &[u8],
    signature_b64: &str,
    keys: &[VerifyingKey],
    digest: &str,
) -> Result<usize, String> {
    let claimed: serde_json::Value = serde_json::from_slice(payload)
        .map_err(|e| format!("signature payload is not JSON: {e}"))?;
    let signed_digest = signed_digest(&claimed).unwrap_or_default();
    if signed_digest != digest {
        return Err(format!("signature is for {signed_digest:?}, not {digest}"));
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(signature_b64.trim())
        .map_err(|e| format!("signature is not base64: {e}"))?;
    let signature =
        Signature::from_der(&der).map_err(|e| format!("signature is not DER ECDSA: {e}"))?;
    keys.iter()
        .position(|k| k.verify(payload, &signature).is_ok())
        .ok_or_else(|| "signature does not verify with any trusted public key".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_then_verify() {
        let key = SigningKey::random(&mut rand_core::OsRng);
        let other = SigningKey::random(&mut rand_core::OsRng);
        let body = payload("reg/repo", "sha256:abc");
        let sig = sign(&key, &body);
        let keys = [*other.verifying_key(), *key.verifying_key()];
        assert_eq!(verify(&body, &sig, &keys, "sha256:abc"), Ok(1));
        assert!(verify(&body, &sig, &keys[..1], "sha256:abc").is_err());
        assert!(
            verify(&body, &sig, &keys, "sha256:other")
                .unwrap_err()
                .contains("not sha256:other")
        );
        let mut tampered = body.clone();
        tampered[10] ^= 1;
        assert!(verify(&tampered, &sig, &keys, "sha256:abc").is_err());
    }

    #[test]
    fn both_digest_spellings_are_read() {
        let key = SigningKey::random(&mut rand_core::OsRng);
        let old = br#"{"Critical":{"Identity":{"docker-reference":"r"},"Image":{"Docker-manifest-digest":"sha256:abc"},"Type":"cosign container image signature"},"Optional":null}"#;
        let sig = sign(&key, old);
        assert_eq!(
            verify(old, &sig, &[*key.verifying_key()], "sha256:abc"),
            Ok(0)
        );
        let err = verify(old, &sig, &[*key.verifying_key()], "sha256:def").unwrap_err();
        assert!(err.contains("not sha256:def"), "{err}");
    }
}
