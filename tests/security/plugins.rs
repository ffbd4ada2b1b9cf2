//! Plugin executables that others could have written are refused (by `check`, at start,
//! and right before every spawn), blobs that are not executables are never handed to a
//! shell, and `[plugin_runtime.sandbox]` holds on this kernel: `no_new_privs`, rlimits,
//! a separate uid and a Landlock read-only filesystem, observed from inside a plugin.

use crate::common::binary::{GatewayProcess, check};
use crate::common::{GatewayConfig, PluginEntry, TestUpstream, get};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const ENRICHER: &str = env!("CARGO_BIN_EXE_mg-plugin-header-enricher");

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Copies the enricher to `dir/name` with `mode`.
fn plant(dir: &Path, name: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::copy(ENRICHER, &path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// A whole configuration with plugin `p` running `path` at `pre_auth`.
fn plugin_toml(path: &Path) -> String {
    format!(
        "[[upstreams]]\nname = \"local-app\"\ntargets = [\"http://127.0.0.1:9\"]\n{}",
        PluginEntry::file("p", path, "pre_auth").toml()
    )
}

/// `check` refuses `path` naming `rule`, and so does a start (even though a pre_auth
/// plugin is not required: a policy refusal is a configuration error).
async fn assert_refused(path: &Path, rule: &str) {
    let run = check(&plugin_toml(path), &[]);
    assert!(!run.status.success(), "check accepted {}", path.display());
    assert!(
        run.stderr.contains(rule),
        "{}: {}",
        path.display(),
        run.stderr
    );
    let up = TestUpstream::start("up").await;
    let config = GatewayConfig::new()
        .upstream("main", &[&up])
        .route("main", "main", "")
        .plugin(PluginEntry::file("p", path, "pre_auth"));
    let err = match microgateway::Config::from_toml(&config.toml()) {
        Err(e) => e.to_string(),
        Ok(_) => match microgateway::start(config.config()).await {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{} started", path.display()),
        },
    };
    assert!(err.contains(rule), "{}: {err}", path.display());
}

#[tokio::test]
async fn unsafe_plugin_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        check(&plugin_toml(&plant(dir.path(), "ok", 0o755)), &[])
            .status
            .success()
    );
    assert_refused(
        &plant(dir.path(), "world", 0o777),
        "writable by group or others",
    )
    .await;
    assert_refused(
        &plant(dir.path(), "group", 0o775),
        "writable by group or others",
    )
    .await;
    assert_refused(&plant(dir.path(), "suid", 0o4755), "setuid").await;
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    let inside = plant(&open, "p", 0o755);
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert_refused(&inside, "writable by group or others (mode 777)").await;
    if is_root() {
        let foreign = plant(dir.path(), "foreign", 0o755);
        std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
        assert_refused(&foreign, "owned by uid 65534").await;
    } else {
        eprintln!("skipped: a file owned by another user needs root to make");
    }
}

