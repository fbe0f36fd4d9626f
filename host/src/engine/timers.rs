//! Timers a plugin can wait on, bounded by the deadline of the call.
//!
//! Epoch interruption stops Wasm code, not a thread blocked in a host
//! call. The only host calls of the sandbox that can block are the waits
//! on `wasi:clocks/monotonic-clock` pollables (`subscribe-duration`,
//! `subscribe-instant`, then `wasi:io/poll.poll` or `pollable.block`):
//! stdin is closed, stdout and stderr never push back, there are no files
//! and no sockets. WASI's own timers sleep as long as asked (forever for a
//! far instant), so a plugin could stop its pipeline without running any
//! Wasm. This module replaces the two `subscribe-*` functions: a timer
//! never outlives the deadline of the call it was made in, and when a
//! timer that was cut short fires, the call is failed as over its deadline
//! (so a plugin that sleeps past its deadline fails exactly like one that
//! loops past it).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};

use super::state::HostState;

/// The WASI clocks interface whose functions are replaced; the linker
/// matches any `0.2.x` import of a plugin against it.
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// The deadline of the call running in a store, shared with its timers.
#[derive(Debug, Clone)]
pub(crate) struct CallDeadline {
    at: Instant,
    /// Counts calls, so a timer cut in an earlier call cannot fail a later
    /// one.
    call: u64,
    /// The number of the last call in which a timer cut short by the
    /// deadline fired: the plugin was blocked until the deadline.
    hit: Arc<AtomicU64>,
}

impl Default for CallDeadline {
    fn default() -> Self {
        CallDeadline {
            at: Instant::now(),
            call: 1,
            hit: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl CallDeadline {
    /// What is left of the running call's time.
    pub(crate) fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// Start a call that may last `limit`.
    pub(crate) fn start(&mut self, limit: Duration) {
        self.at = Instant::now() + limit;
        self.call += 1;
    }

    /// Whether the plugin was blocked in a timer until the deadline during
    /// the current call.
    pub(crate) fn hit(&self) -> bool {
        self.hit.load(Ordering::Relaxed) == self.call
    }

    /// A timer for `duration` from now, cut at the deadline.
    fn timer(&self, duration: Duration) -> Timer {
        let now = Instant::now();
        match now.checked_add(duration) {
            Some(at) if at <= self.at => Timer { at, cut: None },
            _ => Timer {
                at: self.at.max(now),
                cut: Some((self.call, Arc::clone(&self.hit))),
            },
        }
    }
}

/// A monotonic-clock pollable.
struct Timer {
    at: Instant,
    /// Present when the timer was cut at the deadline of call `.0`: `.1`
    /// is set to that call when it fires.
    cut: Option<(u64, Arc<AtomicU64>)>,
}

#[wasmtime_wasi::async_trait]
impl Pollable for Timer {
    async fn ready(&mut self) {
        tokio::time::sleep_until(self.at).await;
        if let Some((call, hit)) = &self.cut {
            hit.store(*call, Ordering::Relaxed);
        }
    }
}

fn push_timer(
    state: &mut HostState,
    duration: Duration,
) -> wasmtime::Result<Resource<DynPollable>> {
    let timer = state.deadline.timer(duration);
    let timer = state.table.push(timer)?;
    subscribe(&mut state.table, timer)
}

/// Replace WASI's `subscribe-duration` and `subscribe-instant` in `linker`
/// (which already holds WASI) with timers bounded by the call's deadline.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut clocks = linker.instance(MONOTONIC_CLOCK)?;
    clocks.func_wrap(
        "subscribe-duration",
        |mut store: StoreContextMut<'_, HostState>, (nanos,): (u64,)| {
            Ok((push_timer(store.data_mut(), Duration::from_nanos(nanos))?,))
        },
    )?;
    clocks.func_wrap(
        "subscribe-instant",
        |mut store: StoreContextMut<'_, HostState>, (when,): (u64,)| {
            let state = store.data_mut();
            let now = state.clock.now_nanos();
            let duration = Duration::from_nanos(when.saturating_sub(now));
            Ok((push_timer(state, duration)?,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}
