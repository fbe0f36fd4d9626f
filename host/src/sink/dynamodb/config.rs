//! Settings of the DynamoDB sink.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use super::sink::DynamoDbSink;
use crate::dynamodb::attr::{JsonFormat, JsonMapping};
use crate::dynamodb::client::with_aws_connection;
use crate::sink::{BuildSink, Sink, SinkContext, SinkError};

with_aws_connection! {
/// `[sinks.NAME]` with `type = "dynamodb"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamoDbSinkConfig {
    /// Table the items are written to; it must exist.
    pub table: String,
    /// Names of the table's key attributes (partition key, then sort key).
    /// Default: read from the table's key schema. For a delete, the key
    /// attributes are taken from the output's key (a JSON object) or else
    /// from its value; for a put, missing key attributes of the value are
    /// filled in from the output's key.
    #[serde(default)]
    pub key: Option<Vec<String>>,
    /// How output JSON maps to attribute values: `natural` (default) or
    /// `typed` (DynamoDB JSON, `{"S": "x"}`), see the attribute mapping.
    #[serde(default)]
    pub format: JsonFormat,
    /// Attribute holding the item's expiry (epoch seconds, the table's TTL
    /// attribute). Set to now + the output's `ttl_seconds`, or else now +
    /// `ttl_seconds` below; left alone when neither is given.
    #[serde(default)]
    pub ttl_attribute: Option<String>,
    /// Default time to live in seconds for outputs without their own.
    #[serde(default)]
    pub ttl_seconds: Option<u32>,
    /// A numeric (or string) attribute that orders versions of an item, such
    /// as a version counter or an update timestamp. When set, every write is
    /// a conditional PutItem/DeleteItem that only applies if the stored item
    /// has no such attribute or one not greater than the output's; a write
    /// that loses is an older event and counts as done. Puts must carry the
    /// attribute; deletes use it when their value or key has it.
    #[serde(default)]
    pub version_attribute: Option<String>,
    /// Requests in flight at once (BatchWriteItem calls, or single-item
    /// calls with `version_attribute`). Default 8.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Attempts for a batch's unprocessed items (throttling) before the
    /// whole write is reported as a transient error. Default 10.
    #[serde(default = "default_unprocessed_attempts")]
    pub unprocessed_attempts: u32,
}
}

fn default_concurrency() -> usize {
    8
}

fn default_unprocessed_attempts() -> u32 {
    10
}

impl DynamoDbSinkConfig {
    /// The JSON mapping.
    pub fn mapping(&self) -> JsonMapping {
        JsonMapping {
            format: self.format,
            ..JsonMapping::default()
        }
    }
}

#[async_trait]
impl BuildSink for DynamoDbSinkConfig {
    async fn build(&self, ctx: &SinkContext) -> Result<Arc<dyn Sink>, SinkError> {
        Ok(Arc::new(DynamoDbSink::connect(&ctx.name, self).await?))
    }
}
