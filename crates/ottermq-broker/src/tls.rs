//! TLS for the AMQP listener (amqps, port 5671) and the management HTTP server: rustls with
//! the ring provider, configured from PEM certificate and key files, with optional client
//! certificate verification against a CA.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
pub use tokio_rustls::TlsAcceptor;

/// Where the server's certificate and key are, and how clients are checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM file with the server certificate, then any intermediates.
    pub cert_file: PathBuf,
    /// PEM file with the server's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM file with the CA certificates client certificates are verified against.
    pub ca_file: Option<PathBuf>,
    /// Refuse clients without a certificate signed by `ca_file` (RabbitMQ's
    /// `fail_if_no_peer_cert`); without it a client certificate is checked only if sent.
    pub fail_if_no_peer_cert: bool,
}

/// Why a TLS configuration could not be built; said at start-up, not at the first client.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn file_error(path: &Path, reason: impl ToString) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the rustls server configuration; `alpn` is offered as given (e.g. `h2`, `http/1.1`
/// for HTTPS, nothing for AMQP).
pub fn server_config(s: &TlsSettings, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&s.cert_file)
        .map_err(|e| file_error(&s.cert_file, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(&s.cert_file, e))?;
    if certs.is_empty() {
        return Err(file_error(&s.cert_file, "no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(&s.key_file).map_err(|e| file_error(&s.key_file, e))?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match &s.ca_file {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).map_err(|e| file_error(ca, e))? {
                roots
                    .add(c.map_err(|e| file_error(ca, e))?)
                    .map_err(|e| file_error(ca, e))?;
            }
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
            let v = if s.fail_if_no_peer_cert {
                v
            } else {
                v.allow_unauthenticated()
            };
            builder
                .with_client_cert_verifier(v.build().map_err(|e| TlsError::Config(e.to_string()))?)
        }
        None if s.fail_if_no_peer_cert => {
            return Err(TlsError::Config(
                "fail_if_no_peer_cert needs a CA file to verify client certificates".into(),
            ))
        }
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}

/// An acceptor for the AMQP listener.
pub fn acceptor(s: &TlsSettings) -> Result<TlsAcceptor, TlsError> {
    Ok(TlsAcceptor::from(server_config(s, &[])?))
}
