//! Test PKI: a throw-away CA and a leaf certificate for `localhost` / `127.0.0.1`,
//! generated with rcgen and written as PEM files into a temporary directory, plus rustls
//! client and server configurations built from them (ring provider, explicit ALPN).

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::path::PathBuf;
use std::sync::Arc;

/// A CA, a server certificate signed by it, and their PEM files on disk.
pub struct TestPki {
    _dir: tempfile::TempDir,
    /// PEM file holding the CA certificate (for `ca_file` and for test clients).
    pub ca_path: PathBuf,
    /// PEM file holding the leaf certificate (for `[server.tls] cert`).
    pub cert_path: PathBuf,
    /// PEM file holding the leaf's PKCS#8 private key (for `[server.tls] key`).
    pub key_path: PathBuf,
    ca_der: CertificateDer<'static>,
    leaf_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Default for TestPki {
    /// A fresh PKI, as [`TestPki::new`].
    fn default() -> TestPki {
        TestPki::new()
    }
}

impl TestPki {
    /// Generates a fresh CA and a leaf valid for `localhost` and `127.0.0.1`.
    pub fn new() -> TestPki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "microgateway test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

        let mut leaf_params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &*ca).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let ca_path = dir.path().join("ca.pem");
        let cert_path = dir.path().join("cert.pem");
        let key_path = dir.path().join("key.pem");
        std::fs::write(&ca_path, ca.pem()).unwrap();
        std::fs::write(&cert_path, leaf.pem()).unwrap();
        std::fs::write(&key_path, leaf_key.serialize_pem()).unwrap();
        TestPki {
            ca_der: ca.der().clone(),
            leaf_der: leaf.der().clone(),
            key_der: leaf_key.serialize_der(),
            _dir: dir,
            ca_path,
            cert_path,
            key_path,
        }
    }

    /// Server config presenting the leaf, offering h2 and http/1.1 via ALPN.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![self.leaf_der.clone()], key)
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }

    /// Client config trusting only the test CA and offering exactly `alpn`.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}
