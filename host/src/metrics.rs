//! Every metric Weir records, named in one place (Prometheus conventions:
//! `weir_<thing>_<unit>`, counters end in `_total`).
//!
//! Recording goes through the `metrics` facade; the admin API installs the
//! Prometheus exporter. Without an installed recorder these calls are no-ops.

use std::time::Duration;

use metrics::{counter, gauge, histogram};

/// Source events read, per pipeline.
pub const EVENTS_IN: &str = "weir_pipeline_events_in_total";
/// Outputs acknowledged by a sink, per pipeline and sink.
pub const OUTPUTS: &str = "weir_pipeline_outputs_total";
/// Events a plugin dropped, per pipeline.
pub const DROPPED: &str = "weir_pipeline_events_dropped_total";
/// Events a plugin failed or the engine isolated as poison, per pipeline and plugin.
pub const FAILED: &str = "weir_pipeline_events_failed_total";
/// Records written to the dead-letter sink, per pipeline.
pub const DEAD_LETTERED: &str = "weir_pipeline_dead_lettered_total";
/// Events per batch, per pipeline.
pub const BATCH_EVENTS: &str = "weir_pipeline_batch_events";
/// Events read but not yet committed, per pipeline.
pub const IN_FLIGHT: &str = "weir_pipeline_in_flight_events";
/// Duration of one plugin call (one batch), per pipeline and plugin.
pub const PLUGIN_CALL_SECONDS: &str = "weir_plugin_call_duration_seconds";
/// Duration of one sink write (one group, retries excluded), per sink.
pub const SINK_WRITE_SECONDS: &str = "weir_sink_write_duration_seconds";
/// Transient sink errors that were retried, per sink.
pub const SINK_RETRIES: &str = "weir_sink_retries_total";
/// Outputs a sink rejected permanently, per sink.
pub const SINK_REJECTED: &str = "weir_sink_rejected_total";

pub(crate) fn plugin_call(pipeline: &str, plugin: &str, _events: usize, took: Duration) {
    histogram!(PLUGIN_CALL_SECONDS, "pipeline" => pipeline.to_owned(), "plugin" => plugin.to_owned())
        .record(took.as_secs_f64());
}

pub(crate) fn batch_read(pipeline: &str, events: usize) {
    counter!(EVENTS_IN, "pipeline" => pipeline.to_owned()).increment(events as u64);
    histogram!(BATCH_EVENTS, "pipeline" => pipeline.to_owned()).record(events as f64);
}

pub(crate) fn in_flight(pipeline: &str, events: u64) {
    gauge!(IN_FLIGHT, "pipeline" => pipeline.to_owned()).set(events as f64);
}

pub(crate) fn batch_done(
    pipeline: &str,
    dropped: usize,
    failed: &[(String, usize)],
    dead_lettered: usize,
) {
    counter!(DROPPED, "pipeline" => pipeline.to_owned()).increment(dropped as u64);
    for (plugin, n) in failed {
        counter!(FAILED, "pipeline" => pipeline.to_owned(), "plugin" => plugin.clone())
            .increment(*n as u64);
    }
    counter!(DEAD_LETTERED, "pipeline" => pipeline.to_owned()).increment(dead_lettered as u64);
}

pub(crate) fn sink_written(
    pipeline: &str,
    sink: &str,
    outputs: usize,
    rejected: usize,
    took: Duration,
) {
    counter!(OUTPUTS, "pipeline" => pipeline.to_owned(), "sink" => sink.to_owned())
        .increment((outputs - rejected) as u64);
    if rejected > 0 {
        counter!(SINK_REJECTED, "sink" => sink.to_owned()).increment(rejected as u64);
    }
    histogram!(SINK_WRITE_SECONDS, "sink" => sink.to_owned()).record(took.as_secs_f64());
}

pub(crate) fn sink_retry(sink: &str) {
    counter!(SINK_RETRIES, "sink" => sink.to_owned()).increment(1);
}

