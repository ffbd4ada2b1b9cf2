//! Semantic validation of a deserialised [`Config`]; every error names the offending key.
//! The numeric and duration ranges live in [`super::ranges`].

mod cluster;
mod groups;

use super::{Allowlist, Config, ConfigError, Resolved};
use crate::target::TargetUrl;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// Checks ranges (see [`super::ranges`]), cross-references and file presence; the first
/// problem found is returned. What the checks parse is returned, so nothing parses it
/// twice.
pub(super) fn validate(config: &Config) -> Result<Resolved, ConfigError> {
    super::ranges::check(config)?;
    let s = &config.server;
    let request_id_header =
        http::HeaderName::from_bytes(s.request_id_header.as_bytes()).map_err(|_| {
            ConfigError::invalid(
                "server.request_id_header",
                format!("{:?} is not a valid header name", s.request_id_header),
            )
        })?;
    if let Some(tls) = &s.tls {
        readable_file("server.tls.cert", &tls.cert)?;
        readable_file("server.tls.key", &tls.key)?;
    }
    if s.listen == config.admin.listen && s.listen.port() != 0 {
        return Err(ConfigError::invalid(
            "admin.listen",
            "must differ from server.listen",
        ));
    }
    if tracing_subscriber::EnvFilter::try_new(&config.log.level).is_err() {
        return Err(ConfigError::invalid(
            "log.level",
            format!("{:?} is not a valid tracing filter", config.log.level),
        ));
    }

    let mut upstream_names = HashMap::new();
    let mut targets = Vec::with_capacity(config.upstreams.len());
    for (i, u) in config.upstreams.iter().enumerate() {
        let key = format!("upstreams[{i}]");
        if u.name.is_empty() {
            return Err(ConfigError::invalid(
                format!("{key}.name"),
                "must not be empty",
            ));
        }
        if upstream_names.insert(u.name.as_str(), i).is_some() {
            return Err(ConfigError::invalid(
                format!("{key}.name"),
                format!("duplicate upstream name {:?}", u.name),
            ));
        }
        if u.targets.is_empty() {
            return Err(ConfigError::invalid(
                format!("{key}.targets"),
                "needs at least one target URL",
            ));
        }
        let mut schemes = HashSet::new();
        let mut parsed = Vec::with_capacity(u.targets.len());
        for (j, t) in u.targets.iter().enumerate() {
            let target = TargetUrl::parse(t)
                .map_err(|e| ConfigError::invalid(format!("{key}.targets[{j}]"), e.to_string()))?;
            schemes.insert(target.is_https());
            parsed.push(target);
        }
        targets.push(parsed);
        if schemes.len() > 1 {
            return Err(ConfigError::invalid(
                format!("{key}.targets"),
                "all targets of one upstream must use the same scheme",
            ));
        }
        if let Some(ca) = &u.ca_file {
            readable_file(&format!("{key}.ca_file"), ca)?;
        }
        validate_balance(u, &key)?;
        if let Some(llm) = &u.llm {
            let sources = llm.key_sources();
            if sources.len() != 1 {
                return Err(ConfigError::invalid(
                    format!("{key}.llm"),
                    format!(
                        "set exactly one of api_key_env, api_key_file, api_keys_env and \
                         api_keys_file (found {})",
                        if sources.is_empty() {
                            "none".to_string()
                        } else {
                            sources.join(", ")
                        }
                    ),
                ));
            }
            if llm.api_keys_env.as_ref().is_some_and(Vec::is_empty) {
                return Err(ConfigError::invalid(
                    format!("{key}.llm.api_keys_env"),
                    "needs at least one variable name",
                ));
            }
        }
    }

    let mut route_names = HashSet::new();
    let mut route_upstreams = Vec::with_capacity(config.routes.len());
    let mut route_fallbacks = Vec::with_capacity(config.routes.len());
    for (i, r) in config.routes.iter().enumerate() {
        let key = format!("routes[{i}]");
        if r.name.is_empty() {
            return Err(ConfigError::invalid(
                format!("{key}.name"),
                "must not be empty",
            ));
        }
        if !route_names.insert(r.name.as_str()) {
            return Err(ConfigError::invalid(
                format!("{key}.name"),
                format!("duplicate route name {:?}", r.name),
            ));
        }
        let Some(&upstream) = upstream_names.get(r.upstream.as_str()) else {
            return Err(ConfigError::invalid(
                format!("{key}.upstream"),
                format!("unknown upstream {:?}", r.upstream),
            ));
        };
        route_upstreams.push(upstream);
        let fallbacks = groups::validate_fallback(config, &upstream_names, i, upstream)?;
        groups::validate_model_map(config, i, upstream, &fallbacks)?;
        route_fallbacks.push(fallbacks);
        // The route's LLM offer (models, the front door, the cache) is about a provider.
        let llm_upstream = config
            .upstreams
            .get(upstream)
            .is_some_and(|u| u.llm.is_some());
        if r.llm.is_some() && !llm_upstream {
            return Err(ConfigError::invalid(
                format!("{key}.llm"),
                format!(
                    "needs an LLM upstream: upstream {:?} has no [upstreams.llm]",
                    r.upstream
                ),
            ));
        }
        if !r.path_prefix.starts_with('/') {
            return Err(ConfigError::invalid(
                format!("{key}.path_prefix"),
                "must start with '/'",
            ));
        }
        if let Some(host) = &r.host {
            let bare = host.strip_prefix("*.").unwrap_or(host);
            if bare.is_empty()
                || bare.contains('*')
                || http::uri::Authority::try_from(bare).is_err()
            {
                return Err(ConfigError::invalid(
                    format!("{key}.host"),
                    format!("{host:?} is not a host name or a `*.domain` wildcard"),
                ));
            }
        }
        if let Some(rewrite) = &r.rewrite_prefix {
            if r.strip_prefix {
                return Err(ConfigError::invalid(
                    format!("{key}.rewrite_prefix"),
                    "cannot be combined with strip_prefix = true",
                ));
            }
            if !rewrite.starts_with('/') {
                return Err(ConfigError::invalid(
                    format!("{key}.rewrite_prefix"),
                    "must start with '/'",
                ));
            }
        }
    }
    let allowlist = validate_plugins(config, &route_names)?;
    if let Some(c) = &config.cluster {
        cluster::validate_cluster(c)?;
    }
    cluster::validate_cache_backend(config)?;
    Ok(Resolved {
        request_id_header,
        route_upstreams,
        route_fallbacks,
        targets,
        allowlist,
    })
}

