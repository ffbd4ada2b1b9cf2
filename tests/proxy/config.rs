//! Configuration: `Config::from_toml` layering and its errors (each naming the offending
//! key), and the binary's `check` and `default-config` commands, `--config` files and
//! `MICROGATEWAY_*` environment overrides.

use crate::common::binary::{self, ConfigFile};
use crate::common::gateway::toml_path;
use crate::common::pki::TestPki;
use microgateway::Config;
use microgateway::config::ConfigError;
use std::time::Duration;

const GOOD: &str = r#"
[server]
listen = "127.0.0.1:0"
max_body_bytes = 2048

[admin]
listen = "127.0.0.1:0"

[[upstreams]]
name = "app"
targets = ["http://127.0.0.1:9", "http://127.0.0.1:10"]
connect_timeout = "250ms"

[[routes]]
name = "api"
path_prefix = "/api"
upstream = "app"
timeout = "1m 30s"
"#;

/// A config with one upstream `app` and one route whose body lines are `route`.
fn with_route(route: &str) -> String {
    format!(
        "[[upstreams]]\nname = \"app\"\ntargets = [\"http://127.0.0.1:9\"]\n\n[[routes]]\nname = \"r\"\n{route}\n"
    )
}

/// The key of a semantic error, or the message of a parse error.
fn error_of(toml: &str) -> ConfigError {
    match Config::from_toml(toml) {
        Ok(_) => panic!("config unexpectedly accepted:\n{toml}"),
        Err(e) => e,
    }
}

fn assert_invalid_key(toml: &str, expected: &str) {
    match error_of(toml) {
        ConfigError::Invalid { key, message } => {
            assert_eq!(key, expected, "message: {message}\n{toml}");
        }
        other => panic!("expected an Invalid error for {expected}, got {other}"),
    }
}

#[test]
fn from_toml_layers_over_the_default_and_replaces_arrays() {
    let config = Config::from_toml(GOOD).unwrap();
    assert_eq!(config.server.listen.to_string(), "127.0.0.1:0");
    assert_eq!(config.server.max_body_bytes, 2048);
    // Untouched keys keep the embedded defaults.
    assert_eq!(config.server.max_header_count, 100);
    assert_eq!(config.server.request_id_header, "x-request-id");
    // Arrays replace the embedded `local-app` upstream and `default` route.
    let upstreams: Vec<&str> = config.upstreams.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(upstreams, ["app"]);
    assert_eq!(config.upstreams[0].targets.len(), 2);
    assert_eq!(
        config.upstreams[0].connect_timeout,
        Duration::from_millis(250)
    );
    let routes: Vec<&str> = config.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(routes, ["api"]);
    assert_eq!(config.routes[0].timeout, Duration::from_secs(90));
    assert!(!config.routes[0].strip_prefix);
}

#[test]
fn embedded_default_is_valid() {
    let config = Config::from_toml("").unwrap();
    assert_eq!(config.routes.len(), 1);
    assert_eq!(config.upstreams[0].name, "local-app");
}

#[test]
fn from_toml_names_the_offending_key() {
    assert_invalid_key(&with_route("upstream = \"missing\""), "routes[0].upstream");
    assert_invalid_key(
        &format!(
            "{}\n[[routes]]\nname = \"r\"\nupstream = \"app\"\n",
            with_route("upstream = \"app\"")
        ),
        "routes[1].name",
    );
    assert_invalid_key(
        &with_route("upstream = \"app\"\nstrip_prefix = true\nrewrite_prefix = \"/x\""),
        "routes[0].rewrite_prefix",
    );
    assert_invalid_key(
        &with_route("upstream = \"app\"\npath_prefix = \"api\""),
        "routes[0].path_prefix",
    );
    assert_invalid_key(
        &with_route("upstream = \"app\"\nhost = \"a*.example.com\""),
        "routes[0].host",
    );
    assert_invalid_key(
        &with_route("upstream = \"app\"\ntimeout = \"0s\""),
        "routes[0].timeout",
    );
    assert_invalid_key(
        "[[upstreams]]\nname = \"u\"\ntargets = [\"ftp://127.0.0.1:9\"]\n[[routes]]\nname = \"r\"\nupstream = \"u\"",
        "upstreams[0].targets[0]",
    );
    assert_invalid_key(
        "[[upstreams]]\nname = \"u\"\ntargets = [\"http://127.0.0.1:9\", \"https://127.0.0.1:10\"]\n[[routes]]\nname = \"r\"\nupstream = \"u\"",
        "upstreams[0].targets",
    );
    assert_invalid_key(
        "[[upstreams]]\nname = \"u\"\ntargets = []\n[[routes]]\nname = \"r\"\nupstream = \"u\"",
        "upstreams[0].targets",
    );
    assert_invalid_key(
        "[[upstreams]]\nname = \"u\"\ntargets = [\"https://127.0.0.1:9\"]\nca_file = \"/nonexistent/ca.pem\"\n[[routes]]\nname = \"r\"\nupstream = \"u\"",
        "upstreams[0].ca_file",
    );
    assert_invalid_key("[server]\nmax_connections = 0", "server.max_connections");
    assert_invalid_key(
        "[server]\nmax_header_bytes = 100",
        "server.max_header_bytes",
    );
    assert_invalid_key("[server]\nidle_timeout = \"0s\"", "server.idle_timeout");
    assert_invalid_key(
        "[server]\nrequest_id_header = \"bad header\"",
        "server.request_id_header",
    );
    assert_invalid_key(
        "[server]\nlisten = \"127.0.0.1:7000\"\n[admin]\nlisten = \"127.0.0.1:7000\"",
        "admin.listen",
    );
    assert_invalid_key(
        "[server.tls]\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"",
        "server.tls.cert",
    );
    let pki = TestPki::new();
    assert_invalid_key(
        &format!(
            "[server.tls]\ncert = {}\nkey = \"/nonexistent/key.pem\"",
            toml_path(&pki.cert_path)
        ),
        "server.tls.key",
    );
}

