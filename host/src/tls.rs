//! TLS through rustls for every connector that speaks it that way: the
//! PEM helpers of the Redis and ScyllaDB connectors and the `tls = { ... }`
//! client configuration of the PostgreSQL and ClickHouse sinks (MongoDB and
//! the AWS SDK configure rustls themselves, Kafka uses librdkafka's OpenSSL).
//!
//! The drivers in one build pull in both of rustls' crypto providers (ring
//! and aws-lc-rs), and rustls then refuses to choose one on its own: the
//! first TLS connection would panic. [`install_crypto_provider`] picks
//! aws-lc-rs for the whole process once, before any connector connects.

use std::path::Path;
#[cfg(feature = "tls")]
use std::path::PathBuf;
#[cfg(feature = "tls")]
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
#[cfg(feature = "tls")]
use serde::Deserialize;

/// Make aws-lc-rs the process-wide rustls crypto provider (idempotent:
/// a provider installed earlier, by us or a library, stays).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Read a PEM file whole, naming the setting and the file on error.
pub fn read_pem(setting: &str, path: &Path) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{setting} {}: {e}", path.display()))?;
    // Check it parses as PEM now, so a wrong file is reported here and not
    // as an opaque handshake failure later.
    let mut found = false;
    for item in CertificateDer::pem_slice_iter(&bytes) {
        item.map_err(|e| format!("{setting} {}: not PEM: {e}", path.display()))?;
        found = true;
    }
    if !found && PrivateKeyDer::from_pem_slice(&bytes).is_err() {
        return Err(format!(
            "{setting} {}: no PEM certificate or private key in the file",
            path.display()
        ));
    }
    Ok(bytes)
}

/// The certificates of a PEM file as a root store (the CAs a client
/// trusts).
pub fn root_store(setting: &str, path: &Path) -> Result<rustls::RootCertStore, String> {
    let roots = pem_roots(path).map_err(|e| format!("{setting} {}: {e}", path.display()))?;
    if roots.is_empty() {
        return Err(format!(
            "{setting} {}: no PEM certificate in the file",
            path.display()
        ));
    }
    Ok(roots)
}

/// A client certificate chain and its private key from two PEM files.
pub fn client_identity(
    cert_path: &Path,
    key_path: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let chain =
        pem_chain(cert_path).map_err(|e| format!("tls.cert_file {}: {e}", cert_path.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "tls.cert_file {}: no PEM certificate in the file",
            cert_path.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| format!("tls.key_file {}: {e}", key_path.display()))?;
    Ok((chain, key))
}

/// `tls = { ... }` of the PostgreSQL and ClickHouse sinks.
#[cfg(feature = "tls")]
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
#[cfg(feature = "tls")]
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

#[cfg(feature = "tls")]
fn file_error(setting: &'static str, path: &Path, e: impl ToString) -> TlsError {
    TlsError::File {
        setting,
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

#[cfg(feature = "tls")]
impl TlsConfig {
    /// The rustls client configuration these settings describe, relative
    /// paths resolved against `config_dir`.
    pub fn client_config(&self, config_dir: &Path) -> Result<rustls::ClientConfig, TlsError> {
        let mut roots;
        match &self.ca_file {
            Some(ca) => {
                let path = crate::paths::resolve(config_dir, ca);
                roots = pem_roots(&path).map_err(|e| file_error("ca_file", &path, e))?;
                if roots.is_empty() {
                    return Err(file_error("ca_file", &path, "holds no certificate"));
                }
            }
            None => {
                roots = rustls::RootCertStore::empty();
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
                let cert_path = crate::paths::resolve(config_dir, cert);
                let key_path = crate::paths::resolve(config_dir, key);
                let chain =
                    pem_chain(&cert_path).map_err(|e| file_error("cert_file", &cert_path, e))?;
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

/// Every certificate of a PEM file added to a root store (empty when the
/// file holds none: the callers word that case themselves).
fn pem_roots(path: &Path) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| e.to_string())? {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    Ok(roots)
}

/// The certificate chain of a PEM file, in file order.
fn pem_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_kinds_of_config_refuse_a_ca_file_without_a_certificate_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate\n").unwrap();

        let err = root_store("tls.ca_file", &ca).unwrap_err();
        assert_eq!(
            err,
            format!(
                "tls.ca_file {}: no PEM certificate in the file",
                ca.display()
            )
        );

        #[cfg(feature = "tls")]
        {
            let config = TlsConfig {
                ca_file: Some("ca.pem".into()),
                ..TlsConfig::default()
            };
            let err = config.client_config(dir.path()).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("tls.ca_file {}: holds no certificate", ca.display())
            );
            let missing = TlsConfig {
                ca_file: Some("absent.pem".into()),
                ..TlsConfig::default()
            };
            let err = missing.client_config(dir.path()).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!(
                    "tls.ca_file {}: ",
                    dir.path().join("absent.pem").display()
                )),
                "{err}"
            );
        }
    }
}
