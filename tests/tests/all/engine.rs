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
            "plugin `other` ({}): built against weir:transform@0.9.0, this host supports \
             weir:transform@0.1.0 (world `transform`) and weir:transform@0.2.0 (worlds `transform` \
             and `typed`)",
            plugins::OTHER_CONTRACT
        )
    );
}

/// A reload compiles the bytes it checked and hashed, not the file read a
/// second time: `load_bytes` never opens `spec.path`.
#[test]
fn load_bytes_compiles_the_bytes_given_not_the_file_at_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let filter = std::fs::read(plugins::FILTER).unwrap();
    // The file at the path has since been replaced by something else.
    let path = write_temp(dir.path(), "replaced.wasm", b"not the plugin that was read");
    let s = spec(
        "filter",
        &path,
        &[("field", "event_type"), ("equals", "heartbeat")],
    );
    let version = engine().load_bytes(&s, &filter).unwrap();
    let sha = {
        use sha2::Digest;
        hex_of(&sha2::Sha256::digest(&filter))
    };
    assert_eq!(version.hash(), sha);
    // And the file itself is what `load` would have refused.
    assert!(engine().load(&s).is_err());
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
    assert_eq!(info.contract_version.as_deref(), Some("0.2.0"));
    assert!(info.compatible);
    let plugin = info
        .exports
        .iter()
        .find(|e| e.name == "weir:transform/plugin@0.2.0")
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
    assert_eq!(other.contract_version.as_deref(), Some("0.9.0"));
    assert_eq!(other.world, None);
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

// ---------------------------------------------------------------------------
// The sandbox: every way to run long, take memory or flood the host is
// contained (the `hostile` fixture and the hand-written components of
// tests/fixtures).

/// Run `f` on a thread; panic if it has not returned after a minute (a
/// call blocked in a host call would otherwise hang the test run).
fn returns<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("{what} never returned: the plugin blocked the host"))
}

fn hostile(mode: &str, extra: &[(&str, &str)]) -> PluginSpec {
    let mut config = vec![("mode", mode)];
    config.extend_from_slice(extra);
    let mut s = spec(&format!("hostile-{mode}"), plugins::HOSTILE, &config);
    s.limits.deadline_ms = 200;
    s
}

/// Events 0..n, where `attack` says which carry `"attack": true`.
fn attack_batch(n: usize, attack: impl Fn(usize) -> bool) -> Vec<Event> {
    (0..n)
        .map(|i| numbered(i, json!({"n": i, "attack": attack(i)})))
        .collect()
}

