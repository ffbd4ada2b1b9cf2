//! The go-plugin handshake line: `CORE|APP|NETWORK|ADDR|PROTOCOL[|CERT]`.
//!
//! The gateway accepts only core version 1, an application protocol version it
//! offered, protocol `grpc`, and an address it is willing to dial: a unix socket inside
//! the directory it created for this plugin, or a loopback TCP address.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// go-plugin core protocol version.
pub const CORE_VERSION: u32 = 1;
/// This gateway's application protocol version (the plugin contract v1).
pub const APP_VERSION: u32 = 1;
/// Longest handshake line accepted, in bytes.
pub const MAX_LINE: usize = 4096;

/// Where the plugin serves gRPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A unix socket path.
    Unix(PathBuf),
    /// A loopback TCP address.
    Tcp(SocketAddr),
}

/// A parsed and checked handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// Negotiated application protocol version.
    pub app_version: u32,
    /// Where to dial.
    pub address: Address,
    /// Server certificate (DER) for AutoMTLS, when sent.
    pub server_cert: Option<Vec<u8>>,
}

/// A refused handshake line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid plugin handshake: {0}")]
pub struct HandshakeError(pub String);

/// Parses and checks one handshake line. `socket_dir` is the directory handed to the
/// plugin in `PLUGIN_UNIX_SOCKET_DIR`.
pub fn parse(line: &str, socket_dir: &Path) -> Result<Handshake, HandshakeError> {
    let err = |m: String| HandshakeError(m);
    let line = line.trim_end_matches(['\r', '\n']);
    if line.len() > MAX_LINE {
        return Err(err(format!("line longer than {MAX_LINE} bytes")));
    }
    let fields: Vec<&str> = line.split('|').collect();
    if !(5..=6).contains(&fields.len()) {
        let shown: String = line.chars().take(80).collect();
        return Err(err(format!(
            "expected CORE|APP|NETWORK|ADDR|PROTOCOL[|CERT], got {shown:?}"
        )));
    }
    let core: u32 = fields[0]
        .parse()
        .map_err(|_| err(format!("core version {:?} is not a number", fields[0])))?;
    if core != CORE_VERSION {
        return Err(err(format!(
            "core protocol version {core} unsupported (need {CORE_VERSION})"
        )));
    }
    let app: u32 = fields[1]
        .parse()
        .map_err(|_| err(format!("app version {:?} is not a number", fields[1])))?;
    if app != APP_VERSION {
        return Err(err(format!(
            "app protocol version {app} unsupported (offered {APP_VERSION})"
        )));
    }
    if fields[4] != "grpc" {
        return Err(err(format!(
            "protocol {:?} unsupported (only grpc)",
            fields[4]
        )));
    }
    let address = match fields[2] {
        "unix" => {
            let path = PathBuf::from(fields[3]);
            let dir = std::fs::canonicalize(socket_dir)
                .map_err(|e| err(format!("socket directory unusable: {e}")))?;
            let parent = path
                .parent()
                .and_then(|p| std::fs::canonicalize(p).ok())
                .ok_or_else(|| {
                    err(format!(
                        "socket {} has no resolvable directory",
                        path.display()
                    ))
                })?;
            if parent != dir {
                return Err(err(format!(
                    "socket {} is outside the plugin's socket directory {}",
                    path.display(),
                    dir.display()
                )));
            }
            Address::Unix(path)
        }
        "tcp" => {
            let addr: SocketAddr = fields[3]
                .parse()
                .map_err(|_| err(format!("tcp address {:?} is not host:port", fields[3])))?;
            if !super::security::canonical(addr.ip()).is_loopback() {
                return Err(err(format!("tcp address {addr} is not loopback")));
            }
            Address::Tcp(addr)
        }
        other => return Err(err(format!("network {other:?} unsupported (unix or tcp)"))),
    };
    let server_cert = match fields.get(5).filter(|c| !c.is_empty()) {
        Some(c) => {
            use base64::Engine as _;
            let raw = base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(c.trim_end_matches('='))
                .map_err(|e| err(format!("certificate is not base64: {e}")))?;
            Some(raw)
        }
        None => None,
    };
    Ok(Handshake {
        app_version: app,
        address,
        server_cert,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_unix_in_dir_and_loopback_tcp() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("p.sock");
        let line = format!("1|1|unix|{}|grpc\n", sock.display());
        assert_eq!(
            parse(&line, dir.path()).unwrap().address,
            Address::Unix(sock)
        );
        let tcp = parse("1|1|tcp|127.0.0.1:4000|grpc", dir.path()).unwrap();
        assert_eq!(tcp.address, Address::Tcp("127.0.0.1:4000".parse().unwrap()));
    }

    #[test]
    fn refuses_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        for (line, why) in [
            ("hello world", "expected"),
            ("2|1|tcp|127.0.0.1:1|grpc", "core protocol"),
            ("1|9|tcp|127.0.0.1:1|grpc", "app protocol"),
            ("1|1|tcp|127.0.0.1:1|netrpc", "protocol"),
            ("1|1|tcp|10.0.0.1:1|grpc", "not loopback"),
            ("1|1|unix|/tmp/elsewhere.sock|grpc", "outside"),
            ("1|1|udp|x|grpc", "network"),
        ] {
            let e = parse(line, dir.path()).unwrap_err().0;
            assert!(e.contains(why), "{line}: {e}");
        }
        assert!(parse(&"x".repeat(MAX_LINE + 1), dir.path()).is_err());
    }
}
