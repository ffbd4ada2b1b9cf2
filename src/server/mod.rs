//! The gateway server: binds the proxy and admin listeners, accepts connections under a
//! connection cap, and shuts down gracefully.
//!
//! Shutdown has two phases. The graceful phase stops accepting, asks every connection to
//! finish its in-flight requests (HTTP/1 closes after the current response, HTTP/2 sends
//! GOAWAY) and waits up to `server.shutdown_timeout`. The hard phase then drops whatever
//! is left. `/readyz` answers 503 from the moment every accept loop has closed its
//! listener.

mod activity;
mod conn;
mod tls;
mod workers;

use crate::admin;
use crate::config::Config;
use crate::loader::Registry;
use crate::proxy::{Proxy, ProxyBuildError};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Errors starting the gateway.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr} ({what}): {error}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// Configured address.
        addr: SocketAddr,
        /// OS error, shown in the message (and so not also returned as `source`).
        error: std::io::Error,
    },
    /// TLS material is unusable.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// The admin API cannot be set up safely.
    #[error("admin: {0}")]
    Admin(String),
    /// A proxy worker thread could not be started.
    #[error("cannot start a proxy worker: {0}")]
    Worker(std::io::Error),
    /// Routes or upstreams could not be built.
    #[error(transparent)]
    Proxy(#[from] ProxyBuildError),
}

/// A started gateway; dropping it does not stop it, call [`RunningGateway::shutdown`].
pub struct RunningGateway {
    /// Bound address of the proxy listener (useful with port 0).
    pub proxy_addr: SocketAddr,
    /// Bound address of the admin listener.
    pub admin_addr: SocketAddr,
    proxy: Arc<Proxy>,
    manager: Arc<crate::admin::manager::PluginManager>,
    graceful: CancellationToken,
    task: JoinHandle<()>,
}

impl RunningGateway {
    /// The proxy, for plugin reloads and inspection.
    pub fn proxy(&self) -> &Arc<Proxy> {
        &self.proxy
    }

    /// The plugin manager (API, reloads).
    pub fn manager(&self) -> &Arc<crate::admin::manager::PluginManager> {
        &self.manager
    }

    /// Starts graceful shutdown; returns immediately.
    pub fn shutdown(&self) {
        self.graceful.cancel();
    }

    /// Waits until the gateway has fully stopped.
    pub async fn wait(self) {
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "gateway task ended abnormally");
        }
    }
}

/// Says where the admin token came from, never its value.
fn log_token_source(source: &crate::admin::auth::TokenSource) {
    use crate::admin::auth::TokenSource;
    match source {
        TokenSource::File(path) => {
            tracing::info!(path = %path.display(), "admin API token from admin.token_file");
        }
        TokenSource::Environment => {
            tracing::info!("admin API token from MICROGATEWAY_ADMIN_TOKEN");
        }
        TokenSource::Generated {
            path,
            created: true,
        } => tracing::warn!(
            path = %path.display(),
            "no admin token configured: generated one; send it as Authorization: Bearer $(cat {})",
            path.display()
        ),
        TokenSource::Generated {
            path,
            created: false,
        } => {
            tracing::info!(path = %path.display(), "admin API token from the generated token file");
        }
    }
}

/// Loads everything `start` would load from files (TLS material, CA bundles) without
/// binding or starting anything; `microgateway check` runs this.
pub fn preflight(
    config: &Config,
    resolved: &crate::config::Resolved,
) -> Result<(), crate::config::ConfigError> {
    use crate::config::ConfigError;
    if let Some(t) = &config.server.tls {
        tls::acceptor(t).map_err(|e| ConfigError::invalid("server.tls", e.to_string()))?;
    }
    for (i, (upstream, targets)) in config.upstreams.iter().zip(&resolved.targets).enumerate() {
        if let Err(e) = crate::upstream::Upstream::with_targets(upstream, targets, 0) {
            let key = match (&e, &upstream.ca_file) {
                (crate::upstream::UpstreamError::Tls { .. }, Some(_)) => {
                    format!("upstreams[{i}].ca_file")
                }
                _ => format!("upstreams[{i}]"),
            };
            return Err(ConfigError::invalid(key, e.to_string()));
        }
    }
    Ok(())
}

