//! What a plugin process may do (`[plugin_runtime.sandbox]`), which environment
//! variables a plugin entry may set, and which it inherits by default.
//!
//! Both are configuration rules, so they live here, below every module that starts
//! processes: `validate` refuses a bad entry before anything runs, and the process
//! spawner checks the same rules again right before `exec`.

use serde::{Deserialize, Serialize};

/// Variables copied from the gateway's environment by default; everything else is dropped.
pub const DEFAULT_ENV_ALLOWLIST: [&str; 8] = [
    "PATH",
    "LANG",
    "LC_ALL",
    "TZ",
    "TMPDIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "RUST_LOG",
];

/// Limits applied to every `file://` and `oci://` plugin process between `fork` and
/// `exec`. Each one is off unless set, except `no_new_privs`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxConfig {
    /// `PR_SET_NO_NEW_PRIVS`: the plugin and its children can never gain privileges
    /// through setuid/setgid binaries or file capabilities.
    pub no_new_privs: bool,
    /// `RLIMIT_NOFILE`: most open file descriptors.
    pub max_open_files: Option<u64>,
    /// `RLIMIT_AS`: largest virtual address space in bytes.
    pub max_memory_bytes: Option<u64>,
    /// `RLIMIT_NPROC`: most processes (threads count too) of the plugin's user.
    pub max_processes: Option<u64>,
    /// `RLIMIT_CPU`: CPU seconds before the kernel kills the plugin.
    pub max_cpu_seconds: Option<u64>,
    /// `RLIMIT_FSIZE`: largest file the plugin may write, in bytes.
    pub max_file_bytes: Option<u64>,
    /// Landlock: the plugin sees the filesystem read-only, except its private socket
    /// directory (also its `TMPDIR`), `/dev/null` and `landlock_writable`. Refused at
    /// load where the kernel has no Landlock, never silently skipped.
    pub landlock: bool,
    /// Extra paths (directories or files) writable under `landlock`.
    pub landlock_writable: Vec<std::path::PathBuf>,
    /// Run plugins as this user id (the gateway must run as root to switch).
    pub uid: Option<u32>,
    /// Run plugins with this group id (defaults to `uid` when only `uid` is set).
    pub gid: Option<u32>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            no_new_privs: true,
            max_open_files: None,
            max_memory_bytes: None,
            max_processes: None,
            max_cpu_seconds: None,
            max_file_bytes: None,
            landlock: false,
            landlock_writable: Vec::new(),
            uid: None,
            gid: None,
        }
    }
}

impl SandboxConfig {
    /// The first setting out of range, as `(key, message)` relative to the table.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        let ranges: [(&'static str, Option<u64>, u64, u64); 5] = [
            ("max_open_files", self.max_open_files, 16, 1 << 20),
            ("max_memory_bytes", self.max_memory_bytes, 16 << 20, 1 << 44),
            ("max_processes", self.max_processes, 1, 1 << 22),
            ("max_cpu_seconds", self.max_cpu_seconds, 1, 1 << 32),
            ("max_file_bytes", self.max_file_bytes, 0, 1 << 44),
        ];
        for (key, value, min, max) in ranges {
            if let Some(v) = value
                && !(min..=max).contains(&v)
            {
                return Some((key, format!("must be between {min} and {max}, got {v}")));
            }
        }
        if self.landlock && !self.no_new_privs {
            return Some((
                "no_new_privs",
                "landlock needs no_new_privs = true (the kernel requires it)".into(),
            ));
        }
        if let Some(path) = self.landlock_writable.iter().find(|p| !p.is_absolute()) {
            return Some((
                "landlock_writable",
                format!("{} is not an absolute path", path.display()),
            ));
        }
        if self.gid.is_some() && self.uid.is_none() {
            return Some(("gid", "needs uid as well".into()));
        }
        None
    }
}

/// Exact names a plugin entry's `env` may not set: they make a dynamic loader, a
/// shell or an interpreter run code of the caller's choosing before the plugin's own.
const DENIED_NAMES: [&str; 27] = [
    "BASH_ENV",
    "ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "PROMPT_COMMAND",
    "IFS",
    "CDPATH",
    "GCONV_PATH",
    "GETCONF_DIR",
    "LOCPATH",
    "NLSPATH",
    "HOSTALIASES",
    "RESOLV_HOST_CONF",
    "RES_OPTIONS",
    "LOCALDOMAIN",
    "GLIBC_TUNABLES",
    "TMPDIR",
    "NODE_OPTIONS",
    "NODE_PATH",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "CLASSPATH",
    "PHPRC",
    "PHP_INI_SCAN_DIR",
    "GIT_EXEC_PATH",
];

