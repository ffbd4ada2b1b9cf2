//! Out-of-process plugins: `file://` (a go-plugin-compatible subprocess) and
//! `grpc://`/`grpcs://` (a running plugin server), both behind the same
//! [`Plugin`](crate::plugin::Plugin) trait as the built-ins.
//!
//! - [`security`]: path rules, allowlist and the SSRF guard (`addr`, `ranges`).
//! - `handshake`, `process`, `orphan`, `exec`, `sandbox`: checking, sandboxing, starting
//!   and killing plugin processes.
//! - `dial`: gRPC channels over unix sockets, checked TCP addresses, TLS, and the
//!   gRPC health check; a `dial::Target` opens more connections to the same plugin.
//! - `lanes`: one connection per proxy worker per plugin, dialled lazily on the worker's
//!   own runtime, so hook calls stay on the worker's thread.
//! - `supervisor`: connecting with retries, restarts, health pings and graceful stop;
//!   it builds on `dial`, never the reverse. It holds a plain channel, whatever the
//!   plugin's contract.
//! - `contract`: which contract a plugin speaks (`contract = "auto"` detects it), and
//!   each contract's start, ping and stop.
//! - `native` + `convert`: the hooks of microgateway's own contract (native types ↔
//!   protobuf); `tyk`: the hooks of Tyk AI Studio's `plugin.PluginService`.

mod addr;
mod authcache;
pub(crate) mod automtls;
mod contract;
mod convert;
mod dial;
pub mod exec;
mod handshake;
mod lanes;
mod native;
mod orphan;
mod process;
mod ranges;
pub mod sandbox;
pub mod security;
mod supervisor;
mod tyk;

pub use crate::config::DEFAULT_ENV_ALLOWLIST;
pub use process::{COOKIE_KEY, COOKIE_VALUE};

