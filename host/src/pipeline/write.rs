//! The writer stage: route a processed piece to its sinks, retry transient
//! failures, dead-letter what must be, flush, and commit by watermark.
//!
//! Pieces of different lanes are written at the same time, each as a task
//! of its own, with at most `max_concurrent_writes` writes (or flushes) per
//! sink; a piece waits for the previous piece of its lane to be written, so
//! outputs of one lane (one partition, or one key of it) reach a sink in
//! source order. Commits happen here, one at a time, as pieces finish.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use futures::FutureExt;
use futures::future::{Shared, join_all};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;

use super::RetryConfig;
use super::dead_letter::{dead_letter_for_event, dead_letter_for_output, shrunk};
use super::lanes::Lane;
use super::watermark::{UnitId, Watermarks};
use super::{NamedSink, PipelineError, PipelineStats, ProcessedBatch, Processed};
use crate::event::{Event, Output};
use crate::logging::WarningSummary;
use crate::metrics::Count;
use crate::metrics::pipeline::DeadLetters;
use crate::sink::{Rejection, SinkError};
use crate::source::{PendingCommit, SourceError};
use crate::telemetry::{self, BatchOutcome, BatchTrace, KeyValue};

/// Name used in dead-letter headers for outputs that matched no sink.
const ROUTER: &str = "(router)";

/// What a writer is made of, besides its write limits.
pub(super) struct WriterParts {
    pub pipeline: String,
    pub source_name: String,
    pub default_route: NamedSink,
    pub routes: BTreeMap<String, NamedSink>,
    pub dead_letter: Option<NamedSink>,
    pub retry: RetryConfig,
    pub stats: Arc<PipelineStats>,
    /// Dead letters, logged as the first plus a count of the rest.
    pub dead_letter_log: WarningSummary,
}

pub(super) struct Writer {
    pipeline: String,
    source_name: String,
    default_route: NamedSink,
    routes: BTreeMap<String, NamedSink>,
    dead_letter: Option<NamedSink>,
    retry: RetryConfig,
    stats: Arc<PipelineStats>,
    dead_letter_log: WarningSummary,
    /// Per sink name: room for `max_concurrent_writes` writes at once.
    limits: HashMap<String, Arc<Semaphore>>,
}

/// A piece written (or dead-lettered) whole, ready to count and commit.
struct Written {
    unit: UnitId,
    trace: Option<BatchTrace>,
    outcome: BatchOutcome,
}

/// Completion of the last piece of a lane handed to a write task: `Ok` once
/// it is written; an error if that write failed.
type LaneDone = Shared<oneshot::Receiver<()>>;

/// Write pieces as the workers hand them over until every worker stopped,
/// committing by watermark as they finish.
pub(super) async fn run(
    writer: Arc<Writer>,
    mut from_workers: mpsc::UnboundedReceiver<Processed>,
    marks: Arc<Mutex<Watermarks>>,
) -> Result<(), PipelineError> {
    let written = write_all(&writer, &mut from_workers, &marks).await;
    writer.dead_letter_log.flush();
    written
}

async fn write_all(
    writer: &Arc<Writer>,
    from_workers: &mut mpsc::UnboundedReceiver<Processed>,
    marks: &Mutex<Watermarks>,
) -> Result<(), PipelineError> {
    let mut tasks: JoinSet<Result<Option<Written>, PipelineError>> = JoinSet::new();
    let mut lanes: HashMap<Lane, LaneDone> = HashMap::new();
    let mut open = true;
    loop {
        tokio::select! {
            // Finished writes first: they free permits and move watermarks.
            biased;
            Some(joined) = tasks.join_next() => {
                let written = joined.map_err(|e| PipelineError::Sink {
                    pipeline: writer.pipeline.clone(),
                    sink: "(writer)".into(),
                    error: format!("a write task failed: {e}"),
                })??;
                if let Some(written) = written {
                    writer.finish(written, marks).await?;
                }
                writer.dead_letter_log.tick();
            }
            processed = from_workers.recv(), if open => {
                let Some(processed) = processed else {
                    open = false;
                    continue;
                };
                let processed = processed.map_err(|error| PipelineError::Plugin {
                    pipeline: writer.pipeline.clone(),
                    error,
                })?;
                let lane = processed.piece.lane.clone();
                let (done, after) = oneshot::channel();
                let before = lanes.insert(lane, after.shared());
                let writer = Arc::clone(writer);
                tasks.spawn(async move {
                    // The lane's previous piece first; if its write failed
                    // the pipeline stops, and this one is not written.
                    if let Some(before) = before
                        && before.await.is_err()
                    {
                        return Ok(None);
                    }
                    let written = writer.write_batch(processed).await?;
                    let _ = done.send(());
                    Ok(Some(written))
                });
                // Lanes whose last write is done need no entry.
                if lanes.len() > 4096 {
                    lanes.retain(|_, d| d.peek().is_none());
                }
            }
            else => break,
        }
    }
    Ok(())
}

