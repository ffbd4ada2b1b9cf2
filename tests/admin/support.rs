//! An admin-enabled gateway with a token file and a private data directory.

use crate::common::client::{Reply, empty, full, request};
use crate::common::gateway::toml_path;
use crate::common::{GatewayConfig, TestUpstream};
use microgateway::RunningGateway;
use std::net::SocketAddr;

pub const TOKEN: &str = "test-admin-token-0123456789";

pub struct Admin {
    pub dir: tempfile::TempDir,
    pub upstream: TestUpstream,
}

impl Admin {
    pub async fn new() -> Admin {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), format!("{TOKEN}\n")).unwrap();
        Admin {
            dir,
            upstream: TestUpstream::start("up").await,
        }
    }

    /// Gateway config: token file, data dir, one route `main`, extra TOML.
    pub fn config(&self, extra: &str) -> GatewayConfig {
        GatewayConfig::new()
            .upstream("main", &[&self.upstream])
            .route("main", "main", "")
            .raw(&format!(
                "[admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = {}\ndata_dir = {}\n",
                toml_path(&self.dir.path().join("token")),
                toml_path(&self.dir.path().join("data"))
            ))
            .raw(extra)
    }

    pub async fn start(&self, extra: &str) -> RunningGateway {
        let toml = self.config(extra).toml();
        // GatewayConfig writes its own [admin] table first; ours must win, so drop it.
        let toml = toml.replacen("[admin]\nlisten = \"127.0.0.1:0\"\n", "", 1);
        microgateway::start(microgateway::Config::from_toml(&toml).unwrap())
            .await
            .unwrap()
    }
}

/// An authenticated admin call.
pub async fn call(
    admin: SocketAddr,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> Reply {
    let auth = format!("Bearer {TOKEN}");
    let mut headers = vec![("authorization", auth.as_str())];
    let payload = match body {
        Some(v) => {
            headers.push(("content-type", "application/json"));
            full(v.to_string())
        }
        None => empty(),
    };
    request(admin, method, path, &headers, payload).await
}
