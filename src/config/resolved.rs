//! What validation computed on its way: the parsed forms of settings that would
//! otherwise be parsed again by every consumer (`Proxy::build`, `server::preflight` and
//! `microgateway check`).

use super::Allowlist;
use crate::target::TargetUrl;

/// A configuration's parsed parts, returned by [`Config::validate`](super::Config::validate)
/// for the configuration it checked; it holds only what validation proved.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// `server.request_id_header`, a valid header name.
    pub request_id_header: http::HeaderName,
    /// For each route (in configuration order), the index of its upstream in `upstreams`.
    pub route_upstreams: Vec<usize>,
    /// For each route, the indices of its `fallback` groups, in order.
    pub route_fallbacks: Vec<Vec<usize>>,
    /// For each upstream (in configuration order), its parsed targets, all of one scheme.
    pub targets: Vec<Vec<TargetUrl>>,
    /// `plugin_runtime.command_allowlist`, parsed.
    pub allowlist: Allowlist,
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn validation_hands_back_what_it_parsed() {
        let config = Config::from_toml(
            "[server]\nrequest_id_header = \"x-trace\"\n\
             [[upstreams]]\nname = \"a\"\ntargets = [\"http://127.0.0.1:1\"]\n\
             [[upstreams]]\nname = \"b\"\ntargets = [\"https://b.example/base\", \"https://c.example\"]\n\
             [[routes]]\nname = \"to-b\"\nupstream = \"b\"\n\
             [[routes]]\nname = \"to-a\"\nupstream = \"a\"\npath_prefix = \"/a\"\n\
             [plugin_runtime]\ncommand_allowlist = [\"/opt/microgateway/plugins/*\"]\n",
        )
        .unwrap();
        let resolved = config.validate().unwrap();
        assert_eq!(resolved.request_id_header, "x-trace");
        assert_eq!(resolved.route_upstreams, [1, 0]);
        assert_eq!(resolved.targets.len(), 2);
        assert_eq!(resolved.targets[1].len(), 2);
        assert!(resolved.targets[1][0].is_https());
        assert_eq!(resolved.allowlist.paths.len(), 1);
    }
}
