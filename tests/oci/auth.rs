//! Registry credentials as the Tyk docs describe them, against `docker-registry` with
//! htpasswd auth: the entitlement's default username, missing versus rejected
//! credentials, and which credential source an error names (never the secret).

use crate::common::binary::command;
use crate::registry::{Registry, creds, push, settings, store};
use microgateway::oci::settings::registry_env_prefix;

/// A store seeing only `vars`, with a cache directory of its own (kept for the test).
fn with_vars(reg: &Registry, vars: &[(String, String)]) -> microgateway::oci::OciStore {
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let cache = tempfile::tempdir_in(reg.dir.path()).unwrap().keep();
    store(settings(&cache, reg), &vars)
}

/// Pushes a plugin to `reg` as `user`/`password` and returns its reference.
async fn pushed(reg: &Registry, user: &str, password: &str) -> String {
    let reference = format!("{}/plugins/entitled:1", reg.host);
    push(
        &with_vars(reg, &creds(reg, user, password)),
        &reference,
        b"#!/bin/sh\n# entitled\n",
    )
    .await;
    reference
}

#[tokio::test]
async fn token_is_sent_as_tyk_sends_it() {
    // Tyk AI Studio sends `…_TOKEN` as the password of `oauth2accesstoken`; the htpasswd
    // file knows only that user.
    let reg = Registry::start_with(Some(("oauth2accesstoken", "access-tok"))).await;
    let reference = pushed(&reg, "oauth2accesstoken", "access-tok").await;
    let prefix = registry_env_prefix(&reg.host);
    let fetched = with_vars(&reg, &[(format!("{prefix}_TOKEN"), "access-tok".into())])
        .fetch(&reference)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(fetched.path).unwrap(),
        b"#!/bin/sh\n# entitled\n"
    );
    let err = with_vars(&reg, &[(format!("{prefix}_TOKEN"), "wrong-tok".into())])
        .fetch(&reference)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("rejected the credentials") && err.contains("oauth2accesstoken"),
        "{err}"
    );
    assert!(!err.contains("wrong-tok"), "{err}");
}

#[tokio::test]
async fn entitlement_alone_sends_the_username_token() {
    let reg = Registry::start_with(Some(("token", "ent-key-1"))).await;
    let reference = pushed(&reg, "token", "ent-key-1").await;
    let prefix = registry_env_prefix(&reg.host);
    let fetched = with_vars(
        &reg,
        &[(format!("{prefix}_ENTITLEMENT"), "ent-key-1".into())],
    )
    .fetch(&reference)
    .await
    .unwrap();
    assert_eq!(
        std::fs::read(fetched.path).unwrap(),
        b"#!/bin/sh\n# entitled\n"
    );
    // The htpasswd file knows only the user `token`: any other username is refused
    // (`entitlement_username_overrides_token` shows the converse).
    let log = reg.log.lock().unwrap().clone();
    assert!(
        log.contains("GET /v2/plugins/entitled/manifests/1 HTTP/1.1\" 200"),
        "{log}"
    );
    // Through a variable naming the variable that holds the key, too.
    with_vars(
        &reg,
        &[
            (format!("{prefix}_ENTITLEMENTENV"), "MY_ENTITLEMENT".into()),
            ("MY_ENTITLEMENT".into(), "ent-key-1".into()),
        ],
    )
    .fetch(&reference)
    .await
    .unwrap();
}

#[tokio::test]
async fn entitlement_username_overrides_token() {
    let reg = Registry::start_with(Some(("acme", "ent-key-2"))).await;
    let reference = pushed(&reg, "acme", "ent-key-2").await;
    let prefix = registry_env_prefix(&reg.host);
    let entitlement = (format!("{prefix}_ENTITLEMENT"), "ent-key-2".to_string());
    let err = with_vars(&reg, std::slice::from_ref(&entitlement))
        .fetch(&reference)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("rejected the credentials") && err.contains("(username \"token\")"),
        "{err}"
    );
    with_vars(
        &reg,
        &[
            entitlement,
            (format!("{prefix}_ENTITLEMENTUSERNAME"), "acme".into()),
        ],
    )
    .fetch(&reference)
    .await
    .unwrap();
}

#[tokio::test]
async fn missing_and_rejected_credentials_are_told_apart() {
    let reg = Registry::start_with(Some(("alice", "right-password"))).await;
    let reference = pushed(&reg, "alice", "right-password").await;
    let prefix = registry_env_prefix(&reg.host);
    let err = with_vars(&reg, &[])
        .fetch(&reference)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing credentials"), "{err}");
    assert!(err.contains(&format!("{prefix}_ENTITLEMENT")), "{err}");
    let err = with_vars(&reg, &creds(&reg, "alice", "wrong-password"))
        .fetch(&reference)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("rejected the credentials"), "{err}");
    assert!(err.contains(&format!("{prefix}_USERNAME")), "{err}");
    assert!(!err.contains("wrong-password"), "the secret leaked: {err}");
}

/// `microgateway plugin pull` prints each cause once, and names the source, not the secret.
#[tokio::test]
async fn cli_error_names_the_cause_once() {
    let reg = Registry::start_with(Some(("token", "ent-key-3"))).await;
    let reference = pushed(&reg, "token", "ent-key-3").await;
    let prefix = registry_env_prefix(&reg.host);
    let cache = tempfile::tempdir().unwrap();
    let out = command()
        .args(["plugin", "pull", &reference])
        .env("OCI_PLUGINS_INSECURE_REGISTRIES", &reg.host)
        .env("OCI_PLUGINS_CACHE_DIR", cache.path())
        .env(format!("{prefix}_ENTITLEMENT"), "not-the-key")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default();
    assert!(line.contains("rejected the credentials"), "{stderr}");
    assert!(
        !stderr.contains("not-the-key"),
        "the secret leaked: {stderr}"
    );
    for part in [
        "rejected",
        "Not authorized",
        "/v2/plugins/entitled/manifests/1",
    ] {
        assert_eq!(line.matches(part).count(), 1, "{part:?} repeated: {line}");
    }
}

/// The gateway's start-up log names a registry refusal once: no `…: X: X`.
#[tokio::test]
async fn startup_error_names_the_cause_once() {
    let reg = Registry::start_with(Some(("token", "ent-key-4"))).await;
    let reference = pushed(&reg, "token", "ent-key-4").await;
    let up = crate::common::TestUpstream::start("up").await;
    let cache = tempfile::tempdir().unwrap();
    let config = crate::common::GatewayConfig::new()
        .upstream("main", &[&up])
        .route("main", "main", "")
        .raw(&format!(
            "[oci]\ncache_dir = {}\ninsecure_registries = [{}]\n",
            crate::common::gateway::toml_path(cache.path()),
            crate::common::gateway::toml_str(&reg.host)
        ))
        .plugin(crate::common::PluginEntry::new(
            "entitled",
            &format!("oci://{reference}"),
            "pre_auth",
        ));
    let gw = crate::common::binary::GatewayProcess::spawn(&config).await;
    let log = gw.log.lock().unwrap().clone();
    let line = log
        .lines()
        .find(|l| l.contains("plugin cannot load"))
        .unwrap_or_else(|| panic!("no load failure logged: {log}"));
    assert!(line.contains("missing credentials"), "{line}");
    for part in ["missing credentials", "Not authorized", reference.as_str()] {
        assert_eq!(line.matches(part).count(), 1, "{part:?} repeated: {line}");
    }
}
