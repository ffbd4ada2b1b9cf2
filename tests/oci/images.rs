//! Container images as plugins, built the way `docker build` lays them out
//! (`FROM scratch`, `COPY my-plugin /plugin`, `ENTRYPOINT ["/plugin"]`) and pushed with
//! skopeo: OCI and Docker schema2, single-platform and index / manifest list, tar, gzip
//! and zstd layers, whiteouts, and an entrypoint behind symlinks.

use crate::layout::{
    E, Layout, OCI_CONFIG, TAR, TAR_GZ, arch, config, gz, plugin, push_raw, runs_in_gateway, tar,
};
use crate::registry::{Registry, settings, store};

/// The `docker build` layout: one layer holding `plugin`, `ENTRYPOINT ["/plugin"]`.
fn docker_build(layout: &Layout, arch: &str, binary: &[u8]) -> serde_json::Value {
    let layer = tar(&[E::File("plugin", binary)]);
    let cfg = config(arch, Some(&["/plugin"]), &[&layer]);
    layout.image(&cfg, &[(TAR_GZ, gz(&layer))])
}

#[tokio::test]
async fn docker_build_image_as_oci_runs_through_the_gateway() {
    let mut reg = Registry::start().await;
    let binary = plugin();
    let layout = Layout::new();
    let image = docker_build(&layout, &arch(), &binary);
    let reference = format!("{}/plugins/image:1", reg.host);
    layout.push(&image, &reference, &[]);
    let cache = tempfile::tempdir().unwrap();
    let s = store(settings(cache.path(), &reg), &[]);
    let fetched = s.fetch(&reference).await.unwrap();
    assert_eq!(fetched.meta.format, "image");
    assert_eq!(fetched.meta.entrypoint.as_deref(), Some("/plugin"));
    assert!(std::fs::read(&fetched.path).unwrap() == binary);
    runs_in_gateway(cache.path(), &reg.host, &reference).await;
    // Offline, the pinned digest is re-derived from the cached layers.
    reg.stop().await;
    let pinned = format!(
        "{}/plugins/image@{}",
        reg.host, fetched.meta.manifest_digest
    );
    let offline = s.fetch(&pinned).await.unwrap();
    assert!(offline.from_cache);
    assert_eq!(offline.path, fetched.path);
}

#[tokio::test]
async fn docker_schema2_image_and_manifest_list() {
    let reg = Registry::start().await;
    let binary = plugin();
    let cache = tempfile::tempdir().unwrap();
    let s = store(settings(cache.path(), &reg), &[]);

    // Single platform, as Docker schema2 (was "Invalid digest" with OCI-only Accept).
    let layout = Layout::new();
    let image = docker_build(&layout, &arch(), &binary);
    let single = format!("{}/plugins/docker:1", reg.host);
    layout.push(&image, &single, &["--format", "v2s2"]);
    let fetched = s.fetch(&single).await.unwrap();
    assert_eq!(fetched.meta.format, "image");
    assert!(std::fs::read(&fetched.path).unwrap() == binary);
    runs_in_gateway(cache.path(), &reg.host, &single).await;

    // Multi-arch: this host's entry is the plugin, the other one a decoy script.
    let other = if arch() == "arm64" { "amd64" } else { "arm64" };
    let multi = Layout::new();
    let host = docker_build(&multi, &arch(), &binary);
    let decoy = docker_build(&multi, other, b"#!/bin/sh\necho wrong platform\n");
    let index = multi.index(&[(other, decoy), (&arch(), host)]);
    for (tag, extra) in [
        ("oci-index", vec!["--all"]),
        ("docker-list", vec!["--all", "--format", "v2s2"]),
    ] {
        let reference = format!("{}/plugins/multi:{tag}", reg.host);
        multi.push(&index, &reference, &extra);
        let fetched = s.fetch(&reference).await.unwrap();
        assert!(fetched.meta.index_digest.is_some(), "{tag}");
        assert!(std::fs::read(&fetched.path).unwrap() == binary, "{tag}");
    }
}

#[tokio::test]
async fn zstd_and_plain_layers_with_whiteouts_and_a_symlinked_entrypoint() {
    let reg = Registry::start().await;
    let binary = plugin();
    let cache = tempfile::tempdir().unwrap();
    let s = store(settings(cache.path(), &reg), &[]);
    for (tag, extra) in [
        ("gzip", vec![]),
        (
            "zstd",
            vec!["--dest-compress", "--dest-compress-format", "zstd"],
        ),
        // skopeo compresses uncompressed layers on the way to a registry; push as is.
        ("plain", vec!["raw"]),
    ] {
        // Lower layer: the binary deep in /opt plus a stale /plugin; upper layer:
        // symlinks to it, a whiteout of the stale file and an opaque directory. A nonce
        // keeps skopeo's blob cache from reusing another run's compressed layer.
        let nonce = format!("{tag}-{}", uuid::Uuid::new_v4());
        let lower = tar(&[
            E::Dir("opt/"),
            E::Dir("opt/mg/"),
            E::Dir("opt/mg/bin/"),
            E::File("opt/mg/bin/header-enricher", &binary),
            E::File("plugin", b"#!/bin/sh\nexit 1\n"),
            E::File("etc/old/conf", b"x"),
            E::File("nonce", nonce.as_bytes()),
        ]);
        let upper = tar(&[
            E::Sym("app", "/opt/mg/bin"),
            E::Sym("opt/mg/bin/run", "header-enricher"),
            E::File(".wh.plugin", b""),
            E::File("etc/old/.wh..wh..opq", b""),
            E::File("nonce", nonce.as_bytes()),
        ]);
        let cfg = config(
            &arch(),
            Some(&["/app/run", "--ignored-arg"]),
            &[&lower, &upper],
        );
        let layout = Layout::new();
        let image = layout.image(&cfg, &[(TAR, lower.clone()), (TAR, upper.clone())]);
        let reference = format!("{}/plugins/layers:{tag}", reg.host);
        if extra == ["raw"] {
            push_raw(
                &s,
                &reference,
                (OCI_CONFIG, &cfg),
                &[(TAR, &lower), (TAR, &upper)],
                None,
            )
            .await;
        } else {
            layout.push(&image, &reference, &extra);
        }
        let raw = s
            .client()
            .pull_manifest_raw(
                &s.parse(&reference).unwrap(),
                &s.auth(&s.parse(&reference).unwrap()),
                microgateway::oci::artifact::ACCEPT,
            )
            .await
            .unwrap()
            .0;
        let text = String::from_utf8_lossy(&raw);
        let want = match tag {
            "zstd" => "tar+zstd\"",
            "gzip" => "tar+gzip\"",
            _ => "tar\"",
        };
        assert!(text.contains(want), "{tag}: {text}");
        let fetched = s.fetch(&reference).await.unwrap();
        assert_eq!(
            fetched.meta.entrypoint.as_deref(),
            Some("/app/run"),
            "{tag}"
        );
        assert!(std::fs::read(&fetched.path).unwrap() == binary, "{tag}");
    }
    runs_in_gateway(
        cache.path(),
        &reg.host,
        &format!("{}/plugins/layers:zstd", reg.host),
    )
    .await;
}
