//! The typed world (`weir:transform/typed-plugin@0.2.0`): a batch crosses
//! the boundary as `list<event>` and comes back as `list<outcome>`.
//!
//! Lowering: the host's [`Event`]s are lowered through [`EventRef`], a
//! record of borrowed slices, so no key, value or header byte is copied on
//! the host side; the only copy is wasmtime's into the guest's memory. The
//! generated `event` type would own `Vec<u8>`s and cost a copy of every
//! byte list per call first.
//!
//! Lifting: the generated outcome types own their byte lists, which move
//! into the host's [`Bytes`] without a copy. The checks are those of the
//! packed decoder: one outcome per event (otherwise the call failed, as a
//! trap does); the output caps and the cut of long `fail` reasons apply
//! to the outcomes of both worlds alike, in `outputs`.

use bytes::Bytes;
use wasmtime::component::{ComponentType, Func, Lower};
use wasmtime::{AsContextMut, Store};
use weir_contract::{Event, Header, Op, Outcome, Output};

use super::bindings::typed::weir::transform::types as wit;
use super::state::HostState;

/// A header of an event, borrowed.
#[derive(ComponentType, Lower)]
#[component(record)]
struct HeaderRef<'a> {
    key: &'a str,
    value: &'a [u8],
}

/// An event, borrowed: the WIT `event` record.
#[derive(ComponentType, Lower)]
#[component(record)]
struct EventRef<'a> {
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    #[component(name = "old-value")]
    old_value: Option<&'a [u8]>,
    op: wit::Op,
    #[component(name = "timestamp-ms")]
    timestamp_ms: i64,
    origin: &'a str,
    headers: Vec<HeaderRef<'a>>,
}

impl<'a> EventRef<'a> {
    fn of(event: &'a Event) -> Self {
        EventRef {
            key: event.key.as_deref(),
            value: event.value.as_deref(),
            old_value: event.old_value.as_deref(),
            op: wit_op(event.op),
            timestamp_ms: event.timestamp_ms,
            origin: &event.origin,
            // `Vec::new` does not allocate: only events with headers pay.
            headers: event
                .headers
                .iter()
                .map(|h| HeaderRef {
                    key: &h.key,
                    value: &h.value,
                })
                .collect(),
        }
    }
}

/// The signature of `typed-plugin.process` with borrowed events.
type Process<'a> = wasmtime::component::TypedFunc<(&'a [EventRef<'a>],), (Vec<wit::Outcome>,)>;

/// Check that `process` has the signature this module lowers and lifts,
/// so a mismatch is a load error and not a failure of every batch.
pub(crate) fn typecheck(store: &Store<HostState>, process: &Func) -> wasmtime::Result<()> {
    process.typed::<(&[EventRef<'_>],), (Vec<wit::Outcome>,)>(store)?;
    Ok(())
}

/// Call `process` on `events`: the lifted outcomes, checked and
/// converted, or the cause of the failed call (a trap as wasmtime reports
/// it in `Err(Ok)`, a wrong outcome count in `Err(Err)`).
pub(crate) fn process(
    mut store: impl AsContextMut<Data = HostState>,
    process: &Func,
    events: &[Event],
) -> Result<Vec<Outcome>, CallError> {
    let batch: Vec<EventRef<'_>> = events.iter().map(EventRef::of).collect();
    // Checked once at load (`typecheck`); repeating it per batch is a
    // walk over one signature, far below the cost of lowering the batch.
    let func: Process<'_> = process.typed(&store).map_err(CallError::Trap)?;
    let (outcomes,) = func.call(&mut store, (&batch,)).map_err(CallError::Trap)?;
    convert_outcomes(outcomes, events.len()).map_err(CallError::Malformed)
}

/// Why a typed call failed.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The call itself failed: trap, deadline, memory cap.
    Trap(wasmtime::Error),
    /// The call returned, but its outcomes break the contract.
    Malformed(String),
}

/// The host's outcomes of the outcomes a plugin returned for `expected`
/// events.
fn convert_outcomes(outcomes: Vec<wit::Outcome>, expected: usize) -> Result<Vec<Outcome>, String> {
    if outcomes.len() != expected {
        return Err(format!(
            "{} outcomes returned for a batch of {expected} events",
            outcomes.len()
        ));
    }
    Ok(outcomes.into_iter().map(convert_outcome).collect())
}

fn convert_outcome(outcome: wit::Outcome) -> Outcome {
    match outcome {
        wit::Outcome::Emit(outputs) => {
            Outcome::Emit(outputs.into_iter().map(convert_output).collect())
        }
        wit::Outcome::Drop => Outcome::Drop,
        wit::Outcome::Fail(reason) => Outcome::Fail(reason),
    }
}

fn convert_output(output: wit::Output) -> Output {
    Output {
        route: output.route,
        key: output.key.map(Bytes::from),
        value: output.value.map(Bytes::from),
        op: host_op(output.op),
        headers: output
            .headers
            .into_iter()
            .map(|h| Header {
                key: h.key,
                value: Bytes::from(h.value),
            })
            .collect(),
        ttl_seconds: output.ttl_seconds,
    }
}

fn wit_op(op: Op) -> wit::Op {
    match op {
        Op::Insert => wit::Op::Insert,
        Op::Upsert => wit::Op::Upsert,
        Op::Delete => wit::Op::Delete,
    }
}

fn host_op(op: wit::Op) -> Op {
    match op {
        wit::Op::Insert => Op::Insert,
        wit::Op::Upsert => Op::Upsert,
        wit::Op::Delete => Op::Delete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_outcome_count_fails_the_call() {
        let err = convert_outcomes(vec![wit::Outcome::Drop], 2).unwrap_err();
        assert_eq!(err, "1 outcomes returned for a batch of 2 events");
    }

    #[test]
    fn outputs_keep_every_field() {
        let out = convert_outcomes(
            vec![
                wit::Outcome::Emit(vec![wit::Output {
                    route: Some("orders".into()),
                    key: Some(b"k".to_vec()),
                    value: None,
                    op: wit::Op::Delete,
                    ttl_seconds: Some(7),
                    headers: vec![wit::Header {
                        key: "h".into(),
                        value: b"v".to_vec(),
                    }],
                }]),
                wit::Outcome::Fail("bad".into()),
            ],
            2,
        )
        .unwrap();
        assert_eq!(
            out,
            vec![
                Outcome::Emit(vec![Output {
                    route: Some("orders".into()),
                    key: Some(Bytes::from_static(b"k")),
                    value: None,
                    op: Op::Delete,
                    headers: vec![Header::new("h", Bytes::from_static(b"v"))],
                    ttl_seconds: Some(7),
                }]),
                Outcome::Fail("bad".into()),
            ]
        );
    }
}
