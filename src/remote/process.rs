//! Running a `file://` plugin: spawn in its own process group with a scrubbed
//! environment (the contract's cookie and versions, a private socket directory that is
//! also its `TMPDIR`, and an AutoMTLS client certificate), read the handshake with a size
//! limit and a deadline, forward its stdout and stderr to the log, and kill the whole
//! group on the way out.

use super::automtls::{AutoMtlsError, Identity};
use super::handshake::{self, Handshake, MAX_LINE};
use super::sandbox::ChildPlan;
use crate::config::{AutoMtls, SandboxConfig};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

/// Magic cookie variable and value: a plugin started without it refuses to run.
pub const COOKIE_KEY: &str = "MICROGATEWAY_PLUGIN";
/// Magic cookie value (not a secret: it only prevents accidental direct execution).
pub const COOKIE_VALUE: &str = "7f3e2d1c-microgateway-plugin-v1";

/// Tyk AI Studio's magic cookie variable (its `microgateway/plugins/manager.go`).
pub const TYK_COOKIE_KEY: &str = "AI_STUDIO_PLUGIN";
/// Tyk AI Studio's magic cookie value.
pub const TYK_COOKIE_VALUE: &str = "v1";

/// What the gateway offers a plugin: magic cookies (each go-plugin server checks only
/// its own, so a start that may be either contract can set several) and the application
/// protocol versions for `PLUGIN_PROTOCOL_VERSIONS`, one of which the handshake must name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offer {
    /// Magic cookie variables and values.
    pub cookies: &'static [(&'static str, &'static str)],
    /// Offered application protocol versions, most preferred first.
    pub versions: &'static [u32],
}

impl Offer {
    /// Either contract: both cookies, so whichever server the plugin embeds starts,
    /// whatever `contract` says; [`super::contract`] then detects or checks it, and a
    /// declared contract the plugin does not speak gets that contract's own error rather
    /// than a plugin that exits on a missing cookie. Both contracts are version 1.
    pub const ANY: Offer = Offer {
        cookies: &[
            (COOKIE_KEY, COOKIE_VALUE),
            (TYK_COOKIE_KEY, TYK_COOKIE_VALUE),
        ],
        versions: &[handshake::APP_VERSION],
    };
}

