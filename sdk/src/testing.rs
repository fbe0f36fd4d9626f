//! Native testing: run a [`Transform`] over owned events through the same
//! path the host uses — encode the batch, decode it without copying, call
//! `process` per event, encode the outcomes, decode and validate them as
//! the host does — without Wasm.
//!
//! ```
//! use weir_sdk::testing::{self, Harness, OwnedOutcome};
//! use weir_sdk::serde_json::json;
//! use weir_sdk::{Config, Event, Outcome, Transform};
//!
//! struct DropAll;
//! impl Transform for DropAll {
//!     fn init(_: &Config) -> Result<Self, String> { Ok(DropAll) }
//!     fn process(&mut self, _: &Event<'_>) -> Outcome { Outcome::Drop }
//! }
//!
//! let mut h = Harness::<DropAll>::new([("unused", "1")]).unwrap();
//! assert_eq!(h.run_json([json!({"a": 1})]), [OwnedOutcome::Drop]);
//! assert_eq!(h.run(&[testing::event(json!(1))]), [OwnedOutcome::Drop]);
//! ```

use bytes::Bytes;
use serde_json::Value;

pub use weir_contract::{
    Event as OwnedEvent, Header, Op, Outcome as OwnedOutcome, Output as OwnedOutput,
};

use crate::runtime::Runtime;
use crate::{Config, Transform};

/// Runs a transform natively through the real batch loop.
pub struct Harness<T> {
    runtime: Runtime<T>,
    batch: Vec<u8>,
}

impl<T> std::fmt::Debug for Harness<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("runtime", &self.runtime)
            .finish_non_exhaustive()
    }
}

impl<T: Transform> Harness<T> {
    /// Initialise the transform with `config`; the error is what `init`
    /// returned.
    pub fn new<K: Into<String>, V: Into<String>>(
        config: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, String> {
        let mut runtime = Runtime::default();
        runtime.init(&Config::from_pairs(config))?;
        Ok(Harness {
            runtime,
            batch: Vec::new(),
        })
    }

    /// The transform, to inspect its state.
    pub fn plugin(&self) -> &T {
        // `new` only returns a harness whose init succeeded.
        self.runtime
            .plugin()
            .expect("harness holds an initialised plugin")
    }

    /// Run one batch and return one outcome per event.
    ///
    /// # Panics
    /// If the outcomes the batch loop wrote would be refused by the host
    /// (a bug in the SDK, reported loudly in tests).
    pub fn run(&mut self, events: &[OwnedEvent]) -> Vec<OwnedOutcome> {
        weir_contract::encode_batch(events, &mut self.batch);
        let encoded = Bytes::from(self.runtime.process(&self.batch));
        weir_contract::decode_outcomes(encoded, events.len())
            .unwrap_or_else(|e| panic!("the host would refuse these outcomes: {e}"))
    }

    /// Run one batch of events whose values are these JSON values.
    pub fn run_json(&mut self, values: impl IntoIterator<Item = Value>) -> Vec<OwnedOutcome> {
        let events: Vec<OwnedEvent> = values.into_iter().map(event).collect();
        self.run(&events)
    }

    /// Grant lookup store `store` to the plugin and put `key` = `value`
    /// into it (natively, a map on this thread; see [`crate::lookup`]).
    #[cfg(not(target_arch = "wasm32"))]
    #[must_use]
    pub fn with_lookup(
        self,
        store: &str,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
    ) -> Self {
        crate::lookup::backend::put(store, key.into(), value.into());
        self
    }

    /// Grant lookup store `store` to the plugin, holding no keys yet.
    #[cfg(not(target_arch = "wasm32"))]
    #[must_use]
    pub fn with_store(self, store: &str) -> Self {
        crate::lookup::backend::declare(store);
        self
    }

    /// Run a batch of one event.
    pub fn run_one(&mut self, event: OwnedEvent) -> OwnedOutcome {
        self.run(std::slice::from_ref(&event))
            .pop()
            .expect("one outcome per event")
    }
}

/// An upsert event whose value is `value` serialized, with no key, time 0
/// and origin `test/0/0`. Change fields with struct update syntax:
/// `OwnedEvent { key: Some("k1".into()), ..testing::event(v) }`.
pub fn event(value: Value) -> OwnedEvent {
    OwnedEvent {
        value: Some(Bytes::from(value.to_string())),
        origin: "test/0/0".to_owned(),
        ..OwnedEvent::default()
    }
}

/// An event whose value is these raw bytes (for invalid-JSON tests).
pub fn raw_event(value: &[u8]) -> OwnedEvent {
    OwnedEvent {
        value: Some(Bytes::copy_from_slice(value)),
        origin: "test/0/0".to_owned(),
        ..OwnedEvent::default()
    }
}

/// The value of an output parsed as JSON (`Value::Null` if absent).
///
/// # Panics
/// If the value is not JSON.
pub fn json_of(output: &OwnedOutput) -> Value {
    output.value.as_ref().map_or(Value::Null, |v| {
        serde_json::from_slice(v)
            .unwrap_or_else(|e| panic!("output value is not JSON ({e}): {v:?}"))
    })
}

/// The outputs of an `emit` outcome.
///
/// # Panics
/// If the outcome is `drop` or `fail`.
pub fn outputs(outcome: &OwnedOutcome) -> &[OwnedOutput] {
    match outcome {
        OwnedOutcome::Emit(outputs) => outputs,
        other => panic!("expected emit, got {other:?}"),
    }
}

/// The single JSON value an `emit` outcome carries.
///
/// # Panics
/// If the outcome is not an emit of exactly one output.
pub fn emitted_json(outcome: &OwnedOutcome) -> Value {
    match outputs(outcome) {
        [one] => json_of(one),
        many => panic!("expected one output, got {}", many.len()),
    }
}

/// The routes of an `emit` outcome's outputs, in order.
pub fn routes(outcome: &OwnedOutcome) -> Vec<Option<&str>> {
    outputs(outcome)
        .iter()
        .map(|o| o.route.as_deref())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Event, Outcome, Output};
    use serde_json::json;

