//! Per-instance resource limits: the memory cap (a wasmtime
//! `ResourceLimiter` that remembers it said no, so the host can report
//! "memory limit N MiB exceeded" instead of the trap the plugin's allocator
//! turns the refusal into) and the CPU deadline (epoch interruption driven
//! by one ticker thread per engine).

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::ResourceLimiter;

/// How often the ticker advances the engine's epoch. A deadline of N ms is
/// N ticks, so a call is interrupted between N-1 and N ms after it starts
/// (later on an overloaded machine).
pub(crate) const TICK: Duration = Duration::from_millis(1);

/// Deadline in ticks for a deadline in milliseconds (at least one tick).
pub(crate) fn deadline_ticks(deadline_ms: u64) -> u64 {
    let tick_ms = TICK.as_millis().max(1) as u64;
    deadline_ms.div_ceil(tick_ms).max(1)
}

/// The thread that advances the epoch of an engine every [`TICK`]. It stops
/// when the last holder drops it (the engine and every plugin version hold
/// it, so deadlines keep working as long as any instance can run).
#[derive(Debug)]
pub(crate) struct Ticker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    pub(crate) fn start(engine: wasmtime::Engine) -> std::io::Result<Ticker> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("weir-epoch".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(TICK) {
                    engine.increment_epoch();
                }
            })?;
        Ok(Ticker {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        // Dropping the sender disconnects the channel: the thread wakes up
        // at once and exits.
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Caps each linear memory of an instance at `max_bytes` and remembers
/// whether it refused a growth since the last [`MemoryLimiter::reset`].
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    max_bytes: usize,
    /// Set when a growth was refused.
    pub(crate) exceeded: bool,
    /// The largest linear memory size granted, in bytes (for the
    /// `weir_plugin_memory_bytes` metric).
    pub(crate) memory_bytes: usize,
}

impl MemoryLimiter {
    pub(crate) fn new(memory_mib: u32) -> Self {
        MemoryLimiter {
            max_bytes: (memory_mib as usize).saturating_mul(1 << 20),
            exceeded: false,
            memory_bytes: 0,
        }
    }

    pub(crate) fn reset(&mut self) {
        self.exceeded = false;
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            // Refuse: `memory.grow` returns -1 and the guest decides what to
            // do (a Rust guest aborts, which traps). The flag turns that
            // trap into "memory limit exceeded".
            self.exceeded = true;
            return Ok(false);
        }
        self.memory_bytes = self.memory_bytes.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // A table element is a pointer; count tables against the same cap.
        if desired.saturating_mul(std::mem::size_of::<usize>()) > self.max_bytes {
            self.exceeded = true;
            return Ok(false);
        }
        Ok(true)
    }
}
