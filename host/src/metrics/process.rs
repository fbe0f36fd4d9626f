//! The process metrics (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, `process_open_fds`, ...), in the names
//! the Prometheus client libraries use, from the `metrics-process` crate.
//! They are read at scrape time.

use std::sync::OnceLock;

fn collector() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

/// Describe the process metrics and take a first reading, so they exist
/// from start-up.
pub(super) fn describe() {
    collector().describe();
    collector().collect();
}

/// Take a reading (before rendering `/metrics`).
pub(super) fn collect() {
    collector().collect();
}
