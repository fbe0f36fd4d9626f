//! Why the Kafka source failed: librdkafka's error as the cause where
//! there is one, and whether the pipeline should retry.

use rdkafka::error::KafkaError;

use crate::connector_error::ConnectorError;

/// Why the Kafka source failed.
#[derive(Debug, thiserror::Error)]
pub enum KafkaSourceError {
    /// The settings make no consumer (`topics`, `brokers`/`embedded`,
    /// `options`, the embedded cluster's seed).
    #[error("{0}")]
    Config(String),
    /// librdkafka refused to create the consumer.
    #[error("cannot create the consumer: {0}")]
    CreateConsumer(#[source] KafkaError),
    /// Subscribing to the topics failed.
    #[error("cannot subscribe to {topics:?}: {source}")]
    Subscribe {
        /// The configured topics.
        topics: Vec<String>,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },
    /// The consumer failed for good.
    #[error("consumer failed: {0}")]
    Consume(#[source] KafkaError),
    /// Finding out whether every partition was read to its end failed.
    #[error("end-of-topic check: {0}")]
    EndOfTopic(#[source] KafkaError),
    /// The consumer's partition assignment could not be read.
    #[error("cannot read the assignment: {0}")]
    Assignment(#[source] KafkaError),
    /// An offset of a checkpoint is not one librdkafka takes.
    #[error("bad offset {next}: {source}")]
    Offset {
        /// The offset.
        next: i64,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },
    /// The offset commit failed (the next batch's commit usually covers it).
    #[error("offset commit failed: {0}")]
    Commit(#[source] KafkaError),
    /// The final commit or leaving the group at close failed.
    #[error("{0}")]
    Close(String),
    /// The brokers did not answer the health check.
    #[error("{0}")]
    Check(String),
    /// Partitions stopped without an error (see `stuck`); the health check
    /// says which.
    #[error(
        "partition stuck: {0} (no record past it and no error from librdkafka; see docs/operations.md, \"A Kafka partition stuck at one offset\")"
    )]
    Stuck(String),
    /// A lock was poisoned by a panicking thread.
    #[error("{0} lock poisoned")]
    Poisoned(&'static str),
    /// The source was used after `close`.
    #[error("the source is closed")]
    Closed,
    /// A blocking task (embedded cluster start, end-of-topic check, close,
    /// check) did not finish.
    #[error("{what}: {source}")]
    Task {
        /// What the task was doing.
        what: &'static str,
        /// Whether trying again may help.
        transient: bool,
        /// Why the task ended.
        #[source]
        source: tokio::task::JoinError,
    },
}

impl ConnectorError for KafkaSourceError {
    fn is_transient(&self) -> bool {
        match self {
            KafkaSourceError::EndOfTopic(_)
            | KafkaSourceError::Assignment(_)
            | KafkaSourceError::Commit(_)
            | KafkaSourceError::Check(_)
            | KafkaSourceError::Stuck(_) => true,
            KafkaSourceError::Task { transient, .. } => *transient,
            _ => false,
        }
    }
}
