//! TLS for the proxy listener: certificate/key loading and ALPN (h2, http/1.1).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

use super::ServerError;
use crate::config::TlsConfig;

/// Builds a TLS acceptor from PEM files, offering h2 and http/1.1 via ALPN.
pub fn acceptor(config: &TlsConfig) -> Result<TlsAcceptor, ServerError> {
    let tls_err = |reason: String| ServerError::Tls(reason);
    let certs = CertificateDer::pem_file_iter(&config.cert)
        .map_err(|e| tls_err(format!("cannot read {}: {e}", config.cert.display())))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_err(format!("invalid PEM in {}: {e}", config.cert.display())))?;
    if certs.is_empty() {
        return Err(tls_err(format!(
            "no certificate found in {}",
            config.cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&config.key).map_err(|e| {
        tls_err(format!(
            "cannot load private key {}: {e}",
            config.key.display()
        ))
    })?;
    let mut server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| tls_err(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| {
        tls_err(format!(
            "certificate and key do not form a usable pair: {e}"
        ))
    })?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}
