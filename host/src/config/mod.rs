//! The typed configuration of a Weir host (one TOML file).
//!
//! ```toml
//! [sources.clicks]
//! type = "kafka"
//! brokers = "127.0.0.1:9092"
//! topics = ["clicks"]
//!
//! [plugins.only_purchases]
//! path = "plugins/filter.wasm"
//! config = { field = "event_type", equals = "purchase" }
//! limits = { memory_mib = 64, deadline_ms = 500 }
//!
//! [sinks.archive]
//! type = "file"
//! path = "out/archive.jsonl"
//!
//! [pipelines.purchases]
//! source = "clicks"
//! plugins = ["only_purchases"]
//! default_route = "archive"
//! dead_letter = "dlq"
//! batch = { max_events = 1000, max_wait_ms = 100 }
//! ```
//!
//! Unknown keys are errors everywhere; `${VAR}` in any string is replaced by
//! the environment variable `VAR` (an unset variable is an error).
//!
//! [`Config::load`] reads a file and reports every problem at once, each
//! with its line, column and key path (see `docs/configuration.md`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::sink::SinkConfig;
use crate::source::SourceConfig;

mod check;
pub mod connectors;
mod diagnostic;
#[cfg(test)]
mod docs_check;
mod interpolate;
mod load;
pub mod secrets;

pub(crate) use diagnostic::join_key;
pub use diagnostic::{ConfigErrors, Diagnostic, Location, Locations, Severity};
pub use load::{LoadedConfig, config_dir};

/// A whole config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Host-wide settings.
    #[serde(default)]
    pub host: HostConfig,
    /// Named sources.
    #[serde(default)]
    pub sources: BTreeMap<String, SourceConfig>,
    /// Named plugins.
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginConfig>,
    /// Named sinks; a route name is a sink name.
    #[serde(default)]
    pub sinks: BTreeMap<String, SinkConfig>,
    /// Named pipelines.
    #[serde(default)]
    pub pipelines: BTreeMap<String, PipelineConfig>,
}

