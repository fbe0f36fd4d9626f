//! MongoDB sink (official driver): database/collection, `_id` from the key,
//! value fields or generated, write models insert / replace-upsert /
//! update (`$set`, deduplicated `$inc`), delete on `op = delete`, one
//! unordered bulk write per batch.
//!
//! - [`config`]: the typed settings and their validation.
//! - [`sink`]: building write models, sending them, reading the results.

pub mod config;
pub mod sink;

pub use config::MongoSinkConfig;
pub use sink::{MongoSink, MongoSinkError};
