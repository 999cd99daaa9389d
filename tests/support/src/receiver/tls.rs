//! TLS for the receiver: a throw-away PKI generated at runtime ([`TestPki`]) and the rustls
//! configurations built from it (ring provider only).
//!
//! The PKI is a CA, a server certificate signed by it for [`SERVER_NAMES`] (DNS names only, no
//! IP address: a client connecting to `127.0.0.1` must set the server name explicitly), and a
//! client certificate signed by it for mutual TLS. Everything is ECDSA P-256 and valid from 1975
//! to 4096, so clock skew never matters.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

/// The DNS names the server certificate is valid for. `localhost` is what
/// [`Receiver::url`](super::Receiver::url) uses; `loki.test` resolves nowhere and is there for
/// clients that connect to an address and override the name they verify.
pub const SERVER_NAMES: [&str; 2] = ["localhost", "loki.test"];

/// How a TLS receiver ([`Receiver::start_tls`](super::Receiver::start_tls)) authenticates clients.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// Refuse the handshake unless the client presents a certificate signed by the test CA
    /// ([`TestPki::client_cert_pem`]).
    pub require_client_cert: bool,
}

impl TlsOptions {
    /// Server authentication only.
    pub fn server_only() -> TlsOptions {
        TlsOptions {
            require_client_cert: false,
        }
    }

    /// Mutual TLS: a client certificate signed by the test CA is required.
    pub fn mutual() -> TlsOptions {
        TlsOptions {
            require_client_cert: true,
        }
    }
}

/// One key pair and its certificate, as DER and PEM.
struct Leaf {
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    key_der: Vec<u8>,
    key_pem: String,
}

/// A test CA with a server and a client certificate it signed, generated fresh (new keys) by
/// [`TestPki::generate`]. Keys are PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
pub struct TestPki {
    ca: Leaf,
    server: Leaf,
    client: Leaf,
}

impl TestPki {
    /// Generates a CA, a server certificate for [`SERVER_NAMES`] and a client certificate.
    ///
    /// Panics if rcgen fails, which it does not for these fixed parameters.
    pub fn generate() -> TestPki {
        let ca_key = KeyPair::generate().expect("test PKI: generating the CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("test PKI: CA parameters");
        ca_params.distinguished_name.remove(DnType::CommonName);
        // A name of its own (from its key) so that another TestPki's CA is an unknown issuer
        // rather than a same-named CA with a bad signature.
        let id: String = ca_key.public_key_raw()[1..9]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("shipper-testkit test CA {id}"));
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).expect("test PKI: self-signing the CA");
        let ca = Leaf {
            cert_der: ca_cert.der().clone(),
            cert_pem: ca_cert.pem(),
            key_der: ca_key.serialize_der(),
            key_pem: ca_key.serialize_pem(),
        };
        let issuer = Issuer::new(ca_params, ca_key);

        let server = signed_leaf(
            &issuer,
            "shipper-testkit receiver",
            SERVER_NAMES.iter().map(|s| s.to_string()).collect(),
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let client = signed_leaf(
            &issuer,
            "shipper-testkit client",
            Vec::new(),
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        TestPki { ca, server, client }
    }

    /// The CA certificate (PEM): what a client puts in its trust store (`ca_file`).
    pub fn ca_pem(&self) -> &str {
        &self.ca.cert_pem
    }

    /// The CA's private key (PEM), for tests that want to sign more certificates themselves.
    pub fn ca_key_pem(&self) -> &str {
        &self.ca.key_pem
    }

    /// The server certificate (PEM), signed by the CA, for [`SERVER_NAMES`].
    pub fn server_cert_pem(&self) -> &str {
        &self.server.cert_pem
    }

    /// The server's private key (PEM).
    pub fn server_key_pem(&self) -> &str {
        &self.server.key_pem
    }

    /// The client certificate (PEM), signed by the CA, for mutual TLS (`cert_file`).
    pub fn client_cert_pem(&self) -> &str {
        &self.client.cert_pem
    }

    /// The client's private key (PEM) (`key_file`).
    pub fn client_key_pem(&self) -> &str {
        &self.client.key_pem
    }

    /// A rustls server configuration: the server certificate, ALPN `http/1.1`, and with
    /// `require_client_cert` a client verifier that accepts only certificates from the CA.
    pub fn server_config(&self, options: TlsOptions) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("test PKI: the ring provider supports the default protocol versions");
        let builder = if options.require_client_cert {
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(self.roots()), provider)
                .build()
                .expect("test PKI: building the client certificate verifier");
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder
            .with_single_cert(vec![self.server.cert_der.clone()], self.server.key())
            .expect("test PKI: the server certificate and key match");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }

    /// A rustls client configuration that trusts only the test CA, presenting the client
    /// certificate when `with_client_cert`. For [`client::request_tls`](crate::client::request_tls).
    pub fn client_config(&self, with_client_cert: bool) -> Arc<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("test PKI: the ring provider supports the default protocol versions")
            .with_root_certificates(self.roots());
        let config = if with_client_cert {
            builder
                .with_client_auth_cert(vec![self.client.cert_der.clone()], self.client.key())
                .expect("test PKI: the client certificate and key match")
        } else {
            builder.with_no_client_auth()
        };
        Arc::new(config)
    }

    fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots
            .add(self.ca.cert_der.clone())
            .expect("test PKI: the CA certificate parses");
        roots
    }
}

impl Leaf {
    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

impl std::fmt::Debug for TestPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPki")
            .field("server_names", &SERVER_NAMES)
            .finish_non_exhaustive()
    }
}

fn signed_leaf(issuer: &Issuer<'_, KeyPair>, cn: &str, sans: Vec<String>, eku: ExtendedKeyUsagePurpose) -> Leaf {
    let key = KeyPair::generate().expect("test PKI: generating a key");
    let mut params = CertificateParams::new(sans).expect("test PKI: certificate parameters");
    params.distinguished_name.remove(DnType::CommonName);
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![eku];
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, issuer).expect("test PKI: signing a certificate");
    Leaf {
        cert_der: cert.der().clone(),
        cert_pem: cert.pem(),
        key_der: key.serialize_der(),
        key_pem: key.serialize_pem(),
    }
}
