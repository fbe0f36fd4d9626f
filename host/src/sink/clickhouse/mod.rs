//! The ClickHouse sink (`type = "clickhouse"`).
//!
//! Outputs become rows through a column mapping (`url = "value.url"`), each
//! value checked against the column's type (read from `system.columns`) and
//! a group sent as one `INSERT ... FORMAT JSONEachRow` over the HTTP
//! interface (the format and the interface of every ClickHouse release,
//! from 18.x to current). Deletes are rows too: with `delete_column`, a
//! delete writes the key with that column set to 1, which a
//! `ReplacingMergeTree(version)` table resolves (the idiomatic ClickHouse
//! CDC target; read it with `FINAL ... WHERE deleted = 0`).
//!
//! - [`config`]: the settings.
//! - [`mapping`]: column types, binding an output to a JSON row.
//! - [`client`]: the HTTP requests and the server's error classes.
//! - [`sink`]: writing a group, retries, rejections.

pub mod client;
pub mod config;
pub mod mapping;
pub mod sink;

pub use config::ClickhouseSinkConfig;
pub use sink::{ClickhouseSink, ClickhouseSinkError};
