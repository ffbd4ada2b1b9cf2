//! Plugin command security: `file://` path rules, the command allowlist, and the SSRF
//! guard for `grpc://`/`grpcs://` targets.
//!
//! `file://` paths must be absolute, free of shell metacharacters, resolve (after
//! symlinks and `..`) to a regular executable file, and, when path patterns are
//! allowlisted, match one of them *after* canonicalisation (globs with literal
//! separators). `grpc://` hosts are resolved without the system resolver, every address
//! is canonicalised and checked against internal ranges, and the connection then goes
//! to the checked address, so DNS rebinding cannot swap it.

pub use super::addr::{canonical, is_internal, parse_ip_literal};
use globset::{Glob, GlobMatcher};
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Directories where plugins are expected; others get a warning.
pub const STANDARD_DIRS: [&str; 4] = [
    "/usr/lib/microgateway/plugins",
    "/opt/microgateway/plugins",
    "/var/lib/microgateway/plugins",
    "/etc/microgateway/plugins",
];

/// Characters refused anywhere in a plugin command.
const SHELL_META: &[char] = &[
    ';', '|', '&', '$', '`', '<', '>', '(', ')', '{', '}', '*', '?', '[', ']', '!', '~', '\'', '"',
    '\\', ' ', '\t', '\n', '\r', '\0',
];

/// A refused plugin command; the message names the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plugin command {command:?} refused: {rule}")]
pub struct SecurityError {
    /// The command as configured.
    pub command: String,
    /// Which rule refused it, in words.
    pub rule: String,
}

/// The operator's policy (from `[plugin_security]`, `PLUGIN_COMMAND_ALLOWLIST` and
/// `ALLOW_INTERNAL_NETWORK_ACCESS`).
#[derive(Debug, Clone, Default)]
pub struct Policy {
    paths: Vec<(String, GlobMatcher)>,
    cidrs: Vec<IpNet>,
    hosts: Vec<(GlobMatcher, Option<u16>)>,
    allow_internal: bool,
}

impl Policy {
    /// Parses allowlist entries: path globs (`/opt/plugins/*`), `grpc://CIDR` and
    /// `grpc://HOSTGLOB[:PORT]`.
    pub fn new(allowlist: &[String], allow_internal: bool) -> Result<Policy, String> {
        let mut policy = Policy {
            allow_internal,
            ..Policy::default()
        };
        for entry in allowlist.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            if let Some(rest) = entry
                .strip_prefix("grpc://")
                .or_else(|| entry.strip_prefix("grpcs://"))
            {
                if let Ok(net) = rest.parse::<IpNet>() {
                    policy.cidrs.push(net);
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
                policy.hosts.push((glob, port));
            } else if entry.starts_with('/') {
                let glob = globset::GlobBuilder::new(entry)
                    .literal_separator(true)
                    .build()
                    .map_err(|e| format!("allowlist entry {entry:?}: {e}"))?
                    .compile_matcher();
                policy.paths.push((entry.to_string(), glob));
            } else {
                return Err(format!(
                    "allowlist entry {entry:?} must be an absolute path glob, grpc://CIDR or grpc://HOST[:PORT]"
                ));
            }
        }
        Ok(policy)
    }

