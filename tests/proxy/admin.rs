//! The admin listener: health and readiness, Prometheus metrics labelled by route, and
//! JSON errors for unknown paths and methods.

use crate::common::client::{self, empty};
use crate::common::{GatewayConfig, TestUpstream, closed_port, get};
use hyper::StatusCode;

/// The value of the sample whose line starts with `series` (name plus labels).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test]
async fn health_and_readiness_answer_200() {
    let up = TestUpstream::start("U").await;
    let gw = crate::common::single(&up).await;
    let health = get(gw.admin_addr, "/healthz").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json()["status"], "ok");
    let ready = get(gw.admin_addr, "/readyz").await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.json()["status"], "ready");
    // The admin listener is separate from the proxy: the upstream saw nothing.
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let up = TestUpstream::start("U").await;
    let gw = GatewayConfig::new()
        .upstream("u", &[&up])
        .route("metrics-requests-route", "u", "path_prefix = \"/counted\"")
        .start()
        .await;
    for _ in 0..2 {
        assert_eq!(
            get(gw.proxy_addr, "/counted/x").await.status,
            StatusCode::OK
        );
    }
    assert_eq!(
        get(gw.proxy_addr, "/unrouted").await.status,
        StatusCode::NOT_FOUND
    );
    let metrics = get(gw.admin_addr, "/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(
        metrics
            .header("content-type")
            .unwrap()
            .starts_with("text/plain"),
    );
    let text = metrics.text();
    assert_eq!(
        sample(
            &text,
            "microgateway_requests_total{route=\"metrics-requests-route\",status=\"200\"}"
        ),
        Some(2.0),
        "{text}"
    );
    assert!(
        text.contains("microgateway_requests_total{route=\"<none>\",status=\"404\"}"),
        "{text}"
    );
    assert!(
        text.contains("microgateway_request_duration_seconds"),
        "{text}"
    );
}

#[tokio::test]
async fn metrics_count_upstream_errors() {
    let down = closed_port().await;
    let gw = GatewayConfig::new()
        .upstream_urls("metrics-down-upstream", &[format!("http://{down}")], "")
        .route("metrics-down-route", "metrics-down-upstream", "")
        .start()
        .await;
    let reply = get(gw.proxy_addr, "/echo").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    let text = get(gw.admin_addr, "/metrics").await.text();
    assert_eq!(
        sample(
            &text,
            "microgateway_upstream_errors_total{route=\"metrics-down-route\",upstream=\"metrics-down-upstream\",kind=\"connect\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "microgateway_gateway_errors_total{route=\"metrics-down-route\",type=\"upstream_unavailable\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "microgateway_requests_total{route=\"metrics-down-route\",status=\"502\"}"
        ),
        Some(1.0),
        "{text}"
    );
}

#[tokio::test]
async fn admin_rejects_unknown_paths_and_methods() {
    let up = TestUpstream::start("U").await;
    let gw = crate::common::single(&up).await;
    let reply = get(gw.admin_addr, "/nope").await;
    reply.assert_error(StatusCode::NOT_FOUND, "not_found");
    let reply = client::request(gw.admin_addr, "POST", "/healthz", &[], empty()).await;
    reply.assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

#[tokio::test]
async fn start_reports_a_busy_proxy_port() {
    let up = TestUpstream::start("U").await;
    let config = |listen: &str| {
        let mut config = GatewayConfig::new()
            .upstream("main", &[&up])
            .route("main", "main", "")
            .config();
        config.server.listen = listen.parse().unwrap();
        config
    };
    // A plain listener, then another gateway: either way the second start must fail.
    let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain_port = plain.local_addr().unwrap().port();
    let first = microgateway::start(config("127.0.0.1:0")).await.unwrap();
    for port in [plain_port, first.proxy_addr.port()] {
        match microgateway::start(config(&format!("127.0.0.1:{port}"))).await {
            Ok(_) => panic!("gateway started on busy port {port}"),
            Err(e) => {
                let message = e.to_string();
                assert!(message.contains("proxy"), "{message}");
                assert!(message.contains(&port.to_string()), "{message}");
            }
        }
    }
    first.shutdown();
    first.wait().await;
}

#[tokio::test]
async fn start_reports_a_busy_admin_port() {
    let busy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = busy.local_addr().unwrap().port();
    let up = TestUpstream::start("U").await;
    let config = GatewayConfig::new()
        .upstream("main", &[&up])
        .route("main", "main", "")
        .admin_listen(&format!("127.0.0.1:{port}"))
        .config();
    match microgateway::start(config).await {
        Ok(_) => panic!("gateway started on a busy admin port"),
        Err(e) => {
            let message = e.to_string();
            assert!(message.contains("admin"), "{message}");
            assert!(message.contains(&port.to_string()), "{message}");
        }
    }
}
