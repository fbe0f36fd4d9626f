//! The three kinds of component the engine runs, through the same engine:
//! packed 0.1.0, packed 0.2.0 (the SDK) and typed 0.2.0. The same
//! reference transform built for each world gives exactly the same
//! outcomes; a typed plugin is contained as a packed one is (a trap
//! isolated to its event, the deadline, a wrong outcome count); imports
//! no config can grant are refused at load, with the plugin's name.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Value, json};
use weir::config::{PluginGrants, PluginLimits};
use weir::engine::{
    ContractVersion, Engine, EngineOptions, PluginErrorKind, PluginSpec, PluginVersion, Transform,
    WorldKind,
};
use weir::event::{Event, Header, Op, Outcome, Output};
use weir_fixture_reference::sample_event;
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

fn run(version: &Arc<PluginVersion>, events: &[Event]) -> Vec<Outcome> {
    version
        .instantiate()
        .expect("instance")
        .process_batch(events)
        .expect("batch")
}

/// The reference transform's input: sample events with keys, event times
/// and origins, plus an event without a value, one that is not JSON, one
/// whose value is no object and one with headers.
fn reference_events() -> Vec<Event> {
    let mut events: Vec<Event> = (0..500u64)
        .map(|i| Event {
            key: Some(Bytes::from(format!("user-{i}"))),
            value: Some(Bytes::from(sample_event(i))),
            op: Op::Insert,
            timestamp_ms: 1_700_000_000_000 + i as i64,
            origin: format!("clicks/0@{i}"),
            ..Event::default()
        })
        .collect();
    events.push(Event {
        key: Some(Bytes::from_static(b"gone")),
        op: Op::Delete,
        origin: "clicks/0@500".into(),
        ..Event::default()
    });
    events.push(Event {
        value: Some(Bytes::from_static(b"{not json")),
        origin: "clicks/0@501".into(),
        ..Event::default()
    });
    events.push(Event {
        value: Some(Bytes::from_static(b"[1, 2]")),
        origin: "clicks/0@502".into(),
        ..Event::default()
    });
    events.push(Event {
        value: Some(Bytes::from(sample_event(0))),
        headers: vec![Header::new("trace", Bytes::from_static(b"\x00\xff"))],
        old_value: Some(Bytes::from_static(b"{}")),
        origin: "clicks/0@503".into(),
        ..Event::default()
    });
    events
}

#[test]
fn the_reference_transform_gives_the_same_outcomes_through_every_world() {
    let engine = engine();
    let packed = load(&engine, &spec("reference", plugins::REFERENCE, &[]));
    let v1 = load(&engine, &spec("reference-v1", plugins::REFERENCE_V1, &[]));
    let typed = load(
        &engine,
        &spec("reference-typed", plugins::REFERENCE_TYPED, &[]),
    );
    assert_eq!(
        (packed.world().kind, packed.world().version),
        (WorldKind::Packed, ContractVersion::V0_2)
    );
    assert_eq!(
        (v1.world().kind, v1.world().version),
        (WorldKind::Packed, ContractVersion::V0_1)
    );
    assert_eq!(
        (typed.world().kind, typed.world().version),
        (WorldKind::Typed, ContractVersion::V0_2)
    );
    assert_eq!(typed.world().world_name(), "typed");

    let events = reference_events();
    let expected = run(&packed, &events);
    // What the SDK-built reference gives, spot-checked, so the comparison
    // below is between outcomes that mean something.
    assert_eq!(expected.len(), events.len());
    let first = match &expected[0] {
        Outcome::Emit(outputs) => &outputs[0],
        other => panic!("expected an emit, got {other:?}"),
    };
    assert_eq!(first.route.as_deref(), Some("orders"));
    assert_eq!(first.key.as_deref(), Some(&b"user-0"[..]));
    let value: Value = serde_json::from_slice(first.value.as_deref().unwrap()).unwrap();
    assert_eq!(value["ingested_at_ms"], json!(1_700_000_000_000i64));
    assert_eq!(expected[3], Outcome::Drop, "a heartbeat is dropped");
    assert_eq!(expected[500], Outcome::Drop, "no value: dropped");
    assert!(
        matches!(&expected[501], Outcome::Fail(r) if r.starts_with("value is not JSON: ")),
        "{:?}",
        expected[501]
    );
    assert_eq!(
        expected[502],
        Outcome::Fail("value is not a JSON object".into())
    );

    assert_eq!(
        run(&v1, &events),
        expected,
        "0.1.0 packed differs from 0.2.0 packed"
    );
    assert_eq!(run(&typed, &events), expected, "typed differs from packed");
    // Across batches of other sizes too (the typed instance is reused).
    let mut instance = typed.instantiate().unwrap();
    for chunk in events.chunks(37).zip(expected.chunks(37)) {
        assert_eq!(instance.process_batch(chunk.0).unwrap(), chunk.1);
    }
}