#[tokio::test]
async fn blobs_are_never_run_by_a_shell() {
    let dir = tempfile::tempdir().unwrap();
    // A tar.gz whose bytes a shell would try to run (execvp's ENOEXEC fallback).
    let blob = dir.path().join("plugin.tgz");
    let marker = dir.path().join("ran");
    std::fs::write(&blob, [0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0]).unwrap();
    std::fs::set_permissions(&blob, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_refused(&blob, "gzip data").await;
    // Text without #! would be run by /bin/sh: refused too.
    let text = dir.path().join("plugin.txt");
    std::fs::write(&text, format!("touch {}\n", marker.display())).unwrap();
    std::fs::set_permissions(&text, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_refused(&text, "neither ELF nor a script").await;
    assert!(!marker.exists());
}

#[tokio::test]
async fn a_file_changed_after_the_check_is_refused_at_spawn() {
    let dir = tempfile::tempdir().unwrap();
    let path = plant(dir.path(), "p", 0o755);
    let up = TestUpstream::start("up").await;
    let cfg = GatewayConfig::new()
        .upstream("main", &[&up])
        .route("main", "main", "")
        .plugin(PluginEntry::file("p", &path, "pre_auth").extra("required = true"));
    // The configuration check passed; the file changes before the gateway spawns it.
    let config = cfg.config();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = microgateway::start(config)
        .await
        .err()
        .expect("started")
        .to_string();
    assert!(err.contains("writable by group or others"), "{err}");
}

/// A `#!` wrapper that reports what the sandbox allows, then runs the enricher.
fn probe_script(dir: &Path) -> PathBuf {
    let outside = dir.join("outside");
    let script = format!(
        "#!/bin/sh\n\
         echo \"probe nnp=$(grep NoNewPrivs /proc/self/status | tr -d ' \\t')\" >&2\n\
         echo \"probe nofile=$(ulimit -n) fsize=$(ulimit -f)\" >&2\n\
         echo \"probe uid=$(id -u)\" >&2\n\
         if (echo x > {outside}) 2>/dev/null; then echo 'probe outside=writable' >&2; else echo 'probe outside=denied' >&2; fi\n\
         if (echo x > \"$TMPDIR/probe\") 2>/dev/null; then echo 'probe private=writable' >&2; else echo 'probe private=denied' >&2; fi\n\
         exec {ENRICHER}\n",
        outside = outside.display()
    );
    let path = dir.join("probe");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Others (the sandbox uid) must be able to reach the script and write `outside`.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    path
}

async fn run_probe(sandbox: &str) -> (String, GatewayProcess, TestUpstream) {
    let dir = tempfile::tempdir().unwrap();
    let script = probe_script(dir.path());
    let up = TestUpstream::start("up").await;
    let config = GatewayConfig::new()
        .upstream("main", &[&up])
        .route("main", "main", "")
        .raw(&format!("[plugin_runtime.sandbox]\n{sandbox}\n"))
        .plugin(PluginEntry::file("probe", &script, "pre_auth").extra("required = true"));
    let gw = GatewayProcess::spawn(&config).await;
    let reply = get(gw.proxy_addr, "/x").await;
    assert_eq!(
        reply.echo().header("x-enriched-by"),
        Some("header-enricher")
    );
    let mut log = String::new();
    for _ in 0..50 {
        log = gw.log.lock().unwrap().clone();
        if log.contains("probe private=") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    std::mem::forget(dir);
    (log, gw, up)
}

#[tokio::test]
async fn no_new_privs_rlimits_and_uid_apply_inside_the_plugin() {
    let uid = if is_root() { "uid = 65534\n" } else { "" };
    let (log, _gw, _up) = run_probe(&format!(
        "max_open_files = 200\nmax_file_bytes = 1048576\n{uid}"
    ))
    .await;
    assert!(log.contains("probe nnp=NoNewPrivs:1"), "{log}");
    assert!(log.contains("probe nofile=200 fsize=2048"), "{log}");
    if is_root() {
        assert!(log.contains("probe uid=65534"), "{log}");
        assert!(log.contains("probe private=writable"), "{log}");
    } else {
        eprintln!("skipped: switching the plugin's uid needs root");
    }
    // The default is no_new_privs alone.
    let (log, _gw, _up) = run_probe("").await;
    assert!(log.contains("probe nnp=NoNewPrivs:1"), "{log}");
    let (log, _gw, _up) = run_probe("no_new_privs = false").await;
    assert!(log.contains("probe nnp=NoNewPrivs:0"), "{log}");
}

#[tokio::test]
async fn landlock_makes_the_filesystem_read_only_but_the_private_directory() {
    if !microgateway::remote::sandbox::landlock_supported() {
        eprintln!("skipped: this kernel has no Landlock");
        return;
    }
    let (log, _gw, _up) = run_probe("landlock = true").await;
    assert!(log.contains("probe outside=denied"), "{log}");
    assert!(log.contains("probe private=writable"), "{log}");
    let (log, _gw, _up) = run_probe("landlock = false").await;
    assert!(log.contains("probe outside=writable"), "{log}");
}
