//! What the binary prints: each cause once, and ANSI colour only on a terminal without
//! `NO_COLOR`.

use crate::common::binary::{ConfigFile, command, command_for};
use crate::common::gateway::toml_path;
use std::process::Stdio;
use std::time::Duration;

#[test]
fn a_missing_config_file_names_its_cause_once() {
    let out = command()
        .args(["--config", "/nonexistent/microgateway.toml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.matches("os error 2").count(), 1, "{stderr}");
    assert!(
        stderr.contains("/nonexistent/microgateway.toml"),
        "{stderr}"
    );
}

#[test]
fn a_busy_port_names_its_cause_once() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let file = ConfigFile::new(&format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n[admin]\nlisten = \"127.0.0.1:0\"\ndata_dir = {}\n",
        toml_path(dir.path())
    ));
    let out = command().arg("--config").arg(file.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default();
    assert_eq!(error.matches("in use").count(), 1, "{stderr}");
}

/// Runs the gateway for a moment under `script` (a pseudo-terminal) when `tty`, else on
/// a pipe, and returns its stderr.
fn first_lines(tty: bool, no_color: bool) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = ConfigFile::new(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\ndata_dir = {}\n[log]\nformat = \"text\"\n",
        toml_path(dir.path())
    ));
    let bin = crate::common::binary::BIN;
    let mut cmd = if tty {
        let line = format!(
            "timeout -s INT 1 {bin} --config {} 2>&1",
            file.path().display()
        );
        // `script` from util-linux runs the line on a new pseudo-terminal.
        let mut c = command_for("script");
        c.args(["-qec", &line, "/dev/null"]);
        c
    } else {
        let mut c = command();
        c.arg("--config").arg(file.path());
        c
    };
    if no_color {
        cmd.env("NO_COLOR", "1");
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    std::thread::sleep(Duration::from_millis(800));
    let _ = child.kill();
    let out = child.wait_with_output().ok()?;
    Some(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

#[test]
fn logs_are_coloured_only_on_a_terminal_without_no_color() {
    let piped = first_lines(false, false).unwrap();
    assert!(piped.contains("microgateway listening"), "{piped}");
    assert!(!piped.contains('\u{1b}'), "ANSI codes on a pipe: {piped:?}");
    let Some(tty) = first_lines(true, false) else {
        eprintln!("skipped: no `script` to make a terminal");
        return;
    };
    assert!(tty.contains("microgateway listening"), "{tty}");
    assert!(tty.contains('\u{1b}'), "no colour on a terminal: {tty:?}");
    let plain = first_lines(true, true).unwrap();
    assert!(plain.contains("microgateway listening"), "{plain}");
    assert!(!plain.contains('\u{1b}'), "NO_COLOR ignored: {plain:?}");
}
