//! The writer stage: route a processed batch to its sinks, retry transient
//! failures, dead-letter what must be, flush, and commit, in batch order.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use futures::future::join_all;
use tokio::sync::mpsc;

use super::RetryConfig;
use super::dead_letter::{dead_letter_for_event, dead_letter_for_output, shrunk};
use super::{NamedSink, PipelineError, PipelineStats, ProcessedBatch};
use crate::engine::PluginError;
use crate::event::{Event, Output};
use crate::logging::WarningSummary;
use crate::metrics::Count;
use crate::metrics::pipeline::DeadLetters;
use crate::sink::{Rejection, SinkError};
use crate::source::{PendingCommit, SourceError};
use crate::telemetry::{self, BatchOutcome, BatchTrace, KeyValue};

/// Name used in dead-letter headers for outputs that matched no sink.
const ROUTER: &str = "(router)";

pub(super) struct Writer {
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
    /// Write batches as they come until the processor stops.
    pub async fn run(
        &self,
        mut from_processor: mpsc::Receiver<Result<ProcessedBatch, PluginError>>,
    ) -> Result<(), PipelineError> {
        let written = self.write_all(&mut from_processor).await;
        self.dead_letter_log.flush();
        written
    }

    async fn write_all(
        &self,
        from_processor: &mut mpsc::Receiver<Result<ProcessedBatch, PluginError>>,
    ) -> Result<(), PipelineError> {
        while let Some(processed) = from_processor.recv().await {
            let processed = processed.map_err(|error| PipelineError::Plugin {
                pipeline: self.pipeline.clone(),
                error,
            })?;
            self.write_batch(processed).await?;
            self.dead_letter_log.tick();
        }
        Ok(())
    }

    fn route(&self, route: Option<&str>) -> Option<&NamedSink> {
        match route {
            None => Some(&self.default_route),
            Some(r) => self.routes.get(r),
        }
    }

    async fn write_batch(&self, processed: ProcessedBatch) -> Result<(), PipelineError> {
        let ProcessedBatch { read, result } = processed;
        let events = &read.batch.events;
        let trace = read.trace.as_ref();
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
        m.processing.record(read.read_at.elapsed().as_secs_f64());
        let now_ms = crate::calendar::now_unix_ms();
        for event in events.iter().filter(|e| e.timestamp_ms > 0) {
            let age_ms = now_ms.saturating_sub(event.timestamp_ms).max(0);
            m.end_to_end.record(age_ms as f64 / 1000.0);
        }

        let event_count = events.len();
        let mut span = telemetry::child_of(trace, "weir.commit", Vec::new);
        let committed = self
            .commit(read.batch.checkpoint)
            .await
            .inspect_err(|e| span.fail(e))?;
        drop(span);
        self.stats.batch_committed(event_count, committed);
        if let Some(trace) = read.trace {
            trace.finish(BatchOutcome {
                outputs: written,
                dropped: result.dropped,
                failed: result.failed.len(),
                dead_lettered,
            });
        }
        Ok(())
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
