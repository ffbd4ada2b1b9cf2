//! The admin API against a browser-borne attacker on the default configuration: the
//! reviewed request (`text/plain`, a foreign `Origin` and `Host`, a `file://` perl
//! command with `PERL5OPT`) must run nothing, and each defence must hold on its own.

use crate::common::binary::{ConfigFile, command};
use crate::common::client::{Reply, full, request};
use crate::common::gateway::{ADMIN_AUTH, toml_path};
use serde_json::json;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The plugin body of the reviewed attack: perl runs `touch MARKER` before anything else.
fn perl_attack(marker: &Path) -> String {
    json!({
        "name": "pwn", "hook_type": "pre_auth", "command": "file:///usr/bin/perl",
        // No spaces: perl splits PERL5OPT on white space. On the old main this ran.
        "env": { "PERL5OPT": format!("-Mstrict;system(q(touch),q({}))", marker.display()) }
    })
    .to_string()
}

/// The embedded default with both listeners on loopback port 0 and extra `[admin]` lines.
fn admin_only(admin_lines: &str) -> microgateway::Config {
    microgateway::Config::from_toml(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n{admin_lines}\n[log]\nlevel = \"warn\"\n"
    ))
    .unwrap()
}

async fn post(admin: SocketAddr, headers: &[(&str, &str)], body: &str) -> Reply {
    request(
        admin,
        "POST",
        "/api/v1/plugins",
        headers,
        full(body.to_string()),
    )
    .await
}

fn assert_refused(reply: &Reply, status: u16, kind: &str) {
    assert_eq!(reply.status, status, "{}", reply.text());
    assert_eq!(reply.json()["error"]["type"], kind, "{}", reply.text());
}

#[tokio::test]
async fn the_reviewed_cross_site_request_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    // The default configuration: no token configured, no allowlist.
    let config = admin_only(&format!(
        "data_dir = {}",
        toml_path(&dir.path().join("data"))
    ));
    let gw = microgateway::start(config).await.unwrap();
    let admin = gw.admin_addr;
    let foreign_host = format!("attacker.example:{}", admin.port());
    let attack = perl_attack(&marker);
    // The request exactly as reviewed.
    let reply = post(
        admin,
        &[
            ("content-type", "text/plain"),
            ("origin", "http://attacker.example"),
            ("host", &foreign_host),
        ],
        &attack,
    )
    .await;
    assert_refused(&reply, 403, "forbidden_host");
    // Each defence alone: Origin, token, content type.
    let local_host = format!("127.0.0.1:{}", admin.port());
    let reply = post(
        admin,
        &[
            ("origin", "http://attacker.example"),
            ("content-type", "application/json"),
        ],
        &attack,
    )
    .await;
    assert_refused(&reply, 403, "forbidden_origin");
    let reply = post(
        admin,
        &[("host", &local_host), ("content-type", "application/json")],
        &attack,
    )
    .await;
    assert_refused(&reply, 401, "unauthorized");
    // The generated token works, and is in data_dir with mode 0600.
    let token_path = dir.path().join("data").join("admin-token");
    let mode = std::fs::metadata(&token_path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let token = std::fs::read_to_string(&token_path).unwrap();
    let auth = format!("Bearer {}", token.trim());
    let reply = post(
        admin,
        &[("authorization", &auth), ("content-type", "text/plain")],
        &attack,
    )
    .await;
    assert_refused(&reply, 415, "unsupported_media_type");
    // Authenticated, JSON: the environment and the path are each refused.
    let json_auth = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let reply = post(admin, &json_auth, &attack).await;
    assert_refused(&reply, 422, "validation_failed");
    assert!(
        reply
            .text()
            .contains("outside the standard plugin directories"),
        "{}",
        reply.text()
    );
    // Validation runs the configuration rules first: the environment is named.
    let reply = request(
        admin,
        "POST",
        "/api/v1/plugins/validate",
        &json_auth,
        full(attack.clone()),
    )
    .await;
    assert_refused(&reply, 422, "validation_failed");
    assert!(reply.text().contains("PERL5OPT"), "{}", reply.text());
    gw.shutdown();
    // An operator who opens API file paths still cannot have PERL5OPT set.
    let open = admin_only(&format!(
        "data_dir = {}\n[plugin_runtime]\nallow_api_file_paths = true",
        toml_path(&dir.path().join("data"))
    ));
    let gw = microgateway::start(open).await.unwrap();
    let reply = post(gw.admin_addr, &json_auth, &attack).await;
    assert_refused(&reply, 422, "validation_failed");
    assert!(reply.text().contains("PERL5OPT"), "{}", reply.text());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!marker.exists(), "the attacker's command ran");
    gw.shutdown();
    // The control: an operator who lifts both rules gets the command run, so the
    // marker above would have shown a run.
    let lifted = admin_only(&format!(
        "data_dir = {}\n[plugin_runtime]\nallow_api_file_paths = true\nenv_allow_names = [\"PERL5OPT\"]",
        toml_path(&dir.path().join("data"))
    ));
    let gw = microgateway::start(lifted).await.unwrap();
    let reply = post(gw.admin_addr, &json_auth, &attack).await;
    assert_refused(&reply, 422, "reload_failed");
    assert!(marker.exists(), "the control did not run perl");
    let admin = gw.admin_addr;
    // Probes stay open to orchestrators under any Host.
    let probe = crate::common::get_with(admin, "/healthz", &[("host", "svc.cluster.local")]).await;
    assert_eq!(probe.status, 200);
    gw.shutdown();
}

