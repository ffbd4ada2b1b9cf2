//! Plugin CRUD through the API, persistence across restarts, field errors.

use crate::common::{PluginEntry, get};
use crate::support::{Admin, call};
use serde_json::json;

fn header_plugin(value: &str) -> serde_json::Value {
    json!({
        "name": "Tag Requests",
        "command": "builtin://headers",
        "hook_type": "pre_auth",
        "plugin_type": "gateway",
        "order": 5,
        "timeout": "250ms",
        "on_error": "fail_open",
        "config": { "set": { "x-tag": value } }
    })
}

#[tokio::test]
async fn crud_round_trip_and_persistence_across_restart() {
    let admin = Admin::new().await;
    let gw = admin.start("").await;
    let created = call(
        gw.admin_addr,
        "POST",
        "/api/v1/plugins",
        Some(header_plugin("one")),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let record = created.json();
    assert_eq!(record["id"], "tag-requests");
    assert_eq!(record["source"], "api");
    assert_eq!(record["timeout"], "250ms");
    assert_eq!(
        get(gw.proxy_addr, "/echo").await.echo().header("x-tag"),
        Some("one")
    );

    let list = call(gw.admin_addr, "GET", "/api/v1/plugins", None)
        .await
        .json();
    assert_eq!(list["plugins"].as_array().unwrap().len(), 1);
    let one = call(gw.admin_addr, "GET", "/api/v1/plugins/tag-requests", None).await;
    assert_eq!(one.json()["config"]["set"]["x-tag"], "one");

    let patched = call(
        gw.admin_addr,
        "PATCH",
        "/api/v1/plugins/tag-requests",
        Some(json!({ "config": { "set": { "x-tag": "two" } } })),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.text());
    assert_eq!(patched.json()["order"], 5);
    assert_eq!(
        get(gw.proxy_addr, "/echo").await.echo().header("x-tag"),
        Some("two")
    );

    let replaced = call(
        gw.admin_addr,
        "PUT",
        "/api/v1/plugins/tag-requests",
        Some(header_plugin("three")),
    )
    .await;
    assert_eq!(replaced.status, 200, "{}", replaced.text());
    assert_eq!(
        get(gw.proxy_addr, "/echo").await.echo().header("x-tag"),
        Some("three")
    );

    let health = call(
        gw.admin_addr,
        "GET",
        "/api/v1/plugins/tag-requests/health",
        None,
    )
    .await
    .json();
    assert_eq!(health["state"], "ready");
    let all = call(gw.admin_addr, "GET", "/api/v1/plugins/health", None)
        .await
        .json();
    assert_eq!(all["plugins"][0]["state"], "ready");

    // Restart on the same data directory: the plugin comes back.
    gw.shutdown();
    gw.wait().await;
    let gw = admin.start("").await;
    assert_eq!(
        get(gw.proxy_addr, "/echo").await.echo().header("x-tag"),
        Some("three")
    );
    let deleted = call(
        gw.admin_addr,
        "DELETE",
        "/api/v1/plugins/tag-requests",
        None,
    )
    .await;
    assert_eq!(deleted.status, 204);
    assert_eq!(
        get(gw.proxy_addr, "/echo").await.echo().header("x-tag"),
        None
    );
    assert_eq!(
        call(gw.admin_addr, "GET", "/api/v1/plugins/tag-requests", None)
            .await
            .status,
        404
    );
    gw.shutdown();
    gw.wait().await;
    let gw = admin.start("").await;
    assert_eq!(
        call(gw.admin_addr, "GET", "/api/v1/plugins", None)
            .await
            .json()["plugins"],
        json!([])
    );
}

#[tokio::test]
async fn invalid_bodies_name_their_fields() {
    let admin = Admin::new().await;
    let gw = admin.start("").await;
    let cases = [
        (
            json!({ "command": "builtin://headers", "hook_type": "pre_auth" }),
            "name",
        ),
        (
            json!({ "name": "x", "command": "builtin://headers", "hook_type": "sometimes" }),
            "hook_type",
        ),
        (json!({ "name": "x", "hook_type": "pre_auth" }), "command"),
        (
            json!({ "name": "x", "command": "builtin://headers", "hook_type": "pre_auth", "timeout": "soon" }),
            "timeout",
        ),
        (
            json!({ "name": "x", "command": "builtin://headers", "hook_type": "pre_auth", "routes": ["nope"] }),
            "routes",
        ),
        (
            json!({ "name": "x", "command": "ftp://x", "hook_type": "pre_auth" }),
            "command",
        ),
        (
            json!({ "name": "x", "command": "builtin://headers", "hook_type": "pre_auth", "colour": "red" }),
            "colour",
        ),
        (
            json!({ "name": "x", "command": "builtin://headers", "hook_type": "pre_auth", "config": { "set": { "host": "x" } } }),
            "config",
        ),
    ];
    for (body, field) in cases {
        let reply = call(gw.admin_addr, "POST", "/api/v1/plugins", Some(body.clone())).await;
        assert_eq!(reply.status, 422, "{body}: {}", reply.text());
        let fields = &reply.json()["error"]["fields"];
        assert!(
            fields[field].is_string(),
            "{body}: expected field {field} in {fields}"
        );
    }
    let bad_json = crate::common::client::request(
        gw.admin_addr,
        "POST",
        "/api/v1/plugins",
        &[
            (
                "authorization",
                &format!("Bearer {}", crate::support::TOKEN),
            ),
            ("content-type", "application/json"),
        ],
        crate::common::client::full("{not json"),
    )
    .await;
    assert_eq!(bad_json.status, 400);
    assert_eq!(
        call(gw.admin_addr, "GET", "/api/v1/plugins", None)
            .await
            .json()["plugins"],
        json!([])
    );
}

#[tokio::test]
async fn validate_is_a_dry_run() {
    let admin = Admin::new().await;
    let gw = admin.start("").await;
    let ok = call(
        gw.admin_addr,
        "POST",
        "/api/v1/plugins/validate",
        Some(header_plugin("v")),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["valid"], true);
    assert_eq!(
        get(gw.proxy_addr, "/echo").await.echo().header("x-tag"),
        None
    );
    let missing =
        json!({ "name": "f", "command": "file:///does/not/exist", "hook_type": "pre_auth" });
    let bad = call(
        gw.admin_addr,
        "POST",
        "/api/v1/plugins/validate",
        Some(missing),
    )
    .await;
    assert_eq!(bad.status, 422);
    assert!(
        bad.json()["error"]["fields"]["command"]
            .as_str()
            .unwrap()
            .contains("cannot resolve")
    );
}

#[tokio::test]
async fn configuration_file_plugins_are_read_only_and_names_unique() {
    let admin = Admin::new().await;
    let file_plugin = PluginEntry::new("from-file", "builtin://headers", "pre_auth")
        .extra("config = { set = { \"x-file\" = \"1\" } }")
        .toml();
    let gw = admin.start(&file_plugin).await;
    let list = call(gw.admin_addr, "GET", "/api/v1/plugins", None)
        .await
        .json();
    assert_eq!(list["plugins"][0]["source"], "config");
    let del = call(gw.admin_addr, "DELETE", "/api/v1/plugins/from-file", None).await;
    assert_eq!(del.status, 409);
    let dup = call(gw.admin_addr, "POST", "/api/v1/plugins", Some(json!({ "name": "from-file", "command": "builtin://headers", "hook_type": "pre_auth", "config": { "set": { "x-a": "1" } } }))).await;
    assert_eq!(dup.status, 409);
    // API plugins run together with file plugins, ordered by `order`.
    let api = json!({ "name": "api-one", "command": "builtin://headers", "hook_type": "pre_auth", "order": -1, "config": { "set": { "x-api": "1" } } });
    assert_eq!(
        call(gw.admin_addr, "POST", "/api/v1/plugins", Some(api))
            .await
            .status,
        201
    );
    let echo = get(gw.proxy_addr, "/echo").await.echo();
    assert_eq!(
        (echo.header("x-file"), echo.header("x-api")),
        (Some("1"), Some("1"))
    );
}
