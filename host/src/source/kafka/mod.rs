//! The Kafka source (`type = "kafka"`): a consumer-group member that hands
//! out batches of messages and commits offsets only when told to.
//!
//! ```toml
//! [sources.clicks]
//! type = "kafka"
//! brokers = "127.0.0.1:9092"
//! topics = ["clicks", "^audit-.*"]     # "^..." = regex subscription
//! group_id = "weir-clicks"             # default: weir-<pipeline>
//! start = "earliest"                   # for a group with no committed offset
//! options = { "security.protocol" = "SASL_SSL", "session.timeout.ms" = 6000 }
//! ```
//!
//! Offsets: auto-commit and auto offset store are off. A batch's
//! [`KafkaCheckpoint`] holds the next offset per partition it reached; `commit`
//! commits those offsets (asynchronously) for partitions still assigned and
//! remembers them. When partitions are revoked, what was committed for them
//! is committed again synchronously before they go, and `close` commits
//! synchronously before leaving the group.
//!
//! `embedded = { partitions = 3, seed_file = "events.jsonl" }` runs against
//! a process-wide in-process cluster instead of `brokers` (see
//! [`embedded`]).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt as _;
use rdkafka::ClientConfig;
use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, ConsumeError, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::Message;
use serde::Deserialize;

use super::{
    BuildSource, DynSource, Source, SourceBatch, SourceContext, SourceError, Unreadable, erase,
};

pub mod client;
mod corrupt;
pub mod embedded;
mod error;
mod record;
mod stuck;

pub use error::KafkaSourceError;

use client::{KafkaOptions, LogContext};
use corrupt::{ConsumeReport, Skips, Step};
use embedded::EmbeddedConfig;
use stuck::{Observation, StuckPartitions, Verdict};

/// How long synchronous broker calls (final commit, watermarks) may take.
const SYNC_TIMEOUT: Duration = Duration::from_secs(10);

/// `[sources.NAME]` with `type = "kafka"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    /// Bootstrap servers, comma-separated (`host:port,host:port`). Required
    /// unless `embedded` is set.
    pub brokers: Option<String>,
    /// Topics to subscribe to; an entry starting with `^` is a regular
    /// expression matched against topic names.
    pub topics: Vec<String>,
    /// Consumer group. Default: `weir-<pipeline name>`.
    pub group_id: Option<String>,
    /// Where a group with no committed offset starts: `earliest` (default)
    /// or `latest`.
    #[serde(default)]
    pub start: StartPosition,
    /// librdkafka settings passed through (TLS, SASL, `session.timeout.ms`,
    /// `fetch.max.bytes`, ...). `enable.auto.commit` and
    /// `enable.auto.offset.store` are managed by Weir and refused here.
    #[serde(default)]
    pub options: KafkaOptions,
    /// Run against an in-process cluster started on first use instead of
    /// `brokers` (for the quickstart and demos).
    pub embedded: Option<EmbeddedConfig>,
    /// Stop the pipeline once every assigned partition has been read to its
    /// end (the high watermark seen when the source runs dry). Default
    /// `false`: run until stopped.
    #[serde(default)]
    pub stop_at_end: bool,
    /// A partition with records past its position that has not moved for
    /// this long while the pipeline kept asking for records is reported
    /// stuck (a warning, `weir_source_kafka_partition_stuck`, and
    /// `/health/ready`; see [`stuck`]). Default 60000; 0 turns it off.
    #[serde(default = "default_stuck_after_ms")]
    pub stuck_after_ms: u64,
}

fn default_stuck_after_ms() -> u64 {
    60_000
}