#[tokio::test]
async fn allowed_hosts_and_origins_are_accepted() {
    let mut config = admin_only(
        "allowed_hosts = [\"gw.internal\"]\nallowed_origins = [\"https://console.example\"]",
    );
    config.admin.token_env = Some(microgateway::config::Secret(
        crate::common::gateway::ADMIN_TOKEN.into(),
    ));
    let gw = microgateway::start(config).await.unwrap();
    let ok = |host: &'static str, origin: Option<&'static str>| {
        let mut headers = vec![("authorization", ADMIN_AUTH), ("host", host)];
        if let Some(o) = origin {
            headers.push(("origin", o));
        }
        headers
    };
    for (host, origin, status) in [
        ("gw.internal", None, 200),
        ("gw.internal:9999", Some("https://console.example"), 200),
        ("localhost", None, 200),
        ("gw.internal", Some("https://evil.example"), 403),
        ("other.internal", None, 403),
    ] {
        let reply = request(
            gw.admin_addr,
            "GET",
            "/api/v1/plugins",
            &ok(host, origin),
            crate::common::client::empty(),
        )
        .await;
        assert_eq!(reply.status, status, "{host} {origin:?}: {}", reply.text());
    }
}

/// Runs the binary on `config` (without any admin token in its environment) until it
/// listens, and returns what it logged by then.
async fn run_until_listening(config: &Path) -> String {
    let mut child = tokio::process::Command::from(command())
        .arg("--config")
        .arg(config)
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stderr));
    let mut said = String::new();
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line()).await
    {
        said.push_str(&line);
        said.push('\n');
        if line.contains("microgateway listening") {
            break;
        }
    }
    child.kill().await.unwrap();
    said
}

#[tokio::test]
async fn the_binary_generates_a_token_and_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\n[log]\nformat = \"json\"\n",
        data.display().to_string()
    );
    let file = ConfigFile::new(&toml);
    let said = run_until_listening(file.path()).await;
    let path = data.join("admin-token");
    assert!(
        said.contains("generated") && said.contains(&path.display().to_string()),
        "{said}"
    );
    let token = std::fs::read_to_string(&path).unwrap();
    assert!(!said.contains(token.trim()), "the token itself was logged");
    // A second start keeps the same token and says where it came from.
    let said = run_until_listening(file.path()).await;
    assert!(said.contains("generated token file"), "{said}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), token);
}
