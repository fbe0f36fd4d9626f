//! Pipelines with several plugin workers, end to end: the real `weir`
//! binary against the real Kafka-compatible broker. Every event has a key
//! `k<n>` and a per-key sequence number `seq`; two workers take pieces of
//! different partitions or keys at once, and the writer finishes them in
//! whatever order they finish.
//!
//! What is checked is what a user sees: every key's sequence in the file
//! sink, every event there, and the group's committed offsets against what
//! the sink holds after each `kill -9`.

use weir_tests::kafka;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use std::time::{Duration, Instant};

use kafka::{Msg, brokers, committed, create_topic, produce, read_topic, unique};
use weir_tests::plugins;
use weir_tests::weir_run::WeirRun;

const PARTITIONS: i32 = 4;
/// Keys `k0..k{KEYS}`; the producer's partitioner spreads them over the
/// partitions.
const KEYS: i64 = 500;

struct Setup {
    brokers: String,
    input: String,
    group: String,
    dir: tempfile::TempDir,
}

/// One output read back from the file sink.
#[derive(Debug, Clone)]
struct Line {
    key: String,
    seq: i64,
    id: i64,
}

impl Setup {
    async fn new(name: &str) -> Setup {
        let setup = Setup {
            brokers: brokers(),
            input: unique(&format!("{name}-in")),
            group: unique(&format!("{name}-group")),
            dir: tempfile::tempdir().expect("tempdir"),
        };
        create_topic(&setup.brokers, &setup.input, PARTITIONS).await;
        setup
    }

    /// Events `0..n`: event `i` has key `k{i % KEYS}` and `seq = i / KEYS`.
    async fn produce(&self, n: i64) {
        self.produce_with(n, |_| serde_json::Map::new()).await;
    }

    /// [`Setup::produce`] with more fields in some values (`extra(i)`).
    async fn produce_with(
        &self,
        n: i64,
        extra: impl Fn(i64) -> serde_json::Map<String, serde_json::Value>,
    ) {
        let messages: Vec<Msg> = (0..n)
            .map(|i| {
                let key = format!("k{}", i % KEYS);
                let mut value = serde_json::json!({"id": i, "key": key, "seq": i / KEYS});
                if let Some(fields) = value.as_object_mut() {
                    fields.extend(extra(i));
                }
                Msg {
                    key: Some(key.into_bytes()),
                    value: Some(value.to_string().into_bytes()),
                    ..Msg::default()
                }
            })
            .collect();
        produce(&self.brokers, &self.input, &messages).await;
    }

    fn config(&self, run: &str, stop_at_end: bool, ordering: &str) -> PathBuf {
        let text = self.config_text(run, stop_at_end, ordering);
        let path = self.dir.path().join(format!("{run}.toml"));
        std::fs::write(&path, text).expect("write config");
        path
    }

    /// The pipeline of [`Setup::config`] through the `trap-on-event`
    /// fixture (a trap on `"poison": true`, a sleep on `"sleep_ms"`), dead
    /// letters into `out/{run}/dlq.jsonl`.
    fn config_with_plugin(&self, run: &str, stop_at_end: bool, ordering: &str) -> PathBuf {
        let text = format!(
            "{}plugins = [\"trap\"]\ndead_letter = \"dlq\"\n\n\
             [plugins.trap]\npath = \"{}\"\n\n\
             [sinks.dlq]\ntype = \"file\"\npath = \"out/{run}/dlq.jsonl\"\n",
            self.config_text(run, stop_at_end, ordering),
            plugins::TRAP_ON_EVENT,
        );
        let path = self.dir.path().join(format!("{run}.toml"));
        std::fs::write(&path, text).expect("write config");
        path
    }

    fn config_text(&self, run: &str, stop_at_end: bool, ordering: &str) -> String {
        format!(
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

[sinks.out]
type = "file"
path = "out/{run}/out.jsonl"

[pipelines.events]
source = "events"
default_route = "out"
workers = 2
ordering = "{ordering}"
max_concurrent_writes = 2
batch = {{ max_events = 500, max_wait_ms = 50, max_in_flight = 6 }}
"#,
            brokers = self.brokers,
            input = self.input,
            group = self.group,
            options = kafka::group_options_toml(),
        )
    }

    fn start(&self, run: &str, stop_at_end: bool, ordering: &str) -> WeirRun {
        self.spawn(run, &self.config(run, stop_at_end, ordering))
    }

    fn start_with_plugin(&self, run: &str, stop_at_end: bool, ordering: &str) -> WeirRun {
        self.spawn(run, &self.config_with_plugin(run, stop_at_end, ordering))
    }