impl KafkaSourceConfig {
    /// The consumer's librdkafka settings: Weir's first, then `options`.
    fn client_config(
        &self,
        brokers: String,
        group_id: &str,
        name: &str,
        config_dir: &Path,
    ) -> Result<ClientConfig, String> {
        client::client_config(
            &[
                ("bootstrap.servers", brokers),
                ("group.id", group_id.to_owned()),
                ("client.id", format!("weir-{name}")),
                ("enable.auto.commit", "false".into()),
                ("enable.auto.offset.store", "false".into()),
                ("auto.offset.reset", self.start.as_setting().into()),
                // Consumer lag for /metrics (see `stats` above); `options` may change it.
                ("statistics.interval.ms", "5000".into()),
                ("enable.partition.eof", self.stop_at_end.to_string()),
            ],
            &self.options,
            &["enable.auto.commit", "enable.auto.offset.store", "group.id"],
            config_dir,
        )
    }

    /// What `weir validate` checks without connecting: the consumer's
    /// settings as librdkafka will take them (see
    /// [`client::offline_check`]).
    pub fn offline_check(&self, config_dir: &Path) -> Result<(), client::OptionProblem> {
        let config = self
            .client_config(String::new(), "weir-validate", "validate", config_dir)
            .map_err(|message| client::OptionProblem {
                option: None,
                message,
            })?;
        client::offline_check(&config, &self.options)
    }
}

/// Start position of a consumer group that has no committed offset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartPosition {
    /// The oldest retained message.
    #[default]
    Earliest,
    /// Only messages produced after the group joined.
    Latest,
}

impl StartPosition {
    fn as_setting(self) -> &'static str {
        match self {
            StartPosition::Earliest => "earliest",
            StartPosition::Latest => "latest",
        }
    }
}

/// How far a batch reached: the next offset to read per topic partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KafkaCheckpoint {
    /// `(topic, partition, next offset)`, one entry per partition.
    pub offsets: Vec<(String, i32, i64)>,
}

impl super::Checkpoint for KafkaCheckpoint {
    fn split(self) -> Vec<(String, Self)> {
        self.offsets
            .into_iter()
            .map(|(topic, partition, next)| {
                (
                    format!("{topic}/{partition}"),
                    KafkaCheckpoint {
                        offsets: vec![(topic, partition, next)],
                    },
                )
            })
            .collect()
    }
}

type PartitionMap = HashMap<(String, i32), i64>;

/// State shared between the source and its consumer context (which runs the
/// rebalance callbacks).
#[derive(Debug, Default)]
struct Progress {
    /// Offsets `commit` was asked to commit, per assigned partition.
    committed: PartitionMap,
    /// Next offset handed out in a batch, per assigned partition.
    delivered: PartitionMap,
    /// Partitions read to their end (with `stop_at_end`): the partitions of
    /// end-of-partition reports with no message since.
    at_end: std::collections::HashSet<(String, i32)>,
    /// Timestamp (ms) of the last record handed out, per partition: what
    /// the lag in seconds is measured from.
    last_read_ms: PartitionMap,
}

/// Consumer context: logging, plus committing before partitions go.
struct SourceContextImpl {
    log: LogContext,
    progress: Arc<Mutex<Progress>>,
    /// The pipeline reading: metrics carry it, so two pipelines on one
    /// source do not collide.
    pipeline: String,
    rebalances: crate::metrics::source::Rebalances,
    /// Undecodable batches being skipped, and the consume errors reported.
    skips: Arc<Skips>,
    /// Partitions that stopped without an error.
    stuck: Arc<StuckPartitions>,
    /// Set by every `next_batch`, taken by every statistics report: whether
    /// the pipeline asked for records since the last one.
    polled: Arc<std::sync::atomic::AtomicBool>,
}

impl ClientContext for SourceContextImpl {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.log.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.log.error(error, reason);
    }

    // Consumer lag per partition for the admin API's /metrics and the
    // stall detector, from librdkafka's statistics (every
    // `statistics.interval.ms`). A negative lag means the consumer does not
    // read the partition (not assigned).
    fn stats(&self, statistics: rdkafka::Statistics) {
        let now = now_ms();
        let polled = self
            .polled
            .swap(false, std::sync::atomic::Ordering::Relaxed);
        let last_read = self
            .progress
            .lock()
            .map(|p| p.last_read_ms.clone())
            .unwrap_or_default();
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                if *partition < 0 {
                    continue;
                }
                let behind_ms = last_read
                    .get(&(topic.clone(), *partition))
                    .map_or(0, |&ts| now.saturating_sub(ts).max(0));
                crate::metrics::kafka_consumer_lag(
                    &self.pipeline,
                    &self.log.connector,
                    topic,
                    *partition,
                    (p.consumer_lag >= 0).then_some(p.consumer_lag),
                    Duration::from_millis(behind_ms.unsigned_abs()),
                );
                self.watch_stuck(topic, *partition, p, polled, now);
            }
        }
    }
}