fn fail_reason(outcome: &Outcome) -> &str {
    match outcome {
        Outcome::Fail(reason) => reason,
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// One hostile fixture in a batch where one event attacks: that event
/// must fail with the fixture's reason and every other event must pass
/// unchanged, in a call that returns (a blocked host call would hang it).
struct Attack {
    /// The case, named in every failure message.
    name: &'static str,
    spec: fn() -> PluginSpec,
    /// How many events the batch has.
    events: usize,
    /// The event that carries `field: true`.
    attacker: usize,
    /// The field the fixture reads to decide to attack.
    field: &'static str,
    /// The attacker's failure reason (its start when `prefix`).
    reason: &'static str,
    prefix: bool,
}

fn with_deadline(mut s: PluginSpec, ms: u64) -> PluginSpec {
    s.limits.deadline_ms = ms;
    s
}

/// Every way to run long or take memory is contained to the one event:
/// a loop and time blocked in host calls (sleeping, waiting on an instant
/// that never comes, polling a far timer) are cut off by the call's
/// deadline, even with a real clock granted; a memory bomb hits the cap;
/// deep recursion overflows the stack; stdin is empty and closed, and
/// stdout is discarded, so writing to it forever is a loop.
#[test]
fn each_hostile_fixture_fails_only_the_event_that_attacks() {
    let deadline_200 = "deadline exceeded after 200 ms";
    let cases = [
        Attack {
            name: "infinite-loop",
            spec: || with_deadline(spec("loop", plugins::INFINITE_LOOP, &[]), 100),
            events: 8,
            attacker: 5,
            field: "loop",
            reason: "deadline exceeded after 100 ms",
            prefix: false,
        },
        Attack {
            name: "memory-bomb",
            spec: || {
                let mut s = spec("bomb", plugins::MEMORY_BOMB, &[]);
                s.limits.memory_mib = 32;
                s
            },
            events: 4,
            attacker: 2,
            field: "bomb",
            reason: "memory limit 32 MiB exceeded",
            prefix: false,
        },
        Attack {
            name: "deep-recursion",
            spec: || spec("deep", plugins::DEEP_RECURSION, &[]),
            events: 3,
            attacker: 0,
            field: "recurse",
            reason: "stack overflow",
            prefix: true,
        },
        Attack {
            name: "hostile sleep",
            spec: || hostile("sleep", &[]),
            events: 4,
            attacker: 2,
            field: "attack",
            reason: deadline_200,
            prefix: false,
        },
        Attack {
            name: "hostile sleep_until",
            spec: || hostile("sleep_until", &[]),
            events: 4,
            attacker: 2,
            field: "attack",
            reason: deadline_200,
            prefix: false,
        },
        Attack {
            name: "hostile poll",
            spec: || hostile("poll", &[]),
            events: 4,
            attacker: 2,
            field: "attack",
            reason: deadline_200,
            prefix: false,
        },
        Attack {
            name: "hostile spin",
            spec: || hostile("spin", &[]),
            events: 4,
            attacker: 2,
            field: "attack",
            reason: deadline_200,
            prefix: false,
        },
        Attack {
            name: "hostile sleep_until with a granted clock",
            spec: || {
                let mut s = hostile("sleep_until", &[]);
                s.grants.clock = true;
                s
            },
            events: 2,
            attacker: 0,
            field: "attack",
            reason: deadline_200,
            prefix: false,
        },
        Attack {
            name: "hostile stdin",
            spec: || hostile("stdin", &[]),
            events: 1,
            attacker: 0,
            field: "attack",
            reason: "stdin held 0 bytes",
            prefix: false,
        },
        Attack {
            name: "hostile stdout",
            spec: || hostile("stdout", &[]),
            events: 1,
            attacker: 0,
            field: "attack",
            reason: deadline_200,
            prefix: false,
        },
    ];
    for case in cases {
        let name = case.name;
        let (spec, n, attacker, field) = (case.spec, case.events, case.attacker, case.field);
        let (events, outcomes) = returns(name, move || {
            let engine = engine();
            let version = load(&engine, &spec());
            let mut instance = version.instantiate().unwrap();
            let events: Vec<Event> = (0..n)
                .map(|i| numbered(i, json!({"n": i, field: i == attacker})))
                .collect();
            let outcomes = instance.process_batch(&events).unwrap();
            (events, outcomes)
        });
        assert_eq!(outcomes.len(), n, "{name}: one outcome per event");
        for (i, (ev, outcome)) in events.iter().zip(&outcomes).enumerate() {
            if i != attacker {
                assert_eq!(outcome, &passed(ev), "{name}: event {i} passes unchanged");
                continue;
            }
            let ok = match outcome {
                Outcome::Fail(r) if case.prefix => r.starts_with(case.reason),
                Outcome::Fail(r) => r == case.reason,
                _ => false,
            };
            assert!(
                ok,
                "{name}: event {i} must fail with `{}`{}, got {outcome:?}",
                case.reason,
                if case.prefix { "…" } else { "" }
            );
        }
    }
}

/// `init` has a deadline of its own, at load and on reload, for a loop and
/// for time blocked in a host call; the process deadline does not apply to
/// it.
#[test]
fn init_runs_under_its_own_deadline() {
    for mode in ["spin", "sleep"] {
        let err = returns(mode, move || {
            let engine = engine();
            let mut s = hostile(mode, &[("in_init", "true")]);
            s.limits.deadline_ms = 3_600_000;
            s.limits.init_deadline_ms = 300;
            engine.load(&s).unwrap_err()
        });
        assert_eq!(
            err.kind,
            PluginErrorKind::InitFailed("deadline exceeded after 300 ms".to_owned()),
            "mode {mode}"
        );
    }
}

#[test]
fn a_reload_whose_init_hangs_is_refused_and_the_old_version_keeps_serving() {
    use weir::plugin::{PluginOptions, PluginRegistry, ReloadTrigger};
    let (result, outcomes, events) = returns("reload", || {
        let engine = Arc::new(engine());
        let mut registry = PluginRegistry::new(engine, "/");
        let good = hostile("sleep", &[]);
        registry
            .register(good.clone(), PluginOptions::default())
            .unwrap();
        let mut stage = registry.transform(&good.name, "p", 0).unwrap();
        let mut hanging = good.clone();
        hanging
            .config
            .push(("in_init".to_owned(), "true".to_owned()));
        hanging.limits.init_deadline_ms = 300;
        let result = registry.reload_spec(hanging, ReloadTrigger::Manual);
        let events = attack_batch(2, |_| false);
        let outcomes = stage.process_batch(&events).unwrap();
        (result.map_err(|e| e.to_string()), outcomes, events)
    });
    let err = result.unwrap_err();
    assert!(
        err.ends_with("init failed: deadline exceeded after 300 ms"),
        "{err}"
    );
    assert_eq!(outcomes, vec![passed(&events[0]), passed(&events[1])]);
}

/// The memory cap counts every linear memory and table of the instance,
/// and the number of instances is capped.
#[test]
fn memory_is_capped_per_instance_over_every_memory_and_table() {
    let engine = engine();
    for (name, path) in [
        ("two-memories", plugins::TWO_MEMORIES),
        ("big-tables", plugins::BIG_TABLES),
    ] {
        let mut s = spec(name, path, &[]);
        s.limits.memory_mib = 32;
        let err = engine.load(&s).unwrap_err();
        assert_eq!(
            err.kind,
            PluginErrorKind::Instantiate("memory limit 32 MiB exceeded".to_owned()),
            "{name}"
        );
        // With room for both, the same component loads.
        s.limits.memory_mib = 48;
        load(&engine, &s);
    }
}

#[test]
fn the_number_of_instances_is_capped() {
    let err = engine()
        .load(&spec("many", plugins::MANY_INSTANCES, &[]))
        .unwrap_err();
    let PluginErrorKind::Instantiate(cause) = &err.kind else {
        panic!("expected an instantiation failure, got {err}");
    };
    assert!(cause.contains("instance"), "{cause}");
}

/// Handles of a resource the guest defines itself live in host-side tables
/// outside the memory cap and need no host call to create: a plugin keeping
/// more than the host allows fails to load instead of growing the host.
#[test]
fn guest_resource_handles_are_capped() {
    let err = engine()
        .load(&spec("handles", plugins::GUEST_HANDLES, &[]))
        .unwrap_err();
    let PluginErrorKind::InitFailed(cause) = &err.kind else {
        panic!("expected an init failure, got {err}");
    };
    assert!(cause.contains("handle limit"), "{cause}");
}

/// Host resources (pollables, streams) live outside the memory cap; a
/// plugin that leaks them hits a cap instead of growing the host.
#[test]
fn leaked_host_resources_are_capped() {
    let engine = engine();
    let mut s = hostile("leak", &[]);
    s.limits.deadline_ms = 60_000;
    let version = load(&engine, &s);
    let mut instance = version.instantiate().unwrap();
    let outcomes = instance.process_batch(&attack_batch(1, |_| true)).unwrap();
    let reason = fail_reason(&outcomes[0]);
    assert!(!reason.starts_with("deadline"), "{reason}");
}

/// Outputs are capped per event (count and bytes) and per batch, each
/// failure naming its cap.
#[test]
fn outputs_are_capped_per_event_and_per_batch() {
    let engine = engine();
    let mut s = hostile("fan_out", &[("copies", "11"), ("bytes", "100")]);
    s.limits.max_outputs_per_event = 10;
    let version = load(&engine, &s);
    let mut instance = version.instantiate().unwrap();
    let outcomes = instance.process_batch(&attack_batch(3, |_| false)).unwrap();
    for outcome in &outcomes {
        assert_eq!(
            fail_reason(outcome),
            "the event emitted 11 outputs, over the cap of 10 per event (limits.max_outputs_per_event)"
        );
    }

    let mut s = hostile("fan_out", &[("copies", "2"), ("bytes", "600")]);
    s.limits.max_output_bytes_per_event = 1000;
    let version = load(&engine, &s);
    let outcomes = version
        .instantiate()
        .unwrap()
        .process_batch(&attack_batch(1, |_| false))
        .unwrap();
    assert!(
        fail_reason(&outcomes[0])
            .ends_with("over the cap of 1000 per event (limits.max_output_bytes_per_event)"),
        "{outcomes:?}"
    );

    // 10 events of 4 outputs each, 25 outputs per batch: six events fit.
    let mut s = hostile("fan_out", &[("copies", "4"), ("bytes", "10")]);
    s.limits.max_outputs_per_batch = 25;
    let version = load(&engine, &s);
    let outcomes = version
        .instantiate()
        .unwrap()
        .process_batch(&attack_batch(10, |_| false))
        .unwrap();
    for (i, outcome) in outcomes.iter().enumerate() {
        if i < 6 {
            assert!(
                matches!(outcome, Outcome::Emit(o) if o.len() == 4),
                "event {i}: {outcome:?}"
            );
        } else {
            assert_eq!(
                fail_reason(outcome),
                "the outputs of the batch would pass the cap of 25 outputs per batch (limits.max_outputs_per_batch)"
            );
        }
    }
}

/// A fan-out bomb in a batch that also holds a poison event: bisection
/// splits the batch into many calls, and the outputs of all of them
/// together still hold at most one batch's budget.
#[test]
fn bisection_does_not_multiply_the_output_budget() {
    let engine = engine();
    let mut s = hostile("fan_out", &[("copies", "1"), ("bytes", "1000")]);
    s.limits.max_output_bytes_per_batch = 20_000;
    let version = load(&engine, &s);
    let mut instance = version.instantiate().unwrap();
    let events: Vec<Event> = (0..64)
        .map(|i| numbered(i, json!({"n": i, "poison": i == 63})))
        .collect();
    let outcomes = instance.process_batch(&events).unwrap();
    assert!(instance.rebuilds() > 0, "the batch was bisected");
    let bytes: usize = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Emit(outputs) => Some(outputs),
            _ => None,
        })
        .flatten()
        .map(|o| {
            o.value.as_ref().map_or(0, |v| v.len())
                + o.key.as_ref().map_or(0, |k| k.len())
                + o.route.as_ref().map_or(0, String::len)
        })
        .sum();
    assert!(bytes <= 20_000, "{bytes} bytes of outputs");
    // Each output holds 1000 bytes, a key (`k0`..`k63`) and a route
    // (`copy-0`): the first 19 events fit the batch's 20 000 bytes.
    let emitted = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Emit(_)))
        .count();
    assert_eq!(emitted, 19, "{outcomes:?}");
    assert!(fail_reason(&outcomes[63]).starts_with("wasm trap"));
    assert!(fail_reason(&outcomes[62]).ends_with("(limits.max_output_bytes_per_batch)"));
}

