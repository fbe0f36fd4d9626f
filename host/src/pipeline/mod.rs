//! A pipeline: source -> plugin chain -> router -> sinks, with at-least-once
//! delivery.
//!
//! Three stages run concurrently, connected by channels:
//! 1. the reader (async task) takes batches from the source and splits each
//!    into pieces, one per lane ([`lanes`]): a partition or shard, or with
//!    `ordering = "key"` the keys of a partition that hash to one worker;
//! 2. the workers (threads of their own, because plugin calls are
//!    CPU-bound and synchronous), each with its own instances of the plugin
//!    chain, run the pieces of their lanes through the chain, in order;
//! 3. the writer (async, the pipeline's own task) writes each piece's
//!    outputs to their sinks (pieces of different lanes at once, at most
//!    `max_concurrent_writes` per sink; those of one lane one after the
//!    other), dead-letters what must be, flushes, and then commits by
//!    watermark ([`watermark`]): per partition, only up to its first event
//!    whose outputs are not all acknowledged or dead-lettered.
//!
//! So a checkpoint never passes an unfinished event, and order per lane is
//! kept from source to sink. Memory is bounded: a read batch holds a permit
//! of a semaphore from the moment it is read until its last piece is
//! written, so at most `batch.max_in_flight` batches (`max_in_flight ×
//! max_events` events) exist at once and a slow sink or worker pauses the
//! source.

mod chain;
mod dead_letter;
mod lanes;
mod options;
mod routes;
mod stall;
mod stats;
mod watermark;
mod write;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

pub use chain::{ChainResult, FailedEvent, RoutedOutput, SOURCE_STAGE, run_chain};
pub use dead_letter::{DLQ_HEADER_PREFIX, dead_letter_for_event, dead_letter_for_output};
pub use options::{
    BatchConfig, DEFAULT_MAX_CONCURRENT_WRITES, FlowConfig, Ordering, RetryConfig, default_workers,
};
pub use routes::{DeclaredRoutes, RouteNames, UnknownSink};
pub use stall::DEFAULT_STALL_AFTER;
pub use stats::{PipelineState, PipelineStats, StatsSnapshot};

use crate::engine::{PluginError, PluginErrorKind, Transform};
use crate::sink::Sink;
use crate::source::{DynSource, SourceError};
use crate::telemetry::BatchTrace;
use lanes::{Piece, Splitter};
use watermark::Watermarks;

/// At most one log line per this interval tells of a pipeline's dead
/// letters (the first at once, then a count of the rest).
const DEAD_LETTER_LOG_EVERY: Duration = Duration::from_secs(10);

/// A sink with the name it has in the config.
#[derive(Clone)]
pub struct NamedSink {
    /// `[sinks.NAME]`.
    pub name: String,
    /// The connected sink.
    pub sink: Arc<dyn Sink>,
}

impl std::fmt::Debug for NamedSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamedSink")
            .field("name", &self.name)
            .finish()
    }
}

/// Why a pipeline stopped before it was asked to.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The source failed permanently.
    #[error("pipeline `{pipeline}`: source `{source_name}`: {error}")]
    Source {
        /// Pipeline name.
        pipeline: String,
        /// Source name.
        source_name: String,
        /// What failed.
        error: SourceError,
    },
    /// A plugin can no longer be instantiated.
    #[error("pipeline `{pipeline}`: {error}")]
    Plugin {
        /// Pipeline name.
        pipeline: String,
        /// What failed.
        error: PluginError,
    },
    /// A sink failed permanently for a whole group.
    #[error("pipeline `{pipeline}`: sink `{sink}`: {error}")]
    Sink {
        /// Pipeline name.
        pipeline: String,
        /// Sink name.
        sink: String,
        /// What the sink said.
        error: String,
    },
    /// An event had to be dead-lettered but the pipeline has no dead-letter
    /// sink. Nothing past it was committed.
    #[error(
        "pipeline `{pipeline}`: event {origin} must be dead-lettered ({reason}) but the pipeline \
         has no `dead_letter` sink; stopping without committing it"
    )]
    NoDeadLetter {
        /// Pipeline name.
        pipeline: String,
        /// Where the event came from.
        origin: String,
        /// Why it was to be dead-lettered.
        reason: String,
    },
    /// The dead-letter sink rejected a record.
    #[error(
        "pipeline `{pipeline}`: dead-letter sink `{sink}` rejected the record for {origin}: {reason}"
    )]
    DeadLetterRejected {
        /// Pipeline name.
        pipeline: String,
        /// Dead-letter sink name.
        sink: String,
        /// Where the event came from.
        origin: String,
        /// What the sink said.
        reason: String,
    },
    /// A worker thread died, or could not be started.
    #[error("pipeline `{pipeline}`: plugin worker {worker} stopped unexpectedly")]
    ProcessorLost {
        /// Pipeline name.
        pipeline: String,
        /// The worker (0-based).
        worker: usize,
    },
}

