//! Hot reload of plugins while events flow: versions change only between
//! batches and no event is lost or duplicated by a swap (against the real
//! Kafka-compatible broker, `scripts/services start kafka`); broken
//! versions are refused or rolled back while the old one keeps serving;
//! replacing the plugin file on disk reloads it exactly once.

use weir_tests::kafka;
use weir_tests::reload;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::FutureRecord;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use weir::config::{BatchConfig, PluginGrants, PluginLimits, RetryConfig};
use weir::engine::{Engine, EngineOptions, PluginErrorKind, PluginSpec, Transform};
use weir::pipeline::{NamedSink, Pipeline, PipelineParts, PipelineStats};
use weir::plugin::watch::{self, WatchOptions};
use weir::plugin::{
    PluginOptions, PluginRegistry, ReloadError, ReloadOutcome, ReloadTrigger, WatchMode,
};
use weir::sink::file::FileSinkConfig;
use weir::sink::{BuildSink, Sink, SinkContext};
use weir::source::kafka::KafkaSourceConfig;
use weir::source::{BuildSource, DynSource, SourceContext, erase};
use weir_tests::plugins::{REFUSE_INIT, STAMP_A, STAMP_B, TRAP_ON_EVENT};

use kafka::{brokers, create_topic, group_options_toml, producer, unique};
use reload::{
    BATCH_HEADER, BatchTag, ChannelSource, MemSink, VERSION_HEADER, event, header, json, wait_for,
};

const PLUGIN: &str = "stamp";

fn engine(dir: &Path) -> Arc<Engine> {
    Arc::new(
        Engine::new(EngineOptions {
            cache_dir: Some(dir.join("cache")),
        })
        .expect("engine"),
    )
}

fn spec(path: impl AsRef<Path>) -> PluginSpec {
    PluginSpec {
        name: PLUGIN.into(),
        path: path.as_ref().to_path_buf(),
        config: Vec::new(),
        limits: PluginLimits::default(),
        grants: PluginGrants::default(),
    }
}

/// A registry with `stamp` loaded from `path`, stamping the version header.
fn registry(dir: &Path, path: impl AsRef<Path>, watch: WatchMode) -> (PluginRegistry, String) {
    let mut registry = PluginRegistry::new(engine(dir), dir);
    let version = registry
        .register(
            spec(path),
            PluginOptions {
                version_header: Some(VERSION_HEADER.into()),
                watch,
            },
        )
        .expect("load stamp-a");
    let hash = version.hash().to_owned();
    (registry, hash)
}

fn batch(max_events: usize) -> BatchConfig {
    BatchConfig {
        max_events,
        max_wait_ms: 10,
        max_in_flight: 3,
    }
}

/// A pipeline `source -> stamp -> BatchTag -> sink` with an in-memory
/// dead-letter sink.
fn pipeline(
    name: &str,
    registry: &PluginRegistry,
    source: Arc<dyn DynSource>,
    sink: Arc<dyn Sink>,
    dead: Arc<MemSink>,
    max_events: usize,
) -> Pipeline {
    pipeline_on_workers(name, registry, source, sink, dead, max_events, 1)
}

/// Batch numbers of worker `w` start at `w * WORKER_BATCHES`.
const WORKER_BATCHES: u64 = 1_000_000_000;

/// [`pipeline`] with `workers` chains, each with its own `stamp` instance
/// and its own range of batch numbers.
fn pipeline_on_workers(
    name: &str,
    registry: &PluginRegistry,
    source: Arc<dyn DynSource>,
    sink: Arc<dyn Sink>,
    dead: Arc<MemSink>,
    max_events: usize,
    workers: usize,
) -> Pipeline {
    let chains: Vec<Vec<Box<dyn Transform>>> = (0..workers)
        .map(|w| {
            let stage = registry
                .transform_on_worker(PLUGIN, name, 0, w)
                .expect("stage");
            let tag = BatchTag::starting_at(u64::try_from(w).expect("few") * WORKER_BATCHES);
            vec![Box::new(stage) as Box<dyn Transform>, Box::new(tag)]
        })
        .collect();
    Pipeline::new(PipelineParts {
        name: name.into(),
        source_name: "in".into(),
        source,
        chains,
        flow: weir::pipeline::FlowConfig::default(),
        default_route: NamedSink {
            name: "out".into(),
            sink,
        },
        routes: BTreeMap::new(),
        dead_letter: Some(NamedSink {
            name: "dlq".into(),
            sink: dead,
        }),
        batch: batch(max_events),
        retry: RetryConfig::default(),
    })
}

