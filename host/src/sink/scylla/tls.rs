//! TLS to the nodes (rustls), compiled in with the `scylla-tls` cargo
//! feature (in the default build); a build without it refuses a `tls`
//! table, saying so.

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

    crate::tls::install_crypto_provider();
    let roots = crate::tls::root_store("tls.ca_file", &ctx.resolve(&tls.ca_file))?;
    let config = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let (chain, key) = crate::tls::client_identity(&ctx.resolve(cert), &ctx.resolve(key))?;
            config
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("tls client certificate: {e}"))?
        }
        (None, None) => config.with_no_client_auth(),
        _ => return Err("`tls.cert_file` and `tls.key_file` go together".to_string()),
    };
    Ok(builder.tls_context(Some(Arc::new(config))))
}
