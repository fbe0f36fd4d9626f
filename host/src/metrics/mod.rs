//! Every metric Weir records, named in one place: [`ALL`] holds each
//! metric's name, type, labels and help text (Prometheus conventions:
//! `weir_<area>_<thing>_<unit>`, counters end in `_total`; connector
//! metrics are `weir_source_<type>_*` and `weir_sink_<type>_*`).
//!
//! Recording goes through the `metrics` facade; [`prometheus`] installs the
//! Prometheus exporter and the `# HELP` text of every metric. Without an
//! installed recorder recording is a no-op. Hot-path metrics are recorded
//! through handles created once per pipeline, stage or sink
//! ([`pipeline::PipelineMetrics`], [`plugin::StageMetrics`]), which also
//! registers every series at zero from start-up. [`Count`] is a counter that
//! the process can read back (the run summary, `/plugins`), so each fact is
//! counted once.

pub mod pipeline;
pub mod plugin;
mod process;
pub mod source;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use source::{
    dynamodb_streams_iterator_age, kafka_consumer_lag, kafka_partition_stuck, source_backlog,
};

/// What kind of series a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations in buckets.
    Histogram,
}

/// One metric: its name, type, labels and `# HELP` text.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// The Prometheus name.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// Its label names.
    pub labels: &'static [&'static str],
    /// The `# HELP` text (also the docs' "what").
    pub help: &'static str,
}

/// Label names.
pub mod label {
    /// `[pipelines.NAME]`.
    pub const PIPELINE: &str = "pipeline";
    /// `[plugins.NAME]`.
    pub const PLUGIN: &str = "plugin";
    /// `[sinks.NAME]`.
    pub const SINK: &str = "sink";
    /// `[sources.NAME]`.
    pub const SOURCE: &str = "source";
    /// An outcome (`ok`/`failed`; a reload's result).
    pub const RESULT: &str = "result";
    /// Why a dead letter was written.
    pub const REASON: &str = "reason";
    /// A pipeline state.
    pub const STATE: &str = "state";
    /// Kafka topic.
    pub const TOPIC: &str = "topic";
    /// Kafka partition.
    pub const PARTITION: &str = "partition";
    /// DynamoDB Streams shard.
    pub const SHARD: &str = "shard";
    /// What happened in a rebalance.
    pub const KIND: &str = "kind";
    /// The `weir` version.
    pub const VERSION: &str = "version";
    /// `[lookups.NAME]`.
    pub const STORE: &str = "store";
}

use label::*;

const fn m(
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    help: &'static str,
) -> Metric {
    Metric {
        name,
        kind,
        labels,
        help,
    }
}

// ---- pipeline ----