#[test]
fn from_toml_parse_errors_name_the_key() {
    let message = error_of("[server]\nmax_conections = 5").to_string();
    assert!(message.contains("max_conections"), "{message}");

    let message = error_of(&with_route("upstream = \"app\"\ntimeout = \"10 parsecs\"")).to_string();
    assert!(message.contains("timeout"), "{message}");
    assert!(message.contains("10 parsecs"), "{message}");

    let message = error_of("[server]\nlisten = \"not an address\"").to_string();
    assert!(message.contains("listen"), "{message}");

    let message = error_of("[server]\nmax_body_bytes = \"lots\"").to_string();
    assert!(message.contains("max_body_bytes"), "{message}");

    let message = error_of(&with_route("upstream = \"app\"\nstrip_prefx = true")).to_string();
    assert!(message.contains("strip_prefx"), "{message}");

    assert!(matches!(
        error_of("[server\nlisten ="),
        ConfigError::Parse(_)
    ));
}

#[test]
fn check_accepts_a_good_config() {
    let run = binary::check(GOOD, &[]);
    assert!(run.status.success(), "{run:?}");
    assert!(run.stdout.contains("configuration OK"), "{run:?}");
    assert!(run.stdout.contains("1 upstream(s), 1 route(s)"), "{run:?}");
}

#[test]
fn check_rejects_a_route_to_an_unknown_upstream() {
    let run = binary::check(&with_route("upstream = \"missing\""), &[]);
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    assert!(run.stderr.contains("routes[0].upstream"), "{run:?}");
    assert!(run.stderr.contains("missing"), "{run:?}");
}

#[test]
fn check_rejects_a_misspelt_key() {
    let run = binary::check("[server]\nmax_conections = 5\n", &[]);
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    assert!(run.stderr.contains("max_conections"), "{run:?}");
}

#[test]
fn check_rejects_a_bad_duration() {
    let run = binary::check(
        &with_route("upstream = \"app\"\ntimeout = \"10 parsecs\""),
        &[],
    );
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    assert!(run.stderr.contains("timeout"), "{run:?}");
    assert!(run.stderr.contains("10 parsecs"), "{run:?}");
}

#[test]
fn environment_overrides_the_file() {
    let run = binary::check(GOOD, &[("MICROGATEWAY_SERVER__MAX_CONNECTIONS", "0")]);
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    assert!(run.stderr.contains("server.max_connections"), "{run:?}");

    let run = binary::check(GOOD, &[("MICROGATEWAY_SERVER__LISTEN", "127.0.0.1:7777")]);
    assert!(run.status.success(), "{run:?}");
    assert!(run.stdout.contains("proxy on 127.0.0.1:7777"), "{run:?}");
}

#[test]
fn check_reports_a_missing_config_file() {
    let run: binary::Run = binary::command()
        .args(["check", "--config", "/nonexistent/microgateway.toml"])
        .output()
        .unwrap()
        .into();
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    assert!(
        run.stderr.contains("/nonexistent/microgateway.toml"),
        "{run:?}"
    );
}

#[test]
fn default_config_prints_the_embedded_default_which_checks_clean() {
    let run: binary::Run = binary::command()
        .arg("default-config")
        .output()
        .unwrap()
        .into();
    assert!(run.status.success(), "{run:?}");
    assert_eq!(run.stdout, microgateway::config::EMBEDDED_DEFAULT);
    let run = binary::check(&run.stdout, &[]);
    assert!(run.status.success(), "{run:?}");
    let run: binary::Run = binary::command().arg("check").output().unwrap().into();
    assert!(run.status.success(), "{run:?}");
}

#[test]
fn config_file_can_be_given_through_microgateway_config() {
    // `--config` is documented (clap `env = "MICROGATEWAY_CONFIG"`) as settable from the
    // environment; that variable must not be mistaken for a configuration key.
    let file = ConfigFile::new(GOOD);
    let run: binary::Run = binary::command()
        .arg("check")
        .env("MICROGATEWAY_CONFIG", file.path())
        .output()
        .unwrap()
        .into();
    assert!(run.status.success(), "{run:?}");
    assert!(run.stdout.contains("1 upstream(s), 1 route(s)"), "{run:?}");
}

#[test]
fn check_rejects_tls_material_the_gateway_cannot_load() {
    // `check` promises exit 1 for a configuration the gateway would refuse to run with.
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let junk = toml_path(&junk);

    let run = binary::check(&format!("[server.tls]\ncert = {junk}\nkey = {junk}\n"), &[]);
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    assert!(run.stderr.contains("server.tls"), "{run:?}");

    let run = binary::check(
        &format!(
            "[[upstreams]]\nname = \"u\"\ntargets = [\"https://127.0.0.1:9\"]\nca_file = {junk}\n[[routes]]\nname = \"r\"\nupstream = \"u\"\n"
        ),
        &[],
    );
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    assert!(run.stderr.contains("upstreams[0].ca_file"), "{run:?}");
}
