//! JavaScript/TypeScript plugins (sdk-js, typed world) through the real
//! engine: the TypeScript router gives the Rust router's outcomes on the
//! same events, an exception costs exactly its event, an endless loop hits
//! the deadline and is contained, and a restart loads the compiled
//! component from the cache.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde_json::{Value, json};
use weir::config::{PluginGrants, PluginLimits};
use weir::engine::{Engine, EngineOptions, PluginErrorKind, PluginSpec, PluginVersion, Transform};
use weir::event::{Event, Header, Op, Outcome, Output};
use weir_tests::{js, plugins};

/// One engine for these tests, with a compiled-plugin cache kept in the
/// build's output directory: a JS component is ~12 MB of Wasm that takes
/// tens of seconds to compile, so each is compiled once per machine, not
/// once per test (the cache test below uses a cache of its own).
fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let cache_dir = PathBuf::from(env!("OUT_DIR")).join("js-plugins-compiled");
        Engine::new(EngineOptions {
            cache_dir: Some(cache_dir),
        })
        .expect("engine")
    })
}

fn spec(name: &str, path: impl Into<PathBuf>, config: &[(&str, &str)]) -> PluginSpec {
    PluginSpec {
        name: name.to_owned(),
        path: path.into(),
        config: config
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        limits: PluginLimits::default(),
        grants: PluginGrants::default(),
    }
}

fn load(engine: &Engine, spec: &PluginSpec) -> Arc<PluginVersion> {
    engine
        .load(spec)
        .unwrap_or_else(|e| panic!("cannot load {}: {e}", spec.name))
}

fn event(value: Value) -> Event {
    raw(Some(value.to_string().as_bytes()))
}

