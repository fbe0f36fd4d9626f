//! Record batches librdkafka cannot decode (a garbage compressed payload,
//! a codec this build lacks, a CRC mismatch): dead-lettered and skipped,
//! never a partition that stops for good.
//!
//! Such a batch never arrives as records. Every fetch of its partition ends
//! in the same consume error, which carries the batch's base offset, and
//! librdkafka's fetch position does not move. Seeking one offset on does
//! not help (the broker returns whole batches, so the same error comes
//! back), and the batch's length is in its header, which librdkafka does
//! not hand out. So the batch's end is found by probing: seek the partition
//! to an offset and see what it answers. The same error at the same base
//! offset means the probe is still inside the batch; a record (at or after
//! the probe) means it is past it. Probes gallop (1, 2, 4, ... records on),
//! never beyond the partition's high watermark, then bisect: a batch of n
//! records costs about 2·log2(n) fetches. Only that exact error counts as
//! "inside", so no readable record is ever taken for part of the batch.
//!
//! The skipped range `[base, end)` then becomes one event marked unreadable
//! whose value describes it (topic, partition, offsets, librdkafka's error);
//! the pipeline dead-letters it and commits `end` only once that dead
//! letter is written. The partition is sought to `end`.
//!
//! The partition and offset come from the consumer context's
//! `consume_error` callback (see vendor/rdkafka/PATCHED.md): rdkafka's
//! `KafkaError::MessageConsumption` carries only the code. The callback
//! runs on the polling thread just before that error is returned, so the
//! reports queue up in the order the errors are received.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use rdkafka::consumer::ConsumeError;
use rdkafka::error::RDKafkaErrorCode;

use crate::event::{Event, Op};

/// At most this many reports wait for their error (errors received while
/// leaving the group are never asked for).
const MAX_REPORTS: usize = 64;

/// A consume error as the context saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ConsumeReport {
    /// The topic, when the error is about one partition.
    pub topic: Option<String>,
    /// The partition, or -1.
    pub partition: i32,
    /// For a batch that cannot be decoded: its base offset.
    pub offset: i64,
    /// The error code.
    pub code: RDKafkaErrorCode,
    /// librdkafka's text of the error.
    pub reason: String,
}

impl From<&ConsumeError<'_>> for ConsumeReport {
    fn from(e: &ConsumeError<'_>) -> Self {
        ConsumeReport {
            topic: e.topic.map(str::to_owned),
            partition: e.partition,
            offset: e.offset,
            code: e.code,
            reason: e.reason.to_owned(),
        }
    }
}

/// Whether `code` means the bytes at the reported offset cannot be decoded,
/// so fetching them again can only fail again.
pub(super) fn is_undecodable(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::BadCompression
            | RDKafkaErrorCode::BadMessage
            | RDKafkaErrorCode::NotImplemented
    )
}

/// What the source does next for a partition being skipped.
#[derive(Debug, PartialEq)]
pub(super) enum Step {
    /// The partition is not being skipped: handle the record or error as
    /// usual.
    NotSkipping,
    /// Nothing to do (an answer that says nothing about the probe).
    Wait,
    /// Seek the partition to this offset (the next probe).
    Seek(i64),
    /// The batch reaches past the partition's high watermark (a broker
    /// that says so is wrong, but one was seen to): nothing can be probed
    /// until more records are written; the partition counts as read to its
    /// end meanwhile.
    Blocked,
    /// The batch ends before `end`: seek there and hand out `event`, which
    /// is unreadable for `reason`.
    Done {
        /// The first offset after the batch.
        end: i64,
        /// The event standing for the skipped range.
        event: Event,
        /// Why it is dead-lettered.
        reason: String,
    },
}

/// One batch whose end is being looked for.
#[derive(Debug, Clone)]
struct Skip {
    topic: String,
    partition: i32,
    /// The batch's base offset, from the error.
    base: i64,
    code: RDKafkaErrorCode,
    reason: String,
    /// The highest offset known to be inside the batch.
    inside: i64,
    /// The lowest offset known to be past it (at first, the high
    /// watermark: a written batch ends before it).
    past: i64,
    /// Whether a probe has answered "past" (then bisect, else gallop).
    bisecting: bool,
    /// How far the next galloping probe goes beyond `inside`.
    stride: i64,
    /// The offset sought and not answered yet.
    probe: Option<i64>,
    /// When the skip began (the event's timestamp).
    started_ms: i64,
    /// The first offset dead-lettered: `base`, or where an earlier skip of
    /// the same batch ended (see [`Skips::start`]).
    first: i64,
}

