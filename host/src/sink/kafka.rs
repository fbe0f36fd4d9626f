//! The Kafka sink (`type = "kafka"`): each output becomes one message, with
//! its key and headers; a delete becomes a tombstone (no value).
//!
//! ```toml
//! [sinks.enriched]
//! type = "kafka"
//! brokers = "127.0.0.1:9092"
//! topic = "enriched"        # unset: the output's route is the topic
//! acks = "all"              # default
//! idempotence = true        # default
//! options = { "compression.type" = "lz4", "security.protocol" = "SSL" }
//! ```
//!
//! An output is acknowledged when the broker acknowledged its message. A
//! message the broker or client refuses for good (too large, invalid or
//! unknown topic, policy violation) is rejected on its own and goes to the
//! dead-letter sink with the reason; anything else (timeouts, leader
//! changes, connection loss) fails the group as transient so it is retried.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header as KafkaHeader, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use serde::Deserialize;

use super::{BuildSink, Rejection, Sink, SinkContext, SinkError};
use crate::connector_error::ConnectorError;
use crate::event::{Op, Output};
use crate::source::kafka::client::{self, KafkaOptions, LogContext};

/// How long `flush` and `check` may wait for the brokers.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);

/// `[sinks.NAME]` with `type = "kafka"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    /// Bootstrap servers, comma-separated (`host:port,host:port`).
    pub brokers: String,
    /// Topic every output is written to. Unset: each output's route (the
    /// name the plugin routed it to) is its topic.
    pub topic: Option<String>,
    /// Acknowledgements the leader waits for: `all` (default), `1` or `0`.
    #[serde(default = "default_acks")]
    pub acks: String,
    /// Idempotent producer (no duplicates from the client's own retries,
    /// order kept per partition). Default `true`.
    #[serde(default = "default_idempotence")]
    pub idempotence: bool,
    /// librdkafka producer settings passed through (TLS, SASL,
    /// `compression.type`, `linger.ms`, `message.timeout.ms`, ...).
    #[serde(default)]
    pub options: KafkaOptions,
}

impl KafkaSinkConfig {
    /// The producer's librdkafka settings: Weir's first, then `options`.
    fn client_config(&self, name: &str, config_dir: &Path) -> Result<ClientConfig, String> {
        client::client_config(
            &[
                ("bootstrap.servers", self.brokers.clone()),
                ("client.id", format!("weir-{name}")),
                ("acks", self.acks.clone()),
                ("enable.idempotence", self.idempotence.to_string()),
                ("linger.ms", "5".into()),
                // Surface an unreachable cluster as a transient error the
                // pipeline retries, rather than waiting five minutes.
                ("message.timeout.ms", "30000".into()),
            ],
            &self.options,
            &[],
            config_dir,
        )
    }

    /// What `weir validate` checks without connecting: `acks`, and the
    /// producer's settings as librdkafka will take them (see
    /// [`client::offline_check`]), as `(key, message)`.
    pub fn offline_problems(&self, config_dir: &Path) -> Vec<(Vec<String>, String)> {
        if let Err(message) = self.check_acks() {
            return vec![(vec!["acks".to_owned()], message)];
        }
        let checked = self
            .client_config("validate", config_dir)
            .map_err(|message| client::OptionProblem {
                option: None,
                message,
            })
            .and_then(|config| client::offline_check(&config, &self.options));
        checked
            .err()
            .map(client::OptionProblem::into_keyed)
            .into_iter()
            .collect()
    }

    fn check_acks(&self) -> Result<(), String> {
        if matches!(self.acks.as_str(), "all" | "-1" | "0" | "1") {
            Ok(())
        } else {
            Err(format!(
                "acks must be \"all\", \"1\" or \"0\", not {:?}",
                self.acks
            ))
        }
    }
}

fn default_acks() -> String {
    "all".into()
}

fn default_idempotence() -> bool {
    true
}

