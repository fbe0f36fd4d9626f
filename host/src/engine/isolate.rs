//! Poison-event isolation.
//!
//! When a call on a batch fails (trap, deadline, memory cap, malformed
//! outcome buffer), the instance is thrown away and rebuilt, and the batch
//! is split in two halves that are retried separately, recursively, until
//! every failing call covers exactly one event: that event gets
//! `Outcome::Fail(cause)`, every other event the outcome the plugin gave it.
//! A single poison event in a batch of n costs about 2·log2(n) extra calls.
//!
//! The cost is bounded: the failed calls of one batch may take
//! `limits.isolation_budget_ms` in all. Once that is spent, a group of
//! events still to isolate gets one call and, if it fails, every event of
//! the group fails with the cause instead of being split further; so a
//! batch where every event loops costs the budget plus about log2(n)
//! deadlines, not 2n−1. Between calls, isolation stops when the host shuts
//! down ([`BatchRunner::interrupted`]): the batch is then not finished and
//! not committed, and is read again after the restart.
//!
//! Outcomes of successful calls go through one [`OutputBudget`] per batch,
//! in event order, so however the batch is split the outputs of the batch
//! hold at most one batch's budget.

use std::time::{Duration, Instant};

use weir_contract::{Event, Outcome};

use super::error::PluginError;
use super::limits::bound_reason;
use super::outputs::OutputBudget;

/// Something that runs a batch and can be reset after a failed call.
pub(crate) trait BatchRunner {
    /// Run one call over `events`: one outcome per event, or the cause of
    /// the failed call.
    fn run(&mut self, events: &[Event]) -> Result<Vec<Outcome>, String>;
    /// Replace the state a failed call may have corrupted.
    fn reset(&mut self) -> Result<(), PluginError>;
    /// `Some(error)` once the host is shutting down: isolation stops.
    fn interrupted(&self) -> Option<PluginError>;
    /// `Some(error)` when the failed call failed because a lookup store
    /// was unavailable, not because of its events: isolation stops and
    /// the batch is retried whole.
    fn outage(&mut self) -> Option<PluginError> {
        None
    }
}

/// What one batch's isolation may spend.
#[derive(Debug)]
pub(crate) struct Budget {
    /// Time the failed calls may take in all.
    pub(crate) failed_calls: Duration,
    /// What the outputs may hold.
    pub(crate) outputs: OutputBudget,
}

struct Isolation<'a, R> {
    runner: &'a mut R,
    budget: Budget,
    spent: Duration,
    failed_calls: usize,
}

/// Process `events`, isolating the events whose calls fail.
pub(crate) fn process_isolating<R: BatchRunner>(
    runner: &mut R,
    events: &[Event],
    budget: Budget,
) -> Result<Vec<Outcome>, PluginError> {
    let mut outcomes = Vec::with_capacity(events.len());
    if !events.is_empty() {
        let mut isolation = Isolation {
            runner,
            budget,
            spent: Duration::ZERO,
            failed_calls: 0,
        };
        isolation.split(events, &mut outcomes)?;
    }
    Ok(outcomes)
}

