//! Plugin command security: `file://` path rules, the command allowlist, and the SSRF
//! guard for `grpc://`/`grpcs://` targets.
//!
//! `file://` paths must be absolute, free of shell metacharacters, resolve (after
//! symlinks and `..`) to a regular executable file, and, when path patterns are
//! allowlisted, match one of them *after* canonicalisation (globs with literal
//! separators). `grpc://` hosts are resolved without the system resolver, every address
//! is canonicalised and checked against the IANA special-purpose ranges (also the IPv4
//! address a NAT64, 6to4, Teredo or SIIT address embeds), and the connection then goes
//! to the checked address, so DNS rebinding cannot swap it. [`check_grpc_target`] is
//! that whole check, shared by plugin creation and validation.

pub use super::addr::{canonical, embedded_ipv4, parse_ip_literal};
pub use super::ranges::{Internal, is_internal, special_purpose};
use crate::config::Allowlist;
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

/// The operator's policy (from `[plugin_runtime]`, `PLUGIN_COMMAND_ALLOWLIST`,
/// `ALLOW_INTERNAL_NETWORK_ACCESS` and `PLUGIN_BLOCK_INTERNAL_URLS`).
#[derive(Debug, Clone, Default)]
pub struct Policy {
    allowlist: Allowlist,
    allow_internal: bool,
    block_internal: bool,
}

impl SecurityError {
    /// True when the refusal is that something does not exist yet (a path or a host
    /// name that does not resolve), which a later retry may find; every other rule is
    /// the operator's policy.
    pub fn is_missing(&self) -> bool {
        self.rule.starts_with("cannot resolve")
    }

    /// The plugin error this refusal becomes.
    pub fn into_plugin_error(self) -> crate::plugin::PluginError {
        if self.is_missing() {
            crate::plugin::PluginError::Load(self.to_string())
        } else {
            crate::plugin::PluginError::Refused(self.to_string())
        }
    }
}

impl Policy {
    /// Parses allowlist entries ([`Allowlist::parse`]): path globs (`/opt/plugins/*`),
    /// `grpc://CIDR` and `grpc://HOSTGLOB[:PORT]`.
    pub fn new(allowlist: &[String], allow_internal: bool) -> Result<Policy, String> {
        Ok(Self::from_allowlist(
            Allowlist::parse(allowlist)?,
            allow_internal,
        ))
    }

    /// A policy over an allowlist validation already parsed
    /// ([`Resolved::allowlist`](crate::config::Resolved::allowlist)).
    pub fn from_allowlist(allowlist: Allowlist, allow_internal: bool) -> Policy {
        Policy {
            allowlist,
            allow_internal,
            block_internal: false,
        }
    }

    /// With `block`, internal addresses are refused even when allowlisted or allowed
    /// (`PLUGIN_BLOCK_INTERNAL_URLS=true`: the stricter setting wins).
    pub fn block_internal(mut self, block: bool) -> Policy {
        self.block_internal = block;
        self
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
        if !self.allowlist.paths.is_empty() {
            let matches = |p: &Path| self.allowlist.paths.iter().any(|(_, g)| g.is_match(p));
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
                        self.allowlist
                            .paths
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
        !self.allowlist.paths.is_empty()
    }

    /// Whether an allowlisted host pattern names `host:port`.
    fn host_allowed(&self, host: &str, port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        self.allowlist
            .hosts
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
        let any_grpc_rule = !self.allowlist.hosts.is_empty() || !self.allowlist.cidrs.is_empty();
        for addr in addrs {
            let ip = canonical(*addr);
            let in_cidr = self.allowlist.cidrs.iter().any(|n| n.contains(&ip));
            if any_grpc_rule && !host_ok && !in_cidr {
                return Err(refuse(format!(
                    "{ip} matches no grpc:// entry of PLUGIN_COMMAND_ALLOWLIST"
                )));
            }
            if let Some(why) = special_purpose(ip)
                && self.block_internal
            {
                return Err(refuse(format!(
                    "{host} resolves to the internal address {ip} ({why}) and PLUGIN_BLOCK_INTERNAL_URLS is set"
                )));
            }
            if let Some(why) = special_purpose(ip)
                && !(self.allow_internal || in_cidr || host_ok)
            {
                return Err(refuse(format!(
                    "{host} resolves to the internal address {ip} ({why}); set ALLOW_INTERNAL_NETWORK_ACCESS=true or allowlist grpc://CIDR"
                )));
            }
        }
        Ok(SocketAddr::new(canonical(addrs[0]), port))
    }
}

/// A `grpc://` or `grpcs://` plugin target that passed [`check_grpc_target`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcTarget {
    /// The checked address; the channel connects to exactly this one.
    pub addr: SocketAddr,
    /// The host as written in the command, for TLS server-name verification.
    pub host: String,
    /// Whether the command is `grpcs://` (TLS).
    pub tls: bool,
}