/// Name prefixes a plugin entry's `env` may not set (loaders, interpreters, malloc
/// debugging hooks, exported shell functions).
const DENIED_PREFIXES: [&str; 12] = [
    "LD_",
    "DYLD_",
    "PERL",
    "PYTHON",
    "RUBY",
    "GEM_",
    "BUNDLE_",
    "LUA_",
    "TCL",
    "MALLOC_",
    "BASH_FUNC_",
    "NODE_",
];

/// Variables the gateway itself sets for the plugin protocol; never overridable.
const PROTOCOL_PREFIXES: [&str; 3] = ["PLUGIN_", "MICROGATEWAY_PLUGIN", "AI_STUDIO_PLUGIN"];

/// Why `name = value` may not be set in a plugin's environment, or `None` when it may.
/// `allow` (`plugin_runtime.env_allow_names`) lifts the deny list for exact names,
/// never for the plugin protocol's own variables.
pub fn env_refusal(name: &str, value: &str, allow: &[String]) -> Option<String> {
    if name.is_empty() || name.contains(['=', '\0']) {
        return Some(format!("{name:?} is not a valid variable name"));
    }
    if value.contains('\0') {
        return Some(format!("the value of {name} contains a NUL byte"));
    }
    let upper = name.to_ascii_uppercase();
    if PROTOCOL_PREFIXES.iter().any(|p| upper.starts_with(p)) {
        return Some(format!(
            "{name} is set by the gateway for the plugin protocol"
        ));
    }
    if allow.iter().any(|a| a == name) {
        return None;
    }
    let denied = DENIED_NAMES.contains(&upper.as_str())
        || DENIED_PREFIXES.iter().any(|p| upper.starts_with(p));
    denied.then(|| {
        format!(
            "{name} can make a loader or interpreter run other code; list it in plugin_runtime.env_allow_names to allow it"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loader_and_interpreter_variables_are_refused() {
        for name in [
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "ld_audit",
            "DYLD_INSERT_LIBRARIES",
            "PERL5OPT",
            "PERLLIB",
            "PERL5LIB",
            "PYTHONPATH",
            "PYTHONSTARTUP",
            "NODE_OPTIONS",
            "RUBYOPT",
            "RUBYLIB",
            "BASH_ENV",
            "ENV",
            "GCONV_PATH",
            "IFS",
            "GLIBC_TUNABLES",
            "BASH_FUNC_x%%",
            "TMPDIR",
            "PLUGIN_UNIX_SOCKET_DIR",
            "MICROGATEWAY_PLUGIN",
            "AI_STUDIO_PLUGIN",
            "A=B",
            "",
        ] {
            assert!(env_refusal(name, "x", &[]).is_some(), "{name} accepted");
        }
        for name in ["API_URL", "LOG_LEVEL", "HOME", "PATHEXT", "ENVIRONMENT"] {
            assert!(env_refusal(name, "x", &[]).is_none(), "{name} refused");
        }
        assert!(env_refusal("X", "a\0b", &[]).is_some());
    }

    #[test]
    fn allow_names_lift_the_deny_list_but_not_protocol_variables() {
        let allow = vec!["PYTHONPATH".to_string(), "PLUGIN_MIN_PORT".to_string()];
        assert!(env_refusal("PYTHONPATH", "/srv", &allow).is_none());
        assert!(env_refusal("PYTHONSTARTUP", "/srv", &allow).is_some());
        assert!(env_refusal("PLUGIN_MIN_PORT", "1", &allow).is_some());
    }

    #[test]
    fn sandbox_ranges() {
        assert_eq!(SandboxConfig::default().problem(), None);
        let bad = SandboxConfig {
            max_open_files: Some(3),
            ..SandboxConfig::default()
        };
        assert_eq!(bad.problem().map(|p| p.0), Some("max_open_files"));
        let bad = SandboxConfig {
            landlock: true,
            no_new_privs: false,
            ..SandboxConfig::default()
        };
        assert_eq!(bad.problem().map(|p| p.0), Some("no_new_privs"));
    }
}