/// Source events read.
pub const EVENTS_IN: Metric = m(
    "weir_pipeline_events_in_total",
    Kind::Counter,
    &[PIPELINE],
    "Source events read.",
);
/// Source events the plugin chain dropped.
pub const DROPPED: Metric = m(
    "weir_pipeline_events_dropped_total",
    Kind::Counter,
    &[PIPELINE],
    "Source events the plugin chain filtered out (no output, no failure).",
);
/// Records written to the dead-letter sink, by reason.
pub const DEAD_LETTERS: Metric = m(
    "weir_pipeline_dead_letters_total",
    Kind::Counter,
    &[PIPELINE, REASON],
    "Records written to the dead-letter sink, by reason: plugin_failed (a plugin failed the event or it was isolated as poison), unreadable (the source could not decode it), unroutable (its route matches no sink), sink_rejected (a sink refused the output permanently).",
);
/// Events per batch.
pub const BATCH_EVENTS: Metric = m(
    "weir_pipeline_batch_events",
    Kind::Histogram,
    &[PIPELINE],
    "Events per batch read from the source.",
);
/// Events read, not yet committed.
pub const IN_FLIGHT: Metric = m(
    "weir_pipeline_in_flight_events",
    Kind::Gauge,
    &[PIPELINE],
    "Events read and not yet committed.",
);
/// Checkpoint commits, by result.
pub const COMMITS: Metric = m(
    "weir_pipeline_commits_total",
    Kind::Counter,
    &[PIPELINE, RESULT],
    "Checkpoint commits of the source, by result (ok, failed: a transient failure, covered by the next commit).",
);
/// Event timestamp to sink acknowledgement.
pub const END_TO_END_SECONDS: Metric = m(
    "weir_pipeline_end_to_end_latency_seconds",
    Kind::Histogram,
    &[PIPELINE],
    "Per source event: from the event's own timestamp (Kafka record time, DynamoDB Streams creation time) to the acknowledgement of its outputs by their sinks.",
);
/// Read to acknowledgement.
pub const PROCESSING_SECONDS: Metric = m(
    "weir_pipeline_processing_latency_seconds",
    Kind::Histogram,
    &[PIPELINE],
    "Per batch: time in Weir, from the batch being read to the acknowledgement of its outputs by their sinks.",
);
/// 1 for the pipeline's current state.
pub const STATE: Metric = m(
    "weir_pipeline_state",
    Kind::Gauge,
    &[PIPELINE, label::STATE],
    "1 for the pipeline's current state, 0 for the others: starting, running, paused (backpressure: max_in_flight batches wait for a sink), stalled (work waiting but nothing committed for host.stall_after_ms), stopped, failed.",
);

// ---- sinks (per pipeline: two pipelines writing to one sink stay apart) ----

/// Outputs a sink acknowledged.
pub const SINK_OUTPUTS: Metric = m(
    "weir_sink_outputs_total",
    Kind::Counter,
    &[PIPELINE, SINK],
    "Outputs acknowledged by the sink.",
);
/// Duration of one sink write.
pub const SINK_WRITE_SECONDS: Metric = m(
    "weir_sink_write_duration_seconds",
    Kind::Histogram,
    &[PIPELINE, SINK],
    "Duration of one sink write (one batch's outputs for the sink), retries included.",
);
/// Outputs per sink write.
pub const SINK_WRITE_OUTPUTS: Metric = m(
    "weir_sink_write_outputs",
    Kind::Histogram,
    &[PIPELINE, SINK],
    "Outputs per sink write.",
);
/// Bytes per sink write.
pub const SINK_WRITE_BYTES: Metric = m(
    "weir_sink_write_bytes",
    Kind::Histogram,
    &[PIPELINE, SINK],
    "Bytes (keys and values) per sink write.",
);
/// Transient errors retried.
pub const SINK_RETRIES: Metric = m(
    "weir_sink_retries_total",
    Kind::Counter,
    &[PIPELINE, SINK],
    "Transient sink errors that were retried.",
);
/// Outputs rejected permanently.
pub const SINK_REJECTED: Metric = m(
    "weir_sink_rejected_total",
    Kind::Counter,
    &[PIPELINE, SINK],
    "Outputs the sink rejected permanently (they go to the dead-letter sink).",
);
/// DynamoDB sink: unprocessed-item retries.
pub const SINK_DYNAMODB_UNPROCESSED_RETRIES: Metric = m(
    "weir_sink_dynamodb_unprocessed_retries_total",
    Kind::Counter,
    &[SINK],
    "Items sent again because BatchWriteItem left them unprocessed.",
);
/// DynamoDB sink: writes refused by the version condition.
pub const SINK_DYNAMODB_STALE_WRITES: Metric = m(
    "weir_sink_dynamodb_stale_writes_total",
    Kind::Counter,
    &[SINK],
    "Conditional writes skipped because the stored item was newer (condition on the version attribute).",
);

// ---- plugins ----

