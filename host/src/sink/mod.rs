//! Sinks: where outputs are written.
//!
//! A sink is one folder or file under `sink/`, one line in the registry at
//! the bottom of this file, and (for anything with a driver) one cargo
//! feature. The pipeline owns retries, dead letters and acknowledgements; a
//! sink only writes a group of outputs and says, per output, what happened.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;

use crate::connector_error::{BoxError, ConnectorError};
use crate::event::Output;

#[cfg(feature = "clickhouse")]
pub mod clickhouse;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
pub mod field;
pub mod file;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "mongodb")]
pub mod mongodb;
#[cfg(any(feature = "scylla", feature = "typed"))]
pub mod number;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "scylla")]
pub mod scylla;
#[cfg(feature = "typed")]
pub mod typed;

/// A permanent, per-output failure: the output goes to the dead-letter sink
/// with `reason`, the rest of the group is considered written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Index of the output in the slice given to [`Sink::write`].
    pub index: usize,
    /// What the sink or server said, naming the field or value at fault.
    pub reason: String,
}

/// Why a whole [`Sink::write`] call failed.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Worth retrying (connection lost, timeout, throttling, not primary).
    /// The pipeline retries the whole group with exponential backoff and
    /// jitter; sinks write idempotently, so a repeat converges.
    #[error(transparent)]
    Transient(BoxError),
    /// Retrying cannot help (bad credentials, missing table): the pipeline
    /// stops without checkpointing past the group.
    #[error(transparent)]
    Fatal(BoxError),
}

/// A connector's own error, sorted by whether it is transient.
impl<E: ConnectorError> From<E> for SinkError {
    fn from(error: E) -> Self {
        if error.is_transient() {
            SinkError::Transient(Box::new(error))
        } else {
            SinkError::Fatal(Box::new(error))
        }
    }
}

impl SinkError {
    /// Whether retrying the same write may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, SinkError::Transient(_))
    }
}

/// Where outputs are written.
#[async_trait]
pub trait Sink: Send + Sync {
    /// Write `outputs` (all of one batch that were routed to this sink).
    ///
    /// `Ok(rejections)`: everything not rejected is durably acknowledged by
    /// the destination. `Err`: nothing may be assumed written.
    async fn write(&self, outputs: &[Output]) -> Result<Vec<Rejection>, SinkError>;

    /// Make everything acknowledged so far durable where `write` only
    /// buffered it (for example a file sink's OS buffers). Called before the
    /// pipeline checkpoints and at shutdown.
    async fn flush(&self) -> Result<(), SinkError> {
        Ok(())
    }

    /// Whether the destination is reachable now (for readiness probes).
    async fn check(&self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// What a sink gets to build itself besides its own settings.
#[derive(Debug, Clone)]
pub struct SinkContext {
    /// The sink's name in the config (`[sinks.NAME]`).
    pub name: String,
    /// Directory of the config file; relative paths are resolved against it.
    pub config_dir: PathBuf,
}

impl SinkContext {
    /// Resolve a path from the config against the config's directory.
    pub fn resolve(&self, path: &std::path::Path) -> PathBuf {
        crate::paths::resolve(&self.config_dir, path)
    }
}

/// Builds a sink from its settings; implemented by each connector's config.
#[async_trait]
pub trait BuildSink {
    /// Connect and prepare; errors name the sink and what is wrong.
    async fn build(&self, ctx: &SinkContext) -> Result<Arc<dyn Sink>, SinkError>;
}

crate::registry::connector_registry! {
    /// One `[sinks.NAME]` table: its `type` and that type's settings.
    SinkConfig, "sink", SinkContext => Arc<dyn Sink>, SinkError;
    File => file::FileSinkConfig,
    #[cfg(feature = "clickhouse")]
    Clickhouse => clickhouse::ClickhouseSinkConfig,
    #[cfg(feature = "dynamodb")]
    Dynamodb => dynamodb::DynamoDbSinkConfig,
    #[cfg(feature = "kafka")]
    Kafka => kafka::KafkaSinkConfig,
    #[cfg(feature = "mongodb")]
    Mongodb => mongodb::MongoSinkConfig,
    #[cfg(feature = "postgres")]
    Postgres => postgres::PostgresSinkConfig,
    #[cfg(feature = "redis")]
    Redis => redis::RedisSinkConfig,
    #[cfg(feature = "scylla")]
    Scylla => Box<scylla::ScyllaSinkConfig>,
}

impl SinkConfig {
    /// Problems with the settings of sink `name` that are knowable without
    /// the network, for `weir validate` (and `weir run`, which loads the
    /// config the same way): `(key segments under [sinks.NAME], message)`,
    /// an `[i]` segment indexing an array.
    pub fn offline_problems(
        &self,
        name: &str,
        config_dir: &std::path::Path,
    ) -> Vec<(Vec<String>, String)> {
        let ctx = SinkContext {
            name: name.to_owned(),
            config_dir: config_dir.to_path_buf(),
        };
        match self {
            #[cfg(feature = "dynamodb")]
            SinkConfig::Dynamodb(c) => c
                .connection()
                .validate()
                .err()
                .map(|message| (Vec::new(), message))
                .into_iter()
                .collect(),
            SinkConfig::File(c) => c.offline_problems(&ctx),
            #[cfg(feature = "kafka")]
            SinkConfig::Kafka(c) => c.offline_problems(config_dir),
            #[cfg(feature = "mongodb")]
            SinkConfig::Mongodb(c) => c.offline_problems(name),
            #[cfg(feature = "redis")]
            SinkConfig::Redis(c) => c.offline_problems(&ctx),
            #[cfg(feature = "scylla")]
            SinkConfig::Scylla(c) => scylla::sink::offline_problems(c, &ctx),
            #[allow(
                unreachable_patterns,
                reason = "reachable only when other connectors are compiled in"
            )]
            _ => {
                let _ = ctx;
                Vec::new()
            }
        }
    }

    /// Why this sink cannot take dead letters the way a pipeline writes
    /// them, if it cannot. A dead letter has no route (so a Kafka sink
    /// needs its own `topic`), and its value is the event's original bytes,
    /// which need not be JSON (so sinks that map JSON fields to a database
    /// write would refuse exactly the events that most need keeping).
    pub fn dead_letter_problem(&self) -> Option<String> {
        const NOT_JSON: &str = "dead letters carry the event's original bytes, which need not be JSON, \
             and this sink type stores only JSON values; use a `file` or `kafka` sink";
        match self {
            #[cfg(feature = "kafka")]
            SinkConfig::Kafka(kafka) if kafka.topic.is_none() => Some(
                "a `kafka` sink without `topic` writes each output to the topic named by its route, \
                 and dead letters have no route; set `topic`"
                    .to_owned(),
            ),
            #[cfg(feature = "mongodb")]
            SinkConfig::Mongodb(_) => Some(format!("(`mongodb`) {NOT_JSON}")),
            #[cfg(feature = "dynamodb")]
            SinkConfig::Dynamodb(_) => Some(format!("(`dynamodb`) {NOT_JSON}")),
            #[cfg(feature = "scylla")]
            SinkConfig::Scylla(_) => Some(format!("(`scylla`) {NOT_JSON}")),
            #[cfg(feature = "postgres")]
            SinkConfig::Postgres(_) => Some(format!("(`postgres`) {NOT_JSON}")),
            #[cfg(feature = "clickhouse")]
            SinkConfig::Clickhouse(_) => Some(format!("(`clickhouse`) {NOT_JSON}")),
            _ => None,
        }
    }
}