/// A batch where every event loops costs the isolation budget plus about
/// one deadline per level of the split, not 2n−1 deadlines; every event is
/// failed with a reason, none is lost.
#[test]
fn a_batch_where_every_event_loops_has_a_bounded_isolation_cost() {
    let engine = engine();
    let mut s = hostile("spin", &[]);
    s.limits.deadline_ms = 50;
    s.limits.isolation_budget_ms = 200;
    let version = load(&engine, &s);
    let mut instance = version.instantiate().unwrap();
    let events = attack_batch(64, |_| true);
    let outcomes = instance.process_batch(&events).unwrap();
    assert_eq!(outcomes.len(), 64);
    // Each failed call takes at least its 50 ms deadline: at most 4 fit in
    // the budget, then at most one per level of the split (log2(64) = 6).
    // Unbounded, isolation takes 127 failed calls.
    assert!(
        instance.rebuilds() <= 4 + 7,
        "{} failed calls",
        instance.rebuilds()
    );
    for outcome in &outcomes {
        let reason = fail_reason(outcome);
        assert!(
            reason == "deadline exceeded after 50 ms"
                || (reason.starts_with("not isolated: the failed calls of this batch used up their time (limits.isolation_budget_ms = 200 ms")
                    && reason.ends_with("failed: deadline exceeded after 50 ms")),
            "{reason}"
        );
    }
}

