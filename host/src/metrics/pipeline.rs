//! The handles of one pipeline's metrics and of the sinks it writes to,
//! created once when the pipeline is built (so every series exists at zero
//! from start-up and no batch builds a label set).

use std::collections::BTreeMap;

use metrics::{Counter, Gauge, Histogram};

use super::label::{PIPELINE, REASON, RESULT, SINK, STATE};
use super::{
    BATCH_EVENTS, COMMITS, Count, DEAD_LETTERS, DROPPED, END_TO_END_SECONDS, EVENTS_IN, IN_FLIGHT,
    PROCESSING_SECONDS, SINK_OUTPUTS, SINK_REJECTED, SINK_RETRIES, SINK_WRITE_BYTES,
    SINK_WRITE_OUTPUTS, SINK_WRITE_SECONDS, counter, gauge, histogram,
};

/// The values of the `state` label of `weir_pipeline_state`.
pub const PIPELINE_STATES: &[&str] = &[
    "starting", "running", "paused", "stalled", "stopped", "failed",
];

/// Dead letters by reason.
#[derive(Debug, Clone)]
pub struct DeadLetters {
    /// A plugin failed the event, or it was isolated as poison.
    pub plugin_failed: Count,
    /// The source could not decode the event.
    pub unreadable: Count,
    /// The output's route matches no sink.
    pub unroutable: Count,
    /// A sink rejected the output permanently.
    pub sink_rejected: Count,
}

impl DeadLetters {
    /// All of them.
    pub fn total(&self) -> u64 {
        self.plugin_failed.get()
            + self.unreadable.get()
            + self.unroutable.get()
            + self.sink_rejected.get()
    }
}

/// What one pipeline records about one sink.
#[derive(Debug, Clone)]
pub struct SinkMetrics {
    /// Outputs acknowledged.
    pub outputs: Count,
    /// Duration of one write.
    pub write_seconds: Histogram,
    /// Outputs per write.
    pub write_outputs: Histogram,
    /// Bytes per write.
    pub write_bytes: Histogram,
    /// Transient errors retried.
    pub retries: Counter,
    /// Outputs rejected permanently.
    pub rejected: Counter,
}

impl SinkMetrics {
    fn new(pipeline: &str, sink: &str) -> SinkMetrics {
        let labels = [(PIPELINE, pipeline.to_owned()), (SINK, sink.to_owned())];
        SinkMetrics {
            outputs: Count::new(&SINK_OUTPUTS, &labels),
            write_seconds: histogram(&SINK_WRITE_SECONDS, &labels),
            write_outputs: histogram(&SINK_WRITE_OUTPUTS, &labels),
            write_bytes: histogram(&SINK_WRITE_BYTES, &labels),
            retries: counter(&SINK_RETRIES, &labels),
            rejected: counter(&SINK_REJECTED, &labels),
        }
    }

    fn detached() -> SinkMetrics {
        SinkMetrics {
            outputs: Count::detached(),
            write_seconds: Histogram::noop(),
            write_outputs: Histogram::noop(),
            write_bytes: Histogram::noop(),
            retries: Counter::noop(),
            rejected: Counter::noop(),
        }
    }
}

/// The handles of one pipeline.
#[derive(Debug)]
pub struct PipelineMetrics {
    /// Source events read.
    pub events_in: Count,
    /// Source events filtered out.
    pub dropped: Count,
    /// Dead letters by reason.
    pub dead_letters: DeadLetters,
    /// Events per batch.
    pub batch_events: Histogram,
    /// Events read, not yet committed.
    pub in_flight: Gauge,
    /// Commits that succeeded.
    pub commits_ok: Count,
    /// Commits that failed transiently.
    pub commits_failed: Count,
    /// Event timestamp to acknowledgement, per event.
    pub end_to_end: Histogram,
    /// Read to acknowledgement, per batch.
    pub processing: Histogram,
    states: Vec<(&'static str, Gauge)>,
    sinks: BTreeMap<String, SinkMetrics>,
    unknown_sink: SinkMetrics,
}

impl PipelineMetrics {
    /// Register every series of `pipeline` and of each of `sinks` (the
    /// sinks it can write to, dead-letter sink included).
    pub fn new<'a>(pipeline: &str, sinks: impl IntoIterator<Item = &'a str>) -> PipelineMetrics {
        let p = [(PIPELINE, pipeline.to_owned())];
        let with = |key: &'static str, value: &str| {
            [(PIPELINE, pipeline.to_owned()), (key, value.to_owned())]
        };
        let dead = |reason: &str| Count::new(&DEAD_LETTERS, &with(REASON, reason));
        let states = PIPELINE_STATES
            .iter()
            .map(|s| (*s, gauge(&super::STATE, &with(STATE, s))))
            .collect::<Vec<_>>();
        let metrics = PipelineMetrics {
            events_in: Count::new(&EVENTS_IN, &p),
            dropped: Count::new(&DROPPED, &p),
            dead_letters: DeadLetters {
                plugin_failed: dead("plugin_failed"),
                unreadable: dead("unreadable"),
                unroutable: dead("unroutable"),
                sink_rejected: dead("sink_rejected"),
            },
            batch_events: histogram(&BATCH_EVENTS, &p),
            in_flight: gauge(&IN_FLIGHT, &p),
            commits_ok: Count::new(&COMMITS, &with(RESULT, "ok")),
            commits_failed: Count::new(&COMMITS, &with(RESULT, "failed")),
            end_to_end: histogram(&END_TO_END_SECONDS, &p),
            processing: histogram(&PROCESSING_SECONDS, &p),
            states,
            sinks: sinks
                .into_iter()
                .map(|s| (s.to_owned(), SinkMetrics::new(pipeline, s)))
                .collect(),
            unknown_sink: SinkMetrics::detached(),
        };
        metrics.set_state("starting");
        metrics
    }

    /// The handles of a sink the pipeline writes to.
    pub fn sink(&self, name: &str) -> &SinkMetrics {
        // Every sink a pipeline can reach is registered when it is built;
        // anything else is counted nowhere rather than failing the write.
        self.sinks.get(name).unwrap_or(&self.unknown_sink)
    }

    /// Every sink's handles, by name.
    pub fn sinks(&self) -> impl Iterator<Item = (&str, &SinkMetrics)> {
        self.sinks.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Set `weir_pipeline_state`: 1 for `state` (one of
    /// [`PIPELINE_STATES`]), 0 for the others.
    pub fn set_state(&self, state: &str) {
        for (name, g) in &self.states {
            g.set(if *name == state { 1.0 } else { 0.0 });
        }
    }
}
