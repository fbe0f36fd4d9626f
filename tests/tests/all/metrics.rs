//! What an operator sees in `/metrics` and `/health/ready` of a real
//! `weir run` (the binary, against the real Kafka-compatible broker,
//! `scripts/services start kafka`): every series present at zero from
//! start-up, `# HELP` on every metric, two pipelines on one source kept
//! apart by their `pipeline` label, the latency and write-size histograms
//! after events flowed, the stall detector (a Redis server this test starts
//! on its own port and pauses with `CLIENT PAUSE`), and that every metric
//! the Grafana dashboard and the Prometheus alert rules use exists, and a
//! Kafka partition stuck on bytes librdkafka cannot read (an uncompressed
//! garbage batch, produced with `weir_tests::kafka_wire`).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use weir_tests::kafka::{
    Msg, brokers, committed, create_topic, group_options_toml, produce, produce_values, unique,
};
use weir_tests::kafka_wire::{Codec, garbage_batch, produce_raw_batch};
use weir_tests::plugins;
use weir_tests::private_server::PrivateServer;
use weir_tests::prometheus::{self, Exposition};
use weir_tests::reload::http;
use weir_tests::weir_run::WeirRun;

/// How long a condition may take before the test gives up (generous: the
/// machine is shared; nothing here measures time).
const PATIENCE: Duration = Duration::from_secs(90);

/// A `weir run` process with its admin address.
struct Weir {
    run: WeirRun,
    admin: SocketAddr,
}

impl Weir {
    /// Write `config` into `dir`, start `weir run` on it and wait for its
    /// admin API.
    async fn start(dir: &Path, config: &str) -> Weir {
        let mut run = WeirRun::start_in(dir, config);
        let admin = run.admin_addr(PATIENCE);
        Weir { run, admin }
    }

    fn log_text(&self) -> String {
        self.run.log_text()
    }

    async fn metrics(&self) -> Exposition {
        let answer = http(self.admin, "GET", "/metrics", &[], "").await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        prometheus::parse(&answer.body)
    }

    async fn ready(&self) -> (u16, serde_json::Value) {
        let answer = http(self.admin, "GET", "/health/ready", &[], "").await;
        (answer.status, answer.json())
    }

