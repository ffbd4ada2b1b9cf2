//! Sigstore bundles as cosign v3 writes them for images, verified and produced with `p256`.
//!
//! `cosign sign --key` (v3, and v2 with `--new-bundle-format`) writes a bundle of media
//! type [`BUNDLE_MEDIA_TYPE`] whose `dsseEnvelope` carries an in-toto statement
//! (`payloadType` `application/vnd.in-toto+json`) with predicate type
//! [`COSIGN_SIGN_PREDICATE`] and one subject whose `digest.sha256` is the signed
//! manifest's digest. The DSSE signature is ECDSA-P256-SHA256 (DER, base64) over the
//! pre-authentication encoding ([`pae`]) of payload type and payload.
//!
//! Verified here: the envelope signature with a configured public key, the payload type,
//! the statement type, the predicate type and the subject digest. Not verified: Rekor
//! transparency-log entries and RFC 3161 timestamps, which may be present and are
//! ignored (a key-signed bundle is trusted through the key alone). Keyless bundles (a
//! Fulcio certificate in `verificationMaterial`) are refused, since trusting them needs
//! Fulcio roots and an identity policy this gateway does not have.

use base64::Engine as _;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{DerSignature, Signature, SigningKey, VerifyingKey};
use serde::Deserialize;

/// Media type of a sigstore bundle v0.3 (also the referrer's `artifactType`).
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// DSSE payload type of in-toto statements.
pub const INTOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The in-toto statement type cosign v3 writes.
pub const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
/// The predicate type of a cosign image signature (as opposed to an attestation).
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";

/// Largest bundle accepted, in bytes.
pub const MAX_BUNDLE_BYTES: usize = 1 << 20;

