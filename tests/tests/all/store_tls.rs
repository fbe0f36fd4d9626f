//! TLS to the stores, against real servers: Redis' own TLS listener
//! (`redis-server --tls-port`, started by the test with certificates the
//! test made) and MongoDB (the test server behind a TLS terminator of the
//! test crate). Each connection crosses a tap that keeps its bytes: what
//! was written is in the store, the handshake is on the wire, the
//! plaintext is not. A wrong CA is refused with an error that says so.

use weir_tests::stores;
use weir_tests::tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use stores::{keyed, unique};
use tls::{Pki, free_port, p};
use weir::sink::{SinkConfig, SinkContext};

/// A TLS-only redis-server this test started, killed when dropped.
struct TlsRedis {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tls_redis(pki: &Pki, auth_clients: &str) -> TlsRedis {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--tls-port")
        .arg(port.to_string())
        .arg("--tls-cert-file")
        .arg(&pki.server_cert)
        .arg("--tls-key-file")
        .arg(&pki.server_key)
        .arg("--tls-ca-cert-file")
        .arg(&pki.ca)
        .args(["--tls-auth-clients", auth_clients])
        .arg("--dir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("redis-server (scripts/services start redis installs it)");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-server did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    TlsRedis {
        child,
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
        _dir: dir,
    }
}

async fn build(table: &str) -> Result<std::sync::Arc<dyn weir::sink::Sink>, String> {
    let config: SinkConfig =
        toml::from_str(table).unwrap_or_else(|e| panic!("bad sink config: {e}\n{table}"));
    let ctx = SinkContext {
        name: "secure".to_owned(),
        config_dir: PathBuf::from("/"),
    };
    // A config mistake (`tls` with `redis://`) is found by the offline
    // check, before any connection.
    let config = config
        .validate(&ctx.name, &ctx.config_dir)
        .map_err(|problems| format!("{problems:?}"))?;
    config.build(&ctx).await.map_err(|e| e.to_string())
}

/// Read a key over TLS with the test's own client.
async fn tls_get(pki: &Pki, addr: SocketAddr, key: &str) -> Option<String> {
    let client = redis::Client::build_with_tls(
        format!("rediss://{addr}/"),
        redis::TlsCertificates {
            client_tls: Some(redis::ClientTlsConfig {
                client_cert: std::fs::read(&pki.client_cert).unwrap(),
                client_key: std::fs::read(&pki.client_key).unwrap(),
            }),
            root_cert: Some(std::fs::read(&pki.ca).unwrap()),
        },
    )
    .unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_over_tls_with_a_client_certificate() {
    let pki = tls::pki();
    let server = tls_redis(&pki, "yes");
    let (tap, captured) = tls::tap(server.addr).await;
    let prefix = unique("tls");
    let marker = unique("plaintext-marker");
    let sink = build(&format!(
        "type = \"redis\"\nurl = \"rediss://{tap}/\"\n\
         tls = {{ ca_file = \"{}\", cert_file = \"{}\", key_file = \"{}\" }}\n\
         [[commands]]\ncmd = \"SET\"\nkey = \"{prefix}:{{key}}\"\n",
        p(&pki.ca),
        p(&pki.client_cert),
        p(&pki.client_key),
    ))
    .await
    .expect("the sink connects over TLS");
    let outputs: Vec<_> = (0..50)
        .map(|i| {
            keyed(
                &format!("k{i}"),
                json!({ "id": i, "secret": format!("{marker}-{i}") }),
            )
        })
        .collect();
    let rejected = sink.write(&outputs).await.expect("write over TLS");
    assert!(rejected.is_empty(), "{rejected:?}");

    let stored = tls_get(&pki, server.addr, &format!("{prefix}:k7")).await;
    assert_eq!(
        stored.map(|v| serde_json::from_str::<serde_json::Value>(&v).unwrap()),
        Some(json!({ "id": 7, "secret": format!("{marker}-7") }))
    );
    let captured = captured.lock().unwrap();
    assert!(
        captured.all_tls(),
        "a connection did not start with a TLS handshake"
    );
    assert!(
        !captured.contains(marker.as_bytes()),
        "the values' plaintext crossed the wire"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_tls_refuses_a_wrong_ca_and_a_missing_client_certificate() {
    let pki = tls::pki();
    let server = tls_redis(&pki, "yes");
    let table = |tls: String| {
        format!(
            "type = \"redis\"\nurl = \"rediss://{}/\"\nconnection_timeout_ms = 3000\n{tls}\n\
             [[commands]]\ncmd = \"SET\"\nkey = \"x:{{key}}\"\n",
            server.addr
        )
    };
    let err = build(&table(format!(
        "tls = {{ ca_file = \"{}\" }}",
        p(&pki.other_ca)
    )))
    .await
    .err()
    .expect("a wrong CA must be refused");
    assert!(
        err.contains("certificate") && err.contains("UnknownIssuer"),
        "the error does not say the server's certificate was not trusted: {err}"
    );
    // The right CA, but the server requires a client certificate.
    let refused = match build(&table(format!("tls = {{ ca_file = \"{}\" }}", p(&pki.ca)))).await {
        Err(e) => Some(e),
        Ok(sink) => sink
            .write(&[keyed("k", json!({"a": 1}))])
            .await
            .err()
            .map(|e| e.to_string()),
    };
    assert!(
        refused.is_some(),
        "a client without a certificate was accepted"
    );
    // A `tls` table with a plain redis:// URL is a config error.
    let err = build(
        &table(format!("tls = {{ ca_file = \"{}\" }}", p(&pki.ca)))
            .replace("rediss://", "redis://"),
    )
    .await
    .err()
    .expect("tls with redis:// must be refused");
    assert!(err.contains("rediss://"), "{err}");
}

/// The test MongoDB's address.
fn mongo_addr() -> SocketAddr {
    let uri = stores::mongo_uri();
    let host = uri
        .trim_start_matches("mongodb://")
        .split(['/', '?'])
        .next()
        .unwrap()
        .to_owned();
    std::net::ToSocketAddrs::to_socket_addrs(&host)
        .unwrap()
        .next()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn mongodb_over_tls() {
    // Fails loudly if the test server is not running.
    let direct = stores::mongo().await;
    let pki = tls::pki();
    let terminator = tls::terminator(&pki, mongo_addr(), false).await;
    let (tap, captured) = tls::tap(terminator).await;
    let db = unique("tlsdb");
    let marker = unique("plaintext-marker");
    // directConnection: the server announces a replica set whose member
    // address is its plaintext port; talk to the TLS address only.
    let uri = format!(
        "mongodb://{tap}/?tls=true&tlsCAFile={}&directConnection=true&serverSelectionTimeoutMS=5000",
        p(&pki.ca)
    );
    let sink = build(&format!(
        "type = \"mongodb\"\nuri = \"{uri}\"\ndatabase = \"{db}\"\ncollection = \"c\"\n"
    ))
    .await
    .expect("the sink connects over TLS");
    let outputs: Vec<_> = (0..20)
        .map(|i| {
            keyed(
                &format!("k{i}"),
                json!({ "n": i, "secret": format!("{marker}-{i}") }),
            )
        })
        .collect();
    let rejected = sink.write(&outputs).await.expect("write over TLS");
    assert!(rejected.is_empty(), "{rejected:?}");

    let doc = direct
        .database(&db)
        .collection::<mongodb::bson::Document>("c")
        .find_one(mongodb::bson::doc! { "_id": "k3" })
        .await
        .unwrap()
        .expect("k3 written");
    assert_eq!(doc.get_str("secret").unwrap(), format!("{marker}-3"));
    {
        let captured = captured.lock().unwrap();
        assert!(
            captured.all_tls(),
            "a connection did not start with a TLS handshake"
        );
        assert!(
            !captured.contains(marker.as_bytes()),
            "the documents' plaintext crossed the wire"
        );
    }

    // A wrong CA: refused, saying so.
    let uri = format!(
        "mongodb://{tap}/?tls=true&tlsCAFile={}&directConnection=true&serverSelectionTimeoutMS=3000",
        p(&pki.other_ca)
    );
    let result = build(&format!(
        "type = \"mongodb\"\nuri = \"{uri}\"\ndatabase = \"{db}\"\ncollection = \"c\"\n"
    ))
    .await;
    let err = match result {
        Err(e) => e,
        Ok(sink) => sink
            .write(&[keyed("x", json!({"a": 1}))])
            .await
            .err()
            .map(|e| e.to_string())
            .expect("a wrong CA must be refused"),
    };
    assert!(
        err.contains("certificate") || err.contains("UnknownIssuer"),
        "the error does not say the server's certificate was not trusted: {err}"
    );
}
