//! The Kafka source against the real Kafka-compatible broker
//! (`scripts/services start kafka`): what a batch carries, which offsets a
//! commit leaves in the group, resuming at them, and two members of one
//! group splitting the partitions. Plus the embedded (in-process) cluster.

use weir_tests::kafka;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use kafka::{Msg, brokers, committed, create_topic, produce, unique};
use weir::event::{Event, Op};
use weir::source::kafka::{KafkaCheckpoint, KafkaSource, KafkaSourceConfig};
use weir::source::{Source, SourceBatch, SourceContext};

fn ctx(pipeline: &str) -> SourceContext {
    SourceContext {
        name: "in".into(),
        pipeline: pipeline.into(),
        config_dir: PathBuf::from("."),
    }
}

fn source_config(toml_text: &str) -> KafkaSourceConfig {
    toml::from_str(toml_text).unwrap_or_else(|e| panic!("{e}\n{toml_text}"))
}

fn real_config(topic: &str, group: &str) -> KafkaSourceConfig {
    source_config(&format!(
        "brokers = \"{}\"\ntopics = [\"{topic}\"]\ngroup_id = \"{group}\"\noptions = {}",
        brokers(),
        kafka::group_options_toml()
    ))
}

/// (partition, offset) of an event's origin `topic/partition/offset`.
fn position(event: &Event) -> (i32, i64) {
    let mut parts = event.origin.rsplitn(3, '/');
    let offset = parts.next().unwrap().parse().unwrap();
    let partition = parts.next().unwrap().parse().unwrap();
    (partition, offset)
}