/// Binds both listeners and starts serving, with the built-in plugin registry.
pub async fn start(config: Config) -> Result<RunningGateway, ServerError> {
    start_with(config, Registry::with_builtins()).await
}

/// Like [`start`] with a custom plugin registry (extra in-process plugins).
pub async fn start_with(config: Config, registry: Registry) -> Result<RunningGateway, ServerError> {
    start_full(config, registry, None).await
}

/// Starts with a registry and the path of the configuration file (watched for plugin
/// changes when `admin.watch_config` is set, and re-read on SIGHUP).
pub async fn start_full(
    config: Config,
    registry: Registry,
    config_path: Option<std::path::PathBuf>,
) -> Result<RunningGateway, ServerError> {
    let (token, source) =
        crate::admin::auth::AdminToken::resolve(&config.admin).map_err(ServerError::Admin)?;
    log_token_source(&source);
    // Plugins persisted through the API join the configuration file's plugins.
    let persisted = crate::admin::records::load_state(&crate::admin::records::state_path(
        &config.admin.data_dir,
    ))
    .map_err(ServerError::Admin)?;
    let mut initial = config.clone();
    initial.plugins.extend(
        persisted
            .iter()
            .map(crate::admin::records::PluginRecord::to_config),
    );
    let resolved = initial.validate().map_err(|e| {
        ServerError::Admin(format!(
            "persisted plugins do not fit the configuration: {e}"
        ))
    })?;
    let metrics = crate::metrics::install();
    crate::metrics::spawn_upkeep();
    // A plugin created through the API that cannot load must not keep the API down.
    let persisted_names: Vec<String> = persisted.iter().map(|r| r.name.clone()).collect();
    let proxy =
        Arc::new(Proxy::build_tolerating(&initial, &resolved, registry, &persisted_names).await?);
    let manager = Arc::new(
        crate::admin::manager::PluginManager::new(
            proxy.clone(),
            config.clone(),
            config_path.clone(),
        )
        .map_err(ServerError::Admin)?,
    );
    let tls = config.server.tls.as_ref().map(tls::acceptor).transpose()?;
    let listener = bind("proxy", config.server.listen).await?;
    let admin_listener = bind("admin", config.admin.listen).await?;
    let proxy_addr = local_addr("proxy", &listener, config.server.listen)?;
    let admin_addr = local_addr("admin", &admin_listener, config.admin.listen)?;

    let readiness = Arc::new(admin::Readiness::default());
    let graceful = CancellationToken::new();
    let hard = CancellationToken::new();
    let admin_stop = CancellationToken::new();
    let admin = Arc::new(admin::Admin {
        readiness: readiness.clone(),
        metrics,
        token,
        guard: admin::guard::Guard::new(&config.admin.allowed_hosts, &config.admin.allowed_origins),
        manager: manager.clone(),
    });
    let admin_task = crate::task::spawn(admin::serve(admin_listener, admin, admin_stop.clone()));
    // With `cluster.plugins`, API plugin records follow the fleet's.
    crate::task::detach(
        "fleet-plugins",
        admin::triggers::watch_fleet(manager.clone(), admin_stop.clone()),
    );
    if let Some(path) = config_path.filter(|_| config.admin.watch_config) {
        admin::triggers::watch_config(manager.clone(), path, admin_stop.clone());
    }
    // The health ticker adds its period to the current time on every tick, and a zero
    // period panics: keep it between 1 ms and a year even for a hand-built `Config`.
    admin::triggers::watch_health(
        manager.clone(),
        crate::deadline::cap(config.admin.health_check_interval).max(Duration::from_millis(1)),
        admin_stop.clone(),
    );
    let shared = Arc::new(conn::ConnShared::new(
        &config,
        proxy.clone(),
        tls,
        graceful.clone(),
        hard.clone(),
    ));
    tracing::info!(%proxy_addr, %admin_addr, routes = config.routes.len(), "microgateway listening");

    // Worker runtimes register their own clones of the socket.
    let listener = listener.into_std().map_err(ServerError::Worker)?;
    let count = crate::worker::count(config.server.thread_per_core, config.server.workers);
    let workers = Arc::new(workers::WorkerShared {
        conn: shared.clone(),
        // Tokio panics on more permits than `Semaphore::MAX_PERMITS`.
        limit: Arc::new(Semaphore::new(
            config.server.max_connections.min(Semaphore::MAX_PERMITS),
        )),
        stop: graceful.clone(),
        hard,
        grace: config.server.shutdown_timeout,
    });
    let done = if count > 0 {
        let done = workers::spawn(&listener, count, &workers)?;
        drop(listener);
        done
    } else {
        vec![workers::spawn_shared(listener, &workers)?]
    };
    let stop = graceful.clone();
    let grace = config.server.shutdown_timeout;
    let task = crate::task::spawn(async move {
        stop.cancelled().await;
        // Upgraded connections get close frames now and the same grace as requests.
        let upgrades = shared.proxy().clone();
        let upgrades = crate::task::spawn(async move {
            if !upgrades.upgrades().shutdown(grace).await {
                tracing::warn!(
                    open = upgrades.upgrades().open(),
                    "upgraded connections still open after the shutdown timeout; dropping them"
                );
            }
        });
        // Readiness turns to draining once no listener accepts any more, so a client
        // that sees 503 on /readyz also finds the proxy port closed.
        let mut drained = Vec::with_capacity(done.len());
        for worker in done {
            // An error means the loop ended without reporting; it is gone either way.
            let _ = worker.closed.await;
            drained.push(worker.done);
        }
        readiness.drain();
        for worker in drained {
            let _ = worker.await;
        }
        let _ = upgrades.await;
        if !shared
            .proxy()
            .flush_collectors(Duration::from_secs(5))
            .await
        {
            tracing::warn!(
                "data collection queue not empty at shutdown; remaining records dropped"
            );
        }
        // Usage metered since the last settlement goes to the fleet's counters.
        if let Some(cluster) = shared.proxy().registry().cluster() {
            cluster.flush().await;
        }
        // Plugin processes are stopped (Shutdown, then the process group is killed and reaped).
        shared.proxy().plugins().shutdown().await;
        admin_stop.cancel();
        if let Err(e) = admin_task.await {
            tracing::warn!(error = %e, "admin listener task failed");
        }
        tracing::info!("microgateway stopped");
    });
    Ok(RunningGateway {
        proxy_addr,
        admin_addr,
        proxy,
        manager,
        graceful,
        task,
    })
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|error| ServerError::Bind { what, addr, error })
}

