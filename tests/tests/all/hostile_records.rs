//! Records nobody should send, produced to a real topic of the
//! Kafka-compatible broker (`scripts/services start kafka`) and read by the
//! real `weir run` binary: header names that are not UTF-8, null and empty
//! header values and names, binary keys and values, tombstones, a large
//! record, and records of every compression codec. Each must be processed
//! or dead-lettered with a reason; the run must end on its own
//! (`stop_at_end`) without a panic, having committed past all of them.
//!
//! Also through the real binary: a `${VAR}` secret that a plugin's `init`
//! quotes is shown by neither `weir run` nor `weir validate`, and a SIGTERM
//! while poison events are being isolated ends the run without writing or
//! committing the unfinished batch.

use weir_tests::kafka;

use std::process::{Command, Stdio};
use std::time::Duration;

use kafka::{Msg, brokers, committed, create_topic, produce, unique};
use rdkafka::ClientConfig;
use rdkafka::message::{BorrowedHeaders, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use weir_tests::{plugins, weir_bin};

/// Produce one record whose only header has the name `name` (any bytes).
/// rdkafka's safe API takes header names as `&str`; librdkafka itself
/// takes bytes, so the header is added through its C API.
async fn produce_with_raw_header_name(brokers: &str, topic: &str, name: &[u8], value: &[u8]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .create()
        .expect("producer");
    let headers = OwnedHeaders::new();
    let raw = std::ptr::from_ref::<BorrowedHeaders>(headers.as_borrowed())
        .cast_mut()
        .cast::<rdkafka::bindings::rd_kafka_headers_t>();
    // SAFETY: `as_borrowed` is a view of the very `rd_kafka_headers_t` the
    // `OwnedHeaders` owns (rdkafka casts one to the other); librdkafka
    // copies name and value into the list.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_header_add(
            raw,
            name.as_ptr().cast(),
            isize::try_from(name.len()).expect("short name"),
            std::ptr::null(),
            0,
        )
    };
    assert_eq!(
        err,
        rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
    );
    let record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
        .partition(0)
        .payload(value)
        .headers(headers);
    producer
        .send(record, Duration::from_secs(30))
        .await
        .unwrap_or_else(|(e, _)| panic!("produce: {e}"));
}

/// Produce one record with the given compression codec.
async fn produce_compressed(brokers: &str, topic: &str, codec: &str, value: &str) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("compression.codec", codec)
        .create()
        .unwrap_or_else(|e| panic!("producer with {codec}: {e}"));
    let record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
        .partition(0)
        .payload(value.as_bytes());
    producer
        .send(record, Duration::from_secs(30))
        .await
        .unwrap_or_else(|(e, _)| panic!("produce with {codec}: {e}"));
    producer.flush(Duration::from_secs(10)).expect("flush");
}

