//! The PostgreSQL / TimescaleDB sink (`type = "postgres"`).
//!
//! Outputs become rows through a column mapping (`device_id =
//! "value.deviceId"`). Each value is checked against the column's type
//! (read from the catalog) and sent as text; a group is written as one
//! `INSERT ... SELECT FROM unnest(...) ON CONFLICT (key) DO UPDATE` and one
//! `DELETE ... USING unnest(...)` by key, so a replay converges. A
//! TimescaleDB hypertable is a PostgreSQL table to this sink.
//!
//! - [`config`]: the settings.
//! - [`mapping`]: column types, the statements, binding an output.
//! - [`sink`]: the connection, error classes, writing a group.

pub mod config;
pub mod mapping;
pub mod sink;

pub use config::PostgresSinkConfig;
pub use sink::{PostgresSink, PostgresSinkError};
