//! TLS helpers shared by the connectors that speak TLS through rustls
//! (Redis, ScyllaDB; MongoDB and the AWS SDK configure rustls themselves,
//! Kafka uses librdkafka's OpenSSL).
//!
//! The drivers in one build pull in both of rustls' crypto providers (ring
//! and aws-lc-rs), and rustls then refuses to choose one on its own: the
//! first TLS connection would panic. [`install_crypto_provider`] picks
//! aws-lc-rs for the whole process once, before any connector connects.

use std::path::Path;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

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
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{setting} {}: {e}", path.display()))?
    {
        let cert = cert.map_err(|e| format!("{setting} {}: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{setting} {}: {e}", path.display()))?;
    }
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
    let chain = CertificateDer::pem_file_iter(cert_path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("tls.cert_file {}: {e}", cert_path.display()))?;
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
