//! TLS to the nodes (rustls), compiled in with the `scylla-tls` cargo
//! feature; without it a `tls` table in the config is an error saying so.

use scylla::client::session_builder::SessionBuilder;

use super::config::TlsConfig;
use crate::sink::SinkContext;

/// Configure TLS on the session builder.
#[cfg(not(feature = "scylla-tls"))]
pub fn apply(
    _builder: SessionBuilder,
    _tls: &TlsConfig,
    _ctx: &SinkContext,
) -> Result<SessionBuilder, String> {
    Err(
        "`tls` is set but this weir was built without the `scylla-tls` cargo feature \
         (cargo build --features scylla-tls)"
            .to_string(),
    )
}

/// Configure TLS on the session builder.
#[cfg(feature = "scylla-tls")]
pub fn apply(
    builder: SessionBuilder,
    tls: &TlsConfig,
    ctx: &SinkContext,
) -> Result<SessionBuilder, String> {
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let ca_path = ctx.resolve(&tls.ca_file);
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&ca_path)
        .map_err(|e| format!("tls.ca_file {}: {e}", ca_path.display()))?
    {
        let cert = cert.map_err(|e| format!("tls.ca_file {}: {e}", ca_path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("tls.ca_file {}: {e}", ca_path.display()))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_root_certificates(roots);
    let config = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let cert_path = ctx.resolve(cert);
            let key_path = ctx.resolve(key);
            let chain = CertificateDer::pem_file_iter(&cert_path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("tls.cert_file {}: {e}", cert_path.display()))?;
            let key = PrivateKeyDer::from_pem_file(&key_path)
                .map_err(|e| format!("tls.key_file {}: {e}", key_path.display()))?;
            config
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("tls client certificate: {e}"))?
        }
        (None, None) => config.with_no_client_auth(),
        _ => return Err("`tls.cert_file` and `tls.key_file` go together".to_string()),
    };
    Ok(builder.tls_context(Some(Arc::new(config))))
}
