//! Building gateway configurations for tests and starting an in-process gateway.
//!
//! [`GatewayConfig`] renders a TOML document (both listeners on `127.0.0.1:0`, logging
//! quiet) that is layered over the embedded default by `Config::from_toml`, exactly as an
//! operator's file would be; `routes` and `upstreams` therefore replace the default ones.
//! [`PluginEntry`] renders one `[[plugins]]` entry, for a [`GatewayConfig`] or for any
//! hand-written document. Every string they write goes through [`toml_str`].

use super::upstream::TestUpstream;
use microgateway::loader::Registry;
use microgateway::{Config, RunningGateway};
use std::fmt::Write as _;
use std::path::Path;

/// The admin token of every test gateway that configures none of its own (handed to
/// in-process gateways as if from `MICROGATEWAY_ADMIN_TOKEN`, and to the binary in it).
pub const ADMIN_TOKEN: &str = "test-admin-token-common-0123456789";

/// `Authorization` header value for [`ADMIN_TOKEN`].
pub const ADMIN_AUTH: &str = "Bearer test-admin-token-common-0123456789";

/// A test configuration under construction.
#[derive(Debug, Clone, Default)]
pub struct GatewayConfig {
    server: Vec<String>,
    admin_listen: Option<String>,
    admin: Vec<String>,
    log: Option<String>,
    sections: Vec<String>,
}

impl GatewayConfig {
    /// Listeners on 127.0.0.1:0 and no upstreams or routes yet.
    pub fn new() -> GatewayConfig {
        GatewayConfig::default()
    }

    /// Adds a `key = value` line to `[server]`, e.g. `max_body_bytes = 1024`.
    pub fn server(mut self, line: &str) -> GatewayConfig {
        self.server.push(line.to_string());
        self
    }

    /// Sets `admin.listen` (default `127.0.0.1:0`).
    pub fn admin_listen(mut self, addr: &str) -> GatewayConfig {
        self.admin_listen = Some(addr.to_string());
        self
    }

    /// Adds a `key = value` line to `[admin]`, e.g. `health_check_interval = "200ms"`.
    pub fn admin(mut self, line: &str) -> GatewayConfig {
        self.admin.push(line.to_string());
        self
    }

    /// Sets `admin.data_dir` (where API plugins and a generated token are kept).
    pub fn admin_data_dir(self, dir: &std::path::Path) -> GatewayConfig {
        let line = format!("data_dir = {}", toml_path(dir));
        self.admin(&line)
    }

    /// Replaces the `[log]` table body (default: `level = "warn"`).
    pub fn log(mut self, lines: &str) -> GatewayConfig {
        self.log = Some(lines.to_string());
        self
    }

    /// Adds an upstream group over `targets` (base URLs), with extra `key = value` lines.
    pub fn upstream_urls(mut self, name: &str, targets: &[String], extra: &str) -> GatewayConfig {
        let targets = targets
            .iter()
            .map(|t| toml_str(t))
            .collect::<Vec<_>>()
            .join(", ");
        self.sections.push(format!(
            "[[upstreams]]\nname = {}\ntargets = [{targets}]\n{extra}\n",
            toml_str(name)
        ));
        self
    }

    /// Adds an upstream group over test upstreams.
    pub fn upstream(self, name: &str, targets: &[&TestUpstream]) -> GatewayConfig {
        let urls: Vec<String> = targets.iter().map(|u| u.url()).collect();
        self.upstream_urls(name, &urls, "")
    }

    /// Adds a route to `upstream` with extra `key = value` lines (`path_prefix`, `host`, …).
    pub fn route(mut self, name: &str, upstream: &str, extra: &str) -> GatewayConfig {
        self.sections.push(format!(
            "[[routes]]\nname = {}\nupstream = {}\n{extra}\n",
            toml_str(name),
            toml_str(upstream)
        ));
        self
    }

    /// Appends a `[[plugins]]` entry.
    pub fn plugin(self, entry: PluginEntry) -> GatewayConfig {
        self.raw(&entry.toml())
    }

    /// Appends raw TOML; it must start with a table header such as `[server.tls]`.
    pub fn raw(mut self, toml: &str) -> GatewayConfig {
        self.sections.push(format!("{toml}\n"));
        self
    }

    /// The rendered TOML document.
    pub fn toml(&self) -> String {
        let mut out = String::from("[server]\nlisten = \"127.0.0.1:0\"\n");
        for line in &self.server {
            out.push_str(line);
            out.push('\n');
        }
        let admin = self.admin_listen.as_deref().unwrap_or("127.0.0.1:0");
        out.push_str(&format!("\n[admin]\nlisten = {}\n", toml_str(admin)));
        for line in &self.admin {
            out.push_str(line);
            out.push('\n');
        }
        out.push_str("\n[log]\n");
        out.push_str(self.log.as_deref().unwrap_or("level = \"warn\""));
        out.push_str("\n\n");
        for section in &self.sections {
            out.push_str(section);
            out.push('\n');
        }
        out
    }

