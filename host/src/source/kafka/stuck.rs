//! A partition that stops moving without any error: librdkafka fetches it
//! at one offset, gets bytes it cannot take a record from, and says nothing.
//!
//! The known cause is an uncompressed record batch whose records are
//! garbage (a broker that stores what a faulty producer sent). librdkafka
//! reads past the batch's end, takes that for "the fetch was too small",
//! doubles the fetch size up to 1 GiB and then keeps quiet: no consume
//! error, so the undecodable-batch skipping of [`super::corrupt`] never
//! starts, and the partition's lag only grows. A record larger than the
//! biggest fetch looks the same.
//!
//! Nothing can be skipped safely here (the batch's length is in bytes
//! librdkafka does not hand out, and a probe that "gets nothing" cannot be
//! told from a slow broker, so probing could skip readable records). What
//! Weir does is make the stop loud: from librdkafka's statistics it sees a
//! partition with records past its position, nothing queued for the
//! application, and a position that has not moved for `stuck_after_ms`
//! while the pipeline kept asking for records; it then logs a warning
//! naming the topic, partition and offset, sets
//! `weir_source_kafka_partition_stuck` to 1, and reports the source not
//! ready on `/health/ready` until the partition moves again.

use std::collections::HashMap;
use std::sync::Mutex;

/// What librdkafka's statistics say of one partition at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Observation {
    /// librdkafka's fetch state is `active` (not paused, not looking up an
    /// offset).
    pub fetching: bool,
    /// The next offset librdkafka fetches.
    pub next_offset: i64,
    /// One past the last record handed to the application (-1 before the
    /// first).
    pub app_offset: i64,
    /// The partition's high watermark.
    pub hi_offset: i64,
    /// Its last stable offset (-1 when unknown): with `read_committed`
    /// (librdkafka's default) nothing past it can be read yet, so an open
    /// transaction is not a stop.
    pub ls_offset: i64,
    /// Records fetched and waiting for the application.
    pub fetchq_cnt: i64,
    /// The pipeline asked the source for records since the last
    /// observation (a pipeline held up by its sinks is not a stuck
    /// partition).
    pub polled: bool,
}

impl Observation {
    /// The offset the partition sits at.
    fn position(&self) -> i64 {
        self.next_offset.max(self.app_offset)
    }

    /// Where the readable records end.
    fn end(&self) -> i64 {
        if self.ls_offset >= 0 {
            self.hi_offset.min(self.ls_offset)
        } else {
            self.hi_offset
        }
    }

    /// Whether this moment looks like a stop: readable records past the
    /// position, none on their way.
    fn looks_stuck(&self) -> bool {
        self.fetching
            && self.polled
            && self.fetchq_cnt == 0
            && self.position() >= 0
            && self.end() > self.position()
    }
}

/// What an observation changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Nothing to say.
    Quiet,
    /// The partition has just been found stuck.
    Stuck {
        /// Where it sits.
        offset: i64,
        /// The partition's high watermark.
        high: i64,
        /// How long it has sat there, in ms.
        for_ms: i64,
    },
    /// A partition reported stuck moves again.
    Moving {
        /// Where it sat.
        offset: i64,
    },
}

#[derive(Debug, Clone)]
struct Watch {
    /// The position last seen.
    offset: i64,
    /// Since when it has looked stuck at `offset` (ms), if it does.
    since_ms: Option<i64>,
    /// Whether it was reported stuck.
    reported: bool,
}

/// The stuck-partition detector of one consumer.
#[derive(Debug)]
pub(super) struct StuckPartitions {
    /// How long a partition must look stuck at one offset; 0 turns the
    /// detector off.
    after_ms: i64,
    watches: Mutex<HashMap<(String, i32), Watch>>,
}

impl StuckPartitions {
    pub(super) fn new(after_ms: u64) -> Self {
        StuckPartitions {
            after_ms: i64::try_from(after_ms).unwrap_or(i64::MAX),
            watches: Mutex::default(),
        }
    }

    /// Take one observation of `topic`/`partition` at `now_ms`.
    pub(super) fn observe(
        &self,
        topic: &str,
        partition: i32,
        seen: &Observation,
        now_ms: i64,
    ) -> Verdict {
        if self.after_ms == 0 {
            return Verdict::Quiet;
        }
        let Ok(mut watches) = self.watches.lock() else {
            return Verdict::Quiet;
        };
        let offset = seen.position();
        let watch = watches
            .entry((topic.to_owned(), partition))
            .or_insert(Watch {
                offset,
                since_ms: None,
                reported: false,
            });
        let moved = watch.offset != offset;
        let was_reported = watch.reported;
        if moved || !seen.looks_stuck() {
            let old = watch.offset;
            *watch = Watch {
                offset,
                since_ms: seen.looks_stuck().then_some(now_ms),
                reported: false,
            };
            return if was_reported {
                Verdict::Moving { offset: old }
            } else {
                Verdict::Quiet
            };
        }
        let since = *watch.since_ms.get_or_insert(now_ms);
        let for_ms = now_ms.saturating_sub(since);
        if !watch.reported && for_ms >= self.after_ms {
            watch.reported = true;
            return Verdict::Stuck {
                offset,
                high: seen.end(),
                for_ms,
            };
        }
        Verdict::Quiet
    }