impl SourceContextImpl {
    /// Feed one partition's statistics to the stuck-partition detector and
    /// say what it finds.
    fn watch_stuck(
        &self,
        topic: &str,
        partition: i32,
        p: &rdkafka::statistics::Partition,
        polled: bool,
        now: i64,
    ) {
        let seen = Observation {
            fetching: p.fetch_state == "active",
            next_offset: p.next_offset,
            app_offset: p.app_offset,
            hi_offset: p.hi_offset,
            ls_offset: p.ls_offset,
            fetchq_cnt: p.fetchq_cnt,
            polled,
        };
        let connector = &self.log.connector;
        match self.stuck.observe(topic, partition, &seen, now) {
            Verdict::Quiet => {}
            Verdict::Stuck {
                offset,
                high,
                for_ms,
            } => {
                tracing::warn!(
                    connector,
                    topic,
                    partition,
                    offset,
                    "partition {topic}/{partition} is stuck at offset {offset}: the log goes \
                     on to offset {high}, but no record came past {offset} for {}s and \
                     librdkafka reports no error. The bytes at {offset} cannot be read \
                     (an uncompressed record batch with garbage records, or a record \
                     larger than the largest fetch); the partition stays here until the \
                     group's committed offset is moved past them (docs/operations.md, \
                     \"A Kafka partition stuck at one offset\")",
                    for_ms / 1000
                );
            }
            Verdict::Moving { offset } => {
                tracing::info!(
                    connector,
                    topic,
                    partition,
                    "partition {topic}/{partition} moves again (it was stuck at offset {offset})"
                );
            }
        }
        // Set at every report, so the series exists (at 0) for dashboards
        // and alerts before anything is stuck.
        crate::metrics::kafka_partition_stuck(
            &self.pipeline,
            connector,
            topic,
            partition,
            self.stuck.is_stuck(topic, partition),
        );
    }
}

