//! `microgateway plugin keygen|push|sign|pull|verify` through the real binary.

use crate::common::binary::command;
use crate::registry::Registry;

fn run(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = command()
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test]
async fn package_sign_and_verify_without_docker_or_cosign() {
    let reg = Registry::start().await;
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let prefix = work.path().join("signer");
    let plugin = work.path().join("plugin.bin");
    std::fs::write(&plugin, b"#!/bin/sh\necho plugin\n").unwrap();
    let reference = format!("{}/plugins/cli:2.0", reg.host);
    let cache_s = cache.display().to_string();
    let env = [
        ("OCI_PLUGINS_INSECURE_REGISTRIES", reg.host.as_str()),
        ("OCI_PLUGINS_CACHE_DIR", cache_s.as_str()),
    ];

    let (ok, out, err) = run(&["plugin", "keygen", prefix.to_str().unwrap()], &env);
    assert!(ok, "{err}");
    assert!(out.contains("signer.key") && out.contains("signer.pub"));
    let (ok, digest, err) = run(
        &["plugin", "push", plugin.to_str().unwrap(), &reference],
        &env,
    );
    assert!(ok, "{err}");
    let digest = digest.trim().to_string();
    assert!(digest.starts_with("sha256:"), "{digest}");

    let public = work.path().join("signer.pub");
    let (ok, _, err) = run(
        &[
            "plugin",
            "verify",
            &reference,
            "--key",
            public.to_str().unwrap(),
        ],
        &env,
    );
    assert!(
        !ok && err.contains("no signature found"),
        "unsigned plugin verified: {err}"
    );

    let key = work.path().join("signer.key");
    let (ok, out, err) = run(
        &["plugin", "sign", &reference, "--key", key.to_str().unwrap()],
        &env,
    );
    assert!(ok, "{err}");
    assert!(out.contains(&digest), "{out}");

    let (ok, out, err) = run(
        &[
            "plugin",
            "verify",
            &reference,
            "--key",
            public.to_str().unwrap(),
        ],
        &env,
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("signature: verified") && out.contains(&digest),
        "{out}"
    );

    let public_text = std::fs::read_to_string(&public).unwrap();
    let mut with_key = env.to_vec();
    with_key.push(("OCI_PLUGINS_PUBLIC_KEY_0", public_text.as_str()));
    with_key.push(("OCI_PLUGINS_REQUIRE_SIGNATURE", "true"));
    let (ok, out, err) = run(&["plugin", "pull", &reference], &with_key);
    assert!(ok, "{err}");
    assert!(
        out.contains("source:    cache") || out.contains("source:    registry"),
        "{out}"
    );
}

#[test]
fn bad_reference_is_a_clear_error() {
    let (ok, _, err) = run(
        &["plugin", "pull", "UPPER/Case::bad"],
        &[("OCI_PLUGINS_CACHE_DIR", "/tmp/mg-cli-test-cache")],
    );
    assert!(!ok);
    assert!(err.contains("invalid OCI reference"), "{err}");
}

#[tokio::test]
async fn push_a_multi_platform_index_and_pull_this_platform() {
    let reg = Registry::start().await;
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache").display().to_string();
    let env = [
        ("OCI_PLUGINS_INSECURE_REGISTRIES", reg.host.as_str()),
        ("OCI_PLUGINS_CACHE_DIR", cache.as_str()),
    ];
    let arch = microgateway::oci::artifact::Platform::current().architecture;
    let other = if arch == "arm64" { "amd64" } else { "arm64" };
    let here = work.path().join("plugin-here");
    let there = work.path().join("plugin-there");
    std::fs::write(&here, b"#!/bin/sh\necho this platform\n").unwrap();
    std::fs::write(&there, b"#!/bin/sh\necho other platform\n").unwrap();
    let reference = format!("{}/plugins/multi:1", reg.host);
    let spec = |a: &str, f: &std::path::Path| format!("linux/{a}={}", f.display());
    let (ok, digest, err) = run(
        &[
            "plugin",
            "push",
            &reference,
            "--platform",
            &spec(other, &there),
            "--platform",
            &spec(&arch, &here),
        ],
        &env,
    );
    assert!(ok, "{err}");
    let (ok, out, err) = run(&["plugin", "pull", &reference], &env);
    assert!(ok, "{err}");
    assert!(out.contains("format:    microgateway"), "{out}");
    let path = out
        .lines()
        .find_map(|l| l.strip_prefix("path:"))
        .unwrap()
        .trim();
    assert_eq!(
        std::fs::read(path).unwrap(),
        b"#!/bin/sh\necho this platform\n"
    );
    // The index digest pins the whole set.
    let pinned = format!("{}/plugins/multi@{}", reg.host, digest.trim());
    let (ok, _, err) = run(&["plugin", "pull", &pinned], &env);
    assert!(ok, "{err}");
    let (ok, _, err) = run(
        &["plugin", "push", &reference, "--platform", "linux-amd64"],
        &env,
    );
    assert!(
        !ok && err.contains("expected OS/ARCH[/VARIANT]=FILE"),
        "{err}"
    );
}
