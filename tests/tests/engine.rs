//! The engine against real Wasm components: the example plugins with their
//! exact outcomes, the hostile fixtures (the host stays up, the poison
//! event fails with its cause, the others go through), files that are not
//! plugins, and the compiled-plugin cache.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Value, json};
use weir::config::{PluginGrants, PluginLimits};
use weir::engine::{Engine, EngineOptions, PluginErrorKind, PluginSpec, PluginVersion, Transform};
use weir::event::{Event, Header, Op, Outcome, Output};
use weir_tests::plugins;

fn engine() -> Engine {
    Engine::new(EngineOptions { cache_dir: None }).expect("engine")
}

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

/// The one output of an emit outcome.
fn single_output(outcome: &Outcome) -> &Output {
    match outcome {
        Outcome::Emit(outputs) if outputs.len() == 1 => &outputs[0],
        other => panic!("expected one output, got {other:?}"),
    }
}

fn json_of(output: &Output) -> Value {
    serde_json::from_slice(output.value.as_deref().expect("output has a value"))
        .expect("output value is JSON")
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

// ---------------------------------------------------------------------------
// Example plugins

#[test]
fn filter_drops_matching_events_and_passes_the_rest_unchanged() {
    let engine = engine();
    let version = load(
        &engine,
        &spec(
            "filter",
            plugins::FILTER,
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
    ];
    let outcomes = instance.process_batch(&events).unwrap();
    assert_eq!(
        outcomes,
        vec![passed(&events[0]), Outcome::Drop, passed(&purchase)]
    );
}

#[test]
fn filter_keep_in_list() {
    let engine = engine();
    let version = load(
        &engine,
        &spec(
            "filter",
            plugins::FILTER,
            &[
                ("field", "user.country"),
                ("in", "FR,DE"),
                ("action", "keep"),
            ],
        ),
    );
    let mut instance = version.instantiate().unwrap();
    let events: Vec<Event> = ["FR", "US", "DE", "JP"]
        .iter()
        .map(|c| event(json!({"user": {"country": c}})))
        .collect();
    let outcomes = instance.process_batch(&events).unwrap();
    assert_eq!(
        outcomes,
        vec![
            passed(&events[0]),
            Outcome::Drop,
            passed(&events[2]),
            Outcome::Drop
        ]
    );
}

#[test]
fn transform_renames_removes_masks_and_adds() {
    let engine = engine();
    let version = load(
        &engine,
        &spec(
            "transform",
            plugins::TRANSFORM,
            &[
                ("rename.userId", "user.id"),
                ("remove", "debug"),
                ("mask.email", "redact"),
                ("add.pipeline", "orders"),
                ("add.at", "$timestamp_ms"),
            ],
        ),
    );
    let mut instance = version.instantiate().unwrap();
    let ev = Event {
        key: Some(Bytes::from_static(b"u-7")),
        timestamp_ms: 1_700_000_000_123,
        ..event(json!({
            "userId": 7,
            "email": "ann@example.com",
            "debug": {"trace": "x"},
            "amount": 12.5
        }))
    };
    let outcomes = instance.process_batch(std::slice::from_ref(&ev)).unwrap();
    let output = single_output(&outcomes[0]);
    assert_eq!(
        json_of(output),
        json!({
            "user": {"id": 7},
            "email": "[redacted]",
            "amount": 12.5,
            "pipeline": "orders",
            "at": 1_700_000_000_123_i64
        })
    );
    assert_eq!(output.key, ev.key);
    assert_eq!(output.route, None);
    assert_eq!(output.op, Op::Upsert);
}

#[test]
fn router_routes_by_field_and_fans_out() {
    let engine = engine();
    let version = load(
        &engine,
        &spec(
            "router",
            plugins::ROUTER,
            &[
                ("field", "event_type"),
                ("routes", "purchase:mongo+audit,view:redis"),
                ("default", "archive"),
            ],
        ),
    );
    let mut instance = version.instantiate().unwrap();
    let events: Vec<Event> = ["purchase", "view", "click"]
        .iter()
        .map(|t| event(json!({"event_type": t})))
        .collect();
    let outcomes = instance.process_batch(&events).unwrap();
    let routes: Vec<Vec<Option<String>>> = outcomes
        .iter()
        .map(|o| match o {
            Outcome::Emit(outputs) => outputs.iter().map(|o| o.route.clone()).collect(),
            other => panic!("expected emit, got {other:?}"),
        })
        .collect();
    let r = |s: &str| Some(s.to_owned());
    assert_eq!(
        routes,
        vec![
            vec![r("mongo"), r("audit")],
            vec![r("redis")],
            vec![r("archive")]
        ]
    );
    // Each copy is the event unchanged.
    for (ev, outcome) in events.iter().zip(&outcomes) {
        let Outcome::Emit(outputs) = outcome else {
            unreachable!()
        };
        for o in outputs {
            assert_eq!(o.value, ev.value);
        }
    }
}

#[test]
fn reference_transform_drops_one_in_five_and_routes() {
    let engine = engine();
    let version = load(&engine, &spec("reference", plugins::REFERENCE, &[]));
    let mut instance = version.instantiate().unwrap();
    let events: Vec<Event> = (0..10)
        .map(|i| Event {
            value: Some(Bytes::from(weir_fixture_reference::sample_event(i))),
            timestamp_ms: 42,
            ..Event::default()
        })
        .collect();
    let outcomes = instance.process_batch(&events).unwrap();
    for (i, outcome) in outcomes.iter().enumerate() {
        let expected =
            weir_fixture_reference::transform(&weir_fixture_reference::sample_event(i as u64), 42)
                .unwrap();
        match expected {
            None => assert_eq!(outcome, &Outcome::Drop, "event {i}"),
            Some(routed) => {
                let o = single_output(outcome);
                assert_eq!(o.route.as_deref(), Some(routed.route), "event {i}");
                // Same JSON; key order may differ (serde_json's map type
                // depends on the features of the native build).
                let expected: Value = serde_json::from_slice(&routed.value).unwrap();
                assert_eq!(json_of(o), expected, "event {i}");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Hostile fixtures: the host stays up, the cause is reported, the others pass.

#[test]
fn trap_on_one_event_in_1000_fails_exactly_that_event() {
    let engine = engine();
    let version = load(&engine, &spec("trap", plugins::TRAP_ON_EVENT, &[]));
    let mut instance = version.instantiate().unwrap();
    const POISON: usize = 537;
    let events: Vec<Event> = (0..1000)
        .map(|i| numbered(i, json!({"n": i, "poison": i == POISON})))
        .collect();
    let outcomes = instance.process_batch(&events).unwrap();
    assert_eq!(outcomes.len(), 1000);
    for (i, (ev, outcome)) in events.iter().zip(&outcomes).enumerate() {
        if i == POISON {
            let Outcome::Fail(reason) = outcome else {
                panic!("poison event got {outcome:?}");
            };
            assert!(
                reason.starts_with("wasm trap: wasm `unreachable` instruction executed"),
                "{reason}"
            );
            // The plugin's panic message travels with the reason.
            assert!(
                reason.ends_with(&format!("poison event at test/0/{POISON})")),
                "{reason}"
            );
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

#[test]
fn infinite_loop_fails_with_the_deadline() {
    let engine = engine();
    let mut s = spec("loop", plugins::INFINITE_LOOP, &[]);
    s.limits.deadline_ms = 100;
    let version = load(&engine, &s);
    let mut instance = version.instantiate().unwrap();
    let events: Vec<Event> = (0..8)
        .map(|i| numbered(i, json!({"n": i, "loop": i == 5})))
        .collect();
    let outcomes = instance.process_batch(&events).unwrap();
    for (i, (ev, outcome)) in events.iter().zip(&outcomes).enumerate() {
        if i == 5 {
            assert_eq!(
                outcome,
                &Outcome::Fail("deadline exceeded after 100 ms".to_owned())
            );
        } else {
            assert_eq!(outcome, &passed(ev), "event {i}");
        }
    }
}

#[test]
fn memory_bomb_fails_with_the_memory_cap() {
    let engine = engine();
    let mut s = spec("bomb", plugins::MEMORY_BOMB, &[]);
    s.limits.memory_mib = 32;
    let version = load(&engine, &s);
    let mut instance = version.instantiate().unwrap();
    let events: Vec<Event> = (0..4)
        .map(|i| numbered(i, json!({"n": i, "bomb": i == 2})))
        .collect();
    let outcomes = instance.process_batch(&events).unwrap();
    assert_eq!(
        outcomes,
        vec![
            passed(&events[0]),
            passed(&events[1]),
            Outcome::Fail("memory limit 32 MiB exceeded".to_owned()),
            passed(&events[3]),
        ]
    );
}

#[test]
fn deep_recursion_fails_with_a_stack_overflow() {
    let engine = engine();
    let version = load(&engine, &spec("deep", plugins::DEEP_RECURSION, &[]));
    let mut instance = version.instantiate().unwrap();
    let events: Vec<Event> = (0..3)
        .map(|i| numbered(i, json!({"n": i, "recurse": i == 0})))
        .collect();
    let outcomes = instance.process_batch(&events).unwrap();
    let Outcome::Fail(reason) = &outcomes[0] else {
        panic!("expected a stack overflow, got {:?}", outcomes[0]);
    };
    assert!(reason.starts_with("stack overflow"), "{reason}");
    assert_eq!(outcomes[1..], [passed(&events[1]), passed(&events[2])]);
}

#[test]
fn amplify_outputs_a_hundred_times_the_input() {
    let engine = engine();
    let version = load(&engine, &spec("amplify", plugins::AMPLIFY, &[]));
    let mut instance = version.instantiate().unwrap();
    let input = json!({"payload": "x".repeat(1000)});
    let events: Vec<Event> = (0..64).map(|i| numbered(i, input.clone())).collect();
    let outcomes = instance.process_batch(&events).unwrap();
    assert_eq!(outcomes.len(), 64);
    let in_len = events[0].value.as_ref().unwrap().len();
    for outcome in &outcomes {
        let o = single_output(outcome);
        let items = json_of(o);
        let items = items.as_array().expect("an array");
        assert_eq!(items.len(), 100);
        assert!(items.iter().all(|v| *v == input));
        assert!(o.value.as_ref().unwrap().len() > 100 * in_len);
    }
}

#[test]
fn init_that_refuses_its_config_is_refused_at_load() {
    let engine = engine();
    let s = spec("picky", plugins::REFUSE_INIT, &[("b", "1"), ("a", "2")]);
    let err = engine.load(&s).unwrap_err();
    assert_eq!(
        err.kind,
        PluginErrorKind::InitRefused("refusing config: a, b".to_owned())
    );
    assert_eq!(
        err.to_string(),
        format!(
            "plugin `picky` ({}): init refused its config: refusing config: a, b",
            plugins::REFUSE_INIT
        )
    );
}

// ---------------------------------------------------------------------------
// Files that are not (this host's) plugins.

fn write_temp(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn a_file_that_is_not_wasm_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(dir.path(), "notes.wasm", b"this is not WebAssembly\n");
    let err = engine().load(&spec("notes", &path, &[])).unwrap_err();
    assert_eq!(err.kind, PluginErrorKind::NotWasm);
    assert_eq!(
        err.to_string(),
        format!("plugin `notes` ({path}): not a WebAssembly file")
    );
}

#[test]
fn a_core_module_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(dir.path(), "core.wasm", b"\0asm\x01\0\0\0");
    let err = engine().load(&spec("core", &path, &[])).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "plugin `core` ({path}): is a core module, not a component (build with --target wasm32-wasip2)"
        )
    );
}

#[test]
fn a_component_of_another_contract_version_is_refused() {
    let err = engine()
        .load(&spec("other", plugins::OTHER_CONTRACT, &[]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "plugin `other` ({}): built against weir:transform@0.2.0, this host supports weir:transform@0.1.0",
            plugins::OTHER_CONTRACT
        )
    );
}

#[test]
fn a_missing_file_is_refused() {
    let err = engine()
        .load(&spec("gone", "/nonexistent/gone.wasm", &[]))
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("plugin `gone` (/nonexistent/gone.wasm): cannot read the file: "),
        "{err}"
    );
}

#[test]
fn inspect_reports_contract_and_exports() {
    let info = engine().inspect(Path::new(plugins::FILTER)).unwrap();
    assert_eq!(info.contract_version.as_deref(), Some("0.1.0"));
    assert!(info.compatible);
    let plugin = info
        .exports
        .iter()
        .find(|e| e.name == "weir:transform/plugin@0.1.0")
        .expect("plugin export");
    assert_eq!(plugin.functions, ["init", "process"]);
    assert!(
        info.imports
            .iter()
            .any(|i| i.name.starts_with("wasi:cli/environment@0.2")),
        "{:?}",
        info.imports
    );

    let other = engine()
        .inspect(Path::new(plugins::OTHER_CONTRACT))
        .unwrap();
    assert_eq!(other.contract_version.as_deref(), Some("0.2.0"));
    assert!(!other.compatible);
}

// ---------------------------------------------------------------------------
// The compiled-plugin cache.

#[test]
fn second_load_comes_from_the_compile_cache() {
    let dir = tempfile::tempdir().unwrap();
    let options = || EngineOptions {
        cache_dir: Some(dir.path().to_owned()),
    };
    let s = spec(
        "filter",
        plugins::FILTER,
        &[("field", "a"), ("exists", "true")],
    );

    let first = Engine::new(options()).unwrap();
    let v1 = load(&first, &s);
    assert!(!v1.loaded_from_cache());
    let artifacts: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(artifacts.len(), 1, "{artifacts:?}");
    assert!(
        artifacts[0]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(v1.hash())
    );

    // A new engine (a restart) loads the compiled code instead of compiling.
    let second = Engine::new(options()).unwrap();
    let v2 = load(&second, &s);
    assert!(v2.loaded_from_cache());
    assert_eq!(v1.hash(), v2.hash());
    let ev = event(json!({"a": 1}));
    let mut instance = v2.instantiate().unwrap();
    assert_eq!(
        instance.process_batch(std::slice::from_ref(&ev)).unwrap(),
        vec![Outcome::Drop]
    );

    // A damaged artifact is recompiled and replaced.
    std::fs::write(&artifacts[0], b"garbage").unwrap();
    let third = Engine::new(options()).unwrap();
    let v3 = load(&third, &s);
    assert!(!v3.loaded_from_cache());
    let v4 = load(&third, &s);
    assert!(v4.loaded_from_cache());
}