/// Events given to a plugin.
pub const PLUGIN_EVENTS_IN: Metric = m(
    "weir_plugin_events_in_total",
    Kind::Counter,
    &[PIPELINE, PLUGIN],
    "Events given to the plugin (at its stage: the outputs of the stage before).",
);
/// Outputs a plugin emitted.
pub const PLUGIN_OUTPUTS: Metric = m(
    "weir_plugin_outputs_total",
    Kind::Counter,
    &[PIPELINE, PLUGIN],
    "Outputs the plugin emitted.",
);
/// Events a plugin dropped.
pub const PLUGIN_DROPPED: Metric = m(
    "weir_plugin_events_dropped_total",
    Kind::Counter,
    &[PIPELINE, PLUGIN],
    "Events the plugin dropped.",
);
/// Events a plugin failed.
pub const PLUGIN_FAILED: Metric = m(
    "weir_plugin_events_failed_total",
    Kind::Counter,
    &[PIPELINE, PLUGIN],
    "Events the plugin failed, or that trapped and were isolated as poison.",
);
/// Duration of one plugin call.
pub const PLUGIN_CALL_SECONDS: Metric = m(
    "weir_plugin_call_duration_seconds",
    Kind::Histogram,
    &[PIPELINE, PLUGIN],
    "Wall-clock duration of one plugin call (one batch, poison isolation included).",
);
/// CPU time of one plugin call.
pub const PLUGIN_CPU_SECONDS: Metric = m(
    "weir_plugin_cpu_seconds",
    Kind::Histogram,
    &[PIPELINE, PLUGIN],
    "CPU time of one plugin call (one batch), measured on the pipeline's plugin thread.",
);
/// Reload attempts by result.
pub const PLUGIN_RELOADS: Metric = m(
    "weir_plugin_reloads_total",
    Kind::Counter,
    &[PLUGIN, RESULT],
    "Reload attempts, by result: succeeded, failed (the old version keeps serving), rolled_back (the new version trapped on its whole first batch), unchanged.",
);
/// When the current version was loaded.
pub const PLUGIN_LOADED_TIMESTAMP: Metric = m(
    "weir_plugin_loaded_timestamp_seconds",
    Kind::Gauge,
    &[PLUGIN],
    "When the plugin's current version was loaded (Unix seconds).",
);
/// Pause of a version swap.
pub const PLUGIN_SWAP_PAUSE_SECONDS: Metric = m(
    "weir_plugin_swap_pause_seconds",
    Kind::Histogram,
    &[PIPELINE, PLUGIN],
    "From the last batch on the old version to the first batch on the new one.",
);
/// Memory an instance holds.
pub const PLUGIN_MEMORY_BYTES: Metric = m(
    "weir_plugin_memory_bytes",
    Kind::Gauge,
    &[PIPELINE, PLUGIN],
    "What the plugin instance holds against its memory cap (every linear memory and table).",
);

// ---- sources ----

