//! The pause a plugin reload causes at the batch boundary.
//!
//! A pipeline runs at full speed (an in-memory source that always has a
//! full batch ready -> the `stamp` plugin -> a sink that discards), while
//! the plugin is reloaded 100 times, alternating between two versions.
//! For each swap the processor records the time from the end of the last
//! batch on the old version to the start of the plugin call of the first
//! batch on the new one (`gap`), and the same interval for the two batches
//! before, on one version (`previous_gap`, what a boundary costs without a
//! swap). The reload itself (compile from cache, `init`, one instance) runs
//! off the hot path and is reported apart.
//!
//! `cargo bench -p weir-tests --bench reload_pause` (`RELOADS`, `BATCH`
//! environment variables override 100 and 1000).

use weir_tests::reload;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;
use weir::config::{BatchConfig, PluginGrants, PluginLimits, RetryConfig};
use weir::engine::{Engine, EngineOptions, PluginSpec, Transform};
use weir::event::Output;
use weir::pipeline::{NamedSink, Pipeline, PipelineParts};
use weir::plugin::{PluginOptions, PluginRegistry, ReloadOutcome, ReloadTrigger, WatchMode};
use weir::sink::{Rejection, Sink, SinkError};
use weir::source::{Source, SourceBatch, SourceError};
use weir_tests::plugins::{STAMP_A, STAMP_B};

/// Always has a full batch ready.
struct Endless {
    batch: usize,
    next: AtomicU64,
}

#[async_trait]
impl Source for Endless {
    type Checkpoint = ();

    async fn next_batch(
        &self,
        max: usize,
        _wait: Duration,
    ) -> Result<SourceBatch<()>, SourceError> {
        let n = self.batch.min(max) as u64;
        let first = self.next.fetch_add(n, Ordering::Relaxed);
        let events = (first..first + n)
            .map(|id| {
                let mut e = reload::event(id);
                e.value = Some(
                    format!("{{\"id\":{id},\"device\":\"sensor-{}\",\"temperature\":21.5,\"tags\":[\"a\",\"b\"]}}", id % 97)
                        .into(),
                );
                e
            })
            .collect();
        Ok(SourceBatch {
            events,
            checkpoint: (),
            partitions: Vec::new(),
            exhausted: false,
            unreadable: Vec::new(),
        })
    }

    async fn commit(&self, _checkpoint: ()) -> Result<(), SourceError> {
        Ok(())
    }
}

/// Counts and discards.
#[derive(Default)]
struct Discard(AtomicU64);

#[async_trait]
impl Sink for Discard {
    async fn write(&self, outputs: &[Output]) -> Result<Vec<Rejection>, SinkError> {
        self.0.fetch_add(outputs.len() as u64, Ordering::Relaxed);
        Ok(Vec::new())
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn stats(label: &str, mut values: Vec<Duration>) {
    values.sort();
    println!(
        "| {label} | {} | {:.3} | {:.3} | {:.3} |",
        values.len(),
        percentile(&values, 50.0).as_secs_f64() * 1e3,
        percentile(&values, 99.0).as_secs_f64() * 1e3,
        values.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let reloads = env("RELOADS", 100);
    let batch = env("BATCH", 1000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    rt.block_on(run(reloads, batch));
}

async fn run(reloads: usize, batch: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Arc::new(
        Engine::new(EngineOptions {
            cache_dir: Some(dir.path().join("cache")),
        })
        .expect("engine"),
    );
    let mut registry = PluginRegistry::new(engine, dir.path());
    registry
        .register(
            PluginSpec {
                name: "stamp".into(),
                path: PathBuf::from(STAMP_A),
                config: Vec::new(),
                limits: PluginLimits::default(),
                grants: PluginGrants::default(),
            },
            PluginOptions {
                version_header: Some(reload::VERSION_HEADER.into()),
                watch: WatchMode::Off,
            },
        )
        .expect("stamp-a");
    let registry = Arc::new(registry);
    let sink = Arc::new(Discard::default());
    let chain: Vec<Box<dyn Transform>> = vec![Box::new(
        registry.transform("stamp", "bench", 0).expect("stage"),
    )];
    let pipeline = Pipeline::new(PipelineParts {
        name: "bench".into(),
        source_name: "endless".into(),
        source: weir::source::erase(Arc::new(Endless {
            batch,
            next: AtomicU64::new(0),
        })),
        chains: vec![chain],
        flow: weir::pipeline::FlowConfig::default(),
        default_route: NamedSink {
            name: "discard".into(),
            sink: Arc::clone(&sink) as Arc<dyn Sink>,
        },
        routes: BTreeMap::new(),
        dead_letter: None,
        batch: BatchConfig {
            max_events: batch,
            max_wait_ms: 10,
            max_in_flight: 3,
        },
        retry: RetryConfig::default(),
    });
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(pipeline.run(shutdown.clone()));

    // Warm up: compile both versions into the cache, let the pipeline run.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let outputs_before = sink.0.load(Ordering::Relaxed);
    let mut reload_times = Vec::with_capacity(reloads);
    for i in 0..reloads {
        let path = if i % 2 == 0 { STAMP_B } else { STAMP_A };
        let reg = Arc::clone(&registry);
        let t = Instant::now();
        let outcome = tokio::task::spawn_blocking(move || {
            reg.reload("stamp", Some(Path::new(path)), ReloadTrigger::Manual)
        })
        .await
        .expect("reload task")
        .expect("reload");
        reload_times.push(t.elapsed());
        let ReloadOutcome::Reloaded { hash, .. } = outcome else {
            panic!("not reloaded: {outcome:?}");
        };
        loop {
            let s = registry.plugin_snapshot("stamp").expect("stamp");
            if s.pipelines.iter().all(|p| p.hash == hash && !p.pending) {
                break;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        // A few batches on this version before the next reload.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let outputs = sink.0.load(Ordering::Relaxed) - outputs_before;
    shutdown.cancel();
    running.await.expect("pipeline task").expect("pipeline");

    let swaps = registry.swaps("stamp");
    println!(
        "reload pause: {} reloads under load, batches of {batch} events, {:.0} events/s through the pipeline meanwhile",
        swaps.len(),
        outputs as f64 / elapsed.as_secs_f64()
    );
    println!();
    println!("| interval | n | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|");
    stats(
        "batch boundary with a swap (last batch on old version -> first call on new)",
        swaps.iter().map(|s| s.gap).collect(),
    );
    stats(
        "batch boundary without a swap (the boundary just before)",
        swaps.iter().filter_map(|s| s.previous_gap).collect(),
    );
    stats(
        "the swap itself (taking the ready instance)",
        swaps.iter().map(|s| s.swap).collect(),
    );
    stats(
        "reload off the hot path (read, hash, load from cache, init, instantiate)",
        reload_times,
    );
}
