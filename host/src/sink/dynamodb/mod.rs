//! The DynamoDB sink (`type = "dynamodb"`): outputs become items.
//!
//! ```toml
//! [sinks.copy]
//! type = "dynamodb"
//! table = "profiles_copy"
//! key = ["id"]                  # default: the table's key schema
//! endpoint = "http://127.0.0.1:15000"
//! version_attribute = "version" # optional: an older event never overwrites a newer item
//! ttl_attribute = "expires_at"  # optional, with the output's ttl_seconds or `ttl_seconds`
//! ```
//!
//! - [`config`]: the settings.
//! - [`sink`]: output -> write request, collapsing duplicate keys, batches
//!   of at most 25, unprocessed-item retries, conditional writes, error
//!   classification.

pub mod config;
pub mod sink;

pub use config::DynamoDbSinkConfig;
pub use sink::{DynamoDbSink, DynamoDbSinkError};
