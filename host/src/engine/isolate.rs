//! Poison-event isolation.
//!
//! When a call on a batch fails (trap, deadline, memory cap, malformed
//! outcome buffer), the instance is thrown away and rebuilt, and the batch
//! is split in two halves that are retried separately, recursively, until
//! every failing call covers exactly one event: that event gets
//! `Outcome::Fail(cause)`, every other event the outcome the plugin gave it.
//! A single poison event in a batch of n costs about 2·log2(n) extra calls.

use weir_contract::{Event, Outcome};

use super::error::PluginError;

/// Something that runs a batch and can be reset after a failed call.
pub(crate) trait BatchRunner {
    /// Run one call over `events`: one outcome per event, or the cause of
    /// the failed call.
    fn run(&mut self, events: &[Event]) -> Result<Vec<Outcome>, String>;
    /// Replace the state a failed call may have corrupted.
    fn reset(&mut self) -> Result<(), PluginError>;
}

/// Process `events`, isolating the events whose calls fail.
pub(crate) fn process_isolating<R: BatchRunner>(
    runner: &mut R,
    events: &[Event],
) -> Result<Vec<Outcome>, PluginError> {
    let mut outcomes = Vec::with_capacity(events.len());
    if !events.is_empty() {
        split(runner, events, &mut outcomes)?;
    }
    Ok(outcomes)
}

fn split<R: BatchRunner>(
    runner: &mut R,
    events: &[Event],
    outcomes: &mut Vec<Outcome>,
) -> Result<(), PluginError> {
    match runner.run(events) {
        Ok(done) => {
            outcomes.extend(done);
            Ok(())
        }
        Err(cause) => {
            runner.reset()?;
            if events.len() == 1 {
                tracing::debug!(cause = %cause, "isolated a poison event");
                outcomes.push(Outcome::Fail(cause));
                return Ok(());
            }
            let (left, right) = events.split_at(events.len() / 2);
            split(runner, left, outcomes)?;
            split(runner, right, outcomes)
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    /// Fails any call that contains an event whose value is `poison`, and
    /// counts calls and resets.
    struct Poisoned {
        calls: usize,
        resets: usize,
    }

    impl BatchRunner for Poisoned {
        fn run(&mut self, events: &[Event]) -> Result<Vec<Outcome>, String> {
            self.calls += 1;
            if events
                .iter()
                .any(|e| e.value.as_deref() == Some(b"poison".as_slice()))
            {
                return Err("boom".into());
            }
            Ok(events.iter().map(|_| Outcome::Drop).collect())
        }

        fn reset(&mut self) -> Result<(), PluginError> {
            self.resets += 1;
            Ok(())
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

    #[test]
    fn isolates_exactly_the_poison_events() {
        let mut runner = Poisoned {
            calls: 0,
            resets: 0,
        };
        let evs = events(1000, &[17, 640]);
        let out = process_isolating(&mut runner, &evs).unwrap();
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
        let mut runner = Poisoned {
            calls: 0,
            resets: 0,
        };
        let out = process_isolating(&mut runner, &events(64, &[])).unwrap();
        assert_eq!(out.len(), 64);
        assert_eq!((runner.calls, runner.resets), (1, 0));
        assert!(process_isolating(&mut runner, &[]).unwrap().is_empty());
    }
}
