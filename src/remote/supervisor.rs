//! Launching and supervising out-of-process plugins.
//!
//! A `file://` plugin is started, hand-shaken, health-checked and initialised by
//! [`launch`]; [`supervise_process`] then watches it: a crash or three failed health
//! pings mark it `restarting`, its whole process group is killed and reaped, and it is
//! relaunched with exponential backoff (200 ms doubling up to the configured maximum,
//! reset after 30 s of healthy running). While no instance runs, calls fail with
//! `Unavailable` and the instance's fail policy applies. [`supervise_remote`] pings a
//! `grpc://` server and tracks its health (tonic reconnects the channel by itself).
//!
//! Supervision is the same for every contract: it holds a plain [`Channel`] and leaves
//! recognising, starting and pinging the plugin to [`contract`](super::contract).

use super::contract::{self, Contract, Start};
use super::process::{self, Running};
use super::{Shared, dial};
use crate::config::PluginContract;
use crate::plugin::proto::goplugin::grpc_controller_client::GrpcControllerClient;
use crate::plugin::proto::goplugin::grpc_stdio_client::GrpcStdioClient;
use crate::plugin::{HealthState, Manifest, PluginError};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tonic::transport::Channel;

/// Everything needed to (re)start a `file://` plugin.
#[derive(Debug, Clone)]
pub struct Spec {
    pub name: String,
    pub path: PathBuf,
    pub env_allowlist: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub start_timeout: Duration,
    pub ping_interval: Duration,
    pub grace: Duration,
    pub max_backoff: Duration,
    pub sandbox: crate::config::SandboxConfig,
    pub env_allow_names: Vec<String>,
    /// The configured contract; after the first start, the one detected.
    pub contract: PluginContract,
    /// Stage and configuration for the contract's start.
    pub start: Start,
    pub auto_mtls: crate::config::AutoMtls,
}

/// A started, healthy and initialised plugin process.
pub struct Launched {
    pub running: Running,
    pub channel: Channel,
    /// How proxy workers open their own connections to this process.
    pub target: Arc<dial::Target>,
    pub contract: Contract,
    pub manifest: Manifest,
}

/// Starts the process, connects, checks health, streams its stdio and initialises it.
pub async fn launch(spec: &Spec) -> Result<Launched, PluginError> {
    let mut running = process::start(
        &spec.name,
        &spec.path,
        &spec.env_allowlist,
        &spec.env,
        spec.start_timeout,
        &spec.sandbox,
        &spec.env_allow_names,
        &process::Offer::ANY,
        spec.auto_mtls,
    )
    .await
    .map_err(|e| PluginError::Load(crate::error::chain(&e)))?;
    match connect_and_init(spec, &running).await {
        Ok((channel, target, contract, manifest)) => Ok(Launched {
            running,
            channel,
            target: Arc::new(target),
            contract,
            manifest,
        }),
        Err(e) => {
            process::kill_group(running.pgid);
            let _ = running.child.wait().await;
            Err(e)
        }
    }
}

async fn connect_and_init(
    spec: &Spec,
    running: &Running,
) -> Result<(Channel, dial::Target, Contract, Manifest), PluginError> {
    let (channel, target) = dial::to_plugin(
        &spec.name,
        &running.handshake,
        running.identity.as_ref(),
        spec.start_timeout,
    )
    .await
    .map_err(PluginError::Load)?;
    dial::health(&channel, spec.start_timeout)
        .await
        .map_err(PluginError::Load)?;
    crate::task::detach(
        "plugin-stdio",
        stream_stdio(spec.name.clone(), channel.clone()),
    );
    let found = contract::detect(&channel, spec.contract, spec.start_timeout).await?;
    let manifest = found.start(&channel, &spec.start).await?;
    Ok((channel, target, found, manifest))
}

impl Launched {
    /// What the supervisor publishes for this process.
    pub fn running(&self, spec: &Spec) -> (Channel, Arc<dial::Target>, Duration) {
        (
            self.channel.clone(),
            self.target.clone(),
            spec.start_timeout,
        )
    }
}

