//! The stall detector: a task per pipeline that looks, a few times per
//! `host.stall_after_ms`, whether work is waiting (events in flight, or a
//! backlog the source reports) while nothing has been committed for that
//! long. It sets `weir_pipeline_state` (running / paused / stalled) and
//! the reason `/health/ready` reports.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{PipelineState, PipelineStats};

/// Default of `host.stall_after_ms`: five minutes.
pub const DEFAULT_STALL_AFTER: Duration = Duration::from_secs(300);

/// Look at most this often, and at least this often.
const MIN_TICK: Duration = Duration::from_millis(50);
const MAX_TICK: Duration = Duration::from_secs(1);

/// Watch `stats` until `stop`.
pub(super) fn spawn(
    pipeline: String,
    stats: Arc<PipelineStats>,
    stall_after: Duration,
    stop: CancellationToken,
) -> JoinHandle<()> {
    let tick = (stall_after / 4).clamp(MIN_TICK, MAX_TICK);
    tokio::spawn(async move {
        let mut idle_since = Instant::now();
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut was_stalled = false;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = interval.tick() => {}
            }
            let backlog = crate::metrics::source_backlog(&pipeline);
            stats.watch(backlog, stall_after, &mut idle_since);
            let stalled = stats.state() == PipelineState::Stalled;
            if stalled && !was_stalled {
                tracing::warn!(%pipeline, reason = stats.stall_reason().unwrap_or_default(), "pipeline stalled");
            } else if was_stalled && !stalled {
                tracing::info!(%pipeline, "pipeline no longer stalled");
            }
            was_stalled = stalled;
        }
    })
}