impl Skip {
    /// The next probe, or the end once `inside` and `past` meet.
    fn next(&mut self) -> Step {
        if self.past <= self.inside + 1 {
            self.probe = None;
            return self.done();
        }
        let probe = if self.bisecting {
            self.inside + (self.past - self.inside) / 2
        } else {
            let probe = self.inside.saturating_add(self.stride).min(self.past - 1);
            self.stride = self.stride.saturating_mul(2);
            probe
        };
        self.probe = Some(probe);
        Step::Seek(probe)
    }

    fn done(&self) -> Step {
        let (first, last) = (self.first, self.past - 1);
        let reason = format!(
            "record batch at offsets {first}..={last} of topic `{}` partition {} cannot be \
             decoded (librdkafka: {}: {}); skipped",
            self.topic, self.partition, self.code, self.reason
        );
        let description = serde_json::json!({
            "topic": self.topic,
            "partition": self.partition,
            "first_offset": first,
            "last_offset": last,
            "error": format!("{}: {}", self.code, self.reason),
        });
        let event = Event {
            key: None,
            op: Op::Insert,
            value: Some(Bytes::from(description.to_string())),
            old_value: None,
            headers: Vec::new(),
            timestamp_ms: self.started_ms,
            origin: format!("{}/{}/{first}", self.topic, self.partition),
        };
        Step::Done {
            end: self.past,
            event,
            reason,
        }
    }
}

/// The skips of one source, and the consume errors reported by its
/// context; shared by the two.
#[derive(Debug, Default)]
pub(super) struct Skips {
    /// How many partitions are being skipped (read on every record before
    /// taking the lock).
    active: AtomicUsize,
    skips: Mutex<HashMap<(String, i32), Skip>>,
    /// `(base, end)` of the last batch skipped per partition, to tell the
    /// same batch coming back from a new one.
    finished: Mutex<HashMap<(String, i32), (i64, i64)>>,
    reports: Mutex<VecDeque<ConsumeReport>>,
}

impl Skips {
    /// Remember what the context was told of a consume error.
    pub fn report(&self, report: ConsumeReport) {
        if let Ok(mut reports) = self.reports.lock() {
            if reports.len() >= MAX_REPORTS {
                reports.pop_front();
            }
            reports.push_back(report);
        }
    }

    /// The report of the consume error just received with `code`, if the
    /// context saw it.
    pub fn take_report(&self, code: RDKafkaErrorCode) -> Option<ConsumeReport> {
        let mut reports = self.reports.lock().ok()?;
        let report = reports.pop_front()?;
        if report.code == code {
            Some(report)
        } else {
            // Out of step (cannot happen while reports and errors pair up
            // one to one): start afresh rather than pair wrongly.
            reports.clear();
            None
        }
    }

    /// Whether any partition is being skipped.
    pub fn any(&self) -> bool {
        self.active.load(Ordering::Acquire) > 0
    }

    /// Begin skipping the batch `report` names (an undecodable one; the
    /// caller checks), its partition's high watermark being
    /// `high_watermark`.
    pub fn start(&self, report: &ConsumeReport, high_watermark: i64, now_ms: i64) -> Step {
        let Some(topic) = report.topic.clone() else {
            return Step::NotSkipping;
        };
        let key = (topic.clone(), report.partition);
        // The same batch again, read at the end an earlier skip found: it
        // reaches past the high watermark that skip was bounded by. Its
        // rest is skipped on its own (from that end, which is inside), and
        // what was dead-lettered is not again.
        let resumed = self
            .finished
            .lock()
            .ok()
            .and_then(|f| f.get(&key).copied())
            .filter(|(base, _)| *base == report.offset)
            .map(|(_, end)| end);
        let first = resumed.unwrap_or(report.offset);
        if resumed.is_some() && high_watermark <= first.saturating_add(1) {
            return Step::Blocked;
        }
        let mut skip = Skip {
            topic,
            partition: report.partition,
            base: report.offset,
            code: report.code,
            reason: report.reason.clone(),
            inside: first,
            past: high_watermark.max(first.saturating_add(1)),
            bisecting: false,
            stride: 1,
            probe: None,
            started_ms: now_ms,
            first,
        };
        let step = skip.next();
        match &step {
            Step::Seek(_) => self.insert(key, skip),
            Step::Done { end, .. } => self.finish(key, report.offset, *end),
            _ => {}
        }
        step
    }

    fn finish(&self, key: (String, i32), base: i64, end: i64) {
        if let Ok(mut finished) = self.finished.lock() {
            finished.insert(key, (base, end));
        }
    }