/// Connects to the `grpc://` plugin server at the checked `addr`, retrying with backoff
/// until it passes its health check (see [`contract::reachable`]) or `timeout` has passed.
pub(super) async fn connect_with_retries(
    addr: std::net::SocketAddr,
    host: &str,
    tls: Option<&crate::config::GrpcTlsConfig>,
    timeout: Duration,
    choice: PluginContract,
) -> Result<Channel, PluginError> {
    let deadline = crate::deadline::after(tokio::time::Instant::now(), timeout);
    let mut backoff = Duration::from_millis(100);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let attempt = async {
            let channel = dial::tcp(addr, host, tls, left.max(Duration::from_millis(100))).await?;
            contract::reachable(&channel, choice, left.max(Duration::from_millis(100))).await?;
            Ok::<_, String>(channel)
        };
        match attempt.await {
            Ok(channel) => return Ok(channel),
            Err(e) if crate::deadline::after(tokio::time::Instant::now(), backoff) >= deadline => {
                return Err(PluginError::Load(format!(
                    "plugin server at {addr} not ready within {timeout:?}: {e}"
                )));
            }
            Err(e) => tracing::debug!(%addr, error = %e, "plugin server not ready; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = crate::deadline::doubled(backoff).min(Duration::from_secs(2));
    }
}

/// Logs what the plugin streams over `plugin.GRPCStdio`, when it serves it.
async fn stream_stdio(name: String, channel: Channel) {
    let mut client = GrpcStdioClient::new(channel);
    let Ok(response) = client.stream_stdio(()).await else {
        return;
    };
    let mut stream = response.into_inner();
    while let Ok(Some(data)) = stream.message().await {
        let channel = if data.channel == 2 {
            "stderr"
        } else {
            "stdout"
        };
        for line in String::from_utf8_lossy(&data.data).lines() {
            tracing::info!(target: "microgateway::plugin_output", plugin = %name, stream = channel, "{line}");
        }
    }
}

/// Asks the plugin to exit, waits up to `grace`, then kills and reaps its process group.
pub async fn stop(mut launched: Launched, grace: Duration) {
    launched.contract.shutdown(&launched.channel, grace).await;
    let mut controller = GrpcControllerClient::new(launched.channel.clone());
    let request = crate::plugin::proto::goplugin::Empty {};
    let _ = tokio::time::timeout(grace, controller.shutdown(request)).await;
    let exited = tokio::time::timeout(grace, launched.running.child.wait()).await;
    // Kill the group in any case: it also removes anything the plugin itself spawned.
    process::kill_group(launched.running.pgid);
    if exited.is_err() {
        let _ = launched.running.child.wait().await;
    }
}

/// Watches a `file://` plugin until `shared.stop` fires; restarts it when it dies.
pub async fn supervise_process(shared: Arc<Shared>, spec: Spec, first: Launched) {
    let manifest = first.manifest.clone();
    let mut launched = first;
    let mut backoff = Duration::from_millis(200);
    loop {
        let started = Instant::now();
        shared.publish(Some(launched.running(&spec)));
        shared.set_health(HealthState::Ready, None, false);
        let reason = tokio::select! {
            _ = shared.stop.cancelled() => {
                shared.publish(None);
                stop(launched, spec.grace).await;
                return;
            }
            reason = watch(&mut launched, &spec) => reason,
        };
        shared.publish(None);
        process::kill_group(launched.running.pgid);
        let _ = launched.running.child.wait().await;
        tracing::warn!(plugin = %spec.name, reason = %reason, "plugin died; restarting");
        shared.set_health(HealthState::Restarting, Some(reason), true);
        if started.elapsed() > Duration::from_secs(30) {
            backoff = Duration::from_millis(200);
        }
        launched = loop {
            tokio::select! {
                _ = shared.stop.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = crate::deadline::doubled(backoff).min(spec.max_backoff);
            match launch(&spec).await {
                Ok(l)
                    if l.manifest.hooks == manifest.hooks
                        && l.manifest.response_body == manifest.response_body =>
                {
                    break l;
                }
                Ok(l) => {
                    let e = "restarted plugin reports a different manifest; keeping it stopped until reload".to_string();
                    stop(l, spec.grace).await;
                    shared.set_health(HealthState::Failed, Some(e), false);
                    return;
                }
                Err(e) => {
                    tracing::warn!(plugin = %spec.name, error = %e, "plugin restart failed");
                    shared.set_health(HealthState::Restarting, Some(e.to_string()), false);
                }
            }
        };
    }
}

/// A ping period a Tokio interval accepts: a zero period panics, and every tick adds the
/// period to the last deadline, so it stays between 1 ms and [`crate::deadline::FAR_FUTURE`].
fn ping_period(interval: Duration) -> Duration {
    crate::deadline::cap(interval).max(Duration::from_millis(1))
}

/// Returns why the process stopped serving: exit, or three failed health checks in a row.
async fn watch(launched: &mut Launched, spec: &Spec) -> String {
    let every = ping_period(spec.ping_interval);
    let mut ticker = tokio::time::interval_at(
        crate::deadline::after(tokio::time::Instant::now(), every),
        every,
    );
    let mut failures = 0;
    loop {
        tokio::select! {
            status = launched.running.child.wait() => {
                return match status {
                    Ok(s) => format!("process exited ({s})"),
                    Err(e) => format!("process wait failed: {e}"),
                };
            }
            _ = ticker.tick() => {
                match dial::health(&launched.channel, spec.ping_interval.min(Duration::from_secs(5))).await {
                    Ok(()) => failures = 0,
                    Err(e) => {
                        failures += 1;
                        if failures >= 3 {
                            return format!("3 failed health checks, last: {e}");
                        }
                    }
                }
            }
        }
    }
}

/// Pings a `grpc://` plugin server and keeps its health current until `shared.stop`.
pub async fn supervise_remote(
    shared: Arc<Shared>,
    running: (Channel, Arc<dial::Target>, Duration),
    contract: Contract,
    interval: Duration,
) {
    let channel = running.0.clone();
    shared.publish(Some(running));
    shared.set_health(HealthState::Ready, None, false);
    let every = ping_period(interval);
    let mut ticker = tokio::time::interval_at(
        crate::deadline::after(tokio::time::Instant::now(), every),
        every,
    );
    let mut nonce = 0u64;
    loop {
        tokio::select! {
            _ = shared.stop.cancelled() => {
                shared.publish(None);
                return;
            }
            _ = ticker.tick() => {
                nonce += 1;
                match contract.ping(&channel, nonce, interval.min(Duration::from_secs(5))).await {
                    Ok(()) => {
                        if shared.health().state != HealthState::Ready {
                            tracing::info!(plugin = %shared.name, "plugin server reachable again");
                            shared.set_health(HealthState::Ready, None, false);
                        }
                    }
                    Err(e) => {
                        if shared.health().state == HealthState::Ready {
                            tracing::warn!(plugin = %shared.name, error = %e, "plugin server unhealthy; reconnecting");
                            shared.set_health(HealthState::Restarting, Some(e), true);
                        } else {
                            shared.set_health(HealthState::Restarting, Some(e), false);
                        }
                    }
                }
            }
        }
    }
}
