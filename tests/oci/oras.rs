//! Artifacts pushed with ORAS (the PyPI `oras` package): the default way (one file,
//! layer `application/vnd.oci.image.layer.v1.tar` holding the raw file, title
//! annotation) and with Tyk AI Studio's media types; a tar.gz or a directory pushed as
//! the plugin is refused at pull time.

use crate::layout::{E, gz, plugin, runs_in_gateway, tar};
use crate::registry::{Registry, settings, store};

const PUSH: &str = r#"
import sys, oras.client
host, target, config = sys.argv[1], sys.argv[2], sys.argv[3]
client = oras.client.OrasClient(hostname=host, insecure=True)
extra = {"manifest_config": config} if config else {}
client.push(target=target, files=sys.argv[4:], **extra)
"#;

/// Runs `oras push` from `dir` (ORAS wants files relative to the working directory).
fn oras_push(dir: &std::path::Path, host: &str, target: &str, config: &str, files: &[&str]) {
    let out = std::process::Command::new("python3")
        .args(["-c", PUSH, host, target, config])
        .args(files)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "oras push failed (pip install oras): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn manifest_text(reg: &Registry, repo: &str, tag: &str) -> String {
    let path = reg.dir.path().join(format!(
        "data/docker/registry/v2/repositories/{repo}/_manifests/tags/{tag}/current/link"
    ));
    let digest = std::fs::read_to_string(path).unwrap();
    String::from_utf8(std::fs::read(reg.blob_file(digest.trim())).unwrap()).unwrap()
}

#[tokio::test]
async fn oras_push_the_default_way_runs_through_the_gateway() {
    let reg = Registry::start().await;
    let work = tempfile::tempdir().unwrap();
    let binary = plugin();
    std::fs::write(work.path().join("plugin"), &binary).unwrap();
    let reference = format!("{}/plugins/oras:1", reg.host);
    oras_push(work.path(), &reg.host, &reference, "", &["plugin"]);
    let manifest = manifest_text(&reg, "plugins/oras", "1");
    assert!(
        manifest.contains("application/vnd.oci.image.layer.v1.tar\"")
            && manifest.contains("org.opencontainers.image.title"),
        "{manifest}"
    );
    let cache = tempfile::tempdir().unwrap();
    let fetched = store(settings(cache.path(), &reg), &[])
        .fetch(&reference)
        .await
        .unwrap();
    assert_eq!(fetched.meta.format, "oras");
    assert!(std::fs::read(&fetched.path).unwrap() == binary);
    runs_in_gateway(cache.path(), &reg.host, &reference).await;
}

#[tokio::test]
async fn oras_push_with_tyk_media_types() {
    let reg = Registry::start().await;
    let work = tempfile::tempdir().unwrap();
    let binary = plugin();
    std::fs::write(work.path().join("my-plugin"), &binary).unwrap();
    std::fs::write(
        work.path().join("plugin.json"),
        br#"{"name":"my-plugin","version":"1.2.3","plugin_api":"2","os":"linux","arch":"amd64"}"#,
    )
    .unwrap();
    let reference = format!("{}/plugins/tyk:1.2.3", reg.host);
    oras_push(
        work.path(),
        &reg.host,
        &reference,
        "plugin.json:application/vnd.tyk.plugin.config.v1+json",
        &["my-plugin:application/vnd.tyk.plugin.layer.v1"],
    );
    let manifest = manifest_text(&reg, "plugins/tyk", "1.2.3");
    assert!(
        manifest.contains("application/vnd.tyk.plugin.layer.v1")
            && manifest.contains("application/vnd.tyk.plugin.config.v1+json"),
        "{manifest}"
    );
    let cache = tempfile::tempdir().unwrap();
    let fetched = store(settings(cache.path(), &reg), &[])
        .fetch(&reference)
        .await
        .unwrap();
    assert_eq!(fetched.meta.format, "tyk");
    assert!(std::fs::read(&fetched.path).unwrap() == binary);
}

#[tokio::test]
async fn oras_push_of_an_archive_or_a_directory_is_refused() {
    let reg = Registry::start().await;
    let work = tempfile::tempdir().unwrap();
    let archive = gz(&tar(&[E::File("plugin", &plugin()[..4096])]));
    std::fs::write(work.path().join("plugin.tar.gz"), &archive).unwrap();
    std::fs::create_dir(work.path().join("plugin-dir")).unwrap();
    std::fs::write(work.path().join("plugin-dir/plugin"), b"#!/bin/sh\n").unwrap();
    let cache = tempfile::tempdir().unwrap();
    let s = store(settings(cache.path(), &reg), &[]);
    for (tag, file, expected) in [
        (
            "archive",
            "plugin.tar.gz",
            "is gzip data, not an executable; accepted: an ELF executable",
        ),
        // oras-py packs a directory as a tar.gz without Go oras's unpack annotation.
        (
            "dir",
            "plugin-dir",
            "(application/vnd.oci.image.layer.v1.tar+gzip) is gzip data",
        ),
    ] {
        let reference = format!("{}/plugins/bad:{tag}", reg.host);
        oras_push(work.path(), &reg.host, &reference, "", &[file]);
        let err = s.fetch(&reference).await.unwrap_err().to_string();
        assert!(err.contains(expected), "{tag}: {err}");
    }
    assert_eq!(
        std::fs::read_dir(cache.path().join("sha256"))
            .unwrap()
            .count(),
        0
    );
}
