//! Kafka pipelines end to end, driving the real `weir` binary against the
//! real Kafka-compatible broker (`scripts/services start kafka`):
//! filter -> transform -> router into file sinks and a Kafka topic; a
//! SIGTERM restart; three `kill -9`s; two hosts in one group; a poison event
//! and a sink rejection dead-lettered to a Kafka topic.
//!
//! Every event has an `id`; views are dropped, clicks and signups go to
//! their file, purchases to their file and to the output topic. The
//! transform masks the email and records the event's origin, so each output
//! says which offset it came from.

use weir_tests::kafka;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use kafka::{Msg, brokers, committed, create_topic, produce, read_topic, unique};
use weir_tests::plugins;
use weir_tests::weir_bin;

const TYPES: [&str; 4] = ["view", "click", "purchase", "signup"];
const PARTITIONS: i32 = 3;

/// One test's topics, group and directory.
struct Setup {
    brokers: String,
    input: String,
    output: String,
    dlq: String,
    group: String,
    dir: tempfile::TempDir,
}

impl Setup {
    async fn new(name: &str) -> Setup {
        let brokers = brokers();
        let setup = Setup {
            input: unique(&format!("{name}-in")),
            output: unique(&format!("{name}-out")),
            dlq: unique(&format!("{name}-dlq")),
            group: unique(&format!("{name}-group")),
            dir: tempfile::tempdir().expect("tempdir"),
            brokers,
        };
        create_topic(&setup.brokers, &setup.input, PARTITIONS).await;
        create_topic(&setup.brokers, &setup.output, PARTITIONS).await;
        create_topic(&setup.brokers, &setup.dlq, 1).await;
        setup
    }

    /// Write a config whose file sinks go to `out/<run>/` and return its
    /// path. `trap` puts the trap-on-event fixture in the chain.
    fn config(&self, run: &str, stop_at_end: bool, trap: bool) -> PathBuf {
        let trap_plugin = if trap {
            format!("[plugins.trap]\npath = \"{}\"\n\n", plugins::TRAP_ON_EVENT)
        } else {
            String::new()
        };
        let chain = if trap {
            "[\"drop_views\", \"trap\", \"mask\", \"by_type\"]"
        } else {
            "[\"drop_views\", \"mask\", \"by_type\"]"
        };
        let text = format!(
            r#"[host]
shutdown_timeout_ms = 30000

[host.admin]
enabled = false

[sources.events]
type = "kafka"
brokers = "{brokers}"
topics = ["{input}"]
group_id = "{group}"
stop_at_end = {stop_at_end}
options = {options}

[plugins.drop_views]
path = "{filter}"
config = {{ field = "event_type", equals = "view" }}

{trap_plugin}[plugins.mask]
path = "{transform}"
config = {{ "mask.email" = "redact", "add.origin" = "$origin" }}

[plugins.by_type]
path = "{router}"
config = {{ field = "event_type", routes = "click:clicks,purchase:purchases+kafka_out,signup:signups" }}

[sinks.clicks]
type = "file"
path = "out/{run}/clicks.jsonl"

[sinks.purchases]
type = "file"
path = "out/{run}/purchases.jsonl"

[sinks.signups]
type = "file"
path = "out/{run}/signups.jsonl"

[sinks.other]
type = "file"
path = "out/{run}/other.jsonl"

[sinks.kafka_out]
type = "kafka"
brokers = "{brokers}"
topic = "{output}"
options = {{ "message.max.bytes" = 4000 }}

[sinks.dlq]
type = "kafka"
brokers = "{brokers}"
topic = "{dlq}"

[pipelines.events]
source = "events"
plugins = {chain}
default_route = "other"
dead_letter = "dlq"
routes = {{ clicks = "clicks", purchases = "purchases", signups = "signups", kafka_out = "kafka_out" }}
batch = {{ max_events = 1000, max_wait_ms = 100 }}
"#,
            brokers = self.brokers,
            input = self.input,
            group = self.group,
            output = self.output,
            dlq = self.dlq,
            options = kafka::group_options_toml(),
            filter = plugins::FILTER,
            transform = plugins::TRANSFORM,
            router = plugins::ROUTER,
        );
        let path = self.dir.path().join(format!("{run}.toml"));
        std::fs::write(&path, text).expect("write config");
        path
    }

