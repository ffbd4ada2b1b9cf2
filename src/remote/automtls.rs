//! go-plugin's AutoMTLS, host and plugin side: an ephemeral self-signed certificate per
//! process start, and TLS configurations that trust exactly one peer certificate.
//!
//! The host sends its certificate (PEM) in `PLUGIN_CLIENT_CERT`; the plugin generates
//! its own, requires and verifies the host's, and announces its certificate (raw base64
//! DER) in the sixth handshake field. Both sides then pin the other's certificate.
//! Certificates look like go-plugin's (`generateCert` in its `mtls.go`): CN and DNS name
//! `localhost`, a CA flag, server and client EKUs. Because such a certificate is its own
//! CA, WebPKI path building would refuse it as an end entity (`CaUsedAsEndEntity`), so
//! the verifiers here compare the presented certificate byte for byte with the pinned one
//! and check only the handshake signature. go-plugin 1.0 servers use ECDSA P-521 keys,
//! which *ring* cannot verify; [`EcdsaP521Sha512`] adds that scheme.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    AlgorithmIdentifier, CertificateDer, InvalidSignature, PrivateKeyDer, PrivatePkcs8KeyDer,
    ServerName, SignatureVerificationAlgorithm, UnixTime, alg_id,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::sync::Arc;

/// The server name go-plugin hosts verify and its certificates carry.
pub const SERVER_NAME: &str = "localhost";

/// The environment variable that tells a plugin the gateway's `plugin_runtime.auto_mtls`
/// (`tcp`, `always` or `off`). go-plugin ignores it; the Rust SDK skips TLS on a unix
/// socket when it says `tcp`.
pub const POLICY_ENV: &str = "MICROGATEWAY_AUTO_MTLS";

/// Errors preparing AutoMTLS.
#[derive(Debug, thiserror::Error)]
pub enum AutoMtlsError {
    /// The ephemeral certificate could not be made.
    #[error("cannot generate the AutoMTLS certificate")]
    Generate(#[source] rcgen::Error),
    /// `PLUGIN_CLIENT_CERT` held no PEM certificate.
    #[error("PLUGIN_CLIENT_CERT holds no PEM certificate: {0}")]
    ClientCert(String),
    /// rustls refused the configuration.
    #[error("AutoMTLS TLS configuration")]
    Tls(#[source] rustls::Error),
}

/// An ephemeral certificate and its private key.
pub struct Identity {
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
    pem: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").finish_non_exhaustive()
    }
}

impl Identity {
    /// A fresh ECDSA P-256 key and a self-signed certificate shaped like go-plugin's.
    pub fn generate() -> Result<Identity, AutoMtlsError> {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
            KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
        };
        let key =
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(AutoMtlsError::Generate)?;
        let mut params = CertificateParams::new(vec![SERVER_NAME.to_string()])
            .map_err(AutoMtlsError::Generate)?;
        params
            .distinguished_name
            .push(DnType::CommonName, SERVER_NAME);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "microgateway");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::KeyAgreement,
            KeyUsagePurpose::KeyCertSign,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ClientAuth,
            ExtendedKeyUsagePurpose::ServerAuth,
        ];
        let cert = params.self_signed(&key).map_err(AutoMtlsError::Generate)?;
        Ok(Identity {
            pem: cert.pem(),
            cert: cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        })
    }

    /// The certificate as PEM, for `PLUGIN_CLIENT_CERT`.
    pub fn cert_pem(&self) -> &str {
        &self.pem
    }

    /// The certificate as the sixth handshake field: raw (unpadded) standard base64.
    pub fn handshake_field(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(self.cert.as_ref())
    }

    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The host side: present `ours`, trust exactly `server_cert` (DER, from the handshake),
/// and speak HTTP/2.
pub fn client_config(
    ours: &Identity,
    server_cert: &[u8],
) -> Result<Arc<rustls::ClientConfig>, AutoMtlsError> {
    let provider = provider();
    let verifier = Arc::new(Pinned::new(
        server_cert.to_vec(),
        provider.signature_verification_algorithms,
    ));
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(AutoMtlsError::Tls)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(vec![ours.cert.clone()], ours.key())
        .map_err(AutoMtlsError::Tls)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The plugin side: present `ours`, require the client certificate the host sent in
/// `PLUGIN_CLIENT_CERT` (`client_pem`) and nothing else.
pub fn server_config(
    ours: &Identity,
    client_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, AutoMtlsError> {
    let client = CertificateDer::from_pem_slice(client_pem.as_bytes())
        .map_err(|e| AutoMtlsError::ClientCert(e.to_string()))?;
    let provider = provider();
    let verifier = Arc::new(Pinned::new(
        client.to_vec(),
        provider.signature_verification_algorithms,
    ));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(AutoMtlsError::Tls)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![ours.cert.clone()], ours.key())
        .map_err(AutoMtlsError::Tls)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Trusts exactly one certificate, and checks handshake signatures made with its key.
#[derive(Debug)]
struct Pinned {
    expected: Vec<u8>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl Pinned {
    fn new(expected: Vec<u8>, algorithms: WebPkiSupportedAlgorithms) -> Pinned {
        Pinned {
            expected,
            algorithms,
        }
    }

    fn check(&self, presented: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        if presented.as_ref() == self.expected.as_slice() {
            Ok(())
        } else {
            Err(rustls::Error::General(
                "the peer presented a certificate other than the one AutoMTLS exchanged".into(),
            ))
        }
    }

    fn algorithms(&self, scheme: SignatureScheme) -> &WebPkiSupportedAlgorithms {
        if scheme == SignatureScheme::ECDSA_NISTP521_SHA512 {
            &P521
        } else {
            &self.algorithms
        }
    }

    fn schemes(&self) -> Vec<SignatureScheme> {
        // P-521 first: a go-plugin 1.0 server's key, which TLS 1.2 would otherwise pair
        // with a weaker hash the verifier does not cover.
        let mut schemes = vec![SignatureScheme::ECDSA_NISTP521_SHA512];
        schemes.extend(self.algorithms.supported_schemes());
        schemes
    }
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity)
            .map(|()| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, self.algorithms(dss.scheme))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, self.algorithms(dss.scheme))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes()
    }
}

