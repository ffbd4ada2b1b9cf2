//! Helpers for plugin tests: example binary paths, gateway configurations, plugin servers.

use crate::common::{GatewayConfig, TestUpstream};
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

pub const ENRICHER: &str = env!("CARGO_BIN_EXE_mg-plugin-header-enricher");
pub const AUTH: &str = env!("CARGO_BIN_EXE_mg-plugin-auth");
pub const SSE_FILTER: &str = env!("CARGO_BIN_EXE_mg-plugin-sse-filter");
pub const CHAOS: &str = env!("CARGO_BIN_EXE_mg-plugin-chaos");

/// A `file://` command for an example binary.
pub fn file(path: &str) -> String {
    format!("file://{path}")
}

/// Gateway config with one route `main` to `up` and the given plugin sections.
pub fn config(up: &TestUpstream, plugins: &str) -> GatewayConfig {
    GatewayConfig::new()
        .upstream("main", &[up])
        .route("main", "main", "path_prefix = \"/\"")
        .raw("[plugin_runtime]\nallow_internal_network_access = true\nstart_timeout = \"5s\"\nping_interval = \"300ms\"\n")
        .raw(plugins)
}

/// Like [`config`] but without the loopback exemption for `grpc://`.
pub fn strict_config(up: &TestUpstream, plugins: &str) -> GatewayConfig {
    GatewayConfig::new()
        .upstream("main", &[up])
        .route("main", "main", "path_prefix = \"/\"")
        .raw(plugins)
}

/// The error a gateway start produces.
pub async fn start_error(config: &GatewayConfig) -> String {
    match microgateway::start(config.config()).await {
        Ok(_) => panic!("gateway started although it should not"),
        Err(e) => e.to_string(),
    }
}

/// An example plugin running as a `grpc://` server on a free loopback port.
pub struct PluginServer {
    pub addr: SocketAddr,
    /// Killed when the server is dropped.
    _child: tokio::process::Child,
}

impl PluginServer {
    pub async fn start(binary: &str) -> PluginServer {
        let mut child = tokio::process::Command::new(binary)
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("plugin server did not start")
            .unwrap()
            .unwrap();
        let addr = line
            .rsplit("grpc://")
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        PluginServer {
            addr,
            _child: child,
        }
    }

    pub fn url(&self) -> String {
        format!("grpc://{}", self.addr)
    }
}

pub use crate::common::process::gone;

/// Polls `check` every 50 ms for up to `limit`.
pub async fn eventually(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