/// Splits a `grpc://HOST:PORT` or `grpcs://HOST:PORT` command, resolves the host (IP
/// literals in every `inet_aton` form first, then hickory, never the C resolver) and
/// checks every address with [`Policy::check_addresses`]. This is the whole check before
/// a `grpc://` plugin is dialled; creating and validating a plugin both call it.
pub async fn check_grpc_target(
    policy: &Policy,
    command: &str,
) -> Result<GrpcTarget, SecurityError> {
    let refuse = |rule: String| SecurityError {
        command: command.to_string(),
        rule,
    };
    let (tls, rest) = match command.strip_prefix("grpcs://") {
        Some(rest) => (true, rest),
        None => match command.strip_prefix("grpc://") {
            Some(rest) => (false, rest),
            None => return Err(refuse("must start with grpc:// or grpcs://".into())),
        },
    };
    let (host, port) = super::dial::split_host_port(rest)
        .ok_or_else(|| refuse("expected grpc://HOST:PORT".into()))?;
    let addrs = super::dial::resolve(&host).await.map_err(refuse)?;
    let addr = policy.check_addresses(command, &host, port, &addrs)?;
    Ok(GrpcTarget { addr, host, tls })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocking_internal_addresses_wins_over_every_allowance() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let public: IpAddr = "93.184.216.34".parse().unwrap();
        let entries = [
            "grpc://127.0.0.0/8".to_string(),
            "grpc://plugin.local".into(),
        ];
        let open = Policy::new(&entries, true).unwrap();
        assert!(open.check_addresses("c", "x", 9, &[lo]).is_ok());
        let blocked = open.block_internal(true);
        for host in ["x", "plugin.local"] {
            let err = blocked.check_addresses("c", host, 9, &[lo]).unwrap_err();
            assert!(err.rule.contains("PLUGIN_BLOCK_INTERNAL_URLS"), "{err}");
        }
        assert!(
            Policy::new(&[], false)
                .unwrap()
                .block_internal(true)
                .check_addresses("c", "x", 9, &[public])
                .is_ok()
        );
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
    fn embedded_internal_addresses_are_refused_by_name() {
        let deny = Policy::new(&[], false).unwrap();
        for (text, shown) in [
            ("64:ff9b::a9fe:a9fe", "NAT64 of 169.254.169.254"),
            ("2002:a00:1::1", "6to4 of 10.0.0.1"),
            ("::ffff:0:7f00:1", "IPv4-translated (SIIT) of 127.0.0.1"),
            ("fec0::1", "site-local fec0::/10"),
            ("198.18.0.1", "benchmarking 198.18.0.0/15"),
        ] {
            let ip: IpAddr = text.parse().unwrap();
            let err = deny.check_addresses("c", text, 1, &[ip]).unwrap_err();
            assert!(err.rule.contains("internal address"), "{err}");
            assert!(err.rule.contains(&ip.to_string()), "{err}");
            assert!(err.rule.contains(shown), "{err}");
        }
        let nat64_public: IpAddr = "64:ff9b::808:808".parse().unwrap();
        assert_eq!(
            deny.check_addresses("c", "x", 1, &[nat64_public]).unwrap(),
            SocketAddr::new(nat64_public, 1)
        );
        let open = Policy::new(&[], true).unwrap();
        assert!(
            open.check_addresses("c", "x", 1, &["64:ff9b::7f00:1".parse().unwrap()])
                .is_ok()
        );
    }

    #[tokio::test]
    async fn grpc_targets_are_split_resolved_and_checked() {
        let deny = Policy::new(&[], false).unwrap();
        for command in [
            "grpc://[64:ff9b::a9fe:a9fe]:80",
            "grpcs://[2002:a00:1::1]:443",
            "grpc://[::ffff:0:7f00:1]:50051",
            "grpc://[fec0::1]:80",
            "grpc://198.18.0.1:80",
            "grpc://240.0.0.1:80",
            "grpc://0x7f.1:80",
        ] {
            let err = check_grpc_target(&deny, command).await.unwrap_err();
            assert_eq!(err.command, command);
            assert!(err.rule.contains("internal address"), "{err}");
        }
        let target = check_grpc_target(&deny, "grpcs://[64:ff9b::808:808]:443")
            .await
            .unwrap();
        assert_eq!(
            target,
            GrpcTarget {
                addr: "[64:ff9b::808:808]:443".parse().unwrap(),
                host: "64:ff9b::808:808".into(),
                tls: true,
            }
        );
        // Mapped addresses are dialled as the IPv4 address they denote.
        let mapped = check_grpc_target(&deny, "grpc://[::ffff:8.8.8.8]:80/")
            .await
            .unwrap();
        assert_eq!(mapped.addr, "8.8.8.8:80".parse().unwrap());
        assert!(!mapped.tls);
        let rule = |r: Result<GrpcTarget, SecurityError>| r.unwrap_err().rule;
        assert!(rule(check_grpc_target(&deny, "grpc://8.8.8.8").await).contains("HOST:PORT"));
        assert!(rule(check_grpc_target(&deny, "http://8.8.8.8:80").await).contains("grpc://"));
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
