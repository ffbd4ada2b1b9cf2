//! Command security: SSRF cases for `grpc://`, allowlist and path rules for `file://`.

use crate::common::gateway::toml_str;
use crate::common::{PluginEntry, TestUpstream};
use crate::support::{CHAOS, ENRICHER, PluginServer, config, start_error, strict_config};

#[tokio::test]
async fn internal_grpc_targets_are_blocked_by_default() {
    let up = TestUpstream::start("up").await;
    let server = PluginServer::start(ENRICHER).await;
    let port = server.addr.port();
    for host in [
        "127.0.0.1",
        "127.1",
        "2130706433",
        "0x7f.1",
        "0177.0.0.1",
        "0",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "169.254.169.254",
        "10.0.0.1",
        "localhost",
    ] {
        let command = format!("grpc://{host}:{port}");
        let err = start_error(&strict_config(
            &up,
            &PluginEntry::new("p", &command, "pre_auth").toml(),
        ))
        .await;
        assert!(err.contains("internal address"), "{host}: {err}");
    }
}

#[tokio::test]
async fn allowlisted_cidr_or_flag_permits_loopback() {
    let up = TestUpstream::start("up").await;
    let server = PluginServer::start(ENRICHER).await;
    let command = format!("grpc://127.1:{}", server.addr.port());
    let entry = PluginEntry::new("p", &command, "pre_auth").toml();
    let allow = strict_config(&up, &entry)
        .raw("[plugin_runtime]\ncommand_allowlist = [\"grpc://127.0.0.0/8\"]\n");
    let gw = allow.start().await;
    assert_eq!(
        crate::common::get(gw.proxy_addr, "/x")
            .await
            .echo()
            .header("x-enriched-by"),
        Some("header-enricher")
    );
    // The flag works too (config() sets it).
    let gw2 = config(&up, &entry).start().await;
    assert_eq!(crate::common::get(gw2.proxy_addr, "/x").await.status, 200);
}

#[tokio::test]
async fn file_command_rules_name_the_rule() {
    let up = TestUpstream::start("up").await;
    let dir = tempfile::tempdir().unwrap();
    let not_exec = dir.path().join("plugin.txt");
    std::fs::write(&not_exec, "x").unwrap();
    let cases = [
        ("file://relative/plugin".to_string(), "absolute"),
        (CHAOS.to_string(), "must start with one of"),
        (format!("file://{CHAOS};id"), "metacharacter"),
        (format!("file://{}", not_exec.display()), "not executable"),
        (
            format!("file://{}/../nope", dir.path().display()),
            "cannot resolve",
        ),
    ];
    for (command, rule) in cases {
        // Required, so that a missing file stops the start instead of degrading.
        let cfg = strict_config(
            &up,
            &PluginEntry::new("p", &command, "pre_auth")
                .extra("required = true")
                .toml(),
        );
        let err = match microgateway::Config::from_toml(&cfg.toml()) {
            Err(e) => e.to_string(),
            Ok(c) => match microgateway::start(c).await {
                Err(e) => e.to_string(),
                Ok(_) => panic!("{command} accepted"),
            },
        };
        assert!(err.contains(rule), "{command}: {err}");
    }
}

#[tokio::test]
async fn allowlist_restricts_paths_after_canonicalisation() {
    let up = TestUpstream::start("up").await;
    let dir = tempfile::tempdir().unwrap();
    let allowed = std::fs::canonicalize(dir.path()).unwrap().join("allowed");
    std::fs::create_dir(&allowed).unwrap();
    let link = allowed.join("chaos");
    std::os::unix::fs::symlink(CHAOS, &link).unwrap();
    let runtime = format!(
        "[plugin_runtime]\ncommand_allowlist = [{}]\n",
        toml_str(&format!("{}/*", allowed.display()))
    );
    let escaping =
        strict_config(&up, &PluginEntry::file("p", &link, "pre_auth").toml()).raw(&runtime);
    let err = start_error(&escaping).await;
    assert!(err.contains("outside PLUGIN_COMMAND_ALLOWLIST"), "{err}");
    let copy = allowed.join("enricher");
    std::fs::copy(ENRICHER, &copy).unwrap();
    let inside =
        strict_config(&up, &PluginEntry::file("p", &copy, "pre_auth").toml()).raw(&runtime);
    let gw = inside.start().await;
    assert_eq!(crate::common::get(gw.proxy_addr, "/x").await.status, 200);
}