    /// A record of `topic`/`partition` at `offset` arrived.
    pub fn record(&self, topic: &str, partition: i32, offset: i64) -> Step {
        self.answer(topic, partition, |skip| match skip.probe {
            Some(probe) if offset >= probe => {
                skip.past = probe;
                skip.bisecting = true;
                Some(skip.next())
            }
            // From before the probe's seek: says nothing.
            _ => Some(Step::Wait),
        })
    }

    /// A consume error about `report`'s partition arrived.
    pub fn error(&self, report: &ConsumeReport) -> Step {
        let Some(topic) = report.topic.as_deref() else {
            return Step::NotSkipping;
        };
        self.answer(topic, report.partition, |skip| {
            let Some(probe) = skip.probe else {
                return Some(Step::Wait);
            };
            if report.code == skip.code && report.offset == skip.base {
                skip.inside = probe;
                Some(skip.next())
            } else if is_undecodable(report.code) && report.offset > skip.base {
                // Another batch that cannot be decoded, the one holding the
                // probe (or the first after it): this one ends before that
                // batch's base and before the probe. That batch is skipped
                // on its own next.
                skip.past = report.offset.min(probe);
                skip.bisecting = true;
                Some(skip.next())
            } else {
                Some(Step::Wait)
            }
        })
    }

    /// Stop skipping `topic`/`partition` (revoked, or its seek failed): a
    /// later fetch reports the batch again and the skip starts over.
    pub fn cancel(&self, topic: &str, partition: i32) {
        if let Ok(mut finished) = self.finished.lock() {
            finished.remove(&(topic.to_owned(), partition));
        }
        if let Ok(mut skips) = self.skips.lock()
            && skips.remove(&(topic.to_owned(), partition)).is_some()
        {
            self.active.fetch_sub(1, Ordering::AcqRel);
        }
    }

