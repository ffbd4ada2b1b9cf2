//! Cosign signatures: good, bad and missing, with `require_signature` on and off, and
//! re-verification when a cached plugin is loaded.

use crate::registry::{Registry, push, settings, store};
use microgateway::oci::OciError;
use microgateway::oci::cache::SignatureRecord;
use p256::ecdsa::SigningKey;

fn key() -> SigningKey {
    SigningKey::random(&mut rand_core::OsRng)
}

struct Case {
    reg: Registry,
    reference: String,
    digest: String,
}

async fn signed_with(signer: Option<&SigningKey>) -> Case {
    let reg = Registry::start().await;
    let pusher = store(settings(tempfile::tempdir().unwrap().path(), &reg), &[]);
    let reference = format!("{}/plugins/signed:1", reg.host);
    let digest = push(&pusher, &reference, b"#!/bin/sh\n# signed-plugin\n").await;
    if let Some(k) = signer {
        microgateway::oci::push::sign(&pusher, &reference, &digest, k)
            .await
            .unwrap();
    }
    Case {
        reg,
        reference,
        digest,
    }
}

fn verifying(
    case: &Case,
    cache: &std::path::Path,
    trusted: &[&SigningKey],
    require: bool,
) -> microgateway::oci::OciStore {
    let mut s = settings(cache, &case.reg);
    s.public_keys = trusted.iter().map(|k| *k.verifying_key()).collect();
    s.require_signature = require;
    store(s, &[])
}

#[tokio::test]
async fn good_signature_passes_with_require_on() {
    let k = key();
    let case = signed_with(Some(&k)).await;
    let cache = tempfile::tempdir().unwrap();
    let fetched = verifying(&case, cache.path(), &[&key(), &k], true)
        .fetch(&case.reference)
        .await
        .unwrap();
    assert!(matches!(
        fetched.meta.signature,
        SignatureRecord::Verified { .. }
    ));
    assert_eq!(fetched.meta.manifest_digest, case.digest);
}

#[tokio::test]
async fn bad_signature_is_refused_with_require_on_and_off() {
    let case = signed_with(Some(&key())).await;
    for require in [true, false] {
        let cache = tempfile::tempdir().unwrap();
        let err = verifying(&case, cache.path(), &[&key()], require)
            .fetch(&case.reference)
            .await
            .unwrap_err();
        assert!(
            matches!(err, OciError::Signature(_)),
            "require={require}: {err}"
        );
        assert_eq!(
            std::fs::read_dir(cache.path().join("sha256"))
                .unwrap()
                .count(),
            0
        );
    }
}

#[tokio::test]
async fn missing_signature_depends_on_require() {
    let case = signed_with(None).await;
    let cache = tempfile::tempdir().unwrap();
    let err = verifying(&case, cache.path(), &[&key()], true)
        .fetch(&case.reference)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no signature found"), "{err}");
    let relaxed = tempfile::tempdir().unwrap();
    let fetched = verifying(&case, relaxed.path(), &[&key()], false)
        .fetch(&case.reference)
        .await
        .unwrap();
    assert_eq!(fetched.meta.signature, SignatureRecord::Missing);
}

#[tokio::test]
async fn require_without_keys_is_refused() {
    let case = signed_with(Some(&key())).await;
    let cache = tempfile::tempdir().unwrap();
    let err = verifying(&case, cache.path(), &[], true)
        .fetch(&case.reference)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no public keys"), "{err}");
}

#[tokio::test]
async fn cached_plugin_is_reverified_on_load() {
    let k = key();
    let mut case = signed_with(Some(&k)).await;
    let cache = tempfile::tempdir().unwrap();
    verifying(&case, cache.path(), &[&k], true)
        .fetch(&case.reference)
        .await
        .unwrap();
    case.reg.stop().await;
    // Offline, the cached signature still verifies with the right key …
    let again = verifying(&case, cache.path(), &[&k], true)
        .fetch(&case.reference)
        .await
        .unwrap();
    assert!(again.from_cache);
    // … and fails once the trusted key set no longer contains the signer.
    let err = verifying(&case, cache.path(), &[&key()], true)
        .fetch(&case.reference)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no longer verifies"), "{err}");
    // A plugin cached without a signature is refused once signatures become required.
    let unsigned = signed_with(None).await;
    let cache2 = tempfile::tempdir().unwrap();
    verifying(&unsigned, cache2.path(), &[], false)
        .fetch(&unsigned.reference)
        .await
        .unwrap();
    let pinned = format!("{}/plugins/signed@{}", unsigned.reg.host, unsigned.digest);
    let err = verifying(&unsigned, cache2.path(), &[&k], true)
        .fetch(&pinned)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("without a verified signature"),
        "{err}"
    );
}
