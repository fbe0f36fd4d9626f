//! Benchmark: a JavaScript plugin (sdk-js, typed world of
//! weir:transform@0.2.0) against the native Rust reference transform.
//!
//! `cargo bench -p weir-tests --bench js_component` (after scripts/setup)
//!
//! The plugin is the reference transform written in JavaScript
//! (`plugins/js-fixtures/reference.js`), the same logic as
//! `plugins/fixtures/reference`. Reported:
//! - build: `weir-js-build --no-cache` (esbuild + componentize-js), and the
//!   size of the component;
//! - compile: the engine compiling the component with no cache (cranelift);
//! - cached start: a new engine loading it from a warm compiled-plugin
//!   cache, then making an instance and running `init`;
//! - memory per instance: what one instance holds against its memory cap
//!   (every linear memory and table), new and after 1000-event batches;
//! - events/s of the JS component through the engine and of the native
//!   Rust transform (`weir_sdk::testing::Harness`), alternating in slices
//!   of the same run, per batch size, and their ratio.
//!
//! Environment: `WEIR_BENCH_EVENTS` (events per batch size, default
//! 100,000), `WEIR_BENCH_BATCHES` (default `1,64,1024`).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use weir::config::{PluginGrants, PluginLimits};
use weir::engine::{Engine, EngineOptions, PluginSpec, Transform};
use weir::event::{Event, Outcome};
use weir_fixture_reference::{Reference, sample_event};
use weir_sdk::testing::Harness;
use weir_tests::js;

/// Distinct events the runs cycle through (a multiple of every batch size).
const POOL: usize = 4096;
/// Slices a run is cut into, alternating native and JS.
const SLICES: usize = 10;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Run `total` events through `process` in batches of `batch`; returns the
/// elapsed time and the number of outputs (to check both sides agree).
fn run(
    process: &mut dyn FnMut(&[Event]) -> Vec<Outcome>,
    pool: &[Event],
    batch: usize,
    total: usize,
) -> (Duration, usize) {
    let (mut outputs, mut done, mut at) = (0, 0, 0);
    let started = Instant::now();
    while done < total {
        let outcomes = process(&pool[at..at + batch]);
        at = (at + batch) % pool.len();
        for o in &outcomes {
            match o {
                Outcome::Emit(out) => outputs += out.len(),
                Outcome::Drop => {}
                Outcome::Fail(reason) => panic!("event failed: {reason}"),
            }
        }
        black_box(outcomes);
        done += batch;
    }
    (started.elapsed(), outputs)
}

fn spec(path: &Path) -> PluginSpec {
    PluginSpec {
        name: "reference-js".to_owned(),
        path: path.to_owned(),
        config: Vec::new(),
        limits: PluginLimits::default(),
        grants: PluginGrants::default(),
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    let total: usize = env_or("WEIR_BENCH_EVENTS", 100_000);
    let batches: Vec<usize> = std::env::var("WEIR_BENCH_BATCHES")
        .unwrap_or_else(|_| "1,64,1024".to_owned())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .filter(|&b| b > 0 && POOL.is_multiple_of(b))
        .collect();

    // Build: the project's build command with its cache bypassed.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-reference-js.wasm");
    let started = Instant::now();
    let status = Command::new(root.join("scripts/node"))
        .current_dir(root)
        .args([
            "sdk-js/bin/weir-js-build.mjs",
            js::REFERENCE_JS,
            "--no-cache",
            "-o",
        ])
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run scripts/node (run scripts/setup first)");
    assert!(status.success(), "building {} failed", js::REFERENCE_JS);
    let build = started.elapsed();
    let size = std::fs::metadata(&out).expect("component").len();

    // Compile with no cache, then start from a warm cache.
    let started = Instant::now();
    let cold = Engine::new(EngineOptions { cache_dir: None }).expect("engine");
    cold.load(&spec(&out))
        .expect("load the JS reference plugin");
    let compile = started.elapsed();
    let cache = tempfile::tempdir().expect("temp dir");
    let options = || EngineOptions {
        cache_dir: Some(cache.path().to_owned()),
    };
    Engine::new(options())
        .unwrap()
        .load(&spec(&out))
        .expect("fill the cache");
    let started = Instant::now();
    let warm = Engine::new(options()).unwrap();
    let version = warm.load(&spec(&out)).expect("load from the cache");
    assert!(
        version.loaded_from_cache(),
        "the second start missed the cache"
    );
    let mut instance = version.instantiate().expect("instantiate");
    let cached_start = started.elapsed();
    let memory_new = instance.memory_bytes();

    let pool: Vec<Event> = (0..POOL as u64)
        .map(|i| Event {
            key: Some(Bytes::from(format!("evt-{i:012}"))),
            value: Some(Bytes::from(sample_event(i))),
            timestamp_ms: 1_700_000_000_000 + i as i64,
            origin: format!("bench/0/{i}"),
            ..Event::default()
        })
        .collect();
    let mut native = Harness::<Reference>::new(Vec::<(String, String)>::new()).expect("native");

    println!(
        "JS component (plugins/js-fixtures/reference.js): {:.1} MiB; build {:.1} s (weir-js-build --no-cache), engine compile {:.1} s, cached start {:.0} ms (load from cache + instantiate + init)",
        mib(size),
        build.as_secs_f64(),
        compile.as_secs_f64(),
        cached_start.as_secs_f64() * 1000.0
    );
    println!(
        "{:>6} {:>14} {:>14} {:>10} {:>10} {:>7}",
        "batch", "native ev/s", "js ev/s", "native ns", "js ns", "ratio"
    );
    for &batch in &batches {
        let mut n = |evs: &[Event]| native.run(evs);
        let mut j = |evs: &[Event]| instance.process_batch(evs).expect("js process");
        run(&mut n, &pool, batch, POOL.min(total));
        run(&mut j, &pool, batch, POOL.min(total));
        let slice = (total / SLICES).div_ceil(batch) * batch;
        let (mut n_time, mut j_time) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..SLICES {
            let (nt, n_out) = run(&mut n, &pool, batch, slice);
            let (jt, j_out) = run(&mut j, &pool, batch, slice);
            assert_eq!(n_out, j_out, "native and JS disagree");
            n_time += nt;
            j_time += jt;
        }
        let done = (slice * SLICES) as f64;
        let (nr, jr) = (done / n_time.as_secs_f64(), done / j_time.as_secs_f64());
        println!(
            "{batch:>6} {nr:>14.0} {jr:>14.0} {:>10.0} {:>10.0} {:>7.3}",
            1e9 / nr,
            1e9 / jr,
            jr / nr
        );
    }
    let mut j = |evs: &[Event]| instance.process_batch(evs).expect("js process");
    run(&mut j, &pool, 1024, POOL);
    println!(
        "memory per instance: {:.1} MiB new, {:.1} MiB after 1024-event batches (limit {} MiB)",
        mib(memory_new),
        mib(instance.memory_bytes()),
        PluginLimits::default().memory_mib
    );
}