/// Kafka lag in records.
pub const SOURCE_KAFKA_LAG_MESSAGES: Metric = m(
    "weir_source_kafka_lag_messages",
    Kind::Gauge,
    &[PIPELINE, SOURCE, TOPIC, PARTITION],
    "Records between the partition's high watermark and the next offset the pipeline's consumer reads.",
);
/// Kafka lag in seconds.
pub const SOURCE_KAFKA_LAG_SECONDS: Metric = m(
    "weir_source_kafka_lag_seconds",
    Kind::Gauge,
    &[PIPELINE, SOURCE, TOPIC, PARTITION],
    "How far behind the consumer is in time: now minus the timestamp of the last record read from the partition, while it has lag; 0 when caught up.",
);
/// A Kafka partition stuck at one offset.
pub const SOURCE_KAFKA_PARTITION_STUCK: Metric = m(
    "weir_source_kafka_partition_stuck",
    Kind::Gauge,
    &[PIPELINE, SOURCE, TOPIC, PARTITION],
    "1 while the partition has records past its position but none came for `stuck_after_ms` although the pipeline asked (bytes librdkafka cannot read and reports no error for), else 0.",
);
/// Kafka rebalances.
pub const SOURCE_KAFKA_REBALANCES: Metric = m(
    "weir_source_kafka_rebalances_total",
    Kind::Counter,
    &[PIPELINE, SOURCE, KIND],
    "Consumer-group rebalances seen by the pipeline's consumer, by kind: assigned, revoked, error.",
);
/// DynamoDB Streams iterator age.
pub const SOURCE_DYNAMODB_ITERATOR_AGE: Metric = m(
    "weir_source_dynamodb_iterator_age_seconds",
    Kind::Gauge,
    &[SOURCE, SHARD],
    "Age of the newest record read from the shard (now minus its approximate creation time).",
);
/// DynamoDB Streams: records lost to retention.
pub const SOURCE_DYNAMODB_DATA_LOSS: Metric = m(
    "weir_source_dynamodb_data_loss_total",
    Kind::Counter,
    &[SOURCE],
    "Records trimmed away by the stream's retention before they were read (data loss).",
);
/// DynamoDB Streams: leases lost.
pub const SOURCE_DYNAMODB_LEASES_LOST: Metric = m(
    "weir_source_dynamodb_leases_lost_total",
    Kind::Counter,
    &[SOURCE],
    "Shard leases this host lost to another host (expired or taken over).",
);
/// DynamoDB Streams: leases held.
pub const SOURCE_DYNAMODB_LEASES_HELD: Metric = m(
    "weir_source_dynamodb_leases_held",
    Kind::Gauge,
    &[SOURCE],
    "Shard leases this host holds.",
);

// ---- lookups ----

/// Keys plugins looked up.
pub const LOOKUP_KEYS: Metric = m(
    "weir_lookup_keys_total",
    Kind::Counter,
    &[STORE],
    "Keys plugins looked up in a lookup store (each key of a get-many counts).",
);
/// Lookups that found a value.
pub const LOOKUP_HITS: Metric = m(
    "weir_lookup_hits_total",
    Kind::Counter,
    &[STORE],
    "Keys looked up that had a value (from the cache or the store).",
);
/// Lookups that found none.
pub const LOOKUP_MISSES: Metric = m(
    "weir_lookup_misses_total",
    Kind::Counter,
    &[STORE],
    "Keys looked up that had no value (including on_error = \"miss\" answers).",
);
/// Lookups answered from the in-host cache.
pub const LOOKUP_CACHE_HITS: Metric = m(
    "weir_lookup_cache_hits_total",
    Kind::Counter,
    &[STORE],
    "Keys answered from the in-host cache, without a round trip.",
);
/// Round trips to a store.
pub const LOOKUP_STORE_CALLS: Metric = m(
    "weir_lookup_store_calls_total",
    Kind::Counter,
    &[STORE],
    "Round trips to a lookup store (one per get or get-many not fully cached).",
);
/// Round trips that failed.
pub const LOOKUP_ERRORS: Metric = m(
    "weir_lookup_errors_total",
    Kind::Counter,
    &[STORE],
    "Round trips to a lookup store that failed or timed out.",
);

/// Round-trip time to a store.
pub const LOOKUP_STORE_SECONDS: Metric = m(
    "weir_lookup_store_call_seconds",
    Kind::Histogram,
    &[STORE],
    "Time of one round trip to a lookup store (cache misses only), failed ones included.",
);

/// File stores read again.
pub const LOOKUP_FILE_RELOADS: Metric = m(
    "weir_lookup_file_reloads_total",
    Kind::Counter,
    &[STORE, RESULT],
    "Times a file lookup store's table changed on disk and was read again, by result (ok; failed: the file is gone or does not parse, and the last table read keeps answering).",
);

// ---- process ----

/// Build information.
pub const BUILD_INFO: Metric = m(
    "weir_build_info",
    Kind::Gauge,
    &[VERSION],
    "Always 1; the labels name the running build.",
);