    /// Forget a partition (revoked): it is no longer this consumer's.
    pub(super) fn forget(&self, topic: &str, partition: i32) {
        if let Ok(mut watches) = self.watches.lock() {
            watches.remove(&(topic.to_owned(), partition));
        }
    }

    /// Whether `topic`/`partition` is reported stuck now.
    pub(super) fn is_stuck(&self, topic: &str, partition: i32) -> bool {
        self.watches.lock().is_ok_and(|w| {
            w.get(&(topic.to_owned(), partition))
                .is_some_and(|w| w.reported)
        })
    }

    /// The partitions reported stuck, with their offsets, sorted.
    pub(super) fn stuck(&self) -> Vec<(String, i32, i64)> {
        let Ok(watches) = self.watches.lock() else {
            return Vec::new();
        };
        let mut stuck: Vec<_> = watches
            .iter()
            .filter(|(_, w)| w.reported)
            .map(|((t, p), w)| (t.clone(), *p, w.offset))
            .collect();
        stuck.sort();
        stuck
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stalled(at: i64) -> Observation {
        Observation {
            fetching: true,
            next_offset: at,
            app_offset: at,
            hi_offset: at + 10,
            ls_offset: at + 10,
            fetchq_cnt: 0,
            polled: true,
        }
    }

    #[test]
    fn a_partition_sitting_below_its_high_watermark_is_reported_once_after_the_threshold() {
        let d = StuckPartitions::new(1000);
        assert_eq!(d.observe("t", 0, &stalled(3), 0), Verdict::Quiet);
        assert_eq!(d.observe("t", 0, &stalled(3), 999), Verdict::Quiet);
        assert_eq!(
            d.observe("t", 0, &stalled(3), 1000),
            Verdict::Stuck {
                offset: 3,
                high: 13,
                for_ms: 1000
            }
        );
        assert_eq!(d.observe("t", 0, &stalled(3), 5000), Verdict::Quiet);
        assert_eq!(d.stuck(), [("t".to_owned(), 0, 3)]);
        assert!(d.is_stuck("t", 0) && !d.is_stuck("t", 1));
        // It moves: reported once, and no longer stuck.
        assert_eq!(
            d.observe("t", 0, &stalled(9), 6000),
            Verdict::Moving { offset: 3 }
        );
        assert!(d.stuck().is_empty());
    }

    #[test]
    fn records_waiting_a_pipeline_not_asking_or_a_caught_up_partition_are_not_stuck() {
        let d = StuckPartitions::new(1000);
        let queued = Observation {
            fetchq_cnt: 500,
            ..stalled(3)
        };
        let not_polled = Observation {
            polled: false,
            ..stalled(3)
        };
        let caught_up = Observation {
            hi_offset: 3,
            ls_offset: 3,
            ..stalled(3)
        };
        // An open transaction: the records past the last stable offset
        // cannot be read yet.
        let open_transaction = Observation {
            ls_offset: 3,
            ..stalled(3)
        };
        let paused = Observation {
            fetching: false,
            ..stalled(3)
        };
        for (p, seen) in [queued, not_polled, caught_up, open_transaction, paused]
            .iter()
            .enumerate()
        {
            let p = i32::try_from(p).expect("small");
            for now in [0, 2000, 10_000] {
                assert_eq!(d.observe("t", p, seen, now), Verdict::Quiet, "{seen:?}");
            }
        }
        assert!(d.stuck().is_empty());
    }

    #[test]
    fn a_pause_in_the_middle_restarts_the_clock_and_zero_turns_the_detector_off() {
        let d = StuckPartitions::new(1000);
        d.observe("t", 0, &stalled(3), 0);
        let not_polled = Observation {
            polled: false,
            ..stalled(3)
        };
        d.observe("t", 0, &not_polled, 800);
        assert_eq!(d.observe("t", 0, &stalled(3), 900), Verdict::Quiet);
        assert_eq!(d.observe("t", 0, &stalled(3), 1800), Verdict::Quiet);
        assert!(matches!(
            d.observe("t", 0, &stalled(3), 1900),
            Verdict::Stuck { .. }
        ));

        let off = StuckPartitions::new(0);
        for now in [0, 10_000, 1_000_000] {
            assert_eq!(off.observe("t", 0, &stalled(3), now), Verdict::Quiet);
        }
    }
}
