//! Benchmark: a Kafka pipeline end to end against the raw consume rate of
//! the same broker, measured in the same run.
//!
//! `cargo bench -p weir-tests --bench kafka_pipeline` (the broker must run:
//! `scripts/services start kafka`; `WEIR_TEST_KAFKA` overrides the address)
//!
//! 1. Produce `WEIR_BENCH_EVENTS` (default 1,000,000) JSON events of ~300
//!    bytes, keyed by user (500 keys), to a fresh 4-partition topic.
//! 2. Raw: a plain librdkafka consumer (group member, same session
//!    settings) that polls every message and does nothing with it.
//! 3. Native: the same work as Weir's pipeline written plainly in Rust
//!    (`native_consume`): one `serde_json` parse per event, drop the views,
//!    redact the email, add the field, serialize, write a line to
//!    /dev/null, commit every 1000 events; on one thread, then on two
//!    threads (two consumers of one group, the partitions split between
//!    them).
//! 4. Weir: the release `weir run` binary with the Kafka source (same group
//!    settings, `stop_at_end`), the filter plugin (drops the views, a
//!    quarter) and the transform plugin (masks the email, adds a field), into
//!    a file sink at /dev/null; once per `workers`/`ordering` setting of
//!    `WEIR_BENCH_WEIR` (default `1/partition,2/partition,1/key,2/key`;
//!    `default` runs the pipeline without either key).
//!
//! Every rate counts from the group assignment to the last event (the join
//! itself takes seconds on any broker and is not throughput): the raw and
//! native consumers from their first message to the last, Weir from its
//! "partitions assigned" log line to its "pipeline stopped" line (which
//! includes the last commit). For the breakdown, Weir's Kafka source alone
//! (in process, `next_batch` of 1000, no plugins, no sink) is measured too.
//! `WEIR_BENCH_ROUNDS` (default 2) alternates all of them; every run is
//! printed and the best of each is compared.
//!
//! Each round also runs Weir with tracing on (`sampling_ratio = 1.0`, every
//! batch traced) against an OTLP/HTTP receiver in this process that accepts
//! and discards the spans, and prints the traced rate over the untraced one.

use weir_tests::kafka;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use std::io::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use weir::source::kafka::{KafkaSource, KafkaSourceConfig};
use weir::source::{Source, SourceContext};
use weir_tests::plugins;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// Event `i`: ~300 bytes of JSON.
fn event(i: usize) -> String {
    let types = ["view", "click", "purchase", "signup"];
    serde_json::json!({
        "id": i,
        "event_type": types[i % 4],
        "user_id": format!("user-{:04}", i % 500),
        "email": format!("someone{i}@example.com"),
        "amount": (i % 1000) as f64 / 10.0,
        "page": "/product/42",
        "session_id": format!("s-{:012x}", i * 7919),
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/132.0",
        "referrer": format!("https://search.example.com/results?q=product+{}&page=2", i % 97),
    })
    .to_string()
}

/// A plain consumer reading `n` messages; events/s from its first message.
fn raw_consume(brokers: &str, topic: &str, n: usize) -> f64 {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", kafka::unique("bench-raw"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    for (k, v) in kafka::GROUP_OPTIONS {
        config.set(*k, *v);
    }
    let consumer: BaseConsumer = config.create().expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut count = 0usize;
    let mut bytes = 0usize;
    let mut start = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    while count < n {
        assert!(Instant::now() < deadline, "raw consumer stalled at {count}");
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                start.get_or_insert_with(Instant::now);
                count += 1;
                bytes += m.payload().map_or(0, <[u8]>::len);
            }
            Some(Err(e)) => panic!("raw consumer: {e}"),
            None => {}
        }
    }
    let elapsed = start.map(|s| s.elapsed()).unwrap_or_default();
    std::hint::black_box(bytes);
    // The group membership is left to expire: dropping a consumer with
    // prefetched messages can block in librdkafka's destroy.
    std::mem::forget(consumer);
    n as f64 / elapsed.as_secs_f64()
}

/// Partitions of the bench topic (even, so two consumers split it evenly).
const PARTITIONS: i32 = 4;

