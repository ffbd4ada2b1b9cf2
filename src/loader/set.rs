//! The plugin set: loaded instances compiled into one execution plan per route.
//!
//! A [`PluginSet`] is immutable. The proxy holds the current set in an `ArcSwap`; every
//! request loads one snapshot and uses it to the end. Reloading builds a complete new
//! set first (all fallible work), then stores it, then shuts the old instances down once
//! the last request holding the old snapshot has finished.

use super::registry::Registry;
use crate::config::{OnError, PluginConfig};
use crate::metrics::HookMetrics;
use crate::plugin::{BodyMode, Hook, HookType, Plugin, PluginError};
use std::sync::Arc;
use std::time::Duration;

/// Errors building a plugin set.
#[derive(Debug, thiserror::Error)]
pub enum SetError {
    /// An instance could not be loaded or initialised.
    #[error("plugin {plugin:?}: {error}")]
    Load {
        /// Instance name.
        plugin: String,
        /// Why, shown in the message (and so not also returned as `source`).
        error: PluginError,
    },
    /// The plugin does not implement any hook of the configured stage.
    #[error("plugin {plugin:?} implements none of the hooks of hook_type {hook_type}")]
    Incompatible {
        /// Instance name as configured.
        plugin: String,
        /// The `hook_type` it was attached to.
        hook_type: &'static str,
    },
    /// A route named by the instance does not exist.
    #[error("plugin {plugin:?}: unknown route {route:?}")]
    UnknownRoute {
        /// Instance name.
        plugin: String,
        /// The route name in its `routes` list that no route has.
        route: String,
    },
}

/// One loaded plugin instance with its settings.
pub struct Instance {
    /// Configured instance name.
    pub name: Arc<str>,
    /// Stage the instance is attached to.
    pub hook_type: HookType,
    /// Time limit per asynchronous call.
    pub timeout: Duration,
    /// What a failed or timed-out call of this instance does to the request.
    pub on_error: OnError,
    /// The implementation: built-in, remote, or an unavailable stand-in.
    pub plugin: Arc<dyn Plugin>,
    /// A load failure stops a start or reload (see `PluginConfig::required`).
    pub required: bool,
    /// Why the plugin could not load: this instance is an unavailable stand-in whose
    /// hooks fail by `on_error` until a background retry replaces it.
    pub load_error: Option<Arc<str>>,
    /// The configuration the instance was built from (routes, retries).
    pub(super) config: PluginConfig,
    metrics: Vec<Option<HookMetrics>>,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("name", &self.name)
            .field("hook_type", &self.hook_type)
            .field("manifest", self.plugin.manifest())
            .finish()
    }
}

impl Instance {
    /// Wraps a loaded plugin; metric handles are registered for the hooks it will run.
    pub fn new(config: &PluginConfig, plugin: Arc<dyn Plugin>) -> Instance {
        let manifest = plugin.manifest();
        let metrics = Hook::ALL
            .iter()
            .map(|&hook| {
                (config.hook_type.hooks().contains(&hook) && manifest.implements(hook))
                    .then(|| HookMetrics::new(&config.name, hook.as_str()))
            })
            .collect();
        Instance {
            name: Arc::from(config.name.as_str()),
            hook_type: config.hook_type,
            timeout: config.timeout,
            on_error: config.on_error(),
            plugin,
            required: config.required(),
            load_error: None,
            config: config.clone(),
            metrics,
        }
    }

    /// An unavailable stand-in for a plugin that failed to load with `error`.
    pub fn stand_in(config: &PluginConfig, error: &PluginError) -> Instance {
        let message: Arc<str> = Arc::from(error.to_string());
        let plugin = Arc::new(super::standin::StandIn::new(config, message.clone()));
        let mut instance = Instance::new(config, plugin);
        instance.load_error = Some(message);
        instance
    }

    /// Metric handles for `hook`, registered when the instance runs it.
    pub fn metrics(&self, hook: Hook) -> Option<&HookMetrics> {
        self.metrics.get(hook.index()).and_then(Option::as_ref)
    }

    pub(super) fn runs(&self, hook: Hook) -> bool {
        self.metrics(hook).is_some()
    }
}

