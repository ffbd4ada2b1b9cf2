//! Opening gRPC channels to plugins: unix sockets, checked loopback/remote TCP
//! addresses, and TLS/mTLS for `grpcs://`; and the gRPC health check of a channel.
//! Retries and supervision build on it in `supervisor`.

use crate::config::GrpcTlsConfig;
use hyper_util::rt::TokioIo;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

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
