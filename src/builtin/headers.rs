//! `builtin://headers`: add, set, remove and rename request or response headers.
//!
//! Attached to `pre_auth`/`post_auth` it edits the request; attached to `on_response`
//! it edits the response. Forbidden (framing, hop-by-hop) names are refused at load.

use super::{header_name, header_value, manifest, settings};
use crate::config::PluginConfig;
use crate::plugin::{
    Decision, HeaderMutations, Hook, HookFuture, HookType, Manifest, Mutations, Plugin,
    PluginError, RequestView, ResponseMutations, ResponseView, check_header,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use std::collections::BTreeMap;

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    set: BTreeMap<String, String>,
    #[serde(default)]
    add: BTreeMap<String, String>,
    #[serde(default)]
    remove: Vec<String>,
    #[serde(default)]
    rename: BTreeMap<String, String>,
}

/// The header rules plugin.
pub struct Headers {
    manifest: Manifest,
    set: Vec<(HeaderName, HeaderValue)>,
    add: Vec<(HeaderName, HeaderValue)>,
    remove: Vec<HeaderName>,
    rename: Vec<(HeaderName, HeaderName)>,
}

impl Headers {
    /// Builds the rules from the instance config.
    pub fn new(config: &PluginConfig) -> Result<Headers, PluginError> {
        let s: Settings = settings(config)?;
        let name = &config.name;
        let pairs = |map: &BTreeMap<String, String>| -> Result<Vec<(HeaderName, HeaderValue)>, PluginError> {
            map.iter()
                .map(|(k, v)| Ok((header_name(name, k)?, header_value(name, v)?)))
                .collect()
        };
        let rules = Headers {
            manifest: manifest(
                "headers",
                &[Hook::PreAuth, Hook::PostAuth, Hook::OnResponseHeaders],
            ),
            set: pairs(&s.set)?,
            add: pairs(&s.add)?,
            remove: s
                .remove
                .iter()
                .map(|n| header_name(name, n))
                .collect::<Result<_, _>>()?,
            rename: s
                .rename
                .iter()
                .map(|(from, to)| Ok((header_name(name, from)?, header_name(name, to)?)))
                .collect::<Result<_, PluginError>>()?,
        };
        for (n, v) in rules.set.iter().chain(rules.add.iter()) {
            check_header(n, Some(v))
                .map_err(|e| PluginError::Load(format!("plugins.{name}.config: {e}")))?;
        }
        for n in rules
            .remove
            .iter()
            .chain(rules.rename.iter().flat_map(|(a, b)| [a, b]))
        {
            check_header(n, None)
                .map_err(|e| PluginError::Load(format!("plugins.{name}.config: {e}")))?;
        }
        Ok(rules)
    }

    /// The mutations for `headers`: renames first, then the configured removes/sets/adds.
    fn mutations(&self, headers: &HeaderMap) -> HeaderMutations {
        let mut m = HeaderMutations {
            set: self.set.clone(),
            add: self.add.clone(),
            remove: self.remove.clone(),
        };
        for (from, to) in &self.rename {
            let values: Vec<HeaderValue> = headers.get_all(from).iter().cloned().collect();
            if !values.is_empty() {
                m.remove.push(from.clone());
                m.add.extend(values.into_iter().map(|v| (to.clone(), v)));
            }
        }
        m
    }
}

impl Plugin for Headers {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn on_request<'a>(
        &'a self,
        _stage: HookType,
        request: &'a RequestView<'a>,
    ) -> HookFuture<'a, Decision> {
        HookFuture::ok(Decision::Continue(Mutations {
            headers: self.mutations(request.headers),
            ..Mutations::default()
        }))
    }

    fn on_response_headers<'a>(
        &'a self,
        response: &'a ResponseView<'a>,
    ) -> HookFuture<'a, ResponseMutations> {
        HookFuture::ok(ResponseMutations {
            headers: self.mutations(response.headers),
            ..ResponseMutations::default()
        })
    }
}