const KEYLESS: &str = "keyless (Fulcio certificate) bundles are not supported; configure a public key and sign with `cosign sign --key`";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bundle {
    #[serde(default)]
    media_type: String,
    #[serde(default)]
    verification_material: Option<Material>,
    #[serde(default)]
    dsse_envelope: Option<Envelope>,
    #[serde(default)]
    message_signature: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Material {
    #[serde(default)]
    certificate: Option<serde_json::Value>,
    #[serde(default)]
    x509_certificate_chain: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    payload: String,
    payload_type: String,
    #[serde(default)]
    signatures: Vec<EnvelopeSignature>,
}

#[derive(Deserialize)]
struct EnvelopeSignature {
    sig: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Statement {
    #[serde(rename = "_type", default)]
    kind: String,
    #[serde(default)]
    subject: Vec<Subject>,
    #[serde(default)]
    predicate_type: String,
}

#[derive(Deserialize)]
struct Subject {
    #[serde(default)]
    digest: std::collections::BTreeMap<String, String>,
}

/// DSSE's pre-authentication encoding: `DSSEv1 <len> <type> <len> <payload>`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Decodes base64 in any of the spellings protobuf JSON allows (standard or URL-safe,
/// padded or not).
pub fn decode_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let text = text.trim();
    STANDARD
        .decode(text)
        .or_else(|_| STANDARD_NO_PAD.decode(text))
        .or_else(|_| URL_SAFE.decode(text))
        .or_else(|_| URL_SAFE_NO_PAD.decode(text))
}

/// True when `json` is a bundle whose verification material is a certificate (keyless).
pub fn is_keyless(json: &[u8]) -> bool {
    serde_json::from_slice::<Bundle>(json)
        .ok()
        .and_then(|b| b.verification_material)
        .is_some_and(|m| m.certificate.is_some() || m.x509_certificate_chain.is_some())
}

/// Checks that the bundle `json` is a cosign image signature of `digest`
/// (`sha256:<hex>`) made with one of `keys`. Returns the index of the key that verified.
pub fn verify(json: &[u8], keys: &[VerifyingKey], digest: &str) -> Result<usize, String> {
    if json.len() > MAX_BUNDLE_BYTES {
        return Err(format!(
            "bundle of {} bytes exceeds {MAX_BUNDLE_BYTES}",
            json.len()
        ));
    }
    let bundle: Bundle =
        serde_json::from_slice(json).map_err(|e| format!("bundle is not sigstore JSON: {e}"))?;
    if !bundle
        .media_type
        .starts_with("application/vnd.dev.sigstore.bundle")
    {
        return Err(format!(
            "bundle media type {:?} is not a sigstore bundle",
            bundle.media_type
        ));
    }
    if let Some(m) = &bundle.verification_material
        && (m.certificate.is_some() || m.x509_certificate_chain.is_some())
    {
        return Err(KEYLESS.to_string());
    }
    let Some(envelope) = bundle.dsse_envelope else {
        return Err(if bundle.message_signature.is_some() {
            "bundle holds a message signature, not the DSSE envelope cosign writes for images"
                .to_string()
        } else {
            "bundle has no DSSE envelope".to_string()
        });
    };
    if envelope.payload_type != INTOTO_PAYLOAD_TYPE {
        return Err(format!(
            "DSSE payload type is {:?}, not {INTOTO_PAYLOAD_TYPE}",
            envelope.payload_type
        ));
    }
    let payload =
        decode_base64(&envelope.payload).map_err(|e| format!("DSSE payload is not base64: {e}"))?;
    let signed = pae(&envelope.payload_type, &payload);
    let mut verified = None;
    for s in &envelope.signatures {
        let Ok(der) = decode_base64(&s.sig) else {
            continue;
        };
        let Ok(signature) = Signature::from_der(&der) else {
            continue;
        };
        if let Some(i) = keys
            .iter()
            .position(|k| k.verify(&signed, &signature).is_ok())
        {
            verified = Some(i);
            break;
        }
    }
    let key = verified.ok_or_else(|| {
        format!(
            "none of the bundle's {} DSSE signature(s) verifies with a trusted public key",
            envelope.signatures.len()
        )
    })?;
    let statement: Statement = serde_json::from_slice(&payload)
        .map_err(|e| format!("DSSE payload is not an in-toto statement: {e}"))?;
    if !statement.kind.starts_with("https://in-toto.io/Statement/") {
        return Err(format!(
            "statement type {:?} is not in-toto",
            statement.kind
        ));
    }
    if statement.predicate_type != COSIGN_SIGN_PREDICATE {
        return Err(format!(
            "statement predicate {:?} is an attestation, not a cosign signature ({COSIGN_SIGN_PREDICATE})",
            statement.predicate_type
        ));
    }
    let want = digest.strip_prefix("sha256:").unwrap_or(digest);
    let subjects: Vec<String> = statement
        .subject
        .iter()
        .filter_map(|s| s.digest.get("sha256").map(|h| format!("sha256:{h}")))
        .collect();
    if !subjects.iter().any(|s| s == &format!("sha256:{want}")) {
        return Err(format!(
            "bundle signs {}, not {digest}",
            if subjects.is_empty() {
                "no sha256 subject".to_string()
            } else {
                subjects.join(", ")
            }
        ));
    }
    Ok(key)
}

/// The in-toto statement cosign v3 signs for the manifest `digest`.
pub fn statement(digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    serde_json::json!({
        "_type": STATEMENT_V1,
        "subject": [{ "digest": { "sha256": hex } }],
        "predicateType": COSIGN_SIGN_PREDICATE,
        "predicate": {}
    })
    .to_string()
    .into_bytes()
}

/// A cosign-v3-shaped bundle signing `digest` with `key` (no transparency-log entry,
/// as `cosign sign --key --tlog-upload=false` writes).
pub fn make(key: &SigningKey, digest: &str) -> Vec<u8> {
    use p256::pkcs8::EncodePublicKey;
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = statement(digest);
    let signature: Signature = key.sign(&pae(INTOTO_PAYLOAD_TYPE, &payload));
    let der: DerSignature = signature.to_der();
    // The hint names the key (the SHA-256 of its DER SubjectPublicKeyInfo); verifiers
    // here try every trusted key, so it is informational.
    let hint = key
        .verifying_key()
        .to_public_key_der()
        .map(|d| b64.encode(<sha2::Sha256 as sha2::Digest>::digest(d.as_bytes())))
        .unwrap_or_default();
    serde_json::json!({
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": { "publicKey": { "hint": hint }, "tlogEntries": [] },
        "dsseEnvelope": {
            "payload": b64.encode(&payload),
            "payloadType": INTOTO_PAYLOAD_TYPE,
            "signatures": [{ "sig": b64.encode(der.as_bytes()), "keyid": "" }]
        }
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn key() -> SigningKey {
        SigningKey::random(&mut rand_core::OsRng)
    }

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // The DSSE protocol document's example: type "http://example.com/HelloWorld", body "hello world".
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn made_bundle_verifies_and_names_its_key() {
        let k = key();
        let bundle = make(&k, DIGEST);
        let keys = [*key().verifying_key(), *k.verifying_key()];
        assert_eq!(verify(&bundle, &keys, DIGEST), Ok(1));
        let err = verify(&bundle, &keys[..1], DIGEST).unwrap_err();
        assert!(err.contains("trusted public key"), "{err}");
        let other = DIGEST.replace("0123", "9999");
        let err = verify(&bundle, &keys, &other).unwrap_err();
        assert!(err.contains("not sha256:9999"), "{err}");
    }

    #[test]
    fn tampered_statement_fails() {
        let k = key();
        let mut bundle: serde_json::Value = serde_json::from_slice(&make(&k, DIGEST)).unwrap();
        let other = statement(&DIGEST.replace("0123", "4444"));
        bundle["dsseEnvelope"]["payload"] = base64::engine::general_purpose::STANDARD
            .encode(other)
            .into();
        let err = verify(bundle.to_string().as_bytes(), &[*k.verifying_key()], DIGEST).unwrap_err();
        assert!(err.contains("trusted public key"), "{err}");
    }

    #[test]
    fn keyless_and_attestations_are_told_apart() {
        let k = key();
        let mut bundle: serde_json::Value = serde_json::from_slice(&make(&k, DIGEST)).unwrap();
        bundle["verificationMaterial"] =
            serde_json::json!({ "certificate": { "rawBytes": "MIIB" } });
        let text = bundle.to_string();
        assert!(is_keyless(text.as_bytes()));
        let err = verify(text.as_bytes(), &[*k.verifying_key()], DIGEST).unwrap_err();
        assert!(err.contains("keyless") && err.contains("--key"), "{err}");

        let hex = DIGEST.trim_start_matches("sha256:");
        let provenance = serde_json::json!({
            "_type": STATEMENT_V1,
            "subject": [{ "digest": { "sha256": hex } }],
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": {}
        })
        .to_string();
        let sig: Signature = k.sign(&pae(INTOTO_PAYLOAD_TYPE, provenance.as_bytes()));
        let b64 = base64::engine::general_purpose::STANDARD;
        let attestation = serde_json::json!({
            "mediaType": BUNDLE_MEDIA_TYPE,
            "verificationMaterial": { "publicKey": { "hint": "" } },
            "dsseEnvelope": {
                "payload": b64.encode(provenance),
                "payloadType": INTOTO_PAYLOAD_TYPE,
                "signatures": [{ "sig": b64.encode(sig.to_der().as_bytes()) }]
            }
        })
        .to_string();
        let err = verify(attestation.as_bytes(), &[*k.verifying_key()], DIGEST).unwrap_err();
        assert!(err.contains("attestation"), "{err}");
    }
}
