//! The go-plugin handshake line: `CORE|APP|NETWORK|ADDR|PROTOCOL[|CERT[|MUX]]`.
//!
//! The gateway accepts only core version 1, an application protocol version it
//! offered, protocol `grpc`, and an address it is willing to dial: a unix socket inside
//! the directory it created for this plugin, or a loopback TCP address. The optional
//! sixth field is go-plugin's AutoMTLS server certificate (raw base64 of its DER); the
//! seventh is the plugin's answer to `PLUGIN_MULTIPLEX_GRPC` (see [`Handshake::multiplex`]).
//! [`check_tls`] then applies `plugin_runtime.auto_mtls` to the result.

use crate::config::AutoMtls;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// go-plugin core protocol version.
pub const CORE_VERSION: u32 = 1;
/// This gateway's application protocol version (the plugin contract v1).
pub const APP_VERSION: u32 = 1;
/// Longest handshake line accepted, in bytes.
pub const MAX_LINE: usize = 4096;
/// go-plugin's host reads the sixth field as a certificate only when it is longer than
/// this (older servers wrote other, short data there); the gateway does the same.
const MIN_CERT_FIELD: usize = 50;

/// Where the plugin serves gRPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A unix socket path.
    Unix(PathBuf),
    /// A loopback TCP address.
    Tcp(SocketAddr),
}

impl Address {
    /// `unix` or `tcp`, as in the handshake line.
    pub fn network(&self) -> &'static str {
        match self {
            Address::Unix(_) => "unix",
            Address::Tcp(_) => "tcp",
        }
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Unix(p) => write!(f, "unix socket {}", p.display()),
            Address::Tcp(a) => write!(f, "tcp {a}"),
        }
    }
}

/// A parsed and checked handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// Negotiated application protocol version (one of those offered).
    pub app_version: u32,
    /// Where to dial.
    pub address: Address,
    /// Server certificate (DER) for AutoMTLS, when sent.
    pub server_cert: Option<Vec<u8>>,
    /// The seventh field: whether the plugin supports gRPC broker multiplexing. A
    /// go-plugin server writes it only when `PLUGIN_MULTIPLEX_GRPC` is set and turns the
    /// multiplexer on only when that variable is `true`; the gateway never sets it and
    /// uses no broker, so the value is recorded and otherwise ignored, as go-plugin's
    /// own host does when it did not ask for multiplexing.
    pub multiplex: Option<bool>,
}

/// A refused handshake line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid plugin handshake: {0}")]
pub struct HandshakeError(pub String);

