//! The admin API takes Tyk AI Studio's plugin body unchanged (`name`, `slug`, `command`,
//! `oci_reference`, `hook_type`, `plugin_type`, `is_active`) and runs a Tyk plugin from
//! it, reporting the detected contract in the plugin's health.

use crate::common::{get, golang};
use crate::support::{Admin, call};
use serde_json::json;

#[tokio::test]
async fn tyk_style_body_creates_a_tyk_contract_plugin() {
    let admin = Admin::new().await;
    // The Go build output is outside the standard plugin directories.
    let gw = admin
        .start("[plugin_runtime]\nallow_api_file_paths = true")
        .await;
    let binary = golang::build(&golang::example_dir("tyk-plugin"));
    let body = json!({
        "name": "Tyk Greeter",
        "slug": "tyk-greeter",
        "command": format!("file://{}", binary.display()),
        "oci_reference": "",
        "hook_type": "pre_auth",
        "plugin_type": "gateway",
        "is_active": true,
        "config": { "greeting": "from-api" },
    });
    let created = call(gw.admin_addr, "POST", "/api/v1/plugins", Some(body)).await;
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.json()["contract"], "auto");
    let health = call(
        gw.admin_addr,
        "GET",
        "/api/v1/plugins/tyk-greeter/health",
        None,
    )
    .await;
    assert_eq!(health.status, 200, "{}", health.text());
    assert_eq!(health.json()["state"], "ready", "{}", health.text());
    assert_eq!(health.json()["contract"], "tyk", "{}", health.text());
    let echo = get(gw.proxy_addr, "/echo").await.echo();
    assert_eq!(echo.header("x-tyk-greeting"), Some("from-api"));
    // A contract outside the three is a field error.
    let bad = json!({ "name": "x", "command": "builtin://headers", "hook_type": "pre_auth", "contract": "kong" });
    let refused = call(gw.admin_addr, "POST", "/api/v1/plugins", Some(bad)).await;
    assert_eq!(refused.status, 422, "{}", refused.text());
    assert!(refused.text().contains("contract"), "{}", refused.text());
}
