//! Sources: where events come from.
//!
//! A source hands out batches, each with a checkpoint of the source's own
//! type ([`Source::Checkpoint`]), and is told to commit a checkpoint only
//! once every output of every event up to the end of that batch has been
//! acknowledged by its sink or dead-lettered.
//!
//! A checkpoint reaches one position per partition or shard, and splits
//! into one checkpoint per partition ([`Checkpoint::split`]): a pipeline
//! whose workers finish batches out of order commits each partition on its
//! own, by watermark, and the checkpoints of one partition in the order
//! their batches were read. [`SourceBatch::partitions`] says which of those
//! partitions each event belongs to.
//!
//! Pipelines and health checks hold sources of every type alike, as
//! [`DynSource`]: there a batch's checkpoint travels as a [`PendingCommit`]
//! bound to the source it came from, so no checkpoint can reach the wrong
//! source and no source has to check what it was handed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;

use crate::event::Event;

#[cfg(feature = "dynamodb")]
pub mod dynamodb_streams;
#[cfg(feature = "kafka")]
pub mod kafka;

/// Events read together, and how far they reach (`C`: the source's
/// [`Source::Checkpoint`], or a [`PendingCommit`] once erased).
#[derive(Debug)]
pub struct SourceBatch<C> {
    /// The events, in source order (per partition / shard).
    pub events: Vec<Event>,
    /// Commit this once every event of the batch is done.
    pub checkpoint: C,
    /// Per event of `events`, the index of its partition among the pieces
    /// [`Checkpoint::split`] makes of `checkpoint`. Empty when every event
    /// is of the first (a source of one partition).
    pub partitions: Vec<u32>,
    /// The source has nothing more to read and was asked to stop at the
    /// end (Kafka `stop_at_end`): the pipeline finishes this batch, commits
    /// and stops. Always `false` for sources that run forever.
    pub exhausted: bool,
    /// Events of `events` the source could read only in part (a header
    /// name that is not UTF-8, ...): they are dead-lettered with the reason
    /// instead of going through the plugins. Usually empty.
    pub unreadable: Vec<Unreadable>,
}

impl<C> SourceBatch<C> {
    /// The same batch with its checkpoint replaced by `f(checkpoint)`.
    pub fn map_checkpoint<D>(self, f: impl FnOnce(C) -> D) -> SourceBatch<D> {
        SourceBatch {
            events: self.events,
            checkpoint: f(self.checkpoint),
            partitions: self.partitions,
            exhausted: self.exhausted,
            unreadable: self.unreadable,
        }
    }
}

/// An event of a batch that cannot be given to plugins as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// Index of the event in [`SourceBatch::events`].
    pub index: usize,
    /// What is wrong with it, for the dead letter.
    pub reason: String,
}

/// Why a source call failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Worth retrying (broker unreachable, throttled).
    #[error("{0}")]
    Transient(String),
    /// The pipeline must stop (bad credentials, missing topic or table,
    /// records lost to retention).
    #[error("{0}")]
    Fatal(String),
}

impl SourceError {
    /// Whether retrying the same call may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, SourceError::Transient(_))
    }
}

/// Where events come from.
#[async_trait]
pub trait Source: Send + Sync + 'static {
    /// How far a batch reaches, in the source's own terms: one position per
    /// partition or shard the batch touched (Kafka: the next offset per
    /// topic partition; DynamoDB Streams: the last sequence number per
    /// shard), so that positions of different partitions can be tracked
    /// and committed each on its own.
    type Checkpoint: Checkpoint;

    /// Up to `max_events` events, returned as soon as `max_events` are
    /// available or `max_wait` has passed since the call began; an empty
    /// batch when nothing arrived.
    async fn next_batch(
        &self,
        max_events: usize,
        max_wait: Duration,
    ) -> Result<SourceBatch<Self::Checkpoint>, SourceError>;

    /// Persist progress up to and including the batch `checkpoint` came with.
    async fn commit(&self, checkpoint: Self::Checkpoint) -> Result<(), SourceError>;

    /// Stop reading; called once after the last commit at shutdown.
    async fn close(&self) -> Result<(), SourceError> {
        Ok(())
    }

    /// Whether the source is connected now (for readiness probes).
    async fn check(&self) -> Result<(), SourceError> {
        Ok(())
    }
}

/// How far a batch reaches, split per partition or shard.
pub trait Checkpoint: std::fmt::Debug + Send + Sync + Sized + 'static {
    /// One checkpoint per partition or shard this one reaches, each with
    /// a name for the partition that is the same in every batch (Kafka:
    /// `topic/partition`, DynamoDB Streams: the shard id), in the order
    /// [`SourceBatch::partitions`] indexes them.
    fn split(self) -> Vec<(String, Self)>;
}

/// A source of one partition.
impl Checkpoint for () {
    fn split(self) -> Vec<(String, Self)> {
        vec![(String::new(), ())]
    }
}

/// A source of any checkpoint type, as pipelines and health checks hold it
/// (see [`erase`]).
#[async_trait]
pub trait DynSource: Send + Sync {
    /// [`Source::next_batch`], with the checkpoint bound to this source.
    async fn next_batch(
        &self,
        max_events: usize,
        max_wait: Duration,
    ) -> Result<SourceBatch<PendingCommit>, SourceError>;

    /// [`Source::close`].
    async fn close(&self) -> Result<(), SourceError>;

    /// [`Source::check`].
    async fn check(&self) -> Result<(), SourceError>;
}

