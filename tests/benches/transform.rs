//! Benchmark: the reference transform natively and through the engine.
//!
//! `cargo bench -p weir-tests --bench transform`
//!
//! The reference transform (`plugins/fixtures/reference`) parses ~300-byte
//! JSON events, drops one in five, adds a field, removes one, serializes
//! and picks a route. It runs twice per batch size:
//! - native: the same Rust code compiled for this machine, through the
//!   SDK's batch loop (`weir_sdk::testing::Harness`): encode the batch,
//!   decode it, call `process` per event, encode the outcomes, decode and
//!   validate them — the work the host and the plugin do around the
//!   transform, minus Wasm;
//! - wasm: the component through `weir::engine`, with the production
//!   limits on (64 MiB memory cap, 1000 ms deadline by epoch interruption);
//! - typed: the same logic built against the typed world
//!   (`plugins/fixtures/reference-typed`: `list<event>` in, `list<outcome>`
//!   out, no codec), through the same engine and limits.
//!
//! Then the reference transform in Python (`plugins/fixtures-py/reference`,
//! built with componentize-py against the typed world) against the same
//! native path, alternating in the same way, and the start-up cost of the
//! Python and the Rust component: compiling, loading from the
//! compiled-plugin cache, and the memory an instance holds.
//!
//! Environment: `WEIR_BENCH_EVENTS` (events per run, default 1,000,000),
//! `WEIR_BENCH_PYTHON_EVENTS` (events per run of the Python pass, default
//! 100,000; 0 skips it),
//! `WEIR_BENCH_ROUNDS` (runs per configuration, default 3; the round with
//! the lowest total time is reported), `WEIR_BENCH_BATCHES` (comma-separated batch sizes, default
//! `1,64,256,1024`).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use weir::config::{PluginGrants, PluginLimits};
use weir::engine::{Engine, EngineOptions, PluginSpec, Transform};
use weir::event::{Event, Outcome};
use weir_fixture_reference::{Reference, sample_event};
use weir_sdk::testing::Harness;

/// The reference transform compiled natively, behind the same trait the
/// pipeline uses for Wasm plugins.
struct Native(Harness<Reference>);

impl Transform for Native {
    fn name(&self) -> &str {
        "reference-native"
    }

    fn process_batch(
        &mut self,
        events: &[Event],
    ) -> Result<Vec<Outcome>, weir::engine::PluginError> {
        Ok(self.0.run(events))
    }
}

/// Distinct events the runs cycle through (a multiple of every batch size).
const POOL: usize = 4096;
/// Slices a run is cut into, alternating native and wasm.
const SLICES: usize = 20;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Run `total` events through `transform` in batches of `batch`; returns
/// the elapsed time and the number of outputs (to check both paths agree).
fn run(
    transform: &mut dyn Transform,
    pool: &[Event],
    batch: usize,
    total: usize,
) -> (Duration, usize) {
    let mut outputs = 0;
    let mut done = 0;
    let mut at = 0;
    let started = Instant::now();
    while done < total {
        let events = &pool[at..at + batch];
        at = (at + batch) % pool.len();
        let outcomes = transform
            .process_batch(events)
            .unwrap_or_else(|e| panic!("{}: {e}", transform.name()));
        for o in &outcomes {
            match o {
                Outcome::Emit(out) => outputs += out.len(),
                Outcome::Drop => {}
                Outcome::Fail(reason) => panic!("{}: event failed: {reason}", transform.name()),
            }
        }
        black_box(outcomes);
        done += batch;
    }
    (started.elapsed(), outputs)
}