    /// The configuration as the gateway would load it.
    pub fn config(&self) -> Config {
        let toml = self.toml();
        let mut config = Config::from_toml(&toml)
            .unwrap_or_else(|e| panic!("test config rejected: {e}\n{toml}"));
        config.admin.token_env = Some(microgateway::config::Secret(ADMIN_TOKEN.into()));
        config
    }

    /// Starts an in-process gateway; it is listening when this returns.
    pub async fn start(&self) -> RunningGateway {
        microgateway::start(self.config())
            .await
            .unwrap_or_else(|e| panic!("gateway failed to start: {e}"))
    }

    /// Like [`GatewayConfig::start`] with a plugin registry of the test's own (for
    /// in-process `builtin://` plugins it registers).
    pub async fn start_with(&self, registry: Registry) -> RunningGateway {
        microgateway::start_with(self.config(), registry)
            .await
            .unwrap_or_else(|e| panic!("gateway failed to start: {e}"))
    }
}

/// One `[[plugins]]` entry under construction.
#[derive(Debug, Clone)]
pub struct PluginEntry {
    name: String,
    command: String,
    hook: String,
    env: Vec<(String, String)>,
    extra: Vec<String>,
}

impl PluginEntry {
    /// An entry `name` running `command` (`builtin://…`, `file://…`, `grpc://…`,
    /// `oci://…`) at hook type `hook` (`pre_auth`, `on_response`, …).
    pub fn new(name: &str, command: &str, hook: &str) -> PluginEntry {
        PluginEntry {
            name: name.to_string(),
            command: command.to_string(),
            hook: hook.to_string(),
            env: Vec::new(),
            extra: Vec::new(),
        }
    }

    /// An entry running the executable at `path` as a `file://` plugin.
    pub fn file(name: &str, path: impl AsRef<Path>, hook: &str) -> PluginEntry {
        let command = format!("file://{}", path.as_ref().display());
        PluginEntry::new(name, &command, hook)
    }

    /// Adds `key = value` to the entry's `env` table.
    pub fn env(mut self, key: &str, value: &str) -> PluginEntry {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Adds raw `key = value` lines to the entry, e.g. `order = 5` or
    /// `config = { set = { "x-a" = "1" } }`; their strings are the caller's to quote.
    pub fn extra(mut self, lines: &str) -> PluginEntry {
        if !lines.is_empty() {
            self.extra.push(lines.to_string());
        }
        self
    }

    /// The entry as TOML, ending with a newline.
    pub fn toml(&self) -> String {
        let mut out = format!(
            "[[plugins]]\nname = {}\ncommand = {}\nhook_type = {}\n",
            toml_str(&self.name),
            toml_str(&self.command),
            toml_str(&self.hook)
        );
        if !self.env.is_empty() {
            let pairs: Vec<String> = self
                .env
                .iter()
                .map(|(k, v)| format!("{} = {}", toml_str(k), toml_str(v)))
                .collect();
            out.push_str(&format!("env = {{ {} }}\n", pairs.join(", ")));
        }
        for lines in &self.extra {
            out.push_str(lines);
            out.push('\n');
        }
        out
    }
}

/// `text` as a TOML basic string: quoted, with `"`, `\` and every control character
/// escaped (a basic string may hold anything else as it is). Rust's `{:?}` is no
/// substitute: it writes escapes such as `\u{1b}` that TOML does not know.
pub fn toml_str(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A path as a TOML basic string (see [`toml_str`]).
pub fn toml_path(path: &Path) -> String {
    toml_str(&path.display().to_string())
}

/// A gateway with one catch-all route `main` to upstream group `main` = `upstream`.
pub async fn single(upstream: &TestUpstream) -> RunningGateway {
    single_with(upstream, &[], "").await
}

/// Like [`single`] with extra `[server]` lines and extra route lines.
pub async fn single_with(
    upstream: &TestUpstream,
    server: &[&str],
    route_extra: &str,
) -> RunningGateway {
    let mut config = GatewayConfig::new();
    for line in server {
        config = config.server(line);
    }
    config
        .upstream("main", &[upstream])
        .route("main", "main", route_extra)
        .start()
        .await
}

/// An address on 127.0.0.1 where nothing listens (bound, then released).
pub async fn closed_port() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}
