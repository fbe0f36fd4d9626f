//! The WASI sandbox a plugin runs in.
//!
//! Rust's standard library for `wasm32-wasip2` imports WASI interfaces
//! (environment, clocks, random, stdio, filesystem), so the host provides
//! them, but nothing real lies behind them unless the plugin's `grants`
//! say so:
//! - no preopened directories, so no file can be opened;
//! - no TCP, UDP or name lookup;
//! - no environment variables except those named in `grants.env`;
//! - wall and monotonic clocks frozen at the Unix epoch unless `grants.clock`;
//! - a fixed pseudo-random sequence unless `grants.random`, so a plugin's
//!   output is a function of its input;
//! - stdin empty, stdout discarded (plugins log through `host.log`), stderr
//!   kept as a short tail for panic messages (`stderr`);
//! - at most 1 MiB of random bytes per call (the host allocates them);
//! - timers that never outlive the call's deadline (`timers`).

use std::time::Duration;

use wasmtime_wasi::random::Deterministic;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder};

use super::PluginGrants;
use super::limits::MAX_RANDOM_BYTES;
use super::stderr::StderrTail;

/// A wall clock that always reads 1970-01-01T00:00:00Z.
struct FrozenWallClock;

impl HostWallClock for FrozenWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

/// The plugin's monotonic clock: frozen at 0 unless `grants.clock`, else
/// nanoseconds since the instance was made. The engine's bounded timers
/// (`timers`) read the same clock to turn an instant into a duration.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Monotonic {
    /// Never advances.
    Frozen,
    /// Real time since this instant.
    Real(std::time::Instant),
}

impl Monotonic {
    pub(crate) fn now_nanos(&self) -> u64 {
        match self {
            Monotonic::Frozen => 0,
            Monotonic::Real(start) => u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX),
        }
    }
}

impl HostMonotonicClock for Monotonic {
    fn resolution(&self) -> u64 {
        match self {
            Monotonic::Frozen => 1_000_000_000,
            Monotonic::Real(_) => 1,
        }
    }

    fn now(&self) -> u64 {
        self.now_nanos()
    }
}

/// The fixed byte cycle behind the deterministic random generators: 256
/// bytes of a xorshift sequence, so the output looks random but is the same
/// on every run.
fn deterministic_bytes() -> Vec<u8> {
    let mut x: u32 = 0x2545_f491;
    (0..256)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}

/// The WASI context of one instance, built from the plugin's grants, with
/// stderr going to `stderr`, and the monotonic clock it reads.
pub(crate) fn build_ctx(grants: &PluginGrants, stderr: StderrTail) -> (WasiCtx, Monotonic) {
    let mut builder = WasiCtxBuilder::new();
    let clock = if grants.clock {
        Monotonic::Real(std::time::Instant::now())
    } else {
        Monotonic::Frozen
    };
    builder
        .stderr(stderr)
        .monotonic_clock(clock)
        .max_random_size(MAX_RANDOM_BYTES)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    for name in &grants.env {
        if let Ok(value) = std::env::var(name) {
            builder.env(name, value);
        }
    }
    if !grants.clock {
        builder.wall_clock(FrozenWallClock);
    }
    if !grants.random {
        builder
            .secure_random(Deterministic::new(deterministic_bytes()))
            .insecure_random(Deterministic::new(deterministic_bytes()))
            .insecure_random_seed(0x5745_4952_5745_4952);
    }
    (builder.build(), clock)
}
