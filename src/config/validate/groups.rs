//! The checks of a route's upstream groups: its fallbacks (they exist, differ, and are
//! LLM groups exactly when the primary is) and its `model_map` (every name has a model,
//! and a `provider/` name a family among the groups).

use crate::config::{Config, ConfigError};
use std::collections::HashMap;

/// The provider family of upstream `u`, when it is an LLM upstream.
fn provider_of(config: &Config, u: usize) -> Option<crate::config::Provider> {
    config.upstreams.get(u)?.llm.as_ref().map(|l| l.provider)
}

/// Every `model_map` entry of route `i` names at least one model, and a `provider/`
/// name only a family among the route's groups (`primary` and `fallbacks`).
pub(super) fn validate_model_map(
    config: &Config,
    i: usize,
    primary: usize,
    fallbacks: &[usize],
) -> Result<(), ConfigError> {
    let Some(llm) = &config.routes[i].llm else {
        return Ok(());
    };
    let families: Vec<_> = std::iter::once(primary)
        .chain(fallbacks.iter().copied())
        .filter_map(|u| provider_of(config, u))
        .collect();
    for (client, targets) in &llm.model_map {
        let key = format!("routes[{i}].llm.model_map.{client:?}");
        if targets.names().is_empty() {
            return Err(ConfigError::invalid(key, "names no model"));
        }
        for name in targets.names() {
            let (family, model) = crate::config::split_family(name);
            if model.is_empty() {
                return Err(ConfigError::invalid(
                    key,
                    format!("{name:?} names no model"),
                ));
            }
            if let Some(f) = family.filter(|f| !families.contains(f)) {
                let f = f.as_str();
                return Err(ConfigError::invalid(
                    key,
                    format!("{name:?} is for {f}, and the route has no {f} upstream"),
                ));
            }
        }
    }
    Ok(())
}

/// The fallback groups of route `i` (primary group `primary`) as upstream indices: each
/// must exist, differ from the primary and the others, and be an LLM upstream exactly
/// when the primary is.
pub(super) fn validate_fallback(
    config: &Config,
    upstream_names: &HashMap<&str, usize>,
    i: usize,
    primary: usize,
) -> Result<Vec<usize>, ConfigError> {
    let route = &config.routes[i];
    let provider = |u: usize| provider_of(config, u);
    let mut out = Vec::with_capacity(route.fallback.len());
    for (j, name) in route.fallback.iter().enumerate() {
        let key = format!("routes[{i}].fallback[{j}]");
        let Some(&index) = upstream_names.get(name.as_str()) else {
            return Err(ConfigError::invalid(
                key,
                format!("unknown upstream {name:?}"),
            ));
        };
        if index == primary || out.contains(&index) {
            return Err(ConfigError::invalid(
                key,
                format!("upstream {name:?} is already the route's upstream or an earlier fallback"),
            ));
        }
        // LLM groups of another family are fine: an OpenAI chat request is translated
        // for each (and other requests skip them); a plain group and an LLM group are
        // not interchangeable.
        if provider(index).is_some() != provider(primary).is_some() {
            let show =
                |p: Option<crate::config::Provider>| p.map_or("no LLM provider", |p| p.as_str());
            return Err(ConfigError::invalid(
                key,
                format!(
                    "upstream {name:?} ({}) cannot stand in for the route's upstream {:?} ({}): \
                     a fallback of an LLM route must be an LLM upstream, and of a plain route a plain one",
                    show(provider(index)),
                    route.upstream,
                    show(provider(primary)),
                ),
            ));
        }
        out.push(index);
    }
    if route.retry.on.is_empty() && !route.fallback.is_empty() {
        return Err(ConfigError::invalid(
            format!("routes[{i}].retry.on"),
            "is empty, so the fallback groups could never be used",
        ));
    }
    Ok(out)
}
