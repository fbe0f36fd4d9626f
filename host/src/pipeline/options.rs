//! The options of one pipeline's flow that a config file sets: batching
//! and the retries of transient sink errors. The pipeline owns them;
//! `config` only reads them from `[pipelines.NAME]`.

use serde::Deserialize;

/// How events are grouped into batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Most events in one batch.
    pub max_events: usize,
    /// Longest wait for a batch to fill, in milliseconds.
    pub max_wait_ms: u64,
    /// Most batches between being read and being committed. This bounds
    /// memory (at most `max_in_flight * max_events` events are held) and
    /// lets reading, plugin calls and sink writes overlap.
    pub max_in_flight: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_events: 1000,
            max_wait_ms: 100,
            max_in_flight: 3,
        }
    }
}

/// Exponential backoff with jitter for transient sink errors. Retries go on
/// until the sink recovers or the host is stopped: skipping would lose data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// First delay, in milliseconds.
    pub initial_ms: u64,
    /// Longest delay, in milliseconds.
    pub max_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial_ms: 100,
            max_ms: 10_000,
        }
    }
}
