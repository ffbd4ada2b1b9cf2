//! Pulling into the cache: tags, digests, auth, tampering, offline starts, disk-full,
//! concurrency, size limits, GC, and an `oci://` plugin running end to end.

use crate::common::PluginEntry;
use crate::common::gateway::{toml_path, toml_str};
use crate::registry::{Registry, creds, push, settings, store};
use microgateway::oci::OciError;
use std::sync::Arc;

#[tokio::test]
async fn pull_by_tag_then_by_digest_without_network() {
    let mut reg = Registry::start().await;
    let cache = tempfile::tempdir().unwrap();
    let s = store(settings(cache.path(), &reg), &[]);
    let reference = format!("{}/plugins/demo:1.0", reg.host);
    let digest = push(&s, &reference, b"#!/bin/sh\n# plugin-bytes-v1\n").await;
    let by_tag = s.fetch(&reference).await.unwrap();
    assert!(!by_tag.from_cache);
    assert_eq!(by_tag.meta.manifest_digest, digest);
    assert_eq!(
        std::fs::read(&by_tag.path).unwrap(),
        b"#!/bin/sh\n# plugin-bytes-v1\n"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&by_tag.path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
    // A pinned digest that is cached starts with the registry gone.
    reg.stop().await;
    let pinned = format!("oci://{}/plugins/demo@{digest}", reg.host);
    let offline = s.fetch(&pinned).await.unwrap();
    assert!(offline.from_cache);
    assert_eq!(offline.path, by_tag.path);
    // The tag falls back to its cached digest when the registry is down.
    let fallback = s.fetch(&reference).await.unwrap();
    assert!(fallback.from_cache);
    assert_eq!(fallback.meta.manifest_digest, digest);
    // A reference never pulled cannot be served offline.
    let err = s
        .fetch(&format!("{}/plugins/other:1", reg.host))
        .await
        .unwrap_err();
    assert!(matches!(err, OciError::Registry(_)), "{err}");
}

#[tokio::test]
async fn pinned_digest_pulls_into_a_fresh_cache() {
    let reg = Registry::start().await;
    let s = store(settings(tempfile::tempdir().unwrap().path(), &reg), &[]);
    let digest = push(
        &s,
        &format!("{}/plugins/demo:1.0", reg.host),
        b"#!/bin/sh\n# by-digest\n",
    )
    .await;
    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh = store(settings(fresh_dir.path(), &reg), &[]);
    let fetched = fresh
        .fetch(&format!("{}/plugins/demo@{digest}", reg.host))
        .await
        .unwrap();
    assert!(!fetched.from_cache);
    assert_eq!(
        std::fs::read(fetched.path).unwrap(),
        b"#!/bin/sh\n# by-digest\n"
    );
}

#[tokio::test]
async fn registry_auth_ok_and_denied() {
    let reg = Registry::start_with(Some(("alice", "wonderland"))).await;
    let cache = tempfile::tempdir().unwrap();
    let good = creds(&reg, "alice", "wonderland");
    let good: Vec<(&str, &str)> = good.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let authed = store(settings(cache.path(), &reg), &good);
    let reference = format!("{}/plugins/private:1", reg.host);
    push(&authed, &reference, b"#!/bin/sh\n# secret-plugin\n").await;
    assert_eq!(
        std::fs::read(authed.fetch(&reference).await.unwrap().path).unwrap(),
        b"#!/bin/sh\n# secret-plugin\n"
    );
    for vars in [vec![], creds(&reg, "alice", "wrong")] {
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let dir = tempfile::tempdir().unwrap();
        let denied = store(settings(dir.path(), &reg), &vars);
        let err = denied.fetch(&reference).await.unwrap_err().to_string();
        assert!(err.to_lowercase().contains("not authorized"), "{err}");
    }
}

#[tokio::test]
async fn tampered_blob_is_rejected_and_leaves_the_cache_clean() {
    let reg = Registry::start().await;
    let cache = tempfile::tempdir().unwrap();
    let s = store(settings(cache.path(), &reg), &[]);
    let reference = format!("{}/plugins/demo:1.0", reg.host);
    push(&s, &reference, b"#!/bin/sh\n# original-binary\n").await;
    let layer = microgateway::oci::artifact::digest(b"#!/bin/sh\n# original-binary\n");
    std::fs::write(reg.blob_file(&layer), b"evil-binary!!!!").unwrap();
    let err = s.fetch(&reference).await.unwrap_err().to_string();
    assert!(err.contains("digest") || err.contains("Digest"), "{err}");
    assert_eq!(
        std::fs::read_dir(cache.path().join("sha256"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(cache.path().join("tmp")).unwrap().count(),
        0
    );
    // A cached binary modified on disk is detected on the next load.
    let clean = tempfile::tempdir().unwrap();
    std::fs::write(reg.blob_file(&layer), b"#!/bin/sh\n# original-binary\n").unwrap();
    let s2 = store(settings(clean.path(), &reg), &[]);
    let fetched = s2.fetch(&reference).await.unwrap();
    std::fs::write(&fetched.path, b"tampered-on-disk").unwrap();
    let pinned = format!("{}/plugins/demo@{}", reg.host, fetched.meta.manifest_digest);
    let err = s2.fetch(&pinned).await.unwrap_err().to_string();
    assert!(err.contains("digest mismatch"), "{err}");
}

#[tokio::test]
async fn disk_full_during_pull_leaves_the_cache_clean() {
    let reg = Registry::start().await;
    let mount = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=512k", "tmpfs"])
        .arg(mount.path())
        .status()
        .unwrap();
    assert!(status.success(), "mounting a small tmpfs needs root");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mount.path().to_path_buf());
    let pusher = store(settings(tempfile::tempdir().unwrap().path(), &reg), &[]);
    let reference = format!("{}/plugins/big:1", reg.host);
    push(&pusher, &reference, &vec![7u8; 2 * 1024 * 1024]).await;
    let s = store(settings(mount.path(), &reg), &[]);
    let err = s.fetch(&reference).await.unwrap_err().to_string();
    assert!(
        err.contains("No space left") || err.contains("os error 28"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(mount.path().join("sha256"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(mount.path().join("tmp")).unwrap().count(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pulls_of_one_digest_download_once() {
    let reg = Registry::start().await;
    let cache = tempfile::tempdir().unwrap();
    let s = Arc::new(store(settings(cache.path(), &reg), &[]));
    let mut data = b"#!/bin/sh\n".to_vec();
    data.resize(256 * 1024, b'#');
    // Two tags naming the same artifact, pulled eight times concurrently.
    for tag in ["a", "b"] {
        push(&s, &format!("{}/plugins/shared:{tag}", reg.host), &data).await;
    }
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            let reference = format!(
                "{}/plugins/shared:{}",
                reg.host,
                if i % 2 == 0 { "a" } else { "b" }
            );
            tokio::spawn(async move { s.fetch(&reference).await.unwrap().path })
        })
        .collect();
    let mut paths = Vec::new();
    for t in tasks {
        paths.push(t.await.unwrap());
    }
    paths.dedup();
    assert_eq!(paths.len(), 1);
    let layer = microgateway::oci::artifact::digest(&data);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(reg.blob_downloads(&layer), 1, "{}", reg.log.lock().unwrap());
}

#[tokio::test]
async fn oversized_plugin_is_refused_before_download() {
    let reg = Registry::start().await;
    let cache = tempfile::tempdir().unwrap();
    let mut small = settings(cache.path(), &reg);
    small.max_plugin_bytes = 1000;
    let s = store(small, &[]);
    let reference = format!("{}/plugins/big:1", reg.host);
    push(&s, &reference, &vec![1u8; 5000]).await;
    let err = s.fetch(&reference).await.unwrap_err();
    assert!(
        matches!(
            err,
            OciError::TooLarge {
                size: 5000,
                max: 1000
            }
        ),
        "{err}"
    );
    assert_eq!(
        reg.blob_downloads(&microgateway::oci::artifact::digest(&vec![1u8; 5000])),
        0
    );
}

/// A 64-byte script that differs per version.
fn versioned(v: u8) -> Vec<u8> {
    let mut data = b"#!/bin/sh\n#".to_vec();
    data.resize(64, b'0' + v);
    data
}

#[tokio::test]
async fn gc_keeps_the_newest_versions_per_repository() {
    let reg = Registry::start().await;
    let cache = tempfile::tempdir().unwrap();
    let mut keep_two = settings(cache.path(), &reg);
    keep_two.keep_versions = 2;
    let s = store(keep_two, &[]);
    for v in 1..=4u8 {
        let reference = format!("{}/plugins/versions:{v}", reg.host);
        push(&s, &reference, &versioned(v)).await;
        s.fetch(&reference).await.unwrap();
        // Pull times are in seconds; keep them ordered.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    }
    let blobs: Vec<String> = std::fs::read_dir(cache.path().join("sha256"))
        .unwrap()
        .map(|e| format!("sha256:{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    let expected: Vec<String> = [3u8, 4]
        .iter()
        .map(|v| microgateway::oci::artifact::digest(&versioned(*v)))
        .collect();
    assert_eq!(blobs.len(), 2, "{blobs:?}");
    assert!(expected.iter().all(|d| blobs.contains(d)), "{blobs:?}");
    assert!(
        s.cache()
            .read_ref(&format!("{}/plugins/versions:1", reg.host))
            .is_none()
    );
}

#[tokio::test]
async fn registry_outside_the_allowlist_is_refused() {
    let reg = Registry::start().await;
    let cache = tempfile::tempdir().unwrap();
    let mut only_other = settings(cache.path(), &reg);
    only_other.allowed_registries = vec!["registry.example.com".into()];
    let s = store(only_other, &[]);
    let err = s
        .fetch(&format!("{}/plugins/demo:1", reg.host))
        .await
        .unwrap_err();
    assert!(matches!(err, OciError::NotAllowed(_)), "{err}");
}

#[tokio::test]
async fn oci_plugin_runs_end_to_end() {
    let reg = Registry::start().await;
    let cache = tempfile::tempdir().unwrap();
    let s = store(settings(cache.path(), &reg), &[]);
    let binary = std::fs::read(env!("CARGO_BIN_EXE_mg-plugin-header-enricher")).unwrap();
    push(&s, &format!("{}/plugins/enricher:1.0", reg.host), &binary).await;
    let up = crate::common::TestUpstream::start("up").await;
    let oci = format!(
        "[oci]\ncache_dir = {}\ninsecure_registries = [{}]\n",
        toml_path(cache.path()),
        toml_str(&reg.host)
    );
    let reference = format!("{}/plugins/enricher:1.0", reg.host);
    let by_command = PluginEntry::new("by-command", &format!("oci://{reference}"), "pre_auth")
        .extra("config = { headers = { \"x-oci\" = \"1\" } }");
    let by_field = PluginEntry::new("by-field", "oci://", "on_response").extra(&format!(
        "oci_reference = {}\nconfig = {{ headers = {{ \"x-oci\" = \"1\" }}, response_headers = {{ \"x-oci-resp\" = \"1\" }} }}",
        toml_str(&reference)
    ));
    let gw = crate::common::GatewayConfig::new()
        .upstream("main", &[&up])
        .route("main", "main", "")
        .raw(&oci)
        .plugin(by_command)
        .plugin(by_field)
        .start()
        .await;
    let reply = crate::common::get(gw.proxy_addr, "/x").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.echo().header("x-oci"), Some("1"));
    assert_eq!(reply.header("x-oci-resp"), Some("1"));
}