/// `[host]`: settings of the process as a whole.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostConfig {
    /// Where compiled plugins are cached (keyed by content hash), so a
    /// restart does not recompile. Default: `$XDG_CACHE_HOME/weir` or
    /// `~/.cache/weir`.
    pub cache_dir: Option<PathBuf>,
    /// How long SIGINT/SIGTERM may take to drain in-flight batches and
    /// commit before the host exits anyway.
    pub shutdown_timeout_ms: u64,
    /// Log format: `text` (default) or `json`.
    pub log_format: LogFormat,
    /// Seconds between progress lines (events in/out/dropped/failed per
    /// pipeline); 0 turns them off. Printed only when stderr is a terminal
    /// unless set explicitly.
    pub progress_interval_s: Option<u64>,
    /// `[host.admin]`: the admin HTTP API (health, metrics, plugins,
    /// reload). On by default, on `127.0.0.1:9464`.
    pub admin: crate::admin::AdminConfig,
    /// How often plugin files with `watch = "poll"` (or `"auto"` where file
    /// events are unavailable) are checked for changes, in milliseconds.
    pub plugin_poll_interval_ms: u64,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            cache_dir: None,
            shutdown_timeout_ms: 30_000,
            log_format: LogFormat::Text,
            progress_interval_s: None,
            admin: crate::admin::AdminConfig::default(),
            plugin_poll_interval_ms: 1_000,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[plugins.NAME]`: a Wasm component and how it runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Path of the `.wasm` component, relative to the config file.
    pub path: PathBuf,
    /// Handed to the plugin's `init` as key/value strings. Non-string TOML
    /// values are passed in their TOML text form (`3`, `true`).
    #[serde(default)]
    pub config: BTreeMap<String, toml::Value>,
    /// Resource limits per instance.
    #[serde(default)]
    pub limits: PluginLimits,
    /// Capabilities granted beyond the default sandbox.
    #[serde(default)]
    pub grants: PluginGrants,
    /// Name of a header added to every output of this plugin, carrying the
    /// content hash (hex sha256) of the plugin version that produced it,
    /// e.g. `"weir-plugin-version"`. Default: none.
    #[serde(default)]
    pub version_header: Option<String>,
    /// Reload when the file changes on disk: `auto` (default: file events,
    /// polling where there are none), `poll`, or `off`.
    #[serde(default)]
    pub watch: crate::plugin::WatchMode,
}

impl PluginConfig {
    /// The `config` map as the key/value strings handed to the plugin's
    /// `init`: strings as they are, other scalars in their TOML text form
    /// (`3`, `2.5`, `true`, `1979-05-27T07:32:00Z`), nested tables as
    /// dotted keys (`add.processed_at = "$timestamp"` is TOML for a table
    /// `add`, and reaches `init` as the key `add.processed_at`), and arrays
    /// of scalars as comma-separated lists (what the SDK's `Config::list`
    /// reads). Values that fit none of these are left out here and reported
    /// by [`PluginConfig::unpassable_config`].
    pub fn init_pairs(&self) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        let mut unpassable = Vec::new();
        flatten_config(&self.config, "", &mut pairs, &mut unpassable);
        pairs
    }

    /// Config entries that cannot be passed to `init` as strings (arrays
    /// holding tables or arrays), by dotted key, with their TOML type.
    pub fn unpassable_config(&self) -> Vec<(String, &'static str)> {
        let mut pairs = Vec::new();
        let mut unpassable = Vec::new();
        flatten_config(&self.config, "", &mut pairs, &mut unpassable);
        unpassable
    }
}

fn scalar_text(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Array(_) | toml::Value::Table(_) => None,
        other => Some(other.to_string()),
    }
}

fn flatten_config(
    table: &BTreeMap<String, toml::Value>,
    prefix: &str,
    pairs: &mut Vec<(String, String)>,
    unpassable: &mut Vec<(String, &'static str)>,
) {
    for (key, value) in table {
        let key = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(inner) => {
                let inner: BTreeMap<String, toml::Value> =
                    inner.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                flatten_config(&inner, &key, pairs, unpassable);
            }
            toml::Value::Array(items) => {
                match items.iter().map(scalar_text).collect::<Option<Vec<_>>>() {
                    Some(texts) => pairs.push((key, texts.join(","))),
                    None => unpassable.push((key, "array of tables or arrays")),
                }
            }
            scalar => {
                if let Some(text) = scalar_text(scalar) {
                    pairs.push((key, text));
                }
            }
        }
    }
}

#[cfg(test)]
mod plugin_config_tests {
    use super::*;

    #[test]
    fn dotted_keys_and_lists_reach_init_as_strings() {
        let plugin: PluginConfig = toml::from_str(
            r#"
            path = "p.wasm"
            config = { field = "a", add.processed_at = "$timestamp", "add.static" = 3, in = ["x", "y", 2], strict = true, bad = [{ x = 1 }] }
            "#,
        )
        .unwrap();
        assert_eq!(
            plugin.init_pairs(),
            [
                ("add.processed_at".to_owned(), "$timestamp".to_owned()),
                ("add.static".to_owned(), "3".to_owned()),
                ("field".to_owned(), "a".to_owned()),
                ("in".to_owned(), "x,y,2".to_owned()),
                ("strict".to_owned(), "true".to_owned()),
            ]
        );
        assert_eq!(
            plugin.unpassable_config(),
            [("bad".to_owned(), "array of tables or arrays")]
        );
    }
}

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
}

/// `[pipelines.NAME]`: a source, a plugin chain and where outputs go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Name of a `[sources.*]` entry.
    pub source: String,
    /// Names of `[plugins.*]` entries, applied in order: the outputs of one
    /// are the events of the next.
    #[serde(default)]
    pub plugins: Vec<String>,
    /// Sink for outputs that name no route.
    pub default_route: String,
    /// Extra route names mapped to sink names (`purchase = "mongo"`); a
    /// route that is not here is looked up as a sink name.
    #[serde(default)]
    pub routes: BTreeMap<String, String>,
    /// Sink for events a plugin failed, poison events and outputs a sink
    /// rejected. Without one, such an event stops the pipeline.
    pub dead_letter: Option<String>,
    /// Batching.
    #[serde(default)]
    pub batch: BatchConfig,
    /// Retries of transient sink errors.
    #[serde(default)]
    pub retry: RetryConfig,
}

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