/// The pipeline's work done natively on one event: `None` drops it (a
/// view), otherwise the serialized output line is appended to `line`.
fn native_work(value: &[u8], line: &mut Vec<u8>) -> Option<()> {
    let mut v: serde_json::Value = serde_json::from_slice(value).ok()?;
    let obj = v.as_object_mut()?;
    if obj.get("event_type").and_then(serde_json::Value::as_str) == Some("view") {
        return None;
    }
    if let Some(email) = obj.get_mut("email") {
        *email = serde_json::Value::String("[redacted]".to_owned());
    }
    obj.insert(
        "pipeline".to_owned(),
        serde_json::Value::String("bench".to_owned()),
    );
    serde_json::to_writer(&mut *line, &v).ok()?;
    line.push(b'\n');
    Some(())
}

/// A plain Rust consumer doing the pipeline's work (see [`native_work`]),
/// on `threads` threads: each thread is one consumer of the same group,
/// assigned its share of the partitions, committing (async) every 1000
/// events it processed. Events/s from the first message of any thread to
/// the moment all `n` were processed.
fn native_consume(brokers: &str, topic: &str, n: usize, threads: usize) -> f64 {
    let group = kafka::unique("bench-native");
    let done = AtomicUsize::new(0);
    let start: Mutex<Option<Instant>> = Mutex::new(None);
    let written = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for t in 0..threads {
            let (group, done, start, written) = (&group, &done, &start, &written);
            scope.spawn(move || {
                let mut config = ClientConfig::new();
                config
                    .set("bootstrap.servers", brokers)
                    .set("group.id", group)
                    .set("enable.auto.commit", "false")
                    .set("auto.offset.reset", "earliest");
                for (k, v) in kafka::GROUP_OPTIONS {
                    config.set(*k, *v);
                }
                let consumer: BaseConsumer = config.create().expect("consumer");
                // The split is fixed (partition p to thread p % threads)
                // so no rebalance lands inside the timed part.
                let mut tpl = TopicPartitionList::new();
                for p in (0..PARTITIONS).filter(|p| *p as usize % threads == t) {
                    tpl.add_partition_offset(topic, p, Offset::Beginning)
                        .expect("partition");
                }
                consumer.assign(&tpl).expect("assign");
                let mut out = std::io::BufWriter::new(
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open("/dev/null")
                        .expect("/dev/null"),
                );
                let mut line = Vec::with_capacity(512);
                let mut since_commit = 0;
                let deadline = Instant::now() + Duration::from_secs(600);
                while done.load(Ordering::Relaxed) < n {
                    assert!(Instant::now() < deadline, "native consumer stalled");
                    match consumer.poll(Duration::from_millis(100)) {
                        Some(Ok(m)) => {
                            if since_commit == 0 {
                                start.lock().unwrap().get_or_insert_with(Instant::now);
                            }
                            line.clear();
                            if native_work(m.payload().unwrap_or_default(), &mut line).is_some() {
                                out.write_all(&line).expect("write");
                                written.fetch_add(1, Ordering::Relaxed);
                            }
                            since_commit += 1;
                            if since_commit % 1000 == 0 {
                                consumer
                                    .commit_consumer_state(CommitMode::Async)
                                    .expect("commit");
                            }
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(Err(e)) => panic!("native consumer: {e}"),
                        None => {}
                    }
                }
                out.flush().expect("flush");
                // As for the raw consumer: leave the group to expire.
                std::mem::forget(consumer);
            });
        }
    });
    let kept = written.load(Ordering::Relaxed);
    assert!(kept > 0 && kept < n, "native: {kept} of {n} events kept");
    let elapsed = start
        .lock()
        .unwrap()
        .map(|s| s.elapsed())
        .unwrap_or_default();
    n as f64 / elapsed.as_secs_f64()
}

/// Weir's Kafka source alone, in process: `next_batch` of 1000 until `n`
/// events; events/s from the first non-empty batch.
async fn source_only(brokers: &str, topic: &str, n: usize) -> f64 {
    let config: KafkaSourceConfig = toml::from_str(&format!(
        "brokers = \"{brokers}\"\ntopics = [\"{topic}\"]\ngroup_id = \"{}\"\noptions = {}",
        kafka::unique("bench-source"),
        kafka::group_options_toml()
    ))
    .expect("source config");
    let ctx = SourceContext {
        name: "bench".into(),
        pipeline: "bench".into(),
        config_dir: PathBuf::from("."),
    };
    let source = KafkaSource::connect(&config, &ctx).await.expect("source");
    let mut count = 0;
    let mut start = None;
    while count < n {
        let batch = source
            .next_batch(1000, Duration::from_millis(100))
            .await
            .expect("next_batch");
        if !batch.events.is_empty() {
            start.get_or_insert_with(Instant::now);
        }
        count += batch.events.len();
        std::hint::black_box(&batch.events);
    }
    let elapsed = start.map(|s| s.elapsed()).unwrap_or_default();
    n as f64 / elapsed.as_secs_f64()
}

