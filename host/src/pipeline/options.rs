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

/// How the events of one partition or shard are spread over a pipeline's
/// workers (`[pipelines.NAME] ordering`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ordering {
    /// All events of a partition go to one worker, in offset order.
    #[default]
    Partition,
    /// Events of a partition are spread over the workers by a hash of the
    /// record key; events with the same key (or all without one) stay on
    /// one worker, in offset order.
    Key,
}

/// How a pipeline runs its batches in parallel, besides its worker count
/// (one plugin chain per worker, see [`super::PipelineParts::chains`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowConfig {
    /// What must stay in order.
    pub ordering: Ordering,
    /// Most writes (or flushes) one sink of the pipeline runs at once.
    pub max_concurrent_writes: usize,
}

/// The default of `[pipelines.NAME] max_concurrent_writes`.
pub const DEFAULT_MAX_CONCURRENT_WRITES: usize = 4;

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            ordering: Ordering::Partition,
            max_concurrent_writes: DEFAULT_MAX_CONCURRENT_WRITES,
        }
    }
}

/// The worker count of a pipeline that sets none: the cores this process
/// may use (1 when the platform cannot say).
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}
