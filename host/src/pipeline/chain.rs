//! Running a batch through a pipeline's plugin chain.
//!
//! The outputs of one plugin are the events of the next. Every output keeps
//! the index of the source event it descends from, so that dead letters and
//! acknowledgements can be traced back to the source position.

use std::borrow::Cow;

use crate::engine::{PluginError, Transform, bound_reason};
use crate::event::{Event, Outcome, Output};
use crate::source::Unreadable;
use crate::telemetry::{self, KeyValue};

/// An output of the last plugin, with the source event it descends from.
#[derive(Debug, Clone)]
pub struct RoutedOutput {
    /// Index of the source event in the batch.
    pub event: usize,
    /// The output, with route and ttl inherited from earlier plugins where
    /// the last one did not set them.
    pub output: Output,
}

/// An event a plugin failed (or the engine isolated as poison).
#[derive(Debug, Clone)]
pub struct FailedEvent {
    /// Index of the source event in the batch.
    pub event: usize,
    /// The plugin that failed it.
    pub plugin: String,
    /// Why.
    pub reason: String,
}

/// What the chain made of a batch.
#[derive(Debug, Default)]
pub struct ChainResult {
    /// Outputs to route, in event order.
    pub outputs: Vec<RoutedOutput>,
    /// Events to dead-letter.
    pub failed: Vec<FailedEvent>,
    /// Events filtered out (at any stage).
    pub dropped: usize,
}

/// The event the next plugin sees for an output of the previous one: the
/// output's key, value, op and headers, with the source event's time,
/// origin and old value. The output's parts are moved, not cloned: a
/// clone of a plugin output's `Bytes` (a slice of the outcome buffer)
/// allocated a shared header per key and value.
fn next_event(input: &Event, output: Output) -> Event {
    Event {
        key: output.key,
        value: output.value,
        old_value: input.old_value.clone(),
        op: output.op,
        headers: output.headers,
        timestamp_ms: input.timestamp_ms,
        origin: input.origin.clone(),
    }
}

/// The output an event becomes when the chain is empty.
fn passthrough(event: &Event) -> Output {
    Output {
        route: None,
        key: event.key.clone(),
        value: event.value.clone(),
        op: event.op,
        headers: event.headers.clone(),
        ttl_seconds: None,
    }
}

/// What an intermediate event carries besides itself: the index of its
/// source event, and the route and ttl an earlier plugin chose.
type Lineage = (usize, Option<String>, Option<u32>);

/// What [`FailedEvent::plugin`] says for an event the source could not
/// read whole (see [`Unreadable`]).
pub const SOURCE_STAGE: &str = "(source)";

/// Run `events` through `chain`. The `unreadable` ones go straight to
/// [`ChainResult::failed`] (as failed by [`SOURCE_STAGE`]); no plugin sees
/// them.
///
/// An `Err` means a plugin can no longer run at all (it cannot be
/// re-instantiated); the pipeline must stop without committing the batch.
pub fn run_chain(
    chain: &mut [Box<dyn Transform>],
    pipeline: &str,
    events: &[Event],
    unreadable: &[Unreadable],
) -> Result<ChainResult, PluginError> {
    let mut result = ChainResult::default();
    let mut skip = vec![false; events.len()];
    for u in unreadable {
        // An index out of range would be a source bug; such an entry names
        // no event and is ignored rather than trusted.
        if let Some(flag) = skip.get_mut(u.index)
            && !*flag
        {
            *flag = true;
            result.failed.push(FailedEvent {
                event: u.index,
                plugin: SOURCE_STAGE.to_owned(),
                reason: u.reason.clone(),
            });
        }
    }
    let readable = || (0..events.len()).filter(|&i| !skip[i]);
    if chain.is_empty() {
        result.outputs = readable()
            .map(|i| RoutedOutput {
                event: i,
                output: passthrough(&events[i]),
            })
            .collect();
        return Ok(result);
    }

    // The first stage reads the source batch itself; later stages read the
    // events made from the previous stage's outputs.
    let mut current: Cow<'_, [Event]> = if result.failed.is_empty() {
        Cow::Borrowed(events)
    } else {
        Cow::Owned(readable().map(|i| events[i].clone()).collect())
    };
    let mut lineage: Vec<Lineage> = readable().map(|i| (i, None, None)).collect();
    let stages = chain.len();
    for (stage, transform) in chain.iter_mut().enumerate() {
        let last = stage + 1 == stages;
        let outcomes = call(transform.as_mut(), pipeline, &current)?;
        let mut next_events = Vec::new();
        let mut next_lineage = Vec::new();
        for ((outcome, input), (source, route, ttl)) in
            outcomes.into_iter().zip(current.iter()).zip(lineage)
        {
            match outcome {
                Outcome::Drop => result.dropped += 1,
                Outcome::Emit(outputs) if outputs.is_empty() => result.dropped += 1,
                Outcome::Fail(reason) => result.failed.push(FailedEvent {
                    event: source,
                    plugin: transform.name().to_owned(),
                    // Whatever the transform: a reason reaches logs,
                    // dead-letter headers and records, so it is bounded.
                    reason: bound_reason(reason),
                }),
                Outcome::Emit(outputs) => {
                    for mut output in outputs {
                        if output.route.is_none() {
                            output.route.clone_from(&route);
                        }
                        if output.ttl_seconds.is_none() {
                            output.ttl_seconds = ttl;
                        }
                        if last {
                            result.outputs.push(RoutedOutput {
                                event: source,
                                output,
                            });
                        } else {
                            next_lineage.push((source, output.route.take(), output.ttl_seconds));
                            next_events.push(next_event(input, output));
                        }
                    }
                }
            }
        }
        current = Cow::Owned(next_events);
        lineage = next_lineage;
    }
    Ok(result)
}

/// Call one plugin and check it kept the contract's one-outcome-per-event rule.
fn call(
    transform: &mut dyn Transform,
    pipeline: &str,
    inputs: &[Event],
) -> Result<Vec<Outcome>, PluginError> {
    if inputs.is_empty() {
        return Ok(Vec::new());
    }
    // The plugin's stage records the call's duration and CPU time.
    let mut span = telemetry::current_child("weir.plugin", || {
        vec![
            KeyValue::new("weir.plugin", transform.name().to_owned()),
            KeyValue::new(
                "weir.events",
                i64::try_from(inputs.len()).unwrap_or(i64::MAX),
            ),
        ]
    });
    let outcomes = transform
        .process_batch(inputs)
        .inspect_err(|e| span.fail(e))?;
    if span.is_recording() {
        record_outcomes(&mut span, &outcomes);
    }
    drop(span);
    debug_assert_eq!(
        outcomes.len(),
        inputs.len(),
        "plugin `{}` of pipeline `{pipeline}`: the engine checks the outcome count",
        transform.name()
    );
    Ok(outcomes)
}

/// The outputs and failures of one plugin call, on its span.
fn record_outcomes(span: &mut telemetry::StageSpan, outcomes: &[Outcome]) {
    let emitted = outcomes
        .iter()
        .map(|o| match o {
            Outcome::Emit(outputs) => outputs.len(),
            _ => 0,
        })
        .sum();
    let failed = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Fail(_)))
        .count();
    span.set_count("weir.outputs", emitted);
    span.set_count("weir.failed", failed);
}
