//! Bearer-token rules of the admin API.

use crate::common::client::{empty, request};
use crate::support::{Admin, TOKEN};

#[tokio::test]
async fn every_malformed_credential_gets_401() {
    let admin = Admin::new().await;
    let gw = admin.start("").await;
    let good = format!("Bearer {TOKEN}");
    let lower = format!("bearer {TOKEN}");
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("/api/v1/plugins", vec![]),
        (
            "/api/v1/plugins",
            vec![("authorization", "Bearer wrong-token")],
        ),
        ("/api/v1/plugins", vec![("authorization", lower.as_str())]),
        (
            "/api/v1/plugins",
            vec![
                ("authorization", good.as_str()),
                ("authorization", good.as_str()),
            ],
        ),
        ("/api/v1/plugins?token=test-admin-token-0123456789", vec![]),
        (
            "/api/v1/plugins?access_token=x",
            vec![("authorization", good.as_str())],
        ),
    ];
    for (path, headers) in cases {
        let reply = request(gw.admin_addr, "GET", path, &headers, empty()).await;
        assert_eq!(reply.status, 401, "{path} {headers:?}: {}", reply.text());
        assert_eq!(reply.json()["error"]["type"], "unauthorized");
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    }
    let ok = request(
        gw.admin_addr,
        "GET",
        "/api/v1/plugins",
        &[("authorization", good.as_str())],
        empty(),
    )
    .await;
    assert_eq!(ok.status, 200);
    // Probes stay open.
    assert_eq!(
        crate::common::get(gw.admin_addr, "/healthz").await.status,
        200
    );
}

#[tokio::test]
async fn non_loopback_admin_without_token_refuses_to_start() {
    let admin = Admin::new().await;
    let toml = admin
        .config("")
        .toml()
        .replacen("[admin]\nlisten = \"127.0.0.1:0\"\n", "", 1)
        .replace(
            "listen = \"127.0.0.1:0\"\ntoken_file",
            "listen = \"0.0.0.0:0\"\n#token_file",
        );
    let config = microgateway::Config::from_toml(&toml).unwrap();
    let err = microgateway::start(config)
        .await
        .err()
        .expect("started without a token")
        .to_string();
    assert!(
        err.contains("not a loopback address") && err.contains("token"),
        "{err}"
    );
}

#[tokio::test]
async fn openapi_document_is_served_and_matches_the_repository() {
    let admin = Admin::new().await;
    let gw = admin.start("").await;
    let reply = crate::support::call(gw.admin_addr, "GET", "/api/v1/openapi.json", None).await;
    assert_eq!(reply.status, 200);
    let served = reply.json();
    let file: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/admin/openapi.json"
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(served, file);
    for path in [
        "/api/v1/plugins",
        "/api/v1/plugins/{id}",
        "/api/v1/plugins/{id}/reload",
        "/api/v1/plugins/{id}/health",
        "/api/v1/plugins/health",
        "/api/v1/plugins/validate",
    ] {
        assert!(served["paths"][path].is_object(), "{path} missing");
    }
}
