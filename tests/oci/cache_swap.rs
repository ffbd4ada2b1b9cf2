//! The cache-swap attack: with signatures required, someone who can write the cache
//! puts their own binary at `sha256/<its hash>` and edits `blob_digest` in the
//! reference metadata. Every load re-derives the binary from the signed manifest, so a
//! pinned digest and a registry-down fallback both refuse it.

use crate::layout::{E, Layout, TAR_GZ, arch, config, gz, tar};
use crate::registry::{Registry, push, settings, store};
use microgateway::oci::OciStore;
use p256::ecdsa::SigningKey;
use std::os::unix::fs::PermissionsExt;

const EVIL: &[u8] = b"#!/bin/sh\necho attacker\n";

fn verifying(cache: &std::path::Path, reg: &Registry, key: &SigningKey) -> OciStore {
    let mut s = settings(cache, reg);
    s.public_keys = vec![*key.verifying_key()];
    s.require_signature = true;
    store(s, &[])
}

/// Swaps the binary the way the attack does; returns how many metadata files changed.
fn swap(cache: &std::path::Path, original: &str) -> usize {
    let evil = microgateway::oci::artifact::digest(EVIL);
    let path = cache
        .join("sha256")
        .join(evil.trim_start_matches("sha256:"));
    std::fs::write(&path, EVIL).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut edited = 0;
    let mut stack = vec![cache.join("refs")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            let mut meta: serde_json::Value = serde_json::from_str(&text).unwrap();
            if meta["blob_digest"] == original {
                meta["blob_digest"] = evil.clone().into();
                meta["size"] = EVIL.len().into();
                std::fs::write(&p, serde_json::to_vec_pretty(&meta).unwrap()).unwrap();
                edited += 1;
            }
        }
    }
    edited
}

async fn attack(mut reg: Registry, reference: String, top_digest: String, key: SigningKey) {
    let cache = tempfile::tempdir().unwrap();
    let s = verifying(cache.path(), &reg, &key);
    let fetched = s.fetch(&reference).await.unwrap();
    assert_eq!(fetched.meta.manifest_digest, top_digest);
    let pinned = format!("{}@{}", reference.rsplit_once(':').unwrap().0, top_digest);
    // Before the swap, the pinned digest loads from the cache.
    assert!(s.fetch(&pinned).await.unwrap().from_cache);
    // The sha256-<hex>.json file exists, as the attack assumes.
    let hex = top_digest.trim_start_matches("sha256:");
    let repo = reference
        .split_once('/')
        .unwrap()
        .1
        .rsplit_once(':')
        .unwrap()
        .0;
    let host_dir = reg.host.replace(':', "_");
    assert!(
        cache
            .path()
            .join(format!("refs/{host_dir}/{repo}/sha256-{hex}.json"))
            .is_file()
    );
    assert!(swap(cache.path(), &fetched.meta.blob_digest) >= 2);
    let err = s.fetch(&pinned).await.unwrap_err().to_string();
    assert!(
        err.contains("does not match its manifest") && err.contains("the metadata names"),
        "{err}"
    );
    reg.stop().await;
    let err = s.fetch(&reference).await.unwrap_err().to_string();
    assert!(err.contains("does not match its manifest"), "{err}");
    // A fresh process sees the same.
    let err = verifying(cache.path(), &reg, &key)
        .fetch(&pinned)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not match its manifest"), "{err}");
}

#[tokio::test]
async fn swapped_binary_of_a_signed_artifact_is_refused() {
    let reg = Registry::start().await;
    let key = SigningKey::random(&mut rand_core::OsRng);
    let pusher = store(settings(tempfile::tempdir().unwrap().path(), &reg), &[]);
    let reference = format!("{}/plugins/swap:1", reg.host);
    let digest = push(&pusher, &reference, b"#!/bin/sh\necho signed\n").await;
    microgateway::oci::push::sign(&pusher, &reference, &digest, &key)
        .await
        .unwrap();
    attack(reg, reference, digest, key).await;
}

#[tokio::test]
async fn swapped_binary_of_a_signed_image_is_refused() {
    let reg = Registry::start().await;
    let key = SigningKey::random(&mut rand_core::OsRng);
    let layer = tar(&[E::File("plugin", b"#!/bin/sh\necho signed image\n")]);
    let layout = Layout::new();
    let image = layout.image(
        &config(&arch(), Some(&["/plugin"]), &[&layer]),
        &[(TAR_GZ, gz(&layer))],
    );
    let reference = format!("{}/plugins/swapimage:1", reg.host);
    layout.push(&image, &reference, &[]);
    let digest = image["digest"].as_str().unwrap().to_string();
    let pusher = store(settings(tempfile::tempdir().unwrap().path(), &reg), &[]);
    microgateway::oci::push::sign(&pusher, &reference, &digest, &key)
        .await
        .unwrap();
    attack(reg, reference, digest, key).await;
}

#[tokio::test]
async fn an_index_signed_with_a_bundle_loads_from_the_cache_and_refuses_a_swap() {
    use microgateway::oci::artifact::Platform;
    use microgateway::oci::referrers::{SignFormat, sign};
    let mut reg = Registry::start().await;
    let key = SigningKey::random(&mut rand_core::OsRng);
    let pusher = store(settings(tempfile::tempdir().unwrap().path(), &reg), &[]);
    let reference = format!("{}/plugins/swapindex:1", reg.host);
    let mut other = Platform::current();
    other.architecture = if other.architecture == "arm64" {
        "amd64"
    } else {
        "arm64"
    }
    .into();
    let index = microgateway::oci::push::push_index(
        &pusher,
        &reference,
        &[
            (
                Platform::current(),
                b"#!/bin/sh\necho this platform\n".to_vec(),
            ),
            (other, b"#!/bin/sh\necho other platform\n".to_vec()),
        ],
        "swapindex",
    )
    .await
    .unwrap();
    // Only the index is signed (cosign v3's bundle format), not the platform manifests.
    sign(&pusher, &reference, &index, &key, SignFormat::Bundle)
        .await
        .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let s = verifying(cache.path(), &reg, &key);
    let fetched = s.fetch(&reference).await.unwrap();
    assert_ne!(fetched.meta.manifest_digest, index);
    assert_eq!(
        std::fs::read(&fetched.path).unwrap(),
        b"#!/bin/sh\necho this platform\n"
    );
    // The cached copy re-verifies against the signed index, by pinned digest and with
    // the registry down.
    let pinned = format!("{}@{}", reference.rsplit_once(':').unwrap().0, index);
    assert!(s.fetch(&pinned).await.unwrap().from_cache);
    assert!(swap(cache.path(), &fetched.meta.blob_digest) >= 1);
    let err = s.fetch(&pinned).await.unwrap_err().to_string();
    assert!(err.contains("does not match its manifest"), "{err}");
    reg.stop().await;
    let err = s.fetch(&reference).await.unwrap_err().to_string();
    assert!(err.contains("does not match its manifest"), "{err}");
}