fn local_addr(
    what: &'static str,
    listener: &TcpListener,
    addr: SocketAddr,
) -> Result<SocketAddr, ServerError> {
    listener
        .local_addr()
        .map_err(|error| ServerError::Bind { what, addr, error })
}

/// Accepts connections until `stop` fires, holding one semaphore permit per connection.
async fn accept_loop(
    listener: TcpListener,
    shared: &Arc<conn::ConnShared>,
    limit: &Arc<Semaphore>,
    tracker: &TaskTracker,
    stop: &CancellationToken,
) {
    loop {
        let permit = tokio::select! {
            _ = stop.cancelled() => break,
            permit = limit.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, remote)) => {
                tracker.spawn(conn::serve(stream, remote, shared.clone(), permit));
            }
            Err(e) => {
                // Typically EMFILE/ENFILE: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    tracing::info!("stopped accepting connections; draining");
}

/// Waits for connections to finish, then forces the remainder closed after `grace`.
/// Upgraded connections run on the runtime of the connection they came from, so it
/// also waits (within the same `grace`) for those to end.
async fn drain(
    tracker: &TaskTracker,
    hard: &CancellationToken,
    grace: Duration,
    upgrades: &crate::upgrade::Upgrades,
) {
    let started = tokio::time::Instant::now();
    tracker.close();
    let upgraded = async {
        tracker.wait().await;
        let left = grace.saturating_sub(started.elapsed());
        let _ = tokio::time::timeout(left, upgrades.wait()).await;
    };
    if tokio::time::timeout(grace, upgraded).await.is_err() {
        tracing::warn!(
            remaining = tracker.len(),
            "shutdown timeout reached; closing remaining connections"
        );
        hard.cancel();
        tracker.wait().await;
    }
}