/// Every metric Weir records itself (the `process_*` metrics come from
/// the `metrics-process` crate, see docs/operations.md).
pub const ALL: &[Metric] = &[
    EVENTS_IN,
    DROPPED,
    DEAD_LETTERS,
    BATCH_EVENTS,
    IN_FLIGHT,
    COMMITS,
    END_TO_END_SECONDS,
    PROCESSING_SECONDS,
    STATE,
    SINK_OUTPUTS,
    SINK_WRITE_SECONDS,
    SINK_WRITE_OUTPUTS,
    SINK_WRITE_BYTES,
    SINK_RETRIES,
    SINK_REJECTED,
    SINK_DYNAMODB_UNPROCESSED_RETRIES,
    SINK_DYNAMODB_STALE_WRITES,
    PLUGIN_EVENTS_IN,
    PLUGIN_OUTPUTS,
    PLUGIN_DROPPED,
    PLUGIN_FAILED,
    PLUGIN_CALL_SECONDS,
    PLUGIN_CPU_SECONDS,
    PLUGIN_RELOADS,
    PLUGIN_LOADED_TIMESTAMP,
    PLUGIN_SWAP_PAUSE_SECONDS,
    PLUGIN_MEMORY_BYTES,
    SOURCE_KAFKA_LAG_MESSAGES,
    SOURCE_KAFKA_LAG_SECONDS,
    SOURCE_KAFKA_PARTITION_STUCK,
    SOURCE_KAFKA_REBALANCES,
    SOURCE_DYNAMODB_ITERATOR_AGE,
    SOURCE_DYNAMODB_DATA_LOSS,
    SOURCE_DYNAMODB_LEASES_LOST,
    SOURCE_DYNAMODB_LEASES_HELD,
    LOOKUP_KEYS,
    LOOKUP_HITS,
    LOOKUP_MISSES,
    LOOKUP_CACHE_HITS,
    LOOKUP_STORE_CALLS,
    LOOKUP_ERRORS,
    LOOKUP_STORE_SECONDS,
    LOOKUP_FILE_RELOADS,
    BUILD_INFO,
];

/// Histogram buckets of durations inside the host: 100 µs to 10 s.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Histogram buckets of latencies that include time outside the host
/// (queues, an outage): 1 ms to 1 h.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
    3600.0,
];
/// Histogram buckets of counts (events per batch, outputs per write).
pub const COUNT_BUCKETS: &[f64] = &[
    1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];
/// Histogram buckets of bytes per write: 1 KiB to 64 MiB.
pub const BYTES_BUCKETS: &[f64] = &[
    1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0, 67108864.0,
];

/// A counter the process can read back: one handle counts a fact once for
/// both `/metrics` and the in-process readers (run summary, `/plugins`).
#[derive(Clone)]
pub struct Count {
    value: Arc<AtomicU64>,
    series: metrics::Counter,
}

impl std::fmt::Debug for Count {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Count").field(&self.get()).finish()
    }
}