impl ConsumerContext for SourceContextImpl {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let connector = &self.log.connector;
        match rebalance {
            Rebalance::Revoke(revoked) => {
                self.rebalances.revoked.increment(1);
                let Ok(mut progress) = self.progress.lock() else {
                    return;
                };
                let mut tpl = TopicPartitionList::new();
                for elem in revoked.elements() {
                    self.skips.cancel(elem.topic(), elem.partition());
                    self.stuck.forget(elem.topic(), elem.partition());
                    crate::metrics::kafka_partition_stuck(
                        &self.pipeline,
                        connector,
                        elem.topic(),
                        elem.partition(),
                        false,
                    );
                    let key = (elem.topic().to_string(), elem.partition());
                    progress.delivered.remove(&key);
                    progress.at_end.remove(&key);
                    progress.last_read_ms.remove(&key);
                    if let Some(offset) = progress.committed.remove(&key) {
                        let _ = tpl.add_partition_offset(
                            elem.topic(),
                            elem.partition(),
                            Offset::Offset(offset),
                        );
                    }
                }
                drop(progress);
                if tpl.count() > 0 {
                    match consumer.commit(&tpl, CommitMode::Sync) {
                        Ok(()) => tracing::info!(
                            connector,
                            partitions = %describe(&tpl),
                            "committed before partitions were revoked"
                        ),
                        Err(e) => tracing::warn!(
                            connector,
                            partitions = %describe(&tpl),
                            "commit before revocation failed: {e}"
                        ),
                    }
                }
                tracing::info!(connector, partitions = %describe(revoked), "partitions revoked");
            }
            Rebalance::Assign(_) => {}
            Rebalance::Error(e) => {
                self.rebalances.error.increment(1);
                tracing::warn!(connector, "rebalance error: {e}");
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(assigned) = rebalance {
            self.rebalances.assigned.increment(1);
            tracing::info!(
                connector = %self.log.connector,
                partitions = %describe(assigned),
                "partitions assigned"
            );
        }
    }

    fn consume_error(&self, error: &ConsumeError<'_>) {
        self.skips.report(ConsumeReport::from(error));
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(e) = result {
            tracing::warn!(
                connector = %self.log.connector,
                partitions = %describe(offsets),
                "offset commit failed: {e}"
            );
        }
    }
}

/// `topic/partition@offset, ...` for log lines.
fn describe(tpl: &TopicPartitionList) -> String {
    tpl.elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => format!("{}/{}@{o}", e.topic(), e.partition()),
            _ => format!("{}/{}", e.topic(), e.partition()),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

type Consumer_ = StreamConsumer<SourceContextImpl>;

/// A running Kafka source.
pub struct KafkaSource {
    name: String,
    group_id: String,
    stop_at_end: bool,
    consumer: Mutex<Option<Arc<Consumer_>>>,
    progress: Arc<Mutex<Progress>>,
    skips: Arc<Skips>,
    stuck: Arc<StuckPartitions>,
    polled: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource")
            .field("name", &self.name)
            .field("group_id", &self.group_id)
            .finish_non_exhaustive()
    }
}

impl Drop for KafkaSource {
    fn drop(&mut self) {
        // See `leave_group`: never destroy a consumer (close does the
        // orderly part; a source dropped without close just lets go).
        if let Ok(mut consumer) = self.consumer.lock()
            && let Some(consumer) = consumer.take()
        {
            std::mem::forget(consumer);
        }
    }
}

#[async_trait]
impl BuildSource for KafkaSourceConfig {
    async fn build(&self, ctx: &SourceContext) -> Result<Arc<dyn DynSource>, SourceError> {
        Ok(erase(Arc::new(KafkaSource::connect(self, ctx).await?)))
    }
}

impl KafkaSource {
    /// Create the consumer and subscribe (starting and seeding the embedded
    /// cluster first if configured).
    pub async fn connect(
        config: &KafkaSourceConfig,
        ctx: &SourceContext,
    ) -> Result<KafkaSource, SourceError> {
        let name = ctx.name.clone();
        let fatal = KafkaSourceError::Config;
        if config.topics.is_empty() {
            return Err(fatal("`topics` is empty".into()).into());
        }
        let brokers = match (&config.brokers, &config.embedded) {
            (Some(_), Some(_)) => {
                return Err(fatal("set either `brokers` or `embedded`, not both".into()).into());
            }
            (None, None) => {
                return Err(fatal("`brokers` is required (or `embedded`)".into()).into());
            }
            (Some(brokers), None) => brokers.clone(),
            (None, Some(embedded)) => {
                let embedded = embedded.clone();
                let topics = config.topics.clone();
                let dir = ctx.config_dir.clone();
                tokio::task::spawn_blocking(move || embedded::prepare(&embedded, &topics, &dir))
                    .await
                    .map_err(|source| KafkaSourceError::Task {
                        what: "embedded cluster",
                        transient: false,
                        source,
                    })?
                    .map_err(fatal)?
            }
        };
        let group_id = config
            .group_id
            .clone()
            .unwrap_or_else(|| format!("weir-{}", ctx.pipeline));
        let client_config = config
            .client_config(brokers, &group_id, &name, &ctx.config_dir)
            .map_err(fatal)?;
        let progress = Arc::new(Mutex::new(Progress::default()));
        let skips = Arc::new(Skips::default());
        let stuck = Arc::new(StuckPartitions::new(config.stuck_after_ms));
        let polled = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let context = SourceContextImpl {
            log: LogContext::new(name.clone(), "source"),
            progress: progress.clone(),
            pipeline: ctx.pipeline.clone(),
            rebalances: crate::metrics::source::Rebalances::new(&ctx.pipeline, &name),
            skips: skips.clone(),
            stuck: stuck.clone(),
            polled: polled.clone(),
        };
        let consumer: Consumer_ = client_config
            .create_with_context(context)
            .map_err(KafkaSourceError::CreateConsumer)?;
        let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|source| KafkaSourceError::Subscribe {
                topics: config.topics.clone(),
                source,
            })?;
        tracing::info!(source = %name, group = %group_id, topics = ?topics, "kafka source subscribed");
        Ok(KafkaSource {
            name,
            group_id,
            stop_at_end: config.stop_at_end,
            consumer: Mutex::new(Some(Arc::new(consumer))),
            progress,
            skips,
            stuck,
            polled,
        })
    }

