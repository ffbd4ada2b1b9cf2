//! The fleet's shared state in Redis (`[cluster]`): rate-limit buckets, LLM budget
//! windows and usage counters that every gateway of a fleet sees.
//!
//! One [`Cluster`] per process holds one multiplexed, reconnecting Redis connection
//! (`redis::aio::ConnectionManager`). Every command runs under `cluster.timeout`; a
//! command that fails or times out marks Redis down, and while it is down no request
//! waits for it: shared limits answer by `on_unavailable` at once. A background task
//! tries Redis again every `retry_interval`, and every `sync_interval` adds the usage
//! counted since the last round ([`settle`]) and reads the shared totals back.
//!
//! Admission never needs a Redis call per request: a gateway takes *leases* (a few
//! tokens of a bucket, a few requests of a window) with one atomic script and spends
//! them locally ([`lease`]). See the README's "Running a fleet" for the consistency
//! model and how far a fleet can overshoot.

pub mod document;
pub mod lease;
mod scripts;
mod sentinel;
pub mod settle;

use crate::config::{ClusterConfig, OnUnavailable};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Everything that can go wrong talking to the cluster's Redis.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The URL or TLS settings were refused by the client.
    #[error("cluster.redis_url {url}: {error}")]
    Setup {
        /// The URL without its password.
        url: String,
        /// What the client said.
        error: redis::RedisError,
    },
    /// The CA file could not be read.
    #[error("cluster.ca_file {path}: {error}")]
    Ca {
        /// The configured path.
        path: std::path::PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// Redis is marked down; it is tried again in the background.
    #[error("redis is unreachable")]
    Down,
    /// A command took longer than `cluster.timeout`.
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis answered with an error, or the connection failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Commands timed out in a row that mark Redis down. One slow answer (a busy machine)
/// only sends its own request to `on_unavailable`; a connection error marks Redis down
/// at once.
const TIMEOUTS_DOWN: u32 = 3;

/// The process's connection to the fleet's Redis.
pub struct Cluster {
    /// The client of the node in use (the master the Sentinels named, with Sentinel).
    client: arc_swap::ArcSwap<redis::Client>,
    conn: arc_swap::ArcSwap<redis::aio::ConnectionManager>,
    manager: redis::aio::ConnectionManagerConfig,
    sentinel: Option<sentinel::Sentinel>,
    url: String,
    prefix: String,
    timeout: Duration,
    on_unavailable: OnUnavailable,
    sync_interval: Duration,
    retry_interval: Duration,
    /// Whether admin API plugin records are the fleet's (`cluster.plugins`).
    plugins: bool,
    up: AtomicBool,
    /// Commands timed out in a row; [`TIMEOUTS_DOWN`] of them mark Redis down.
    timeouts: AtomicU32,
    settle: settle::Settle,
    stop: CancellationToken,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("url", &self.url)
            .field("prefix", &self.prefix)
            .field("up", &self.is_up())
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Connects to Redis (waiting at most `cluster.timeout` for a first answer) and
    /// starts the background task. An unreachable Redis is no error: the gateway starts
    /// degraded and keeps trying. Must run inside a Tokio runtime.
    pub async fn start(config: &ClusterConfig) -> Result<Arc<Cluster>, ClusterError> {
        let url = crate::config::redacted(&config.redis_url);
        let setup = |error| ClusterError::Setup {
            url: url.clone(),
            error,
        };
        let client = match &config.ca_file {
            Some(path) => {
                // rustls needs a process-wide provider; the gateway uses ring.
                let _ = rustls::crypto::ring::default_provider().install_default();
                let root = std::fs::read(path).map_err(|error| ClusterError::Ca {
                    path: path.clone(),
                    error,
                })?;
                let certs = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root),
                };
                redis::Client::build_with_tls(config.redis_url.as_str(), certs).map_err(setup)?
            }
            None => {
                let _ = rustls::crypto::ring::default_provider().install_default();
                redis::Client::open(config.redis_url.as_str()).map_err(setup)?
            }
        };
        let manager = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(1)
            .set_max_delay(config.retry_interval);
        let conn =
            redis::aio::ConnectionManager::new_lazy_with_config(client.clone(), manager.clone())
                .map_err(setup)?;
        let cluster = Arc::new(Cluster {
            client: arc_swap::ArcSwap::from_pointee(client),
            conn: arc_swap::ArcSwap::from_pointee(conn),
            manager,
            sentinel: sentinel::Sentinel::new(config)?,
            url,
            prefix: config.key_prefix.clone(),
            timeout: config.timeout,
            on_unavailable: config.on_unavailable,
            sync_interval: config.sync_interval,
            retry_interval: config.retry_interval,
            plugins: config.plugins,
            up: AtomicBool::new(false),
            timeouts: AtomicU32::new(0),
            settle: settle::Settle::default(),
            stop: CancellationToken::new(),
        });
        // The first answer marks Redis up; without one the gateway starts degraded.
        let _ = cluster.probe().await;
        if !cluster.is_up() {
            tracing::warn!(
                redis = %cluster.url,
                on_unavailable = cluster.on_unavailable.as_str(),
                "cluster: redis is unreachable at start; shared limits follow on_unavailable until it answers"
            );
            crate::metrics::cluster_up(false);
        }
        crate::task::detach("cluster-sync", settle::run(Arc::downgrade(&cluster)));
        Ok(cluster)
    }

    /// True while Redis answers.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// What shared limits do while Redis is down.
    pub fn on_unavailable(&self) -> OnUnavailable {
        self.on_unavailable
    }

    /// The longest a lease of rate-limit tokens is kept, and the settlement period.
    pub fn sync_interval(&self) -> Duration {
        self.sync_interval
    }

    /// True when admin API plugin records are shared by the fleet (`cluster.plugins`).
    pub fn shares_plugins(&self) -> bool {
        self.plugins
    }

    /// The key `name` under this fleet's prefix.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The usage counters waiting for the next settlement.
    pub fn settle(&self) -> &settle::Settle {
        &self.settle
    }

    /// Adds every queued usage delta now (at shutdown), when Redis answers.
    pub async fn flush(&self) {
        if self.is_up() {
            self.settle.round(self).await;
        }
    }

    /// Runs one command of `op` under the timeout, with its metrics; a failure marks
    /// Redis down. Fails at once with [`ClusterError::Down`] while Redis is down.
    pub async fn run<T, F>(
        &self,
        op: &'static str,
        command: impl FnOnce(redis::aio::ConnectionManager) -> F,
    ) -> Result<T, ClusterError>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        if !self.is_up() {
            return Err(ClusterError::Down);
        }
        self.run_anyway(op, command).await
    }

    async fn run_anyway<T, F>(
        &self,
        op: &'static str,
        command: impl FnOnce(redis::aio::ConnectionManager) -> F,
    ) -> Result<T, ClusterError>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        let start = tokio::time::Instant::now();
        let conn = redis::aio::ConnectionManager::clone(&self.conn.load());
        let result = tokio::time::timeout(self.timeout, command(conn)).await;
        let seconds = start.elapsed().as_secs_f64();
        match result {
            Ok(Ok(value)) => {
                crate::metrics::cluster_command(op, "ok", seconds);
                self.timeouts.store(0, Ordering::Relaxed);
                self.mark(true, None);
                Ok(value)
            }
            Ok(Err(e)) => {
                crate::metrics::cluster_command(op, "error", seconds);
                // A script error is Redis answering: it stays up.
                if e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_timeout()
                {
                    self.mark(false, Some(&e.to_string()));
                }
                Err(ClusterError::Redis(e))
            }
            Err(_) => {
                crate::metrics::cluster_command(op, "timeout", seconds);
                if self.timeouts.fetch_add(1, Ordering::Relaxed) + 1 >= TIMEOUTS_DOWN {
                    self.mark(false, Some("timed out"));
                }
                Err(ClusterError::Timeout(self.timeout))
            }
        }
    }

    /// One `PING`, whether or not Redis is marked down; with Sentinel, the master is
    /// asked for first and the connection moves to it when it changed.
    async fn probe(&self) -> Result<(), ClusterError> {
        if let Some(sentinel) = &self.sentinel {
            let master = sentinel.master(self.timeout).await?;
            let moved = master.get_connection_info().addr()
                != self.client.load().get_connection_info().addr();
            if moved {
                let conn = redis::aio::ConnectionManager::new_lazy_with_config(
                    master.clone(),
                    self.manager.clone(),
                )?;
                tracing::info!(master = %master.get_connection_info().addr(), "cluster: the sentinels name a new master");
                self.conn.store(Arc::new(conn));
                self.client.store(Arc::new(master));
            }
        }
        self.run_anyway("ping", |mut c| async move {
            redis::cmd("PING").query_async::<()>(&mut c).await
        })
        .await
    }

    /// Records whether Redis answered, logging each change once.
    fn mark(&self, up: bool, why: Option<&str>) {
        if self.up.swap(up, Ordering::Relaxed) != up {
            crate::metrics::cluster_up(up);
            if up {
                tracing::info!(redis = %self.url, "cluster: redis answers; shared limits are shared again");
            } else {
                tracing::warn!(
                    redis = %self.url,
                    error = why.unwrap_or("unknown"),
                    on_unavailable = self.on_unavailable.as_str(),
                    "cluster: redis is unreachable; shared limits follow on_unavailable"
                );
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