impl Count {
    /// Register the series (at zero) under `metric` with these label values.
    pub fn new(metric: &Metric, labels: &[(&'static str, String)]) -> Count {
        debug_assert_eq!(metric.kind, Kind::Counter, "{}", metric.name);
        Count {
            value: Arc::new(AtomicU64::new(0)),
            series: counter(metric, labels),
        }
    }

    /// A count with no series (for tests and pipelines built without a
    /// recorder: it still counts).
    pub fn detached() -> Count {
        Count {
            value: Arc::new(AtomicU64::new(0)),
            series: metrics::Counter::noop(),
        }
    }

    /// Add `n`.
    pub fn add(&self, n: u64) {
        if n > 0 {
            self.value.fetch_add(n, Ordering::Relaxed);
            self.series.increment(n);
        }
    }

    /// The count so far.
    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }
}

fn owned(labels: &[(&'static str, String)]) -> Vec<metrics::Label> {
    labels
        .iter()
        .map(|(k, v)| metrics::Label::new(*k, v.clone()))
        .collect()
}

/// A counter handle of `metric` (registered at zero).
pub fn counter(metric: &Metric, labels: &[(&'static str, String)]) -> metrics::Counter {
    let c = metrics::counter!(metric.name, owned(labels));
    // Registering is what makes the series exist; an increment of zero
    // keeps it visible to recorders that create series lazily.
    c.increment(0);
    c
}

/// A gauge handle of `metric`.
pub fn gauge(metric: &Metric, labels: &[(&'static str, String)]) -> metrics::Gauge {
    debug_assert_eq!(metric.kind, Kind::Gauge, "{}", metric.name);
    let g = metrics::gauge!(metric.name, owned(labels));
    g.increment(0.0);
    g
}

/// A histogram handle of `metric` (its series exist, with zero
/// observations, from now on).
pub fn histogram(metric: &Metric, labels: &[(&'static str, String)]) -> metrics::Histogram {
    debug_assert_eq!(metric.kind, Kind::Histogram, "{}", metric.name);
    metrics::histogram!(metric.name, owned(labels))
}

static PROMETHEUS: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
    std::sync::OnceLock::new();

/// Install the Prometheus recorder (once per process; later calls return
/// the same handle), with the `# HELP` text of every metric and
/// `weir_build_info`. `None` if another recorder was installed first.
pub fn prometheus() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    PROMETHEUS
        .get_or_init(|| {
            use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
            let mut builder = PrometheusBuilder::new();
            for metric in ALL.iter().filter(|m| m.kind == Kind::Histogram) {
                let buckets = buckets(metric);
                builder = match builder
                    .set_buckets_for_metric(Matcher::Full(metric.name.into()), buckets)
                {
                    Ok(b) => b,
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot set histogram buckets; /metrics will be empty");
                        return None;
                    }
                };
            }
            match builder.install_recorder() {
                Ok(handle) => {
                    describe();
                    process::describe();
                    gauge(&BUILD_INFO, &[(VERSION, env!("CARGO_PKG_VERSION").to_owned())])
                        .set(1.0);
                    Some(handle)
                }
                Err(err) => {
                    tracing::warn!(error = %err, "cannot install the Prometheus recorder; /metrics will be empty");
                    None
                }
            }
        })
        .clone()
}

/// Refresh the metrics read at scrape time (the process's CPU, memory and
/// open files).
pub fn collect() {
    process::collect();
}

fn buckets(metric: &Metric) -> &'static [f64] {
    match metric.name {
        n if n == END_TO_END_SECONDS.name || n == PROCESSING_SECONDS.name => LATENCY_BUCKETS,
        n if n == SINK_WRITE_BYTES.name => BYTES_BUCKETS,
        n if n.ends_with("_seconds") => SECONDS_BUCKETS,
        _ => COUNT_BUCKETS,
    }
}

fn describe() {
    for metric in ALL {
        let (name, help) = (metric.name, metric.help);
        match metric.kind {
            Kind::Counter => metrics::describe_counter!(name, help),
            Kind::Gauge => metrics::describe_gauge!(name, help),
            Kind::Histogram => metrics::describe_histogram!(name, help),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_conventions() {
        let mut seen = std::collections::BTreeSet::new();
        for metric in ALL {
            assert!(seen.insert(metric.name), "{} twice", metric.name);
            assert!(metric.name.starts_with("weir_"), "{}", metric.name);
            assert_eq!(
                metric.kind == Kind::Counter,
                metric.name.ends_with("_total"),
                "{}: counters and only counters end in _total",
                metric.name
            );
            assert!(!metric.help.is_empty(), "{} has no help", metric.name);
        }
    }

    #[test]
    fn the_operations_reference_lists_every_metric_with_its_labels() {
        let doc = include_str!("../../../docs/operations.md");
        for metric in ALL {
            let row = doc
                .lines()
                .find(|l| l.starts_with(&format!("| `{}` |", metric.name)))
                .unwrap_or_else(|| panic!("docs/operations.md has no row for `{}`", metric.name));
            for label in metric.labels {
                assert!(
                    row.contains(label),
                    "docs/operations.md: `{}` does not name its label `{label}`",
                    metric.name
                );
            }
        }
    }
}
