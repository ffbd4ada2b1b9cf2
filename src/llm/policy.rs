//! `builtin://llm_policy`: model allowlists per app, per-app request, token and dollar
//! (`cost_per_window`, by the price table) budgets
//! over a window, and a maximum request size in estimated tokens. Refusals use the
//! OpenAI error shape (`{"error":{"message","type","param","code"}}`), which the OpenAI
//! and Anthropic SDKs surface as typed exceptions.
//!
//! The app is the authenticated `app_id` (or identity), so this runs in `post_auth`.
//! It needs the request body (`request_body` in its manifest). For streaming OpenAI chat
//! requests it adds `stream_options.include_usage = true` so the stream reports usage,
//! and marks the request so the proxy removes that usage chunk from what the client
//! receives (`llm::strip`).

mod body;
mod errors;

use errors::openai_error;

use super::Budgets;
use super::budget::{Reserve, Totals};
use crate::config::PluginConfig;
use crate::plugin::{
    BuiltinContext, Decision, Hook, HookFuture, HookType, Manifest, Mutations, Plugin, PluginError,
    RequestView,
};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AppRules {
    #[serde(default)]
    models: Vec<String>,
    #[serde(default)]
    tokens_per_window: Option<u64>,
    #[serde(default)]
    requests_per_window: Option<u64>,
    #[serde(default)]
    cost_per_window: Option<f64>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Settings {
    models: Vec<String>,
    #[serde(with = "crate::config::duration_serde")]
    window: Duration,
    max_request_tokens: Option<u64>,
    tokens_per_window: Option<u64>,
    requests_per_window: Option<u64>,
    /// US dollars an app may spend per window, by the price table.
    cost_per_window: Option<f64>,
    stream_usage: bool,
    apps: BTreeMap<String, AppRules>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            models: Vec::new(),
            window: Duration::from_secs(60),
            max_request_tokens: None,
            tokens_per_window: None,
            requests_per_window: None,
            cost_per_window: None,
            stream_usage: true,
            apps: BTreeMap::new(),
        }
    }
}

/// The longest budget window (`config.window`).
const MAX_WINDOW: Duration = Duration::from_secs(366 * 24 * 3600);

/// The LLM policy plugin.
pub struct LlmPolicy {
    manifest: Manifest,
    settings: Settings,
    budgets: Arc<Budgets>,
}

impl LlmPolicy {
    /// Parses the settings.
    pub fn new(config: &PluginConfig, context: &BuiltinContext) -> Result<LlmPolicy, PluginError> {
        let settings: Settings = if config.config.is_null() {
            Settings::default()
        } else {
            serde_json::from_value(config.config.clone())
                .map_err(|e| PluginError::Load(format!("plugins.{}.config: {e}", config.name)))?
        };
        // Windows longer than a year would outlive the usage caches that hold them.
        if settings.window.as_secs() == 0 || settings.window > MAX_WINDOW {
            return Err(PluginError::Load(format!(
                "plugins.{}.config.window: at least 1s and at most {}, got {}",
                config.name,
                humantime::format_duration(MAX_WINDOW),
                humantime::format_duration(settings.window)
            )));
        }
        let costs = std::iter::once(("cost_per_window".to_string(), settings.cost_per_window))
            .chain(
                settings
                    .apps
                    .iter()
                    .map(|(app, r)| (format!("apps.{app}.cost_per_window"), r.cost_per_window)),
            );
        for (key, cost) in costs {
            if cost.is_some_and(|c| !c.is_finite() || c < 0.0) {
                return Err(PluginError::Load(format!(
                    "plugins.{}.config.{key}: a non-negative number of US dollars",
                    config.name
                )));
            }
        }
        Ok(LlmPolicy {
            manifest: Manifest {
                name: "llm_policy".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                hooks: vec![Hook::PreAuth, Hook::PostAuth],
                request_body: true,
                ..Manifest::default()
            },
            budgets: Budgets::new(
                settings.window,
                context.cluster.clone().map(|c| (c, config.name.as_str())),
            ),
            settings,
        })
    }

