//! `plugin_runtime.command_allowlist` (`PLUGIN_COMMAND_ALLOWLIST`): `file://` path globs,
//! `grpc://CIDR` and `grpc://HOSTGLOB[:PORT]` entries.
//!
//! The grammar is configuration, so `validate` refuses a bad entry before anything
//! starts; the security policy of remote plugins applies the parsed lists.

use globset::{Glob, GlobMatcher};
use ipnet::IpNet;

/// The parsed allowlist.
#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    /// `file://` path patterns, as written and compiled (literal separators).
    pub paths: Vec<(String, GlobMatcher)>,
    /// `grpc://CIDR` networks.
    pub cidrs: Vec<IpNet>,
    /// `grpc://HOSTGLOB[:PORT]` host patterns (lowercase) and their port, if one is given.
    pub hosts: Vec<(GlobMatcher, Option<u16>)>,
}

impl Allowlist {
    /// Parses allowlist entries: path globs (`/opt/plugins/*`), `grpc://CIDR` and
    /// `grpc://HOSTGLOB[:PORT]`; blank entries are skipped.
    pub fn parse(entries: &[String]) -> Result<Allowlist, String> {
        let mut allowlist = Allowlist::default();
        for entry in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            if let Some(rest) = entry
                .strip_prefix("grpc://")
                .or_else(|| entry.strip_prefix("grpcs://"))
            {
                if let Ok(net) = rest.parse::<IpNet>() {
                    allowlist.cidrs.push(net);
                    continue;
                }
                let (host, port) = match rest.rsplit_once(':') {
                    Some((h, "*")) => (h, None),
                    Some((h, p)) => (
                        h,
                        Some(
                            p.parse::<u16>()
                                .map_err(|_| format!("allowlist entry {entry:?}: bad port"))?,
                        ),
                    ),
                    None => (rest, None),
                };
                let glob = Glob::new(&host.to_ascii_lowercase())
                    .map_err(|e| format!("allowlist entry {entry:?}: {e}"))?
                    .compile_matcher();
                allowlist.hosts.push((glob, port));
            } else if entry.starts_with('/') {
                let glob = globset::GlobBuilder::new(entry)
                    .literal_separator(true)
                    .build()
                    .map_err(|e| format!("allowlist entry {entry:?}: {e}"))?
                    .compile_matcher();
                allowlist.paths.push((entry.to_string(), glob));
            } else {
                return Err(format!(
                    "allowlist entry {entry:?} must be an absolute path glob, grpc://CIDR or grpc://HOST[:PORT]"
                ));
            }
        }
        Ok(allowlist)
    }
}
