//! The ScyllaDB / Apache Cassandra sink (`type = "scylla"`).
//!
//! Outputs become rows through a column mapping (`device_id =
//! "value.deviceId"`): each value is converted from JSON to the column's
//! CQL type (read from `system_schema.columns` or declared in the config)
//! and bound to one prepared `INSERT ... USING TTL ? [AND TIMESTAMP ?]`, or
//! to a `DELETE` by primary key for delete outputs. A group is written as
//! per-partition UNLOGGED batches, partitions concurrently.
//!
//! - [`config`]: the settings.
//! - [`cql_type`]: CQL type strings.
//! - [`convert`]: JSON → CQL values.
//! - [`mapping`]: the column mapping, statements, binding an output.
//! - [`schema`]: the table schema (queried or declared).
//! - [`batching`]: grouping by partition into bounded batches.
//! - [`sink`]: the connected sink: retries, rejections.
//! - `tls`: TLS (cargo feature `scylla-tls`).

pub mod batching;
pub mod config;
pub mod convert;
pub mod cql_type;
pub mod mapping;
pub mod schema;
pub mod sink;
mod tls;

pub use config::ScyllaSinkConfig;
pub use sink::{ScyllaSink, ScyllaSinkError};