impl<R: BatchRunner> Isolation<'_, R> {
    fn split(&mut self, events: &[Event], outcomes: &mut Vec<Outcome>) -> Result<(), PluginError> {
        if self.failed_calls > 0
            && let Some(err) = self.runner.interrupted()
        {
            return Err(err);
        }
        let started = Instant::now();
        let cause = match self.runner.run(events) {
            Ok(mut done) => {
                self.budget.outputs.check(&mut done);
                outcomes.extend(done);
                return Ok(());
            }
            Err(cause) => bound_reason(cause),
        };
        if let Some(err) = self.runner.outage() {
            return Err(err);
        }
        self.spent += started.elapsed();
        self.failed_calls += 1;
        if let Some(err) = self.runner.interrupted() {
            return Err(err);
        }
        self.runner.reset()?;
        if events.len() == 1 {
            tracing::debug!(cause = %cause, "isolated a poison event");
            outcomes.push(Outcome::Fail(cause));
            return Ok(());
        }
        if self.spent >= self.budget.failed_calls {
            let reason = bound_reason(format!(
                "not isolated: the failed calls of this batch used up their time \
                 (limits.isolation_budget_ms = {} ms, {} failed calls); the call over this \
                 event and {} others failed: {cause}",
                self.budget.failed_calls.as_millis(),
                self.failed_calls,
                events.len() - 1
            ));
            tracing::warn!(events = events.len(), reason = %reason, "poison-event isolation budget spent");
            outcomes.extend(std::iter::repeat_n(Outcome::Fail(reason), events.len()));
            return Ok(());
        }
        let (left, right) = events.split_at(events.len() / 2);
        self.split(left, outcomes)?;
        self.split(right, outcomes)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use bytes::Bytes;

    use super::*;
    use crate::engine::{PluginErrorKind, PluginLimits};

    /// Fails any call that contains an event whose value is `poison`
    /// (sleeping `cost` first, as a call running to its deadline would),
    /// counts calls and resets, and reports a shutdown after
    /// `shutdown_after` failed calls.
    #[derive(Default)]
    struct Poisoned {
        calls: usize,
        resets: usize,
        failed: usize,
        cost: Duration,
        shutdown_after: Option<usize>,
    }

    impl BatchRunner for Poisoned {
        fn run(&mut self, events: &[Event]) -> Result<Vec<Outcome>, String> {
            self.calls += 1;
            if events
                .iter()
                .any(|e| e.value.as_deref() == Some(b"poison".as_slice()))
            {
                self.failed += 1;
                std::thread::sleep(self.cost);
                return Err("boom".into());
            }
            Ok(events.iter().map(|_| Outcome::Drop).collect())
        }

        fn reset(&mut self) -> Result<(), PluginError> {
            self.resets += 1;
            Ok(())
        }

        fn interrupted(&self) -> Option<PluginError> {
            self.shutdown_after
                .filter(|&n| self.failed >= n)
                .map(|_| PluginError {
                    plugin: "p".into(),
                    path: PathBuf::from("p.wasm"),
                    kind: PluginErrorKind::Interrupted,
                })
        }
    }

    fn events(n: usize, poison: &[usize]) -> Vec<Event> {
        (0..n)
            .map(|i| Event {
                value: Some(if poison.contains(&i) {
                    Bytes::from_static(b"poison")
                } else {
                    Bytes::from_static(b"{}")
                }),
                ..Event::default()
            })
            .collect()
    }

    fn budget(ms: u64) -> Budget {
        Budget {
            failed_calls: Duration::from_millis(ms),
            outputs: OutputBudget::new(&PluginLimits::default()),
        }
    }

    #[test]
    fn isolates_exactly_the_poison_events() {
        let mut runner = Poisoned::default();
        let evs = events(1000, &[17, 640]);
        let out = process_isolating(&mut runner, &evs, budget(30_000)).unwrap();
        assert_eq!(out.len(), 1000);
        for (i, o) in out.iter().enumerate() {
            if i == 17 || i == 640 {
                assert_eq!(o, &Outcome::Fail("boom".into()));
            } else {
                assert_eq!(o, &Outcome::Drop);
            }
        }
        assert!(runner.calls < 60, "{} calls", runner.calls);
    }

    #[test]
    fn clean_batch_is_one_call() {
        let mut runner = Poisoned::default();
        let out = process_isolating(&mut runner, &events(64, &[]), budget(30_000)).unwrap();
        assert_eq!(out.len(), 64);
        assert_eq!((runner.calls, runner.resets), (1, 0));
        assert!(
            process_isolating(&mut runner, &[], budget(30_000))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_batch_where_every_event_fails_costs_the_budget_not_2n_minus_1_calls() {
        // Each failed call takes at least 1 ms; the budget is 10 ms. Without
        // a budget this batch takes 2·256−1 = 511 failed calls.
        let mut runner = Poisoned {
            cost: Duration::from_millis(1),
            ..Poisoned::default()
        };
        let all: Vec<usize> = (0..256).collect();
        let out = process_isolating(&mut runner, &events(256, &all), budget(10)).unwrap();
        assert_eq!(out.len(), 256);
        // At most 10 calls inside the budget, then one call per pending
        // group (at most one per level of the split: log2(256) = 8).
        assert!(runner.failed <= 10 + 9, "{} failed calls", runner.failed);
        for o in &out {
            let Outcome::Fail(reason) = o else {
                panic!("expected a failure, got {o:?}");
            };
            assert!(
                reason == "boom"
                    || (reason.starts_with("not isolated: the failed calls of this batch used up their time (limits.isolation_budget_ms = 10 ms")
                        && reason.ends_with("failed: boom")),
                "{reason}"
            );
        }
    }

    #[test]
    fn shutdown_stops_isolation_between_calls() {
        let mut runner = Poisoned {
            shutdown_after: Some(3),
            ..Poisoned::default()
        };
        let all: Vec<usize> = (0..64).collect();
        let err = process_isolating(&mut runner, &events(64, &all), budget(30_000)).unwrap_err();
        assert_eq!(err.kind, PluginErrorKind::Interrupted);
        assert_eq!(runner.calls, 3);
    }
}
