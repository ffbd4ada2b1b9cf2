//! Driving the real `microgateway` binary: `check` runs with a temporary config file, and
//! a running gateway process whose bound ports are read from its JSON start-up log line.
//!
//! Every command starts from an environment without the gateway's own variables
//! (`MICROGATEWAY_*`, `OCI_PLUGINS_*`, `PLUGIN_*`, `ALLOW_INTERNAL_NETWORK_ACCESS`,
//! `RUST_LOG`, `NO_COLOR`), so the developer's shell cannot change the outcome.

use super::gateway::GatewayConfig;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Path of the compiled binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_microgateway");

/// A `std::process::Command` for the binary with a clean configuration environment.
pub fn command() -> std::process::Command {
    command_for(BIN)
}

/// A `std::process::Command` for `program` with the same clean environment (for
/// wrappers such as `script` that run the binary).
pub fn command_for(program: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(program);
    const PREFIXES: [&str; 3] = ["MICROGATEWAY_", "OCI_PLUGINS_", "PLUGIN_"];
    const NAMES: [&str; 3] = ["ALLOW_INTERNAL_NETWORK_ACCESS", "RUST_LOG", "NO_COLOR"];
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        if PREFIXES.iter().any(|p| key_text.starts_with(p)) || NAMES.contains(&&*key_text) {
            cmd.env_remove(&key);
        }
    }
    cmd
}

/// A config file in its own temporary directory.
pub struct ConfigFile {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl ConfigFile {
    /// Writes `toml` to `<tmp>/microgateway.toml`.
    pub fn new(toml: &str) -> ConfigFile {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("microgateway.toml");
        std::fs::write(&path, toml).unwrap();
        ConfigFile { _dir: dir, path }
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Output of one `microgateway` invocation, decoded.
#[derive(Debug)]
pub struct Run {
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(out: Output) -> Run {
        Run {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Runs `microgateway check --config <file with toml>` with extra environment variables.
pub fn check(toml: &str, env: &[(&str, &str)]) -> Run {
    let file = ConfigFile::new(toml);
    let mut cmd = command();
    cmd.arg("check").arg("--config").arg(file.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap().into()
}

/// A running gateway process, killed if dropped while still running.
pub struct GatewayProcess {
    child: tokio::process::Child,
    /// Proxy listener address reported at start-up.
    pub proxy_addr: SocketAddr,
    /// Admin listener address reported at start-up.
    pub admin_addr: SocketAddr,
    /// Everything the process wrote to stderr so far.
    pub log: Arc<Mutex<String>>,
    _config: ConfigFile,
}

impl GatewayProcess {
    /// Starts `microgateway --config <file>` (JSON logs at info) and waits for it to listen.
    pub async fn spawn(config: &GatewayConfig) -> GatewayProcess {
        Self::spawn_with_env(config, &[]).await
    }

    /// Like [`GatewayProcess::spawn`] with extra environment variables for the process.
    pub async fn spawn_with_env(config: &GatewayConfig, env: &[(&str, &str)]) -> GatewayProcess {
        let toml = config
            .clone()
            .log("format = \"json\"\nlevel = \"info\"")
            .toml();
        Self::spawn_file(&toml, env).await
    }

    /// Starts the binary on a complete TOML document from [`GatewayConfig::toml`]; its
    /// `[log]` table is switched to JSON at info so the listeners can be read.
    pub async fn spawn_toml(toml: &str) -> GatewayProcess {
        let toml = toml.replacen(
            "[log]\nlevel = \"warn\"",
            "[log]\nformat = \"json\"\nlevel = \"info\"",
            1,
        );
        Self::spawn_file(&toml, &[]).await
    }

    async fn spawn_file(toml: &str, env: &[(&str, &str)]) -> GatewayProcess {
        let config = ConfigFile::new(toml);
        let mut cmd = tokio::process::Command::from(command());
        cmd.arg("--config")
            .arg(config.path())
            .env("MICROGATEWAY_ADMIN_TOKEN", super::gateway::ADMIN_TOKEN)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sink = log.clone();
        tokio::spawn(async move {
            let mut tx = Some(tx);
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().unwrap().push_str(&line);
                sink.lock().unwrap().push('\n');
                let Ok(json) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                if json["message"] == "microgateway listening" {
                    let addr =
                        |k: &str| json[k].as_str().and_then(|s| s.parse::<SocketAddr>().ok());
                    if let (Some(p), Some(a), Some(tx)) =
                        (addr("proxy_addr"), addr("admin_addr"), tx.take())
                    {
                        let _ = tx.send((p, a));
                    }
                }
            }
        });
        let (proxy_addr, admin_addr) = match tokio::time::timeout(Duration::from_secs(30), rx).await
        {
            Ok(Ok(addrs)) => addrs,
            _ => panic!(
                "gateway process did not report its listeners; stderr:\n{}",
                log.lock().unwrap()
            ),
        };
        GatewayProcess {
            child,
            proxy_addr,
            admin_addr,
            log,
            _config: config,
        }
    }

    /// The configuration file the process was started with (rewrite it to test reloads).
    pub fn config_path(&self) -> &Path {
        self._config.path()
    }

    /// Process id of the running gateway.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("process already reaped")
    }

    /// Sends a signal such as `-HUP` with `kill`.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("process already reaped");
        let status = std::process::Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} {pid} failed");
    }

    /// Sends SIGTERM with `kill -TERM <pid>`.
    pub fn terminate(&self) {
        let pid = self.child.id().expect("process already reaped");
        let status = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM {pid} failed");
    }

    /// Waits (at most `limit`) for the process to exit.
    pub async fn wait(mut self, limit: Duration) -> ExitStatus {
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => panic!(
                "gateway process did not exit within {limit:?}; stderr:\n{}",
                self.log.lock().unwrap()
            ),
        }
    }
}