    /// Checks a `file://` command and returns the canonical executable path.
    pub fn check_file(&self, command: &str) -> Result<PathBuf, SecurityError> {
        let refuse = |rule: String| SecurityError {
            command: command.to_string(),
            rule,
        };
        let raw = command
            .strip_prefix("file://")
            .ok_or_else(|| refuse("must start with file://".into()))?;
        if let Some(c) = raw.chars().find(|c| SHELL_META.contains(c)) {
            return Err(refuse(format!("contains the shell metacharacter {c:?}")));
        }
        if !raw.starts_with('/') {
            return Err(refuse("path must be absolute (file:///abs/path)".into()));
        }
        let canonical =
            std::fs::canonicalize(raw).map_err(|e| refuse(format!("cannot resolve path: {e}")))?;
        let meta =
            std::fs::metadata(&canonical).map_err(|e| refuse(format!("cannot stat: {e}")))?;
        if !meta.is_file() {
            return Err(refuse(format!(
                "{} is not a regular file",
                canonical.display()
            )));
        }
        if meta.permissions().mode() & 0o111 == 0 {
            return Err(refuse(format!("{} is not executable", canonical.display())));
        }
        // Owner, mode, parent directories and file type; repeated on the opened
        // descriptor right before every spawn.
        super::exec::inspect(&canonical).map_err(refuse)?;
        if !self.paths.is_empty() {
            let matches = |p: &Path| self.paths.iter().any(|(_, g)| g.is_match(p));
            if !matches(&canonical) {
                let rule = if matches(Path::new(raw)) {
                    format!(
                        "resolves to {} (symlink or ..) outside PLUGIN_COMMAND_ALLOWLIST",
                        canonical.display()
                    )
                } else {
                    format!(
                        "{} matches no PLUGIN_COMMAND_ALLOWLIST path pattern ({})",
                        canonical.display(),
                        self.paths
                            .iter()
                            .map(|(p, _)| p.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                return Err(refuse(rule));
            }
        } else if !STANDARD_DIRS.iter().any(|d| canonical.starts_with(d)) {
            tracing::warn!(
                path = %canonical.display(),
                "plugin executable outside the standard plugin directories ({}); set PLUGIN_COMMAND_ALLOWLIST to restrict plugin paths",
                STANDARD_DIRS.join(", ")
            );
        }
        Ok(canonical)
    }

    /// True when the allowlist has `file://` path patterns (which then bind every path).
    pub fn has_path_rules(&self) -> bool {
        !self.paths.is_empty()
    }

    /// Whether an allowlisted host pattern names `host:port`.
    fn host_allowed(&self, host: &str, port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        self.hosts
            .iter()
            .any(|(g, p)| g.is_match(&host) && p.is_none_or(|p| p == port))
    }

    /// Checks resolved addresses of a `grpc://` target and returns the one to dial.
    pub fn check_addresses(
        &self,
        command: &str,
        host: &str,
        port: u16,
        addrs: &[IpAddr],
    ) -> Result<SocketAddr, SecurityError> {
        let refuse = |rule: String| SecurityError {
            command: command.to_string(),
            rule,
        };
        if addrs.is_empty() {
            return Err(refuse(format!("{host} did not resolve to any address")));
        }
        let host_ok = self.host_allowed(host, port);
        let any_grpc_rule = !self.hosts.is_empty() || !self.cidrs.is_empty();
        for addr in addrs {
            let ip = canonical(*addr);
            let in_cidr = self.cidrs.iter().any(|n| n.contains(&ip));
            if any_grpc_rule && !host_ok && !in_cidr {
                return Err(refuse(format!(
                    "{ip} matches no grpc:// entry of PLUGIN_COMMAND_ALLOWLIST"
                )));
            }
            if is_internal(ip) && !(self.allow_internal || in_cidr || host_ok) {
                return Err(refuse(format!(
                    "{host} resolves to the internal address {ip}; set ALLOW_INTERNAL_NETWORK_ACCESS=true or allowlist grpc://CIDR"
                )));
            }
        }
        Ok(SocketAddr::new(canonical(addrs[0]), port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inet_aton_forms_are_loopback() {
        for form in [
            "127.1",
            "2130706433",
            "0x7f.1",
            "0177.0.0.1",
            "127.0.0.1",
            "0x7f000001",
            "[::1]",
            "::ffff:127.0.0.1",
            "[::ffff:7f00:1]",
        ] {
            let ip = parse_ip_literal(form).unwrap_or_else(|| panic!("{form} not parsed"));
            assert!(is_internal(ip), "{form} -> {ip}");
            assert!(canonical(ip).is_loopback(), "{form} -> {ip}");
        }
        assert_eq!(parse_ip_literal("0"), Some("0.0.0.0".parse().unwrap()));
        assert_eq!(parse_ip_literal("example.com"), None);
        assert_eq!(parse_ip_literal("256.1.1.1"), None);
    }

    #[test]
    fn internal_ranges() {
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "fe80::1",
            "fd00::1",
            "::",
            "::7f00:1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "172.32.0.1", "100.128.0.1", "2001:4860::8888"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn address_policy() {
        let deny = Policy::new(&[], false).unwrap();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let err = deny
            .check_addresses("grpc://x:1", "x", 1, &[lo])
            .unwrap_err();
        assert!(err.rule.contains("ALLOW_INTERNAL_NETWORK_ACCESS"), "{err}");
        let public: IpAddr = "93.184.216.34".parse().unwrap();
        assert!(
            deny.check_addresses("grpc://x:1", "x", 1, &[public])
                .is_ok()
        );
        let cidr = Policy::new(&["grpc://127.0.0.0/8".into()], false).unwrap();
        assert_eq!(
            cidr.check_addresses("c", "x", 9, &[lo]).unwrap(),
            "127.0.0.1:9".parse().unwrap()
        );
        // An allowlist restricts public targets too.
        assert!(cidr.check_addresses("c", "x", 9, &[public]).is_err());
        let host = Policy::new(&["grpc://*.plugins.svc:50051".into()], false).unwrap();
        assert!(
            host.check_addresses("c", "a.plugins.svc", 50051, &["10.0.0.5".parse().unwrap()])
                .is_ok()
        );
        assert!(
            host.check_addresses("c", "a.plugins.svc", 50052, &["10.0.0.5".parse().unwrap()])
                .is_err()
        );
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert!(
            deny.check_addresses("c", "x", 1, &[public, mapped])
                .is_err()
        );
    }

    #[test]
    fn file_rules() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("plugin");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plain = dir.path().join("data");
        std::fs::write(&plain, "x").unwrap();
        let open = Policy::new(&[], false).unwrap();
        assert!(
            open.check_file(&format!("file://{}", exe.display()))
                .is_ok()
        );
        let rule = |cmd: &str, p: &Policy| p.check_file(cmd).unwrap_err().rule;
        assert!(rule("file://plugin", &open).contains("absolute"));
        assert!(rule("/abs/plugin", &open).contains("file://"));
        assert!(rule(&format!("file://{};rm", exe.display()), &open).contains("metacharacter"));
        assert!(rule(&format!("file://{}", plain.display()), &open).contains("not executable"));
        assert!(
            rule(&format!("file://{}", dir.path().display()), &open).contains("not a regular file")
        );
        let allowed = dir.path().join("allowed");
        std::fs::create_dir(&allowed).unwrap();
        let link = allowed.join("escape");
        std::os::unix::fs::symlink(&exe, &link).unwrap();
        let pattern = format!("{}/*", std::fs::canonicalize(&allowed).unwrap().display());
        let strict = Policy::new(
            &[pattern.clone(), format!("{}/*", allowed.display())],
            false,
        )
        .unwrap();
        assert!(
            rule(&format!("file://{}", link.display()), &strict)
                .contains("outside PLUGIN_COMMAND_ALLOWLIST")
        );
        // Literal separators: a pattern for the directory does not match deeper paths.
        let nested = allowed.join("sub");
        std::fs::create_dir(&nested).unwrap();
        let deep = nested.join("p");
        std::fs::copy(&exe, &deep).unwrap();
        assert!(rule(&format!("file://{}", deep.display()), &strict).contains("matches no"));
    }
}
