//! `builtin://request_guard`: allowed methods (405) and a per-route body size cap
//! (413 for a larger `Content-Length`, 411 for a body without a length when a cap is set).

use super::{manifest, reject, settings};
use crate::config::PluginConfig;
use crate::plugin::{
    Decision, Hook, HookFuture, HookType, Manifest, Plugin, PluginError, RequestView,
};
use http::{Method, StatusCode, header};

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    methods: Vec<String>,
    #[serde(default)]
    max_body_bytes: Option<u64>,
}

/// The request guard plugin.
pub struct RequestGuard {
    manifest: Manifest,
    methods: Vec<Method>,
    max_body: Option<u64>,
}

impl RequestGuard {
    /// Parses the settings.
    pub fn new(config: &PluginConfig) -> Result<RequestGuard, PluginError> {
        let s: Settings = settings(config)?;
        let methods = s
            .methods
            .iter()
            .map(|m| {
                Method::from_bytes(m.to_ascii_uppercase().as_bytes()).map_err(|_| {
                    PluginError::Load(format!(
                        "plugins.{}.config.methods: invalid method {m:?}",
                        config.name
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if methods.is_empty() && s.max_body_bytes.is_none() {
            return Err(PluginError::Load(format!(
                "plugins.{}.config: set `methods` and/or `max_body_bytes`",
                config.name
            )));
        }
        Ok(RequestGuard {
            manifest: manifest("request_guard", &[Hook::PreAuth, Hook::PostAuth]),
            methods,
            max_body: s.max_body_bytes,
        })
    }
}

impl Plugin for RequestGuard {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn on_request<'a>(
        &'a self,
        _stage: HookType,
        request: &'a RequestView<'a>,
    ) -> HookFuture<'a, Decision> {
        let id = request.request_id;
        if !self.methods.is_empty() && !self.methods.contains(request.method) {
            let msg = format!("method {} is not allowed on this route", request.method);
            return HookFuture::ok(reject(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                &msg,
                id,
            ));
        }
        if let Some(max) = self.max_body {
            let length = request
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            match length {
                Some(len) if len > max => {
                    let msg =
                        format!("request body of {len} bytes exceeds this route's limit of {max}");
                    return HookFuture::ok(reject(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "payload_too_large",
                        &msg,
                        id,
                    ));
                }
                None if request.headers.contains_key(header::TRANSFER_ENCODING) => {
                    let msg = "a Content-Length is required on this route";
                    return HookFuture::ok(reject(
                        StatusCode::LENGTH_REQUIRED,
                        "length_required",
                        msg,
                        id,
                    ));
                }
                _ => {}
            }
        }
        HookFuture::ok(Decision::pass())
    }
}
