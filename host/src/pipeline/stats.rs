//! Live counters and state of one pipeline: what the progress line, the
//! run summary, the admin API, the stall detector and the tests read.
//!
//! The counters are the pipeline's [`PipelineMetrics`] handles, so each
//! fact is counted once for `/metrics` and for the readers here.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::Instant;

use crate::metrics::pipeline::PipelineMetrics;

/// Where a running pipeline is, as `weir_pipeline_state` and readiness
/// report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PipelineState {
    /// Built, not yet running.
    Starting = 0,
    /// Reading, processing, committing.
    Running = 1,
    /// Every `max_in_flight` batch waits for a sink: the source is paused
    /// (backpressure), commits still happen.
    Paused = 2,
    /// Work is waiting (events in flight, or a source backlog) but nothing
    /// was committed for `host.stall_after_ms`.
    Stalled = 3,
    /// Stopped cleanly.
    Stopped = 4,
    /// Stopped with an error.
    Failed = 5,
}

impl PipelineState {
    /// The `state` label value.
    pub fn name(self) -> &'static str {
        match self {
            PipelineState::Starting => "starting",
            PipelineState::Running => "running",
            PipelineState::Paused => "paused",
            PipelineState::Stalled => "stalled",
            PipelineState::Stopped => "stopped",
            PipelineState::Failed => "failed",
        }
    }

    fn from_u8(v: u8) -> PipelineState {
        match v {
            0 => PipelineState::Starting,
            1 => PipelineState::Running,
            2 => PipelineState::Paused,
            3 => PipelineState::Stalled,
            4 => PipelineState::Stopped,
            _ => PipelineState::Failed,
        }
    }
}

/// Counters and state of a running pipeline. Cheap to update from any stage.
#[derive(Debug)]
pub struct PipelineStats {
    pub(crate) metrics: PipelineMetrics,
    batches: AtomicU64,
    in_flight_events: AtomicU64,
    max_in_flight_events: AtomicU64,
    state: AtomicU8,
    /// The reader waits for an in-flight permit.
    waiting_for_room: AtomicBool,
    last_commit: Mutex<Instant>,
    /// Why the pipeline is stalled, while it is.
    stall: Mutex<Option<String>>,
    /// The last transient sink error since the last commit: what a stall
    /// most likely waits for.
    sink_trouble: Mutex<Option<String>>,
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
    /// Events a plugin failed, the engine isolated as poison, or the source
    /// could not read.
    pub failed: u64,
    /// Records written to the dead-letter sink (failed events, unroutable
    /// and rejected outputs).
    pub dead_lettered: u64,
    /// Batches whose checkpoint was committed.
    pub committed_batches: u64,
    /// Events read and not yet written or dead-lettered (the events the
    /// pipeline holds).
    pub in_flight_events: u64,
    /// The most events ever in flight at once (the memory bound in practice).
    pub max_in_flight_events: u64,
}

