//! Shared pieces of the resilience suite: the recording upstream, gateway configuration,
//! and the gateway binary under watch (open file descriptors and child processes
//! compared with a baseline). Traffic and attack clients are in `traffic.rs`.

use crate::common::binary::GatewayProcess;
use crate::common::{GatewayConfig, Respond, TestUpstream};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

pub const ENRICHER: &str = env!("CARGO_BIN_EXE_mg-plugin-header-enricher");
pub const CHAOS: &str = env!("CARGO_BIN_EXE_mg-plugin-chaos");

/// The suite's upstream, whose request log the tests read.
///
/// `/stream?n=N&gap_ms=M` answers N chunks `chunk-i\n`, each after M ms; `/slow?ms=M`
/// answers after M ms; anything else reads the whole body and answers `ok <bytes>`.
pub async fn recorder() -> TestUpstream {
    TestUpstream::builder("recorder")
        .route("/stream", Respond::Chunks)
        .fallback(Respond::BodyLength)
        .start()
        .await
}

/// Gateway configuration for the suite: one catch-all route to `up`, upstream connections
/// released after 300 ms idle (so descriptor counts settle quickly), plugin pings every
/// 300 ms, and `extra` appended (plugins, `[server]` lines must go through `server`).
pub fn config(up: &TestUpstream, server: &[&str], extra: &str) -> GatewayConfig {
    let mut cfg = GatewayConfig::new();
    for line in server {
        cfg = cfg.server(line);
    }
    cfg.upstream_urls("main", &[up.url()], "pool_idle_timeout = \"300ms\"")
        .route("main", "main", "path_prefix = \"/\"")
        .raw("[plugin_runtime]\nstart_timeout = \"5s\"\nping_interval = \"300ms\"\nmax_restart_backoff = \"1s\"\n")
        .raw(extra)
}

/// Open file descriptors of `pid`, as `fd -> target` lines (for failure messages).
pub fn fds(pid: u32) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.flatten()
        .map(|e| {
            let target = std::fs::read_link(e.path()).unwrap_or_default();
            format!(
                "{} -> {}",
                e.file_name().to_string_lossy(),
                target.display()
            )
        })
        .collect()
}

/// Direct children of `pid` (over all its threads).
pub fn children(pid: u32) -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(
                list.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    out
}

pub use crate::common::process::gone;

/// Resident set size of `pid` in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The gateway binary with a resource baseline taken once it has served a request.
pub struct Watched {
    pub gw: GatewayProcess,
    pub pid: u32,
    base_fds: usize,
    base_children: usize,
    seen_children: Mutex<BTreeSet<u32>>,
}

impl Watched {
    /// Starts the binary on `config`, waits for `/readyz`, lets the connections settle
    /// and records open descriptors and child processes.
    pub async fn start(config: &GatewayConfig) -> Watched {
        Self::start_with_env(config, &[]).await
    }

    /// Like [`Watched::start`] with extra environment variables.
    pub async fn start_with_env(config: &GatewayConfig, env: &[(&str, &str)]) -> Watched {
        let gw = GatewayProcess::spawn_with_env(config, env).await;
        let pid = gw.pid();
        let ready = crate::common::get(gw.admin_addr, "/readyz").await;
        assert!(ready.status.is_success(), "not ready: {}", ready.text());
        // Wait until the probe's connection is gone again.
        let mut last = usize::MAX;
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = fds(pid).len();
            if now == last {
                break;
            }
            last = now;
        }
        let kids = children(pid);
        Watched {
            gw,
            pid,
            base_fds: fds(pid).len(),
            base_children: kids.len(),
            seen_children: Mutex::new(kids),
        }
    }

    /// Remembers the current children, so `finish` can check they all ended.
    pub fn note_children(&self) {
        self.seen_children
            .lock()
            .unwrap()
            .extend(children(self.pid));
    }

    /// Asserts that, within 15 s, the gateway is back to its baseline: no more open
    /// descriptors and no more child processes than before the attack, none a zombie.
    pub async fn assert_no_leaks(&self, what: &str) {
        self.note_children();
        let mut last = (Vec::new(), BTreeSet::new());
        // The baseline must hold for five samples in a row (half a second), so a
        // descriptor that is opened a moment later is not missed.
        let mut stable = 0;
        for _ in 0..150 {
            let open = fds(self.pid);
            let kids = children(self.pid);
            let zombies = kids.iter().any(|&k| gone(k));
            if open.len() <= self.base_fds && kids.len() <= self.base_children && !zombies {
                stable += 1;
                if stable == 5 {
                    return;
                }
            } else {
                stable = 0;
            }
            last = (open, kids);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "after {what}: {} descriptors open (baseline {}), children {:?} (baseline {}):\n{}",
            last.0.len(),
            self.base_fds,
            last.1,
            self.base_children,
            last.0.join("\n")
        );
    }

    /// Checks for leaks, stops the binary with SIGTERM, expects exit status 0 and that no
    /// child process it ever had is still running.
    pub async fn finish(self, what: &str) {
        self.assert_no_leaks(what).await;
        let seen = self.seen_children.lock().unwrap().clone();
        self.gw.terminate();
        let status = self.gw.wait(Duration::from_secs(20)).await;
        assert!(status.success(), "gateway exited with {status}");
        for pid in seen {
            assert!(gone(pid), "plugin process {pid} outlived the gateway");
        }
    }
}

/// What came back on one raw connection.
pub struct Exchange {
    /// Everything the gateway sent.
    pub text: String,
    /// Whether it closed the connection within the limit.
    pub closed: bool,
}

impl Exchange {
    /// Status codes of every response in the stream, in order.
    pub fn statuses(&self) -> Vec<u16> {
        self.text
            .match_indices("HTTP/1.1 ")
            .filter_map(|(i, _)| self.text.get(i + 9..i + 12)?.parse().ok())
            .collect()
    }
}

/// Writes `payload` on a new connection and reads until the gateway closes it (at most
/// `limit`).
pub async fn exchange(addr: SocketAddr, payload: &str, limit: Duration) -> Exchange {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(payload.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let closed = tokio::time::timeout(limit, tcp.read_to_end(&mut out))
        .await
        .is_ok();
    Exchange {
        text: String::from_utf8_lossy(&out).into_owned(),
        closed,
    }
}