/// Events given to a plugin, per pipeline and plugin.
pub const PLUGIN_EVENTS_IN: &str = "weir_plugin_events_in_total";
/// Outputs a plugin emitted, per pipeline and plugin.
pub const PLUGIN_OUTPUTS: &str = "weir_plugin_outputs_total";
/// Events a plugin dropped, per pipeline and plugin.
pub const PLUGIN_DROPPED: &str = "weir_plugin_events_dropped_total";
/// Events a plugin failed or that trapped, per pipeline and plugin.
pub const PLUGIN_FAILED: &str = "weir_plugin_events_failed_total";
/// Reload attempts per plugin and `result` (`succeeded`, `failed`,
/// `rolled_back`, `unchanged`).
pub const PLUGIN_RELOADS: &str = "weir_plugin_reloads_total";
/// When the plugin's current version was loaded (Unix seconds), per plugin.
pub const PLUGIN_LOADED_TIMESTAMP: &str = "weir_plugin_loaded_timestamp_seconds";
/// Time from the last batch on the old version to the first batch on the
/// new one, per pipeline and plugin.
pub const PLUGIN_SWAP_PAUSE_SECONDS: &str = "weir_plugin_swap_pause_seconds";
/// What a plugin instance holds against its memory cap (every linear
/// memory and table), per pipeline and plugin.
pub const PLUGIN_MEMORY_BYTES: &str = "weir_plugin_memory_bytes";
/// Messages between a partition's high watermark and the next offset the
/// Kafka source will read, per source, topic and partition.
pub const KAFKA_CONSUMER_LAG: &str = "weir_kafka_consumer_lag_messages";
/// Age of the newest record read from a DynamoDB Streams shard (now minus
/// its approximate creation time), per source and shard.
pub const DYNAMODB_STREAMS_ITERATOR_AGE: &str = "weir_dynamodb_streams_iterator_age_seconds";

/// Histogram buckets of the `*_seconds` metrics: 100 µs to 10 s.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Histogram buckets of batch sizes (events).
pub const BATCH_BUCKETS: &[f64] = &[
    1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];

static PROMETHEUS: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
    std::sync::OnceLock::new();

/// Install the Prometheus recorder (once per process; later calls return
/// the same handle). `None` if another recorder was installed first.
pub fn prometheus() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    PROMETHEUS
        .get_or_init(|| {
            use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(BATCH_EVENTS.into()), BATCH_BUCKETS));
            let installed = builder.and_then(PrometheusBuilder::install_recorder);
            match installed {
                Ok(handle) => Some(handle),
                Err(err) => {
                    tracing::warn!(error = %err, "cannot install the Prometheus recorder; /metrics will be empty");
                    None
                }
            }
        })
        .clone()
}

pub(crate) fn plugin_outcomes(
    pipeline: &str,
    plugin: &str,
    events: u64,
    outputs: u64,
    dropped: u64,
    failed: u64,
) {
    let labels = [
        ("pipeline", pipeline.to_owned()),
        ("plugin", plugin.to_owned()),
    ];
    counter!(PLUGIN_EVENTS_IN, &labels).increment(events);
    counter!(PLUGIN_OUTPUTS, &labels).increment(outputs);
    counter!(PLUGIN_DROPPED, &labels).increment(dropped);
    counter!(PLUGIN_FAILED, &labels).increment(failed);
}

pub(crate) fn plugin_swap(pipeline: &str, plugin: &str, pause: Duration) {
    histogram!(PLUGIN_SWAP_PAUSE_SECONDS, "pipeline" => pipeline.to_owned(), "plugin" => plugin.to_owned())
        .record(pause.as_secs_f64());
}

pub(crate) fn plugin_reload(plugin: &str, result: &'static str) {
    counter!(PLUGIN_RELOADS, "plugin" => plugin.to_owned(), "result" => result).increment(1);
}

pub(crate) fn plugin_loaded(plugin: &str, at: std::time::SystemTime) {
    let secs = at
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    gauge!(PLUGIN_LOADED_TIMESTAMP, "plugin" => plugin.to_owned()).set(secs);
}

/// Record the linear memory of a plugin instance.
pub fn plugin_memory(pipeline: &str, plugin: &str, bytes: u64) {
    gauge!(PLUGIN_MEMORY_BYTES, "pipeline" => pipeline.to_owned(), "plugin" => plugin.to_owned())
        .set(bytes as f64);
}

/// Record a Kafka partition's consumer lag (high watermark minus the next
/// offset to read). For the Kafka source.
pub fn kafka_consumer_lag(source: &str, topic: &str, partition: i32, lag: i64) {
    gauge!(
        KAFKA_CONSUMER_LAG,
        "source" => source.to_owned(),
        "topic" => topic.to_owned(),
        "partition" => partition.to_string()
    )
    .set(lag.max(0) as f64);
}

/// Record the iterator age of a DynamoDB Streams shard. For the DynamoDB
/// Streams source.
pub fn dynamodb_streams_iterator_age(source: &str, shard: &str, age: Duration) {
    gauge!(DYNAMODB_STREAMS_ITERATOR_AGE, "source" => source.to_owned(), "shard" => shard.to_owned())
        .set(age.as_secs_f64());
}
