//! Out-of-process plugins: `file://` (a go-plugin-compatible subprocess) and
//! `grpc://`/`grpcs://` (a running plugin server), both behind the same
//! [`Plugin`](crate::plugin::Plugin) trait as the built-ins.
//!
//! - [`security`]: path rules, allowlist and the SSRF guard (`addr`, `ranges`).
//! - `handshake`, `process`, `orphan`, `exec`, `sandbox`: checking, sandboxing, starting
//!   and killing plugin processes.
//! - `dial`: gRPC channels over unix sockets, checked TCP addresses, TLS, and the
//!   gRPC health check.
//! - `supervisor`: connecting with retries, restarts, health pings and graceful stop;
//!   it builds on `dial`, never the reverse.
//! - `convert`: native types ↔ protobuf.

mod addr;
mod authcache;
mod convert;
mod dial;
pub mod exec;
mod handshake;
mod orphan;
mod process;
mod ranges;
pub mod sandbox;
pub mod security;
mod supervisor;

pub use crate::config::DEFAULT_ENV_ALLOWLIST;
pub use process::{COOKIE_KEY, COOKIE_VALUE};

use crate::config::{PluginConfig, PluginRuntimeConfig};
use crate::plugin::proto::plugin_client::PluginClient;
use crate::plugin::{
    BodyMutations, ChunkAction, ChunkView, CompletedExchange, Decision, HealthState, HookFuture,
    HookType, Manifest, Plugin, PluginError, PluginHealth, RequestView, ResponseMutations,
    ResponseView,
};
use arc_swap::ArcSwapOption;
use bytes::Bytes;
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub(crate) type Client = PluginClient<tonic::transport::Channel>;