fn hostile_events(n: usize, bad: &[(usize, &str)]) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let mut value = json!({"i": i});
            for (at, field) in bad {
                if *at == i {
                    value[*field] = json!(true);
                }
            }
            Event {
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(value.to_string())),
                op: Op::Upsert,
                headers: vec![Header::new("n", Bytes::from(i.to_string()))],
                origin: format!("t/0@{i}"),
                ..Event::default()
            }
        })
        .collect()
}

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

#[test]
fn a_trap_in_a_typed_plugin_fails_only_its_event() {
    let engine = engine();
    let version = load(&engine, &spec("typed-hostile", plugins::TYPED_HOSTILE, &[]));
    let events = hostile_events(1000, &[(617, "poison")]);
    let mut instance = version.instantiate().unwrap();
    let outcomes = instance.process_batch(&events).unwrap();
    assert_eq!(outcomes.len(), 1000);
    for (i, (outcome, ev)) in outcomes.iter().zip(&events).enumerate() {
        if i == 617 {
            match outcome {
                Outcome::Fail(reason) => assert!(
                    reason.contains("poison event at t/0@617"),
                    "the cause names the panic: {reason}"
                ),
                other => panic!("event 617 should fail, got {other:?}"),
            }
        } else {
            assert_eq!(outcome, &passed(ev), "event {i}");
        }
    }
    assert!(instance.rebuilds() > 0, "the trapped instance was rebuilt");
    // The rebuilt instance works on.
    let clean = hostile_events(3, &[]);
    let again = instance.process_batch(&clean).unwrap();
    assert_eq!(again, clean.iter().map(passed).collect::<Vec<_>>());
}

#[test]
fn a_typed_plugin_that_loops_is_stopped_by_its_deadline() {
    let engine = engine();
    let mut s = spec("typed-hostile", plugins::TYPED_HOSTILE, &[]);
    s.limits.deadline_ms = 200;
    let version = load(&engine, &s);
    let events = hostile_events(8, &[(5, "loop")]);
    let outcomes = run(&version, &events);
    for (i, (outcome, ev)) in outcomes.iter().zip(&events).enumerate() {
        if i == 5 {
            assert_eq!(
                outcome,
                &Outcome::Fail("deadline exceeded after 200 ms".into())
            );
        } else {
            assert_eq!(outcome, &passed(ev), "event {i}");
        }
    }
}

#[test]
fn a_typed_plugin_returning_the_wrong_number_of_outcomes_fails_the_call() {
    let engine = engine();
    for (mode, returned) in [("extra", 2), ("missing", 0)] {
        let version = load(
            &engine,
            &spec(
                "typed-hostile",
                plugins::TYPED_HOSTILE,
                &[("outcomes", mode)],
            ),
        );
        let outcomes = run(&version, &hostile_events(3, &[]));
        // Every call is malformed, so isolation ends with each event alone
        // in a call that returned the wrong count.
        let reason =
            format!("malformed outcomes: {returned} outcomes returned for a batch of 1 events");
        assert_eq!(
            outcomes,
            vec![Outcome::Fail(reason); 3],
            "outcomes = {mode}"
        );
    }
}

#[test]
fn a_typed_plugin_exporting_timers_is_accepted_and_recorded() {
    let version = load(
        &engine(),
        &spec("typed-hostile", plugins::TYPED_HOSTILE, &[]),
    );
    assert!(version.world().timers);
    assert!(!version.world().capabilities.state);
    let reference = load(&engine(), &spec("reference", plugins::REFERENCE, &[]));
    assert!(!reference.world().timers);
}

