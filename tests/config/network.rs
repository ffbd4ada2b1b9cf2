//! The plugin network policy as Tyk's variables set it: `PLUGIN_BLOCK_INTERNAL_URLS=true`
//! wins over `ALLOW_INTERNAL_NETWORK_ACCESS=true` and over allowlisted internal CIDRs,
//! in `microgateway check` (which prints the effective policy and where each part came
//! from) and when the gateway starts.

use crate::common::binary::{self, ConfigFile};

/// One upstream and route, plus `extra` TOML.
fn config(extra: &str) -> String {
    format!(
        "[[upstreams]]\nname = \"app\"\ntargets = [\"http://127.0.0.1:9\"]\n\n[[routes]]\nname = \"r\"\nupstream = \"app\"\n\n{extra}\n"
    )
}

const GRPC_PLUGIN: &str = "[[plugins]]\nname = \"remote\"\ncommand = \"grpc://127.0.0.1:50051\"\nhook_type = \"pre_auth\"\n";

fn policy_lines(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter(|l| l.starts_with("plugin network policy:"))
        .collect()
}

#[test]
fn check_prints_the_default_policy_and_its_source() {
    let run = binary::check(&config(""), &[]);
    assert!(run.status.success(), "{run:?}");
    let lines = policy_lines(&run.stdout);
    assert_eq!(lines.len(), 2, "{run:?}");
    assert!(
        lines[0].contains("refused unless allowlisted")
            && lines[0].contains("plugin_runtime.allow_internal_network_access = false"),
        "{run:?}"
    );
    assert!(lines[1].contains("any public address"), "{run:?}");
}

#[test]
fn allow_internal_lets_check_pass_an_internal_grpc_plugin() {
    let run = binary::check(
        &config(GRPC_PLUGIN),
        &[("ALLOW_INTERNAL_NETWORK_ACCESS", "true")],
    );
    assert!(run.status.success(), "{run:?}");
    assert!(
        policy_lines(&run.stdout)[0].contains("allowed (ALLOW_INTERNAL_NETWORK_ACCESS=true)"),
        "{run:?}"
    );
}

#[test]
fn block_wins_over_allow_and_over_an_allowlisted_cidr() {
    let env = [
        ("ALLOW_INTERNAL_NETWORK_ACCESS", "true"),
        ("PLUGIN_BLOCK_INTERNAL_URLS", "true"),
        ("PLUGIN_COMMAND_ALLOWLIST", "grpc://127.0.0.0/8"),
    ];
    let run = binary::check(&config(""), &env);
    assert!(run.status.success(), "{run:?}");
    let lines = policy_lines(&run.stdout);
    assert!(
        lines[0].contains("blocked")
            && lines[0].contains("PLUGIN_BLOCK_INTERNAL_URLS=true")
            && lines[0].contains("wins over ALLOW_INTERNAL_NETWORK_ACCESS=true"),
        "{run:?}"
    );
    assert!(
        lines[1].contains("grpc://127.0.0.0/8 (PLUGIN_COMMAND_ALLOWLIST)"),
        "{run:?}"
    );
    let run = binary::check(&config(GRPC_PLUGIN), &env);
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    assert!(
        run.stderr.contains("127.0.0.1") && run.stderr.contains("PLUGIN_BLOCK_INTERNAL_URLS"),
        "{run:?}"
    );
}

#[test]
fn block_wins_over_the_file_setting_and_names_it() {
    let toml = config(
        "[plugin_runtime]\nallow_internal_network_access = true\ncommand_allowlist = [\"grpc://10.0.0.0/8\"]\n",
    );
    let run = binary::check(&toml, &[("PLUGIN_BLOCK_INTERNAL_URLS", "1")]);
    assert!(run.status.success(), "{run:?}");
    let lines = policy_lines(&run.stdout);
    assert!(
        lines[0].contains("wins over plugin_runtime.allow_internal_network_access = true"),
        "{run:?}"
    );
    assert!(
        lines[1].contains("grpc://10.0.0.0/8 (plugin_runtime.command_allowlist)"),
        "{run:?}"
    );
    let run = binary::check(&config(""), &[("PLUGIN_BLOCK_INTERNAL_URLS", "maybe")]);
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    assert!(
        run.stderr
            .contains("PLUGIN_BLOCK_INTERNAL_URLS: \"maybe\" is not a boolean"),
        "{run:?}"
    );
}

/// The gateway itself refuses to dial an internal `grpc://` plugin when blocked, even
/// with `ALLOW_INTERNAL_NETWORK_ACCESS=true` and the address allowlisted.
#[test]
fn gateway_refuses_an_internal_grpc_plugin_when_blocked() {
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n{}",
        config(GRPC_PLUGIN)
    );
    let file = ConfigFile::new(&toml);
    let mut child = binary::command()
        .arg("--config")
        .arg(file.path())
        .env("ALLOW_INTERNAL_NETWORK_ACCESS", "true")
        .env("PLUGIN_BLOCK_INTERNAL_URLS", "true")
        .env("PLUGIN_COMMAND_ALLOWLIST", "grpc://127.0.0.0/8")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the gateway started with a blocked internal grpc:// plugin");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("PLUGIN_BLOCK_INTERNAL_URLS"), "{stderr}");
}