fn raw(value: Option<&[u8]>) -> Event {
    Event {
        value: value.map(Bytes::copy_from_slice),
        op: Op::Insert,
        origin: "test/0@0".to_owned(),
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

fn routed(ev: &Event, routes: &[&str]) -> Outcome {
    Outcome::Emit(
        routes
            .iter()
            .map(|r| Output {
                route: Some((*r).to_owned()),
                key: ev.key.clone(),
                value: ev.value.clone(),
                op: ev.op,
                headers: ev.headers.clone(),
                ttl_seconds: None,
            })
            .collect(),
    )
}

/// The parser's own words after this prefix differ between serde_json and
/// JavaScript's `JSON.parse`; the rest of the reason must match exactly.
const INVALID_JSON: &str = "router: event value is not valid JSON: ";

/// One router config and its sample events, with what each must become.
struct Case {
    config: &'static [(&'static str, &'static str)],
    events: Vec<Event>,
    expected: Vec<Outcome>,
}

fn router_cases() -> Vec<Case> {
    let purchase = Event {
        key: Some(Bytes::from_static(b"order-1")),
        op: Op::Upsert,
        headers: vec![Header {
            key: "source".to_owned(),
            value: Bytes::from_static(b"checkout"),
        }],
        timestamp_ms: 1_700_000_000_000,
        ..event(json!({"event_type": "purchase", "n": 1, "z": {"b": 1, "a": 2}}))
    };
    let deleted = Event {
        key: Some(Bytes::from_static(b"gone")),
        op: Op::Delete,
        ..event(json!({"event_type": "view"}))
    };
    let a = [
        purchase,
        deleted,
        event(json!({"event_type": "click"})),
        event(json!({"other": 1})),
        event(json!({"event_type": "a,b:c"})),
    ];
    let b = [
        event(json!({"user": {"tier": 2}})),
        event(json!({"user": {"tier": true}})),
        event(json!({"user": {"tier": "x"}})),
        event(json!({})),
    ];
    let c = [
        event(json!({"t": "x"})),
        event(json!({"t": "y"})),
        raw(Some(b"not json")),
        raw(None),
    ];
    let d = [raw(Some(b"{\"t\": ")), raw(None), event(json!({"t": 1}))];
    let fail = |s: &str| Outcome::Fail(s.to_owned());
    vec![
        Case {
            config: &[
                ("field", "event_type"),
                ("routes", "purchase:mongo+audit, view:redis"),
                ("route.a,b:c", "odd"),
                ("default", "archive"),
            ],
            expected: vec![
                routed(&a[0], &["mongo", "audit"]),
                routed(&a[1], &["redis"]),
                routed(&a[2], &["archive"]),
                routed(&a[3], &["archive"]),
                routed(&a[4], &["odd"]),
            ],
            events: a.to_vec(),
        },
        Case {
            config: &[
                ("field", "user.tier"),
                ("routes", "1:low,2:high,true:flag"),
                ("unmatched", "fail"),
            ],
            expected: vec![
                routed(&b[0], &["high"]),
                routed(&b[1], &["flag"]),
                fail("router: no route for user.tier=\"x\""),
                fail("router: no field user.tier to route by"),
            ],
            events: b.to_vec(),
        },
        Case {
            config: &[
                ("field", "t"),
                ("routes", "x:sink"),
                ("unmatched", "drop"),
                ("on_invalid", "pass"),
            ],
            expected: vec![
                routed(&c[0], &["sink"]),
                Outcome::Drop,
                passed(&c[2]),
                passed(&c[3]),
            ],
            events: c.to_vec(),
        },
        Case {
            config: &[("field", "t"), ("default", "a")],
            expected: vec![
                fail(INVALID_JSON),
                fail("router: event has no value"),
                routed(&d[2], &["a"]),
            ],
            events: d.to_vec(),
        },
    ]
}

fn assert_outcome(got: &Outcome, expected: &Outcome, what: &str) {
    match (got, expected) {
        (Outcome::Fail(g), Outcome::Fail(e)) if e == INVALID_JSON => {
            assert!(
                g.starts_with(INVALID_JSON) && g.len() > e.len(),
                "{what}: {g:?}"
            );
        }
        _ => assert_eq!(got, expected, "{what}"),
    }
}

#[test]
fn the_typescript_router_gives_the_rust_routers_outcomes() {
    let engine = engine();
    let ts_path = js::component(js::ROUTER_TS);
    for (n, case) in router_cases().into_iter().enumerate() {
        let rust = load(engine, &spec("router", plugins::ROUTER, case.config));
        let ts = load(engine, &spec("router-ts", &ts_path, case.config));
        let from_rust = rust
            .instantiate()
            .unwrap()
            .process_batch(&case.events)
            .unwrap();
        let from_ts = ts
            .instantiate()
            .unwrap()
            .process_batch(&case.events)
            .unwrap();
        assert_eq!(from_ts.len(), case.events.len());
        for (i, expected) in case.expected.iter().enumerate() {
            assert_outcome(
                &from_rust[i],
                expected,
                &format!("rust, case {n}, event {i}"),
            );
            assert_outcome(
                &from_ts[i],
                expected,
                &format!("typescript, case {n}, event {i}"),
            );
        }
    }
}

#[test]
fn the_typescript_router_refuses_the_configs_the_rust_router_refuses() {
    let engine = engine();
    let ts_path = js::component(js::ROUTER_TS);
    let bad: &[&[(&str, &str)]] = &[
        &[("field", "t")],
        &[("field", "t"), ("routes", "purchase")],
        &[("field", "t"), ("routes", "a:x+")],
        &[("field", "t"), ("routes", "a:x,a:y")],
        &[("routes", "a:x")],
        &[("field", "t"), ("default", "a"), ("feild", "x")],
    ];
    for config in bad {
        let refusal = |path: PathBuf| match engine.load(&spec("router", path, config)) {
            Ok(_) => panic!("{config:?} was accepted"),
            Err(e) => match e.kind {
                PluginErrorKind::InitRefused(message) => message,
                other => panic!("{config:?}: not an init refusal: {other}"),
            },
        };
        let rust = refusal(PathBuf::from(plugins::ROUTER));
        assert_eq!(refusal(ts_path.clone()), rust, "{config:?}");
    }
}

#[test]
fn a_js_exception_on_one_event_of_1000_fails_exactly_that_event() {
    let engine = engine();
    let version = load(
        engine,
        &spec("throw", js::component(js::THROW_ON_EVENT), &[]),
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
            assert_eq!(
                outcome,
                &Outcome::Fail(format!("TypeError: poisoned event at test/0/{POISON}")),
            );
        } else {
            assert_eq!(outcome, &passed(ev), "event {i}");
        }
    }
    // The SDK caught the exception: no trap, no bisection, the same instance.
    assert_eq!(instance.rebuilds(), 0);
    let more = vec![numbered(1, json!({"n": 1}))];
    assert_eq!(
        instance.process_batch(&more).unwrap(),
        vec![passed(&more[0])]
    );
}

#[test]
fn a_js_endless_loop_hits_the_deadline_and_only_its_event_fails() {
    let engine = engine();
    let mut s = spec("loop", js::component(js::ENDLESS_LOOP), &[]);
    s.limits.deadline_ms = 300;
    let version = load(engine, &s);
    let mut instance = version.instantiate().unwrap();
    const LOOPER: usize = 5;
    let events: Vec<Event> = (0..8)
        .map(|i| numbered(i, json!({"n": i, "loop": i == LOOPER})))
        .collect();
    let outcomes = instance.process_batch(&events).unwrap();
    for (i, (ev, outcome)) in events.iter().zip(&outcomes).enumerate() {
        if i == LOOPER {
            assert_eq!(
                outcome,
                &Outcome::Fail("deadline exceeded after 300 ms".to_owned())
            );
        } else {
            assert_eq!(outcome, &passed(ev), "event {i}");
        }
    }
    assert!(instance.rebuilds() > 0, "the looping instance was replaced");
    let more = vec![numbered(1, json!({"n": 1}))];
    assert_eq!(
        instance.process_batch(&more).unwrap(),
        vec![passed(&more[0])]
    );
}

#[test]
fn a_js_component_is_loaded_from_the_compile_cache_on_the_second_start() {
    let dir = tempfile::tempdir().unwrap();
    let options = || EngineOptions {
        cache_dir: Some(dir.path().to_owned()),
    };
    let s = spec(
        "router-ts",
        js::component(js::ROUTER_TS),
        &[("field", "t"), ("routes", "x:sink")],
    );
    let first = load(&Engine::new(options()).unwrap(), &s);
    assert!(!first.loaded_from_cache());
    // A new engine (a restart) loads the compiled code instead of compiling.
    let second = load(&Engine::new(options()).unwrap(), &s);
    assert!(second.loaded_from_cache());
    assert_eq!(first.hash(), second.hash());
    let ev = event(json!({"t": "x"}));
    assert_eq!(
        second
            .instantiate()
            .unwrap()
            .process_batch(std::slice::from_ref(&ev))
            .unwrap(),
        vec![routed(&ev, &["sink"])]
    );
}