/// Seconds since midnight of an RFC 3339 UTC timestamp (`...T07:28:52.60Z`).
fn seconds_of_day(ts: &str) -> f64 {
    let time = ts
        .split('T')
        .nth(1)
        .unwrap_or_default()
        .trim_end_matches('Z');
    let mut parts = time.split(':');
    let h: f64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0.0);
    let m: f64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0.0);
    let s: f64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0.0);
    h * 3600.0 + m * 60.0 + s
}

/// An OTLP/HTTP receiver that accepts every export and keeps nothing (an
/// empty body is the protobuf of an empty `ExportTraceServiceResponse`).
async fn discarding_otlp_receiver() -> String {
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(|_: axum::body::Bytes| async { "" }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// A `workers`/`ordering` setting of the pipeline; `None` leaves both
/// keys out (the pipeline's defaults).
#[derive(Debug, Clone, Copy)]
struct Parallel {
    workers: usize,
    ordering: &'static str,
}

impl Parallel {
    fn label(setting: Option<Parallel>) -> String {
        setting.map_or("defaults".to_owned(), |p| {
            format!("workers={} ordering={}", p.workers, p.ordering)
        })
    }
}

/// The settings of `WEIR_BENCH_WEIR`: `W/ORDERING` items, or `default`.
fn parallel_settings() -> Vec<Option<Parallel>> {
    std::env::var("WEIR_BENCH_WEIR")
        .unwrap_or_else(|_| "1/partition,2/partition,1/key,2/key".to_owned())
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            if item == "default" {
                return None;
            }
            let (w, o) = item
                .split_once('/')
                .unwrap_or_else(|| panic!("WEIR_BENCH_WEIR: `{item}` is not WORKERS/ORDERING"));
            let ordering = match o {
                "partition" => "partition",
                "key" => "key",
                _ => panic!("WEIR_BENCH_WEIR: unknown ordering `{o}`"),
            };
            Some(Parallel {
                workers: w.parse().expect("WEIR_BENCH_WEIR: workers is a number"),
                ordering,
            })
        })
        .collect()
}