    /// Start `weir run` on a config; its log goes to `<run>.log`.
    fn start(&self, run: &str, stop_at_end: bool, trap: bool) -> Child {
        let config = self.config(run, stop_at_end, trap);
        let log = std::fs::File::create(self.dir.path().join(format!("{run}.log"))).expect("log");
        Command::new(weir_bin())
            .args(["run", config.to_str().unwrap(), "--progress", "0"])
            .env("WEIR_CACHE_DIR", self.dir.path().join("cache"))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start weir")
    }

    fn log(&self, run: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{run}.log"))).unwrap_or_default()
    }

    /// Outputs written to the file sinks of `run`: (sink, id, value).
    fn file_outputs(&self, run: &str) -> Vec<(String, i64, serde_json::Value)> {
        let mut out = Vec::new();
        for sink in ["clicks", "purchases", "signups", "other"] {
            let path = self.dir.path().join(format!("out/{run}/{sink}.jsonl"));
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            for line in text.lines() {
                // A kill -9 can leave a torn last line; committed data is
                // always whole (flushed before the commit).
                let Ok(envelope) = serde_json::from_str::<serde_json::Value>(line) else {
                    continue;
                };
                let value = envelope["value"].clone();
                let id = value["id"].as_i64().expect("id");
                out.push((sink.to_string(), id, value));
            }
        }
        out
    }

    fn file_lines(&self, run: &str) -> usize {
        self.file_outputs(run).len()
    }

    /// Produce events `ids` (partition = id % 3, in order), with a `trace`
    /// header; `special` can change an event's JSON.
    async fn produce(
        &self,
        ids: std::ops::Range<i64>,
        special: impl Fn(i64, &mut serde_json::Value),
    ) {
        let messages: Vec<Msg> = ids
            .map(|i| {
                let mut v = event(i);
                special(i, &mut v);
                Msg {
                    value: Some(v.to_string().into_bytes()),
                    headers: vec![("trace".into(), format!("t-{i}").into_bytes())],
                    partition: i32::try_from(i % i64::from(PARTITIONS)).unwrap(),
                    ..Msg::default()
                }
            })
            .collect();
        produce(&self.brokers, &self.input, &messages).await;
    }

    /// id -> (partition, offset) of every input event.
    fn layout(&self, count: usize) -> BTreeMap<i64, (i32, i64)> {
        read_topic(&self.brokers, &self.input, count, Duration::from_secs(30))
            .iter()
            .map(|m| (m.json()["id"].as_i64().unwrap(), (m.partition, m.offset)))
            .collect()
    }

    fn committed(&self) -> BTreeMap<i32, i64> {
        committed(&self.brokers, &self.group, &self.input, PARTITIONS)
    }
}

/// Event `i`: ~300 bytes of JSON.
fn event(i: i64) -> serde_json::Value {
    serde_json::json!({
        "id": i,
        "event_type": TYPES[usize::try_from(i % 4).unwrap()],
        "user_id": format!("user-{:04}", i % 500),
        "email": format!("someone{i}@example.com"),
        "amount": (i % 1000) as f64 / 10.0,
        "page": "/product/42",
        "session_id": format!("s-{:012x}", i * 7919),
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/132.0",
    })
}

/// The file sink an event's outputs go to (views go nowhere).
fn expected_sink(i: i64) -> Option<&'static str> {
    match i % 4 {
        1 => Some("clicks"),
        2 => Some("purchases"),
        3 => Some("signups"),
        _ => None,
    }
}

