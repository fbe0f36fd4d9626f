//! One plugin at one stage of one pipeline: the hand-over slot a reload
//! fills, and [`ReloadableTransform`], the [`Transform`] the pipeline's
//! processor thread calls.
//!
//! The processor calls `process_batch` once per batch, so the start of that
//! call is a batch boundary. A reload never touches the running instance: it
//! puts a ready instance of the new version (compiled, `init` run) into the
//! stage's slot and raises a flag. At the start of its next call the
//! transform sees the flag, takes the instance and runs the whole batch on
//! it; a batch that already began finishes on the instance it began on. So
//! each batch runs on exactly one version, and the hot path pays one atomic
//! load per batch, plus a lock and a pointer swap on the batch where a swap
//! happens. The replaced instance is dropped on a reaper thread, not on the
//! hot path.
//!
//! The first batch on a new version is its probation: the previous instance
//! is kept until that batch is done. If the new version trapped on every
//! event of it (every outcome a failure, the instance rebuilt), the batch is
//! run again on the previous instance and, unless that fails the same way
//! (then the events themselves are poison), the previous instance takes
//! over again and the new version is reported as rolled back. The failed
//! run produced no outputs, so every event still gets its outputs from
//! exactly one version.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::registry::{Plugin, lock};
use crate::engine::{PluginError, PluginInstance, Transform};
use crate::event::{Event, Header, Outcome};
use crate::metrics::plugin::{StageMetrics, thread_cpu_time};

/// Swaps remembered per stage (for the admin API and the benchmark).
const SWAP_HISTORY: usize = 512;

/// One version change at one stage, as the processor saw it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SwapRecord {
    /// The pipeline.
    pub pipeline: String,
    /// Position of the plugin in the pipeline's chain (0-based).
    pub stage: usize,
    /// Hash of the version that ran the previous batch.
    pub from: String,
    /// Hash of the version that ran this batch.
    pub to: String,
    /// When the first batch on the new version started.
    #[serde(skip)]
    pub at: SystemTime,
    /// From the end of the last batch on the old version to the start of
    /// the plugin call of the first batch on the new one (includes the
    /// swap itself and any wait for the batch to arrive).
    #[serde(serialize_with = "as_micros")]
    pub gap: Duration,
    /// The same interval measured between the two batches before, on one
    /// version: what a batch boundary costs without a swap.
    #[serde(serialize_with = "opt_as_micros")]
    pub previous_gap: Option<Duration>,
    /// Time spent taking the new instance out of the slot.
    #[serde(serialize_with = "as_micros")]
    pub swap: Duration,
}

fn as_micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn opt_as_micros<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => as_micros(d, s),
        None => s.serialize_none(),
    }
}

/// What a stage runs now.
#[derive(Debug, Clone)]
pub(crate) struct Active {
    pub(crate) hash: String,
    pub(crate) since: SystemTime,
}

/// The state of one plugin at one pipeline stage that a reload and the
/// admin API can reach.
#[derive(Debug)]
pub(crate) struct Stage {
    pub(crate) pipeline: String,
    pub(crate) index: usize,
    /// The pipeline's worker running it.
    pub(crate) worker: usize,
    /// Raised when `next` holds an instance; read once per batch.
    pending: AtomicBool,
    next: Mutex<Option<PluginInstance>>,
    active: Mutex<Active>,
    /// Its metrics (also the counters `/plugins` shows).
    pub(crate) metrics: StageMetrics,
    swaps: Mutex<VecDeque<SwapRecord>>,
}

impl Stage {
    pub(crate) fn new(
        pipeline: String,
        plugin: &str,
        index: usize,
        worker: usize,
        hash: String,
    ) -> Stage {
        Stage {
            metrics: StageMetrics::new(&pipeline, plugin),
            pipeline,
            index,
            worker,
            pending: AtomicBool::new(false),
            next: Mutex::new(None),
            active: Mutex::new(Active {
                hash,
                since: SystemTime::now(),
            }),
            swaps: Mutex::new(VecDeque::new()),
        }
    }

    /// Put a ready instance in the slot for the next batch; returns the
    /// instance it replaces if the previous offer was never taken.
    pub(crate) fn offer(&self, instance: PluginInstance) -> Option<PluginInstance> {
        let mut next = lock(&self.next);
        let displaced = next.replace(instance);
        self.pending.store(true, Ordering::Release);
        displaced
    }

    /// Take back an offered instance of version `hash` that was not taken
    /// yet.
    pub(crate) fn withdraw(&self, hash: &str) -> Option<PluginInstance> {
        let mut next = lock(&self.next);
        if next.as_ref().is_some_and(|i| i.version().hash() == hash) {
            self.pending.store(false, Ordering::Release);
            return next.take();
        }
        None
    }