impl PipelineStats {
    /// Register the metrics of `pipeline` and of the sinks it writes to.
    pub fn new<'a>(pipeline: &str, sinks: impl IntoIterator<Item = &'a str>) -> PipelineStats {
        PipelineStats {
            metrics: PipelineMetrics::new(pipeline, sinks),
            batches: AtomicU64::new(0),
            in_flight_events: AtomicU64::new(0),
            max_in_flight_events: AtomicU64::new(0),
            state: AtomicU8::new(PipelineState::Starting as u8),
            waiting_for_room: AtomicBool::new(false),
            last_commit: Mutex::new(Instant::now()),
            stall: Mutex::new(None),
            sink_trouble: Mutex::new(None),
        }
    }

    pub(crate) fn batch_read(&self, events: usize) {
        let n = events as u64;
        self.metrics.events_in.add(n);
        self.metrics.batch_events.record(events as f64);
        self.batches.fetch_add(1, Ordering::Relaxed);
        let now = self.in_flight_events.fetch_add(n, Ordering::AcqRel) + n;
        self.max_in_flight_events.fetch_max(now, Ordering::AcqRel);
        self.metrics.in_flight.set(now as f64);
    }

    /// The events of a piece are written or dead-lettered: the pipeline
    /// no longer holds them (their commit may still wait for the
    /// partition's watermark).
    pub(crate) fn batch_written(&self, events: usize) {
        let n = events as u64;
        let now = self
            .in_flight_events
            .fetch_sub(n, Ordering::AcqRel)
            .saturating_sub(n);
        self.metrics.in_flight.set(now as f64);
    }

    /// A commit returned (`ok`: the source took it; otherwise it failed
    /// transiently and the next commit covers it).
    pub(crate) fn batch_committed(&self, ok: bool) {
        if ok {
            self.metrics.commits_ok.add(1);
        } else {
            self.metrics.commits_failed.add(1);
        }
        if let Ok(mut at) = self.last_commit.lock() {
            *at = Instant::now();
        }
        if let Ok(mut trouble) = self.sink_trouble.lock() {
            *trouble = None;
        }
    }

    /// Outputs acknowledged per sink name.
    pub fn outputs_per_sink(&self) -> BTreeMap<String, u64> {
        self.metrics
            .sinks()
            .map(|(name, s)| (name.to_owned(), s.outputs.get()))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Acquire);
        let m = &self.metrics;
        StatsSnapshot {
            events_in: m.events_in.get(),
            batches: get(&self.batches),
            outputs: m.sinks().map(|(_, s)| s.outputs.get()).sum(),
            dropped: m.dropped.get(),
            failed: m.dead_letters.plugin_failed.get() + m.dead_letters.unreadable.get(),
            dead_lettered: m.dead_letters.total(),
            committed_batches: m.commits_ok.get() + m.commits_failed.get(),
            in_flight_events: get(&self.in_flight_events),
            max_in_flight_events: get(&self.max_in_flight_events),
        }
    }

    /// The pipeline's state now.
    pub fn state(&self) -> PipelineState {
        PipelineState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Why the pipeline is stalled, if it is.
    pub fn stall_reason(&self) -> Option<String> {
        self.stall.lock().ok().and_then(|s| s.clone())
    }

    pub(crate) fn set_state(&self, state: PipelineState) {
        let before = self.state.swap(state as u8, Ordering::AcqRel);
        if before != state as u8 {
            self.metrics.set_state(state.name());
        }
    }

    /// The pipeline task ended, cleanly or not.
    pub fn set_finished(&self, ok: bool) {
        if let Ok(mut stall) = self.stall.lock() {
            *stall = None;
        }
        self.set_state(if ok {
            PipelineState::Stopped
        } else {
            PipelineState::Failed
        });
    }

    pub(crate) fn set_waiting_for_room(&self, waiting: bool) {
        self.waiting_for_room.store(waiting, Ordering::Release);
    }

    pub(crate) fn sink_retrying(&self, sink: &str, error: &str) {
        if let Ok(mut trouble) = self.sink_trouble.lock() {
            *trouble = Some(format!("sink `{sink}` is retrying: {error}"));
        }
    }

    /// Look at the pipeline once (the stall detector's tick): `backlog` is
    /// what the source reports it has not read yet. A pipeline with work
    /// waiting that committed nothing for `stall_after` is stalled;
    /// `idle_since` is moved forward while there is no work, so a pipeline
    /// that was merely idle is not taken for a stalled one.
    pub(crate) fn watch(
        &self,
        backlog: u64,
        stall_after: std::time::Duration,
        idle_since: &mut Instant,
    ) {
        let now = Instant::now();
        let in_flight = self.in_flight_events.load(Ordering::Acquire);
        if in_flight == 0 && backlog == 0 {
            *idle_since = now;
        }
        let last_commit = self.last_commit.lock().map_or(now, |at| *at);
        let quiet = now.saturating_duration_since(last_commit.max(*idle_since));
        let stalled = !stall_after.is_zero() && quiet >= stall_after;
        let reason = stalled.then(|| {
            let mut reason = format!(
                "nothing committed for {} s (host.stall_after_ms = {}) with {in_flight} events in flight and a source backlog of {backlog} records",
                quiet.as_secs(),
                stall_after.as_millis()
            );
            if let Some(trouble) = self.sink_trouble.lock().ok().and_then(|t| t.clone()) {
                reason.push_str("; ");
                reason.push_str(&trouble);
            }
            reason
        });
        if let Ok(mut stall) = self.stall.lock() {
            *stall = reason;
        }
        let state = if stalled {
            PipelineState::Stalled
        } else if self.waiting_for_room.load(Ordering::Acquire) {
            PipelineState::Paused
        } else {
            PipelineState::Running
        };
        self.set_state(state);
    }
}
