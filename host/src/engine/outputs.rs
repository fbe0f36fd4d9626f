//! Caps on what a plugin's outcomes may hold, so a fan-out bomb fails its
//! own events instead of filling the host's memory.
//!
//! One [`OutputBudget`] is made per batch and checks the outcomes of the
//! batch's events in order, however many calls the isolation of poison
//! events splits the batch into: the per-batch caps are one budget for the
//! whole batch, never one per call. An event over a cap gets
//! `Outcome::Fail` with a reason naming the cap (its outputs are dropped on
//! the spot); `fail` reasons are cut to
//! [`MAX_REASON_BYTES`](super::limits::MAX_REASON_BYTES).

use weir_contract::{Outcome, Output};

use super::PluginLimits;
use super::limits::bound_reason;

/// What the outputs of one batch may still hold.
#[derive(Debug)]
pub(crate) struct OutputBudget {
    per_event_outputs: u64,
    per_event_bytes: u64,
    batch_outputs: u64,
    batch_bytes: u64,
    outputs_used: u64,
    bytes_used: u64,
}

/// Bytes an output holds (what it costs the host to keep and write it).
fn output_bytes(output: &Output) -> u64 {
    let len = |b: &Option<bytes::Bytes>| b.as_ref().map_or(0, |b| b.len());
    let headers: usize = output
        .headers
        .iter()
        .map(|h| h.key.len() + h.value.len())
        .sum();
    let total = len(&output.key)
        + len(&output.value)
        + headers
        + output.route.as_ref().map_or(0, String::len);
    total as u64
}

impl OutputBudget {
    /// A fresh budget for one batch.
    pub(crate) fn new(limits: &PluginLimits) -> Self {
        OutputBudget {
            per_event_outputs: limits.max_outputs_per_event,
            per_event_bytes: limits.max_output_bytes_per_event,
            batch_outputs: limits.max_outputs_per_batch,
            batch_bytes: limits.max_output_bytes_per_batch,
            outputs_used: 0,
            bytes_used: 0,
        }
    }

    /// Check the outcomes of the next events of the batch, in order: an
    /// event over a cap fails; `fail` reasons are cut to a sane length.
    pub(crate) fn check(&mut self, outcomes: &mut [Outcome]) {
        for outcome in outcomes.iter_mut() {
            let refused = match outcome {
                Outcome::Emit(outputs) if !outputs.is_empty() => self.admit(outputs),
                Outcome::Fail(reason) if reason.len() > super::limits::MAX_REASON_BYTES => {
                    Some(bound_reason(std::mem::take(reason)))
                }
                _ => None,
            };
            if let Some(reason) = refused {
                *outcome = Outcome::Fail(reason);
            }
        }
    }

    /// Take the outputs of one event out of the budget, or say which cap
    /// they break.
    fn admit(&mut self, outputs: &[Output]) -> Option<String> {
        let count = outputs.len() as u64;
        if count > self.per_event_outputs {
            return Some(format!(
                "the event emitted {count} outputs, over the cap of {} per event \
                 (limits.max_outputs_per_event)",
                self.per_event_outputs
            ));
        }
        let bytes: u64 = outputs.iter().map(output_bytes).sum();
        if bytes > self.per_event_bytes {
            return Some(format!(
                "the outputs of the event hold {bytes} bytes, over the cap of {} per event \
                 (limits.max_output_bytes_per_event)",
                self.per_event_bytes
            ));
        }
        if self.outputs_used + count > self.batch_outputs {
            return Some(format!(
                "the outputs of the batch would pass the cap of {} outputs per batch \
                 (limits.max_outputs_per_batch)",
                self.batch_outputs
            ));
        }
        if self.bytes_used + bytes > self.batch_bytes {
            return Some(format!(
                "the outputs of the batch would pass the cap of {} bytes per batch \
                 (limits.max_output_bytes_per_batch)",
                self.batch_bytes
            ));
        }
        self.outputs_used += count;
        self.bytes_used += bytes;
        None
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn emit(n: usize, value_len: usize) -> Outcome {
        Outcome::Emit(
            (0..n)
                .map(|_| Output {
                    value: Some(Bytes::from(vec![b'x'; value_len])),
                    ..Output::default()
                })
                .collect(),
        )
    }

    fn limits() -> PluginLimits {
        PluginLimits {
            max_outputs_per_event: 3,
            max_output_bytes_per_event: 100,
            max_outputs_per_batch: 5,
            max_output_bytes_per_batch: 250,
            ..PluginLimits::default()
        }
    }

    fn reason(o: &Outcome) -> &str {
        match o {
            Outcome::Fail(r) => r,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn per_event_caps_fail_the_event_and_name_the_cap() {
        let mut budget = OutputBudget::new(&limits());
        let mut out = vec![emit(4, 1), emit(1, 101), emit(3, 33), Outcome::Drop];
        budget.check(&mut out);
        assert!(
            reason(&out[0])
                .contains("4 outputs, over the cap of 3 per event (limits.max_outputs_per_event)")
        );
        assert!(reason(&out[1]).contains(
            "101 bytes, over the cap of 100 per event (limits.max_output_bytes_per_event)"
        ));
        assert_eq!(out[2], emit(3, 33));
        assert_eq!(out[3], Outcome::Drop);
    }

    #[test]
    fn the_batch_budget_is_shared_by_every_check() {
        // Two checks, as two calls of a bisected batch: together they may
        // hold no more than one batch's budget.
        let mut budget = OutputBudget::new(&limits());
        let mut first = vec![emit(2, 50), emit(2, 50)];
        budget.check(&mut first);
        assert_eq!(first, vec![emit(2, 50), emit(2, 50)]);
        let mut second = vec![emit(2, 10), emit(1, 60), emit(1, 50)];
        budget.check(&mut second);
        assert!(
            reason(&second[0])
                .contains("cap of 5 outputs per batch (limits.max_outputs_per_batch)")
        );
        assert!(
            reason(&second[1])
                .contains("cap of 250 bytes per batch (limits.max_output_bytes_per_batch)")
        );
        assert_eq!(second[2], emit(1, 50));
    }

    #[test]
    fn huge_fail_reasons_are_cut() {
        let mut budget = OutputBudget::new(&limits());
        let mut out = vec![Outcome::Fail("x".repeat(1 << 20))];
        budget.check(&mut out);
        assert!(reason(&out[0]).len() < 1100);
    }
}
