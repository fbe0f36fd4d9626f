//! Record batches the Kafka client cannot decode, produced to a real topic
//! of the Kafka-compatible broker (`scripts/services start kafka`) with a
//! hand-built Produce request (`weir_tests::kafka_wire`), read by the real
//! `weir run` binary: each is dead-lettered as one record naming its topic,
//! partition and offsets, the partition goes on past it, the committed
//! offset ends past it, and a restart goes on from there.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use weir_tests::kafka::{self, Msg, brokers, committed, create_topic, produce, unique};
use weir_tests::kafka_wire::{Codec, garbage_batch, produce_raw_batch};
use weir_tests::weir_bin;

fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// `weir run config` to its end (`stop_at_end`); a run that has not ended
/// after 3 minutes is a stalled partition: killed, and the test fails with
/// its log.
fn run_to_end(config: &Path, cache: &Path) -> Output {
    let mut child = Command::new(weir_bin())
        .args(["run", config.to_str().expect("utf-8"), "--progress", "0"])
        .env("WEIR_CACHE_DIR", cache)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weir run");
    let started = Instant::now();
    while child.try_wait().expect("try_wait").is_none() {
        if started.elapsed() > Duration::from_secs(180) {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "weir run never reached the end of the topic (a stalled partition): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().expect("output")
}

fn ids(records: &[serde_json::Value]) -> Vec<i64> {
    let mut ids: Vec<i64> = records
        .iter()
        .map(|o| o["value"]["id"].as_i64().expect("id"))
        .collect();
    ids.sort_unstable();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_compressed_batches_are_dead_lettered_and_skipped_and_a_restart_goes_on() {
    let brokers = brokers();
    let topic = unique("corrupt-in");
    let group = unique("corrupt-group");
    create_topic(&brokers, &topic, 2).await;
    let on = |partition: i32, id: i64| Msg {
        value: Some(format!(r#"{{"id":{id}}}"#).into_bytes()),
        partition,
        ..Msg::default()
    };
    let leader = brokers.split(',').next().expect("a broker").to_owned();

    // Partition 0: offsets 0..=2 readable; 3..=7 one gzip batch of five
    // records whose payload is garbage; 8..=9 readable; 10..=11 a snappy
    // batch of two, garbage; 12 readable. Partition 1: readable records
    // only. (A bad batch is not the partition's last record here: the test
    // broker reports the end offset of a partition ending in a batch of
    // several records as one past the batch's base, short of its end.)
    produce(
        &brokers,
        &topic,
        &[on(0, 0), on(0, 1), on(0, 2), on(1, 100)],
    )
    .await;
    produce_raw_batch(
        &leader,
        &topic,
        0,
        &garbage_batch(Codec::Gzip, 5, b"this is not a gzip stream at all"),
    );
    produce(&brokers, &topic, &[on(0, 3), on(0, 4), on(1, 101)]).await;
    produce_raw_batch(
        &leader,
        &topic,
        0,
        &garbage_batch(Codec::Snappy, 2, &[0xff; 40]),
    );
    produce(&brokers, &topic, &[on(0, 9)]).await;

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

[sinks.out]
type = "file"
path = "out.jsonl"

[sinks.dlq]
type = "file"
path = "dlq.jsonl"

[pipelines.corrupt]
source = "in"
default_route = "out"
dead_letter = "dlq"
batch = {{ max_events = 4, max_wait_ms = 200 }}
"#,
            options = kafka::group_options_toml(),
        ),
    )
    .expect("config");
    let cache = dir.path().join("cache");

    let run = run_to_end(&config, &cache);
    let log = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "weir run failed: {log}");
    assert!(!log.contains("panicked"), "{log}");

    // Every readable record landed, those after the bad batches included.
    let out = json_lines(&dir.path().join("out.jsonl"));
    assert_eq!(ids(&out), [0, 1, 2, 3, 4, 9, 100, 101], "{out:#?}");

    // Each bad batch is one dead letter naming topic, partition, offsets
    // and librdkafka's error.
    let dlq = json_lines(&dir.path().join("dlq.jsonl"));
    assert_eq!(dlq.len(), 2, "{dlq:#?}");
    for (first, last) in [(3, 7), (10, 11)] {
        let letter = dlq
            .iter()
            .find(|d| d["headers"]["weir.dlq.origin"] == format!("{topic}/0/{first}"))
            .unwrap_or_else(|| panic!("batch at {first} not dead-lettered: {dlq:#?}"));
        let reason = letter["headers"]["weir.dlq.reason"]
            .as_str()
            .expect("reason");
        assert!(
            reason.starts_with(&format!(
                "record batch at offsets {first}..={last} of topic `{topic}` partition 0 \
                 cannot be decoded (librdkafka: BadCompression"
            )) && reason.ends_with("; skipped"),
            "{reason}"
        );
        assert_eq!(letter["headers"]["weir.dlq.plugin"], "(source)");
        assert_eq!(letter["value"]["topic"], topic.as_str(), "{letter:#}");
        assert_eq!(letter["value"]["partition"], 0);
        assert_eq!(letter["value"]["first_offset"], first);
        assert_eq!(letter["value"]["last_offset"], last);
    }

    // Committed past both bad batches.
    let offsets = committed(&brokers, &group, &topic, 2);
    assert_eq!(offsets.get(&0).copied(), Some(13), "{offsets:?}");
    assert_eq!(offsets.get(&1).copied(), Some(2), "{offsets:?}");

    // A restart goes on from there: it reads the one new record, not the
    // bad batches again.
    produce(&brokers, &topic, &[on(0, 5)]).await;
    std::fs::remove_file(dir.path().join("out.jsonl")).expect("rm out");
    std::fs::remove_file(dir.path().join("dlq.jsonl")).expect("rm dlq");
    let again = run_to_end(&config, &cache);
    let log = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "second weir run failed: {log}");
    assert_eq!(
        ids(&json_lines(&dir.path().join("out.jsonl"))),
        [5],
        "{log}"
    );
    assert!(
        json_lines(&dir.path().join("dlq.jsonl")).is_empty(),
        "{log}"
    );
    assert_eq!(
        committed(&brokers, &group, &topic, 2).get(&0).copied(),
        Some(14)
    );
}
