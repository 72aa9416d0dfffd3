//! TLS of every listener, from the PEM files of `server.tls`: the gRPC listener (tonic's
//! rustls acceptor) and the metrics listener (a rustls acceptor of our own), so that bearer
//! tokens never cross the network in clear text without a mesh.

use std::path::Path;
use std::sync::Arc;

use kelvin_config::TlsSettings;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::StartError;

/// The PEM files of `server.tls`, read once at start-up.
#[derive(Clone)]
pub struct Tls {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("mtls", &self.client_ca.is_some()).finish_non_exhaustive()
    }
}

impl Tls {
    /// Reads and checks the configured files; `None` when TLS is off. Errors name the setting.
    pub fn load(settings: &TlsSettings) -> Result<Option<Self>, StartError> {
        let (Some(cert), Some(key)) = (&settings.cert_file, &settings.key_file) else {
            return Ok(None);
        };
        let tls = Self {
            cert: read("server.tls.cert_file", cert)?,
            key: read("server.tls.key_file", key)?,
            client_ca: settings
                .client_ca_file
                .as_deref()
                .map(|path| read("server.tls.client_ca_file", path))
                .transpose()?,
        };
        // Parse now: a bad file stops the start with a message naming it, not the first client.
        tls.acceptor()?;
        Ok(Some(tls))
    }

    /// Whether clients must present a certificate.
    pub fn mutual(&self) -> bool {
        self.client_ca.is_some()
    }

    /// The gRPC listener's configuration.
    pub fn grpc(&self) -> tonic::transport::ServerTlsConfig {
        use tonic::transport::{Certificate, Identity};
        let mut config = tonic::transport::ServerTlsConfig::new()
            .identity(Identity::from_pem(&self.cert, &self.key));
        if let Some(ca) = &self.client_ca {
            config = config.client_ca_root(Certificate::from_pem(ca));
        }
        config
    }

    /// An acceptor for HTTP/1.1 listeners (metrics).
    pub fn acceptor(&self) -> Result<tokio_rustls::TlsAcceptor, StartError> {
        let invalid = |field: &str, e: &dyn std::fmt::Display| {
            StartError::Invalid(format!("{field}: not a usable PEM file: {e}"))
        };
        let certs = CertificateDer::pem_slice_iter(&self.cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid("server.tls.cert_file", &e))?;
        if certs.is_empty() {
            return Err(invalid("server.tls.cert_file", &"no CERTIFICATE block"));
        }
        let key = PrivateKeyDer::from_pem_slice(&self.key)
            .map_err(|e| invalid("server.tls.key_file", &e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| StartError::Invalid(format!("server.tls: {e}")))?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(ca) {
                    let cert = cert.map_err(|e| invalid("server.tls.client_ca_file", &e))?;
                    roots.add(cert).map_err(|e| invalid("server.tls.client_ca_file", &e))?;
                }
                if roots.is_empty() {
                    return Err(invalid("server.tls.client_ca_file", &"no CERTIFICATE block"));
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .map_err(|e| invalid("server.tls.client_ca_file", &e))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(certs, key).map_err(|e| {
            StartError::Invalid(format!(
                "server.tls.cert_file and server.tls.key_file do not make a usable identity: {e}"
            ))
        })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }
}

fn read(field: &str, path: &Path) -> Result<Vec<u8>, StartError> {
    std::fs::read(path)
        .map_err(|e| StartError::Invalid(format!("{field}: cannot read `{}`: {e}", path.display())))
}