    /// Scrape until `done` holds, or fail with the last exposition.
    async fn wait_metrics(&self, what: &str, done: impl Fn(&Exposition) -> bool) -> Exposition {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let m = self.metrics().await;
            if done(&m) {
                return m;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: not after {PATIENCE:?}; last samples: {:#?}\nlog:\n{}",
                m.samples,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The value of the first matching sample, or -1 when there is none (for polling).
fn get(m: &Exposition, name: &str, labels: &[(&str, &str)]) -> f64 {
    m.find(name, labels).first().map_or(-1.0, |s| s.value)
}

/// `[host]` with the admin API on a free port.
fn host(stall_after_ms: u64) -> String {
    format!(
        "[host]\nstall_after_ms = {stall_after_ms}\n\n[host.admin]\nlisten = \"127.0.0.1:0\"\n\n"
    )
}

fn kafka_source(name: &str, topic: &str) -> String {
    format!(
        "[sources.{name}]\ntype = \"kafka\"\nbrokers = \"{}\"\ntopics = [\"{topic}\"]\nstart = \"earliest\"\noptions = {}\n\n",
        brokers(),
        group_options_toml()
    )
}

fn stamp_plugin() -> String {
    format!("[plugins.stamp]\npath = \"{}\"\n\n", plugins::STAMP_A)
}

fn file_sink(name: &str, dir: &Path) -> String {
    format!(
        "[sinks.{name}]\ntype = \"file\"\npath = \"{}\"\nfsync = false\n\n",
        dir.join(format!("{name}.jsonl")).display()
    )
}

/// One pipeline through `stamp` into `out`, dead letters into `dlq`.
async fn single_pipeline(dir: &Path, pipeline: &str) -> String {
    let topic = unique("metrics-start");
    create_topic(&brokers(), &topic, 1).await;
    format!(
        "{}{}{}{}{}[pipelines.{pipeline}]\nsource = \"in\"\nplugins = [\"stamp\"]\ndefault_route = \"out\"\ndead_letter = \"dlq\"\n",
        host(300_000),
        kafka_source("in", &topic),
        stamp_plugin(),
        file_sink("out", dir),
        file_sink("dlq", dir),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_series_exists_at_zero_from_start_up_and_every_metric_has_help() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = single_pipeline(dir.path(), "orders").await;
    let weir = Weir::start(dir.path(), &config).await;
    let p = ("pipeline", "orders");
    let m = weir
        .wait_metrics("the pipeline running", |m| {
            get(m, "weir_pipeline_state", &[p, ("state", "running")]) == 1.0
        })
        .await;

    // Before any event: every pipeline, plugin and sink series, at zero.
    for (name, labels) in [
        ("weir_pipeline_events_in_total", vec![p]),
        ("weir_pipeline_events_dropped_total", vec![p]),
        ("weir_pipeline_in_flight_events", vec![p]),
        ("weir_pipeline_commits_total", vec![p, ("result", "ok")]),
        ("weir_pipeline_commits_total", vec![p, ("result", "failed")]),
        ("weir_pipeline_batch_events_count", vec![p]),
        ("weir_pipeline_end_to_end_latency_seconds_count", vec![p]),
        ("weir_pipeline_processing_latency_seconds_count", vec![p]),
        ("weir_sink_outputs_total", vec![p, ("sink", "out")]),
        ("weir_sink_retries_total", vec![p, ("sink", "out")]),
        ("weir_sink_rejected_total", vec![p, ("sink", "out")]),
        (
            "weir_sink_write_duration_seconds_count",
            vec![p, ("sink", "dlq")],
        ),
        ("weir_sink_write_outputs_count", vec![p, ("sink", "out")]),
        ("weir_sink_write_bytes_count", vec![p, ("sink", "out")]),
        ("weir_plugin_events_in_total", vec![p, ("plugin", "stamp")]),
        ("weir_plugin_outputs_total", vec![p, ("plugin", "stamp")]),
        (
            "weir_plugin_events_dropped_total",
            vec![p, ("plugin", "stamp")],
        ),
        (
            "weir_plugin_events_failed_total",
            vec![p, ("plugin", "stamp")],
        ),
        (
            "weir_plugin_call_duration_seconds_count",
            vec![p, ("plugin", "stamp")],
        ),
        (
            "weir_plugin_cpu_seconds_count",
            vec![p, ("plugin", "stamp")],
        ),
        (
            "weir_plugin_reloads_total",
            vec![("plugin", "stamp"), ("result", "failed")],
        ),
        (
            "weir_plugin_reloads_total",
            vec![("plugin", "stamp"), ("result", "succeeded")],
        ),
        ("weir_pipeline_state", vec![p, ("state", "stalled")]),
        ("weir_pipeline_state", vec![p, ("state", "failed")]),
    ] {
        assert_eq!(m.value(name, &labels), 0.0, "{name}{labels:?}");
    }
    for reason in ["plugin_failed", "unreadable", "unroutable", "sink_rejected"] {
        assert_eq!(
            m.value("weir_pipeline_dead_letters_total", &[p, ("reason", reason)]),
            0.0,
            "dead letters {reason}"
        );
    }
    let build = m.find("weir_build_info", &[]);
    assert_eq!(build.len(), 1, "{build:?}");
    assert_eq!(build[0].value, 1.0);
    assert!(build[0].labels.contains_key("version"), "{build:?}");
    for process in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        assert!(
            !m.find(process, &[]).is_empty(),
            "{process} missing from /metrics"
        );
    }
    assert!(
        m.value("process_open_fds", &[]) > 0.0,
        "a running weir has open files"
    );

    // The whole exposition: every family has a TYPE and a non-empty HELP.
    let families = m.families();
    assert!(families.len() > 20, "{families:?}");
    for family in &families {
        assert!(m.types.contains_key(family), "{family} has no # TYPE");
        assert!(
            m.help.get(family).is_some_and(|h| !h.trim().is_empty()),
            "{family} has no # HELP"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pipelines_on_one_source_keep_their_series_apart_and_fill_the_histograms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = unique("metrics-two");
    let brokers = brokers();
    create_topic(&brokers, &topic, 2).await;
    let config = format!(
        "{}{}{}{}\
         [pipelines.left]\nsource = \"in\"\nplugins = [\"stamp\"]\ndefault_route = \"out\"\n\n\
         [pipelines.right]\nsource = \"in\"\nplugins = [\"stamp\"]\ndefault_route = \"out\"\n",
        host(300_000),
        kafka_source("in", &topic),
        stamp_plugin(),
        file_sink("out", dir.path()),
    );
    let weir = Weir::start(dir.path(), &config).await;
    const SENT: usize = 40;
    let values: Vec<String> = (0..SENT).map(|i| format!("{{\"id\":{i}}}")).collect();
    produce_values(&brokers, &topic, 2, &values).await;

    let sent = SENT as f64;
    let out = |pipeline: &'static str| [("pipeline", pipeline), ("sink", "out")];
    let m = weir
        .wait_metrics("both pipelines' outputs and lag", |m| {
            get(m, "weir_sink_outputs_total", &out("left")) == sent
                && get(m, "weir_sink_outputs_total", &out("right")) == sent
                && ["left", "right"].iter().all(|p| {
                    m.find("weir_source_kafka_lag_messages", &[("pipeline", p)])
                        .len()
                        == 2
                })
        })
        .await;

    for pipeline in ["left", "right"] {
        let p = ("pipeline", pipeline);
        assert_eq!(m.value("weir_pipeline_events_in_total", &[p]), sent);
        // One observation per event, from its Kafka timestamp.
        assert_eq!(
            m.value("weir_pipeline_end_to_end_latency_seconds_count", &[p]),
            sent
        );
        let end_to_end_sum = m.value("weir_pipeline_end_to_end_latency_seconds_sum", &[p]);
        assert!(end_to_end_sum > 0.0, "{pipeline}: {end_to_end_sum}");
        let batches = m.value("weir_pipeline_processing_latency_seconds_count", &[p]);
        assert!(batches >= 1.0, "{pipeline}: {batches} batches");
        assert_eq!(
            m.value("weir_pipeline_commits_total", &[p, ("result", "ok")])
                + m.value("weir_pipeline_commits_total", &[p, ("result", "failed")]),
            batches,
            "{pipeline}: one commit per batch"
        );
        // Sink writes: the sizes add up to what was sent.
        assert_eq!(m.value("weir_sink_write_outputs_sum", &out(pipeline)), sent);
        let bytes = m.value("weir_sink_write_bytes_sum", &out(pipeline));
        let values_bytes: usize = values.iter().map(String::len).sum();
        assert!(
            bytes >= values_bytes as f64,
            "{pipeline}: {bytes} bytes written for {values_bytes} bytes of values"
        );
        let writes = m.value("weir_sink_write_duration_seconds_count", &out(pipeline));
        assert_eq!(
            m.value("weir_sink_write_outputs_count", &out(pipeline)),
            writes
        );
        // One CPU-time observation per plugin call.
        let stamp = [p, ("plugin", "stamp")];
        let calls = m.value("weir_plugin_call_duration_seconds_count", &stamp);
        assert!(calls >= 1.0);
        assert_eq!(m.value("weir_plugin_cpu_seconds_count", &stamp), calls);
        assert_eq!(m.value("weir_plugin_events_in_total", &stamp), sent);
        // Each pipeline's consumer has its own lag series, per partition.
        for partition in ["0", "1"] {
            let lag = m.value(
                "weir_source_kafka_lag_messages",
                &[p, ("source", "in"), ("partition", partition)],
            );
            assert!(lag >= 0.0);
            m.value(
                "weir_source_kafka_lag_seconds",
                &[p, ("source", "in"), ("partition", partition)],
            );
        }
    }
}

/// An async connection to the test's own Redis.
async fn connect(redis: &PrivateServer) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    redis::Client::open(redis.redis_url())?
        .get_multiplexed_async_connection()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_sink_stalls_the_pipeline_and_readiness_says_so() {
    let redis = PrivateServer::redis();
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = unique("metrics-stall");
    let brokers = brokers();
    create_topic(&brokers, &topic, 1).await;
    let config = format!(
        "{}{}\
         [sinks.cache]\ntype = \"redis\"\nurl = \"{}\"\n\n\
         [[sinks.cache.commands]]\ncmd = \"SET\"\nkey = \"k:{{value.id}}\"\nvalue = \"{{value}}\"\n\n\
         [pipelines.cached]\nsource = \"in\"\ndefault_route = \"cache\"\n",
        host(1_000),
        kafka_source("in", &topic),
        redis.redis_url(),
    );
    let weir = Weir::start(dir.path(), &config).await;
    let p = ("pipeline", "cached");
    let state = |s: &'static str| [p, ("state", s)];

    // Flowing: written and committed, ready.
    let first: Vec<String> = (0..5).map(|i| format!("{{\"id\":{i}}}")).collect();
    produce_values(&brokers, &topic, 1, &first).await;
    weir.wait_metrics("the first events written", |m| {
        get(m, "weir_sink_outputs_total", &[p, ("sink", "cache")]) == 5.0
    })
    .await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (status, body) = weir.ready().await;
        if status == 200 {
            assert_eq!(body["pipelines"][0]["state"], "running", "{body}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never ready: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Block the sink: every write command waits while the server is paused.
    let mut admin = connect(&redis).await.expect("connect to own redis");
    let paused: String = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg("600000")
        .arg("WRITE")
        .query_async(&mut admin)
        .await
        .expect("CLIENT PAUSE");
    assert_eq!(paused, "OK");
    let more: Vec<String> = (5..10).map(|i| format!("{{\"id\":{i}}}")).collect();
    produce_values(&brokers, &topic, 1, &more).await;

    let deadline = tokio::time::Instant::now() + PATIENCE;
    let stalled = loop {
        let (status, body) = weir.ready().await;
        if status == 503 && body["pipelines"][0]["state"] == "stalled" {
            break body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never reported stalled: {status} {body}\nlog:\n{}",
            weir.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(stalled["ready"], false, "{stalled}");
    let reason = stalled["pipelines"][0]["stalled"]
        .as_str()
        .unwrap_or_else(|| panic!("no stall reason: {stalled}"));
    assert!(
        reason.contains("nothing committed for") && reason.contains("events in flight"),
        "{reason}"
    );
    let m = weir.metrics().await;
    assert_eq!(m.value("weir_pipeline_state", &state("stalled")), 1.0);
    assert_eq!(m.value("weir_pipeline_state", &state("running")), 0.0);
    assert!(m.value("weir_pipeline_in_flight_events", &[p]) >= 1.0);
    assert_eq!(
        m.value("weir_sink_outputs_total", &[p, ("sink", "cache")]),
        5.0,
        "nothing written while paused"
    );

    // Unblock: the writes land, the pipeline commits and is ready again.
    let _: String = redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query_async(&mut admin)
        .await
        .expect("CLIENT UNPAUSE");
    let m = weir
        .wait_metrics("the pipeline running again", |m| {
            get(m, "weir_pipeline_state", &state("running")) == 1.0
                && get(m, "weir_sink_outputs_total", &[p, ("sink", "cache")]) == 10.0
        })
        .await;
    assert_eq!(m.value("weir_pipeline_state", &state("stalled")), 0.0);
    let last: Option<String> = redis::cmd("GET")
        .arg("k:9")
        .query_async(&mut admin)
        .await
        .expect("GET");
    assert_eq!(last.as_deref(), Some("{\"id\":9}"));
    let (status, body) = weir.ready().await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_stuck_on_an_unreadable_uncompressed_batch_is_reported_while_the_others_go_on()
{
    let brokers = brokers();
    let topic = unique("metrics-stuck");
    let group = unique("metrics-stuck-group");
    create_topic(&brokers, &topic, 2).await;
    let on = |partition: i32, id: i64| Msg {
        value: Some(format!(r#"{{"id":{id}}}"#).into_bytes()),
        partition,
        ..Msg::default()
    };
    let leader = brokers.split(',').next().expect("a broker").to_owned();
    // Partition 0: offsets 0..=2 readable, then a batch of three records
    // that claims no compression and holds garbage (librdkafka reads past
    // its end and never reports an error), then readable records again.
    // Partition 1: readable records only.
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
        &garbage_batch(Codec::None, 3, &[0xff; 40]),
    );
    produce(&brokers, &topic, &[on(0, 6), on(0, 7), on(1, 101)]).await;

    let dir = tempfile::tempdir().expect("tempdir");
    // The pipeline's own stall detector is off: only the partition's stop
    // is to be seen.
    let options = group_options_toml().replacen('{', "{ \"statistics.interval.ms\" = 300,", 1);
    let config = format!(
        "{}[sources.in]\ntype = \"kafka\"\nbrokers = \"{brokers}\"\ntopics = [\"{topic}\"]\n\
         group_id = \"{group}\"\nstuck_after_ms = 2000\noptions = {options}\n\n{}\
         [pipelines.stuck]\nsource = \"in\"\ndefault_route = \"out\"\n\
         batch = {{ max_events = 4, max_wait_ms = 100 }}\n",
        host(0),
        file_sink("out", dir.path()),
    );
    let weir = Weir::start(dir.path(), &config).await;
    let p = ("pipeline", "stuck");
    let stuck = |partition: &'static str| [p, ("topic", topic.as_str()), ("partition", partition)];

    let m = weir
        .wait_metrics("partition 0 reported stuck", |m| {
            get(m, "weir_source_kafka_partition_stuck", &stuck("0")) == 1.0
        })
        .await;
    assert_eq!(
        m.value("weir_source_kafka_partition_stuck", &stuck("1")),
        0.0,
        "partition 1 is not stuck"
    );
    let log = weir.log_text();
    assert!(
        log.contains(&format!(
            "partition {topic}/0 is stuck at offset 3: the log goes on to offset "
        )) && log.contains("librdkafka reports no error"),
        "{log}"
    );
    assert_eq!(
        log.matches(&format!("partition {topic}/0 is stuck"))
            .count(),
        1,
        "warned once: {log}"
    );
    assert!(!log.contains("panicked"), "{log}");

    // Readiness names the partition and the offset.
    let (status, body) = weir.ready().await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.to_string()
            .contains(&format!("partition stuck: {topic}/0 at offset 3")),
        "{body}"
    );

    // The other partition goes on: a record produced now lands.
    produce(&brokers, &topic, &[on(1, 102)]).await;
    let out = dir.path().join("out.jsonl");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let ids = loop {
        let mut ids: Vec<i64> = std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let v: serde_json::Value =
                    serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
                v["value"]["id"].as_i64().expect("id")
            })
            .collect();
        ids.sort_unstable();
        if ids.contains(&102) {
            break ids;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "partition 1 stopped too: {ids:?}\n{}",
            weir.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        ids,
        [0, 1, 2, 100, 101, 102],
        "nothing past the batch is taken"
    );

    // The committed offset of the stuck partition stays at the batch:
    // nothing past it is lost.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let offsets = committed(&brokers, &group, &topic, 2);
        if offsets.get(&1).copied() == Some(3) {
            assert_eq!(offsets.get(&0).copied(), Some(3), "{offsets:?}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "partition 1 never committed to 3: {offsets:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every metric name (`weir_*`, `process_*`) in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for prefix in ["weir_", "process_"] {
        let mut rest = text;
        while let Some(at) = rest.find(prefix) {
            let before = rest[..at].chars().next_back();
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + name.len().max(1)..];
            // Part of a longer word (`my_weir_x`) is not a metric name.
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            names.insert(name);
        }
    }
    names
}

/// Every string in a JSON document.
fn json_strings(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|v| json_strings(v, out)),
        serde_json::Value::Object(o) => o.values().for_each(|v| json_strings(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_of_the_dashboard_and_the_alert_rules_exists() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dashboard_text =
        std::fs::read_to_string(root.join("deploy/grafana/weir.json")).expect("dashboard");
    let dashboard: serde_json::Value =
        serde_json::from_str(&dashboard_text).expect("the dashboard is JSON");
    let mut strings = Vec::new();
    json_strings(&dashboard, &mut strings);
    let dashboard_names = metric_names(&strings.join("\n"));
    let alerts =
        std::fs::read_to_string(root.join("deploy/prometheus/alerts.yaml")).expect("alert rules");
    let alert_names = metric_names(&alerts);
    for alert in [
        "WeirPipelineStalled",
        "WeirConsumerLagGrowing",
        "WeirSinkWriteLatencyHigh",
        "WeirDeadLettersRising",
        "WeirPluginReloadFailed",
        "WeirKafkaPartitionStuck",
    ] {
        assert!(
            alerts.contains(&format!("alert: {alert}")),
            "alerts.yaml has no rule {alert}"
        );
    }
    assert!(dashboard_names.len() >= 15, "{dashboard_names:?}");
    assert!(alert_names.len() >= 5, "{alert_names:?}");

    // A real weir, with its Kafka lag reported (it appears with the
    // consumer's first statistics).
    let dir = tempfile::tempdir().expect("tempdir");
    let config = single_pipeline(dir.path(), "dash").await;
    let weir = Weir::start(dir.path(), &config).await;
    let m = weir
        .wait_metrics("the Kafka lag series", |m| {
            !m.find("weir_source_kafka_lag_messages", &[("pipeline", "dash")])
                .is_empty()
        })
        .await;
    let families = m.families();
    let missing: Vec<(&str, &String)> = dashboard_names
        .iter()
        .map(|n| ("deploy/grafana/weir.json", n))
        .chain(
            alert_names
                .iter()
                .map(|n| ("deploy/prometheus/alerts.yaml", n)),
        )
        .filter(|(_, name)| !families.contains(m.family(name)))
        .collect();
    assert!(
        missing.is_empty(),
        "metrics used but not in /metrics: {missing:?}\nfamilies: {families:?}"
    );
}
