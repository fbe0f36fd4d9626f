//! Python plugins (sdk-python, built with componentize-py against the world
//! `typed` of weir:transform@0.2.0) through the real engine and binary:
//! the Python filter gives the Rust filter's outcomes on the same events, a
//! Python exception fails exactly its event, an endless loop is stopped by
//! the deadline and isolated, and the compiled-artifact cache makes the
//! second start of a ~18 MB component a cache hit.
//!
//! Compiling a Python component takes tens of seconds in a debug build, so
//! every test but the cache's own shares one compiled-plugin cache, kept in
//! the target's scratch directory across runs, and compiles under a lock:
//! the first load of each component compiles it, the others load it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use serde_json::{Value, json};
use weir::config::{PluginGrants, PluginLimits};
use weir::engine::{Engine, EngineOptions, PluginSpec, PluginVersion, Transform};
use weir::event::{Event, Header, Op, Outcome, Output};
use weir_tests::{plugins, weir_bin};

/// The compiled-plugin cache the tests of this module share.
fn shared_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-plugins-cache")
}

fn engine() -> Engine {
    Engine::new(EngineOptions {
        cache_dir: Some(shared_cache()),
    })
    .expect("engine")
}

/// Held while loading, so two tests never compile the same component at
/// once (on this module's shared cache, the second one then loads it).
static LOADING: Mutex<()> = Mutex::new(());

fn spec(name: &str, path: &str, config: &[(&str, &str)]) -> PluginSpec {
    PluginSpec {
        name: name.to_owned(),
        path: PathBuf::from(path),
        config: config
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        limits: PluginLimits::default(),
        grants: PluginGrants::default(),
    }
}

fn load(engine: &Engine, spec: &PluginSpec) -> Arc<PluginVersion> {
    let _loading = LOADING.lock().unwrap_or_else(PoisonError::into_inner);
    engine
        .load(spec)
        .unwrap_or_else(|e| panic!("cannot load {}: {e}", spec.name))
}

fn event(value: Value) -> Event {
    Event {
        value: Some(Bytes::from(value.to_string())),
        op: Op::Upsert,
        origin: "test/0/0".to_owned(),
        ..Event::default()
    }
}

fn numbered(i: usize, value: Value) -> Event {
    Event {
        key: Some(Bytes::from(format!("k{i}"))),
        origin: format!("test/0/{i}"),
        ..event(value)
    }
}

/// What a plugin that passes events through unchanged emits for `ev`.
fn passed(ev: &Event) -> Outcome {
    Outcome::Emit(vec![Output {
        route: None,
        key: ev.key.clone(),
        value: ev.value.clone(),
        op: ev.op,
        headers: ev.headers.clone(),
        ttl_seconds: None,
    }])
}

