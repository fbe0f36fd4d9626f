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
mod diagnostic;
#[cfg(test)]
mod docs_check;
mod interpolate;
mod load;

pub(crate) use diagnostic::join_key;
pub use diagnostic::{ConfigErrors, Diagnostic, Location, Locations, Severity};
pub use load::{LoadedConfig, config_dir};

// The option types of the layers below, which own them; a config file
// aggregates them under `[plugins.*]` and `[pipelines.*]`.
pub use crate::engine::{PluginGrants, PluginLimits};
pub use crate::pipeline::{BatchConfig, Ordering, RetryConfig, RouteNames};

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
    /// Named lookup stores plugins may read once granted.
    #[serde(default)]
    pub lookups: BTreeMap<String, crate::lookup::LookupConfig>,
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
    /// A pipeline with work waiting (events in flight, or a source backlog)
    /// that committed nothing for this long is reported as stalled by
    /// `/health/ready` and `weir_pipeline_state`. 0 turns the detector off.
    pub stall_after_ms: u64,
    /// Log format: `text` (default) or `json`.
    pub log_format: LogFormat,
    /// Seconds between progress lines (events in/out/dropped/failed per
    /// pipeline); 0 turns them off. Printed only when stderr is a terminal
    /// unless set explicitly.
    pub progress_interval_s: Option<u64>,
    /// `[host.admin]`: the admin HTTP API (health, metrics, plugins,
    /// reload). On by default, on `127.0.0.1:9464`.
    pub admin: crate::admin::AdminConfig,
    /// `[host.tracing]`: OpenTelemetry traces over OTLP. Off by default.
    pub tracing: crate::telemetry::TracingConfig,
    /// How often plugin files with `watch = "poll"` (or `"auto"` where file
    /// events are unavailable) are checked for changes, in milliseconds.
    pub plugin_poll_interval_ms: u64,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            cache_dir: None,
            shutdown_timeout_ms: 30_000,
            stall_after_ms: 300_000,
            log_format: LogFormat::Text,
            progress_interval_s: None,
            admin: crate::admin::AdminConfig::default(),
            tracing: crate::telemetry::TracingConfig::default(),
            plugin_poll_interval_ms: 1_000,
        }
    }
}

pub use crate::logging::LogFormat;

/// `[plugins.NAME]`: a Wasm component and how it runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Path of the `.wasm` component, relative to the config file, or
    /// `builtin:filter`, `builtin:transform`, `builtin:router` for the
    /// standard plugins embedded in the binary.
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
    /// The `[lookups.NAME]` stores the plugin may read.
    #[serde(default)]
    pub lookups: Vec<String>,
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
    /// Plugin workers, each with its own instances of the chain; batches of
    /// different partitions (or, with `ordering = "key"`, keys) run on
    /// different workers at once. Unset: the cores available.
    pub workers: Option<usize>,
    /// What must stay in order: `"partition"` or `"key"`.
    #[serde(default)]
    pub ordering: Ordering,
    /// Most writes one sink of this pipeline runs at once (outputs of
    /// different partitions or keys).
    #[serde(default = "default_max_concurrent_writes")]
    pub max_concurrent_writes: usize,
}

fn default_max_concurrent_writes() -> usize {
    crate::pipeline::DEFAULT_MAX_CONCURRENT_WRITES
}

impl PipelineConfig {
    /// The sink names this pipeline declares, for
    /// [`crate::pipeline::DeclaredRoutes::resolve`].
    pub fn route_names(&self) -> RouteNames<'_> {
        RouteNames {
            default_route: &self.default_route,
            dead_letter: self.dead_letter.as_deref(),
            routes: &self.routes,
        }
    }

    /// The worker count: `workers`, or the cores available.
    pub fn worker_count(&self) -> usize {
        self.workers
            .unwrap_or_else(crate::pipeline::default_workers)
            .max(1)
    }

    /// How the pipeline spreads and writes its batches.
    pub fn flow(&self) -> crate::pipeline::FlowConfig {
        crate::pipeline::FlowConfig {
            ordering: self.ordering,
            max_concurrent_writes: self.max_concurrent_writes.max(1),
        }
    }
}

#[cfg(test)]
mod tracing_config_tests {
    use super::*;

    #[test]
    fn weir_validate_names_a_bad_tracing_setting_with_its_line() {
        let text = "[host.tracing]\notlp_endpoint = \"http://c:4318\"\nsampling_ratio = 2.0\n";
        let errors = Config::load_str(text, std::path::Path::new("w.toml"), &|_| None)
            .expect_err("an out-of-range ratio is refused");
        let shown = errors.to_string();
        assert!(
            shown.contains(
                "w.toml:3:18: host.tracing.sampling_ratio: must be between 0.0 and 1.0, not 2"
            ),
            "{shown}"
        );
    }
}

#[cfg(test)]
mod workers_config_tests {
    use super::*;

    const BASE: &str = "[sources.in]\ntype = \"kafka\"\nbrokers = \"127.0.0.1:1\"\ntopics = [\"t\"]\n\
        [sinks.out]\ntype = \"file\"\npath = \"/dev/null\"\n\
        [pipelines.p]\nsource = \"in\"\ndefault_route = \"out\"\n";

    fn errors(extra: &str) -> String {
        let text = format!("{BASE}{extra}");
        Config::load_str(&text, std::path::Path::new("w.toml"), &|_| None)
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn workers_ordering_and_write_limits_are_checked_at_their_line() {
        let shown = errors("workers = 0\nmax_concurrent_writes = 0\n");
        assert!(
            shown.contains("w.toml:11:11: pipelines.p.workers: must be at least 1"),
            "{shown}"
        );
        assert!(
            shown.contains("w.toml:12:25: pipelines.p.max_concurrent_writes: must be at least 1"),
            "{shown}"
        );
        let shown = errors("ordering = \"offset\"\n");
        assert!(
            shown.contains(
                "w.toml:11:12: pipelines.p.ordering: unknown variant `offset`, expected `partition` or `key`"
            ),
            "{shown}"
        );
    }

    #[test]
    fn workers_default_to_the_cores_and_ordering_to_the_partition() {
        let config =
            Config::load_str(BASE, std::path::Path::new("w.toml"), &|_| None).expect("valid");
        let p = &config.config.pipelines["p"];
        assert_eq!(p.worker_count(), crate::pipeline::default_workers());
        assert_eq!(p.ordering, Ordering::Partition);
        assert_eq!(
            p.flow().max_concurrent_writes,
            crate::pipeline::DEFAULT_MAX_CONCURRENT_WRITES
        );
    }
}