    fn spawn(&self, run: &str, config: &std::path::Path) -> WeirRun {
        WeirRun::start(
            config,
            &self.dir.path().join("cache"),
            &self.dir.path().join(format!("{run}.log")),
        )
    }

    fn log(&self, run: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{run}.log"))).unwrap_or_default()
    }

    /// The file sink's lines of `run`, in file order.
    fn lines(&self, run: &str) -> Vec<Line> {
        let path = self.dir.path().join(format!("out/{run}/out.jsonl"));
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Vec::new();
        };
        text.lines()
            // A kill -9 can leave a torn last line; committed data is
            // always whole (flushed before the commit).
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|envelope| {
                let v = &envelope["value"];
                Line {
                    key: v["key"].as_str().expect("key").to_owned(),
                    seq: v["seq"].as_i64().expect("seq"),
                    id: v["id"].as_i64().expect("id"),
                }
            })
            .collect()
    }

    /// id -> (partition, offset) of every input event.
    fn layout(&self, count: usize) -> BTreeMap<i64, (i32, i64)> {
        read_topic(&self.brokers, &self.input, count, Duration::from_secs(60))
            .iter()
            .map(|m| (m.json()["id"].as_i64().unwrap(), (m.partition, m.offset)))
            .collect()
    }

    fn committed(&self) -> BTreeMap<i32, i64> {
        committed(&self.brokers, &self.group, &self.input, PARTITIONS)
    }

    fn wait_for_lines(&self, run: &str, at_least: usize, child: &mut WeirRun) {
        let start = Instant::now();
        while self.lines(run).len() < at_least {
            if let Some(status) = child.try_wait() {
                panic!("{run} exited early: {status}\n{}", self.log(run));
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "{run} wrote fewer than {at_least} outputs in 120 s\n{}",
                self.log(run)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Every key's sequence numbers, in the order the sink got them.
fn sequences(lines: &[Line]) -> BTreeMap<&str, Vec<i64>> {
    let mut per_key: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for l in lines {
        per_key.entry(l.key.as_str()).or_default().push(l.seq);
    }
    per_key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_by_key_keep_every_keys_sequence_and_deliver_each_event_once() {
    const N: i64 = 200_000;
    let setup = Setup::new("bykey").await;
    setup.produce(N).await;

    let mut run = setup.start("run", true, "key");
    let status = run.wait(Duration::from_secs(300));
    assert!(status.success(), "run: {status}\n{}", setup.log("run"));

    let lines = setup.lines("run");
    let per_key = sequences(&lines);
    assert_eq!(per_key.len(), usize::try_from(KEYS).unwrap());
    for (key, seqs) in &per_key {
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "key {key}: sequence not strictly increasing: {:?}",
            seqs.windows(2).find(|w| w[0] >= w[1])
        );
    }
    // Exactly once when nothing crashes: every id, no id twice.
    let ids: BTreeSet<i64> = lines.iter().map(|l| l.id).collect();
    assert_eq!(
        lines.len(),
        usize::try_from(N).unwrap(),
        "duplicates or losses"
    );
    assert_eq!(ids, (0..N).collect::<BTreeSet<_>>());
    // And everything was committed: the offsets are at each partition's end.
    let committed = setup.committed();
    assert_eq!(committed.values().sum::<i64>(), N, "{committed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_workers_finish_out_of_order_never_commits_past_an_unwritten_event() {
    const N: i64 = 60_000;
    let setup = Setup::new("wkill").await;
    // One key in twenty is slow (2 ms per event in the plugin): the lanes
    // holding those keys finish after the lanes read later.
    setup
        .produce_with(N, |i| {
            let mut slow = serde_json::Map::new();
            if (i % KEYS) % 20 == 0 {
                slow.insert("sleep_ms".into(), 2.into());
            }
            slow
        })
        .await;
    let layout = setup.layout(usize::try_from(N).unwrap());

    let mut written: BTreeSet<i64> = BTreeSet::new();
    let mut previous = 0;
    // Kill at different depths into the topic (each run starts where the
    // previous one committed), a few thousand outputs apart.
    for (round, after) in [1_500usize, 4_000, 2_500, 6_000].into_iter().enumerate() {
        let run = format!("kill{round}");
        let mut child = setup.start_with_plugin(&run, false, "key");
        setup.wait_for_lines(&run, after, &mut child);
        child.kill();
        written.extend(setup.lines(&run).iter().map(|l| l.id));

        // No committed offset passes an event no run has written.
        let committed = setup.committed();
        for (id, (p, o)) in &layout {
            if *o < committed.get(p).copied().unwrap_or(0) {
                assert!(
                    written.contains(id),
                    "round {round}: {p}@{} committed but event {id} at offset {o} was never written",
                    committed[p]
                );
            }
        }
        let total: i64 = committed.values().sum();
        assert!(total >= previous, "round {round}: commits went backwards");
        previous = total;
    }
    assert!(previous > 0, "no run ever committed");

    let mut last = setup.start_with_plugin("final", true, "key");
    let status = last.wait(Duration::from_secs(300));
    assert!(status.success(), "final: {status}\n{}", setup.log("final"));
    let lines = setup.lines("final");
    // The final run alone keeps every key's order.
    for (key, seqs) in sequences(&lines) {
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "final run, key {key} out of order"
        );
    }
    written.extend(lines.iter().map(|l| l.id));
    let missing: Vec<i64> = (0..N).filter(|i| !written.contains(i)).take(10).collect();
    assert!(missing.is_empty(), "events never written: {missing:?} ...");
    assert_eq!(setup.committed().values().sum::<i64>(), N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_host_joining_and_leaving_with_batches_in_flight_loses_nothing() {
    const N: i64 = 150_000;
    let setup = Setup::new("wrebal").await;
    setup.produce(N).await;

    let mut a = setup.start("a", false, "partition");
    setup.wait_for_lines("a", 3_000, &mut a);
    // B joins: the group rebalances while A's workers hold batches.
    let mut b = setup.start("b", false, "partition");
    let start = Instant::now();
    while !setup.log("b").contains("partitions assigned") {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "b never got partitions\n{}",
            setup.log("b")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // B leaves (SIGTERM: drain, commit, leave the group): A takes its
    // partitions back.
    let status = b.terminate(Duration::from_secs(60));
    assert!(status.success(), "b: {status}\n{}", setup.log("b"));
    // A finishes the topic; then it is stopped and a last host with
    // `stop_at_end` confirms nothing is left.
    let start = Instant::now();
    while setup.committed().values().sum::<i64>() < N {
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "the group never committed everything: {:?}\n{}",
            setup.committed(),
            setup.log("a")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = a.terminate(Duration::from_secs(60));
    assert!(status.success(), "a: {status}\n{}", setup.log("a"));

    let mut lines = setup.lines("a");
    lines.extend(setup.lines("b"));
    let ids: BTreeSet<i64> = lines.iter().map(|l| l.id).collect();
    let missing: Vec<i64> = (0..N).filter(|i| !ids.contains(i)).take(10).collect();
    assert!(
        missing.is_empty(),
        "events lost in the rebalance: {missing:?} ..."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_in_one_worker_fails_only_its_poison_event_and_the_other_worker_goes_on() {
    const N: i64 = 20_000;
    // Five poison events, on different keys (so on different partitions
    // and workers as the partitioner spreads them).
    const POISON: [i64; 5] = [1_001, 4_212, 9_333, 13_444, 18_555];
    let setup = Setup::new("wtrap").await;
    setup
        .produce_with(N, |i| {
            let mut poison = serde_json::Map::new();
            if POISON.contains(&i) {
                poison.insert("poison".into(), true.into());
            }
            poison
        })
        .await;

    let mut run = setup.start_with_plugin("run", true, "partition");
    let status = run.wait(Duration::from_secs(300));
    let log = setup.log("run");
    assert!(status.success(), "run: {status}\n{log}");
    // The plugin's panics travel in the reasons; the host's own would read
    // "thread '...' panicked at".
    assert!(!log.contains("' panicked at"), "a host panic: {log}");

    // Exactly the poison events are dead letters, each once, with the
    // trap as the reason.
    let dlq_path = setup.dir.path().join("out/run/dlq.jsonl");
    let letters: Vec<serde_json::Value> = std::fs::read_to_string(&dlq_path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let mut dead: Vec<i64> = letters
        .iter()
        .map(|d| d["value"]["id"].as_i64().expect("id"))
        .collect();
    dead.sort_unstable();
    assert_eq!(dead, POISON, "{letters:#?}");
    for letter in &letters {
        let reason = letter["headers"]["weir.dlq.reason"].as_str().unwrap_or("");
        assert!(reason.contains("poison event at"), "{letter:#}");
        assert_eq!(letter["headers"]["weir.dlq.plugin"], "trap", "{letter:#}");
    }

    // Every other event exactly once, every key's sequence in order: the
    // trap rebuilt one worker's instance and disturbed nothing else.
    let lines = setup.lines("run");
    let expected: BTreeSet<i64> = (0..N).filter(|i| !POISON.contains(i)).collect();
    let ids: BTreeSet<i64> = lines.iter().map(|l| l.id).collect();
    assert_eq!(lines.len(), expected.len(), "duplicates or losses");
    assert_eq!(ids, expected);
    for (key, seqs) in sequences(&lines) {
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "key {key}: sequence not strictly increasing"
        );
    }
    assert_eq!(setup.committed().values().sum::<i64>(), N);
}