    /// The checks that need no budget: the body, the model allowlist and the request
    /// size. `Err` is the answer; `Ok(None)` passes a request without a body.
    fn check<'a>(
        &'a self,
        request: &'a RequestView<'a>,
    ) -> Result<Option<Checked<'a>>, Box<Decision>> {
        let app = request
            .context
            .auth
            .as_ref()
            .map(|a| {
                if a.app_id.is_empty() {
                    a.identity.clone()
                } else {
                    a.app_id.clone()
                }
            })
            .unwrap_or_else(|| "anonymous".to_string());
        let raw = request.body.filter(|b| !b.is_empty());
        let body = match raw.map(|b| body::Request::read(b)) {
            Some(Ok(v)) => v,
            Some(Err(_)) => {
                return Err(Box::new(openai_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    "invalid_json",
                    None,
                    "request body is not valid JSON",
                )));
            }
            None => return Ok(None),
        };
        let rules = self.settings.apps.get(&app).unwrap_or(&NO_RULES);
        let allowed = if rules.models.is_empty() {
            &self.settings.models
        } else {
            &rules.models
        };
        if !allowed.is_empty() && !allowed.contains(&body.model) {
            let message = format!("model {:?} is not allowed for app {app:?}", body.model);
            return Err(Box::new(openai_error(
                StatusCode::FORBIDDEN,
                "permission_error",
                "model_not_allowed",
                Some("model"),
                &message,
            )));
        }
        let estimate = body.estimated_tokens();
        if let Some(max) = self.settings.max_request_tokens
            && estimate > max
        {
            let message = format!("request is about {estimate} tokens; the limit is {max}");
            return Err(Box::new(openai_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "request_too_large",
                Some("messages"),
                &message,
            )));
        }
        Ok(Some(Checked {
            requests_limit: rules
                .requests_per_window
                .or(self.settings.requests_per_window),
            tokens_limit: rules.tokens_per_window.or(self.settings.tokens_per_window),
            cost_limit: rules.cost_per_window.or(self.settings.cost_per_window),
            app,
            body,
            estimate,
            raw,
        }))
    }

    /// The token or cost budget `checked`'s app has used up, by the window's totals.
    fn over(&self, checked: &Checked<'_>, totals: Totals) -> Option<(&'static str, &'static str)> {
        let spent = totals.micro_usd as f64 / 1e6;
        if checked.tokens_limit.is_some_and(|l| totals.tokens >= l) {
            Some(("token_budget_exceeded", "token budget"))
        } else if checked.cost_limit.is_some_and(|l| spent >= l) {
            Some(("cost_budget_exceeded", "cost budget"))
        } else {
            None
        }
    }

    /// `x-ratelimit-*` values for an answer: what an OpenAI client reads for back-off.
    fn ratelimit(
        &self,
        checked: &Checked<'_>,
        totals: Totals,
        requests_left: Option<u64>,
    ) -> Vec<(String, String)> {
        let reset = Duration::from_secs(self.budgets.seconds_left());
        let mut values = Vec::new();
        if let (Some(l), Some(left)) = (checked.requests_limit, requests_left) {
            values.extend(crate::headers::ratelimit_values(
                "requests",
                l,
                left.min(l),
                reset,
            ));
        }
        if let Some(l) = checked.tokens_limit {
            let left = l.saturating_sub(totals.tokens);
            values.extend(crate::headers::ratelimit_values("tokens", l, left, reset));
        }
        values
    }

    /// A `429` for a used-up budget (or `503` when the fleet's Redis is down under
    /// `on_unavailable = "deny"`).
    fn refuse(
        &self,
        checked: &Checked<'_>,
        code: &str,
        what: &str,
        ratelimit: Vec<(String, String)>,
    ) -> Decision {
        let (status, kind, message) = if code == "budget_unavailable" {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                "the shared budget cannot be checked; retry later".to_string(),
            )
        } else {
            (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                format!(
                    "app {:?} has used its {what} for this window; retry later",
                    checked.app
                ),
            )
        };
        let mut decision = openai_error(status, kind, code, None, &message);
        if let Decision::Respond(r) = &mut decision {
            r.headers.push((
                header::RETRY_AFTER,
                HeaderValue::from(self.budgets.seconds_left()),
            ));
            r.headers
                .extend(crate::headers::ratelimit_headers(ratelimit));
        }
        decision
    }

    /// The answer once the budgets are known: a refusal, or the request admitted with
    /// its context (and, for a stream, `stream_options.include_usage`).
    fn finish(&self, checked: Checked<'_>, totals: Totals, reserve: Option<Reserve>) -> Decision {
        let left = match reserve {
            Some(Reserve::Admitted { left }) => Some(left),
            Some(Reserve::Over) => {
                let ratelimit = self.ratelimit(&checked, totals, Some(0));
                return self.refuse(
                    &checked,
                    "requests_budget_exceeded",
                    "request budget",
                    ratelimit,
                );
            }
            Some(Reserve::Denied) => {
                return self.refuse(&checked, "budget_unavailable", "", Vec::new());
            }
            None => None,
        };
        let ratelimit = self.ratelimit(&checked, totals, left);
        if let Some((code, what)) = self.over(&checked, totals) {
            return self.refuse(&checked, code, what, ratelimit);
        }
        let body = &checked.body;
        let mut mutations = Mutations {
            context: vec![
                ("llm.app".into(), checked.app.clone()),
                ("llm.model".into(), body.model.clone()),
                (
                    "llm.estimated_prompt_tokens".into(),
                    checked.estimate.to_string(),
                ),
            ],
            ..Mutations::default()
        };
        mutations
            .context
            .extend(crate::headers::ratelimit_context(ratelimit));
        let with_usage =
            (self.settings.stream_usage && body.stream && body.messages && !body.stream_options)
                .then(|| checked.raw.and_then(|b| body::with_stream_usage(b)))
                .flatten();
        if let Some(changed) = with_usage {
            mutations.body = Some(Bytes::from(changed));
            // The client did not ask for the usage chunk, so it is taken out again.
            mutations
                .context
                .push((super::strip::USAGE_ADDED.into(), "true".into()));
        }
        Decision::Continue(mutations)
    }

    /// The whole decision: checks, then the budgets (the request is counted only when
    /// the token and cost budgets admit it). Without `[cluster]`, or with leases and
    /// totals at hand, it needs no future.
    fn decide<'a>(&'a self, request: &'a RequestView<'a>) -> HookFuture<'a, Decision> {
        let checked = match self.check(request) {
            Ok(Some(c)) => c,
            Ok(None) => return HookFuture::ok(Decision::pass()),
            Err(refusal) => return HookFuture::ok(*refusal),
        };
        let budgets = &self.budgets;
        if let Some(totals) = budgets.totals_now(&checked.app) {
            if self.over(&checked, totals).is_some() {
                return HookFuture::ok(self.finish(checked, totals, None));
            }
            if let Some(reserve) = budgets.reserve_now(&checked.app, checked.requests_limit) {
                return HookFuture::ok(self.finish(checked, totals, Some(reserve)));
            }
        }
        HookFuture::Pending(Box::pin(async move {
            let totals = budgets.totals(&checked.app).await;
            if self.over(&checked, totals).is_some() {
                return Ok(self.finish(checked, totals, None));
            }
            let reserve = budgets.reserve(&checked.app, checked.requests_limit).await;
            Ok(self.finish(checked, totals, Some(reserve)))
        }))
    }
}

/// What [`LlmPolicy::check`] found of a request that may go on.
struct Checked<'a> {
    app: String,
    body: body::Request,
    estimate: u64,
    raw: Option<&'a Bytes>,
    requests_limit: Option<u64>,
    tokens_limit: Option<u64>,
    cost_limit: Option<f64>,
}

/// The rules of an app without its own.
static NO_RULES: AppRules = AppRules {
    models: Vec::new(),
    tokens_per_window: None,
    requests_per_window: None,
    cost_per_window: None,
};

impl Plugin for LlmPolicy {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn on_request<'a>(
        &'a self,
        _stage: HookType,
        request: &'a RequestView<'a>,
    ) -> HookFuture<'a, Decision> {
        self.decide(request)
    }
}
