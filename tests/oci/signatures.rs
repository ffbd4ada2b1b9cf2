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

/// The public sigstore-rs vectors (tests/data/sigstore-rs, see its README): the
/// key-signed simple-signing payload verifies, a tampered copy does not, and the
/// cosign-v3 keyless bundle is told apart and refused as keyless.
#[test]
fn public_sigstore_rs_vectors() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sigstore-rs");
    let payload = std::fs::read(dir.join("simple_signing_payload.json")).unwrap();
    let signature = std::fs::read_to_string(dir.join("simple_signing_payload.sig")).unwrap();
    let key = microgateway::oci::settings::parse_public_key(
        &std::fs::read_to_string(dir.join("cosign.pub")).unwrap(),
    )
    .unwrap();
    let digest = "sha256:f3cfc9d0dbf931d3db4685ec659b7ac68e2a578219da4aae65427886e649b06b";
    assert_eq!(
        microgateway::oci::cosign::verify(&payload, &signature, &[key], digest),
        Ok(0)
    );
    let tampered = String::from_utf8(payload.clone())
        .unwrap()
        .replace("busybox", "busyb0x");
    let err = microgateway::oci::cosign::verify(tampered.as_bytes(), &signature, &[key], digest)
        .unwrap_err();
    assert!(err.contains("trusted public key"), "{err}");
    let err =
        microgateway::oci::cosign::verify(&payload, &signature, &[key], "sha256:00").unwrap_err();
    assert!(err.contains("not sha256:00"), "{err}");

    let keyless = std::fs::read(dir.join("bundle_v03_keyless.json")).unwrap();
    assert!(microgateway::oci::bundle::is_keyless(&keyless));
    let subject = "sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172";
    let err = microgateway::oci::bundle::verify(&keyless, &[key], subject).unwrap_err();
    assert!(err.contains("keyless") && err.contains("--key"), "{err}");
}

/// The pusher's store for `case` (no keys).
fn pusher(case: &Case) -> microgateway::oci::OciStore {
    store(
        settings(tempfile::tempdir().unwrap().path(), &case.reg),
        &[],
    )
}

#[tokio::test]
async fn bundle_via_fallback_tag_passes_and_reverifies_offline() {
    let k = key();
    let mut case = signed_with(None).await;
    microgateway::oci::referrers::sign_bundle(&pusher(&case), &case.reference, &case.digest, &k)
        .await
        .unwrap();
    // docker-registry has no referrers API: the bundle is listed under the fallback tag.
    let tag = microgateway::oci::referrers::fallback_tag(&case.digest);
    let log = case.reg.log.lock().unwrap().clone();
    assert!(
        log.contains(&format!("/manifests/{tag}")),
        "fallback tag never written: {log}"
    );
    let cache = tempfile::tempdir().unwrap();
    let fetched = verifying(&case, cache.path(), &[&key(), &k], true)
        .fetch(&case.reference)
        .await
        .unwrap();
    let SignatureRecord::Bundle { bundle } = &fetched.meta.signature else {
        panic!("expected a bundle record: {:?}", fetched.meta.signature);
    };
    assert!(bundle.contains("dsseEnvelope"));
    let log = case.reg.log.lock().unwrap().clone();
    assert!(
        log.contains("/referrers/")
            && log.contains(&format!("GET /v2/plugins/signed/manifests/{tag}")),
        "lookup did not try the API then the fallback tag: {log}"
    );
    case.reg.stop().await;
    let pinned = format!("{}/plugins/signed@{}", case.reg.host, case.digest);
    let again = verifying(&case, cache.path(), &[&k], true)
        .fetch(&pinned)
        .await
        .unwrap();
    assert!(again.from_cache);
    let err = verifying(&case, cache.path(), &[&key()], true)
        .fetch(&pinned)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no longer verifies"), "{err}");
}

#[tokio::test]
async fn wrong_key_wrong_subject_and_keyless_bundles_are_refused() {
    let trusted = key();
    type MakeBundle<'a> = Box<dyn Fn(&str) -> Vec<u8> + 'a>;
    let cases: [(&str, MakeBundle); 3] = [
        (
            "trusted public key",
            Box::new(|d: &str| microgateway::oci::bundle::make(&key(), d)),
        ),
        (
            "not sha256:",
            Box::new(|_: &str| {
                let other = format!("sha256:{}", "ab".repeat(32));
                microgateway::oci::bundle::make(&trusted, &other)
            }),
        ),
        (
            "keyless",
            Box::new(|d: &str| {
                let mut b: serde_json::Value =
                    serde_json::from_slice(&microgateway::oci::bundle::make(&trusted, d)).unwrap();
                b["verificationMaterial"] = serde_json::json!({
                    "certificate": { "rawBytes": "MIIC" }, "tlogEntries": []
                });
                b.to_string().into_bytes()
            }),
        ),
    ];
    for (expected, make) in cases {
        let case = signed_with(None).await;
        microgateway::oci::referrers::attach(
            &pusher(&case),
            &case.reference,
            &case.digest,
            &make(&case.digest),
        )
        .await
        .unwrap();
        for require in [true, false] {
            let cache = tempfile::tempdir().unwrap();
            let err = verifying(&case, cache.path(), &[&trusted], require)
                .fetch(&case.reference)
                .await
                .unwrap_err();
            assert!(
                matches!(err, OciError::Signature(_)) && err.to_string().contains(expected),
                "{expected} (require={require}): {err}"
            );
        }
    }
}