fn main() {
    let total: usize = env_or("WEIR_BENCH_EVENTS", 1_000_000);
    let rounds: usize = env_or("WEIR_BENCH_ROUNDS", 3).max(1);
    let batches: Vec<usize> = std::env::var("WEIR_BENCH_BATCHES")
        .unwrap_or_else(|_| "1,64,256,1024".to_owned())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .filter(|&b| b > 0 && POOL.is_multiple_of(b))
        .collect();

    let pool: Vec<Event> = (0..POOL as u64)
        .map(|i| Event {
            key: Some(Bytes::from(format!("evt-{i:012}"))),
            value: Some(Bytes::from(sample_event(i))),
            timestamp_ms: 1_700_000_000_000 + i as i64,
            origin: format!("bench/0/{i}"),
            ..Event::default()
        })
        .collect();
    let mean_size = pool
        .iter()
        .map(|e| e.value.as_ref().map_or(0, Bytes::len))
        .sum::<usize>()
        / pool.len();

    let engine = Engine::new(EngineOptions { cache_dir: None }).expect("engine");
    let spec = PluginSpec {
        name: "reference".to_owned(),
        path: PathBuf::from(weir_tests::plugins::REFERENCE),
        config: Vec::new(),
        limits: PluginLimits::default(),
        grants: PluginGrants::default(),
    };
    let version = engine.load(&spec).expect("load the reference plugin");
    let mut wasm = version.instantiate().expect("instantiate");
    let typed_spec = PluginSpec {
        name: "reference-typed".to_owned(),
        path: PathBuf::from(weir_tests::plugins::REFERENCE_TYPED),
        ..spec.clone()
    };
    let typed_version = engine
        .load(&typed_spec)
        .expect("load the typed reference plugin");
    let mut typed = typed_version.instantiate().expect("instantiate typed");
    let mut native =
        Native(Harness::<Reference>::new(Vec::<(String, String)>::new()).expect("native init"));

    println!(
        "reference transform, {total} events per run, mean value {mean_size} bytes, best of {rounds} rounds, native, wasm and typed alternating in {SLICES} slices; limits: {} MiB, {} ms deadline",
        spec.limits.memory_mib, spec.limits.deadline_ms
    );
    println!(
        "{:>6} {:>14} {:>14} {:>10} {:>10} {:>7} {:>14} {:>10} {:>7}",
        "batch",
        "native ev/s",
        "wasm ev/s",
        "native ns",
        "wasm ns",
        "ratio",
        "typed ev/s",
        "typed ns",
        "t.ratio"
    );
    for &batch in &batches {
        // Warm up both paths (allocator pools, caches, branch predictors).
        run(&mut native, &pool, batch, POOL.min(total));
        run(&mut wasm, &pool, batch, POOL.min(total));
        run(&mut typed, &pool, batch, POOL.min(total));
        // The machine is shared: alternate the two paths in short slices so
        // both see the same background load, and keep the best round.
        let slice = (total / SLICES).div_ceil(batch) * batch;
        let mut best: Option<(Duration, Duration, Duration)> = None;
        for _ in 0..rounds {
            let (mut n_time, mut w_time, mut t_time) =
                (Duration::ZERO, Duration::ZERO, Duration::ZERO);
            for _ in 0..SLICES {
                let (n, n_out) = run(&mut native, &pool, batch, slice);
                let (w, w_out) = run(&mut wasm, &pool, batch, slice);
                let (t, t_out) = run(&mut typed, &pool, batch, slice);
                assert_eq!(n_out, w_out, "native and wasm disagree");
                assert_eq!(n_out, t_out, "native and typed disagree");
                n_time += n;
                w_time += w;
                t_time += t;
            }
            if best.is_none_or(|(bn, bw, bt)| n_time + w_time + t_time < bn + bw + bt) {
                best = Some((n_time, w_time, t_time));
            }
        }
        let (n_time, w_time, t_time) = best.unwrap_or_default();
        let done = slice * SLICES;
        let native_rate = done as f64 / n_time.as_secs_f64();
        let wasm_rate = done as f64 / w_time.as_secs_f64();
        let typed_rate = done as f64 / t_time.as_secs_f64();
        println!(
            "{batch:>6} {native_rate:>14.0} {wasm_rate:>14.0} {:>10.0} {:>10.0} {:>7.3} {typed_rate:>14.0} {:>10.0} {:>7.3}",
            1e9 / native_rate,
            1e9 / wasm_rate,
            wasm_rate / native_rate,
            1e9 / typed_rate,
            typed_rate / native_rate
        );
    }
    python_typed(&pool, &batches, rounds, &mut native);
}

