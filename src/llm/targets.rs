//! Which provider model a client's model name means on a route: `model_map` gives one
//! `provider/model` name or a list of them (the providers in the order tried), and a
//! name the map does not know stands for itself. Only the provider families the gateway
//! knows (`openai/`, `anthropic/`) are prefixes: `meta-llama/Llama-3` stays one name.

use crate::config::{ModelTargets, Provider};
use std::collections::BTreeMap;

/// One model a request may be sent as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The family it is for; `None`: the family of the route's own upstream.
    pub provider: Option<Provider>,
    /// The model name sent to the provider.
    pub model: String,
}

pub use crate::config::split_family as split;

/// The targets of `model` by `map`, in order; never empty.
pub fn targets(map: Option<&BTreeMap<String, ModelTargets>>, model: &str) -> Vec<Target> {
    let names = map
        .and_then(|m| m.get(model))
        .map(ModelTargets::names)
        .filter(|names| !names.is_empty());
    let one = [model.to_string()];
    names
        .unwrap_or(&one)
        .iter()
        .map(|name| {
            let (provider, model) = split(name);
            Target {
                provider,
                model: model.to_string(),
            }
        })
        .collect()
}

/// The model sent to a group of `family` (the route's own family is `own`): the first
/// target of that family, or `None` when no target is for it.
pub fn model_for(targets: &[Target], family: Provider, own: Provider) -> Option<&str> {
    targets
        .iter()
        .find(|t| t.provider.unwrap_or(own) == family)
        .map(|t| t.model.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_families_are_prefixes() {
        assert_eq!(split("openai/gpt-4o"), (Some(Provider::Openai), "gpt-4o"));
        assert_eq!(
            split("anthropic/claude-3-5-haiku"),
            (Some(Provider::Anthropic), "claude-3-5-haiku")
        );
        assert_eq!(split("meta-llama/Llama-3"), (None, "meta-llama/Llama-3"));
        assert_eq!(split("openaix/m"), (None, "openaix/m"));
    }

    #[test]
    fn a_list_orders_the_families_and_names_their_models() {
        let mut map = BTreeMap::new();
        map.insert(
            "smart".to_string(),
            ModelTargets::Many(vec!["anthropic/claude-s".into(), "openai/gpt-4o".into()]),
        );
        map.insert("fast".to_string(), ModelTargets::One("gpt-4o-mini".into()));
        let t = targets(Some(&map), "smart");
        assert_eq!(t[0].provider, Some(Provider::Anthropic));
        assert_eq!(
            model_for(&t, Provider::Openai, Provider::Openai),
            Some("gpt-4o")
        );
        let t = targets(Some(&map), "fast");
        assert_eq!(
            model_for(&t, Provider::Openai, Provider::Openai),
            Some("gpt-4o-mini")
        );
        assert_eq!(model_for(&t, Provider::Anthropic, Provider::Openai), None);
        let t = targets(Some(&map), "other");
        assert_eq!(
            t,
            vec![Target {
                provider: None,
                model: "other".into()
            }]
        );
    }
}