/// The instances that run for one route, per hook, in order.
#[derive(Debug, Default)]
pub struct RoutePlan {
    /// Instances whose `PreAuth` runs on this route, in execution order.
    pub pre_auth: Vec<Arc<Instance>>,
    /// Instances whose `Auth` runs, in order; the first identity wins.
    pub auth: Vec<Arc<Instance>>,
    /// Instances whose `PostAuth` runs, in order.
    pub post_auth: Vec<Arc<Instance>>,
    /// Instances whose `OnResponseHeaders` runs, in order.
    pub response_headers: Vec<Arc<Instance>>,
    /// `OnResponseBody` instances (buffered body).
    pub response_body: Vec<Arc<Instance>>,
    /// Instances whose `OnResponseChunk` runs on every frame or event, in order.
    pub response_chunk: Vec<Arc<Instance>>,
    /// Chunks are split into SSE events for `response_chunk` instances.
    pub sse_events: bool,
    /// Instances whose `OnStreamComplete` runs from the collect queue.
    pub stream_complete: Vec<Arc<Instance>>,
    /// Instances whose `Collect` runs from the collect queue.
    pub collect: Vec<Arc<Instance>>,
    /// Instances that see every message of the route's upgraded WebSockets, in order.
    pub websocket_messages: Vec<Arc<Instance>>,
    /// Some request hook needs the request body.
    pub request_body: bool,
}

impl RoutePlan {
    /// True when the route has no plugin at all (the bare proxy fast path).
    pub fn is_empty(&self) -> bool {
        !self.has_request_hooks() && !self.has_response_hooks() && !self.has_tail()
    }

    /// True when any request-stage hook runs.
    pub fn has_request_hooks(&self) -> bool {
        !(self.pre_auth.is_empty() && self.auth.is_empty() && self.post_auth.is_empty())
    }

    /// True when any response hook runs on the request path.
    pub fn has_response_hooks(&self) -> bool {
        !(self.response_headers.is_empty()
            && self.response_body.is_empty()
            && self.response_chunk.is_empty())
    }

    /// True when completed exchanges are queued for stream-complete or collect hooks.
    pub fn has_tail(&self) -> bool {
        !(self.stream_complete.is_empty() && self.collect.is_empty())
    }
}

/// An immutable set of loaded instances and their per-route plans.
#[derive(Debug, Default)]
pub struct PluginSet {
    instances: Vec<Arc<Instance>>,
    plans: Vec<RoutePlan>,
    routes: Vec<String>,
    empty: RoutePlan,
}

impl PluginSet {
    /// A set without plugins.
    pub fn empty() -> PluginSet {
        PluginSet::default()
    }

    /// Loads every active instance in `configs` and compiles plans for `routes` (route
    /// names in configuration order). Nothing is kept if any instance fails.
    pub async fn build(
        configs: &[PluginConfig],
        routes: &[String],
        registry: &Registry,
    ) -> Result<PluginSet, SetError> {
        Self::build_tolerant(configs, routes, registry, &|_| false).await
    }

    /// Like [`PluginSet::build`], except that an out-of-process plugin for which
    /// `tolerate` is true and that cannot load becomes an unavailable stand-in (its
    /// hooks fail by `on_error`, its health is `failed`) instead of failing the set.
    /// Built-in plugins never load "later": their errors are configuration errors.
    pub async fn build_tolerant(
        configs: &[PluginConfig],
        routes: &[String],
        registry: &Registry,
        tolerate: &(dyn Fn(&PluginConfig) -> bool + Sync),
    ) -> Result<PluginSet, SetError> {
        let mut active: Vec<&PluginConfig> = configs.iter().filter(|c| c.is_active).collect();
        // A stable sort keeps file order for equal `order` values.
        active.sort_by_key(|c| c.order);
        let mut loaded: Vec<(Arc<Instance>, &PluginConfig)> = Vec::with_capacity(active.len());
        for config in active {
            for route in &config.routes {
                if !routes.contains(route) {
                    return Err(fail(
                        &loaded,
                        SetError::UnknownRoute {
                            plugin: config.name.clone(),
                            route: route.clone(),
                        },
                    )
                    .await);
                }
            }
            let instance = match registry.load(config).await {
                Ok(p) => Arc::new(Instance::new(config, p)),
                Err(source)
                    if tolerate(config)
                        && !config.command.starts_with("builtin://")
                        && !matches!(source, PluginError::Refused(_)) =>
                {
                    tracing::error!(plugin = %config.name, error = %source, required = config.required(), "plugin cannot load; its hooks fail by on_error until a retry succeeds");
                    crate::metrics::plugin_load_failure(&config.name);
                    Arc::new(Instance::stand_in(config, &source))
                }
                Err(source) => {
                    let plugin = config.name.clone();
                    return Err(fail(
                        &loaded,
                        SetError::Load {
                            plugin,
                            error: source,
                        },
                    )
                    .await);
                }
            };
            if !config.hook_type.hooks().iter().any(|&h| instance.runs(h)) {
                let _ = super::pipeline_shutdown(&instance).await;
                return Err(fail(
                    &loaded,
                    SetError::Incompatible {
                        plugin: config.name.clone(),
                        hook_type: config.hook_type.as_str(),
                    },
                )
                .await);
            }
            loaded.push((instance, config));
        }
        Ok(PluginSet::assemble(
            loaded.into_iter().map(|(i, _)| i).collect(),
            routes,
        ))
    }

