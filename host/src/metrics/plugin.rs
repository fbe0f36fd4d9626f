//! The handles of a plugin's metrics: per pipeline stage (outcomes, call
//! time, CPU time, memory, swaps) and per plugin (reloads, load time),
//! created once when the stage or plugin is set up.

use std::time::{Duration, SystemTime};

use metrics::{Gauge, Histogram};

use super::label::{PIPELINE, PLUGIN, RESULT};
use super::{
    Count, PLUGIN_CALL_SECONDS, PLUGIN_CPU_SECONDS, PLUGIN_DROPPED, PLUGIN_EVENTS_IN,
    PLUGIN_FAILED, PLUGIN_LOADED_TIMESTAMP, PLUGIN_MEMORY_BYTES, PLUGIN_OUTPUTS, PLUGIN_RELOADS,
    PLUGIN_SWAP_PAUSE_SECONDS, gauge, histogram,
};

/// What one stage (one plugin in one pipeline) records.
#[derive(Debug)]
pub struct StageMetrics {
    /// Calls (batches). In-process only: `/metrics` has it as the count of
    /// `weir_plugin_call_duration_seconds`.
    pub batches: Count,
    /// Events given to the plugin.
    pub events: Count,
    /// Outputs it emitted.
    pub outputs: Count,
    /// Events it dropped.
    pub dropped: Count,
    /// Events it failed.
    pub failed: Count,
    /// Wall-clock time of one call.
    pub call_seconds: Histogram,
    /// CPU time of one call.
    pub cpu_seconds: Histogram,
    /// Memory the instance holds.
    pub memory_bytes: Gauge,
    /// Pause of a version swap.
    pub swap_pause: Histogram,
}

impl StageMetrics {
    /// Register the stage's series (at zero).
    pub fn new(pipeline: &str, plugin: &str) -> StageMetrics {
        let labels = [(PIPELINE, pipeline.to_owned()), (PLUGIN, plugin.to_owned())];
        StageMetrics {
            batches: Count::detached(),
            events: Count::new(&PLUGIN_EVENTS_IN, &labels),
            outputs: Count::new(&PLUGIN_OUTPUTS, &labels),
            dropped: Count::new(&PLUGIN_DROPPED, &labels),
            failed: Count::new(&PLUGIN_FAILED, &labels),
            call_seconds: histogram(&PLUGIN_CALL_SECONDS, &labels),
            cpu_seconds: histogram(&PLUGIN_CPU_SECONDS, &labels),
            memory_bytes: gauge(&PLUGIN_MEMORY_BYTES, &labels),
            swap_pause: histogram(&PLUGIN_SWAP_PAUSE_SECONDS, &labels),
        }
    }

    /// Record one call: how long it took and the CPU time it used.
    pub fn call(&self, wall: Duration, cpu: Option<Duration>) {
        self.batches.add(1);
        self.call_seconds.record(wall.as_secs_f64());
        if let Some(cpu) = cpu {
            self.cpu_seconds.record(cpu.as_secs_f64());
        }
    }
}

/// What one plugin records across its stages.
#[derive(Debug)]
pub struct PluginMetrics {
    /// Reloads that took effect.
    pub reloads_succeeded: Count,
    /// Reloads refused (compile, `init`, ...).
    pub reloads_failed: Count,
    /// New versions rolled back after trapping on their first batch.
    pub reloads_rolled_back: Count,
    /// Reloads of the same file and settings.
    pub reloads_unchanged: Count,
    loaded_at: Gauge,
}

impl PluginMetrics {
    /// Register the plugin's series (at zero).
    pub fn new(plugin: &str) -> PluginMetrics {
        let reloads = |result: &str| {
            Count::new(
                &PLUGIN_RELOADS,
                &[(PLUGIN, plugin.to_owned()), (RESULT, result.to_owned())],
            )
        };
        PluginMetrics {
            reloads_succeeded: reloads("succeeded"),
            reloads_failed: reloads("failed"),
            reloads_rolled_back: reloads("rolled_back"),
            reloads_unchanged: reloads("unchanged"),
            loaded_at: gauge(&PLUGIN_LOADED_TIMESTAMP, &[(PLUGIN, plugin.to_owned())]),
        }
    }

    /// The current version was loaded at `at`.
    pub fn loaded(&self, at: SystemTime) {
        let secs = at
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        self.loaded_at.set(secs);
    }
}

/// CPU time the calling thread has used so far (None where the platform
/// cannot say). The processor runs each pipeline's plugins on a thread of
/// its own, so the difference across a call is that call's CPU time.
pub fn thread_cpu_time() -> Option<Duration> {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; the clock id is a
        // constant the platform defines.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        if rc != 0 {
            return None;
        }
        Some(Duration::new(
            u64::try_from(ts.tv_sec).ok()?,
            u32::try_from(ts.tv_nsec).ok()?,
        ))
    }
    #[cfg(not(unix))]
    {
        None
    }
}