/// A shutdown stops isolation between calls: `process_batch` returns
/// `Interrupted` and the pipeline leaves the batch uncommitted.
#[test]
fn shutdown_interrupts_isolation() {
    let engine = engine();
    let mut s = hostile("spin", &[]);
    s.limits.deadline_ms = 50;
    let version = load(&engine, &s);
    let mut instance = version.instantiate().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    instance.set_shutdown(shutdown.clone());
    let cancel = {
        let shutdown = shutdown.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            shutdown.cancel();
        })
    };
    let events = attack_batch(64, |_| true);
    let err = instance.process_batch(&events).unwrap_err();
    cancel.join().unwrap();
    assert_eq!(err.kind, PluginErrorKind::Interrupted);
    assert!(
        instance.rebuilds() < 127,
        "{} failed calls",
        instance.rebuilds()
    );
}

/// A `fail` reason is cut to a sane size before it goes anywhere.
#[test]
fn huge_fail_reasons_are_truncated() {
    let engine = engine();
    let version = load(&engine, &hostile("fail_huge", &[("bytes", "1048576")]));
    let outcomes = version
        .instantiate()
        .unwrap()
        .process_batch(&attack_batch(1, |_| true))
        .unwrap();
    let reason = fail_reason(&outcomes[0]);
    assert!(
        reason.len() <= weir::engine::MAX_REASON_BYTES + 40,
        "{} bytes",
        reason.len()
    );
    assert!(reason.starts_with("xxxx"));
    assert!(
        reason.ends_with(&format!(
            "… ({} more bytes cut)",
            (1 << 20) - weir::engine::MAX_REASON_BYTES
        )),
        "{}",
        &reason[reason.len() - 40..]
    );
}

