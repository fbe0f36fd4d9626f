//! The three DynamoDB Streams calls the source makes, behind a small trait
//! so the shard scheduler can also run against a scripted stream (shard
//! splits, expired iterators, trimmed data) that an emulator cannot produce.

use async_trait::async_trait;
use aws_sdk_dynamodbstreams::Client;
use aws_sdk_dynamodbstreams::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};

use crate::dynamodb::client::{AwsConnection, error_text};

/// A shard as DescribeStream lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    /// Shard id.
    pub id: String,
    /// The shard it was split from, if any.
    pub parent: Option<String>,
    /// Whether the shard is closed (it has an ending sequence number):
    /// reading it to the end finishes it.
    pub closed: bool,
}

/// The stream and its current shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamShape {
    /// Stream ARN.
    pub stream_arn: String,
    /// The table the stream belongs to.
    pub table_name: String,
    /// Every shard the stream still has (trimmed shards are gone).
    pub shards: Vec<ShardInfo>,
}

/// Where an iterator starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IteratorStart {
    /// The oldest record still in the shard.
    TrimHorizon,
    /// Just after the newest record.
    Latest,
    /// At (including) this sequence number.
    At(String),
    /// Just after this sequence number.
    After(String),
}

/// One GetRecords answer.
#[derive(Debug, Clone, Default)]
pub struct RecordsPage {
    /// Records, in shard order.
    pub records: Vec<Record>,
    /// The next iterator; `None` once a closed shard is read to its end.
    pub next_iterator: Option<String>,
}

/// Why a Streams call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamsError {
    /// The iterator is older than 15 minutes: get a new one.
    #[error("shard iterator expired")]
    ExpiredIterator,
    /// The position is older than the stream's retention: records are lost.
    #[error("data trimmed: {0}")]
    Trimmed(String),
    /// The stream or shard does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// Throttled, server error, network: retry.
    #[error("{0}")]
    Transient(String),
    /// Credentials, permissions, a malformed request: retrying cannot help.
    #[error("{0}")]
    Fatal(String),
}

/// The Streams calls the source needs.
#[async_trait]
pub trait StreamsApi: Send + Sync {
    /// All current shards of the stream (every DescribeStream page).
    async fn describe(&self) -> Result<StreamShape, StreamsError>;
    /// A shard iterator.
    async fn iterator(&self, shard_id: &str, start: &IteratorStart)
    -> Result<String, StreamsError>;
    /// Up to `limit` records from an iterator.
    async fn records(&self, iterator: &str, limit: i32) -> Result<RecordsPage, StreamsError>;
}

/// The real service.
#[derive(Debug, Clone)]
pub struct SdkStreams {
    client: Client,
    stream_arn: String,
}

fn classify<E, R>(err: &SdkError<E, R>) -> StreamsError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    let text = error_text(err);
    match err {
        SdkError::ServiceError(ctx) => match ctx.err().code().unwrap_or("") {
            "ExpiredIteratorException" => StreamsError::ExpiredIterator,
            "TrimmedDataAccessException" => StreamsError::Trimmed(text),
            "ResourceNotFoundException" => StreamsError::NotFound(text),
            "AccessDeniedException"
            | "UnrecognizedClientException"
            | "ValidationException"
            | "MissingAuthenticationTokenException"
            | "InvalidSignatureException" => StreamsError::Fatal(text),
            _ => StreamsError::Transient(text),
        },
        SdkError::ConstructionFailure(_) => StreamsError::Fatal(text),
        _ => StreamsError::Transient(text),
    }
}

impl SdkStreams {
    /// Connect to the stream given by ARN, or the latest stream of `table`.
    pub async fn connect(
        conn: &AwsConnection,
        table: Option<&str>,
        stream_arn: Option<&str>,
    ) -> Result<Self, StreamsError> {
        let sdk = conn.load_checked().await.map_err(StreamsError::Fatal)?;
        let client = Client::new(&sdk);
        let stream_arn = match (stream_arn, table) {
            (Some(arn), _) => arn.to_string(),
            (None, Some(table)) => {
                let ddb = aws_sdk_dynamodb::Client::new(&sdk);
                let described = ddb
                    .describe_table()
                    .table_name(table)
                    .send()
                    .await
                    .map_err(|e| match classify(&e) {
                        StreamsError::NotFound(m) => {
                            StreamsError::Fatal(format!("table {table}: {m}"))
                        }
                        other => other,
                    })?;
                described
                    .table()
                    .and_then(|t| t.latest_stream_arn())
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        StreamsError::Fatal(format!(
                            "table {table} has no stream (enable DynamoDB Streams on it)"
                        ))
                    })?
            }
            (None, None) => {
                return Err(StreamsError::Fatal(
                    "neither table nor stream_arn is set".into(),
                ));
            }
        };
        Ok(SdkStreams { client, stream_arn })
    }
}

#[async_trait]
impl StreamsApi for SdkStreams {
    async fn describe(&self) -> Result<StreamShape, StreamsError> {
        let mut shards = Vec::new();
        let mut table_name = String::new();
        let mut start: Option<String> = None;
        loop {
            let out = self
                .client
                .describe_stream()
                .stream_arn(&self.stream_arn)
                .set_exclusive_start_shard_id(start.take())
                .send()
                .await
                .map_err(|e| classify(&e))?;
            let Some(desc) = out.stream_description() else {
                return Err(StreamsError::Transient(
                    "DescribeStream returned no description".into(),
                ));
            };
            if let Some(t) = desc.table_name() {
                table_name = t.to_string();
            }
            for s in desc.shards() {
                let Some(id) = s.shard_id() else { continue };
                shards.push(ShardInfo {
                    id: id.to_string(),
                    parent: s.parent_shard_id().map(str::to_owned),
                    closed: s
                        .sequence_number_range()
                        .and_then(|r| r.ending_sequence_number())
                        .is_some(),
                });
            }
            match desc.last_evaluated_shard_id() {
                Some(last) => start = Some(last.to_string()),
                None => break,
            }
        }
        Ok(StreamShape {
            stream_arn: self.stream_arn.clone(),
            table_name,
            shards,
        })
    }

    async fn iterator(
        &self,
        shard_id: &str,
        start: &IteratorStart,
    ) -> Result<String, StreamsError> {
        let req = self
            .client
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(shard_id);
        let req = match start {
            IteratorStart::TrimHorizon => req.shard_iterator_type(ShardIteratorType::TrimHorizon),
            IteratorStart::Latest => req.shard_iterator_type(ShardIteratorType::Latest),
            IteratorStart::At(seq) => req
                .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                .sequence_number(seq),
            IteratorStart::After(seq) => req
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .sequence_number(seq),
        };
        let out = req.send().await.map_err(|e| classify(&e))?;
        out.shard_iterator
            .ok_or_else(|| StreamsError::NotFound(format!("no iterator for shard {shard_id}")))
    }

    async fn records(&self, iterator: &str, limit: i32) -> Result<RecordsPage, StreamsError> {
        let out = self
            .client
            .get_records()
            .shard_iterator(iterator)
            .limit(limit)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(RecordsPage {
            records: out.records.unwrap_or_default(),
            next_iterator: out.next_shard_iterator,
        })
    }
}
