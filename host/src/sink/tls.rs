//! The rustls client configuration of the sinks that speak TLS through
//! rustls (PostgreSQL, ClickHouse): trusted roots from a PEM file or the
//! system store, an optional client certificate for mutual TLS.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

use crate::sink::SinkContext;

/// `tls = { ... }` of a sink.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of the certificate authorities trusted for the server's
    /// certificate (relative to the config file). Unset: the system's
    /// trusted roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain for mutual TLS (with `key_file`).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

/// Why a TLS configuration cannot be built; names the setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file that cannot be read or parsed.
    #[error("tls.{setting} {path}: {message}")]
    File {
        /// `ca_file`, `cert_file` or `key_file`.
        setting: &'static str,
        /// The resolved path.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// Anything else (no roots, a certificate rustls refuses).
    #[error("tls: {0}")]
    Config(String),
}

fn file_error(setting: &'static str, path: &std::path::Path, e: impl ToString) -> TlsError {
    TlsError::File {
        setting,
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

impl TlsConfig {
    /// The rustls client configuration these settings describe.
    pub fn client_config(&self, ctx: &SinkContext) -> Result<rustls::ClientConfig, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_file {
            Some(ca) => {
                let path = ctx.resolve(ca);
                for cert in CertificateDer::pem_file_iter(&path)
                    .map_err(|e| file_error("ca_file", &path, e))?
                {
                    let cert = cert.map_err(|e| file_error("ca_file", &path, e))?;
                    roots
                        .add(cert)
                        .map_err(|e| file_error("ca_file", &path, e))?;
                }
                if roots.is_empty() {
                    return Err(file_error("ca_file", &path, "holds no certificate"));
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                for cert in found.certs {
                    // A system certificate rustls cannot parse is skipped,
                    // as every rustls client does.
                    let _ = roots.add(cert);
                }
                if roots.is_empty() {
                    return Err(TlsError::Config(
                        "no trusted roots in the system store; set `tls.ca_file`".to_owned(),
                    ));
                }
            }
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots);
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                let cert_path = ctx.resolve(cert);
                let key_path = ctx.resolve(key);
                let chain = CertificateDer::pem_file_iter(&cert_path)
                    .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| file_error("cert_file", &cert_path, e))?;
                let key = PrivateKeyDer::from_pem_file(&key_path)
                    .map_err(|e| file_error("key_file", &key_path, e))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| TlsError::Config(format!("client certificate: {e}")))
            }
            (None, None) => Ok(builder.with_no_client_auth()),
            _ => Err(TlsError::Config(
                "`tls.cert_file` and `tls.key_file` go together".to_owned(),
            )),
        }
    }
}