/// Errors starting a plugin process.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The executable could not be started (an EPERM here is often the sandbox: a
    /// uid switch without root, or a Landlock restriction the kernel refused).
    #[error("cannot start {path}")]
    Spawn {
        /// The checked executable (the spawn may go through its descriptor).
        path: PathBuf,
        /// The OS error from `fork`/`exec` or from the sandbox applied between them.
        #[source]
        source: std::io::Error,
    },
    /// The executable or its environment broke a rule checked right before the spawn.
    #[error("refused: {0}")]
    Refused(String),
    /// The sandbox could not be prepared.
    #[error(transparent)]
    Sandbox(#[from] super::sandbox::SandboxError),
    /// No handshake within the start timeout.
    #[error("no handshake within {0:?}")]
    StartTimeout(Duration),
    /// The process exited or closed stdout before the handshake.
    #[error("plugin exited before its handshake{0}")]
    Exited(String),
    /// The handshake line was refused.
    #[error(transparent)]
    Handshake(#[from] handshake::HandshakeError),
    /// Creating the socket directory failed.
    #[error("cannot create plugin socket directory: {0}")]
    SocketDir(std::io::Error),
    /// The AutoMTLS client certificate could not be made.
    #[error(transparent)]
    AutoMtls(#[from] AutoMtlsError),
}

/// A started plugin process whose handshake was accepted.
pub struct Running {
    /// The child (reaped by whoever awaits `wait`).
    pub child: Child,
    /// Process group id (equal to the child's pid).
    pub pgid: Option<u32>,
    /// The accepted handshake (its certificate already checked against the policy).
    pub handshake: Handshake,
    /// The AutoMTLS client certificate offered in `PLUGIN_CLIENT_CERT`, if any; dial with
    /// it whenever the handshake carries a server certificate.
    pub identity: Option<Identity>,
    /// Private socket directory, kept for the life of the process and removed when dropped.
    pub _socket_dir: tempfile::TempDir,
}

/// Spawns `path` and waits for its handshake. The executable is opened and checked
/// again right before the spawn (see [`super::exec`]), the environment is rebuilt from
/// the allowlist plus `offer`, and the child enters `sandbox` before `exec`. Unless
/// `auto_mtls` is off, a fresh client certificate goes in `PLUGIN_CLIENT_CERT`; the
/// handshake is then checked against `auto_mtls` ([`handshake::check_tls`]).
#[allow(clippy::too_many_arguments)]
pub async fn start(
    name: &str,
    path: &Path,
    env_allowlist: &[String],
    extra_env: &BTreeMap<String, String>,
    start_timeout: Duration,
    sandbox: &SandboxConfig,
    env_allow_names: &[String],
    offer: &Offer,
    auto_mtls: AutoMtls,
) -> Result<Running, ProcessError> {
    for (key, value) in extra_env {
        if let Some(why) = crate::config::env_refusal(key, value, env_allow_names) {
            return Err(ProcessError::Refused(format!("env.{key}: {why}")));
        }
    }
    let socket_dir = tempfile::Builder::new()
        .prefix("microgateway-plugin-")
        .tempdir()
        .map_err(ProcessError::SocketDir)?;
    // The plugin gets the canonical path, so the socket it reports compares equal
    // whatever symlinks or relative parts the gateway's own TMPDIR has.
    let dir = std::fs::canonicalize(socket_dir.path()).map_err(ProcessError::SocketDir)?;
    let identity = match auto_mtls {
        AutoMtls::Off => None,
        AutoMtls::Tcp | AutoMtls::Always => Some(Identity::generate()?),
    };
    let plan = ChildPlan::new(sandbox, &dir)?;
    let checked = super::exec::open(path).map_err(ProcessError::Refused)?;
    let mut cmd = Command::new(checked.program());
    cmd.arg0(checked.path());
    cmd.env_clear();
    for key in env_allowlist {
        // The socket directory is the plugin's TMPDIR (set below), whatever the gateway's is.
        if key == "TMPDIR" {
            continue;
        }
        if let Some(value) = std::env::var_os(key) {
            cmd.env(key, value);
        }
    }
    let versions: Vec<String> = offer.versions.iter().map(u32::to_string).collect();
    match &identity {
        Some(identity) => cmd.env("PLUGIN_CLIENT_CERT", identity.cert_pem()),
        None => cmd.env_remove("PLUGIN_CLIENT_CERT"),
    };
    // Our own SDK reads the policy, so that under `tcp` it serves its private unix
    // socket plainly instead of paying for TLS that the socket directory already gives.
    cmd.env(super::automtls::POLICY_ENV, auto_mtls.as_str());
    cmd.envs(extra_env)
        .envs(offer.cookies.iter().copied())
        .env("PLUGIN_PROTOCOL_VERSIONS", versions.join(","))
        .env("PLUGIN_UNIX_SOCKET_DIR", &dir)
        // go-plugin before 1.5 ignores PLUGIN_UNIX_SOCKET_DIR and uses TMPDIR.
        .env("TMPDIR", &dir)
        .env("PLUGIN_MIN_PORT", "10000")
        .env("PLUGIN_MAX_PORT", "25000")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(uid) = sandbox.uid {
        cmd.uid(uid).gid(sandbox.gid.unwrap_or(uid));
    }
    super::orphan::prepare_child(&mut cmd, plan);
    let spawned = cmd.spawn();
    // The descriptor had to stay open until the child executed it.
    drop(checked);
    let mut child = spawned.map_err(|source| ProcessError::Spawn {
        path: path.to_path_buf(),
        source,
    })?;
    let pgid = child.id();
    if let Some(stderr) = child.stderr.take() {
        crate::task::detach(
            "plugin-stderr",
            forward_lines(name.to_string(), "stderr", stderr),
        );
    }
    let Some(stdout) = child.stdout.take() else {
        kill_group(pgid);
        return Err(ProcessError::Exited(": no stdout".into()));
    };
    let mut reader = BufReader::new(stdout);
    let line = match tokio::time::timeout(start_timeout, read_line_limited(&mut reader)).await {
        Err(_) => {
            kill_group(pgid);
            let _ = child.wait().await;
            return Err(ProcessError::StartTimeout(start_timeout));
        }
        Ok(Ok(Some(line))) => line,
        Ok(Ok(None)) => {
            kill_group(pgid);
            let status = child
                .wait()
                .await
                .map(|s| format!(" ({s})"))
                .unwrap_or_default();
            return Err(ProcessError::Exited(status));
        }
        Ok(Err(e)) => {
            kill_group(pgid);
            let _ = child.wait().await;
            return Err(ProcessError::Handshake(handshake::HandshakeError(e)));
        }
    };
    let checked = handshake::parse(&line, offer.versions, &dir)
        .and_then(|h| handshake::check_tls(&h, auto_mtls).map(|()| h));
    let handshake = match checked {
        Ok(h) => h,
        Err(e) => {
            kill_group(pgid);
            let _ = child.wait().await;
            return Err(e.into());
        }
    };
    crate::task::detach(
        "plugin-stdout",
        forward_lines(name.to_string(), "stdout", reader),
    );
    Ok(Running {
        child,
        pgid,
        handshake,
        identity,
        _socket_dir: socket_dir,
    })
}

/// Reads one line of at most [`MAX_LINE`] bytes; `Ok(None)` at end of stream.
async fn read_line_limited<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
) -> Result<Option<String>, String> {
    let mut buf = Vec::new();
    let mut limited = (&mut *reader).take(MAX_LINE as u64 + 1);
    let n = limited
        .read_until(b'\n', &mut buf)
        .await
        .map_err(|e| e.to_string())?;
    if n == 0 {
        return Ok(None);
    }
    if buf.len() > MAX_LINE {
        return Err(format!("handshake line longer than {MAX_LINE} bytes"));
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| "handshake line is not UTF-8".to_string())
}

/// Logs each line a plugin writes.
async fn forward_lines<R: AsyncRead + Unpin>(plugin: String, stream: &'static str, reader: R) {
    let mut lines = BufReader::new(reader).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(target: "microgateway::plugin_output", plugin = %plugin, stream, "{line}");
    }
}

/// Sends SIGKILL to the whole process group (no-op when it is already gone).
pub fn kill_group(pgid: Option<u32>) {
    let Some(pid) = pgid
        .and_then(|p| i32::try_from(p).ok())
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    if let Err(e) = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL)
        && e != rustix::io::Errno::SRCH
    {
        tracing::warn!(pgid = pid.as_raw_nonzero().get(), error = %e, "cannot kill plugin process group");
    }
}
