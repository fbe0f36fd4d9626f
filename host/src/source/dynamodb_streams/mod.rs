//! The DynamoDB Streams source (`type = "dynamodb_streams"`).
//!
//! ```toml
//! [sources.profiles]
//! type = "dynamodb_streams"
//! table = "profiles"               # or stream_arn = "arn:aws:dynamodb:..."
//! endpoint = "http://127.0.0.1:15000"
//! start_position = "trim_horizon"  # or "latest"
//! lease_table = "weir_leases"
//! ```
//!
//! Each record becomes an event: `op` from the event name (INSERT ->
//! insert, MODIFY -> upsert, REMOVE -> delete), `key` the key attributes as
//! JSON, `value` the new image, `old_value` the old image (as the stream's
//! view type provides them), `timestamp_ms` the approximate creation time,
//! `origin` = `table/shard/sequence`.
//!
//! - [`config`]: the settings.
//! - [`streams`]: the DynamoDB Streams calls, behind a trait.
//! - [`shards`]: discovery and lineage rules.
//! - [`leases`]: the lease and checkpoint table, and balancing.
//! - [`source`]: the coordinator, the shard readers and batch assembly.

pub mod config;
pub mod leases;
pub mod shards;
pub mod source;
pub mod streams;

pub use config::DynamoDbStreamsSourceConfig;
pub use source::{DynamoDbStreamsError, DynamoDbStreamsSource, ShardMark, StreamsCheckpoint};