/// The reference transform in Python through the typed world against
/// native Rust, then the start-up cost of the Python and Rust components.
fn python_typed(pool: &[Event], batches: &[usize], rounds: usize, native: &mut Native) {
    let total: usize = env_or("WEIR_BENCH_PYTHON_EVENTS", 100_000);
    if total == 0 {
        return;
    }
    let spec = |name: &str, path: &str| PluginSpec {
        name: name.to_owned(),
        path: PathBuf::from(path),
        config: Vec::new(),
        limits: PluginLimits::default(),
        grants: PluginGrants::default(),
    };
    let python = spec("reference-py", weir_tests::plugins::REFERENCE_PY);
    let engine = Engine::new(EngineOptions { cache_dir: None }).expect("engine");
    let version = engine
        .load(&python)
        .expect("load the Python reference plugin");
    let mut wasm = version.instantiate().expect("instantiate");

    println!();
    println!(
        "reference transform in Python (typed world, componentize-py), {total} events per run, best of {rounds} rounds, alternating with native in {SLICES} slices"
    );
    println!(
        "{:>6} {:>14} {:>14} {:>10} {:>10} {:>7}",
        "batch", "native ev/s", "python ev/s", "native ns", "python ns", "ratio"
    );
    for &batch in batches {
        run(native, pool, batch, POOL.min(total));
        run(&mut wasm, pool, batch, POOL.min(total));
        let slice = (total / SLICES).div_ceil(batch) * batch;
        let mut best: Option<(Duration, Duration)> = None;
        for _ in 0..rounds {
            let (mut n_time, mut p_time) = (Duration::ZERO, Duration::ZERO);
            for _ in 0..SLICES {
                let (n, n_out) = run(native, pool, batch, slice);
                let (p, p_out) = run(&mut wasm, pool, batch, slice);
                assert_eq!(n_out, p_out, "native and python disagree");
                n_time += n;
                p_time += p;
            }
            if best.is_none_or(|(bn, bp)| n_time + p_time < bn + bp) {
                best = Some((n_time, p_time));
            }
        }
        let (n_time, p_time) = best.unwrap_or_default();
        let done = slice * SLICES;
        let native_rate = done as f64 / n_time.as_secs_f64();
        let python_rate = done as f64 / p_time.as_secs_f64();
        println!(
            "{batch:>6} {native_rate:>14.0} {python_rate:>14.0} {:>10.0} {:>10.0} {:>7.3}",
            1e9 / native_rate,
            1e9 / python_rate,
            python_rate / native_rate
        );
    }

    println!();
    println!(
        "start-up: compile = first load into an empty compiled-plugin cache, cached = load by a new engine from that cache (both include one instance and its init), instance = one more instance; memory = what an instance holds against its cap after a batch of 64"
    );
    println!(
        "{:<14} {:>10} {:>11} {:>10} {:>11} {:>12}",
        "component", "size MB", "compile ms", "cached ms", "instance ms", "memory MiB"
    );
    for s in [python, spec("reference", weir_tests::plugins::REFERENCE)] {
        let size = std::fs::metadata(&s.path).map_or(0, |m| m.len());
        let dir = tempfile::tempdir().expect("a cache directory");
        let options = || EngineOptions {
            cache_dir: Some(dir.path().to_owned()),
        };
        let cold = Engine::new(options()).expect("engine");
        let started = Instant::now();
        let first = cold.load(&s).expect("load");
        let compile = started.elapsed();
        assert!(!first.loaded_from_cache());
        let warm = Engine::new(options()).expect("engine");
        let started = Instant::now();
        let cached = warm.load(&s).expect("load from the cache");
        let cached_time = started.elapsed();
        assert!(cached.loaded_from_cache(), "{}: not a cache hit", s.name);
        // The first instance is the spare made by `load`; time a second.
        let _spare = cached.instantiate().expect("instantiate");
        let started = Instant::now();
        let mut instance = cached.instantiate().expect("instantiate");
        let instance_time = started.elapsed();
        instance.process_batch(&pool[..64]).expect("a batch");
        println!(
            "{:<14} {:>10.1} {:>11.0} {:>10.0} {:>11.1} {:>12.1}",
            s.name,
            size as f64 / 1e6,
            compile.as_secs_f64() * 1e3,
            cached_time.as_secs_f64() * 1e3,
            instance_time.as_secs_f64() * 1e3,
            instance.memory_bytes() as f64 / (1024.0 * 1024.0)
        );
    }
}
