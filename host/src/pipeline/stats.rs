//! Live counters of one pipeline: what the progress line, the run summary,
//! the admin API and the tests read.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::metrics;

/// Counters of a running pipeline. Cheap to update from any stage.
#[derive(Debug, Default)]
pub struct PipelineStats {
    events_in: AtomicU64,
    batches: AtomicU64,
    outputs: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    dead_lettered: AtomicU64,
    committed_batches: AtomicU64,
    in_flight_events: AtomicU64,
    max_in_flight_events: AtomicU64,
    per_sink: Mutex<BTreeMap<String, u64>>,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StatsSnapshot {
    /// Source events read.
    pub events_in: u64,
    /// Batches read.
    pub batches: u64,
    /// Outputs acknowledged by their sinks.
    pub outputs: u64,
    /// Events a plugin dropped.
    pub dropped: u64,
    /// Events a plugin failed or the engine isolated as poison.
    pub failed: u64,
    /// Records written to the dead-letter sink (failed events, unroutable
    /// and rejected outputs).
    pub dead_lettered: u64,
    /// Batches whose checkpoint was committed.
    pub committed_batches: u64,
    /// Events read and not yet committed.
    pub in_flight_events: u64,
    /// The most events ever in flight at once (the memory bound in practice).
    pub max_in_flight_events: u64,
}

impl PipelineStats {
    pub(crate) fn batch_read(&self, pipeline: &str, events: usize) {
        let n = events as u64;
        self.events_in.fetch_add(n, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
        let now = self.in_flight_events.fetch_add(n, Ordering::AcqRel) + n;
        self.max_in_flight_events.fetch_max(now, Ordering::AcqRel);
        metrics::batch_read(pipeline, events);
        metrics::in_flight(pipeline, now);
    }

    pub(crate) fn batch_committed(&self, pipeline: &str, events: usize) {
        self.committed_batches.fetch_add(1, Ordering::Relaxed);
        let n = events as u64;
        let now = self.in_flight_events.fetch_sub(n, Ordering::AcqRel) - n;
        metrics::in_flight(pipeline, now);
    }

    pub(crate) fn add_outputs(&self, sink: &str, n: usize) {
        self.outputs.fetch_add(n as u64, Ordering::Relaxed);
        if let Ok(mut per_sink) = self.per_sink.lock() {
            *per_sink.entry(sink.to_owned()).or_default() += n as u64;
        }
    }

    /// Outputs acknowledged per sink name.
    pub fn outputs_per_sink(&self) -> BTreeMap<String, u64> {
        self.per_sink.lock().map(|m| m.clone()).unwrap_or_default()
    }

    pub(crate) fn add_dropped(&self, n: usize) {
        self.dropped.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn add_failed(&self, n: usize) {
        self.failed.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn add_dead_lettered(&self, n: usize) {
        self.dead_lettered.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Acquire);
        StatsSnapshot {
            events_in: get(&self.events_in),
            batches: get(&self.batches),
            outputs: get(&self.outputs),
            dropped: get(&self.dropped),
            failed: get(&self.failed),
            dead_lettered: get(&self.dead_lettered),
            committed_batches: get(&self.committed_batches),
            in_flight_events: get(&self.in_flight_events),
            max_in_flight_events: get(&self.max_in_flight_events),
        }
    }
}