/// Lines the plugin's log import wrote to the host's log, counted by a
/// tracing subscriber on this thread.
#[derive(Default, Clone)]
struct LogLines(Arc<std::sync::atomic::AtomicUsize>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for LogLines {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct IsPlugin(bool);
        impl tracing::field::Visit for IsPlugin {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                if field.name() == "message" && value.starts_with("hostile line") {
                    self.0 = true;
                }
            }
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" && format!("{value:?}").starts_with("hostile line") {
                    self.0 = true;
                }
            }
        }
        let mut visit = IsPlugin(false);
        event.record(&mut visit);
        if visit.0 {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// A plugin that logs and then traps on every event gets its instance
/// rebuilt 2n−1 times; the rate limit of its log holds across rebuilds.
#[test]
fn the_log_import_cannot_flood_the_host_log_through_rebuilds() {
    use tracing_subscriber::layer::SubscriberExt;
    let lines = LogLines::default();
    let subscriber = tracing_subscriber::registry().with(lines.clone());
    let (rebuilds, outcomes) = tracing::subscriber::with_default(subscriber, || {
        let engine = engine();
        let version = load(&engine, &hostile("log", &[("lines", "100")]));
        let mut instance = version.instantiate().unwrap();
        let outcomes = instance.process_batch(&attack_batch(32, |_| true)).unwrap();
        (instance.rebuilds(), outcomes)
    });
    assert_eq!(rebuilds, 63);
    assert!(outcomes.iter().all(|o| matches!(o, Outcome::Fail(_))));
    // 63 calls tried to write 100 lines each; the burst is 100 lines plus
    // 100 per second of the test.
    let written = lines.0.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        written < 1_000,
        "{written} plugin lines reached the host log"
    );
}

