//! Opening gRPC channels to plugins: unix sockets, checked loopback/remote TCP
//! addresses, TLS/mTLS for `grpcs://`, and go-plugin AutoMTLS for a hand-shaken
//! `file://` plugin ([`to_plugin`]); and the gRPC health check of a channel. Retries and
//! supervision build on it in `supervisor`.

use super::automtls;
use super::handshake::{Address, Handshake};
use crate::config::GrpcTlsConfig;
use hyper_util::rt::TokioIo;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// How to open a connection to a running plugin. The supervisor keeps the first
/// connection for health pings and lifecycle; every proxy worker opens its own from the
/// same target (see `lanes`), so it is cheap to share.
#[derive(Clone)]
pub enum Target {
    /// A plugin serving plainly on a unix socket.
    Unix(PathBuf),
    /// Exactly `addr` (already resolved and checked); `host` for TLS server names.
    Tcp {
        addr: SocketAddr,
        host: String,
        tls: Option<GrpcTlsConfig>,
    },
    /// A hand-shaken plugin with go-plugin AutoMTLS: its pinned certificate and our
    /// identity, in one client configuration.
    AutoMtls {
        address: Address,
        config: Arc<rustls::ClientConfig>,
    },
}

impl Target {
    /// Where a started plugin's handshake says to connect: with mutual TLS when the
    /// handshake carries a server certificate (trusting exactly that certificate and
    /// presenting `identity`), plainly otherwise. `process::start` has already applied
    /// the `auto_mtls` policy, so a certificate without an identity is refused here too.
    pub fn for_plugin(
        handshake: &Handshake,
        identity: Option<&automtls::Identity>,
    ) -> Result<Target, String> {
        let tls = match (&handshake.server_cert, identity) {
            (Some(cert), Some(ours)) => {
                Some(automtls::client_config(ours, cert).map_err(|e| crate::error::chain(&e))?)
            }
            (Some(_), None) => {
                return Err("the plugin sent an AutoMTLS certificate, but none was offered".into());
            }
            (None, _) => None,
        };
        Ok(match (&handshake.address, tls) {
            (Address::Unix(path), None) => Target::Unix(path.clone()),
            (Address::Tcp(addr), None) => Target::Tcp {
                addr: *addr,
                host: addr.ip().to_string(),
                tls: None,
            },
            (address, Some(config)) => Target::AutoMtls {
                address: address.clone(),
                config,
            },
        })
    }

    /// Opens one HTTP/2 connection. tonic spawns the connection's tasks on the runtime
    /// this runs on, so a proxy worker that dials keeps its plugin traffic on its thread.
    pub async fn connect(&self, timeout: Duration) -> Result<Channel, String> {
        match self {
            Target::Unix(path) => unix(path.clone(), timeout).await,
            Target::Tcp { addr, host, tls } => tcp(*addr, host, tls.as_ref(), timeout).await,
            Target::AutoMtls { address, config } => {
                mutual_tls(address.clone(), config.clone(), timeout).await
            }
        }
    }

    fn mtls(&self) -> bool {
        matches!(self, Target::AutoMtls { .. })
    }

    /// The transport as the plugin's health reports it: the network, then `+tls` or
    /// `+mtls` when the connection is encrypted.
    pub fn transport(&self) -> &'static str {
        match self {
            Target::Unix(_) => "unix",
            Target::Tcp { tls: None, .. } => "tcp",
            Target::Tcp { tls: Some(tls), .. } if tls.cert.is_some() => "tcp+mtls",
            Target::Tcp { tls: Some(_), .. } => "tcp+tls",
            Target::AutoMtls {
                address: Address::Unix(_),
                ..
            } => "unix+mtls",
            Target::AutoMtls { .. } => "tcp+mtls",
        }
    }
}

/// Connects to a started plugin where its handshake says ([`Target::for_plugin`]) and
/// returns the channel with the target, for more connections later. Logs one line saying
/// whether it uses TLS.
pub async fn to_plugin(
    name: &str,
    handshake: &Handshake,
    identity: Option<&automtls::Identity>,
    timeout: Duration,
) -> Result<(Channel, Target), String> {
    let target = Target::for_plugin(handshake, identity)?;
    let channel = target.connect(timeout).await?;
    let mtls = target.mtls();
    tracing::info!(
        plugin = %name,
        network = handshake.address.network(),
        mtls,
        app_version = handshake.app_version,
        "connected to plugin {}",
        if mtls { "with AutoMTLS" } else { "without TLS" }
    );
    Ok((channel, target))
}

