//! Request stages: `pre_auth`, `auth`, `post_auth`.
//!
//! Hooks run in plan order. `Continue` applies its mutations (validated first) and goes
//! on; `Respond` ends the request with the plugin's response. In the auth stage the
//! first hook that returns an identity ends the stage; when auth hooks exist and none
//! authenticated (and none failed open), the request gets 401.

use super::{failure, invoke, mutate};
use crate::body::Body;
use crate::error::GatewayError;
use crate::loader::{Instance, RoutePlan};
use crate::plugin::{AuthInfo, Decision, Hook, HookType, Mutations, RequestContext, RequestView};
use bytes::Bytes;
use http::Response;
use std::net::IpAddr;
use std::sync::Arc;

/// Facts about the request that hooks cannot change.
#[derive(Debug, Clone, Copy)]
pub struct RequestMeta<'a> {
    /// Request id.
    pub request_id: &'a str,
    /// Route name.
    pub route: &'a str,
    /// Client address.
    pub client_ip: IpAddr,
    /// Client TLS.
    pub tls: bool,
    /// Host the client addressed.
    pub host: &'a str,
}

/// The request as hooks change it.
#[derive(Debug)]
pub struct PendingRequest {
    /// Method, URI and headers.
    pub parts: http::request::Parts,
    /// Buffered or replaced body; `None` keeps streaming the client's body.
    pub body: Option<Bytes>,
    /// A hook set the path: forward it verbatim, without the route's rewrite.
    pub path_is_final: bool,
    /// Shared context.
    pub ctx: RequestContext,
}

/// Runs the three request stages; `Ok(Some(response))` means a plugin answered.
pub async fn run(
    plan: &RoutePlan,
    meta: RequestMeta<'_>,
    req: &mut PendingRequest,
) -> Result<Option<Response<Body>>, GatewayError> {
    for instance in &plan.pre_auth {
        if let Some(r) = step(instance, HookType::PreAuth, Hook::PreAuth, meta, req).await? {
            return Ok(Some(r));
        }
    }
    if !plan.auth.is_empty() {
        let mut failed_open = false;
        let mut authenticated = false;
        for instance in &plan.auth {
            match call(instance, HookType::Auth, Hook::Auth, meta, req).await? {
                None => failed_open = true,
                Some(Decision::Respond(r)) => match respond(instance, Hook::Auth, r)? {
                    Some(response) => return Ok(Some(response)),
                    None => failed_open = true,
                },
                Some(Decision::Continue(mut m)) => {
                    let auth = m.auth.take();
                    if !apply(instance, Hook::Auth, req, m)? {
                        failed_open = true;
                        continue;
                    }
                    if let Some(a) = auth {
                        req.ctx.auth = Some(AuthInfo {
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
        if let Some(r) = step(instance, HookType::PostAuth, Hook::PostAuth, meta, req).await? {
            return Ok(Some(r));
        }
    }
    Ok(None)
}

/// One non-auth hook: apply `Continue`, return the response of `Respond`.
async fn step(
    instance: &Arc<Instance>,
    stage: HookType,
    hook: Hook,
    meta: RequestMeta<'_>,
    req: &mut PendingRequest,
) -> Result<Option<Response<Body>>, GatewayError> {
    match call(instance, stage, hook, meta, req).await? {
        None => Ok(None),
        Some(Decision::Respond(r)) => respond(instance, hook, r),
        Some(Decision::Continue(m)) => apply(instance, hook, req, m).map(|_| None),
    }
}

async fn call(
    instance: &Instance,
    stage: HookType,
    hook: Hook,
    meta: RequestMeta<'_>,
    req: &PendingRequest,
) -> Result<Option<Decision>, GatewayError> {
    let view = RequestView {
        request_id: meta.request_id,
        route: meta.route,
        client_ip: meta.client_ip,
        tls: meta.tls,
        host: meta.host,
        method: &req.parts.method,
        uri: &req.parts.uri,
        headers: &req.parts.headers,
        body: req.body.as_ref(),
        ctx: &req.ctx,
    };
    invoke(instance, hook, || instance.plugin.on_request(stage, &view)).await
}

/// Validates and applies `Continue` mutations; `Ok(false)` when rejected under fail_open.
fn apply(
    instance: &Instance,
    hook: Hook,
    req: &mut PendingRequest,
    m: Mutations,
) -> Result<bool, GatewayError> {
    let new_uri = if m.path.is_some() || m.query.is_some() {
        match mutate::rewrite_uri(&req.parts.uri, m.path.as_deref(), m.query.as_deref()) {
            Ok(uri) => Some(uri),
            Err(e) => return failure(instance, hook, e).map(|()| false),
        }
    } else {
        None
    };
    if let Err(e) = mutate::apply_headers(&mut req.parts.headers, m.headers) {
        return failure(instance, hook, e).map(|()| false);
    }
    if let Some(uri) = new_uri {
        req.path_is_final |= m.path.is_some();
        req.parts.uri = uri;
    }
    if let Some(body) = m.body {
        req.parts
            .headers
            .insert(http::header::CONTENT_LENGTH, body.len().into());
        req.body = Some(body);
    }
    req.ctx.values.extend(m.context);
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