    /// Compiles the per-route plans of already loaded instances (in execution order).
    pub(super) fn assemble(instances: Vec<Arc<Instance>>, routes: &[String]) -> PluginSet {
        let plans = routes
            .iter()
            .map(|route| {
                let mut plan = RoutePlan::default();
                for instance in &instances {
                    let only = &instance.config.routes;
                    if only.is_empty() || only.contains(route) {
                        add_to_plan(&mut plan, instance);
                    }
                }
                plan
            })
            .collect();
        PluginSet {
            instances,
            plans,
            routes: routes.to_vec(),
            empty: RoutePlan::default(),
        }
    }

    /// Route names the plans were compiled for.
    pub(super) fn routes(&self) -> &[String] {
        &self.routes
    }

    /// The plan for the route at `index` (configuration order).
    pub fn plan(&self, index: usize) -> &RoutePlan {
        self.plans.get(index).unwrap_or(&self.empty)
    }

    /// All loaded instances in execution order.
    pub fn instances(&self) -> &[Arc<Instance>] {
        &self.instances
    }

    /// Shuts every instance down (used once the set is no longer referenced by requests).
    pub async fn shutdown(&self) {
        for instance in &self.instances {
            if let Err(e) = super::pipeline_shutdown(instance).await {
                tracing::warn!(plugin = %instance.name, error = %e, "plugin shutdown failed");
            }
        }
    }
}

fn add_to_plan(plan: &mut RoutePlan, instance: &Arc<Instance>) {
    let manifest = instance.plugin.manifest();
    let push = |list: &mut Vec<Arc<Instance>>, hook: Hook| {
        if instance.runs(hook) {
            list.push(instance.clone());
        }
    };
    push(&mut plan.pre_auth, Hook::PreAuth);
    push(&mut plan.auth, Hook::Auth);
    push(&mut plan.post_auth, Hook::PostAuth);
    push(&mut plan.response_headers, Hook::OnResponseHeaders);
    if matches!(
        manifest.response_body,
        BodyMode::Buffered | BodyMode::BufferedUnlessStream
    ) {
        push(&mut plan.response_body, Hook::OnResponseBody);
    }
    if matches!(
        manifest.response_body,
        BodyMode::Chunks | BodyMode::SseEvents
    ) {
        push(&mut plan.response_chunk, Hook::OnResponseChunk);
        plan.sse_events |=
            manifest.response_body == BodyMode::SseEvents && instance.runs(Hook::OnResponseChunk);
    }
    push(&mut plan.stream_complete, Hook::OnStreamComplete);
    push(&mut plan.collect, Hook::Collect);
    push(&mut plan.websocket_messages, Hook::WebsocketMessage);
    let request_hook = [Hook::PreAuth, Hook::Auth, Hook::PostAuth]
        .iter()
        .any(|&h| instance.runs(h));
    plan.request_body |= manifest.request_body && request_hook;
}

/// Shuts down what was loaded before a failure and returns the error.
async fn fail(loaded: &[(Arc<Instance>, &PluginConfig)], error: SetError) -> SetError {
    for (instance, _) in loaded {
        let _ = super::pipeline_shutdown(instance).await;
    }
    error
}