use crate::config::{PluginConfig, PluginRuntimeConfig};
use crate::plugin::{
    BodyMutations, ChunkAction, ChunkView, CompletedExchange, Decision, HealthState, HookFuture,
    HookType, Manifest, MessageAction, MessageView, Plugin, PluginError, PluginHealth, RequestView,
    ResponseMutations, ResponseView,
};
use arc_swap::ArcSwapOption;
use bytes::Bytes;
use contract::{Contract, Start};
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// State shared between a [`RemotePlugin`] and its supervisor task.
pub(crate) struct Shared {
    name: String,
    /// The running instance, published by the supervisor; `None` while it is down.
    live: ArcSwapOption<lanes::Live>,
    generation: std::sync::atomic::AtomicU64,
    health: Mutex<PluginHealth>,
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Shared {
    fn new(name: &str, contract: Contract) -> Arc<Shared> {
        Arc::new(Shared {
            name: name.to_string(),
            live: ArcSwapOption::empty(),
            generation: std::sync::atomic::AtomicU64::new(0),
            health: Mutex::new(PluginHealth {
                state: HealthState::Loading,
                last_error: None,
                restarts: 0,
                contract: Some(contract.as_str()),
                transport: None,
            }),
            stop: CancellationToken::new(),
            task: Mutex::new(None),
        })
    }

    /// Publishes the running instance (`None` while it is down). Publishing the same
    /// target again keeps the generation, so workers keep their connections.
    fn publish(&self, running: Option<(Channel, Arc<dial::Target>, std::time::Duration)>) {
        use std::sync::atomic::Ordering;
        let Some((channel, target, dial_timeout)) = running else {
            self.live.store(None);
            return;
        };
        if let Ok(mut health) = self.health.lock() {
            health.transport = Some(target.transport());
        }
        let current = self.live.load();
        let generation = match current.as_deref() {
            Some(live) if Arc::ptr_eq(&live.target, &target) => live.generation,
            _ => self.generation.fetch_add(1, Ordering::Relaxed) + 1,
        };
        self.live.store(Some(Arc::new(lanes::Live {
            channel,
            target,
            dial_timeout,
            generation,
        })));
    }

    fn health(&self) -> PluginHealth {
        self.health
            .lock()
            .map(|h| h.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn set_health(&self, state: HealthState, error: Option<String>, restarted: bool) {
        let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        h.state = state;
        if error.is_some() {
            h.last_error = error;
        }
        if restarted {
            h.restarts += 1;
        }
    }
}

/// A plugin served over gRPC by a subprocess or a remote server, in either contract.
pub struct RemotePlugin {
    manifest: Manifest,
    contract: Contract,
    shared: Arc<Shared>,
    auth_cache: Arc<authcache::AuthCache>,
}

fn start_of(config: &PluginConfig, runtime: &PluginRuntimeConfig) -> Start {
    Start {
        name: config.name.clone(),
        hook_type: config.hook_type,
        config: config.config.clone(),
        timeout: runtime.start_timeout,
    }
}

impl RemotePlugin {
    /// Starts (`file://`) or connects to (`grpc://`, `grpcs://`) the plugin, checks its
    /// health, reads its manifest and initialises it; then starts supervision.
    pub async fn load(
        config: &PluginConfig,
        runtime: &PluginRuntimeConfig,
    ) -> Result<RemotePlugin, PluginError> {
        let policy = security::Policy::new(
            &runtime.command_allowlist,
            runtime.allow_internal_network_access,
        )
        .map_err(PluginError::Refused)?
        .block_internal(runtime.block_internal_urls);
        if config.command.starts_with("file://") {
            let path = policy
                .check_file(&config.command)
                .map_err(security::SecurityError::into_plugin_error)?;
            return Self::launch_file(config, path, runtime).await;
        }
        let target = security::check_grpc_target(&policy, &config.command)
            .await
            .map_err(security::SecurityError::into_plugin_error)?;
        let tls = target.tls.then(|| config.tls.clone().unwrap_or_default());
        let channel = supervisor::connect_with_retries(
            target.addr,
            &target.host,
            tls.as_ref(),
            runtime.start_timeout,
            config.contract,
        )
        .await?;
        let found = contract::detect(&channel, config.contract, runtime.start_timeout).await?;
        let manifest = found.start(&channel, &start_of(config, runtime)).await?;
        tracing::info!(plugin = %config.name, contract = found.as_str(), "plugin server connected");
        let shared = Shared::new(&config.name, found);
        let dial = Arc::new(dial::Target::Tcp {
            addr: target.addr,
            host: target.host.clone(),
            tls,
        });
        let running = (channel.clone(), dial, runtime.start_timeout);
        shared.publish(Some(running.clone()));
        shared.set_health(HealthState::Ready, None, false);
        let task = crate::task::spawn(supervisor::supervise_remote(
            shared.clone(),
            running,
            found,
            runtime.ping_interval,
        ));
        *shared.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        Ok(RemotePlugin::new(manifest, found, shared))
    }

    /// Starts an executable already checked (a `file://` path that passed the command
    /// rules, or a digest-verified binary from the OCI cache) and supervises it.
    pub async fn launch_file(
        config: &PluginConfig,
        path: std::path::PathBuf,
        runtime: &PluginRuntimeConfig,
    ) -> Result<RemotePlugin, PluginError> {
        let mut spec = supervisor::Spec {
            name: config.name.clone(),
            path,
            env_allowlist: runtime.env_allowlist.clone(),
            env: config.env.clone(),
            start_timeout: runtime.start_timeout,
            ping_interval: runtime.ping_interval,
            grace: runtime.shutdown_grace,
            max_backoff: runtime.max_restart_backoff,
            sandbox: runtime.sandbox.clone(),
            env_allow_names: runtime.env_allow_names.clone(),
            contract: config.contract,
            start: start_of(config, runtime),
            auto_mtls: runtime.auto_mtls,
        };
        let launched = supervisor::launch(&spec).await?;
        let found = launched.contract;
        let manifest = launched.manifest.clone();
        tracing::info!(plugin = %config.name, contract = found.as_str(), "plugin process started");
        // A restarted process must speak what the first one did.
        spec.contract = found.choice();
        let shared = Shared::new(&config.name, found);
        // Ready (and callable) as soon as `load` returns, not when the task first runs.
        shared.publish(Some(launched.running(&spec)));
        shared.set_health(HealthState::Ready, None, false);
        let task = crate::task::spawn(supervisor::supervise_process(
            shared.clone(),
            spec,
            launched,
        ));
        *shared.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        Ok(RemotePlugin::new(manifest, found, shared))
    }

    fn new(manifest: Manifest, contract: Contract, shared: Arc<Shared>) -> RemotePlugin {
        RemotePlugin {
            manifest,
            contract,
            shared,
            auth_cache: Arc::new(authcache::AuthCache::new(10_000)),
        }
    }

    /// The channel to the running plugin for this thread (see [`lanes`]), or why there
    /// is none.
    async fn channel(&self) -> Result<Channel, PluginError> {
        match self.shared.live.load_full() {
            Some(live) => lanes::channel(&self.shared, live).await,
            None => {
                let h = self.shared.health();
                let why = h.last_error.unwrap_or_else(|| format!("{:?}", h.state));
                Err(PluginError::Unavailable(format!(
                    "plugin {} is not running ({why})",
                    self.shared.name
                )))
            }
        }
    }
}

impl Plugin for RemotePlugin {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn on_request<'a>(
        &'a self,
        stage: HookType,
        request: &'a RequestView<'a>,
    ) -> HookFuture<'a, Decision> {
        match self.contract {
            Contract::Microgateway => native::on_request(self, stage, request),
            Contract::Tyk => tyk::on_request(self, stage, request),
        }
    }

    fn on_response_headers<'a>(
        &'a self,
        response: &'a ResponseView<'a>,
    ) -> HookFuture<'a, ResponseMutations> {
        match self.contract {
            Contract::Microgateway => native::on_response_headers(self, response),
            Contract::Tyk => tyk::on_response_headers(self, response),
        }
    }

    fn on_response_body<'a>(
        &'a self,
        response: &'a ResponseView<'a>,
        body: &'a Bytes,
    ) -> HookFuture<'a, BodyMutations> {
        match self.contract {
            Contract::Microgateway => native::on_response_body(self, response, body),
            Contract::Tyk => tyk::on_response_body(self, response, body),
        }
    }

    fn on_response_chunk<'a>(&'a self, chunk: &'a ChunkView<'a>) -> HookFuture<'a, ChunkAction> {
        match self.contract {
            Contract::Microgateway => native::on_response_chunk(self, chunk),
            // Tyk's contract has no per-chunk hook; its manifest never lists one.
            Contract::Tyk => HookFuture::ok(ChunkAction::Pass),
        }
    }

    fn on_stream_complete<'a>(&'a self, done: &'a CompletedExchange) -> HookFuture<'a, ()> {
        match self.contract {
            Contract::Microgateway => native::on_stream_complete(self, done),
            Contract::Tyk => tyk::on_stream_complete(self, done),
        }
    }

    fn collect<'a>(&'a self, record: &'a CompletedExchange) -> HookFuture<'a, ()> {
        match self.contract {
            Contract::Microgateway => native::collect(self, record),
            Contract::Tyk => tyk::collect(self, record),
        }
    }

    fn on_websocket_message<'a>(
        &'a self,
        message: &'a MessageView<'a>,
    ) -> HookFuture<'a, MessageAction> {
        match self.contract {
            Contract::Microgateway => native::on_websocket_message(self, message),
            // Tyk's contract has no message hook; its manifest never lists one.
            Contract::Tyk => HookFuture::ok(MessageAction::Pass),
        }
    }

    fn health(&self) -> PluginHealth {
        self.shared.health()
    }

    fn shutdown(&self) -> HookFuture<'_, ()> {
        self.shared.stop.cancel();
        let task = self
            .shared
            .task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        HookFuture::pending(async move {
            if let Some(task) = task {
                let _ = task.await;
            }
            Ok(())
        })
    }
}

impl Drop for RemotePlugin {
    fn drop(&mut self) {
        // A set dropped without an explicit shutdown still stops its supervisor, which
        // kills the process group.
        self.shared.stop.cancel();
    }
}