async fn reload(
    registry: &Arc<PluginRegistry>,
    path: Option<&str>,
) -> Result<ReloadOutcome, ReloadError> {
    let reg = Arc::clone(registry);
    let path = path.map(PathBuf::from);
    tokio::task::spawn_blocking(move || reg.reload(PLUGIN, path.as_deref(), ReloadTrigger::Manual))
        .await
        .expect("reload task")
}

/// Wait until every stage of `stamp` runs `hash`.
async fn wait_applied(registry: &PluginRegistry, hash: &str) {
    wait_for(
        &format!("every stage to run {hash}"),
        Duration::from_secs(60),
        || {
            let s = registry.plugin_snapshot(PLUGIN).expect("stamp");
            s.pipelines.iter().all(|p| p.hash == hash && !p.pending)
        },
    )
    .await;
}

fn outputs_acknowledged(stats: &PipelineStats) -> u64 {
    stats.snapshot().outputs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_reloads_under_load_lose_nothing_and_switch_only_between_batches() {
    hundred_reloads_under_load(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_reloads_under_load_with_two_workers_run_every_batch_on_one_version() {
    hundred_reloads_under_load(2).await;
}

/// 100 reloads while a pipeline of `workers` workers reads 3 partitions
/// under continuous load: nothing lost or doubled, every batch on exactly
/// one version, and each worker switches once per reload.
async fn hundred_reloads_under_load(workers: usize) {
    let brokers = brokers();
    let topic = unique("hot-reload");
    create_topic(&brokers, &topic, 3).await;
    let dir = tempfile::tempdir().expect("tempdir");

    let (registry, hash_a) = registry(dir.path(), STAMP_A, WatchMode::Off);
    let registry = Arc::new(registry);
    let mut letter: HashMap<String, &str> = HashMap::from([(hash_a.clone(), "a")]);

    let source_config: KafkaSourceConfig = toml::from_str(&format!(
        "brokers = \"{brokers}\"\ntopics = [\"{topic}\"]\ngroup_id = \"{}\"\noptions = {}",
        unique("g-hot-reload"),
        group_options_toml()
    ))
    .expect("source config");
    let source = source_config
        .build(&SourceContext {
            name: "in".into(),
            pipeline: "hot".into(),
            config_dir: dir.path().to_path_buf(),
        })
        .await
        .expect("kafka source");
    let out = dir.path().join("out.jsonl");
    let sink_config: FileSinkConfig = toml::from_str(&format!(
        "path = {:?}\nfsync = false",
        out.display().to_string()
    ))
    .expect("sink config");
    let sink = sink_config
        .build(&SinkContext {
            name: "out".into(),
            config_dir: dir.path().to_path_buf(),
        })
        .await
        .expect("file sink");
    let dead = Arc::new(MemSink::default());
    let pipeline = pipeline_on_workers(
        "hot",
        &registry,
        source,
        sink,
        Arc::clone(&dead),
        100,
        workers,
    );
    let stats = pipeline.stats();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(pipeline.run(shutdown.clone()));

    // Continuous load: batches of 50 messages, each acknowledged, until told to stop.
    let stop = CancellationToken::new();
    let load = {
        let stop = stop.clone();
        let brokers = brokers.clone();
        let topic = topic.clone();
        tokio::spawn(async move {
            let producer = producer(&brokers);
            let mut sent: u64 = 0;
            while !stop.is_cancelled() {
                let items: Vec<(String, String, i32)> = (sent..sent + 50)
                    .map(|id| {
                        let partition = i32::try_from(id % 3).unwrap_or(0);
                        (id.to_string(), format!("{{\"id\":{id}}}"), partition)
                    })
                    .collect();
                let acks: Vec<_> = items
                    .iter()
                    .map(|(key, value, partition)| {
                        let record = FutureRecord::to(&topic)
                            .key(key)
                            .payload(value)
                            .partition(*partition);
                        producer.send(record, Duration::from_secs(30))
                    })
                    .collect();
                for ack in acks {
                    ack.await.expect("produce");
                }
                sent += 50;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            sent
        })
    };

    wait_for(
        "the first outputs (group joined)",
        Duration::from_secs(60),
        || outputs_acknowledged(&stats) > 0,
    )
    .await;

    // 100 reloads alternating b, a, b, a, ...; each waits until the
    // pipeline has switched, so every reload is a real swap under load.
    for i in 0..100 {
        let (path, version) = if i % 2 == 0 {
            (STAMP_B, "b")
        } else {
            (STAMP_A, "a")
        };
        let outcome = reload(&registry, Some(path)).await.expect("reload");
        let ReloadOutcome::Reloaded { hash, .. } = outcome else {
            panic!("reload {i} did not load a new version: {outcome:?}");
        };
        letter.insert(hash.clone(), version);
        wait_applied(&registry, &hash).await;
    }

    stop.cancel();
    let sent = load.await.expect("load task");
    wait_for(
        &format!("all {sent} outputs acknowledged"),
        Duration::from_secs(120),
        || outputs_acknowledged(&stats) >= sent,
    )
    .await;
    shutdown.cancel();
    running.await.expect("pipeline task").expect("pipeline");

    // Every input event exactly once.
    let text = std::fs::read_to_string(&out).expect("output file");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    for line in &lines {
        let id = line["value"]["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("no id: {line}"));
        *seen.entry(id).or_default() += 1;
    }
    let duplicated: Vec<(&u64, &usize)> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicated.is_empty(),
        "events written more than once: {duplicated:?}"
    );
    let missing: Vec<u64> = (0..sent).filter(|id| !seen.contains_key(id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {sent} events lost: {:?}",
        missing.len(),
        &missing[..missing.len().min(20)]
    );
    assert_eq!(lines.len() as u64, sent);
    assert!(
        dead.outputs().is_empty(),
        "nothing dead-lettered: {:?}",
        dead.outputs()
    );

    // Each batch ran on one version: one stamp and one version header per
    // batch, and the header names the version whose stamp is in the value.
    let mut per_batch: BTreeMap<u64, BTreeSet<(String, String)>> = BTreeMap::new();
    // Write order per partition (the producer put id `i` in partition
    // `i % 3`): lanes of different partitions are written concurrently, so
    // only each partition's own order is kept.
    let mut order: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for line in &lines {
        let partition = line["value"]["id"].as_u64().expect("id") % 3;
        let batch: u64 = line["headers"][BATCH_HEADER]
            .as_str()
            .and_then(|b| b.parse().ok())
            .unwrap_or_else(|| panic!("no batch header: {line}"));
        let stamp = line["value"]["version"].as_str().expect("stamp").to_owned();
        let hash = line["headers"][VERSION_HEADER]
            .as_str()
            .expect("version header")
            .to_owned();
        assert_eq!(
            letter.get(&hash).copied(),
            Some(stamp.as_str()),
            "the version header names the version that stamped the output: {line}"
        );
        per_batch.entry(batch).or_default().insert((stamp, hash));
        let lane = order.entry(partition).or_default();
        if lane.last() != Some(&batch) {
            lane.push(batch);
        }
    }
    for (batch, versions) in &per_batch {
        assert_eq!(
            versions.len(),
            1,
            "batch {batch} ran on several versions: {versions:?}"
        );
    }
    // Each partition's batches were written in order, and, in the order
    // the one worker ran them (batch numbers count its calls), the version
    // changed exactly once per reload.
    for (partition, lane) in &order {
        assert!(
            lane.windows(2).all(|w| w[0] < w[1]),
            "partition {partition}'s batches written in order"
        );
    }
    // Per worker, in the order it ran its batches: each reload waited
    // until every worker had switched, so each worker changed version
    // exactly once per reload.
    let mut ran_by: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for batch in per_batch.keys() {
        ran_by
            .entry(batch / WORKER_BATCHES)
            .or_default()
            .push(*batch);
    }
    assert_eq!(
        ran_by.len(),
        workers,
        "every worker ran batches: {:?}",
        ran_by.keys()
    );
    for (worker, ran) in &ran_by {
        let changes = ran
            .windows(2)
            .filter(|w| per_batch[&w[0]] != per_batch[&w[1]])
            .count();
        assert_eq!(
            changes, 100,
            "worker {worker}: one version change per reload, at batch boundaries"
        );
    }
    // A swap is recorded per stage: one per reload on every worker.
    let swaps = registry.swaps(PLUGIN);
    assert_eq!(swaps.len(), 100 * workers);
    assert!(swaps.iter().all(|s| s.from != s.to));
    let snapshot = registry.plugin_snapshot(PLUGIN).expect("stamp");
    assert_eq!(snapshot.counters.reloads_succeeded, 100);
    assert_eq!(snapshot.counters.reloads_failed, 0);
    assert_eq!(snapshot.counters.events, sent);
    assert_eq!(snapshot.hash, hash_a, "the 100th reload went back to a");
}

/// Feed `events` through the pipeline and wait until `sink` holds `total`.
async fn feed(
    tx: &tokio::sync::mpsc::UnboundedSender<weir::event::Event>,
    events: impl IntoIterator<Item = weir::event::Event>,
    sink: &MemSink,
    total: usize,
) {
    for e in events {
        tx.send(e).expect("source open");
    }
    wait_for(&format!("{total} outputs"), Duration::from_secs(30), || {
        sink.len() >= total
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_versions_are_refused_or_rolled_back_and_the_old_one_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (registry, hash_a) = registry(dir.path(), STAMP_A, WatchMode::Off);
    let registry = Arc::new(registry);
    let (source, tx) = ChannelSource::new();
    let sink = Arc::new(MemSink::default());
    let dead = Arc::new(MemSink::default());
    let pipeline = pipeline(
        "broken",
        &registry,
        erase(source),
        sink.clone(),
        Arc::clone(&dead),
        50,
    );
    let running = tokio::spawn(pipeline.run(CancellationToken::new()));
    feed(&tx, (0..10).map(event), &sink, 10).await;

    // Not Wasm at all: refused before anything runs.
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"this is not a wasm file").expect("write junk");
    let err = reload(&registry, junk.to_str())
        .await
        .expect_err("junk refused");
    match &err {
        ReloadError::Load(e) => assert_eq!(e.kind, PluginErrorKind::NotWasm, "{err}"),
        other => panic!("unexpected error {other}"),
    }
    let s = registry.plugin_snapshot(PLUGIN).expect("stamp");
    assert_eq!(s.hash, hash_a);
    assert!(
        s.last_error
            .as_ref()
            .is_some_and(|e| e.message.contains("not a WebAssembly file")),
        "{:?}",
        s.last_error
    );
    feed(&tx, (10..20).map(event), &sink, 20).await;

    // `init` refuses: refused, the message is kept.
    let err = reload(&registry, Some(REFUSE_INIT))
        .await
        .expect_err("refused");
    assert!(
        err.to_string()
            .contains("init refused its config: refusing config: (empty)"),
        "{err}"
    );
    let s = registry.plugin_snapshot(PLUGIN).expect("stamp");
    assert_eq!(s.hash, hash_a);
    assert_eq!(s.counters.reloads_failed, 2);
    assert_eq!(s.last_reload.as_ref().map(|r| r.result), Some("failed"));
    assert!(
        s.last_error
            .as_ref()
            .is_some_and(|e| e.message.contains("refusing config")),
        "{:?}",
        s.last_error
    );
    feed(&tx, (20..30).map(event), &sink, 30).await;

    // Traps on every event it gets: it loads (its init is fine), takes the
    // next batch, traps on all of it, and is rolled back; that batch is run
    // again on the old version, so nothing is lost or dead-lettered.
    let outcome = reload(&registry, Some(TRAP_ON_EVENT))
        .await
        .expect("trap-on-event loads");
    let ReloadOutcome::Reloaded {
        hash: trap_hash, ..
    } = outcome
    else {
        panic!("{outcome:?}");
    };
    let poison = (30..40).map(|id| {
        let mut e = event(id);
        e.value = Some(format!("{{\"id\":{id},\"poison\":true}}").into());
        e
    });
    feed(&tx, poison, &sink, 40).await;
    let s = registry.plugin_snapshot(PLUGIN).expect("stamp");
    assert_eq!(s.hash, hash_a, "rolled back to stamp-a");
    assert_eq!(s.pipelines[0].hash, hash_a);
    assert_eq!(s.counters.rollbacks, 1);
    assert_eq!(
        s.last_reload.as_ref().map(|r| r.result),
        Some("rolled_back")
    );
    let message = &s.last_error.as_ref().expect("rollback recorded").message;
    assert!(
        message.contains(&trap_hash) && message.contains("rolled back"),
        "{message}"
    );
    assert!(
        dead.outputs().is_empty(),
        "nothing dead-lettered: {:?}",
        dead.outputs()
    );

    // The old version served everything, each event once.
    feed(&tx, (40..50).map(event), &sink, 50).await;
    let outputs = sink.outputs();
    let ids: Vec<u64> = outputs
        .iter()
        .map(|o| json(o)["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(ids, (0..50).collect::<Vec<_>>());
    assert!(outputs.iter().all(|o| json(o)["version"] == "a"));
    assert!(
        outputs
            .iter()
            .all(|o| header(o, VERSION_HEADER).as_deref() == Some(hash_a.as_str()))
    );
    drop(tx);
    running.await.expect("task").expect("pipeline");
}

/// Replace `target` as deploy tools do: write a temporary file beside it,
/// then rename it over the target.
fn deploy(from: &str, target: &Path) {
    let tmp = target.with_extension("wasm.tmp");
    std::fs::copy(from, &tmp).expect("write the new version");
    std::fs::rename(&tmp, target).expect("rename it into place");
}

async fn file_replacement_reloads_once(mode: WatchMode) {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).expect("mkdir");
    let target = plugins.join("stamp.wasm");
    std::fs::copy(STAMP_A, &target).expect("install stamp-a");
    let (registry, hash_a) = registry(dir.path(), &target, mode);
    let registry = Arc::new(registry);
    let (source, tx) = ChannelSource::new();
    let sink = Arc::new(MemSink::default());
    let dead = Arc::new(MemSink::default());
    let pipeline = pipeline("watched", &registry, erase(source), sink.clone(), dead, 50);
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(pipeline.run(shutdown.clone()));
    let watcher = watch::spawn(
        Arc::clone(&registry),
        WatchOptions {
            poll_interval: Duration::from_millis(100),
            ..WatchOptions::default()
        },
        shutdown.clone(),
    )
    .expect("watch")
    .expect("a watched plugin");
    feed(&tx, (0..5).map(event), &sink, 5).await;
    // Let the watcher settle before the deploy.
    tokio::time::sleep(Duration::from_millis(300)).await;

    deploy(STAMP_B, &target);
    wait_for("the reload", Duration::from_secs(30), || {
        registry
            .plugin_snapshot(PLUGIN)
            .is_some_and(|s| s.counters.reloads_succeeded >= 1)
    })
    .await;
    // Give any straggling event time to cause a second reload.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = registry.plugin_snapshot(PLUGIN).expect("stamp");
    assert_eq!(
        s.counters.reloads_succeeded, 1,
        "one deploy, one reload: {s:#?}"
    );
    assert_eq!(s.counters.reloads_failed, 0, "{:?}", s.last_error);
    assert_eq!(s.history.len(), 2);
    assert_eq!(s.history[1].trigger, ReloadTrigger::Watch);
    assert_ne!(s.hash, hash_a);
    let hash_b = s.hash.clone();

    feed(&tx, (5..10).map(event), &sink, 10).await;
    let outputs = sink.outputs();
    let stamps: Vec<String> = outputs
        .iter()
        .map(|o| json(o)["version"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(stamps, ["a", "a", "a", "a", "a", "b", "b", "b", "b", "b"]);
    assert_eq!(
        header(&outputs[9], VERSION_HEADER).as_deref(),
        Some(hash_b.as_str())
    );

    // Touching the file (same content) reloads nothing.
    std::fs::copy(STAMP_B, plugins.join("stamp.wasm.tmp")).expect("copy");
    std::fs::rename(plugins.join("stamp.wasm.tmp"), &target).expect("rename");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = registry.plugin_snapshot(PLUGIN).expect("stamp");
    assert_eq!(s.counters.reloads_succeeded, 1, "same content, no reload");

    shutdown.cancel();
    drop(tx);
    running.await.expect("task").expect("pipeline");
    watcher.await.expect("watcher");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_then_rename_of_the_plugin_file_reloads_exactly_once() {
    file_replacement_reloads_once(WatchMode::Auto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_sees_a_write_then_rename_too_and_reloads_exactly_once() {
    file_replacement_reloads_once(WatchMode::Poll).await;
}