#[tokio::test]
async fn bundle_found_through_the_referrers_api() {
    let api = crate::referrers::ReferrersRegistry::start().await;
    let config = microgateway::config::OciConfig {
        cache_dir: tempfile::tempdir().unwrap().path().to_path_buf(),
        insecure_registries: vec![api.host.clone()],
        ..Default::default()
    };
    let s = microgateway::oci::settings::OciSettings::with_env(&config, &|_| None).unwrap();
    let plain = store(s.clone(), &[]);
    let reference = format!("{}/plugins/api:1", api.host);
    let digest = push(&plain, &reference, b"#!/bin/sh\n# api-signed\n").await;
    let k = key();
    microgateway::oci::referrers::sign_bundle(&plain, &reference, &digest, &k)
        .await
        .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut s = s;
    s.cache_dir = cache.path().to_path_buf();
    s.public_keys = vec![*k.verifying_key()];
    s.require_signature = true;
    let fetched = store(s, &[]).fetch(&reference).await.unwrap();
    assert!(matches!(
        fetched.meta.signature,
        SignatureRecord::Bundle { .. }
    ));
    assert!(*api.api_hits.lock().unwrap() >= 1);
    drop(api.inner);
}

/// The gateway binary, with `OCI_PLUGINS_REQUIRE_SIGNATURE=true` and the key in
/// `OCI_PLUGINS_PUBLIC_KEY_0`, runs a plugin signed with a bundle and does not run one
/// signed with another key, logging the cause once.
#[tokio::test]
async fn gateway_requires_a_bundle_signed_by_its_key() {
    use p256::pkcs8::{EncodePublicKey, LineEnding};
    let reg = Registry::start().await;
    let s = store(settings(tempfile::tempdir().unwrap().path(), &reg), &[]);
    let binary = std::fs::read(env!("CARGO_BIN_EXE_mg-plugin-header-enricher")).unwrap();
    let k = key();
    let good = format!("{}/plugins/enricher:signed", reg.host);
    let digest = push(&s, &good, &binary).await;
    microgateway::oci::referrers::sign_bundle(&s, &good, &digest, &k)
        .await
        .unwrap();
    let pem = k.verifying_key().to_public_key_pem(LineEnding::LF).unwrap();
    let up = crate::common::TestUpstream::start("up").await;
    let cache = tempfile::tempdir().unwrap();
    let config = |reference: &str| {
        crate::common::GatewayConfig::new()
            .upstream("main", &[&up])
            .route("main", "main", "")
            .raw(&format!(
                "[oci]\ncache_dir = {}\ninsecure_registries = [{}]\n",
                crate::common::gateway::toml_path(cache.path()),
                crate::common::gateway::toml_str(&reg.host)
            ))
            .plugin(
                crate::common::PluginEntry::new(
                    "signed",
                    &format!("oci://{reference}"),
                    "pre_auth",
                )
                .extra("config = { headers = { \"x-signed\" = \"1\" } }"),
            )
    };
    let env = [
        ("OCI_PLUGINS_REQUIRE_SIGNATURE", "true"),
        ("OCI_PLUGINS_PUBLIC_KEY_0", pem.as_str()),
    ];
    let gw = crate::common::binary::GatewayProcess::spawn_with_env(&config(&good), &env).await;
    let reply = crate::common::get(gw.proxy_addr, "/x").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.echo().header("x-signed"), Some("1"));
    drop(gw);

    // The same binary under another name is another manifest, signed with another key.
    let bad = format!("{}/plugins/enricher:other-key", reg.host);
    let bad_digest = microgateway::oci::push::push(&s, &bad, &binary, "other")
        .await
        .unwrap();
    assert_ne!(bad_digest, digest);
    microgateway::oci::referrers::sign_bundle(&s, &bad, &bad_digest, &key())
        .await
        .unwrap();
    let gw = crate::common::binary::GatewayProcess::spawn_with_env(&config(&bad), &env).await;
    let reply = crate::common::get(gw.proxy_addr, "/x").await;
    assert!(
        reply.status != 200 || reply.echo().header("x-signed").is_none(),
        "a plugin signed with another key ran"
    );
    let log = gw.log.lock().unwrap().clone();
    let line = log
        .lines()
        .find(|l| l.contains("plugin cannot load"))
        .unwrap_or_else(|| panic!("no load failure logged: {log}"));
    assert_eq!(line.matches("trusted public key").count(), 1, "{line}");
    assert_eq!(line.matches(&bad_digest).count(), 1, "{line}");
}

/// `referrers::sign` (behind `plugin sign --format`) writes either format, and a pull
/// finds each where cosign would.
#[tokio::test]
async fn both_sign_formats_verify() {
    use microgateway::oci::referrers::{SignFormat, sign};
    for (format, bundle) in [(SignFormat::Bundle, true), (SignFormat::Legacy, false)] {
        let k = key();
        let case = signed_with(None).await;
        let at = sign(&pusher(&case), &case.reference, &case.digest, &k, format)
            .await
            .unwrap();
        assert_eq!(at.ends_with(".sig"), !bundle, "{at}");
        let cache = tempfile::tempdir().unwrap();
        let fetched = verifying(&case, cache.path(), &[&k], true)
            .fetch(&case.reference)
            .await
            .unwrap();
        assert_eq!(
            matches!(fetched.meta.signature, SignatureRecord::Bundle { .. }),
            bundle,
            "{format:?}: {:?}",
            fetched.meta.signature
        );
    }
}