async fn batch(source: &KafkaSource) -> SourceBatch<KafkaCheckpoint> {
    source
        .next_batch(100, Duration::from_millis(500))
        .await
        .expect("next_batch")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_reads_commits_and_resumes_at_committed_offsets() {
    let brokers = brokers();
    let topic = unique("src-resume");
    let group = unique("g-resume");
    create_topic(&brokers, &topic, 3).await;

    // 300 keyed messages with headers, and one tombstone.
    let mut messages: Vec<Msg> = (0..300)
        .map(|i| Msg {
            key: Some(format!("user-{}", i % 17).into_bytes()),
            value: Some(format!("{{\"n\":{i}}}").into_bytes()),
            headers: vec![
                ("n".into(), i.to_string().into_bytes()),
                ("trace".into(), vec![0xff, 0x00]),
            ],
            ..Msg::default()
        })
        .collect();
    messages.push(Msg {
        key: Some(b"user-3".to_vec()),
        ..Msg::default()
    });
    produce(&brokers, &topic, &messages).await;

    // First member: read everything, commit the batches covering about half.
    let first = KafkaSource::connect(&real_config(&topic, &group), &ctx("p"))
        .await
        .expect("connect");
    let mut seen: Vec<Event> = Vec::new();
    let mut committed_until: BTreeMap<i32, i64> = BTreeMap::new();
    while seen.len() < messages.len() {
        let b = batch(&first).await;
        if b.events.is_empty() {
            continue;
        }
        let reached = b.checkpoint.clone();
        seen.extend(b.events);
        if seen.len() <= 150 {
            for (t, p, next) in &reached.offsets {
                assert_eq!(t, &topic);
                committed_until.insert(*p, *next);
            }
            first.commit(b.checkpoint).await.expect("commit");
        }
    }
    assert_eq!(seen.len(), messages.len(), "no message read twice");
    first.close().await.expect("close");

    // What each event carries.
    let by_n: BTreeMap<String, &Event> = seen
        .iter()
        .filter(|e| e.value.is_some())
        .map(|e| {
            let n = e.headers.iter().find(|h| h.key == "n").unwrap();
            (String::from_utf8(n.value.to_vec()).unwrap(), e)
        })
        .collect();
    assert_eq!(by_n.len(), 300);
    let e7 = by_n["7"];
    assert_eq!(e7.key.as_deref(), Some(&b"user-7"[..]));
    assert_eq!(e7.value.as_deref(), Some(&b"{\"n\":7}"[..]));
    assert_eq!(e7.op, Op::Insert);
    assert_eq!(e7.headers[1].key, "trace");
    assert_eq!(e7.headers[1].value.as_ref(), &[0xff, 0x00]);
    assert!(e7.timestamp_ms > 1_600_000_000_000, "{}", e7.timestamp_ms);
    assert!(e7.origin.starts_with(&format!("{topic}/")), "{}", e7.origin);
    let tombstones: Vec<&Event> = seen.iter().filter(|e| e.value.is_none()).collect();
    assert_eq!(tombstones.len(), 1);
    assert_eq!(tombstones[0].op, Op::Delete);
    assert_eq!(tombstones[0].key.as_deref(), Some(&b"user-3"[..]));

    // Order per partition is the broker's.
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for e in &seen {
        let (p, o) = position(e);
        if let Some(prev) = last.insert(p, o) {
            assert_eq!(o, prev + 1, "partition {p} out of order");
        }
    }

    // The group's committed offsets are exactly what was committed.
    assert_eq!(committed(&brokers, &group, &topic, 3), committed_until);

    // Second member of the same group resumes there: it reads exactly the
    // messages at or after the committed offsets.
    let expected: BTreeSet<(i32, i64)> = seen
        .iter()
        .map(position)
        .filter(|(p, o)| *o >= committed_until.get(p).copied().unwrap_or(0))
        .collect();
    assert!(!expected.is_empty() && expected.len() < seen.len());
    let second = KafkaSource::connect(&real_config(&topic, &group), &ctx("p"))
        .await
        .expect("connect");
    let mut resumed: Vec<(i32, i64)> = Vec::new();
    while resumed.len() < expected.len() {
        let b = batch(&second).await;
        resumed.extend(b.events.iter().map(position));
        second.commit(b.checkpoint).await.expect("commit");
    }
    // One more poll: nothing beyond.
    assert!(batch(&second).await.events.is_empty());
    second.close().await.expect("close");
    assert_eq!(resumed.iter().copied().collect::<BTreeSet<_>>(), expected);
    assert_eq!(resumed.len(), expected.len(), "nothing read twice");

    // After the second member committed everything and closed, the group
    // sits at the end of every partition.
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    for (p, o) in seen.iter().map(position) {
        let end = ends.entry(p).or_default();
        *end = (*end).max(o + 1);
    }
    assert_eq!(committed(&brokers, &group, &topic, 3), ends);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sources_in_one_group_split_the_partitions() {
    let brokers = brokers();
    let topic = unique("src-split");
    let group = unique("g-split");
    create_topic(&brokers, &topic, 3).await;

    let a = KafkaSource::connect(&real_config(&topic, &group), &ctx("p"))
        .await
        .expect("connect a");
    let b = KafkaSource::connect(&real_config(&topic, &group), &ctx("p"))
        .await
        .expect("connect b");

    // Poll both until the group settled: disjoint, both non-empty, all 3.
    let mut settled = false;
    for _ in 0..120 {
        let (ba, bb) = tokio::join!(batch(&a), batch(&b));
        assert!(ba.events.is_empty() && bb.events.is_empty());
        let (pa, pb) = (a.assignment(), b.assignment());
        let all: BTreeSet<_> = pa.iter().chain(pb.iter()).cloned().collect();
        if !pa.is_empty() && !pb.is_empty() && all.len() == 3 && pa.len() + pb.len() == 3 {
            settled = true;
            break;
        }
    }
    assert!(
        settled,
        "the group never split: a={:?} b={:?}",
        a.assignment(),
        b.assignment()
    );
    let (pa, pb) = (a.assignment(), b.assignment());

    let values: Vec<String> = (0..600).map(|i| format!("{{\"n\":{i}}}")).collect();
    kafka::produce_values(&brokers, &topic, 3, &values).await;

    let mut got_a: Vec<Event> = Vec::new();
    let mut got_b: Vec<Event> = Vec::new();
    while got_a.len() + got_b.len() < 600 {
        let (ba, bb) = tokio::join!(batch(&a), batch(&b));
        got_a.extend(ba.events);
        got_b.extend(bb.events);
        a.commit(ba.checkpoint).await.expect("commit a");
        b.commit(bb.checkpoint).await.expect("commit b");
    }
    let (ca, cb) = tokio::join!(a.close(), b.close());
    ca.expect("close a");
    cb.expect("close b");

    let parts_a: BTreeSet<i32> = got_a.iter().map(|e| position(e).0).collect();
    let parts_b: BTreeSet<i32> = got_b.iter().map(|e| position(e).0).collect();
    assert_eq!(parts_a, pa.iter().map(|(_, p)| *p).collect());
    assert_eq!(parts_b, pb.iter().map(|(_, p)| *p).collect());
    let all: BTreeSet<String> = got_a
        .iter()
        .chain(got_b.iter())
        .map(|e| String::from_utf8(e.value.as_ref().unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(all.len(), 600);
    assert_eq!(got_a.len() + got_b.len(), 600, "nothing delivered twice");
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    for (p, o) in got_a.iter().chain(got_b.iter()).map(position) {
        let end = ends.entry(p).or_default();
        *end = (*end).max(o + 1);
    }
    assert_eq!(committed(&brokers, &group, &topic, 3), ends);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regex_subscription_and_latest_start() {
    let brokers = brokers();
    let prefix = unique("rx");
    let group = unique("g-rx");
    let (t1, t2) = (format!("{prefix}-one"), format!("{prefix}-two"));
    create_topic(&brokers, &t1, 1).await;
    create_topic(&brokers, &t2, 1).await;
    // Produced before the group exists: `latest` skips these.
    kafka::produce_values(&brokers, &t1, 1, &["{\"old\":1}".into()]).await;

    let config = source_config(&format!(
        "brokers = \"{brokers}\"\ntopics = [\"^{prefix}-.*\"]\ngroup_id = \"{group}\"\nstart = \"latest\"\noptions = {}",
        kafka::group_options_toml()
    ));
    let source = KafkaSource::connect(&config, &ctx("p"))
        .await
        .expect("connect");
    for _ in 0..120 {
        batch(&source).await;
        if source.assignment().len() == 2 {
            break;
        }
    }
    assert_eq!(source.assignment().len(), 2, "regex matched both topics");
    kafka::produce_values(&brokers, &t1, 1, &["{\"new\":1}".into()]).await;
    kafka::produce_values(&brokers, &t2, 1, &["{\"new\":2}".into()]).await;
    let mut values = BTreeSet::new();
    for _ in 0..60 {
        for e in batch(&source).await.events {
            values.insert(String::from_utf8(e.value.unwrap().to_vec()).unwrap());
        }
        if values.len() >= 2 {
            break;
        }
    }
    source.close().await.expect("close");
    assert_eq!(
        values,
        BTreeSet::from(["{\"new\":1}".to_string(), "{\"new\":2}".to_string()])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_cluster_is_seeded_and_stops_at_end() {
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = (0..250)
        .map(|i| format!("{{\"user_id\":\"u{}\",\"n\":{i}}}", i % 7))
        .collect();
    std::fs::write(dir.path().join("seed.jsonl"), lines.join("\n") + "\n").unwrap();
    let config = source_config(
        "topics = [\"demo-embedded\"]\nstop_at_end = true\n\
         embedded = { partitions = 3, seed_file = \"seed.jsonl\", key_field = \"user_id\" }\n\
         options = { \"session.timeout.ms\" = 6000, \"heartbeat.interval.ms\" = 1000 }",
    );
    let context = SourceContext {
        name: "demo".into(),
        pipeline: "quickstart".into(),
        config_dir: dir.path().to_path_buf(),
    };
    let source = KafkaSource::connect(&config, &context)
        .await
        .expect("connect");
    assert_eq!(source.group_id(), "weir-quickstart");
    let mut events = Vec::new();
    let mut exhausted = false;
    for _ in 0..200 {
        let b = batch(&source).await;
        events.extend(b.events);
        source.commit(b.checkpoint).await.expect("commit");
        if b.exhausted {
            exhausted = true;
            break;
        }
    }
    source.close().await.expect("close");
    assert!(exhausted, "stop_at_end never reported the end");
    let mut values: Vec<String> = events
        .iter()
        .map(|e| String::from_utf8(e.value.as_ref().unwrap().to_vec()).unwrap())
        .collect();
    values.sort_by_key(|v| serde_json::from_str::<serde_json::Value>(v).unwrap()["n"].as_i64());
    assert_eq!(values, lines);
    // Keyed by user_id: one user's events share a partition.
    let mut partition_of: BTreeMap<Vec<u8>, i32> = BTreeMap::new();
    for e in &events {
        let p = position(e).0;
        let key = e.key.as_ref().unwrap().to_vec();
        assert_eq!(*partition_of.entry(key).or_insert(p), p);
    }
    assert!(partition_of.values().collect::<BTreeSet<_>>().len() > 1);
}

#[tokio::test]
async fn config_mistakes_are_reported_with_the_source_name() {
    let err = KafkaSource::connect(&source_config("topics = [\"t\"]"), &ctx("p"))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "`brokers` is required (or `embedded`)");
    let err = KafkaSource::connect(
        &source_config(
            "brokers = \"127.0.0.1:1\"\ntopics = [\"t\"]\noptions = { \"enable.auto.commit\" = true }",
        ),
        &ctx("p"),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("option `enable.auto.commit` is managed by weir"),
        "{err}"
    );
    let err = toml::from_str::<KafkaSourceConfig>(
        "brokers = \"x\"\ntopics = [\"t\"]\nstart = \"middle\"",
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("unknown variant `middle`"),
        "{err}"
    );
}
