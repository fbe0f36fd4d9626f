//! Weir: a WebAssembly plugin host for stream transforms.
//!
//! A pipeline reads batches of [`event::Event`]s from a [`source::Source`],
//! runs them through a chain of Wasm plugins ([`engine`]), routes what the
//! plugins emit to [`sink::Sink`]s, and only then lets the source checkpoint
//! past them ([`pipeline`]).
//!
//! Module map, one concern each:
//! - [`config`]: the typed TOML config and `weir validate`.
//! - [`engine`]: wasmtime: compile (with an on-disk cache), instantiate,
//!   limits, calls, poison-event isolation.
//! - [`plugin`]: each plugin's versions and hot reload (file watch,
//!   swap at batch boundaries).
//! - [`builtin`]: the standard plugins embedded in the binary
//!   (`builtin:filter`, ...).
//! - [`admin`]: the HTTP admin API: health, metrics, plugins, reload.
//! - [`pipeline`]: source -> plugin chain -> router -> sinks, batching,
//!   backpressure, acknowledgements, dead letters.
//! - [`source`], [`sink`]: the connectors, one folder and one cargo feature each.
//! - [`registry`]: the connector registry macro both of them declare theirs with.
//! - [`secrets`]: keeping secrets out of everything printed.
//! - [`telemetry`]: OpenTelemetry spans of batches, exported over OTLP.
//! - [`logging`]: log output (text or flat JSON) and summaries of
//!   repeated warnings.
//! - [`cli`]: the `weir` command line.
//!
//! The modules are layered (`cli`, `runtime`, `config`, `admin`, `pipeline`,
//! `plugin`, `engine`, `sink`, `source`, then the shared helpers); a unit
//! test keeps the graph of `crate::` references among them free of cycles.

pub mod admin;
pub mod builtin;
pub mod calendar;
pub mod cli;
pub mod config;
pub mod connector_error;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
pub mod engine;
pub mod event;
pub mod logging;
pub mod lookup;
pub mod metrics;
pub mod paths;
pub mod pipeline;
pub mod plugin;
pub mod registry;
pub mod runtime;
pub mod secrets;
pub mod sink;
pub mod source;
pub mod telemetry;
pub mod tls;

#[cfg(test)]
mod layering;