    /// The offered instance, if any (hot path, on a raised flag only).
    fn take(&self) -> Option<PluginInstance> {
        let mut next = lock(&self.next);
        self.pending.store(false, Ordering::Release);
        next.take()
    }

    /// Whether an offered instance is waiting for the next batch.
    pub(crate) fn is_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    pub(crate) fn active(&self) -> Active {
        lock(&self.active).clone()
    }

    fn set_active(&self, hash: &str) {
        let mut active = lock(&self.active);
        active.hash.clear();
        active.hash.push_str(hash);
        active.since = SystemTime::now();
    }

    pub(crate) fn swaps(&self) -> Vec<SwapRecord> {
        lock(&self.swaps).iter().cloned().collect()
    }

    fn record_swap(&self, record: SwapRecord) {
        let mut swaps = lock(&self.swaps);
        if swaps.len() == SWAP_HISTORY {
            swaps.pop_front();
        }
        swaps.push_back(record);
    }
}

/// Drops replaced instances on a thread of its own, so freeing a store's
/// memory never lengthens a batch boundary.
#[derive(Debug, Clone)]
pub(crate) struct Reaper {
    tx: Option<mpsc::Sender<PluginInstance>>,
}

impl Reaper {
    pub(crate) fn start() -> Reaper {
        let (tx, rx) = mpsc::channel::<PluginInstance>();
        let spawned = std::thread::Builder::new()
            .name("weir-plugin-reaper".into())
            .spawn(move || while rx.recv().is_ok() {});
        match spawned {
            Ok(_) => Reaper { tx: Some(tx) },
            Err(err) => {
                tracing::warn!(error = %err, "cannot start the plugin reaper thread; replaced plugin instances are dropped inline");
                Reaper { tx: None }
            }
        }
    }

    pub(crate) fn dispose(&self, instance: PluginInstance) {
        if let Some(tx) = &self.tx {
            // If the thread is gone the instance comes back and drops here.
            let _ = tx.send(instance);
        }
    }
}

/// A plugin stage that can change version between batches. Made by
/// [`PluginRegistry::transform`](super::PluginRegistry::transform).
pub struct ReloadableTransform {
    plugin: Arc<Plugin>,
    stage: Arc<Stage>,
    instance: PluginInstance,
    /// Header name and value (the version hash) stamped on every output.
    header: Option<(String, Bytes)>,
    /// The previous instance, kept while the current one runs its first
    /// batch.
    probation: Option<PluginInstance>,
    /// When the last batch's plugin call ended.
    last_end: Option<Instant>,
    /// The last boundary gap without a swap.
    last_gap: Option<Duration>,
    reaper: Reaper,
    /// Handed to every instance this stage runs, so a shutdown stops
    /// poison-event isolation.
    shutdown: Option<CancellationToken>,
}

impl std::fmt::Debug for ReloadableTransform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadableTransform")
            .field("plugin", &self.plugin.name)
            .field("pipeline", &self.stage.pipeline)
            .field("stage", &self.stage.index)
            .field("version", &self.instance.version().hash())
            .finish_non_exhaustive()
    }
}

/// Whether every outcome is a failure and the instance had to be rebuilt
/// (a trap, deadline or memory cap, not a plugin's own `Fail`).
fn trapped_throughout(outcomes: &[Outcome], rebuilt: bool) -> bool {
    rebuilt && !outcomes.is_empty() && outcomes.iter().all(|o| matches!(o, Outcome::Fail(_)))
}

impl ReloadableTransform {
    pub(crate) fn new(
        plugin: Arc<Plugin>,
        stage: Arc<Stage>,
        instance: PluginInstance,
        reaper: Reaper,
    ) -> ReloadableTransform {
        let header = plugin.version_header().map(|name| {
            (
                name.to_owned(),
                Bytes::copy_from_slice(instance.version().hash().as_bytes()),
            )
        });
        ReloadableTransform {
            plugin,
            stage,
            instance,
            header,
            probation: None,
            last_end: None,
            last_gap: None,
            reaper,
            shutdown: None,
        }
    }

    /// The pipeline this stage belongs to.
    pub fn pipeline(&self) -> &str {
        &self.stage.pipeline
    }

    /// Hash of the version the next batch runs on (unless a swap is
    /// pending).
    pub fn version_hash(&self) -> &str {
        self.instance.version().hash()
    }

    fn current_changed(&mut self) {
        let hash = self.instance.version().hash();
        if let Some((_, value)) = &mut self.header {
            *value = Bytes::copy_from_slice(hash.as_bytes());
        }
        self.stage.set_active(hash);
    }