/// State shared between a [`RemotePlugin`] and its supervisor task.
pub(crate) struct Shared {
    name: String,
    client: ArcSwapOption<Client>,
    health: Mutex<PluginHealth>,
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Shared {
    fn new(name: &str) -> Arc<Shared> {
        Arc::new(Shared {
            name: name.to_string(),
            client: ArcSwapOption::empty(),
            health: Mutex::new(PluginHealth {
                state: HealthState::Loading,
                last_error: None,
                restarts: 0,
            }),
            stop: CancellationToken::new(),
            task: Mutex::new(None),
        })
    }

    fn publish(&self, client: Option<Client>) {
        self.client.store(client.map(Arc::new));
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

/// A plugin served over gRPC by a subprocess or a remote server.
pub struct RemotePlugin {
    manifest: Manifest,
    shared: Arc<Shared>,
    auth_cache: Arc<authcache::AuthCache>,
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
        let config_json = if config.config.is_null() {
            "{}".to_string()
        } else {
            config.config.to_string()
        };
        let shared = Shared::new(&config.name);
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
        let mut client = supervisor::connect_with_retries(
            target.addr,
            &target.host,
            tls.as_ref(),
            runtime.start_timeout,
        )
        .await?;
        let manifest = supervisor::manifest(&mut client, runtime.start_timeout).await?;
        supervisor::initialize(
            &mut client,
            &config.name,
            &config_json,
            runtime.start_timeout,
        )
        .await?;
        shared.publish(Some(client.clone()));
        shared.set_health(HealthState::Ready, None, false);
        let task = crate::task::spawn(supervisor::supervise_remote(
            shared.clone(),
            client,
            runtime.ping_interval,
        ));
        *shared.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        Ok(RemotePlugin::new(manifest, shared))
    }

    /// Starts an executable already checked (a `file://` path that passed the command
    /// rules, or a digest-verified binary from the OCI cache) and supervises it.
    pub async fn launch_file(
        config: &PluginConfig,
        path: std::path::PathBuf,
        runtime: &PluginRuntimeConfig,
    ) -> Result<RemotePlugin, PluginError> {
        let config_json = if config.config.is_null() {
            "{}".to_string()
        } else {
            config.config.to_string()
        };
        let shared = Shared::new(&config.name);
        let spec = supervisor::Spec {
            name: config.name.clone(),
            path,
            env_allowlist: runtime.env_allowlist.clone(),
            env: config.env.clone(),
            start_timeout: runtime.start_timeout,
            ping_interval: runtime.ping_interval,
            grace: runtime.shutdown_grace,
            max_backoff: runtime.max_restart_backoff,
            config_json,
            sandbox: runtime.sandbox.clone(),
            env_allow_names: runtime.env_allow_names.clone(),
        };
        let mut launched = supervisor::launch(&spec).await?;
        let manifest = match supervisor::manifest(&mut launched.client, spec.start_timeout).await {
            Ok(m) => m,
            Err(e) => {
                supervisor::stop(launched, spec.grace).await;
                return Err(e);
            }
        };
        // Ready (and callable) as soon as `load` returns, not when the task first runs.
        shared.publish(Some(launched.client.clone()));
        shared.set_health(HealthState::Ready, None, false);
        let task = crate::task::spawn(supervisor::supervise_process(
            shared.clone(),
            spec,
            launched,
            manifest.clone(),
        ));
        *shared.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        Ok(RemotePlugin::new(manifest, shared))
    }

    fn new(manifest: Manifest, shared: Arc<Shared>) -> RemotePlugin {
        RemotePlugin {
            manifest,
            shared,
            auth_cache: Arc::new(authcache::AuthCache::new(10_000)),
        }
    }

    fn client(&self) -> Result<Client, PluginError> {
        match self.shared.client.load_full() {
            Some(c) => Ok((*c).clone()),
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
        let cache_key = (stage == HookType::Auth)
            .then(|| authcache::AuthCache::key(request))
            .flatten();
        if let Some(auth) = cache_key.as_ref().and_then(|k| self.auth_cache.get(k)) {
            return HookFuture::ok(Decision::Continue(crate::plugin::Mutations {
                auth: Some(auth),
                ..Default::default()
            }));
        }
        let mut client = match self.client() {
            Ok(c) => c,
            Err(e) => return HookFuture::err(e),
        };
        let message = convert::request_to_pb(request);
        let cache = self.auth_cache.clone();
        HookFuture::pending(async move {
            let response = match stage {
                HookType::PreAuth => client.pre_auth(message).await,
                HookType::Auth => client.auth(message).await,
                _ => client.post_auth(message).await,
            };
            let decision =
                convert::decision_from_pb(response.map_err(convert::status_error)?.into_inner())?;
            if let (Some(key), Decision::Continue(m)) = (cache_key, &decision)
                && let Some(auth) = &m.auth
            {
                cache.put(key, auth);
            }
            Ok(decision)
        })
    }

    fn on_response_headers<'a>(
        &'a self,
        response: &'a ResponseView<'a>,
    ) -> HookFuture<'a, ResponseMutations> {
        let mut client = match self.client() {
            Ok(c) => c,
            Err(e) => return HookFuture::err(e),
        };
        let message = convert::response_headers_to_pb(response);
        HookFuture::pending(async move {
            let r = client
                .on_response_headers(message)
                .await
                .map_err(convert::status_error)?;
            convert::response_mutations_from_pb(r.into_inner())
        })
    }

    fn on_response_body<'a>(
        &'a self,
        response: &'a ResponseView<'a>,
        body: &'a Bytes,
    ) -> HookFuture<'a, BodyMutations> {
        let mut client = match self.client() {
            Ok(c) => c,
            Err(e) => return HookFuture::err(e),
        };
        let message = convert::response_body_to_pb(response, body);
        HookFuture::pending(async move {
            let r = client
                .on_response_body(message)
                .await
                .map_err(convert::status_error)?;
            convert::body_mutations_from_pb(r.into_inner())
        })
    }

    fn on_response_chunk<'a>(&'a self, chunk: &'a ChunkView<'a>) -> HookFuture<'a, ChunkAction> {
        let mut client = match self.client() {
            Ok(c) => c,
            Err(e) => return HookFuture::err(e),
        };
        let message = convert::chunk_to_pb(chunk);
        HookFuture::pending(async move {
            let r = client
                .on_response_chunk(message)
                .await
                .map_err(convert::status_error)?;
            Ok(convert::chunk_action_from_pb(r.into_inner()))
        })
    }

    fn on_stream_complete<'a>(&'a self, done: &'a CompletedExchange) -> HookFuture<'a, ()> {
        let mut client = match self.client() {
            Ok(c) => c,
            Err(e) => return HookFuture::err(e),
        };
        let message = convert::complete_to_pb(done);
        HookFuture::pending(async move {
            client
                .on_stream_complete(message)
                .await
                .map_err(convert::status_error)
                .map(drop)
        })
    }

    fn collect<'a>(&'a self, record: &'a CompletedExchange) -> HookFuture<'a, ()> {
        let mut client = match self.client() {
            Ok(c) => c,
            Err(e) => return HookFuture::err(e),
        };
        let message = convert::collect_to_pb(record);
        HookFuture::pending(async move {
            client
                .collect(message)
                .await
                .map_err(convert::status_error)
                .map(drop)
        })
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