/// A running Kafka sink.
pub struct KafkaSink {
    name: String,
    topic: Option<String>,
    producer: FutureProducer<LogContext>,
    /// The client context's last TLS/SASL failure (for readiness).
    last_error: Arc<std::sync::Mutex<Option<String>>>,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("name", &self.name)
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl BuildSink for KafkaSinkConfig {
    async fn build(&self, ctx: &SinkContext) -> Result<Arc<dyn Sink>, SinkError> {
        Ok(Arc::new(KafkaSink::connect(self, ctx)?))
    }
}

impl KafkaSink {
    /// Create the producer (it connects lazily).
    pub fn connect(config: &KafkaSinkConfig, ctx: &SinkContext) -> Result<KafkaSink, SinkError> {
        let name = ctx.name.clone();
        config.check_acks().map_err(KafkaSinkError::Config)?;
        let client_config = config
            .client_config(&name, &ctx.config_dir)
            .map_err(KafkaSinkError::Config)?;
        let log = LogContext::new(name.clone(), "sink");
        let last_error = Arc::clone(&log.last_error);
        let producer: FutureProducer<LogContext> = client_config
            .create_with_context(log)
            .map_err(KafkaSinkError::CreateProducer)?;
        Ok(KafkaSink {
            name,
            topic: config.topic.clone(),
            producer,
            last_error,
        })
    }
}

/// Why the Kafka sink failed.
#[derive(Debug, thiserror::Error)]
pub enum KafkaSinkError {
    /// The settings make no producer config (`acks`, `options`).
    #[error("{0}")]
    Config(String),
    /// librdkafka refused to create the producer.
    #[error("cannot create the producer: {0}")]
    CreateProducer(#[source] KafkaError),
    /// Some messages of a write were not delivered (the first reason).
    #[error("write failed, will be retried: {0}")]
    Write(String),
    /// Waiting for the messages in flight failed.
    #[error("flush: {0}")]
    Flush(#[source] KafkaError),
    /// The brokers did not answer the health check.
    #[error("{0}")]
    Check(String),
    /// The blocking task of a flush or check did not finish.
    #[error("{what}: {source}")]
    Task {
        /// `flush` or `check`.
        what: &'static str,
        /// Why the task ended.
        #[source]
        source: tokio::task::JoinError,
    },
}

impl ConnectorError for KafkaSinkError {
    fn is_transient(&self) -> bool {
        !matches!(
            self,
            KafkaSinkError::Config(_) | KafkaSinkError::CreateProducer(_)
        )
    }
}

/// Whether a produce error is about this one message and retrying it cannot
/// help.
fn is_permanent(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::MessageBatchTooLarge
            | RDKafkaErrorCode::InvalidMessage
            | RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::InvalidTopic
            | RDKafkaErrorCode::UnknownTopic
            | RDKafkaErrorCode::UnknownPartition
            | RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::PolicyViolation
            | RDKafkaErrorCode::InvalidArgument
    )
}

/// The librdkafka error code of a produce error, if it carries one.
fn produce_code(e: &KafkaError) -> Option<RDKafkaErrorCode> {
    match e {
        KafkaError::MessageProduction(code) => Some(*code),
        other => other.rdkafka_error_code(),
    }
}

/// What became of one output's message.
enum Delivered {
    Acked,
    Rejected(String),
    Failed(String),
}

async fn settle(future: DeliveryFuture) -> Delivered {
    match future.await {
        Ok(Ok(_)) => Delivered::Acked,
        Ok(Err((e, _msg))) => match produce_code(&e) {
            Some(code) if is_permanent(code) => Delivered::Rejected(e.to_string()),
            _ => Delivered::Failed(e.to_string()),
        },
        Err(_canceled) => Delivered::Failed("the producer was shut down".into()),
    }
}

/// Record what became of output `index`.
fn note(
    index: usize,
    delivered: Delivered,
    rejections: &mut Vec<Rejection>,
    failure: &mut Option<String>,
) {
    match delivered {
        Delivered::Acked => {}
        Delivered::Rejected(reason) => rejections.push(Rejection { index, reason }),
        Delivered::Failed(reason) => {
            failure.get_or_insert(reason);
        }
    }
}

#[async_trait]
impl Sink for KafkaSink {
    async fn write(&self, outputs: &[Output]) -> Result<Vec<Rejection>, SinkError> {
        let mut rejections = Vec::new();
        let mut failure: Option<String> = None;
        let mut pending: VecDeque<(usize, DeliveryFuture)> = VecDeque::new();
        for (index, output) in outputs.iter().enumerate() {
            let Some(topic) = self.topic.as_deref().or(output.route.as_deref()) else {
                rejections.push(Rejection {
                    index,
                    reason: "the output has no route and the sink no `topic`".to_owned(),
                });
                continue;
            };
            let mut headers = OwnedHeaders::new_with_capacity(output.headers.len());
            for h in &output.headers {
                headers = headers.insert(KafkaHeader {
                    key: &h.key,
                    value: Some(h.value.as_ref()),
                });
            }
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers);
            if let Some(key) = &output.key {
                record = record.key(key.as_ref());
            }
            if output.op != Op::Delete
                && let Some(value) = &output.value
            {
                record = record.payload(value.as_ref());
            }
            loop {
                match self.producer.send_result(record) {
                    Ok(future) => {
                        pending.push_back((index, future));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        // Make room: wait for the oldest message in flight.
                        match pending.pop_front() {
                            Some((i, future)) => {
                                let delivered = settle(future).await;
                                note(i, delivered, &mut rejections, &mut failure);
                            }
                            None => tokio::time::sleep(Duration::from_millis(10)).await,
                        }
                    }
                    Err((e, _)) => {
                        match produce_code(&e) {
                            Some(code) if is_permanent(code) => rejections.push(Rejection {
                                index,
                                reason: format!("topic {topic}: {e}"),
                            }),
                            _ => {
                                failure.get_or_insert(format!("topic {topic}: {e}"));
                            }
                        }
                        break;
                    }
                }
            }
        }
        while let Some((i, future)) = pending.pop_front() {
            let delivered = settle(future).await;
            note(i, delivered, &mut rejections, &mut failure);
        }
        if let Some(reason) = failure {
            return Err(KafkaSinkError::Write(reason).into());
        }
        rejections.sort_by_key(|r| r.index);
        Ok(rejections)
    }

    async fn flush(&self) -> Result<(), SinkError> {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || producer.flush(FLUSH_TIMEOUT))
            .await
            .map_err(|source| KafkaSinkError::Task {
                what: "flush",
                source,
            })?
            .map_err(|e| KafkaSinkError::Flush(e).into())
    }

    async fn check(&self) -> Result<(), SinkError> {
        let producer = self.producer.clone();
        let last_error = Arc::clone(&self.last_error);
        tokio::task::spawn_blocking(move || client::check_brokers(producer.client(), &last_error))
            .await
            .map_err(|source| KafkaSinkError::Task {
                what: "check",
                source,
            })?
            .map_err(|e| KafkaSinkError::Check(e).into())
    }
}