// ---------------------------------------------------------------------------
// The compiled-plugin cache is not a way in.

/// The one `.cwasm` artifact in `dir`.
fn artifact_in(dir: &Path) -> PathBuf {
    let mut artifacts: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(artifacts.len(), 1, "{artifacts:?}");
    artifacts.pop().unwrap()
}

fn cached_engine(dir: &Path) -> Engine {
    Engine::new(EngineOptions {
        cache_dir: Some(dir.to_owned()),
    })
    .unwrap()
}

fn filter_spec() -> PluginSpec {
    spec(
        "filter",
        plugins::FILTER,
        &[("field", "a"), ("exists", "true")],
    )
}

/// What the filter makes of `{"a": 1}`: it drops it.
fn behaves_as_the_filter(version: &Arc<PluginVersion>) {
    let mut instance = version.instantiate().unwrap();
    assert_eq!(
        instance.process_batch(&[event(json!({"a": 1}))]).unwrap(),
        vec![Outcome::Drop]
    );
}

/// Someone who can write the cache directory puts there, under the name of
/// the filter's artifact, a genuine artifact of another plugin (compiled by
/// the same wasmtime with the same settings on another host). It is not
/// loaded: the filter is compiled again and runs as the filter.
#[test]
fn a_planted_artifact_is_recompiled_never_executed() {
    let ours = tempfile::tempdir().unwrap();
    let theirs = tempfile::tempdir().unwrap();
    let v = load(&cached_engine(ours.path()), &filter_spec());
    assert!(!v.loaded_from_cache());
    let target = artifact_in(ours.path());

    load(
        &cached_engine(theirs.path()),
        &spec("loop", plugins::INFINITE_LOOP, &[]),
    );
    std::fs::copy(artifact_in(theirs.path()), &target).unwrap();

    let v = load(&cached_engine(ours.path()), &filter_spec());
    assert!(!v.loaded_from_cache(), "the planted artifact was loaded");
    behaves_as_the_filter(&v);
    // The planted file was replaced by a genuine one, used from now on.
    let v = load(&cached_engine(ours.path()), &filter_spec());
    assert!(v.loaded_from_cache());
    behaves_as_the_filter(&v);
}

#[test]
fn a_corrupted_or_symlinked_artifact_is_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    load(&cached_engine(dir.path()), &filter_spec());
    let target = artifact_in(dir.path());

    // One flipped byte in the middle of the machine code.
    let mut bytes = std::fs::read(&target).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&target, &bytes).unwrap();
    let v = load(&cached_engine(dir.path()), &filter_spec());
    assert!(!v.loaded_from_cache(), "a corrupted artifact was loaded");
    behaves_as_the_filter(&v);

    // A symbolic link, even to a genuine artifact, is not followed.
    let elsewhere = tempfile::tempdir().unwrap();
    let copy = elsewhere.path().join("copy.cwasm");
    std::fs::rename(&target, &copy).unwrap();
    std::os::unix::fs::symlink(&copy, &target).unwrap();
    let v = load(&cached_engine(dir.path()), &filter_spec());
    assert!(!v.loaded_from_cache(), "a symlinked artifact was loaded");
    behaves_as_the_filter(&v);
}

#[test]
fn the_cache_key_is_private_and_a_readable_key_disables_the_cache() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let engine = cached_engine(dir.path());
    assert_eq!(engine.cache_dir(), Some(dir.path()));
    let key = dir.path().join("cache.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    drop(engine);

    // A key others can read could sign artifacts of theirs: not trusted.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let engine = cached_engine(dir.path());
    assert_eq!(engine.cache_dir(), None);
    let v = load(&engine, &filter_spec());
    assert!(!v.loaded_from_cache());
    behaves_as_the_filter(&v);
}