fn fail_reason(outcome: &Outcome) -> &str {
    match outcome {
        Outcome::Fail(reason) => reason,
        other => panic!("expected a failure, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// The filter in Python and in Rust.

/// The sample events both filters see: values of every shape the filter
/// tests (strings, numbers, null, nested, absent), keys, headers, ops, a
/// value that is not JSON and a tombstone.
fn filter_events() -> Vec<Event> {
    let mut events: Vec<Event> = [
        json!({"event_type": "purchase", "user": {"country": "FR"}}),
        json!({"event_type": "view", "user": {"country": "DE"}}),
        json!({"event_type": "heartbeat"}),
        json!({"event_type": 42, "user": {"country": null}}),
        json!({"event_type": "view", "user": {"country": "JP"}, "tags": ["a", "b"]}),
        json!({"event_type": true, "user": "ann"}),
        json!([1, 2, 3]),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, v)| numbered(i, v))
    .collect();
    events[0].headers = vec![Header::new("trace", "t-1")];
    events[0].op = Op::Insert;
    events[1].op = Op::Delete;
    events.push(Event {
        value: Some(Bytes::from_static(b"not json")),
        ..numbered(7, json!(null))
    });
    events.push(Event {
        value: None,
        op: Op::Delete,
        ..numbered(8, json!(null))
    });
    events
}

/// The configs the filter is run with: every condition, both actions and
/// every `on_invalid`.
const FILTER_CONFIGS: &[&[(&str, &str)]] = &[
    &[("field", "event_type"), ("equals", "heartbeat")],
    &[("field", "event_type"), ("equals", "42")],
    &[("field", "user.country"), ("not_equals", "FR")],
    &[
        ("field", "user.country"),
        ("exists", "true"),
        ("action", "keep"),
    ],
    &[("field", "user.country"), ("exists", "false")],
    &[
        ("field", "event_type"),
        ("in", "purchase, view"),
        ("action", "keep"),
    ],
    &[
        ("field", "event_type"),
        ("equals", "true"),
        ("on_invalid", "drop"),
    ],
    &[("field", "tags.1"), ("equals", "b"), ("on_invalid", "pass")],
];

/// The Rust filter's failure reasons carry serde_json's words for invalid
/// JSON, the Python filter's carry Python's: the same reason up to there.
fn same_outcome(rust: &Outcome, python: &Outcome) -> bool {
    const INVALID: &str = "filter: event value is not valid JSON: ";
    match (rust, python) {
        (Outcome::Fail(r), Outcome::Fail(p)) if r.starts_with(INVALID) => p.starts_with(INVALID),
        _ => rust == python,
    }
}

#[test]
fn the_python_filter_gives_the_rust_filters_outcomes() {
    let engine = engine();
    let events = filter_events();
    for config in FILTER_CONFIGS {
        let rust = load(&engine, &spec("filter", plugins::FILTER, config));
        let python = load(&engine, &spec("filter-py", plugins::FILTER_PY, config));
        let expected = rust.instantiate().unwrap().process_batch(&events).unwrap();
        let got = python
            .instantiate()
            .unwrap()
            .process_batch(&events)
            .unwrap();
        assert_eq!(got.len(), events.len(), "{config:?}");
        for (i, (r, p)) in expected.iter().zip(&got).enumerate() {
            assert!(
                same_outcome(r, p),
                "{config:?}, event {i}:\n  rust:   {r:?}\n  python: {p:?}"
            );
        }
    }
}

#[test]
fn the_python_filter_drops_matching_events_and_passes_the_rest_unchanged() {
    let version = load(
        &engine(),
        &spec(
            "filter-py",
            plugins::FILTER_PY,
            &[("field", "event_type"), ("equals", "heartbeat")],
        ),
    );
    let mut instance = version.instantiate().unwrap();
    let purchase = Event {
        key: Some(Bytes::from_static(b"order-1")),
        headers: vec![Header::new("trace", "t-1")],
        op: Op::Insert,
        ..event(json!({"event_type": "purchase", "amount": 3}))
    };
    let events = vec![
        event(json!({"event_type": "view"})),
        event(json!({"event_type": "heartbeat"})),
        purchase.clone(),
        Event {
            value: Some(Bytes::from_static(b"{")),
            ..event(json!(null))
        },
    ];
    let outcomes = instance.process_batch(&events).unwrap();
    assert_eq!(
        outcomes[..3],
        [passed(&events[0]), Outcome::Drop, passed(&purchase)]
    );
    assert_eq!(
        fail_reason(&outcomes[3]),
        "filter: event value is not valid JSON: Expecting property name enclosed in double \
         quotes: line 1 column 2 (char 1)"
    );
}

#[test]
fn the_python_filter_refuses_a_bad_config_at_load_with_the_rust_words() {
    let engine = engine();
    for (config, words) in [
        (
            &[("equals", "x")][..],
            "config `field`: required but not set",
        ),
        (
            &[("field", "a"), ("equals", "x"), ("in", "y")][..],
            "set only one of `equals`, `not_equals`, `exists`, `in`",
        ),
    ] {
        for path in [plugins::FILTER, plugins::FILTER_PY] {
            let _loading = LOADING.lock().unwrap_or_else(PoisonError::into_inner);
            let refused = engine
                .load(&spec("filter", path, config))
                .err()
                .unwrap_or_else(|| panic!("{path} accepts {config:?}"))
                .to_string();
            assert!(refused.contains(words), "{path}: {refused}");
        }
    }
}

/// `weir plugin test` prints the same lines for both filters.
#[test]
fn weir_plugin_test_runs_the_python_filter_like_the_rust_one() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.jsonl");
    std::fs::write(
        &input,
        "{\"event_type\":\"view\",\"user\":\"ann\"}\n\
         {\"event_type\":\"heartbeat\"}\n\
         {\"key\":\"order-7\",\"headers\":{\"h\":\"v\"},\"value\":{\"event_type\":\"purchase\"}}\n",
    )
    .unwrap();
    let run = |plugin: &str| {
        let out = Command::new(weir_bin())
            .current_dir(dir.path())
            .args(["plugin", "test", plugin, "--cache-dir"])
            .arg(shared_cache())
            .args(["--config", "field=event_type"])
            .args(["--config", "equals=heartbeat", "--input"])
            .arg(&input)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{plugin}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let python = run(plugins::FILTER_PY);
    assert_eq!(python.lines().count(), 3, "{python}");
    assert_eq!(python, run(plugins::FILTER));
}

// ---------------------------------------------------------------------------
// Containment.

#[test]
fn a_python_exception_on_one_event_of_1000_fails_exactly_that_event() {
    let version = load(
        &engine(),
        &spec("raise", plugins::HOSTILE_PY, &[("mode", "raise")]),
    );
    let mut instance = version.instantiate().unwrap();
    const POISON: usize = 537;
    let events: Vec<Event> = (0..1000)
        .map(|i| numbered(i, json!({"n": i, "poison": i == POISON})))
        .collect();
    let outcomes = instance.process_batch(&events).unwrap();
    assert_eq!(outcomes.len(), 1000);
    for (i, (ev, outcome)) in events.iter().zip(&outcomes).enumerate() {
        if i == POISON {
            let reason = fail_reason(outcome);
            assert!(
                reason.starts_with(
                    "process raised ValueError: poison event at test/0/537 (plugin.py:"
                ),
                "{reason}"
            );
        } else {
            assert_eq!(outcome, &passed(ev), "event {i}");
        }
    }
    // The SDK failed the event in place: no trap, no rebuild, no bisection.
    assert_eq!(instance.rebuilds(), 0);
}

#[test]
fn a_python_endless_loop_hits_the_deadline_and_only_its_event_fails() {
    let mut s = spec("loop", plugins::HOSTILE_PY, &[("mode", "loop")]);
    s.limits.deadline_ms = 500;
    let version = load(&engine(), &s);
    let mut instance = version.instantiate().unwrap();
    const LOOPER: usize = 5;
    let events: Vec<Event> = (0..8)
        .map(|i| numbered(i, json!({"n": i, "loop": i == LOOPER})))
        .collect();
    let outcomes = instance.process_batch(&events).unwrap();
    assert_eq!(outcomes.len(), 8);
    for (i, (ev, outcome)) in events.iter().zip(&outcomes).enumerate() {
        if i == LOOPER {
            assert_eq!(fail_reason(outcome), "deadline exceeded after 500 ms");
        } else {
            assert_eq!(outcome, &passed(ev), "event {i}");
        }
    }
    assert!(instance.rebuilds() > 0);
    // The rebuilt instance goes on normally.
    let more = vec![numbered(1, json!({"n": 1}))];
    assert_eq!(
        instance.process_batch(&more).unwrap(),
        vec![passed(&more[0])]
    );
}

// ---------------------------------------------------------------------------
// The reference transform (the bench's) in Python.

#[test]
fn the_python_reference_transform_matches_the_rust_function() {
    let version = load(&engine(), &spec("reference-py", plugins::REFERENCE_PY, &[]));
    let mut instance = version.instantiate().unwrap();
    let events: Vec<Event> = (0..10)
        .map(|i| Event {
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(weir_fixture_reference::sample_event(i))),
            timestamp_ms: 42,
            ..Event::default()
        })
        .collect();
    let outcomes = instance.process_batch(&events).unwrap();
    for (i, outcome) in outcomes.iter().enumerate() {
        let sample = weir_fixture_reference::sample_event(i as u64);
        match weir_fixture_reference::transform(&sample, 42).unwrap() {
            None => assert_eq!(outcome, &Outcome::Drop, "event {i}"),
            Some(routed) => {
                let Outcome::Emit(outputs) = outcome else {
                    panic!("event {i}: {outcome:?}");
                };
                let [o] = &outputs[..] else {
                    panic!("event {i}: {outputs:?}")
                };
                assert_eq!(o.route.as_deref(), Some(routed.route), "event {i}");
                assert_eq!(o.key, events[i].key, "event {i}");
                let got: Value = serde_json::from_slice(o.value.as_deref().unwrap()).unwrap();
                let want: Value = serde_json::from_slice(&routed.value).unwrap();
                assert_eq!(got, want, "event {i}");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The compiled-artifact cache.

fn artifacts(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect()
}

/// A restart (a new engine on the same cache directory) loads the compiled
/// component instead of compiling it again. The first load may itself be a
/// hit when an earlier run filled this module's cache: what is asserted is
/// that the artifact is written under the component's hash and that the
/// second start reads it.
#[test]
fn the_second_start_of_a_python_plugin_is_a_compile_cache_hit() {
    let s = spec(
        "filter-py",
        plugins::FILTER_PY,
        &[("field", "a"), ("exists", "true")],
    );
    let first = load(&engine(), &s);
    let written: Vec<PathBuf> = artifacts(&shared_cache())
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(first.hash()))
        })
        .collect();
    assert_eq!(written.len(), 1, "no artifact for {}", first.hash());
    let modified = std::fs::metadata(&written[0]).unwrap().modified().unwrap();

    let second = engine().load(&s).unwrap();
    assert!(second.loaded_from_cache());
    assert_eq!(second.hash(), first.hash());
    // Read, not rewritten.
    assert_eq!(
        std::fs::metadata(&written[0]).unwrap().modified().unwrap(),
        modified
    );
    let mut instance = second.instantiate().unwrap();
    assert_eq!(
        instance.process_batch(&[event(json!({"a": 1}))]).unwrap(),
        vec![Outcome::Drop]
    );
}

// ---------------------------------------------------------------------------
// Lookups from Python: the enrich fixture in Python and in Rust.

/// A store that answers from a map and counts its round trips.
struct CountingStore {
    rows: std::collections::HashMap<Vec<u8>, Vec<u8>>,
    calls: Arc<AtomicUsize>,
}

impl weir::lookup::store::Store for CountingStore {
    fn get_many(
        &self,
        keys: &[&[u8]],
        _timeout: std::time::Duration,
    ) -> Result<Vec<Option<Vec<u8>>>, weir::lookup::store::StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(keys.iter().map(|k| self.rows.get(*k).cloned()).collect())
    }
}

/// The store `users` (u1 and u2 have rows), without a cache, and its
/// round-trip counter.
fn users_store() -> (Arc<AtomicUsize>, weir::lookup::Granted) {
    let calls = Arc::new(AtomicUsize::new(0));
    let store = CountingStore {
        rows: [
            ("u1", r#"{"plan":"gold"}"#),
            ("u2", r#"{"plan":"free","seats":3}"#),
        ]
        .into_iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect(),
        calls: Arc::clone(&calls),
    };
    let config: weir::lookup::LookupConfig =
        toml::from_str("type = \"file\"\ncache = { max_entries = 0 }").expect("config");
    let lookup = weir::lookup::LookupStore::with_driver("users", Box::new(store), &config);
    (calls, weir::lookup::Granted::of([Arc::new(lookup)]))
}

#[test]
fn the_python_enrich_fixture_looks_things_up_like_the_rust_one_in_one_round_trip_a_batch() {
    let engine = engine();
    let events: Vec<Event> = (0..300)
        .map(|i| numbered(i, json!({"user": format!("u{}", i % 3), "n": i})))
        .chain([
            numbered(300, json!({"user": 2})),
            numbered(301, json!({"other": 1})),
        ])
        .collect();
    for prefetch in ["true", "false"] {
        let mut outcomes = Vec::new();
        let mut calls = Vec::new();
        for (name, path) in [
            ("enrich", plugins::ENRICH),
            ("enrich-py", plugins::ENRICH_PY),
        ] {
            let (store_calls, granted) = users_store();
            let mut spec = spec(name, path, &[("prefetch", prefetch)]);
            spec.grants.lookups = granted;
            let plugin = load(&engine, &spec);
            outcomes.push(
                plugin
                    .instantiate()
                    .unwrap()
                    .process_batch(&events)
                    .unwrap(),
            );
            calls.push(store_calls.load(Ordering::SeqCst));
        }
        let (rust, python) = (&outcomes[0], &outcomes[1]);
        for (i, (r, p)) in rust.iter().zip(python).enumerate() {
            assert!(
                same_outcome(r, p),
                "prefetch={prefetch}, event {i}:\n  rust:   {r:?}\n  python: {p:?}"
            );
        }
        let Outcome::Emit(out) = &python[1] else {
            panic!("{:?}", python[1])
        };
        let value: Value = serde_json::from_slice(out[0].value.as_deref().unwrap()).unwrap();
        assert_eq!(value["found"], json!({"plan": "gold"}));
        let Outcome::Emit(out) = &python[0] else {
            panic!("{:?}", python[0])
        };
        let value: Value = serde_json::from_slice(out[0].value.as_deref().unwrap()).unwrap();
        assert_eq!(value["found"], Value::Null, "u0 has no row");
        if prefetch == "true" {
            assert_eq!(
                calls,
                [1, 1],
                "one get-many for the batch, in both languages"
            );
        } else {
            assert_eq!(calls[0], calls[1], "as many round trips in both languages");
            assert!(calls[1] >= 300, "one per event: {calls:?}");
        }
    }
}

#[test]
fn a_python_plugin_that_looks_things_up_without_a_grant_is_refused_at_load() {
    let engine = engine();
    let _loading = LOADING.lock().unwrap_or_else(PoisonError::into_inner);
    let Err(err) = engine.load(&spec("enrich-py", plugins::ENRICH_PY, &[])) else {
        panic!("a plugin importing lookup with no store granted must be refused");
    };
    let text = err.to_string();
    assert!(
        text.contains("enrich-py") && text.contains("lookup"),
        "{text}"
    );
}
