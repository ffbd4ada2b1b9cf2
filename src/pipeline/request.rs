//! Request stages: `pre_auth`, `auth`, `post_auth`.
//!
//! Hooks run in plan order. `Continue` applies its mutations (validated first) and goes
//! on; `Respond` ends the request with the plugin's response. In the auth stage the
//! first hook that returns an identity ends the stage; when auth hooks exist and none
//! authenticated (and none failed open), the request gets 401.

use super::ctx::RequestCtx;
use super::{failure, mutate};
use crate::body::Body;
use crate::error::GatewayError;
use crate::loader::{Instance, RoutePlan};
use crate::plugin::{AuthInfo, Decision, Hook, HookType, Mutations, RequestView};
use bytes::Bytes;
use http::{Request, Response};
use std::sync::Arc;

/// The request as hooks see and change it: method, URI and headers, and the buffered
/// or replaced body (`None` keeps streaming the client's body).
pub type HookedRequest = Request<Option<Bytes>>;

/// Calls `on_request` of `$instance` through [`super::begin`]: a hook that answers at
/// once is finished without an `async` frame; only an asynchronous one is awaited here,
/// inside [`run`]'s own frame. A macro rather than a function, because a helper
/// `async fn` would build and move its frame for every hook.
macro_rules! call_hook {
    ($instance:expr, $stage:expr, $hook:expr, $req:expr, $ctx:expr) => {{
        let view = view($req, $ctx);
        match super::begin($instance, $hook, || {
            $instance.plugin.on_request($stage, &view)
        }) {
            super::Invoked::Done(result) => result,
            super::Invoked::Pending(pending) => pending.finish().await,
        }
    }};
}

/// Runs the three request stages; `Ok(Some(response))` means a plugin answered.
pub async fn run(
    plan: &RoutePlan,
    req: &mut HookedRequest,
    ctx: &mut RequestCtx<'_>,
) -> Result<Option<Response<Body>>, GatewayError> {
    for instance in &plan.pre_auth {
        let decision = call_hook!(instance, HookType::PreAuth, Hook::PreAuth, req, ctx)?;
        if let Some(r) = decide(instance, Hook::PreAuth, req, ctx, decision)? {
            return Ok(Some(r));
        }
    }
    if !plan.auth.is_empty() {
        let mut failed_open = false;
        let mut authenticated = false;
        for instance in &plan.auth {
            match call_hook!(instance, HookType::Auth, Hook::Auth, req, ctx)? {
                None => failed_open = true,
                Some(Decision::Respond(r)) => match respond(instance, Hook::Auth, r)? {
                    Some(response) => return Ok(Some(response)),
                    None => failed_open = true,
                },
                Some(Decision::Continue(mut mutations)) => {
                    let auth = mutations.auth.take();
                    if !apply(instance, Hook::Auth, req, ctx, mutations)? {
                        failed_open = true;
                        continue;
                    }
                    if let Some(a) = auth {
                        ctx.hook_state.auth = Some(AuthInfo {
                            identity: a.identity,
                            app_id: a.app_id,
                            claims: a.claims,
                            plugin: instance.name.to_string(),
                        });
                        authenticated = true;
                        break;
                    }
                }
            }
        }
        if !authenticated && !failed_open {
            return Err(GatewayError::Unauthorized(
                "missing or invalid credentials".to_string(),
            ));
        }
    }
    for instance in &plan.post_auth {
        let decision = call_hook!(instance, HookType::PostAuth, Hook::PostAuth, req, ctx)?;
        if let Some(r) = decide(instance, Hook::PostAuth, req, ctx, decision)? {
            return Ok(Some(r));
        }
    }
    Ok(None)
}

/// The outcome of one non-auth hook: apply `Continue`, return the response of
/// `Respond`, go on when the hook failed open (`None`).
fn decide(
    instance: &Arc<Instance>,
    hook: Hook,
    req: &mut HookedRequest,
    ctx: &mut RequestCtx<'_>,
    decision: Option<Decision>,
) -> Result<Option<Response<Body>>, GatewayError> {
    match decision {
        None => Ok(None),
        Some(Decision::Respond(r)) => respond(instance, hook, r),
        Some(Decision::Continue(mutations)) => {
            apply(instance, hook, req, ctx, mutations).map(|_| None)
        }
    }
}

/// What request hooks see of the request and its context.
fn view<'v>(req: &'v HookedRequest, ctx: &'v RequestCtx<'_>) -> RequestView<'v> {
    RequestView {
        request_id: ctx.request_id_str(),
        route: ctx.route_name(),
        client_ip: ctx.client_ip(),
        tls: ctx.conn.tls,
        host: &ctx.host,
        method: req.method(),
        uri: req.uri(),
        headers: req.headers(),
        body: req.body().as_ref(),
        llm: ctx.provider(),
        context: &ctx.hook_state,
    }
}

/// Validates and applies `Continue` mutations; `Ok(false)` when rejected under fail_open.
fn apply(
    instance: &Instance,
    hook: Hook,
    req: &mut HookedRequest,
    ctx: &mut RequestCtx<'_>,
    mutations: Mutations,
) -> Result<bool, GatewayError> {
    // The auth stage takes the identity out before it applies the rest; the other
    // stages have no use for one.
    let Mutations {
        headers,
        path,
        query,
        body,
        context,
        auth: _,
    } = mutations;
    let new_uri = if path.is_some() || query.is_some() {
        match mutate::rewrite_uri(req.uri(), path.as_deref(), query.as_deref()) {
            Ok(uri) => Some(uri),
            Err(e) => return failure(instance, hook, e).map(|()| false),
        }
    } else {
        None
    };
    if let Err(e) = mutate::apply_headers(req.headers_mut(), headers) {
        return failure(instance, hook, e).map(|()| false);
    }
    if let Some(uri) = new_uri {
        ctx.path_is_final |= path.is_some();
        *req.uri_mut() = uri;
    }
    if let Some(body) = body {
        req.headers_mut()
            .insert(http::header::CONTENT_LENGTH, body.len().into());
        *req.body_mut() = Some(body);
    }
    ctx.hook_state.values.extend(context);
    Ok(true)
}

/// Validates a `Respond`; `Ok(None)` when it was invalid and the instance is fail_open.
fn respond(
    instance: &Instance,
    hook: Hook,
    response: crate::plugin::ImmediateResponse,
) -> Result<Option<Response<Body>>, GatewayError> {
    match mutate::immediate(response) {
        Ok(r) => Ok(Some(r)),
        Err(e) => failure(instance, hook, e).map(|()| None),
    }
}