    /// The consumer group this source is a member of.
    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    /// The `(topic, partition)`s assigned to this member right now (empty
    /// before the first join and after `close`).
    pub fn assignment(&self) -> Vec<(String, i32)> {
        let Ok(consumer) = self.consumer() else {
            return Vec::new();
        };
        consumer
            .assignment()
            .map(|tpl| {
                tpl.elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn consumer(&self) -> Result<Arc<Consumer_>, SourceError> {
        self.consumer
            .lock()
            .map_err(|_| KafkaSourceError::Poisoned("consumer"))?
            .clone()
            .ok_or_else(|| KafkaSourceError::Closed.into())
    }

    /// What to do about a consume error the context reported: a step of
    /// the skip of its partition, a new skip if it names a batch that
    /// cannot be decoded, or nothing but a warning.
    async fn on_consume_error(&self, consumer: &Arc<Consumer_>, report: &ConsumeReport) -> Step {
        let step = self.skips.error(report);
        if step != Step::NotSkipping {
            return step;
        }
        let (Some(topic), true) = (&report.topic, corrupt::is_undecodable(report.code)) else {
            tracing::warn!(
                source = %self.name,
                topic = report.topic.as_deref().unwrap_or(""),
                partition = report.partition,
                offset = report.offset,
                "kafka consume error: {}: {}", report.code, report.reason
            );
            return Step::NotSkipping;
        };
        if let Ok(mut progress) = self.progress.lock() {
            progress.at_end.remove(&(topic.clone(), report.partition));
        }
        // Probes must stay below the high watermark: an offset past it is
        // out of range, and librdkafka would reset the partition to `start`.
        let c = consumer.clone();
        let (t, p) = (topic.clone(), report.partition);
        let high = tokio::task::spawn_blocking(move || c.fetch_watermarks(&t, p, SYNC_TIMEOUT))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        match high {
            Ok((_, high)) => {
                tracing::warn!(
                    source = %self.name,
                    topic,
                    partition = report.partition,
                    offset = report.offset,
                    "a record batch cannot be decoded ({}: {}); finding its end to dead-letter and skip it",
                    report.code,
                    report.reason
                );
                self.skips.start(report, high, now_ms())
            }
            Err(e) => {
                // The next fetch reports the batch again, and the skip is
                // tried again then.
                tracing::warn!(
                    source = %self.name,
                    topic,
                    partition = report.partition,
                    offset = report.offset,
                    "a record batch cannot be decoded ({}: {}); its partition's end offset cannot be read to skip it yet: {e}",
                    report.code,
                    report.reason
                );
                Step::NotSkipping
            }
        }
    }

    /// Carry out `step` of the skip of `topic`/`partition`: seek to the
    /// next probe, or hand out the event standing for the skipped batch
    /// and seek past it.
    #[allow(clippy::too_many_arguments)]
    fn apply_skip_step(
        &self,
        consumer: &Consumer_,
        topic: &str,
        partition: i32,
        step: Step,
        events: &mut Vec<crate::event::Event>,
        unreadable: &mut Vec<Unreadable>,
        reached: &mut Vec<(String, i32, i64)>,
        reached_ms: &mut Vec<i64>,
    ) {
        let (offset, done) = match step {
            Step::NotSkipping | Step::Wait => return,
            Step::Blocked => {
                // Nothing more can be read from this partition until more
                // records are written after the batch.
                tracing::warn!(source = %self.name, topic, partition, "a record batch that cannot be decoded reaches past the partition's end offset; skipping the rest of it once more records are written");
                if let Ok(mut progress) = self.progress.lock() {
                    progress.at_end.insert((topic.to_owned(), partition));
                }
                return;
            }
            Step::Seek(offset) => (offset, None),
            Step::Done { end, event, reason } => (end, Some((event, reason))),
        };
        // Asynchronous (no timeout): librdkafka drops whatever was fetched
        // before the seek, so the next answer is the probe's.
        if let Err(e) = consumer.seek(topic, partition, Offset::Offset(offset), Duration::ZERO) {
            tracing::warn!(source = %self.name, topic, partition, offset, "seek to skip a record batch that cannot be decoded failed: {e}");
            self.skips.cancel(topic, partition);
            return;
        }
        let Some((event, reason)) = done else {
            return;
        };
        tracing::warn!(source = %self.name, topic, partition, "{reason}");
        let timestamp_ms = event.timestamp_ms;
        unreadable.push(Unreadable {
            index: events.len(),
            reason,
        });
        events.push(event);
        match reached
            .iter()
            .position(|(t, p, _)| *p == partition && t == topic)
        {
            Some(i) => {
                reached[i].2 = offset;
                reached_ms[i] = timestamp_ms;
            }
            None => {
                reached.push((topic.to_owned(), partition, offset));
                reached_ms.push(timestamp_ms);
            }
        }
    }

    /// Whether every assigned partition has been read to its end (librdkafka
    /// reported end-of-partition after the last message handed out); false
    /// before the first assignment.
    fn at_end(consumer: &Consumer_, progress: &Mutex<Progress>) -> KafkaResult<bool> {
        let assignment = consumer.assignment()?;
        if assignment.count() == 0 {
            return Ok(false);
        }
        let Ok(progress) = progress.lock() else {
            return Ok(false);
        };
        Ok(assignment.elements().iter().all(|e| {
            progress
                .at_end
                .contains(&(e.topic().to_string(), e.partition()))
        }))
    }
}

/// Leave the consumer group so the partitions move to the remaining members
/// at once, then let go of the consumer without destroying it.
///
/// librdkafka's destroy can wait forever for broker threads that fetched
/// messages still queued for the application (rdkafka drops the client
/// before its queue), so the handle is deliberately leaked: a source is
/// closed once, at shutdown or when its pipeline is replaced.
fn leave_group(consumer: &Arc<Consumer_>, name: &str) {
    consumer.unsubscribe();
    // Serve the revocation callback (which commits) until the assignment
    // is gone.
    let deadline = std::time::Instant::now() + SYNC_TIMEOUT;
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        std::mem::forget(Arc::clone(consumer));
        return;
    };
    while std::time::Instant::now() < deadline {
        if consumer
            .assignment()
            .map(|a| a.count() == 0)
            .unwrap_or(true)
        {
            break;
        }
        let _ = handle.block_on(tokio::time::timeout(
            Duration::from_millis(100),
            consumer.recv(),
        ));
    }
    tracing::info!(source = %name, "left the consumer group");
    std::mem::forget(Arc::clone(consumer));
}

/// Milliseconds since the Unix epoch, now.
fn now_ms() -> i64 {
    crate::calendar::now_unix_ms()
}

#[async_trait]
impl Source for KafkaSource {
    type Checkpoint = KafkaCheckpoint;

    async fn next_batch(
        &self,
        max_events: usize,
        max_wait: Duration,
    ) -> Result<SourceBatch<KafkaCheckpoint>, SourceError> {
        let consumer = self.consumer()?;
        self.polled
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + max_wait;
        let mut events = Vec::with_capacity(max_events.min(4096));
        let mut reached: Vec<(String, i32, i64)> = Vec::new();
        // Timestamp of the last record per entry of `reached`.
        let mut reached_ms: Vec<i64> = Vec::new();
        let mut unreadable = Vec::new();
        // Per event, its entry in `reached`.
        let mut partitions = Vec::with_capacity(max_events.min(4096));
        while events.len() < max_events {
            // Let other tasks run now and then: a full queue never waits.
            tokio::task::coop::consume_budget().await;
            // A message librdkafka already holds is taken without arming a
            // timer: a timeout per message (a timer-wheel entry made and
            // dropped) was a visible per-event cost. Only when the queue is
            // empty does the wait go through the batch's deadline. Dropping
            // the pending `recv` loses nothing (it is cancel-safe).
            let ready = consumer.recv().now_or_never();
            let received = match ready {
                Some(result) => Ok(result),
                None => tokio::time::timeout_at(deadline, consumer.recv()).await,
            };
            let msg = match received {
                Err(_elapsed) => break,
                Ok(Ok(msg)) => msg,
                Ok(Err(KafkaError::PartitionEOF(partition))) => {
                    // The error names only the partition number: mark that
                    // partition of every assigned topic (a message from it
                    // clears the mark again).
                    if let Ok(mut progress) = self.progress.lock() {
                        for topic in consumer
                            .assignment()
                            .map(|a| {
                                a.elements()
                                    .iter()
                                    .filter(|e| e.partition() == partition)
                                    .map(|e| e.topic().to_string())
                                    .collect::<Vec<_>>()
                            })
                            .unwrap_or_default()
                        {
                            progress.at_end.insert((topic, partition));
                        }
                    }
                    continue;
                }
                Ok(Err(KafkaError::MessageConsumption(code))) => {
                    let Some(report) = self.skips.take_report(code) else {
                        tracing::warn!(source = %self.name, "kafka consume error: {code}");
                        continue;
                    };
                    let step = self.on_consume_error(&consumer, &report).await;
                    if let (Some(topic), step) = (&report.topic, step) {
                        self.apply_skip_step(
                            &consumer,
                            topic,
                            report.partition,
                            step,
                            &mut events,
                            &mut unreadable,
                            &mut reached,
                            &mut reached_ms,
                        );
                    }
                    continue;
                }
                Ok(Err(e)) => {
                    if matches!(e, KafkaError::MessageConsumptionFatal(_)) {
                        return Err(KafkaSourceError::Consume(e).into());
                    }
                    tracing::warn!(source = %self.name, "kafka consume error: {e}");
                    continue;
                }
            };
            if self.skips.any() {
                let step = self
                    .skips
                    .record(msg.topic(), msg.partition(), msg.offset());
                if step != Step::NotSkipping {
                    let topic = msg.topic().to_owned();
                    let partition = msg.partition();
                    drop(msg);
                    self.apply_skip_step(
                        &consumer,
                        &topic,
                        partition,
                        step,
                        &mut events,
                        &mut unreadable,
                        &mut reached,
                        &mut reached_ms,
                    );
                    continue;
                }
            }
            if self.stop_at_end
                && let Ok(mut progress) = self.progress.lock()
                && !progress.at_end.is_empty()
            {
                progress
                    .at_end
                    .remove(&(msg.topic().to_string(), msg.partition()));
            }
            let (event, problem) = record::to_event(&msg, now_ms());
            let timestamp_ms = event.timestamp_ms;
            if let Some(reason) = problem {
                unreadable.push(Unreadable {
                    index: events.len(),
                    reason,
                });
            }
            events.push(event);
            let next = msg.offset().saturating_add(1);
            match reached
                .iter()
                .position(|(t, p, _)| *p == msg.partition() && t == msg.topic())
            {
                Some(i) => {
                    reached[i].2 = next;
                    reached_ms[i] = timestamp_ms;
                    partitions.push(i as u32);
                }
                None => {
                    partitions.push(reached.len() as u32);
                    reached.push((msg.topic().to_string(), msg.partition(), next));
                    reached_ms.push(timestamp_ms);
                }
            }
        }
        if !reached.is_empty()
            && let Ok(mut progress) = self.progress.lock()
        {
            for ((topic, partition, next), ms) in reached.iter().zip(&reached_ms) {
                progress
                    .delivered
                    .insert((topic.clone(), *partition), *next);
                progress
                    .last_read_ms
                    .insert((topic.clone(), *partition), *ms);
            }
        }
        let mut exhausted = false;
        // A partition whose undecodable batch is being skipped is not done,
        // whatever end-of-partition reports came meanwhile.
        if self.stop_at_end && events.len() < max_events && !self.skips.any() {
            let progress = self.progress.clone();
            let c = consumer.clone();
            exhausted = tokio::task::spawn_blocking(move || Self::at_end(&c, &progress))
                .await
                .map_err(|source| KafkaSourceError::Task {
                    what: "end-of-topic check",
                    transient: true,
                    source,
                })?
                .map_err(KafkaSourceError::EndOfTopic)?;
        }
        Ok(SourceBatch {
            events,
            checkpoint: KafkaCheckpoint { offsets: reached },
            partitions,
            exhausted,
            unreadable,
        })
    }

    async fn commit(&self, checkpoint: KafkaCheckpoint) -> Result<(), SourceError> {
        if checkpoint.offsets.is_empty() {
            return Ok(());
        }
        let consumer = self.consumer()?;
        let assignment = consumer
            .assignment()
            .map_err(KafkaSourceError::Assignment)?;
        let mut tpl = TopicPartitionList::new();
        {
            let mut progress = self
                .progress
                .lock()
                .map_err(|_| KafkaSourceError::Poisoned("progress"))?;
            for (topic, partition, next) in checkpoint.offsets {
                if assignment.find_partition(&topic, partition).is_none() {
                    tracing::debug!(source = %self.name, topic, partition, "not committing a partition no longer assigned");
                    continue;
                }
                tpl.add_partition_offset(&topic, partition, Offset::Offset(next))
                    .map_err(|source| KafkaSourceError::Offset { next, source })?;
                progress.committed.insert((topic, partition), next);
            }
        }
        if tpl.count() > 0 {
            consumer
                .commit(&tpl, CommitMode::Async)
                .map_err(KafkaSourceError::Commit)?;
        }
        Ok(())
    }

    async fn close(&self) -> Result<(), SourceError> {
        let Some(consumer) = self
            .consumer
            .lock()
            .map_err(|_| KafkaSourceError::Poisoned("consumer"))?
            .take()
        else {
            return Ok(());
        };
        let progress = self.progress.clone();
        let name = self.name.clone();
        tokio::task::spawn_blocking(move || -> Result<(), String> {
            let assignment = consumer
                .assignment()
                .map_err(|e| format!("cannot read the assignment: {e}"))?;
            let mut tpl = TopicPartitionList::new();
            if let Ok(progress) = progress.lock() {
                for ((topic, partition), next) in &progress.committed {
                    if assignment.find_partition(topic, *partition).is_some() {
                        let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(*next));
                    }
                }
            }
            if tpl.count() > 0 {
                consumer
                    .commit(&tpl, CommitMode::Sync)
                    .map_err(|e| format!("final offset commit failed: {e}"))?;
                tracing::info!(source = %name, offsets = %describe(&tpl), "committed offsets at close");
            }
            leave_group(&consumer, &name);
            Ok(())
        })
        .await
        .map_err(|source| KafkaSourceError::Task {
            what: "close",
            transient: false,
            source,
        })?
        .map_err(|e| KafkaSourceError::Close(e).into())
    }

    async fn check(&self) -> Result<(), SourceError> {
        let consumer = self.consumer()?;
        let stuck = self.stuck.stuck();
        if !stuck.is_empty() {
            return Err(KafkaSourceError::Stuck(
                stuck
                    .iter()
                    .map(|(t, p, o)| format!("{t}/{p} at offset {o}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            )
            .into());
        }
        tokio::task::spawn_blocking(move || {
            client::check_brokers(consumer.client(), &consumer.context().log.last_error)
        })
        .await
        .map_err(|source| KafkaSourceError::Task {
            what: "check",
            transient: true,
            source,
        })?
        .map_err(|e| KafkaSourceError::Check(e).into())
    }
}