fn wait_exit(child: &mut Child, timeout: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            panic!("weir did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
}

/// Wait until `cond` holds, panicking with `what` after `timeout`.
fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Assert every non-view event of `ids` has its file output in `outputs`,
/// each with the email masked and the origin recorded, and nothing else is
/// there. Returns how many outputs there were per id (>= 1).
fn assert_all_files(
    outputs: &[(String, i64, serde_json::Value)],
    ids: std::ops::Range<i64>,
    input: &str,
) {
    let mut seen: BTreeMap<i64, &str> = BTreeMap::new();
    for (sink, id, value) in outputs {
        assert_eq!(
            Some(sink.as_str()),
            expected_sink(*id),
            "event {id} in {sink}"
        );
        assert_eq!(value["email"], "[redacted]", "event {id}");
        assert!(
            value["origin"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{input}/")),
            "{value}"
        );
        seen.insert(*id, sink);
    }
    let expected: BTreeSet<i64> = ids.filter(|i| expected_sink(*i).is_some()).collect();
    let got: BTreeSet<i64> = seen.keys().copied().collect();
    let missing: Vec<_> = expected.difference(&got).take(10).collect();
    assert!(
        missing.is_empty(),
        "missing outputs, e.g. events {missing:?}"
    );
    assert_eq!(got.len(), expected.len(), "unexpected outputs");
}

/// Ids of the purchases in the output topic.
fn kafka_output_ids(setup: &Setup, expected: usize) -> Vec<i64> {
    read_topic(
        &setup.brokers,
        &setup.output,
        expected,
        Duration::from_secs(20),
    )
    .iter()
    .map(|m| m.json()["id"].as_i64().unwrap())
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_events_through_filter_transform_router_into_files_and_kafka() {
    const N: i64 = 100_000;
    let setup = Setup::new("e2e").await;
    setup.produce(0..N, |_, _| {}).await;
    let layout = setup.layout(usize::try_from(N).unwrap());
    assert_eq!(layout.len(), usize::try_from(N).unwrap());

    let mut child = setup.start("run", true, false);
    let status = wait_exit(&mut child, Duration::from_secs(600));
    assert!(
        status.success(),
        "weir failed: {status}\n{}",
        setup.log("run")
    );

    let outputs = setup.file_outputs("run");
    assert_all_files(&outputs, 0..N, &setup.input);
    // No failure happened, so nothing was delivered twice.
    assert_eq!(outputs.len(), usize::try_from(N / 4 * 3).unwrap());
    // The origin recorded by the transform is the event's own offset.
    for (_, id, value) in outputs.iter().step_by(997) {
        let (p, o) = layout[id];
        assert_eq!(value["origin"], format!("{}/{p}/{o}", setup.input));
    }
    // Purchases also went to Kafka, each exactly once.
    let purchases: BTreeSet<i64> = (0..N).filter(|i| i % 4 == 2).collect();
    let in_kafka = kafka_output_ids(&setup, purchases.len());
    assert_eq!(in_kafka.len(), purchases.len());
    assert_eq!(in_kafka.into_iter().collect::<BTreeSet<_>>(), purchases);
    // Every partition was committed to its end.
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    for (p, o) in layout.values() {
        let end = ends.entry(*p).or_default();
        *end = (*end).max(o + 1);
    }
    assert_eq!(setup.committed(), ends);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_then_restart_resumes_at_the_committed_offsets() {
    const N: i64 = 30_000;
    let setup = Setup::new("restart").await;
    setup.produce(0..N, |_, _| {}).await;
    let layout = setup.layout(usize::try_from(N).unwrap());

    let mut first = setup.start("first", false, false);
    wait_until(
        "the first run to write outputs",
        Duration::from_secs(120),
        || setup.file_lines("first") >= 3000,
    );
    sigterm(&first);
    let status = wait_exit(&mut first, Duration::from_secs(60));
    assert!(
        status.success(),
        "SIGTERM exit: {status}\n{}",
        setup.log("first")
    );
    let committed = setup.committed();
    let first_outputs = setup.file_outputs("first");

    // Everything below the committed offsets was written by the first run.
    let below: BTreeSet<i64> = layout
        .iter()
        .filter(|(id, (p, o))| {
            expected_sink(**id).is_some() && *o < committed.get(p).copied().unwrap_or(0)
        })
        .map(|(id, _)| *id)
        .collect();
    assert!(
        !below.is_empty(),
        "the first run committed nothing: {committed:?}"
    );
    let first_ids: BTreeSet<i64> = first_outputs.iter().map(|(_, id, _)| *id).collect();
    assert!(below.is_subset(&first_ids));

    let mut second = setup.start("second", true, false);
    let status = wait_exit(&mut second, Duration::from_secs(300));
    assert!(
        status.success(),
        "second run: {status}\n{}",
        setup.log("second")
    );
    let second_outputs = setup.file_outputs("second");
    // The second run started at the committed offsets: it re-read nothing
    // the first one committed.
    for (_, id, _) in &second_outputs {
        let (p, o) = layout[id];
        let from = committed.get(&p).copied().unwrap_or(0);
        assert!(
            o >= from,
            "event {id} at {p}/{o} re-read below the committed offset {from}"
        );
    }
    // Nothing lost, nothing twice (a graceful stop drains before it exits).
    let mut all = first_outputs;
    all.extend(second_outputs);
    assert_all_files(&all, 0..N, &setup.input);
    assert_eq!(all.len(), usize::try_from(N / 4 * 3).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_kill_9s_lose_nothing_and_commits_never_pass_unwritten_outputs() {
    const N: i64 = 40_000;
    let setup = Setup::new("crash").await;
    setup.produce(0..N, |_, _| {}).await;
    let layout = setup.layout(usize::try_from(N).unwrap());

    let mut all: Vec<(String, i64, serde_json::Value)> = Vec::new();
    let mut previous_total = 0;
    for round in 0..3 {
        let run = format!("crash{round}");
        let mut child = setup.start(&run, false, false);
        wait_until("the run to write outputs", Duration::from_secs(120), || {
            setup.file_lines(&run) >= 2000
        });
        child.kill().expect("kill -9");
        let _ = child.wait();
        all.extend(setup.file_outputs(&run));
        // Committed offsets never pass an event whose outputs were not
        // written (and flushed) by some run.
        let committed = setup.committed();
        let written: BTreeSet<i64> = all.iter().map(|(_, id, _)| *id).collect();
        for (id, (p, o)) in &layout {
            if expected_sink(*id).is_some() && *o < committed.get(p).copied().unwrap_or(0) {
                assert!(
                    written.contains(id),
                    "round {round}: offset {p}/{o} committed but event {id} has no output"
                );
            }
        }
        let total: i64 = committed.values().sum();
        assert!(total >= previous_total, "commits went backwards");
        previous_total = total;
    }
    assert!(previous_total > 0, "no run ever committed");

    let mut last = setup.start("final", true, false);
    let status = wait_exit(&mut last, Duration::from_secs(300));
    assert!(
        status.success(),
        "final run: {status}\n{}",
        setup.log("final")
    );
    all.extend(setup.file_outputs("final"));
    // At least once: every expected output is there (some twice).
    assert_all_files(&all, 0..N, &setup.input);
    let purchases: BTreeSet<i64> = (0..N).filter(|i| i % 4 == 2).collect();
    let in_kafka: BTreeSet<i64> = kafka_output_ids(&setup, usize::MAX).into_iter().collect();
    assert_eq!(in_kafka, purchases);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_in_one_group_split_partitions_and_deliver_everything() {
    const N: i64 = 30_000;
    let setup = Setup::new("pair").await;
    let mut a = setup.start("a", false, false);
    let mut b = setup.start("b", false, false);
    // Both joined and the partitions are split between them.
    let assigned = |run: &str| -> Option<String> {
        setup
            .log(run)
            .lines()
            .rev()
            .find(|l| l.contains("partitions assigned"))
            .map(str::to_string)
    };
    wait_until(
        "both hosts to get partitions",
        Duration::from_secs(120),
        || {
            let (la, lb) = (assigned("a"), assigned("b"));
            la.is_some() && lb.is_some() && {
                // After the split, the last assignment of each names fewer than
                // all partitions.
                let count = |l: &str| l.matches(&format!("{}/", setup.input)).count();
                count(&la.unwrap()) + count(&lb.unwrap()) == usize::try_from(PARTITIONS).unwrap()
            }
        },
    );
    setup.produce(0..N, |_, _| {}).await;
    let expected = usize::try_from(N / 4 * 3).unwrap();
    wait_until("every output", Duration::from_secs(300), || {
        let ids: BTreeSet<i64> = setup
            .file_outputs("a")
            .into_iter()
            .chain(setup.file_outputs("b"))
            .map(|(_, id, _)| id)
            .collect();
        ids.len() >= expected
    });
    sigterm(&a);
    sigterm(&b);
    assert!(
        wait_exit(&mut a, Duration::from_secs(60)).success(),
        "{}",
        setup.log("a")
    );
    assert!(
        wait_exit(&mut b, Duration::from_secs(60)).success(),
        "{}",
        setup.log("b")
    );

    let (out_a, out_b) = (setup.file_outputs("a"), setup.file_outputs("b"));
    let partitions = |outs: &[(String, i64, serde_json::Value)]| -> BTreeSet<String> {
        outs.iter()
            .map(|(_, _, v)| {
                let origin = v["origin"].as_str().unwrap();
                origin.rsplit_once('/').unwrap().0.to_string()
            })
            .collect()
    };
    let (pa, pb) = (partitions(&out_a), partitions(&out_b));
    assert!(
        !pa.is_empty() && !pb.is_empty(),
        "one host did all the work: a={pa:?} b={pb:?}"
    );
    assert!(pa.is_disjoint(&pb), "a={pa:?} b={pb:?}");
    let mut all = out_a;
    all.extend(out_b);
    assert_all_files(&all, 0..N, &setup.input);
    assert_eq!(all.len(), expected, "no event delivered twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_event_and_rejected_output_go_to_the_dead_letter_topic() {
    const N: i64 = 2_000;
    const POISON: i64 = 777; // a click
    const HUGE: i64 = 1_234; // a purchase
    let setup = Setup::new("dlq").await;
    setup
        .produce(0..N, |i, v| {
            if i == POISON {
                v["poison"] = true.into();
            }
            if i == HUGE {
                v["note"] = "x".repeat(6000).into();
            }
        })
        .await;
    let mut child = setup.start("run", true, true);
    let status = wait_exit(&mut child, Duration::from_secs(300));
    assert!(
        status.success(),
        "weir failed: {status}\n{}",
        setup.log("run")
    );

    // The rest flowed: every other output is in its file, the huge
    // purchase included (only the Kafka sink refused it).
    let outputs = setup.file_outputs("run");
    let ids: BTreeSet<i64> = outputs.iter().map(|(_, id, _)| *id).collect();
    assert!(!ids.contains(&POISON));
    assert!(ids.contains(&HUGE));
    let others: Vec<_> = outputs
        .into_iter()
        .filter(|(_, id, _)| *id != POISON)
        .collect();
    assert_eq!(others.len(), usize::try_from(N / 4 * 3 - 1).unwrap());
    let purchases: BTreeSet<i64> = (0..N).filter(|i| i % 4 == 2 && *i != HUGE).collect();
    let in_kafka: BTreeSet<i64> = kafka_output_ids(&setup, purchases.len())
        .into_iter()
        .collect();
    assert_eq!(in_kafka, purchases);

    // Exactly two dead letters.
    let dead = read_topic(&setup.brokers, &setup.dlq, 2, Duration::from_secs(20));
    assert_eq!(dead.len(), 2, "{dead:?}");
    let poison = dead
        .iter()
        .find(|m| m.json()["id"] == POISON)
        .expect("the poison event is dead-lettered");
    // The original event, its own headers kept, plus what happened.
    assert_eq!(poison.json()["poison"], true);
    assert_eq!(
        poison.json()["email"],
        format!("someone{POISON}@example.com")
    );
    assert_eq!(poison.header("trace").as_deref(), Some("t-777"));
    assert_eq!(poison.header("weir.dlq.plugin").as_deref(), Some("trap"));
    assert_eq!(
        poison.header("weir.dlq.pipeline").as_deref(),
        Some("events")
    );
    let origin = poison.header("weir.dlq.origin").unwrap();
    assert!(origin.starts_with(&format!("{}/", setup.input)), "{origin}");
    assert!(!poison.header("weir.dlq.reason").unwrap().is_empty());

    let rejected = dead
        .iter()
        .find(|m| m.json()["id"] == HUGE)
        .expect("the rejected output is dead-lettered");
    // The output as the sink got it (masked), with the sink's reason.
    assert_eq!(rejected.json()["email"], "[redacted]");
    assert_eq!(
        rejected.header("weir.dlq.sink").as_deref(),
        Some("kafka_out")
    );
    let reason = rejected.header("weir.dlq.reason").unwrap();
    assert!(reason.contains("Message size too large"), "{reason}");
}
