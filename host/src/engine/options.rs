//! The options of one plugin instance that a config file sets: its
//! resource limits and the capabilities granted to it. The engine owns
//! them; `config` only reads them from `[plugins.NAME]`.

use serde::Deserialize;

/// Resource limits of one plugin instance. Every cap is enforced by the
/// host whatever the plugin does; docs/operations.md lists them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginLimits {
    /// Memory cap of one instance in MiB: every linear memory and every
    /// table of the component together.
    pub memory_mib: u32,
    /// Deadline of one `process` call (one batch) in milliseconds, counting
    /// time spent running Wasm and time blocked in host calls (WASI clocks
    /// and polls).
    pub deadline_ms: u64,
    /// Deadline of making an instance and running its `init`, in
    /// milliseconds: at start-up, on reload and whenever an instance is
    /// rebuilt after a failed call.
    pub init_deadline_ms: u64,
    /// Most outputs one event may produce; an event that emits more fails
    /// with a reason naming this cap.
    pub max_outputs_per_event: u64,
    /// Most bytes (keys, values, header names and values, routes) the
    /// outputs of one event may hold.
    pub max_output_bytes_per_event: u64,
    /// Most outputs of one batch; the events past the cap fail.
    pub max_outputs_per_batch: u64,
    /// Most bytes the outputs of one batch may hold; the events past the
    /// cap fail.
    pub max_output_bytes_per_batch: u64,
    /// Time the isolation of poison events of one batch may spend in failed
    /// calls, in milliseconds. Once it is spent, each group of events not
    /// yet isolated gets one more call and, if that fails too, every event
    /// of the group fails with the cause.
    pub isolation_budget_ms: u64,
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            memory_mib: 64,
            deadline_ms: 1_000,
            init_deadline_ms: 10_000,
            max_outputs_per_event: 1_000,
            max_output_bytes_per_event: 8 << 20,
            max_outputs_per_batch: 100_000,
            max_output_bytes_per_batch: 64 << 20,
            isolation_budget_ms: 30_000,
        }
    }
}

/// What a plugin may reach beyond pure computation. Everything is denied by
/// default: the plugin sees a clock frozen at the Unix epoch, a fixed
/// pseudo-random sequence, no environment, no files and no network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginGrants {
    /// Real wall and monotonic clocks.
    pub clock: bool,
    /// Real (secure) randomness.
    pub random: bool,
    /// Environment variables passed through, by name.
    pub env: Vec<String>,
    /// The lookup stores the plugin may read, from `[plugins.NAME]
    /// lookups = [...]` (not a key of `grants`: the runtime fills it in).
    #[serde(skip)]
    pub lookups: crate::lookup::Granted,
}