/// Everything a pipeline needs, already connected.
pub struct PipelineParts {
    /// Pipeline name.
    pub name: String,
    /// Source name (for messages).
    pub source_name: String,
    /// The source.
    pub source: Arc<dyn DynSource>,
    /// One plugin chain (the plugins in order) per worker, each with
    /// instances of its own; at least one (an empty list runs one worker
    /// with an empty chain).
    pub chains: Vec<Vec<Box<dyn Transform>>>,
    /// What stays in order, and how many writes a sink takes at once.
    pub flow: FlowConfig,
    /// Sink for outputs without a route.
    pub default_route: NamedSink,
    /// Route name -> sink: what the pipeline declares (see
    /// [`DeclaredRoutes`]); any other route is dead-lettered.
    pub routes: BTreeMap<String, NamedSink>,
    /// Dead-letter sink.
    pub dead_letter: Option<NamedSink>,
    /// Batching.
    pub batch: BatchConfig,
    /// Sink retries.
    pub retry: RetryConfig,
}

/// A piece after the plugin chain.
struct ProcessedBatch {
    piece: Piece,
    result: ChainResult,
}

/// A runnable pipeline.
pub struct Pipeline {
    parts: PipelineParts,
    stats: Arc<PipelineStats>,
    stall_after: Duration,
}

impl Pipeline {
    /// Assemble a pipeline from connected parts.
    pub fn new(parts: PipelineParts) -> Self {
        let sinks = std::iter::once(&parts.default_route)
            .chain(parts.routes.values())
            .chain(parts.dead_letter.as_ref())
            .map(|s| s.name.as_str());
        let stats = Arc::new(PipelineStats::new(&parts.name, sinks));
        Pipeline {
            parts,
            stats,
            stall_after: DEFAULT_STALL_AFTER,
        }
    }

    /// Report the pipeline as stalled when work waits but nothing was
    /// committed for `after` (`host.stall_after_ms`; zero turns it off).
    pub fn with_stall_after(mut self, after: Duration) -> Self {
        self.stall_after = after;
        self
    }

    /// The pipeline's name.
    pub fn name(&self) -> &str {
        &self.parts.name
    }

    /// Live counters, shared with the running pipeline.
    pub fn stats(&self) -> Arc<PipelineStats> {
        Arc::clone(&self.stats)
    }

    /// Run until `shutdown` is cancelled (then drain in-flight batches,
    /// commit and return `Ok`), until a bounded source is exhausted, or
    /// until something fails that must stop the pipeline.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), PipelineError> {
        let Pipeline {
            parts,
            stats,
            stall_after,
        } = self;
        let PipelineParts {
            name,
            source_name,
            source,
            mut chains,
            flow,
            default_route,
            routes,
            dead_letter,
            batch,
            retry,
        } = parts;
        if chains.is_empty() {
            chains.push(Vec::new());
        }

        let max_in_flight = batch.max_in_flight.max(1);
        let permits = Arc::new(Semaphore::new(max_in_flight));
        let marks = Arc::new(Mutex::new(Watermarks::default()));
        // Both channels hold at most the pieces of `max_in_flight` read
        // batches (the permits bound them), so they need no bound of their
        // own; one would let a busy worker hold up pieces for an idle one.
        let (to_write, from_workers) = mpsc::unbounded_channel::<Processed>();
        // Stops the reader when the writer fails, as well as on shutdown.
        let stop_reading = shutdown.child_token();
        stats.set_state(PipelineState::Running);
        let stall_watch = stall::spawn(
            name.clone(),
            Arc::clone(&stats),
            stall_after,
            stop_reading.clone(),
        );

        let mut to_workers = Vec::with_capacity(chains.len());
        let mut workers = Vec::with_capacity(chains.len());
        let worker_count = chains.len();
        for (worker, mut chain) in chains.into_iter().enumerate() {
            // A shutdown stops poison-event isolation between calls.
            for transform in &mut chain {
                transform.set_shutdown(shutdown.clone());
            }
            let (tx, rx) = mpsc::unbounded_channel::<Piece>();
            to_workers.push(tx);
            let thread_name = name.clone();
            let to_write = to_write.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("weir-plugins-{name}-{worker}"))
                .spawn(move || process_loop(chain, &thread_name, rx, to_write));
            match spawned {
                Ok(handle) => workers.push(handle),
                Err(_) => {
                    stop_reading.cancel();
                    return Err(PipelineError::ProcessorLost {
                        pipeline: name,
                        worker,
                    });
                }
            }
        }
        drop(to_write);

        let reader = tokio::spawn(read_loop(
            Arc::clone(&source),
            Splitter::new(name.clone(), flow.ordering, worker_count),
            batch,
            permits,
            to_workers,
            Arc::clone(&marks),
            Arc::clone(&stats),
            stop_reading.clone(),
        ));

        let writer = Arc::new(write::Writer::new(
            write::WriterParts {
                pipeline: name.clone(),
                source_name: source_name.clone(),
                default_route,
                routes,
                dead_letter,
                retry,
                stats: Arc::clone(&stats),
                dead_letter_log: crate::logging::WarningSummary::dead_letters(
                    &name,
                    DEAD_LETTER_LOG_EVERY,
                ),
            },
            flow.max_concurrent_writes,
        ));
        let written = write::run(writer, from_workers, marks).await;
        stop_reading.cancel();
        let _ = stall_watch.await;

        let read = match reader.await {
            Ok(r) => r,
            Err(_) => Err(SourceError::Fatal("the reader task panicked".into())),
        };
        let lost = workers
            .into_iter()
            .enumerate()
            .find_map(|(worker, w)| w.join().is_err().then_some(worker));

        written?;
        read.map_err(|error| PipelineError::Source {
            pipeline: name.clone(),
            source_name: source_name.clone(),
            error,
        })?;
        if let Some(worker) = lost {
            return Err(PipelineError::ProcessorLost {
                pipeline: name,
                worker,
            });
        }
        source
            .close()
            .await
            .map_err(|error| PipelineError::Source {
                pipeline: name.clone(),
                source_name,
                error,
            })?;
        tracing::info!(pipeline = %name, "pipeline stopped; every batch it finished was committed");
        Ok(())
    }
}