fn json_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_records_are_processed_or_dead_lettered_and_never_stop_the_pipeline() {
    let brokers = brokers();
    let topic = unique("hostile-in");
    let group = unique("hostile-group");
    create_topic(&brokers, &topic, 1).await;

    let on = |value: &str| Msg {
        value: Some(value.as_bytes().to_vec()),
        partition: 0,
        ..Msg::default()
    };
    // Offsets 0..=6.
    produce(
        &brokers,
        &topic,
        &[
            on(r#"{"id":0}"#),
            Msg {
                headers: vec![("".into(), b"empty name".to_vec())],
                ..on(r#"{"id":1}"#)
            },
            Msg {
                key: Some(vec![0, 0xff, 0xfe, 0]),
                headers: vec![("bin".into(), vec![0, 0xff, 0x80])],
                ..on(r#"{"id":2}"#)
            },
            // Not JSON: the plugin fails it.
            Msg {
                value: Some(vec![0xff, 0, 0xc3, 0x28]),
                partition: 0,
                ..Msg::default()
            },
            // A tombstone.
            Msg {
                key: Some(b"k".to_vec()),
                value: None,
                partition: 0,
                ..Msg::default()
            },
            // Large (the producer's default cap is 1 MB).
            on(&format!(r#"{{"id":5,"pad":"{}"}}"#, "x".repeat(900_000))),
            on(r#"{"id":6}"#),
        ],
    )
    .await;
    // Offset 7: a header name that is not UTF-8, with a null value.
    produce_with_raw_header_name(&brokers, &topic, &[0xff, 0xfe, b'h'], br#"{"id":7}"#).await;
    // Offsets 8..=11: every codec.
    for (i, codec) in ["gzip", "snappy", "lz4", "zstd"].iter().enumerate() {
        produce_compressed(&brokers, &topic, codec, &format!(r#"{{"id":{}}}"#, 8 + i)).await;
    }
    produce(&brokers, &topic, &[on(r#"{"id":12}"#)]).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("weir.toml");
    std::fs::write(
        &config,
        format!(
            r#"[host.admin]
enabled = false

[sources.in]
type = "kafka"
brokers = "{brokers}"
topics = ["{topic}"]
group_id = "{group}"
stop_at_end = true
options = {options}

[plugins.stamp]
path = "{stamp}"

[sinks.out]
type = "file"
path = "out.jsonl"

[sinks.dlq]
type = "file"
path = "dlq.jsonl"

[pipelines.hostile]
source = "in"
plugins = ["stamp"]
default_route = "out"
dead_letter = "dlq"
batch = {{ max_events = 4, max_wait_ms = 100 }}
"#,
            options = kafka::group_options_toml(),
            stamp = plugins::STAMP_A,
        ),
    )
    .expect("config");
    let run = Command::new(weir_bin())
        .args(["run", config.to_str().expect("utf-8"), "--progress", "0"])
        .env("WEIR_CACHE_DIR", dir.path().join("cache"))
        .stdin(Stdio::null())
        .output()
        .expect("weir run");
    let log = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "weir run failed: {log}");
    assert!(!log.contains("panicked"), "{log}");

    let out = json_lines(&dir.path().join("out.jsonl"));
    let mut ids: Vec<i64> = out
        .iter()
        .map(|o| o["value"]["id"].as_i64().expect("id"))
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, [0, 1, 2, 5, 6, 8, 9, 10, 11, 12], "{out:#?}");
    let empty_name = out.iter().find(|o| o["value"]["id"] == 1).expect("id 1");
    assert_eq!(empty_name["headers"][""], "empty name", "{empty_name:#}");

    let dlq = json_lines(&dir.path().join("dlq.jsonl"));
    let reasons: Vec<(String, String)> = dlq
        .iter()
        .map(|d| {
            (
                d["headers"]["weir.dlq.origin"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                d["headers"]["weir.dlq.reason"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(reasons.len(), 3, "{dlq:#?}");
    let reason_of = |offset: i64| {
        reasons
            .iter()
            .find(|(origin, _)| *origin == format!("{topic}/0/{offset}"))
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| panic!("offset {offset} not dead-lettered: {reasons:?}"))
    };
    assert!(!reason_of(3).is_empty());
    assert!(!reason_of(4).is_empty());
    let bad_name = reason_of(7);
    assert!(
        bad_name.contains("not UTF-8") && bad_name.contains("fffe68"),
        "{bad_name}"
    );
    let bad = dlq
        .iter()
        .find(|d| d["headers"]["weir.dlq.origin"] == format!("{topic}/0/7"))
        .expect("offset 7");
    assert_eq!(bad["headers"]["weir.dlq.plugin"], "(source)");
    assert_eq!(bad["value"]["id"], 7, "the record itself is kept");

    assert_eq!(
        committed(&brokers, &group, &topic, 1).get(&0).copied(),
        Some(13),
        "committed past every record"
    );
}

/// A secret with a quote and a backslash: a plugin quoting it with `{:?}`
/// writes it escaped (`\"`, `\\`), which must be hidden too.
const SECRET: &str = "s3cr\"et\\-from-env-7f1c";

/// `text` shows neither the secret nor its escaped forms.
fn assert_no_secret(what: &str, text: &str) {
    for form in [
        SECRET.to_owned(),
        SECRET.escape_debug().to_string(),
        "s3cr".to_owned(),
        "from-env-7f1c".to_owned(),
    ] {
        assert!(!text.contains(&form), "{what} shows {form:?}: {text}");
    }
}

/// A plugin whose `init` refuses its config by quoting it (the hostile
/// fixture's `unknown mode "..."`) is given a `${VAR}` secret: neither
/// `weir run` (which runs `init`) nor `weir validate` shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_init_errors_never_show_a_secret_from_the_environment() {
    let brokers = brokers();
    let topic = unique("secret-in");
    create_topic(&brokers, &topic, 1).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("weir.toml");
    let write = |route: &str| {
        std::fs::write(
            &config,
            format!(
                r#"[host.admin]
enabled = false

[sources.in]
type = "kafka"
brokers = "{brokers}"
topics = ["{topic}"]
group_id = "{group}"
stop_at_end = true

[plugins.echo]
path = "{hostile}"
config = {{ mode = "${{WEIR_TEST_PLUGIN_SECRET}}" }}

[sinks.out]
type = "file"
path = "out.jsonl"

[pipelines.p]
source = "in"
plugins = ["echo"]
default_route = "{route}"
"#,
                group = unique("secret-group"),
                hostile = plugins::HOSTILE,
            ),
        )
        .expect("config");
    };
    let weir = |args: &[&str]| {
        Command::new(weir_bin())
            .args(args)
            .env("WEIR_TEST_PLUGIN_SECRET", SECRET)
            .env("WEIR_TEST_ROUTE_SECRET", SECRET)
            .env("WEIR_CACHE_DIR", dir.path().join("cache"))
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .output()
            .expect("weir")
    };
    let path = config.to_str().expect("utf-8");

    write("out");
    let run = weir(&["run", path, "--progress", "0"]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "init must refuse: {stderr}");
    // The refusal is reported, with the value hidden where it was quoted.
    assert!(
        stderr.contains("unknown mode") && stderr.contains("<redacted>"),
        "{stderr}"
    );
    assert_no_secret("weir run stderr", &stderr);
    assert_no_secret("weir run stdout", &stdout);

    // `weir validate` runs each plugin's `init` too: the same refusal, the
    // value hidden the same way.
    let validate = weir(&["validate", path]);
    assert!(!validate.status.success(), "init must refuse: {validate:?}");
    let shown = String::from_utf8_lossy(&validate.stdout);
    assert!(
        shown.contains("unknown mode") && shown.contains("<redacted>"),
        "{shown}"
    );
    assert_no_secret(
        "weir validate stdout",
        &String::from_utf8_lossy(&validate.stdout),
    );
    assert_no_secret(
        "weir validate stderr",
        &String::from_utf8_lossy(&validate.stderr),
    );

    // A config error that quotes the value (an unknown route).
    write("${WEIR_TEST_ROUTE_SECRET}");
    let validate = weir(&["validate", path]);
    let stdout = String::from_utf8_lossy(&validate.stdout);
    assert!(!validate.status.success(), "{stdout}");
    assert!(stdout.contains("default_route"), "{stdout}");
    assert_no_secret("weir validate stdout", &stdout);
    assert_no_secret(
        "weir validate stderr",
        &String::from_utf8_lossy(&validate.stderr),
    );
    let run = weir(&["run", path, "--progress", "0"]);
    assert!(!run.status.success());
    assert_no_secret("weir run stderr", &String::from_utf8_lossy(&run.stderr));
    assert_no_secret("weir run stdout", &String::from_utf8_lossy(&run.stdout));
}

/// Every event of a batch loops until its deadline, so isolating them would
/// take minutes (a long isolation budget, 2 s deadlines); a SIGTERM in the
/// middle stops the isolation between calls: `weir run` exits long before
/// that, writes nothing and commits nothing past the unfinished events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_poison_isolation_exits_without_committing_unfinished_events() {
    let brokers = brokers();
    let topic = unique("isolate-in");
    let group = unique("isolate-group");
    create_topic(&brokers, &topic, 1).await;
    let messages: Vec<Msg> = (0..32)
        .map(|i| Msg {
            value: Some(format!(r#"{{"n":{i},"attack":true}}"#).into_bytes()),
            partition: 0,
            ..Msg::default()
        })
        .collect();
    produce(&brokers, &topic, &messages).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("weir.toml");
    std::fs::write(
        &config,
        format!(
            r#"[host]
shutdown_timeout_ms = 600000

[host.admin]
enabled = false

[sources.in]
type = "kafka"
brokers = "{brokers}"
topics = ["{topic}"]
group_id = "{group}"
options = {options}

[plugins.spin]
path = "{hostile}"
config = {{ mode = "spin" }}
limits = {{ deadline_ms = 2000, isolation_budget_ms = 600000 }}

[sinks.out]
type = "file"
path = "out.jsonl"

[sinks.dlq]
type = "file"
path = "dlq.jsonl"

[pipelines.p]
source = "in"
plugins = ["spin"]
default_route = "out"
dead_letter = "dlq"
batch = {{ max_events = 32, max_wait_ms = 2000 }}
"#,
            options = kafka::group_options_toml(),
            hostile = plugins::HOSTILE,
        ),
    )
    .expect("config");
    let log_path = dir.path().join("weir.log");
    let mut child = Command::new(weir_bin())
        .args(["run", config.to_str().expect("utf-8"), "--progress", "0"])
        .env("WEIR_CACHE_DIR", dir.path().join("cache"))
        .env("RUST_LOG", "info,weir::engine=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).expect("log"))
        .spawn()
        .expect("start weir");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    // Isolation is under way once it has found its first poison event.
    let waited = std::time::Instant::now();
    while !log().contains("isolated a poison event") {
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!("weir exited early ({status}): {}", log());
        }
        if waited.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("no poison event isolated: {}", log());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    // Isolating 32 looping events one deadline at a time takes over two
    // minutes; the interrupted run is done in a few seconds.
    let signalled = std::time::Instant::now();
    let exited = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if signalled.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("weir kept isolating after SIGTERM: {}", log());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = log();
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        exited.code().is_some(),
        "killed by a signal: {exited} {log}"
    );
    assert!(
        json_lines(&dir.path().join("out.jsonl")).is_empty(),
        "{log}"
    );
    assert!(
        json_lines(&dir.path().join("dlq.jsonl")).is_empty(),
        "{log}"
    );
    assert_eq!(
        committed(&brokers, &group, &topic, 1).get(&0).copied(),
        None,
        "nothing committed past unfinished events: {log}"
    );
}