    /// Echoes each event with its metadata, to check the loop end to end.
    struct Echo;
    impl Transform for Echo {
        fn init(config: &Config) -> Result<Self, String> {
            config.deny_unknown(&[], &[])?;
            Ok(Echo)
        }
        fn process(&mut self, event: &Event<'_>) -> Outcome {
            match event.value() {
                Some(b"drop") => Outcome::Drop,
                Some(b"fail") => Outcome::fail("asked to fail"),
                _ => {
                    let meta = json!({
                        "key": event.key_str(),
                        "op": event.op().as_str(),
                        "ts": event.timestamp_ms(),
                        "origin": event.origin(),
                        "h": event.header("h").map(|h| String::from_utf8_lossy(h).into_owned()),
                        "old": event.old_value().is_some(),
                    });
                    Outcome::emit_all([
                        Output::from_event(event).route("copy").ttl(5),
                        Output::json(&meta).key_of(event).op(Op::Insert),
                    ])
                }
            }
        }
    }

    /// Parses each value, sets a field and re-serializes it.
    struct Touch;
    impl Transform for Touch {
        fn init(_: &Config) -> Result<Self, String> {
            Ok(Touch)
        }
        fn process(&mut self, event: &Event<'_>) -> Outcome {
            let mut value = match event.json() {
                Ok(v) => v,
                Err(e) => return Outcome::fail(e),
            };
            if let Err(e) = crate::json::set(&mut value, "m.seen", json!(true)) {
                return Outcome::fail(e);
            }
            Outcome::emit(Output::json(&value))
        }
    }

    #[test]
    fn reserialized_objects_keep_their_member_order() {
        let mut h = Harness::<Touch>::new(Vec::<(String, String)>::new()).unwrap();
        let out = h.run_one(raw_event(
            br#"{"zeta":1,"alpha":{"y":2,"b":3},"mid":[{"q":1,"c":2}]}"#,
        ));
        assert_eq!(
            outputs(&out)[0].value.as_deref(),
            Some(
                br#"{"zeta":1,"alpha":{"y":2,"b":3},"mid":[{"q":1,"c":2}],"m":{"seen":true}}"#
                    .as_slice()
            )
        );
    }

    #[test]
    fn batch_loop_round_trips_every_field() {
        let mut h = Harness::<Echo>::new(Vec::<(String, String)>::new()).unwrap();
        let ev = OwnedEvent {
            key: Some("k".into()),
            value: Some("v".into()),
            old_value: Some("o".into()),
            op: Op::Delete,
            headers: vec![Header::new("h", "hv")],
            timestamp_ms: 42,
            origin: "t/1/2".into(),
        };
        let out = h.run(&[ev.clone(), raw_event(b"drop"), raw_event(b"fail")]);
        assert_eq!(out.len(), 3);
        let outs = outputs(&out[0]);
        assert_eq!(
            outs[0],
            OwnedOutput {
                route: Some("copy".into()),
                key: ev.key.clone(),
                value: ev.value.clone(),
                op: Op::Delete,
                headers: ev.headers.clone(),
                ttl_seconds: Some(5),
            }
        );
        assert_eq!(outs[1].op, Op::Insert);
        assert_eq!(outs[1].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(
            json_of(&outs[1]),
            json!({"key": "k", "op": "delete", "ts": 42, "origin": "t/1/2", "h": "hv", "old": true})
        );
        assert_eq!(out[1], OwnedOutcome::Drop);
        assert_eq!(out[2], OwnedOutcome::Fail("asked to fail".into()));
        // The writer is reused: a second, smaller batch is encoded afresh.
        assert_eq!(h.run(&[raw_event(b"drop")]), [OwnedOutcome::Drop]);
        assert_eq!(h.run(&[]), []);
    }

    #[test]
    fn init_errors_reach_the_caller() {
        let err = Harness::<Echo>::new([("x", "1")]).unwrap_err();
        assert_eq!(err, "config `x`: unknown key (known: )");
    }

    #[test]
    fn malformed_batches_fail_without_panicking() {
        let mut rt = Runtime::<Echo>::default();
        rt.init(&Config::default()).unwrap();
        let out = rt.process(b"garbage");
        assert!(weir_contract::decode_outcomes(out.into(), 1).is_err());

        let mut batch = Vec::new();
        weir_contract::encode_batch(&[raw_event(b"drop"), raw_event(b"drop")], &mut batch);
        batch.truncate(batch.len() - 3);
        let out = rt.process(&batch);
        let outcomes = weir_contract::decode_outcomes(out.into(), 2).unwrap();
        assert_eq!(outcomes[0], OwnedOutcome::Drop);
        assert!(
            matches!(&outcomes[1], OwnedOutcome::Fail(r) if r.starts_with("event could not be decoded")),
            "{outcomes:?}"
        );
    }

    #[test]
    fn uninitialised_runtime_fails_each_event() {
        let mut rt = Runtime::<Echo>::default();
        let mut batch = Vec::new();
        weir_contract::encode_batch(&[raw_event(b"x")], &mut batch);
        let out = rt.process(&batch);
        assert_eq!(
            weir_contract::decode_outcomes(out.into(), 1).unwrap(),
            [OwnedOutcome::Fail(
                "plugin was not initialised (init was not called)".into()
            )]
        );
    }
}
