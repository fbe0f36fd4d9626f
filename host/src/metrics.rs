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

pub(crate) fn batch_done(pipeline: &str, dropped: usize, failed: &[(String, usize)], dead_lettered: usize) {
    counter!(DROPPED, "pipeline" => pipeline.to_owned()).increment(dropped as u64);
    for (plugin, n) in failed {
        counter!(FAILED, "pipeline" => pipeline.to_owned(), "plugin" => plugin.clone())
            .increment(*n as u64);
    }
    counter!(DEAD_LETTERED, "pipeline" => pipeline.to_owned()).increment(dead_lettered as u64);
}

pub(crate) fn sink_written(pipeline: &str, sink: &str, outputs: usize, rejected: usize, took: Duration) {
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
