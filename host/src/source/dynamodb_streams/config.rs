//! Settings of the DynamoDB Streams source.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use super::source::DynamoDbStreamsSource;
use crate::dynamodb::attr::{InexactNumbers, JsonFormat, JsonMapping};
use crate::dynamodb::client::with_aws_connection;
use crate::source::{BuildSource, DynSource, SourceContext, SourceError, erase};

with_aws_connection! {
/// `[sources.NAME]` with `type = "dynamodb_streams"`. The AWS connection
/// keys are used for DynamoDB, DynamoDB Streams and the lease table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamoDbStreamsSourceConfig {
    /// Table whose latest stream is read (give this or `stream_arn`).
    #[serde(default)]
    pub table: Option<String>,
    /// Stream ARN to read (give this or `table`).
    #[serde(default)]
    pub stream_arn: Option<String>,
    /// Where a shard without a checkpoint starts: `trim_horizon` (default,
    /// the oldest record still in the stream) or `latest` (only records
    /// written from now on). Shards split off a shard this pipeline reads
    /// always start at their beginning.
    #[serde(default)]
    pub start_position: StartPosition,
    /// `natural` (default) or `typed` (DynamoDB JSON, lossless) JSON for
    /// key, value and old value; see the attribute mapping.
    #[serde(default)]
    pub format: JsonFormat,
    /// Natural JSON only: numbers no JSON number carries exactly become a
    /// `string` (default, lossless) or the nearest `float`.
    #[serde(default)]
    pub inexact_numbers: InexactNumbers,
    /// Table holding leases and checkpoints; created (on demand billing)
    /// if missing. Default `weir_leases`.
    #[serde(default = "default_lease_table")]
    pub lease_table: String,
    /// Hosts with the same lease group share the stream's shards and its
    /// checkpoints. Default: the pipeline's name.
    #[serde(default)]
    pub lease_group: Option<String>,
    /// A lease not renewed for this long is taken over by another host.
    /// Renewals happen every third of it. Default 10000.
    #[serde(default = "default_lease_duration_ms")]
    pub lease_duration_ms: u64,
    /// How often the stream is described to find new shards. Default 10000.
    #[serde(default = "default_shard_sync_interval_ms")]
    pub shard_sync_interval_ms: u64,
    /// Most shards this host reads at once; default: no limit.
    #[serde(default)]
    pub max_leases: Option<usize>,
    /// Records asked for per GetRecords call (1..=1000). Default 1000.
    #[serde(default = "default_records_per_call")]
    pub records_per_call: i32,
    /// Pause after a GetRecords call that returned records but not a full
    /// page. After a full page the next call is immediate; after an empty
    /// one the pause doubles up to `poll_max_ms`. Default 50.
    #[serde(default = "default_poll_min_ms")]
    pub poll_min_ms: u64,
    /// Longest pause between calls on an idle shard. Default 1000.
    #[serde(default = "default_poll_max_ms")]
    pub poll_max_ms: u64,
    /// What to do when records were trimmed (24 h retention) before they
    /// were read: `fail` (default: the pipeline stops with an error naming
    /// the shard and checkpoint) or `skip` (log an error, count it in
    /// `weir_source_dynamodb_data_loss_total`, go on from the oldest
    /// record still there).
    #[serde(default)]
    pub on_data_loss: OnDataLoss,
    /// Top-level string attribute of the item (its new image, else its old
    /// one) holding a W3C trace context, e.g. `"traceparent"`: copied into
    /// the event's `traceparent` header, so tracing continues the writer's
    /// trace (see `[host.tracing]`). Default: none.
    #[serde(default)]
    pub traceparent_attribute: Option<String>,
}
}

fn default_lease_table() -> String {
    "weir_leases".into()
}
fn default_lease_duration_ms() -> u64 {
    10_000
}
fn default_shard_sync_interval_ms() -> u64 {
    10_000
}
fn default_records_per_call() -> i32 {
    1000
}
fn default_poll_min_ms() -> u64 {
    50
}
fn default_poll_max_ms() -> u64 {
    1000
}

/// Where a shard without a checkpoint starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartPosition {
    /// The oldest record still in the shard.
    #[default]
    TrimHorizon,
    /// Records written from now on.
    Latest,
}

/// Reaction to records lost to retention.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDataLoss {
    /// Stop the pipeline with a fatal error.
    #[default]
    Fail,
    /// Log, count, and go on from the oldest record still there.
    Skip,
}

impl DynamoDbStreamsSourceConfig {
    /// The JSON mapping.
    pub fn mapping(&self) -> JsonMapping {
        JsonMapping {
            format: self.format,
            inexact_numbers: self.inexact_numbers,
        }
    }

    /// A complaint about the settings, if any.
    pub fn validate(&self) -> Result<(), String> {
        match (&self.table, &self.stream_arn) {
            (None, None) => return Err("set `table` or `stream_arn`".into()),
            (Some(_), Some(_)) => return Err("set only one of `table` and `stream_arn`".into()),
            _ => {}
        }
        if !(1..=1000).contains(&self.records_per_call) {
            return Err(format!(
                "records_per_call must be 1..=1000, not {}",
                self.records_per_call
            ));
        }
        if self.lease_duration_ms < 300 {
            return Err(format!(
                "lease_duration_ms must be at least 300, not {}",
                self.lease_duration_ms
            ));
        }
        if self.poll_max_ms < self.poll_min_ms {
            return Err("poll_max_ms must not be below poll_min_ms".into());
        }
        if self.max_leases == Some(0) {
            return Err("max_leases must be at least 1".into());
        }
        self.connection().validate()
    }
}

#[async_trait]
impl BuildSource for DynamoDbStreamsSourceConfig {
    async fn build(&self, ctx: &SourceContext) -> Result<Arc<dyn DynSource>, SourceError> {
        Ok(erase(Arc::new(
            DynamoDbStreamsSource::connect(self, ctx).await?,
        )))
    }
}
