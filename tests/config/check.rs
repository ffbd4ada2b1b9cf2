//! Regressions through the binary's `check`: values that once passed validation and then
//! panicked or left a dead proxy behind, and the `FILE:LINE:COL` first line of a TOML
//! syntax error. Also: the README's range table says what `RANGES` enforces.

use crate::common::binary::{self, ConfigFile};

/// The largest integer TOML can express (`i64::MAX`).
const HUGE: &str = "9223372036854775807";

/// The largest duration the duration syntax accepts (`u64::MAX` seconds).
const FOREVER: &str = "\"18446744073709551615s\"";

/// A minimal file with one upstream and one route, plus `extra` TOML.
fn config(extra: &str) -> String {
    format!(
        "[[upstreams]]\nname = \"app\"\ntargets = [\"http://127.0.0.1:9\"]\n\n[[routes]]\nname = \"r\"\nupstream = \"app\"\n\n{extra}\n"
    )
}

/// Asserts that `check` refuses `toml` with a one-line error naming `key`.
fn assert_refused(toml: &str, key: &str) {
    let run = binary::check(toml, &[]);
    assert_eq!(
        run.status.code(),
        Some(1),
        "{key} accepted: {run:?}\n{toml}"
    );
    let first = run.stderr.lines().next().unwrap_or_default();
    assert!(
        first.contains(&format!("invalid configuration: {key}: must be between")),
        "{key}: {run:?}"
    );
}

#[test]
fn check_refuses_the_timeouts_that_overflowed_deadlines() {
    assert_refused(
        &config(&format!("[server]\nheader_read_timeout = {FOREVER}")),
        "server.header_read_timeout",
    );
    assert_refused(
        &config(&format!("[server]\nidle_timeout = {FOREVER}")),
        "server.idle_timeout",
    );
}

#[test]
fn check_refuses_counts_beyond_what_the_runtime_can_allocate() {
    for key in ["max_header_count", "max_connections", "workers"] {
        assert_refused(
            &config(&format!("[server]\n{key} = {HUGE}")),
            &format!("server.{key}"),
        );
    }
    assert_refused(
        &config(&format!("[pipeline]\ncollect_queue_capacity = {HUGE}")),
        "pipeline.collect_queue_capacity",
    );
}

#[test]
fn check_refuses_intervals_that_overflowed_timers() {
    assert_refused(
        &config(&format!("[admin]\nhealth_check_interval = {FOREVER}")),
        "admin.health_check_interval",
    );
    assert_refused(
        &config(&format!("[plugin_runtime]\nping_interval = {FOREVER}")),
        "plugin_runtime.ping_interval",
    );
    let toml = format!(
        "[[upstreams]]\nname = \"app\"\ntargets = [\"http://127.0.0.1:9\"]\npool_idle_timeout = {FOREVER}\n\n[[routes]]\nname = \"r\"\nupstream = \"app\"\n"
    );
    assert_refused(&toml, "upstreams[0].pool_idle_timeout");
}

#[test]
fn check_names_file_line_and_column_of_a_toml_syntax_error() {
    let file =
        ConfigFile::new("[server]\nlisten = \"127.0.0.1:0\"\n\n[admin\nlisten = \"127.0.0.1:0\"\n");
    let run: binary::Run = binary::command()
        .arg("check")
        .arg("--config")
        .arg(file.path())
        .output()
        .unwrap()
        .into();
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    let first = run.stderr.lines().next().unwrap_or_default();
    let path = file.path().display().to_string();
    assert!(first.contains(&format!("{path}:4:7")), "{run:?}");
    assert!(first.contains("TOML parse error"), "{run:?}");
    // The caret diagram still follows.
    assert!(run.stderr.contains("[admin"), "{run:?}");
    assert!(run.stderr.contains('^'), "{run:?}");
}

#[test]
fn readme_documents_every_range() {
    let readme = include_str!("../../README.md");
    for range in microgateway::config::ranges::RANGES {
        let row = format!("| `{}` |", range.key);
        let line = readme
            .lines()
            .find(|l| l.starts_with(&row))
            .unwrap_or_else(|| panic!("README.md has no row starting with {row}"));
        assert!(
            line.contains(&format!("| {} |", range.limit)),
            "README.md row for {} should give the range {}: {line}",
            range.key,
            range.limit
        );
    }
}

#[test]
fn from_toml_puts_line_and_column_first_too() {
    let message = match microgateway::Config::from_toml("[server]\nlisten =\n") {
        Ok(_) => panic!("a broken document was accepted"),
        Err(e) => e.to_string(),
    };
    let first = message.lines().next().unwrap_or_default();
    assert!(first.ends_with(":2:9: TOML parse error"), "{message}");
    assert!(message.contains("listen ="), "{message}");
}
