//! The `/api/v1` plugin endpoints and the single mapping of manager errors to HTTP.

use super::manager::{ManagerError, PluginManager};
use crate::body::{self, Body};
use crate::error::json_error;
use http::{HeaderValue, Method, Response, StatusCode, header};
use hyper::body::Incoming;

/// The OpenAPI description of this API, served at `/api/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Largest accepted request body.
const MAX_BODY: usize = 1024 * 1024;

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut r = Response::new(body::full(value.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The one place manager errors become responses.
fn error(e: ManagerError) -> Response<Body> {
    match e {
        ManagerError::NotFound(_) => {
            json_error(StatusCode::NOT_FOUND, "not_found", &e.to_string(), "")
        }
        ManagerError::Conflict(m) => json_error(StatusCode::CONFLICT, "conflict", &m, ""),
        ManagerError::Invalid(fields) => json(
            StatusCode::UNPROCESSABLE_ENTITY,
            &serde_json::json!({ "error": { "type": "validation_failed", "message": "invalid plugin definition", "fields": fields } }),
        ),
        ManagerError::Reload(_) => json_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "reload_failed",
            &e.to_string(),
            "",
        ),
        ManagerError::Persist(_) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "persist_failed",
            &e.to_string(),
            "",
        ),
    }
}

async fn read_json(body: Incoming) -> Result<serde_json::Value, Response<Body>> {
    let bytes = body::collect_limited(body::boxed(body), MAX_BODY)
        .await
        .map_err(|e| {
            json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                &e.to_string(),
                "",
            )
        })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({ "error": { "type": "invalid_json", "message": e.to_string(), "fields": { "body": e.to_string() } } }),
        )
    })
}

/// Serves one `/api/v1/...` request (already authenticated).
pub async fn handle(
    manager: &PluginManager,
    method: Method,
    path: &str,
    body: Incoming,
) -> Response<Body> {
    let parts: Vec<&str> = path
        .trim_start_matches("/api/v1/")
        .trim_end_matches('/')
        .split('/')
        .collect();
    match (method.clone(), parts.as_slice()) {
        (Method::GET, ["openapi.json"]) => {
            let mut r = Response::new(body::full(OPENAPI));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        (Method::GET, ["upstreams"]) => json(
            StatusCode::OK,
            &serde_json::json!({ "upstreams": manager.upstreams() }),
        ),
        (Method::GET, ["plugins"]) => json(
            StatusCode::OK,
            &serde_json::json!({
                "plugins": manager.records(),
                "fleet": manager.fleet().map(|f| f.status()),
            }),
        ),
        (Method::POST, ["plugins"]) => match read_json(body).await {
            Err(r) => r,
            Ok(v) => match manager.create(&v).await {
                Ok(record) => json(StatusCode::CREATED, &serde_json::json!(record)),
                Err(e) => error(e),
            },
        },
        (Method::POST, ["plugins", "validate"]) => match read_json(body).await {
            Err(r) => r,
            Ok(v) => match manager.validate(&v).await {
                Ok(record) => json(
                    StatusCode::OK,
                    &serde_json::json!({ "valid": true, "plugin": record }),
                ),
                Err(e) => error(e),
            },
        },
        (Method::GET, ["plugins", "health"]) => {
            let all: Vec<serde_json::Value> = manager
                .records()
                .iter()
                .map(|r| manager.health(r))
                .collect();
            json(StatusCode::OK, &serde_json::json!({ "plugins": all }))
        }
        (Method::GET, ["plugins", id]) => match manager.get(id) {
            Ok(r) => json(StatusCode::OK, &serde_json::json!(r)),
            Err(e) => error(e),
        },
        (Method::PUT | Method::PATCH, ["plugins", id]) => match read_json(body).await {
            Err(r) => r,
            Ok(v) => match manager.update(id, &v, method == Method::PATCH).await {
                Ok(record) => json(StatusCode::OK, &serde_json::json!(record)),
                Err(e) => error(e),
            },
        },
        (Method::DELETE, ["plugins", id]) => match manager.delete(id).await {
            Ok(()) => {
                let mut r = Response::new(body::empty());
                *r.status_mut() = StatusCode::NO_CONTENT;
                r
            }
            Err(e) => error(e),
        },
        (Method::POST, ["plugins", id, "reload"]) => match manager.get(id) {
            Err(e) => error(e),
            Ok(record) => match manager.reload().await {
                Ok(()) => json(
                    StatusCode::OK,
                    &serde_json::json!({ "reloaded": true, "health": manager.health(&record) }),
                ),
                Err(e) => error(e),
            },
        },
        (Method::GET, ["plugins", id, "health"]) => match manager.get(id) {
            Ok(r) => json(StatusCode::OK, &manager.health(&r)),
            Err(e) => error(e),
        },
        _ => json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no endpoint {method} {path}"),
            "",
        ),
    }
}