/// Schemes a plugin `command` may use.
pub const PLUGIN_SCHEMES: [&str; 5] = ["builtin://", "file://", "grpc://", "grpcs://", "oci://"];

fn validate_plugins(
    config: &Config,
    route_names: &HashSet<&str>,
) -> Result<Allowlist, ConfigError> {
    let allowlist = Allowlist::parse(&config.plugin_runtime.command_allowlist)
        .map_err(|e| ConfigError::invalid("plugin_runtime.command_allowlist", e))?;
    if let Some((key, message)) = config.plugin_runtime.sandbox.problem() {
        return Err(ConfigError::invalid(
            format!("plugin_runtime.sandbox.{key}"),
            message,
        ));
    }
    let mut names = HashSet::new();
    for (i, p) in config.plugins.iter().enumerate() {
        let key = format!("plugins[{i}]");
        if p.name.is_empty() {
            return Err(ConfigError::invalid(
                format!("{key}.name"),
                "must not be empty",
            ));
        }
        if !names.insert(p.name.as_str()) {
            return Err(ConfigError::invalid(
                format!("{key}.name"),
                format!("duplicate plugin name {:?}", p.name),
            ));
        }
        if !PLUGIN_SCHEMES
            .iter()
            .any(|s| p.effective_command().starts_with(s))
        {
            return Err(ConfigError::invalid(
                format!("{key}.command"),
                format!(
                    "{:?} must start with one of {}",
                    p.command,
                    PLUGIN_SCHEMES.join(", ")
                ),
            ));
        }
        for (j, route) in p.routes.iter().enumerate() {
            if !route_names.contains(route.as_str()) {
                return Err(ConfigError::invalid(
                    format!("{key}.routes[{j}]"),
                    format!("unknown route {route:?}"),
                ));
            }
        }
        for (name, value) in &p.env {
            if let Some(why) =
                super::env_refusal(name, value, &config.plugin_runtime.env_allow_names)
            {
                return Err(ConfigError::invalid(format!("{key}.env.{name}"), why));
            }
        }
        if !(p.config.is_object() || p.config.is_null()) {
            return Err(ConfigError::invalid(
                format!("{key}.config"),
                "must be a table of plugin settings",
            ));
        }
    }
    Ok(allowlist)
}

fn readable_file(key: &str, path: &Path) -> Result<(), ConfigError> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(ConfigError::invalid(
            key,
            format!("{} is not a regular file", path.display()),
        )),
        Err(e) => Err(ConfigError::invalid(
            key,
            format!("cannot read {}: {e}", path.display()),
        )),
    }
}

/// The balancing, ejection and health-check keys of one upstream (`key` is
/// `upstreams[i]`); their ranges are checked already.
fn validate_balance(u: &super::UpstreamConfig, key: &str) -> Result<(), ConfigError> {
    use super::{Balance, HashOn};
    if u.max_pending.is_some() && u.max_connections.is_none() {
        return Err(ConfigError::invalid(
            format!("{key}.max_pending"),
            "counts requests waiting for one of max_connections: set max_connections too",
        ));
    }
    if !u.weights.is_empty() {
        if u.balance != Balance::Weighted {
            return Err(ConfigError::invalid(
                format!("{key}.weights"),
                "is only used with balance = \"weighted\"",
            ));
        }
        if u.weights.len() != u.targets.len() {
            return Err(ConfigError::invalid(
                format!("{key}.weights"),
                format!(
                    "needs one weight per target ({} targets, {} weights)",
                    u.targets.len(),
                    u.weights.len()
                ),
            ));
        }
    }
    match (&u.hash_on, u.balance) {
        (None, Balance::ConsistentHash) => {
            return Err(ConfigError::invalid(
                format!("{key}.hash_on"),
                "is required with balance = \"consistent_hash\"",
            ));
        }
        (Some(_), b) if b != Balance::ConsistentHash => {
            return Err(ConfigError::invalid(
                format!("{key}.hash_on"),
                "is only used with balance = \"consistent_hash\"",
            ));
        }
        (Some(HashOn::Header(name)), _) if http::HeaderName::try_from(name.as_str()).is_err() => {
            return Err(ConfigError::invalid(
                format!("{key}.hash_on.header"),
                format!("{name:?} is not a valid header name"),
            ));
        }
        (Some(HashOn::Cookie(name)), _)
            if name.is_empty() || name.contains([';', '=', ' ', ',']) =>
        {
            return Err(ConfigError::invalid(
                format!("{key}.hash_on.cookie"),
                format!("{name:?} is not a valid cookie name"),
            ));
        }
        _ => {}
    }
    if let Some(hc) = &u.health_check {
        let path_ok =
            hc.path.starts_with('/') && http::uri::PathAndQuery::try_from(hc.path.as_str()).is_ok();
        if !path_ok {
            return Err(ConfigError::invalid(
                format!("{key}.health_check.path"),
                format!("{:?} must be a path starting with '/'", hc.path),
            ));
        }
    }
    Ok(())
}