/// Parses and checks one handshake line. `versions` are the application protocol
/// versions offered in `PLUGIN_PROTOCOL_VERSIONS`; `socket_dir` is the directory handed
/// to the plugin in `PLUGIN_UNIX_SOCKET_DIR` (and `TMPDIR`).
pub fn parse(line: &str, versions: &[u32], socket_dir: &Path) -> Result<Handshake, HandshakeError> {
    let err = |m: String| HandshakeError(m);
    let line = line.trim_end_matches(['\r', '\n']);
    if line.len() > MAX_LINE {
        return Err(err(format!("line longer than {MAX_LINE} bytes")));
    }
    let fields: Vec<&str> = line.split('|').collect();
    let shown = || line.chars().take(80).collect::<String>();
    if fields.len() == 4 {
        return Err(err(format!(
            "no PROTOCOL field in {:?}: go-plugin then means net/rpc, and only grpc is supported",
            shown()
        )));
    }
    if !(5..=7).contains(&fields.len()) {
        return Err(err(format!(
            "expected CORE|APP|NETWORK|ADDR|PROTOCOL[|CERT[|MUX]], got {} fields in {:?}",
            fields.len(),
            shown()
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
    if !versions.contains(&app) {
        let offered: Vec<String> = versions.iter().map(u32::to_string).collect();
        return Err(err(format!(
            "app protocol version {app} unsupported (offered {})",
            offered.join(",")
        )));
    }
    if fields[4] != "grpc" {
        return Err(err(format!(
            "protocol {:?} unsupported (only grpc)",
            fields[4]
        )));
    }
    let address = match fields[2] {
        "unix" => Address::Unix(unix_socket(fields[3], socket_dir)?),
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
    let server_cert = match fields.get(5).filter(|c| c.len() > MIN_CERT_FIELD) {
        Some(c) => Some(certificate(c)?),
        None => None,
    };
    let multiplex = match fields.get(6) {
        None => None,
        Some(&"true") => Some(true),
        Some(&"false") => Some(false),
        Some(other) => {
            return Err(err(format!(
                "multiplexing field {other:?} is not true or false"
            )));
        }
    };
    Ok(Handshake {
        app_version: app,
        address,
        server_cert,
        multiplex,
    })
}

/// Checks that a socket path lies directly in `socket_dir`, both canonicalised (so a
/// symlinked `/tmp` or a relative `TMPDIR` on either side compares as the same place).
fn unix_socket(field: &str, socket_dir: &Path) -> Result<PathBuf, HandshakeError> {
    let err = |m: String| HandshakeError(m);
    let path = PathBuf::from(field);
    if !path.is_absolute() {
        return Err(err(format!("socket path {field:?} is not absolute")));
    }
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
    Ok(path)
}

/// Decodes the sixth field: raw (unpadded) standard base64 of one DER certificate, as
/// go-plugin writes it; padding is tolerated.
fn certificate(field: &str) -> Result<Vec<u8>, HandshakeError> {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(field.trim_end_matches('='))
        .map_err(|e| {
            HandshakeError(format!(
                "AutoMTLS certificate field is not base64 of a DER certificate: {e}"
            ))
        })?;
    // A DER certificate is one SEQUENCE.
    if raw.first() != Some(&0x30) {
        return Err(HandshakeError(
            "AutoMTLS certificate field decodes to something other than a DER certificate".into(),
        ));
    }
    Ok(raw)
}

/// Applies `plugin_runtime.auto_mtls` to an accepted handshake: under `tcp` a TCP
/// handshake needs a certificate, under `always` every one does, and under `off` (no
/// client certificate offered) a certificate cannot be answered.
pub fn check_tls(handshake: &Handshake, policy: AutoMtls) -> Result<(), HandshakeError> {
    let has_cert = handshake.server_cert.is_some();
    let tcp = matches!(handshake.address, Address::Tcp(_));
    let missing = match policy {
        AutoMtls::Off if has_cert => {
            return Err(HandshakeError(format!(
                "the plugin answered with an AutoMTLS server certificate for {}, but \
                 plugin_runtime.auto_mtls = \"off\" offered it no client certificate \
                 (PLUGIN_CLIENT_CERT); expected a plain handshake, or set auto_mtls = \"tcp\"",
                handshake.address
            )));
        }
        AutoMtls::Off => return Ok(()),
        AutoMtls::Tcp => tcp && !has_cert,
        AutoMtls::Always => !has_cert,
    };
    if missing {
        let needs = if policy == AutoMtls::Always {
            "every handshake"
        } else {
            "a TCP handshake"
        };
        return Err(HandshakeError(format!(
            "{} without an AutoMTLS certificate (the sixth field is empty), but \
             plugin_runtime.auto_mtls = \"{}\" requires one for {needs}: the plugin \
             must answer PLUGIN_CLIENT_CERT with its own certificate as go-plugin's \
             plugin.Serve does{}, or auto_mtls must be \"off\"",
            handshake.address,
            policy.as_str(),
            if tcp && policy == AutoMtls::Tcp {
                ", or serve a unix socket in PLUGIN_UNIX_SOCKET_DIR"
            } else {
                ""
            }
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    const V1: &[u32] = &[APP_VERSION];

    fn cert_field() -> (Vec<u8>, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        let der = params.self_signed(&key).unwrap().der().to_vec();
        let field = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&der);
        (der, field)
    }

    #[test]
    fn accepts_unix_in_dir_and_loopback_tcp() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("p.sock");
        let line = format!("1|1|unix|{}|grpc\n", sock.display());
        let unix = parse(&line, V1, dir.path()).unwrap();
        assert_eq!(unix.address, Address::Unix(sock));
        assert_eq!((unix.server_cert, unix.multiplex), (None, None));
        let tcp = parse("1|1|tcp|127.0.0.1:4000|grpc", V1, dir.path()).unwrap();
        assert_eq!(tcp.address, Address::Tcp("127.0.0.1:4000".parse().unwrap()));
    }

    #[test]
    fn symlinked_socket_directory_is_the_same_directory() {
        let real = tempfile::tempdir().unwrap();
        let links = tempfile::tempdir().unwrap();
        let link = links.path().join("tmp");
        std::os::unix::fs::symlink(real.path(), &link).unwrap();
        // The plugin saw the symlinked name, the gateway holds the real one, and back.
        let line = format!("1|1|unix|{}/plugin42|grpc", link.display());
        assert!(parse(&line, V1, real.path()).is_ok());
        let line = format!("1|1|unix|{}/plugin42|grpc", real.path().display());
        assert!(parse(&line, V1, &link).is_ok());
    }

    #[test]
    fn six_and_seven_fields() {
        let dir = tempfile::tempdir().unwrap();
        let (der, field) = cert_field();
        // go-plugin 1.0 to 1.6 without AutoMTLS: an empty sixth field.
        let h = parse("1|1|tcp|127.0.0.1:1|grpc|", V1, dir.path()).unwrap();
        assert_eq!(h.server_cert, None);
        let h = parse(&format!("1|1|tcp|127.0.0.1:1|grpc|{field}"), V1, dir.path()).unwrap();
        assert_eq!(h.server_cert.as_deref(), Some(&der[..]));
        let padded = base64::engine::general_purpose::STANDARD.encode(&der);
        let h = parse(
            &format!("1|1|tcp|127.0.0.1:1|grpc|{padded}"),
            V1,
            dir.path(),
        )
        .unwrap();
        assert_eq!(h.server_cert.as_deref(), Some(&der[..]));
        // Short data in the sixth field is not a certificate, as for go-plugin's host.
        let h = parse("1|1|tcp|127.0.0.1:1|grpc|xyz", V1, dir.path()).unwrap();
        assert_eq!(h.server_cert, None);
        for (mux, want) in [("true", Some(true)), ("false", Some(false))] {
            let line = format!("1|1|tcp|127.0.0.1:1|grpc|{field}|{mux}");
            let h = parse(&line, V1, dir.path()).unwrap();
            assert_eq!((h.server_cert.is_some(), h.multiplex), (true, want));
            let line = format!("1|1|tcp|127.0.0.1:1|grpc||{mux}");
            assert_eq!(parse(&line, V1, dir.path()).unwrap().multiplex, want);
        }
    }

    #[test]
    fn negotiates_one_of_the_offered_versions() {
        let dir = tempfile::tempdir().unwrap();
        let h = parse("1|3|tcp|127.0.0.1:1|grpc", &[1, 3], dir.path()).unwrap();
        assert_eq!(h.app_version, 3);
        let e = parse("1|2|tcp|127.0.0.1:1|grpc", &[1, 3], dir.path()).unwrap_err();
        assert!(e.0.contains("version 2 unsupported (offered 1,3)"), "{e}");
    }

    #[test]
    fn refuses_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let long_junk = "A".repeat(80);
        for (line, why) in [
            ("hello world", "expected"),
            ("1|1|tcp|127.0.0.1:1", "net/rpc"),
            ("1|1|tcp|127.0.0.1:1|grpc||true|x", "8 fields"),
            ("2|1|tcp|127.0.0.1:1|grpc", "core protocol"),
            ("1|9|tcp|127.0.0.1:1|grpc", "app protocol"),
            ("1|1|tcp|127.0.0.1:1|netrpc", "protocol"),
            ("1|1|tcp|10.0.0.1:1|grpc", "not loopback"),
            ("1|1|unix|/tmp/elsewhere.sock|grpc", "outside"),
            ("1|1|unix|relative.sock|grpc", "not absolute"),
            ("1|1|udp|x|grpc", "network"),
            ("1|1|tcp|127.0.0.1:1|grpc||yes", "not true or false"),
            (
                &format!("1|1|tcp|127.0.0.1:1|grpc|{}!", long_junk),
                "not base64",
            ),
            (
                &format!("1|1|tcp|127.0.0.1:1|grpc|{long_junk}"),
                "other than a DER certificate",
            ),
        ] {
            let e = parse(line, V1, dir.path()).unwrap_err().0;
            assert!(e.contains(why), "{line}: {e}");
        }
        assert!(parse(&"x".repeat(MAX_LINE + 1), V1, dir.path()).is_err());
    }

    #[test]
    fn auto_mtls_policy() {
        let dir = tempfile::tempdir().unwrap();
        let (_, field) = cert_field();
        let sock = dir.path().join("p.sock");
        let unix = parse(
            &format!("1|1|unix|{}|grpc|", sock.display()),
            V1,
            dir.path(),
        )
        .unwrap();
        let unix_tls = parse(
            &format!("1|1|unix|{}|grpc|{field}", sock.display()),
            V1,
            dir.path(),
        )
        .unwrap();
        let tcp = parse("1|1|tcp|127.0.0.1:1|grpc|", V1, dir.path()).unwrap();
        let tcp_tls = parse(&format!("1|1|tcp|127.0.0.1:1|grpc|{field}"), V1, dir.path()).unwrap();
        let ok = |h: &Handshake, p| check_tls(h, p).is_ok();
        assert!(ok(&unix, AutoMtls::Tcp) && ok(&unix_tls, AutoMtls::Tcp));
        assert!(ok(&tcp_tls, AutoMtls::Tcp) && !ok(&tcp, AutoMtls::Tcp));
        assert!(ok(&unix_tls, AutoMtls::Always) && ok(&tcp_tls, AutoMtls::Always));
        assert!(!ok(&unix, AutoMtls::Always) && !ok(&tcp, AutoMtls::Always));
        assert!(ok(&unix, AutoMtls::Off) && ok(&tcp, AutoMtls::Off));
        assert!(!ok(&tcp_tls, AutoMtls::Off) && !ok(&unix_tls, AutoMtls::Off));
        let e = check_tls(&tcp, AutoMtls::Tcp).unwrap_err().0;
        assert!(
            e.contains("tcp 127.0.0.1:1 without an AutoMTLS certificate")
                && e.contains("auto_mtls = \"tcp\" requires one for a TCP handshake"),
            "{e}"
        );
        let e = check_tls(&unix, AutoMtls::Always).unwrap_err().0;
        assert!(e.contains("requires one for every handshake"), "{e}");
        let e = check_tls(&tcp_tls, AutoMtls::Off).unwrap_err().0;
        assert!(
            e.contains("auto_mtls = \"off\" offered it no client certificate"),
            "{e}"
        );
    }
}