#[test]
fn imports_no_config_grants_are_refused_at_load() {
    let err = engine()
        .load(&spec("counter", plugins::STATE_IMPORT, &[]))
        .unwrap_err();
    assert_eq!(
        err.kind,
        PluginErrorKind::NotGranted {
            import: "weir:transform/state@0.2.0".into(),
            grant: "state",
        }
    );
    assert_eq!(
        err.to_string(),
        format!(
            "plugin `counter` ({}): imports weir:transform/state@0.2.0, but its config grants no \
             state (this version of weir cannot grant it yet)",
            plugins::STATE_IMPORT
        )
    );
    let err = engine()
        .load(&spec("enrich", plugins::LOOKUP_IMPORT, &[]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "plugin `enrich` ({}): imports weir:transform/lookup@0.2.0, but its config grants no \
             lookups (set `lookups = [\"STORE\"]` in its [plugins.NAME] table)",
            plugins::LOOKUP_IMPORT
        )
    );
}

/// A component that is not exactly one world of one contract version is
/// refused at load, and the error names the plugin, its file and what is
/// wrong with it: both exports, the two versions, the unknown import.
#[test]
fn components_mixing_worlds_versions_or_unknown_imports_are_refused_at_load() {
    let engine = engine();
    let refused = |name: &str, path: &str| {
        let err = engine.load(&spec(name, path, &[])).unwrap_err();
        let text = err.to_string();
        (err.kind, text)
    };

    let (kind, text) = refused("both", plugins::SEVERAL_WORLDS);
    assert!(
        matches!(kind, PluginErrorKind::SeveralWorlds(_)),
        "{kind:?}"
    );
    assert_eq!(
        text,
        format!(
            "plugin `both` ({}): exports several plugin interfaces \
             (weir:transform/plugin@0.2.0, weir:transform/typed-plugin@0.2.0); \
             a plugin implements exactly one world",
            plugins::SEVERAL_WORLDS
        )
    );

    let (kind, text) = refused("mixed", plugins::MIXED_VERSIONS);
    assert_eq!(
        kind,
        PluginErrorKind::MixedVersions {
            import: "weir:transform/host@0.1.0".into(),
            export: "weir:transform/plugin@0.2.0".into(),
        }
    );
    assert_eq!(
        text,
        format!(
            "plugin `mixed` ({}): imports weir:transform/host@0.1.0 but exports \
             weir:transform/plugin@0.2.0; build it against one contract version",
            plugins::MIXED_VERSIONS
        )
    );

    let (kind, text) = refused("secretive", plugins::UNKNOWN_IMPORT);
    assert_eq!(
        kind,
        PluginErrorKind::UnknownImport("weir:transform/secrets@0.2.0".into())
    );
    assert_eq!(
        text,
        format!(
            "plugin `secretive` ({}): imports weir:transform/secrets@0.2.0, which is no \
             interface of the contract this host provides",
            plugins::UNKNOWN_IMPORT
        )
    );

    // `weir plugin inspect` reports the same cause instead of failing.
    let info = engine
        .inspect(std::path::Path::new(plugins::SEVERAL_WORLDS))
        .unwrap();
    assert!(!info.compatible);
    assert_eq!(
        info.problem.as_deref(),
        Some(
            "exports several plugin interfaces (weir:transform/plugin@0.2.0, \
             weir:transform/typed-plugin@0.2.0); a plugin implements exactly one world"
        )
    );
}

#[test]
fn inspect_names_the_world_and_the_weir_imports() {
    let engine = engine();
    let typed = engine
        .inspect(std::path::Path::new(plugins::TYPED_HOSTILE))
        .unwrap();
    assert_eq!(typed.contract_version.as_deref(), Some("0.2.0"));
    assert_eq!(typed.world, Some("typed"));
    assert_eq!(typed.kind, Some(WorldKind::Typed));
    assert!(typed.timers && !typed.state && !typed.lookup);
    assert!(typed.compatible && typed.problem.is_none());

    let v1 = engine
        .inspect(std::path::Path::new(plugins::REFERENCE_V1))
        .unwrap();
    assert_eq!(v1.contract_version.as_deref(), Some("0.1.0"));
    assert_eq!(v1.world, Some("transform"));
    assert_eq!(v1.kind, Some(WorldKind::Packed));

    let state = engine
        .inspect(std::path::Path::new(plugins::STATE_IMPORT))
        .unwrap();
    assert_eq!(state.world, Some("transform-state"));
    assert!(state.state && !state.compatible);
    assert_eq!(
        state.problem.as_deref(),
        Some(
            "imports weir:transform/state@0.2.0, but its config grants no state \
             (this version of weir cannot grant it yet)"
        )
    );
}
