//! A pipeline: source -> plugin chain -> router -> sinks, with at-least-once
//! delivery.
//!
//! Three stages run concurrently, connected by channels:
//! 1. the reader (async task) takes batches from the source;
//! 2. the processor (a thread of its own, because plugin calls are CPU-bound
//!    and synchronous) runs each batch through the plugin chain;
//! 3. the writer (async, the pipeline's own task) writes each batch's
//!    outputs to their sinks, dead-letters what must be, flushes, and only
//!    then commits the batch's checkpoint.
//!
//! Batches are written and committed strictly in the order they were read,
//! so a checkpoint never passes an event whose outputs are not acknowledged,
//! and order per partition/shard is kept. Memory is bounded: a batch holds
//! a permit of a semaphore from the moment it is read until it is
//! committed, so at most `batch.max_in_flight` batches exist at once and a
//! slow sink pauses the source.

mod chain;
mod dead_letter;
mod options;
mod routes;
mod stall;
mod stats;
mod write;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

pub use chain::{ChainResult, FailedEvent, RoutedOutput, SOURCE_STAGE, run_chain};
pub use dead_letter::{DLQ_HEADER_PREFIX, dead_letter_for_event, dead_letter_for_output};
pub use options::{BatchConfig, RetryConfig};
pub use routes::{DeclaredRoutes, RouteNames, UnknownSink};
pub use stall::DEFAULT_STALL_AFTER;
pub use stats::{PipelineState, PipelineStats, StatsSnapshot};

use crate::engine::{PluginError, PluginErrorKind, Transform};
use crate::sink::Sink;
use crate::source::{DynSource, PendingCommit, SourceBatch, SourceError};
use crate::telemetry::BatchTrace;

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
    /// The processing thread died.
    #[error("pipeline `{pipeline}`: the plugin thread stopped unexpectedly")]
    ProcessorLost {
        /// Pipeline name.
        pipeline: String,
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
    /// The plugin chain, in order.
    pub chain: Vec<Box<dyn Transform>>,
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

/// A batch on its way through the stages, with its in-flight permit.
struct ReadBatch {
    batch: SourceBatch<PendingCommit>,
    /// When the source handed the batch over (for the processing latency).
    read_at: Instant,
    _permit: OwnedSemaphorePermit,
    /// Its spans, when tracing is on and it was sampled.
    trace: Option<BatchTrace>,
}

/// A batch after the plugin chain.
struct ProcessedBatch {
    read: ReadBatch,
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
            mut chain,
            default_route,
            routes,
            dead_letter,
            batch,
            retry,
        } = parts;

        let max_in_flight = batch.max_in_flight.max(1);
        let permits = Arc::new(Semaphore::new(max_in_flight));
        let (to_process, from_reader) = mpsc::channel::<ReadBatch>(max_in_flight);
        let (to_write, from_processor) =
            mpsc::channel::<Result<ProcessedBatch, PluginError>>(max_in_flight);
        // Stops the reader when the writer fails, as well as on shutdown.
        let stop_reading = shutdown.child_token();
        stats.set_state(PipelineState::Running);
        let stall_watch = stall::spawn(
            name.clone(),
            Arc::clone(&stats),
            stall_after,
            stop_reading.clone(),
        );

        let reader = tokio::spawn(read_loop(
            Arc::clone(&source),
            name.clone(),
            batch,
            permits,
            to_process,
            Arc::clone(&stats),
            stop_reading.clone(),
        ));

        // A shutdown stops poison-event isolation between calls.
        for transform in &mut chain {
            transform.set_shutdown(shutdown.clone());
        }
        let processor = {
            let thread_name = name.clone();
            std::thread::Builder::new()
                .name(format!("weir-plugins-{name}"))
                .spawn(move || process_loop(chain, &thread_name, from_reader, to_write))
                .map_err(|_| PipelineError::ProcessorLost {
                    pipeline: name.clone(),
                })?
        };

        let writer = write::Writer {
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
        };
        let written = writer.run(from_processor).await;
        stop_reading.cancel();
        let _ = stall_watch.await;

        let read = match reader.await {
            Ok(r) => r,
            Err(_) => Err(SourceError::Fatal("the reader task panicked".into())),
        };
        let processed = processor.join().is_ok();

        written?;
        read.map_err(|error| PipelineError::Source {
            pipeline: name.clone(),
            source_name: source_name.clone(),
            error,
        })?;
        if !processed {
            return Err(PipelineError::ProcessorLost { pipeline: name });
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

/// Read batches until stopped, the source is exhausted, or it fails.
async fn read_loop(
    source: Arc<dyn DynSource>,
    pipeline: String,
    batch: BatchConfig,
    permits: Arc<Semaphore>,
    to_process: mpsc::Sender<ReadBatch>,
    stats: Arc<PipelineStats>,
    stop: CancellationToken,
) -> Result<(), SourceError> {
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
        let trace = BatchTrace::start(&pipeline, read_started, &read.events);
        let batch = ReadBatch {
            batch: read,
            read_at: Instant::now(),
            _permit: permit,
            trace,
        };
        if to_process.send(batch).await.is_err() {
            return Ok(());
        }
        if exhausted {
            return Ok(());
        }
    }
}

/// Run batches through the plugin chain; on its own thread.
fn process_loop(
    mut chain: Vec<Box<dyn Transform>>,
    pipeline: &str,
    mut from_reader: mpsc::Receiver<ReadBatch>,
    to_write: mpsc::Sender<Result<ProcessedBatch, PluginError>>,
) {
    while let Some(read) = from_reader.blocking_recv() {
        // Plugin call spans hang under the batch's span.
        let traced = read.trace.as_ref().map(BatchTrace::attach);
        let processed = run_chain(
            &mut chain,
            pipeline,
            &read.batch.events,
            &read.batch.unreadable,
        )
        .map(|result| ProcessedBatch { read, result });
        drop(traced);
        if let Err(err) = &processed
            && err.kind == PluginErrorKind::Interrupted
        {
            // Shutting down in the middle of a batch: it is not finished,
            // so neither it nor any later batch is written or committed;
            // the writer drains the batches before it.
            tracing::warn!(%pipeline, error = %err, "stopping before the end of a batch; it will be read again after the restart");
            return;
        }
        let failed = processed.is_err();
        if to_write.blocking_send(processed).is_err() || failed {
            return;
        }
    }
}

#[cfg(test)]
mod tests;
