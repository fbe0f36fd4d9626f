//! Splitting a read batch into pieces for the workers.
//!
//! A *lane* is what must stay in order: a partition (or shard), or with
//! `ordering = "key"` the events of a partition whose record keys hash to
//! the same worker. A piece holds the events of one lane from one read
//! batch, in source order; a lane always goes to the same worker and its
//! pieces are written one after the other, so order within a lane is kept
//! from the source to the sink. A piece never mixes partitions, so a plugin
//! always sees the events of one partition per call.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::sync::OwnedSemaphorePermit;

use super::Ordering;
use super::watermark::{UnitId, Watermarks};
use crate::event::Event;
use crate::source::{PendingCommit, SourceBatch, Unreadable};
use crate::telemetry::BatchTrace;

/// What must stay in order: a partition, and the key bucket within it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Lane {
    pub partition: Arc<str>,
    /// The worker the keys hash to (`ordering = "key"`), else 0.
    pub bucket: u32,
}

/// The events of one lane from one read batch, on their way through a
/// worker and the writer.
pub(super) struct Piece {
    pub events: Vec<Event>,
    /// Indexes into `events`.
    pub unreadable: Vec<Unreadable>,
    pub lane: Lane,
    /// The worker that runs it.
    pub worker: usize,
    /// The unit whose watermark it holds back until it is written.
    pub unit: UnitId,
    /// When the source handed the batch over (for the processing latency).
    pub read_at: Instant,
    /// Its spans, when tracing is on and it was sampled.
    pub trace: Option<BatchTrace>,
    /// The read batch's in-flight permit, shared by its pieces: freed when
    /// the last of them is written.
    pub permit: Arc<OwnedSemaphorePermit>,
}

/// Splits read batches; lives in the reader task.
pub(super) struct Splitter {
    pub pipeline: String,
    pub ordering: Ordering,
    pub workers: usize,
    /// Partition -> worker, given round robin as partitions first appear
    /// (`ordering = "partition"`), so that partitions spread evenly.
    assigned: HashMap<Arc<str>, usize>,
    /// Partition names seen, interned.
    names: HashMap<String, Arc<str>>,
}

/// The bucket of a record key: the same key always lands on the same one.
fn bucket_of(key: Option<&[u8]>, buckets: usize) -> u32 {
    // A fixed-key hasher: the bucket of a key must not change between runs
    // of one process (nor differ between its lanes).
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() % buckets.max(1) as u64) as u32
}

impl Splitter {
    pub(super) fn new(pipeline: String, ordering: Ordering, workers: usize) -> Splitter {
        Splitter {
            pipeline,
            ordering,
            workers: workers.max(1),
            assigned: HashMap::new(),
            names: HashMap::new(),
        }
    }

    fn intern(&mut self, name: String) -> Arc<str> {
        if let Some(n) = self.names.get(&name) {
            return Arc::clone(n);
        }
        let n: Arc<str> = Arc::from(name.as_str());
        self.names.insert(name, Arc::clone(&n));
        n
    }

    fn worker_of(&mut self, lane: &Lane) -> usize {
        match self.ordering {
            Ordering::Key => lane.bucket as usize % self.workers,
            Ordering::Partition => {
                let next = self.assigned.len() % self.workers;
                *self
                    .assigned
                    .entry(Arc::clone(&lane.partition))
                    .or_insert(next)
            }
        }
    }

    /// The pieces of `batch`, each registered with `marks`, in lane order.
    pub(super) fn split(
        &mut self,
        batch: SourceBatch<PendingCommit>,
        read_started: SystemTime,
        read_at: Instant,
        permit: OwnedSemaphorePermit,
        marks: &mut Watermarks,
    ) -> Vec<Piece> {
        let SourceBatch {
            events,
            checkpoint,
            partitions,
            unreadable,
            exhausted: _,
        } = batch;
        let mut parts: Vec<(Arc<str>, Option<PendingCommit>)> = checkpoint
            .split()
            .into_iter()
            .map(|(name, cp)| (self.intern(name), Some(cp)))
            .collect();
        if parts.is_empty() {
            // A source that reached no position: its events still need a
            // lane; there is nothing to commit for them.
            parts.push((self.intern(String::new()), None));
        }
        let buckets = match self.ordering {
            Ordering::Partition => 1,
            Ordering::Key => self.workers,
        };
        let mut reasons: HashMap<usize, String> = unreadable
            .into_iter()
            .map(|u| (u.index, u.reason))
            .collect();
        // Slot `part * buckets + bucket`: the events and unreadable marks.
        let mut slots: Vec<(Vec<Event>, Vec<Unreadable>)> =
            (0..parts.len() * buckets).map(|_| Default::default()).collect();
        for (index, event) in events.into_iter().enumerate() {
            // An index past the checkpoint's parts would be a source bug:
            // such events stay ordered with the last part.
            let part = partitions
                .get(index)
                .map_or(0, |&p| (p as usize).min(parts.len() - 1));
            let bucket = match self.ordering {
                Ordering::Partition => 0,
                Ordering::Key => bucket_of(event.key.as_deref(), buckets) as usize,
            };
            let slot = &mut slots[part * buckets + bucket];
            if let Some(reason) = reasons.remove(&index) {
                slot.1.push(Unreadable {
                    index: slot.0.len(),
                    reason,
                });
            }
            slot.0.push(event);
        }

        let permit = Arc::new(permit);
        let mut pieces = Vec::new();
        for (part, (partition, checkpoint)) in parts.into_iter().enumerate() {
            let lanes = &mut slots[part * buckets..(part + 1) * buckets];
            let used = lanes.iter().filter(|(e, _)| !e.is_empty()).count();
            let unit = marks.register(Arc::clone(&partition), used.max(1), checkpoint);
            for (bucket, (events, unreadable)) in lanes.iter_mut().enumerate() {
                // A position without events still goes through its lane
                // (as an empty piece), so it is committed in its turn.
                if events.is_empty() && (used > 0 || bucket > 0) {
                    continue;
                }
                let lane = Lane {
                    partition: Arc::clone(&partition),
                    bucket: bucket as u32,
                };
                let events = std::mem::take(events);
                let trace = BatchTrace::start(&self.pipeline, read_started, &events);
                pieces.push(Piece {
                    unreadable: std::mem::take(unreadable),
                    worker: self.worker_of(&lane),
                    lane,
                    unit: unit.clone(),
                    read_at,
                    trace,
                    events,
                    permit: Arc::clone(&permit),
                });
            }
        }
        pieces
    }
}
