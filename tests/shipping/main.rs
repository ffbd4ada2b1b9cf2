//! Shipping: `--version`, `check` of plugin references, sd_notify from the real binary,
//! the systemd unit (`systemd-analyze verify`) and the Kubernetes examples
//! (`kubernetes-validate --strict`, and their embedded configurations parse).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

#[path = "../common/mod.rs"]
pub mod common;

use common::PluginEntry;
use common::binary::command;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn version_names_commit_and_features() {
    let out = command().arg("--version").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.starts_with(&format!("microgateway {} (git ", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    for feature in [
        "http2",
        "tls-rustls-ring",
        "plugins-oci",
        "hickory-dns",
        "sd-notify",
    ] {
        assert!(text.contains(feature), "{feature} missing: {text}");
    }
}

fn check(toml: &str, args: &[&str]) -> (bool, String) {
    let file = common::binary::ConfigFile::new(toml);
    let out = command()
        .arg("--config")
        .arg(file.path())
        .arg("check")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn check_validates_plugin_references() {
    let plugin = |command: &str| PluginEntry::new("p", command, "pre_auth").toml();
    let (ok, out) = check(&plugin("file:///nonexistent/plugin"), &[]);
    assert!(
        !ok && out.contains("plugins[0]") && out.contains("cannot resolve"),
        "{out}"
    );
    let exe = env!("CARGO_BIN_EXE_mg-plugin-chaos");
    let (ok, out) = check(&plugin(&format!("file://{exe}")), &[]);
    assert!(ok, "{out}");
    let (ok, out) = check(&plugin("grpc://127.0.0.1:1"), &[]);
    assert!(!ok && out.contains("internal address"), "{out}");
    let closed = common::closed_port().await;
    let allowed = format!(
        "{}[plugin_runtime]\nallow_internal_network_access = true\n",
        plugin(&format!("grpc://{closed}"))
    );
    assert!(check(&allowed, &[]).0);
    let (ok, out) = check(&allowed, &["--online"]);
    assert!(!ok && out.contains("cannot connect"), "{out}");
    let oci = format!(
        "{}[oci]\nallowed_registries = [\"registry.example.com\"]\n",
        plugin("oci://other.example.com/p:1")
    );
    let (ok, out) = check(&oci, &[]);
    assert!(
        !ok && out.contains("not in OCI_PLUGINS_ALLOWED_REGISTRIES"),
        "{out}"
    );
}

#[tokio::test]
async fn binary_notifies_systemd() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let config = common::binary::ConfigFile::new(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\nwatch_config = false\ndata_dir = {}\n",
        common::gateway::toml_path(dir.path())
    ));
    let mut child = command()
        .arg("--config")
        .arg(config.path())
        .env("NOTIFY_SOCKET", &socket_path)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 512];
    let mut next = || {
        let n = socket.recv(&mut buf).expect("no notification");
        String::from_utf8_lossy(&buf[..n]).to_string()
    };
    let ready = next();
    assert!(
        ready.starts_with("READY=1\nSTATUS=proxy on 127.0.0.1:"),
        "{ready}"
    );
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let reloading = next();
    assert!(
        reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reloading}"
    );
    assert_eq!(next(), "READY=1");
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(next(), "STOPPING=1");
    assert!(child.wait().unwrap().success());
}

#[test]
fn systemd_unit_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let unit =
        std::fs::read_to_string(format!("{ROOT}/config/systemd/microgateway.service")).unwrap();
    let unit = unit.replace(
        "/usr/local/bin/microgateway",
        env!("CARGO_BIN_EXE_microgateway"),
    );
    let path = dir.path().join("microgateway.service");
    std::fs::write(&path, unit).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze is needed (apt-get install systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("microgateway.service"), "{stderr}");
}

#[test]
fn kubernetes_examples_validate() {
    let dir = format!("{ROOT}/config/kubernetes");
    let files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with(".yaml"))
        .collect();
    assert!(files.len() >= 4, "{files:?}");
    let out = std::process::Command::new("kubernetes-validate")
        .arg("--strict")
        .args(&files)
        .output()
        .expect("kubernetes-validate is needed (pip install kubernetes-validate)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Every embedded gateway configuration is a valid configuration.
    let mut embedded = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let mut lines = text.lines().peekable();
        while let Some(line) = lines.next() {
            if line.trim_end() != "  microgateway.toml: |" {
                continue;
            }
            let mut toml = String::new();
            while let Some(next) = lines.peek() {
                if !next.starts_with("    ") && !next.trim().is_empty() {
                    break;
                }
                toml.push_str(next.get(4..).unwrap_or(""));
                toml.push('\n');
                lines.next();
            }
            microgateway::Config::from_toml(&toml).unwrap_or_else(|e| panic!("{file}: {e}"));
            embedded += 1;
        }
    }
    assert!(embedded >= 2, "{embedded}");
}
