//! Per-instance resource limits: the memory cap over every linear memory
//! and table of the instance, and the caps on how many instances, memories
//! and tables it may create (a wasmtime `ResourceLimiter` that remembers it
//! said no, so the host can report "memory limit N MiB exceeded" instead of
//! the trap the plugin's allocator turns the refusal into); the caps on
//! host-side allocations a plugin can cause; the length of `fail` reasons;
//! and the CPU deadline (epoch interruption driven by one ticker thread per
//! engine).

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

/// Most core instances one plugin instance may create. A component built
/// by `cargo build --target wasm32-wasip2` has a handful (the module and a
/// few adapter shims).
pub(crate) const MAX_INSTANCES: usize = 64;
/// Most linear memories one plugin instance may create.
pub(crate) const MAX_MEMORIES: usize = 8;
/// Most tables one plugin instance may create.
pub(crate) const MAX_TABLES: usize = 64;
/// Most host resources (streams, pollables) one plugin instance may hold
/// at once; each lives in host memory, outside the memory cap.
pub(crate) const MAX_HOST_RESOURCES: usize = 10_000;
/// Most component-model handles one plugin instance may hold at once:
/// resources the guest defines itself (`resource.new` needs no host code, so
/// nothing else counts them) and the handles it holds to host resources.
/// wasmtime keeps them in host-side tables outside the memory cap; its own
/// default is 100 000.
pub(crate) const MAX_COMPONENT_HANDLES: usize = 10_000;
/// Most bytes one call to `wasi:random` may ask for (the host allocates
/// them before they reach the plugin).
pub(crate) const MAX_RANDOM_BYTES: u64 = 1 << 20;
/// Longest `fail` reason kept, in bytes; longer ones are cut (at a
/// character boundary) and say how much was cut.
pub const MAX_REASON_BYTES: usize = 1024;

/// Host memory a table element is counted as.
const TABLE_ELEMENT_BYTES: usize = std::mem::size_of::<usize>();

/// `reason` cut to [`MAX_REASON_BYTES`], so a plugin cannot put megabytes
/// into logs, dead-letter headers and metrics through a `fail`.
pub fn bound_reason(mut reason: String) -> String {
    if reason.len() <= MAX_REASON_BYTES {
        return reason;
    }
    let total = reason.len();
    let mut cut = MAX_REASON_BYTES;
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    reason.truncate(cut);
    reason.push_str(&format!("… ({} more bytes cut)", total - cut));
    reason
}

/// Caps the memory of one instance: the sum of every linear memory and
/// every table of the component, plus the number of instances, memories
/// and tables. Remembers whether it refused something since the last
/// [`MemoryLimiter::reset`].
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    max_bytes: usize,
    /// Set when a growth was refused.
    pub(crate) exceeded: bool,
    /// Bytes of linear memory granted, over all memories.
    memory_bytes: usize,
    /// Bytes of table elements granted, over all tables.
    table_bytes: usize,
}

impl MemoryLimiter {
    pub(crate) fn new(memory_mib: u32) -> Self {
        MemoryLimiter {
            max_bytes: (memory_mib as usize).saturating_mul(1 << 20),
            exceeded: false,
            memory_bytes: 0,
            table_bytes: 0,
        }
    }

    pub(crate) fn reset(&mut self) {
        self.exceeded = false;
    }

    /// Everything the instance holds against the cap, in bytes (for the
    /// `weir_plugin_memory_bytes` metric).
    pub(crate) fn used_bytes(&self) -> usize {
        self.memory_bytes.saturating_add(self.table_bytes)
    }

    /// Grant `desired` bytes to an item that holds `current`, if the total
    /// stays under the cap.
    fn grow(&mut self, which: Which, current: usize, desired: usize) -> bool {
        let (mine, other) = match which {
            Which::Memory => (self.memory_bytes, self.table_bytes),
            Which::Table => (self.table_bytes, self.memory_bytes),
        };
        let mine = mine.saturating_sub(current).saturating_add(desired);
        if mine.saturating_add(other) > self.max_bytes {
            self.exceeded = true;
            return false;
        }
        match which {
            Which::Memory => self.memory_bytes = mine,
            Which::Table => self.table_bytes = mine,
        }
        true
    }
}

#[derive(Clone, Copy)]
enum Which {
    Memory,
    Table,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // A refusal makes `memory.grow` return -1 (or instantiation fail)
        // and the guest decides what to do (a Rust guest aborts, which
        // traps). The flag turns that trap into "memory limit exceeded".
        Ok(self.grow(Which::Memory, current, desired))
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self.grow(
            Which::Table,
            current.saturating_mul(TABLE_ELEMENT_BYTES),
            desired.saturating_mul(TABLE_ELEMENT_BYTES),
        ))
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memories_and_tables_share_one_cap() {
        let mut l = MemoryLimiter::new(1);
        assert!(l.memory_growing(0, 600 << 10, None).unwrap());
        // A second memory: alone it fits, with the first it does not.
        assert!(!l.memory_growing(0, 600 << 10, None).unwrap());
        assert!(l.exceeded);
        l.reset();
        // Tables count too: 400 KiB of elements on top of 600 KiB is too much.
        assert!(
            !l.table_growing(0, (450 << 10) / TABLE_ELEMENT_BYTES, None)
                .unwrap()
        );
        assert!(
            l.table_growing(0, (300 << 10) / TABLE_ELEMENT_BYTES, None)
                .unwrap()
        );
        // Growing an existing memory counts only the difference.
        assert!(l.memory_growing(600 << 10, 700 << 10, None).unwrap());
        assert_eq!(
            l.used_bytes(),
            (700 << 10) + (300 << 10) / TABLE_ELEMENT_BYTES * TABLE_ELEMENT_BYTES
        );
    }

    #[test]
    fn long_reasons_are_cut_at_a_character_boundary() {
        assert_eq!(bound_reason("short".into()), "short");
        let long = "é".repeat(MAX_REASON_BYTES);
        let cut = bound_reason(long.clone());
        assert!(cut.len() < MAX_REASON_BYTES + 40, "{}", cut.len());
        assert!(cut.starts_with(&long[..MAX_REASON_BYTES]));
        assert!(
            cut.ends_with(&format!("… ({} more bytes cut)", MAX_REASON_BYTES)),
            "{cut}"
        );
    }
}