impl ClientCertVerifier for Pinned {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity)
            .map(|()| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, self.algorithms(dss.scheme))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, self.algorithms(dss.scheme))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes()
    }
}

/// ECDSA over P-521 with SHA-512 (RustCrypto's `p521`), for go-plugin's server keys.
#[derive(Debug)]
struct EcdsaP521Sha512;

impl SignatureVerificationAlgorithm for EcdsaP521Sha512 {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        use p521::ecdsa::signature::Verifier as _;
        let key =
            p521::ecdsa::VerifyingKey::from_sec1_bytes(public_key).map_err(|_| InvalidSignature)?;
        let signature =
            p521::ecdsa::Signature::from_der(signature).map_err(|_| InvalidSignature)?;
        key.verify(message, &signature)
            .map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_P521
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_SHA512
    }
}

static P521: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[&EcdsaP521Sha512],
    mapping: &[(SignatureScheme::ECDSA_NISTP521_SHA512, &[&EcdsaP521Sha512])],
};

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Runs one TLS handshake over an in-memory pipe and exchanges a byte.
    async fn exchange(
        client: Arc<rustls::ClientConfig>,
        server: Arc<rustls::ServerConfig>,
    ) -> Result<(), String> {
        let (a, b) = tokio::io::duplex(1 << 16);
        let name = ServerName::try_from(SERVER_NAME).unwrap();
        let client = async {
            let mut s = tokio_rustls::TlsConnector::from(client)
                .connect(name, a)
                .await
                .map_err(|e| format!("client: {e}"))?;
            s.write_all(b"x").await.map_err(|e| e.to_string())?;
            s.flush().await.map_err(|e| e.to_string())?;
            let mut byte = [0u8; 1];
            s.read_exact(&mut byte)
                .await
                .map_err(|e| format!("client read: {e}"))?;
            Ok::<_, String>(())
        };
        let server = async {
            let mut s = tokio_rustls::TlsAcceptor::from(server)
                .accept(b)
                .await
                .map_err(|e| format!("server: {e}"))?;
            let mut byte = [0u8; 1];
            s.read_exact(&mut byte).await.map_err(|e| e.to_string())?;
            s.write_all(b"y").await.map_err(|e| e.to_string())?;
            s.flush().await.map_err(|e| e.to_string())?;
            Ok::<_, String>(())
        };
        let (c, s) = tokio::join!(client, server);
        c.and(s)
    }

    #[tokio::test]
    async fn pinned_mutual_tls_both_ways() {
        let (host, plugin) = (Identity::generate().unwrap(), Identity::generate().unwrap());
        let client = client_config(&host, plugin.cert.as_ref()).unwrap();
        let server = server_config(&plugin, host.cert_pem()).unwrap();
        exchange(client, server).await.unwrap();
    }

    #[tokio::test]
    async fn other_certificates_are_refused() {
        let (host, plugin, other) = (
            Identity::generate().unwrap(),
            Identity::generate().unwrap(),
            Identity::generate().unwrap(),
        );
        // The plugin serves a certificate other than the one the host pinned.
        let client = client_config(&host, other.cert.as_ref()).unwrap();
        let server = server_config(&plugin, host.cert_pem()).unwrap();
        let e = exchange(client, server).await.unwrap_err();
        assert!(e.contains("other than the one AutoMTLS exchanged"), "{e}");
        // The host presents a certificate other than the one the plugin was given.
        let client = client_config(&other, plugin.cert.as_ref()).unwrap();
        let server = server_config(&plugin, host.cert_pem()).unwrap();
        assert!(exchange(client, server).await.is_err());
        assert!(matches!(
            server_config(&plugin, "not a certificate"),
            Err(AutoMtlsError::ClientCert(_))
        ));
    }

    #[test]
    fn p521_signatures_verify() {
        use p521::ecdsa::signature::Signer as _;
        let key = p521::ecdsa::SigningKey::random(&mut rand_core::OsRng);
        let point = p521::ecdsa::VerifyingKey::from(&key).to_encoded_point(false);
        let signature: p521::ecdsa::Signature = key.sign(b"message");
        let der = signature.to_der();
        let alg = EcdsaP521Sha512;
        assert!(
            alg.verify_signature(point.as_bytes(), b"message", der.as_bytes())
                .is_ok()
        );
        assert!(
            alg.verify_signature(point.as_bytes(), b"other", der.as_bytes())
                .is_err()
        );
    }
}
