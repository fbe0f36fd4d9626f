//! Helpers of the TLS tests: certificates made by the test (a CA, a server
//! certificate for 127.0.0.1/localhost, a client certificate, and an
//! unrelated CA for the "wrong CA is refused" cases), a TLS terminator
//! that puts a plaintext server behind TLS, and a tap that relays a TCP
//! connection and keeps every byte it saw, to prove that what crossed the
//! wire was encrypted.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// PEM files of a test PKI, in a temporary directory that lives as long
/// as this value.
pub struct Pki {
    /// The directory holding the files.
    pub dir: tempfile::TempDir,
    /// The CA that signed the server and client certificates.
    pub ca: PathBuf,
    /// The server's certificate (127.0.0.1 and localhost) and key.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// The server certificate followed by its key, in one file.
    pub server_combined: PathBuf,
    /// A client certificate signed by the CA, and its key.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A CA that signed nothing here: trusting it must fail the handshake.
    pub other_ca: PathBuf,
}

fn ca(name: &str) -> (CertificateParams, KeyPair, String) {
    let key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).expect("self-signed CA");
    (params, key, cert.pem())
}

/// Make a fresh PKI.
pub fn pki() -> Pki {
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write PEM");
        path
    };
    let (ca_params, ca_key, ca_pem) = ca("weir test CA");
    let issuer = Issuer::from_params(&ca_params, &ca_key);

    let server_key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server = params
        .signed_by(&server_key, &issuer)
        .expect("server certificate");

    let client_key = KeyPair::generate().expect("client key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
    params.distinguished_name.push(DnType::CommonName, "weir");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client = params
        .signed_by(&client_key, &issuer)
        .expect("client certificate");

    let (_, _, other_pem) = ca("some other CA");
    Pki {
        ca: write("ca.pem", &ca_pem),
        server_cert: write("server.pem", &server.pem()),
        server_key: write("server.key", &server_key.serialize_pem()),
        server_combined: write(
            "server-combined.pem",
            &format!("{}{}", server.pem(), server_key.serialize_pem()),
        ),
        client_cert: write("client.pem", &client.pem()),
        client_key: write("client.key", &client_key.serialize_pem()),
        other_ca: write("other-ca.pem", &other_pem),
        dir,
    }
}

fn server_config(pki: &Pki, require_client_cert: bool) -> rustls::ServerConfig {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let chain = CertificateDer::pem_file_iter(&pki.server_cert)
        .expect("server cert")
        .collect::<Result<Vec<_>, _>>()
        .expect("server cert");
    let key = PrivateKeyDer::from_pem_file(&pki.server_key).expect("server key");
    let builder = rustls::ServerConfig::builder();
    let builder = if require_client_cert {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&pki.ca).expect("ca") {
            roots.add(cert.expect("ca")).expect("ca");
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
            .build()
            .expect("client verifier");
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    builder
        .with_single_cert(chain, key)
        .expect("server TLS config")
}

/// Listen on 127.0.0.1 (a free port), accept TLS with the PKI's server
/// certificate, and relay the decrypted bytes to `upstream` (a plaintext
/// server). With `require_client_cert`, clients must present a
/// certificate signed by the PKI's CA. Runs until the runtime stops.
pub async fn terminator(pki: &Pki, upstream: SocketAddr, require_client_cert: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    terminator_on(listener, pki, upstream, require_client_cert)
}

/// [`terminator`] on a listener the caller bound (when the port must be
/// known before the upstream starts, e.g. to advertise it).
pub fn terminator_on(
    listener: TcpListener,
    pki: &Pki,
    upstream: SocketAddr,
    require_client_cert: bool,
) -> SocketAddr {
    let addr = listener.local_addr().expect("local addr");
    let acceptor =
        tokio_rustls::TlsAcceptor::from(Arc::new(server_config(pki, require_client_cert)));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A refused handshake (wrong CA on the client's side, no
                // client certificate) just ends this connection.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut plain) = TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    addr
}

/// Every byte a [`tap`] relayed, in both directions, per connection.
#[derive(Debug, Default)]
pub struct Captured {
    /// One entry per connection: (client → server bytes, server → client bytes).
    pub connections: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Captured {
    /// Whether `needle` occurs anywhere in what was relayed.
    pub fn contains(&self, needle: &[u8]) -> bool {
        self.connections.iter().any(|(up, down)| {
            up.windows(needle.len()).any(|w| w == needle)
                || down.windows(needle.len()).any(|w| w == needle)
        })
    }

    /// Whether every connection that carried bytes began with a TLS
    /// handshake record (content type 22, version 3.x) from the client.
    pub fn all_tls(&self) -> bool {
        let used: Vec<_> = self
            .connections
            .iter()
            .filter(|(up, _)| !up.is_empty())
            .collect();
        !used.is_empty()
            && used
                .iter()
                .all(|(up, _)| up.len() > 5 && up[0] == 22 && up[1] == 3)
    }

    /// Total bytes relayed.
    pub fn bytes(&self) -> usize {
        self.connections
            .iter()
            .map(|(u, d)| u.len() + d.len())
            .sum()
    }
}

/// Relay TCP connections from `listener` to `upstream`, keeping a copy of
/// every byte in both directions.
pub fn tap_on(listener: TcpListener, upstream: SocketAddr) -> Arc<Mutex<Captured>> {
    let captured = Arc::new(Mutex::new(Captured::default()));
    let shared = captured.clone();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let Ok(server) = TcpStream::connect(upstream).await else {
                continue;
            };
            let index = {
                let mut c = shared.lock().unwrap();
                c.connections.push((Vec::new(), Vec::new()));
                c.connections.len() - 1
            };
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::spawn(pump(client_read, server_write, shared.clone(), index, true));
            tokio::spawn(pump(
                server_read,
                client_write,
                shared.clone(),
                index,
                false,
            ));
        }
    });
    captured
}

/// [`tap_on`] a fresh port of 127.0.0.1.
pub async fn tap(upstream: SocketAddr) -> (SocketAddr, Arc<Mutex<Captured>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    (addr, tap_on(listener, upstream))
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    captured: Arc<Mutex<Captured>>,
    index: usize,
    upstream: bool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        {
            let mut c = captured.lock().unwrap();
            let (up, down) = &mut c.connections[index];
            if upstream { up } else { down }.extend_from_slice(&buf[..n]);
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// A free port of 127.0.0.1 (bound then released: another process may
/// take it in between, which a test would see as a failure to start).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `path` as a string for a config file.
pub fn p(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}