/// What a worker hands the writer: a processed piece, or why the chain can
/// no longer run.
type Processed = Result<ProcessedBatch, PluginError>;

/// Read batches until stopped, the source is exhausted, or it fails; split
/// each into pieces and hand them to their workers.
#[allow(
    clippy::too_many_arguments,
    reason = "the reader's share of the pipeline"
)]
async fn read_loop(
    source: Arc<dyn DynSource>,
    mut splitter: Splitter,
    batch: BatchConfig,
    permits: Arc<Semaphore>,
    to_workers: Vec<mpsc::UnboundedSender<Piece>>,
    marks: Arc<Mutex<Watermarks>>,
    stats: Arc<PipelineStats>,
    stop: CancellationToken,
) -> Result<(), SourceError> {
    let pipeline = splitter.pipeline.clone();
    let max_wait = Duration::from_millis(batch.max_wait_ms);
    let mut transient_delay = Duration::from_millis(100);
    loop {
        // Wait for room before reading, so a slow sink pauses the source.
        stats.set_waiting_for_room(permits.available_permits() == 0);
        let permit = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            p = Arc::clone(&permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return Ok(()),
            },
        };
        stats.set_waiting_for_room(false);
        let read_started = SystemTime::now();
        let next = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            b = source.next_batch(batch.max_events.max(1), max_wait) => b,
        };
        let read = match next {
            Ok(b) => {
                transient_delay = Duration::from_millis(100);
                b
            }
            Err(SourceError::Transient(msg)) => {
                tracing::warn!(%pipeline, error = %msg, "source error, retrying in {transient_delay:?}");
                tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(transient_delay) => {}
                }
                transient_delay = (transient_delay * 2).min(Duration::from_secs(10));
                continue;
            }
            Err(fatal) => return Err(fatal),
        };
        let exhausted = read.exhausted;
        if read.events.is_empty() && !exhausted {
            continue;
        }
        stats.batch_read(read.events.len());
        let pieces = {
            let Ok(mut marks) = marks.lock() else {
                return Err(SourceError::Fatal(
                    "the commit tracker lock was poisoned".into(),
                ));
            };
            splitter.split(read, read_started, Instant::now(), permit, &mut marks)
        };
        for piece in pieces {
            let Some(worker) = to_workers.get(piece.worker) else {
                return Err(SourceError::Fatal(
                    format!("piece for worker {} of {}", piece.worker, to_workers.len()).into(),
                ));
            };
            // A worker that stopped (shutdown inside a batch, a plugin
            // that cannot run) takes nothing more: stop reading.
            if worker.send(piece).is_err() {
                return Ok(());
            }
        }
        if exhausted {
            return Ok(());
        }
    }
}

/// Run pieces through one worker's plugin chain; on the worker's thread.
fn process_loop(
    mut chain: Vec<Box<dyn Transform>>,
    pipeline: &str,
    mut from_reader: mpsc::UnboundedReceiver<Piece>,
    to_write: mpsc::UnboundedSender<Processed>,
) {
    while let Some(piece) = from_reader.blocking_recv() {
        // Plugin call spans hang under the batch's span.
        let traced = piece.trace.as_ref().map(BatchTrace::attach);
        let processed = run_chain(&mut chain, pipeline, &piece.events, &piece.unreadable)
            .map(|result| ProcessedBatch { piece, result });
        drop(traced);
        if let Err(err) = &processed
            && err.kind == PluginErrorKind::Interrupted
        {
            // Shutting down in the middle of a batch: it is not finished,
            // so neither it nor any later piece of this worker is written,
            // and its partitions' watermarks stay before it; the writer
            // drains what the other workers finished.
            tracing::warn!(%pipeline, error = %err, "stopping before the end of a batch; it will be read again after the restart");
            return;
        }
        let failed = processed.is_err();
        if to_write.send(processed).is_err() || failed {
            return;
        }
    }
}

#[cfg(test)]
mod tests;