/// Outputs of one batch bound for one sink.
struct Group<'a> {
    sink: &'a NamedSink,
    outputs: Vec<Output>,
    /// Source event index of each output.
    events: Vec<usize>,
}

/// A record for the dead-letter sink and the source event it stands for.
struct DeadLetter {
    record: Output,
    event: usize,
    reason: String,
    /// What it is counted as in `weir_pipeline_dead_letters_total`.
    counted_as: fn(&DeadLetters) -> &Count,
}

impl Writer {
    pub(super) fn new(parts: WriterParts, max_concurrent_writes: usize) -> Writer {
        let limits = std::iter::once(&parts.default_route)
            .chain(parts.routes.values())
            .chain(parts.dead_letter.as_ref())
            .map(|s| {
                (
                    s.name.clone(),
                    Arc::new(Semaphore::new(max_concurrent_writes.max(1))),
                )
            })
            .collect();
        Writer {
            pipeline: parts.pipeline,
            source_name: parts.source_name,
            default_route: parts.default_route,
            routes: parts.routes,
            dead_letter: parts.dead_letter,
            retry: parts.retry,
            stats: parts.stats,
            dead_letter_log: parts.dead_letter_log,
            limits,
        }
    }

    /// Room for one more write or flush on `sink`.
    async fn room(&self, sink: &str) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let limit = self.limits.get(sink)?;
        Arc::clone(limit).acquire_owned().await.ok()
    }

    /// A piece is written: its events leave the in-flight count, and its
    /// partition's watermark may move (then it is committed).
    async fn finish(
        &self,
        written: Written,
        marks: &Mutex<Watermarks>,
    ) -> Result<(), PipelineError> {
        let checkpoint = match marks.lock() {
            Ok(mut marks) => marks.done(&written.unit),
            Err(_) => {
                return Err(PipelineError::Source {
                    pipeline: self.pipeline.clone(),
                    source_name: self.source_name.clone(),
                    error: SourceError::Fatal("the commit tracker lock was poisoned".into()),
                });
            }
        };
        if let Some(checkpoint) = checkpoint {
            let mut span = telemetry::child_of(written.trace.as_ref(), "weir.commit", Vec::new);
            let committed = self
                .commit(checkpoint)
                .await
                .inspect_err(|e| span.fail(e))?;
            drop(span);
            self.stats.batch_committed(committed);
        }
        if let Some(trace) = written.trace {
            trace.finish(written.outcome);
        }
        Ok(())
    }

    fn route(&self, route: Option<&str>) -> Option<&NamedSink> {
        match route {
            None => Some(&self.default_route),
            Some(r) => self.routes.get(r),
        }
    }

    async fn write_batch(&self, processed: ProcessedBatch) -> Result<Written, PipelineError> {
        let ProcessedBatch { piece, result } = processed;
        let events = &piece.events;
        let trace = piece.trace.as_ref();
        let mut dead = Vec::new();

        for failed in &result.failed {
            dead.push(DeadLetter {
                record: dead_letter_for_event(
                    &events[failed.event],
                    &self.pipeline,
                    &failed.plugin,
                    &failed.reason,
                ),
                event: failed.event,
                reason: format!("plugin `{}`: {}", failed.plugin, failed.reason),
                counted_as: if failed.plugin == super::SOURCE_STAGE {
                    |d| &d.unreadable
                } else {
                    |d| &d.plugin_failed
                },
            });
        }

        // Group outputs by sink, keeping their order within each sink.
        let mut groups: BTreeMap<&str, Group<'_>> = BTreeMap::new();
        for mut routed in result.outputs {
            // The trace goes on downstream from this event's span.
            if let Some(t) = trace {
                t.propagate(routed.event, &mut routed.output.headers);
            }
            match self.route(routed.output.route.as_deref()) {
                Some(sink) => {
                    let group = groups.entry(sink.name.as_str()).or_insert_with(|| Group {
                        sink,
                        outputs: Vec::new(),
                        events: Vec::new(),
                    });
                    group.outputs.push(routed.output);
                    group.events.push(routed.event);
                }
                None => {
                    let route = routed.output.route.clone().unwrap_or_default();
                    let reason = format!(
                        "route `{route}` matches no sink of pipeline `{}`",
                        self.pipeline
                    );
                    dead.push(DeadLetter {
                        record: dead_letter_for_output(
                            &routed.output,
                            &events[routed.event],
                            &self.pipeline,
                            ROUTER,
                            &reason,
                        ),
                        event: routed.event,
                        reason,
                        counted_as: |d| &d.unroutable,
                    });
                }
            }
        }

        let writes = groups
            .values()
            .map(|g| async move { (g, self.write_with_retry(g.sink, &g.outputs, trace).await) });
        let mut written = 0;
        for (group, outcome) in join_all(writes).await {
            let rejections = outcome?;
            written += group.outputs.len() - rejections.len();
            self.stats
                .metrics
                .sink(&group.sink.name)
                .outputs
                .add((group.outputs.len().saturating_sub(rejections.len())) as u64);
            for Rejection { index, reason } in rejections {
                let (Some(output), Some(&event)) =
                    (group.outputs.get(index), group.events.get(index))
                else {
                    tracing::warn!(sink = %group.sink.name, index, "sink rejected an output index it was not given; ignoring");
                    continue;
                };
                dead.push(DeadLetter {
                    record: dead_letter_for_output(
                        output,
                        &events[event],
                        &self.pipeline,
                        &group.sink.name,
                        &reason,
                    ),
                    event,
                    reason: format!("sink `{}`: {reason}", group.sink.name),
                    counted_as: |d| &d.sink_rejected,
                });
            }
        }

        let dead_lettered = dead.len();
        let counted: Vec<_> = dead.iter().map(|d| d.counted_as).collect();
        if !dead.is_empty() {
            self.write_dead_letters(dead, events, trace).await?;
        }

        // Everything is acknowledged; make it durable, then commit.
        let mut flushes: Vec<&NamedSink> = groups.values().map(|g| g.sink).collect();
        if dead_lettered > 0 {
            flushes.extend(self.dead_letter.as_ref());
        }
        for sink in flushes {
            let _room = self.room(&sink.name).await;
            (|| sink.sink.flush())
                .retry(self.backoff())
                .when(SinkError::is_transient)
                .notify(|e, d| self.retrying(&sink.name, e, d))
                .await
                .map_err(|e| self.sink_error(&sink.name, e))?;
        }

        let m = &self.stats.metrics;
        m.dropped.add(result.dropped as u64);
        for count in counted {
            count(&m.dead_letters).add(1);
        }
        // Acknowledged: time in Weir per batch, and per event from its own
        // timestamp (events without one are left out).
        m.processing.record(piece.read_at.elapsed().as_secs_f64());
        let now_ms = crate::calendar::now_unix_ms();
        for event in events.iter().filter(|e| e.timestamp_ms > 0) {
            let age_ms = now_ms.saturating_sub(event.timestamp_ms).max(0);
            m.end_to_end.record(age_ms as f64 / 1000.0);
        }

        let failed = result.failed.len();
        let events = events.len();
        // Out of the count before the permit lets the reader read more.
        self.stats.batch_written(events);
        drop(piece.permit);
        Ok(Written {
            unit: piece.unit,
            trace: piece.trace,
            outcome: BatchOutcome {
                outputs: written,
                dropped: result.dropped,
                failed,
                dead_lettered,
            },
        })
    }

    async fn write_dead_letters(
        &self,
        dead: Vec<DeadLetter>,
        events: &[Event],
        trace: Option<&BatchTrace>,
    ) -> Result<(), PipelineError> {
        let Some(dlq) = &self.dead_letter else {
            let first = &dead[0];
            return Err(PipelineError::NoDeadLetter {
                pipeline: self.pipeline.clone(),
                origin: events[first.event].origin.clone(),
                reason: first.reason.clone(),
            });
        };
        for d in &dead {
            self.dead_letter_log
                .record(&events[d.event].origin, &d.reason);
        }
        let records: Vec<Output> = dead.iter().map(|d| d.record.clone()).collect();
        let rejections = self.write_with_retry(dlq, &records, trace).await?;
        if rejections.is_empty() {
            return Ok(());
        }
        // Refused (too large, not storable): once more without what can be
        // left out; the origin and a digest still find the event.
        let mut again = Vec::with_capacity(rejections.len());
        let mut which = Vec::with_capacity(rejections.len());
        for r in &rejections {
            let Some(d) = dead.get(r.index) else {
                continue;
            };
            again.push(shrunk(&d.record));
            which.push(d.event);
        }
        if let (Some(first), Some(&event)) = (rejections.first(), which.first()) {
            tracing::warn!(
                pipeline = %self.pipeline,
                sink = %dlq.name,
                refused = rejections.len(),
                first_origin = %events[event].origin,
                first_reason = %first.reason,
                "the dead-letter sink refused records; writing them again without their value and headers"
            );
        }
        let rejections = self.write_with_retry(dlq, &again, trace).await?;
        if let Some(r) = rejections.first() {
            let origin = which
                .get(r.index)
                .map(|&e| events[e].origin.clone())
                .unwrap_or_default();
            return Err(PipelineError::DeadLetterRejected {
                pipeline: self.pipeline.clone(),
                sink: dlq.name.clone(),
                origin,
                reason: r.reason.clone(),
            });
        }
        Ok(())
    }

    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(self.retry.initial_ms.max(1)))
            .with_max_delay(Duration::from_millis(
                self.retry.max_ms.max(self.retry.initial_ms).max(1),
            ))
            .with_jitter()
            .without_max_times()
    }

    fn retrying(&self, sink: &str, error: &SinkError, delay: Duration) {
        self.stats.metrics.sink(sink).retries.increment(1);
        self.stats.sink_retrying(sink, &error.to_string());
        tracing::warn!(pipeline = %self.pipeline, %sink, %error, "transient sink error; retrying in {delay:?}");
    }

    fn sink_error(&self, sink: &str, error: SinkError) -> PipelineError {
        PipelineError::Sink {
            pipeline: self.pipeline.clone(),
            sink: sink.to_owned(),
            error: error.to_string(),
        }
    }

    /// Write a group, retrying transient errors until they stop (the sink
    /// recovers) or the host gives up at its shutdown deadline.
    async fn write_with_retry(
        &self,
        sink: &NamedSink,
        outputs: &[Output],
        trace: Option<&BatchTrace>,
    ) -> Result<Vec<Rejection>, PipelineError> {
        if outputs.is_empty() {
            return Ok(Vec::new());
        }
        let _room = self.room(&sink.name).await;
        let started = Instant::now();
        let mut span = telemetry::child_of(trace, "weir.sink.write", || {
            vec![
                KeyValue::new("weir.sink", sink.name.clone()),
                KeyValue::new(
                    "weir.outputs",
                    i64::try_from(outputs.len()).unwrap_or(i64::MAX),
                ),
            ]
        });
        let rejections = (|| sink.sink.write(outputs))
            .retry(self.backoff())
            .when(SinkError::is_transient)
            .notify(|e, d| self.retrying(&sink.name, e, d))
            .await
            .map_err(|e| self.sink_error(&sink.name, e))
            .inspect_err(|e| span.fail(e))?;
        span.set_count("weir.rejected", rejections.len());
        drop(span);
        let m = self.stats.metrics.sink(&sink.name);
        m.write_seconds.record(started.elapsed().as_secs_f64());
        m.write_outputs.record(outputs.len() as f64);
        let bytes: usize = outputs
            .iter()
            .map(|o| {
                o.key.as_ref().map_or(0, |k| k.len()) + o.value.as_ref().map_or(0, |v| v.len())
            })
            .sum();
        m.write_bytes.record(bytes as f64);
        m.rejected.increment(rejections.len() as u64);
        Ok(rejections)
    }

    /// Commit a batch's checkpoint; `Ok(false)` when it failed transiently.
    /// A transient failure is logged and the pipeline goes on: the next
    /// batch's commit usually covers it, and what stays uncommitted is read
    /// again after a restart (at-least-once).
    async fn commit(&self, checkpoint: PendingCommit) -> Result<bool, PipelineError> {
        match checkpoint.commit().await {
            Ok(()) => Ok(true),
            Err(SourceError::Transient(msg)) => {
                tracing::warn!(pipeline = %self.pipeline, error = %msg, "commit failed; these events will be read again after a restart");
                Ok(false)
            }
            Err(error) => Err(PipelineError::Source {
                pipeline: self.pipeline.clone(),
                source_name: self.source_name.clone(),
                error,
            }),
        }
    }
}
