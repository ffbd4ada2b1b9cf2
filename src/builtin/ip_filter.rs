//! `builtin://ip_filter`: CIDR allow and deny lists on the client address.
//!
//! Deny wins over allow; with a non-empty `allow` list, addresses outside it are
//! refused. IPv4-mapped IPv6 addresses are matched as IPv4. Refusals are 403.

use super::{manifest, reject, settings};
use crate::config::PluginConfig;
use crate::plugin::{
    Decision, Hook, HookFuture, HookType, Manifest, Plugin, PluginError, RequestView,
};
use http::StatusCode;
use ipnet::IpNet;
use std::net::IpAddr;

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    deny: Vec<String>,
}

/// The IP filter plugin.
pub struct IpFilter {
    manifest: Manifest,
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
}

impl IpFilter {
    /// Parses the CIDR lists (a bare address means a single host).
    pub fn new(config: &PluginConfig) -> Result<IpFilter, PluginError> {
        let s: Settings = settings(config)?;
        let parse = |list: &[String], field: &str| -> Result<Vec<IpNet>, PluginError> {
            list.iter()
                .enumerate()
                .map(|(i, text)| {
                    text.parse::<IpNet>()
                        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                        .map_err(|_| {
                            PluginError::Load(format!(
                                "plugins.{}.config.{field}[{i}]: {text:?} is not a CIDR or IP address",
                                config.name
                            ))
                        })
                })
                .collect()
        };
        let filter = IpFilter {
            manifest: manifest("ip_filter", &[Hook::PreAuth, Hook::PostAuth]),
            allow: parse(&s.allow, "allow")?,
            deny: parse(&s.deny, "deny")?,
        };
        if filter.allow.is_empty() && filter.deny.is_empty() {
            return Err(PluginError::Load(format!(
                "plugins.{}.config: set `allow` and/or `deny`",
                config.name
            )));
        }
        Ok(filter)
    }

    /// True when `ip` may pass.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if self.deny.iter().any(|n| n.contains(&ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|n| n.contains(&ip))
    }
}

impl Plugin for IpFilter {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn on_request<'a>(
        &'a self,
        _stage: HookType,
        request: &'a RequestView<'a>,
    ) -> HookFuture<'a, Decision> {
        if self.permits(request.client_ip) {
            HookFuture::ok(Decision::pass())
        } else {
            HookFuture::ok(reject(
                StatusCode::FORBIDDEN,
                "forbidden",
                "client address not allowed",
                request.request_id,
            ))
        }
    }
}
