//! The data each instance's `Store` holds: its WASI context, resource
//! table and clock, its memory limiter, the deadline of the running call,
//! the tail of its stderr, and the plugin's log (the `host.log` import,
//! forwarded to `tracing` under the plugin's name and rate-limited; the
//! import itself is implemented in `bindings`, once per contract version).
//!
//! The log's rate limit belongs to the plugin, not to the instance: every
//! instance of a plugin (every stage, every rebuild after a failed call,
//! every reloaded version) draws from one bucket, so a plugin that logs and
//! then traps on every event cannot get a fresh burst per rebuild.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::packed::weir::transform::host::Level;
use super::limits::MemoryLimiter;
use super::stderr::StderrTail;
use super::timers::CallDeadline;
use super::wasi::Monotonic;

/// Log lines a plugin instance may write in a burst.
const LOG_BURST: f64 = 100.0;
/// Log lines per second a plugin instance may write in the long run.
const LOG_PER_SECOND: f64 = 100.0;
/// Longest log line kept; longer lines are cut.
const LOG_MAX_LINE: usize = 4096;

/// A token bucket over the plugin's log lines.
#[derive(Debug)]
pub(crate) struct PluginLog {
    plugin: String,
    tokens: f64,
    last: Instant,
    dropped: u64,
}

impl PluginLog {
    pub(crate) fn new(plugin: String) -> Self {
        PluginLog {
            plugin,
            tokens: LOG_BURST,
            last: Instant::now(),
            dropped: 0,
        }
    }

    fn admit(&mut self) -> bool {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * LOG_PER_SECOND).min(LOG_BURST);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.dropped += 1;
            false
        }
    }

    pub(crate) fn write(&mut self, level: Level, message: &str) {
        if !self.admit() {
            return;
        }
        if self.dropped > 0 {
            tracing::warn!(
                plugin = %self.plugin,
                dropped = self.dropped,
                "plugin log lines dropped by the rate limit"
            );
            self.dropped = 0;
        }
        let message = match message.char_indices().nth(LOG_MAX_LINE) {
            Some((cut, _)) => &message[..cut],
            None => message,
        };
        let plugin = self.plugin.as_str();
        match level {
            Level::Trace => tracing::trace!(plugin, "{message}"),
            Level::Debug => tracing::debug!(plugin, "{message}"),
            Level::Info => tracing::info!(plugin, "{message}"),
            Level::Warn => tracing::warn!(plugin, "{message}"),
            Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

/// The log of a plugin, shared by all its instances.
pub(crate) type SharedLog = Arc<Mutex<PluginLog>>;

/// The data of one instance's `Store`.
pub(crate) struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) clock: Monotonic,
    pub(crate) deadline: CallDeadline,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) log: SharedLog,
    pub(crate) stderr: StderrTail,
    /// The lookup stores granted to the plugin.
    pub(crate) lookups: crate::lookup::Granted,
    /// Set when a lookup store was unavailable during the running call:
    /// the call trapped because of the store, not the plugin.
    pub(crate) lookup_outage: Option<String>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