    /// Take the offered instance; returns the hash it replaced and how long
    /// the swap took.
    fn swap(&mut self) -> Option<(String, Duration)> {
        let started = Instant::now();
        let mut next = self.stage.take()?;
        if let Some(shutdown) = &self.shutdown {
            next.set_shutdown(shutdown.clone());
        }
        let old = std::mem::replace(&mut self.instance, next);
        let from = old.version().hash().to_owned();
        match self.probation {
            // The replaced instance never proved itself; keep the older,
            // proven one for the probation of the new one.
            Some(_) => self.reaper.dispose(old),
            None => self.probation = Some(old),
        }
        self.current_changed();
        Some((from, started.elapsed()))
    }

    /// After the first batch on a new version: keep it, or go back to the
    /// previous one if the new one trapped on everything.
    fn end_probation(
        &mut self,
        mut previous: PluginInstance,
        events: &[Event],
        result: Result<Vec<Outcome>, PluginError>,
        rebuilds_before: u64,
    ) -> Result<Vec<Outcome>, PluginError> {
        let cause = match &result {
            Ok(outcomes)
                if trapped_throughout(outcomes, self.instance.rebuilds() > rebuilds_before) =>
            {
                match outcomes.first() {
                    Some(Outcome::Fail(cause)) => cause.clone(),
                    _ => String::new(),
                }
            }
            Ok(_) => {
                self.reaper.dispose(previous);
                return result;
            }
            Err(err) => err.kind.to_string(),
        };
        let previous_rebuilds = previous.rebuilds();
        match previous.process_batch(events) {
            Ok(outcomes)
                if !trapped_throughout(&outcomes, previous.rebuilds() > previous_rebuilds) =>
            {
                let broken = std::mem::replace(&mut self.instance, previous);
                self.current_changed();
                self.plugin.rolled_back(
                    &self.stage,
                    broken.version(),
                    self.instance.version(),
                    events.len(),
                    &cause,
                );
                self.reaper.dispose(broken);
                Ok(outcomes)
            }
            // The previous version fails the same way: the events are the
            // problem, not the new version.
            _ => {
                self.reaper.dispose(previous);
                result
            }
        }
    }

    fn count_and_stamp(&self, outcomes: &mut [Outcome], events: usize) {
        let (mut outputs, mut dropped, mut failed) = (0u64, 0u64, 0u64);
        for outcome in outcomes.iter_mut() {
            match outcome {
                Outcome::Emit(list) if list.is_empty() => dropped += 1,
                Outcome::Emit(list) => {
                    outputs += list.len() as u64;
                    if let Some((name, value)) = &self.header {
                        for output in list.iter_mut() {
                            output.headers.retain(|h| &h.key != name);
                            output.headers.push(Header {
                                key: name.clone(),
                                value: value.clone(),
                            });
                        }
                    }
                }
                Outcome::Drop => dropped += 1,
                Outcome::Fail(_) => failed += 1,
            }
        }
        let m = &self.stage.metrics;
        m.events.add(events as u64);
        m.outputs.add(outputs);
        m.dropped.add(dropped);
        m.failed.add(failed);
        m.memory_bytes.set(self.instance.memory_bytes() as f64);
    }
}

impl Transform for ReloadableTransform {
    fn name(&self) -> &str {
        &self.plugin.name
    }

    fn set_shutdown(&mut self, shutdown: CancellationToken) {
        self.instance.set_shutdown(shutdown.clone());
        if let Some(previous) = &mut self.probation {
            previous.set_shutdown(shutdown.clone());
        }
        self.shutdown = Some(shutdown);
    }

    fn process_batch(&mut self, events: &[Event]) -> Result<Vec<Outcome>, PluginError> {
        // The batch boundary: take a new version here or not at all.
        let swapped = if self.stage.pending.load(Ordering::Acquire) {
            self.swap()
        } else {
            None
        };
        let began = Instant::now();
        let gap = self
            .last_end
            .map(|end| began.saturating_duration_since(end));

        let cpu_before = thread_cpu_time();
        let rebuilds_before = self.instance.rebuilds();
        let result = self.instance.process_batch(events);
        let result = match self.probation.take() {
            Some(previous) => self.end_probation(previous, events, result, rebuilds_before),
            None => result,
        };
        let cpu = thread_cpu_time()
            .zip(cpu_before)
            .map(|(after, before)| after.saturating_sub(before));
        self.stage.metrics.call(began.elapsed(), cpu);
        let mut outcomes = result?;

        match swapped {
            Some((from, swap)) => {
                let record = SwapRecord {
                    pipeline: self.stage.pipeline.clone(),
                    stage: self.stage.index,
                    from,
                    to: self.instance.version().hash().to_owned(),
                    at: SystemTime::now(),
                    gap: gap.unwrap_or_default(),
                    previous_gap: self.last_gap,
                    swap,
                };
                self.stage
                    .metrics
                    .swap_pause
                    .record(record.gap.as_secs_f64());
                self.stage.record_swap(record);
            }
            None => self.last_gap = gap,
        }
        self.count_and_stamp(&mut outcomes, events.len());
        self.last_end = Some(Instant::now());
        Ok(outcomes)
    }
}