    fn insert(&self, key: (String, i32), skip: Skip) {
        if let Ok(mut skips) = self.skips.lock()
            && skips.insert(key, skip).is_none()
        {
            self.active.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Run `f` on the skip of `topic`/`partition`, dropping the skip once
    /// it is done.
    fn answer(
        &self,
        topic: &str,
        partition: i32,
        f: impl FnOnce(&mut Skip) -> Option<Step>,
    ) -> Step {
        let Ok(mut skips) = self.skips.lock() else {
            return Step::NotSkipping;
        };
        let key = (topic.to_owned(), partition);
        let Some(skip) = skips.get_mut(&key) else {
            return Step::NotSkipping;
        };
        let base = skip.base;
        let step = f(skip).unwrap_or(Step::Wait);
        if let Step::Done { end, .. } = &step {
            let end = *end;
            skips.remove(&key);
            self.active.fetch_sub(1, Ordering::AcqRel);
            drop(skips);
            self.finish(key, base, end);
        }
        step
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(offset: i64) -> ConsumeReport {
        ConsumeReport {
            topic: Some("t".into()),
            partition: 2,
            offset,
            code: RDKafkaErrorCode::BadCompression,
            reason: "Decompression (codec 0x1) of message at 10 of 40 bytes failed".into(),
        }
    }

    /// Drive a skip of the batch `[10, end)` to its end, answering each
    /// probe as a partition whose next readable record is at `end` would.
    fn run(end: i64, high_watermark: i64) -> (i64, Event, String, usize) {
        let skips = Skips::default();
        let mut step = skips.start(&report(10), high_watermark, 7);
        let mut probes = 0;
        loop {
            match step {
                Step::Seek(probe) => {
                    probes += 1;
                    assert!(probe > 10 && probe < high_watermark, "probe {probe}");
                    step = if probe < end {
                        skips.error(&report(10))
                    } else {
                        skips.record("t", 2, probe)
                    };
                }
                Step::Done { end, event, reason } => {
                    assert!(!skips.any());
                    return (end, event, reason, probes);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn the_end_of_the_batch_is_found_exactly_in_logarithmic_probes() {
        for (end, hwm) in [
            (11, 11),
            (11, 500),
            (12, 500),
            (17, 500),
            (500, 500),
            (1010, 5000),
        ] {
            let (found, _, _, probes) = run(end, hwm);
            assert_eq!(found, end, "batch [10, {end}) with high watermark {hwm}");
            let bound = 2.0 * ((end - 10 + 1) as f64).log2().ceil() + 2.0;
            assert!(probes as f64 <= bound, "batch [10, {end}): {probes} probes");
        }
        let (_, _, _, probes) = run(1010, 5000);
        assert!(probes <= 22, "1000 records took {probes} probes");
    }

    #[test]
    fn the_dead_letter_names_topic_partition_offsets_and_the_error() {
        let (end, event, reason, _) = run(15, 100);
        assert_eq!(end, 15);
        assert_eq!(event.origin, "t/2/10");
        assert_eq!(
            reason,
            "record batch at offsets 10..=14 of topic `t` partition 2 cannot be decoded \
             (librdkafka: BadCompression (Local: Invalid compressed data): Decompression \
             (codec 0x1) of message at 10 of 40 bytes failed); skipped"
        );
        let value: serde_json::Value =
            serde_json::from_slice(event.value.as_deref().expect("value")).expect("json");
        assert_eq!(value["first_offset"], 10);
        assert_eq!(value["last_offset"], 14);
        assert_eq!(value["partition"], 2);
        assert_eq!(event.timestamp_ms, 7);
    }

    #[test]
    fn only_the_same_error_counts_as_inside() {
        let skips = Skips::default();
        assert_eq!(skips.start(&report(10), 100, 0), Step::Seek(11));
        // A record from before the seek, another error, an unrelated code:
        // nothing is learnt.
        assert_eq!(skips.record("t", 2, 9), Step::Wait);
        let mut other = report(10);
        other.code = RDKafkaErrorCode::MessageSizeTooLarge;
        assert_eq!(skips.error(&other), Step::Wait);
        // Other partitions are not being skipped.
        assert_eq!(skips.record("t", 3, 50), Step::NotSkipping);
        // A second undecodable batch at the probe: the first ends there.
        assert!(matches!(
            skips.error(&report(11)),
            Step::Done { end: 11, .. }
        ));
        assert!(!skips.any());
    }

    #[test]
    fn a_second_undecodable_batch_right_after_bounds_the_first() {
        // [10, 15) and [15, 20) both undecodable: the probe at 17 answers
        // with the second batch's base, 15.
        let skips = Skips::default();
        assert_eq!(skips.start(&report(10), 100, 0), Step::Seek(11));
        assert_eq!(skips.error(&report(10)), Step::Seek(13));
        assert_eq!(skips.error(&report(10)), Step::Seek(17));
        assert_eq!(skips.error(&report(15)), Step::Seek(14));
        assert!(matches!(
            skips.error(&report(10)),
            Step::Done { end: 15, .. }
        ));
    }

    #[test]
    fn a_batch_reaching_past_the_high_watermark_is_not_dead_lettered_twice() {
        // The broker said 11, but the batch at 10 holds 10 and 11.
        let skips = Skips::default();
        assert!(matches!(
            skips.start(&report(10), 11, 0),
            Step::Done { end: 11, .. }
        ));
        // Read at 11, the same batch comes back: nothing to probe below the
        // high watermark, and no second dead letter.
        assert_eq!(skips.start(&report(10), 11, 0), Step::Blocked);
        assert!(!skips.any());
        // Once a record is written after it, the rest of the batch is
        // found and dead-lettered from 11 on.
        assert_eq!(skips.start(&report(10), 13, 0), Step::Seek(12));
        let Step::Done { end, event, reason } = skips.record("t", 2, 12) else {
            panic!("not done");
        };
        assert_eq!(end, 12);
        assert_eq!(event.origin, "t/2/11");
        assert!(
            reason.starts_with("record batch at offsets 11..=11 "),
            "{reason}"
        );
        // A new batch at another offset is skipped from its own base.
        assert!(matches!(skips.start(&report(20), 30, 0), Step::Seek(21)));
    }

    #[test]
    fn a_cancelled_skip_is_forgotten() {
        let skips = Skips::default();
        assert!(matches!(skips.start(&report(10), 100, 0), Step::Seek(_)));
        assert!(skips.any());
        skips.cancel("t", 2);
        assert!(!skips.any());
        assert_eq!(skips.record("t", 2, 11), Step::NotSkipping);
    }

    #[test]
    fn reports_pair_with_their_errors_by_code() {
        let skips = Skips::default();
        skips.report(report(10));
        assert_eq!(
            skips.take_report(RDKafkaErrorCode::BadCompression),
            Some(report(10))
        );
        assert_eq!(skips.take_report(RDKafkaErrorCode::BadCompression), None);
        skips.report(report(10));
        assert_eq!(skips.take_report(RDKafkaErrorCode::BadMessage), None);
        assert_eq!(skips.take_report(RDKafkaErrorCode::BadCompression), None);
        for _ in 0..(MAX_REPORTS + 5) {
            skips.report(report(1));
        }
        assert_eq!(skips.reports.lock().expect("lock").len(), MAX_REPORTS);
    }
}