/// Connects over a unix socket or TCP and runs the AutoMTLS handshake (server name
/// `localhost`, as go-plugin's host) on every (re)connection.
async fn mutual_tls(
    address: Address,
    config: Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<Channel, String> {
    let connector = tokio_rustls::TlsConnector::from(config);
    let endpoint = Endpoint::from_static("http://localhost")
        .connect_timeout(timeout)
        .tcp_nodelay(true);
    let shown = address.to_string();
    endpoint
        .connect_with_connector(tower::service_fn(move |_| {
            let (address, connector) = (address.clone(), connector.clone());
            async move {
                let name = rustls::pki_types::ServerName::try_from(automtls::SERVER_NAME)
                    .map_err(std::io::Error::other)?;
                let stream: Box<dyn Io> = match address {
                    Address::Unix(path) => Box::new(
                        connector
                            .connect(name, tokio::net::UnixStream::connect(path).await?)
                            .await?,
                    ),
                    Address::Tcp(addr) => {
                        let tcp = tokio::net::TcpStream::connect(addr).await?;
                        tcp.set_nodelay(true)?;
                        Box::new(connector.connect(name, tcp).await?)
                    }
                };
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await
        .map_err(|e| {
            format!(
                "cannot connect with AutoMTLS to {shown}: {}",
                crate::error::chain(&e)
            )
        })
}

/// A byte stream tonic can run HTTP/2 over.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Io for T {}

/// Connects to a plugin serving on a unix socket.
pub async fn unix(path: PathBuf, timeout: Duration) -> Result<Channel, String> {
    let endpoint = Endpoint::from_static("http://plugin.local").connect_timeout(timeout);
    endpoint
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                tokio::net::UnixStream::connect(path)
                    .await
                    .map(TokioIo::new)
            }
        }))
        .await
        .map_err(|e| {
            format!(
                "cannot connect to plugin socket: {}",
                crate::error::chain(&e)
            )
        })
}

/// Connects to exactly `addr` (already resolved and checked); `host` is used for TLS
/// server-name verification.
pub async fn tcp(
    addr: SocketAddr,
    host: &str,
    tls: Option<&GrpcTlsConfig>,
    timeout: Duration,
) -> Result<Channel, String> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let authority = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{authority}:{}", addr.port()))
        .map_err(|e| format!("invalid plugin address: {e}"))?
        .connect_timeout(timeout)
        .tcp_nodelay(true);
    if let Some(t) = tls {
        endpoint = endpoint
            .tls_config(client_tls(t, host)?)
            .map_err(|e| format!("TLS configuration: {e}"))?;
    }
    endpoint
        .connect_with_connector(tower::service_fn(move |_| async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok::<_, std::io::Error>(TokioIo::new(stream))
        }))
        .await
        .map_err(|e| format!("cannot connect to {addr}: {}", crate::error::chain(&e)))
}

fn client_tls(t: &GrpcTlsConfig, host: &str) -> Result<ClientTlsConfig, String> {
    let read =
        |p: &PathBuf| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    let mut cfg = ClientTlsConfig::new()
        .domain_name(t.server_name.clone().unwrap_or_else(|| host.to_string()));
    cfg = match &t.ca_file {
        Some(ca) => cfg.ca_certificate(Certificate::from_pem(read(ca)?)),
        None => cfg.with_native_roots(),
    };
    match (&t.cert, &t.key) {
        (Some(cert), Some(key)) => cfg = cfg.identity(Identity::from_pem(read(cert)?, read(key)?)),
        (None, None) => {}
        _ => return Err("tls.cert and tls.key must be set together".into()),
    }
    Ok(cfg)
}

/// Splits `host:port` (IPv6 in brackets).
pub(super) fn split_host_port(s: &str) -> Option<(String, u16)> {
    let s = s.trim_end_matches('/');
    let (host, port) = s.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty()).then(|| (host.to_string(), port))
}

/// Resolves a host without the C resolver; IP literals in every `inet_aton` form are
/// recognised first so they are checked as the addresses they denote.
pub(super) async fn resolve(host: &str) -> Result<Vec<IpAddr>, String> {
    if let Some(ip) = super::addr::parse_ip_literal(host) {
        return Ok(vec![ip]);
    }
    let resolver = crate::upstream::resolver().map_err(|e| e.to_string())?;
    let lookup = resolver
        .lookup_ip(host)
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?;
    Ok(lookup.iter().collect())
}

/// `grpc.health.v1.Health/Check` for service "plugin".
pub async fn health(channel: &Channel, timeout: Duration) -> Result<(), String> {
    let mut client = HealthClient::new(channel.clone());
    let request = HealthCheckRequest {
        service: "plugin".into(),
    };
    match tokio::time::timeout(timeout, client.check(request)).await {
        Err(_) => Err(format!("health check timed out after {timeout:?}")),
        Ok(Err(status)) => Err(format!("health check failed: {}", status.message())),
        Ok(Ok(r)) if r.get_ref().status == 1 => Ok(()),
        Ok(Ok(r)) => Err(format!(
            "health check reports status {}",
            r.get_ref().status
        )),
    }
}