/// One `weir run` over the topic; events/s from assignment to stop.
/// `otlp`: trace every batch to this endpoint.
#[allow(clippy::too_many_arguments)]
fn weir_run(
    bin: &Path,
    dir: &Path,
    brokers: &str,
    topic: &str,
    n: usize,
    round: usize,
    otlp: Option<&str>,
    parallel: Option<Parallel>,
) -> f64 {
    let tracing = otlp.map_or(String::new(), |url| {
        format!("[host.tracing]\notlp_endpoint = \"{url}\"\nsampling_ratio = 1.0\n")
    });
    let parallel_keys = parallel.map_or(String::new(), |p| {
        format!("workers = {}\nordering = \"{}\"\n", p.workers, p.ordering)
    });
    let config = format!(
        r#"{tracing}
[host.admin]
enabled = false

[sources.events]
type = "kafka"
brokers = "{brokers}"
topics = ["{topic}"]
group_id = "{group}"
stop_at_end = true
options = {options}

[plugins.drop_views]
path = "{filter}"
config = {{ field = "event_type", equals = "view" }}

[plugins.mask]
path = "{transform}"
config = {{ "mask.email" = "redact", "add.pipeline" = "bench" }}

[sinks.null]
type = "file"
path = "/dev/null"

[pipelines.bench]
source = "events"
plugins = ["drop_views", "mask"]
default_route = "null"
batch = {{ max_events = 1000, max_wait_ms = 100 }}
{parallel_keys}"#,
        group = kafka::unique("bench-weir"),
        options = kafka::group_options_toml(),
        filter = plugins::FILTER,
        transform = plugins::TRANSFORM,
    );
    let path = dir.join(format!(
        "bench-{round}-{}-{}.toml",
        otlp.is_some(),
        Parallel::label(parallel).replace([' ', '='], "-")
    ));
    std::fs::write(&path, config).expect("config");
    let out = Command::new(bin)
        .args([
            "run",
            path.to_str().unwrap(),
            "--log-format",
            "json",
            "--progress",
            "0",
        ])
        .env("WEIR_CACHE_DIR", dir.join("cache"))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .expect("weir run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "weir run failed:\n{stderr}");
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "pipeline summary" && l["events_in"] == n),
        "weir did not read all {n} events:\n{stderr}"
    );
    let time_of = |needle: &str| -> f64 {
        lines
            .iter()
            .find(|l| l["message"].as_str().is_some_and(|m| m.contains(needle)))
            .and_then(|l| l["timestamp"].as_str().map(seconds_of_day))
            .unwrap_or_else(|| panic!("no `{needle}` log line:\n{stderr}"))
    };
    let elapsed = time_of("pipeline stopped") - time_of("partitions assigned");
    n as f64 / elapsed
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = env_usize("WEIR_BENCH_EVENTS", 1_000_000);
    let rounds = env_usize("WEIR_BENCH_ROUNDS", 2);
    let settings = parallel_settings();
    let brokers = kafka::brokers();
    let bin = weir_tests::build_weir(true);
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = kafka::unique("bench-in");
    kafka::create_topic(&brokers, &topic, PARTITIONS).await;
    let messages: Vec<kafka::Msg> = (0..n)
        .map(|i| kafka::Msg {
            key: Some(format!("user-{:04}", i % 500).into_bytes()),
            value: Some(event(i).into_bytes()),
            ..kafka::Msg::default()
        })
        .collect();
    let avg = messages
        .iter()
        .map(|m| m.value.as_ref().map_or(0, Vec::len))
        .sum::<usize>()
        / n.max(1);
    let t = Instant::now();
    kafka::produce(&brokers, &topic, &messages).await;
    drop(messages);
    println!(
        "kafka_pipeline: {n} events of ~{avg} bytes (500 keys, {PARTITIONS} partitions) produced in {:.1}s",
        t.elapsed().as_secs_f64()
    );

    let otlp = discarding_otlp_receiver().await;
    let mut best = std::collections::BTreeMap::<String, f64>::new();
    let mut record = |name: String, rate: f64| {
        println!("  {name:<44} {rate:>10.0} events/s");
        let entry = best.entry(name).or_insert(0.0);
        *entry = entry.max(rate);
    };
    for round in 0..rounds {
        println!("round {round}:");
        let raw = tokio::task::spawn_blocking({
            let (b, t) = (brokers.clone(), topic.clone());
            move || raw_consume(&b, &t, n)
        })
        .await
        .expect("raw");
        record("raw consumer".into(), raw);
        for threads in [1, 2] {
            let native = tokio::task::spawn_blocking({
                let (b, t) = (brokers.clone(), topic.clone());
                move || native_consume(&b, &t, n, threads)
            })
            .await
            .expect("native");
            record(format!("native, {threads} thread(s)"), native);
        }
        let source = source_only(&brokers, &topic, n).await;
        record("weir source alone".into(), source);
        for &setting in &settings {
            let weir = tokio::task::block_in_place(|| {
                weir_run(&bin, dir.path(), &brokers, &topic, n, round, None, setting)
            });
            record(format!("weir {}", Parallel::label(setting)), weir);
        }
        let traced = tokio::task::block_in_place(|| {
            weir_run(
                &bin,
                dir.path(),
                &brokers,
                &topic,
                n,
                round,
                Some(&otlp),
                settings.first().copied().flatten(),
            )
        });
        record(
            format!(
                "weir traced (ratio 1.0), {}",
                Parallel::label(settings.first().copied().flatten())
            ),
            traced,
        );
    }
    println!("kafka_pipeline: best of {rounds} rounds");
    let of = |name: &str| best.get(name).copied().unwrap_or(f64::NAN);
    for (name, rate) in &best {
        println!(
            "  {name:<44} {rate:>10.0} events/s  {:>5.2}x native 1 thread  {:>5.2}x native 2 threads",
            rate / of("native, 1 thread(s)"),
            rate / of("native, 2 thread(s)")
        );
    }
}