/// `source` as a [`DynSource`].
pub fn erase<S: Source>(source: Arc<S>) -> Arc<dyn DynSource> {
    Arc::new(Erased(source))
}

/// A typed source behind [`DynSource`].
struct Erased<S>(Arc<S>);

#[async_trait]
impl<S: Source> DynSource for Erased<S> {
    async fn next_batch(
        &self,
        max_events: usize,
        max_wait: Duration,
    ) -> Result<SourceBatch<PendingCommit>, SourceError> {
        let batch = self.0.next_batch(max_events, max_wait).await?;
        Ok(batch.map_checkpoint(|checkpoint| {
            PendingCommit(Box::new(Bound {
                source: Arc::clone(&self.0),
                checkpoint,
            }))
        }))
    }

    async fn close(&self) -> Result<(), SourceError> {
        self.0.close().await
    }

    async fn check(&self) -> Result<(), SourceError> {
        self.0.check().await
    }
}

/// A batch's checkpoint together with the source it belongs to, ready to be
/// committed once the batch is done.
#[derive(Debug)]
pub struct PendingCommit(Box<dyn CommitOnce>);

impl PendingCommit {
    /// [`Source::commit`] the checkpoint to its source.
    pub async fn commit(self) -> Result<(), SourceError> {
        self.0.commit().await
    }

    /// [`Checkpoint::split`], each piece still bound to the source.
    pub fn split(self) -> Vec<(String, PendingCommit)> {
        self.0.split()
    }
}

/// The typed half of a [`PendingCommit`].
trait CommitOnce: std::fmt::Debug + Send + Sync {
    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<(), SourceError>>;
    fn split(self: Box<Self>) -> Vec<(String, PendingCommit)>;
}

struct Bound<S: Source> {
    source: Arc<S>,
    checkpoint: S::Checkpoint,
}

impl<S: Source> std::fmt::Debug for Bound<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.checkpoint.fmt(f)
    }
}

impl<S: Source> CommitOnce for Bound<S> {
    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<(), SourceError>> {
        Box::pin(async move { self.source.commit(self.checkpoint).await })
    }

    fn split(self: Box<Self>) -> Vec<(String, PendingCommit)> {
        let Bound { source, checkpoint } = *self;
        checkpoint
            .split()
            .into_iter()
            .map(|(partition, checkpoint)| {
                let bound = Bound {
                    source: Arc::clone(&source),
                    checkpoint,
                };
                (partition, PendingCommit(Box::new(bound)))
            })
            .collect()
    }
}

/// What a source gets to build itself besides its own settings.
#[derive(Debug, Clone)]
pub struct SourceContext {
    /// The source's name in the config (`[sources.NAME]`).
    pub name: String,
    /// The pipeline that reads it (used for consumer group / lease names).
    pub pipeline: String,
    /// Directory of the config file.
    pub config_dir: PathBuf,
}

/// Builds a source from its settings; implemented by each connector's config.
#[async_trait]
pub trait BuildSource {
    /// Connect and prepare; errors name the source and what is wrong.
    async fn build(&self, ctx: &SourceContext) -> Result<Arc<dyn DynSource>, SourceError>;
}

crate::registry::connector_registry! {
    /// One `[sources.NAME]` table: its `type` and that type's settings.
    SourceConfig, "source", SourceContext => Arc<dyn DynSource>, SourceError;
    #[cfg(feature = "dynamodb")]
    DynamodbStreams => dynamodb_streams::DynamoDbStreamsSourceConfig,
    #[cfg(feature = "kafka")]
    Kafka => kafka::KafkaSourceConfig,
}

impl SourceConfig {
    /// Problems with the settings of source `name` that are knowable
    /// without the network, for `weir validate` (and `weir run`, which
    /// loads the config the same way): `(key segments under
    /// [sources.NAME], message)`, an `[i]` segment indexing an array.
    pub fn offline_problems(
        &self,
        name: &str,
        config_dir: &std::path::Path,
    ) -> Vec<(Vec<String>, String)> {
        let _ = name;
        match self {
            #[cfg(feature = "dynamodb")]
            SourceConfig::DynamodbStreams(c) => c
                .validate()
                .err()
                .map(|message| (Vec::new(), message))
                .into_iter()
                .collect(),
            #[cfg(feature = "kafka")]
            SourceConfig::Kafka(c) => c
                .offline_check(config_dir)
                .err()
                .map(kafka::client::OptionProblem::into_keyed)
                .into_iter()
                .collect(),
            #[allow(
                unreachable_patterns,
                reason = "reachable only when other connectors are compiled in"
            )]
            _ => {
                let _ = config_dir;
                Vec::new()
            }
        }
    }

    /// The group this source's readers join when the config names one
    /// (Kafka `group_id`, DynamoDB Streams `lease_group`): `(setting, group,
    /// what the group splits between its members)`. Unset, each pipeline
    /// gets a group of its own.
    pub fn explicit_group(&self) -> Option<(&'static str, &str, &'static str)> {
        match self {
            #[cfg(feature = "dynamodb")]
            SourceConfig::DynamodbStreams(c) => c
                .lease_group
                .as_deref()
                .map(|g| ("lease_group", g, "shards")),
            #[cfg(feature = "kafka")]
            SourceConfig::Kafka(c) => c.group_id.as_deref().map(|g| ("group_id", g, "partitions")),
            #[allow(
                unreachable_patterns,
                reason = "reachable only when other connectors are compiled in"
            )]
            _ => None,
        }
    }
}
