//! The running DynamoDB Streams source: a lease coordinator, one reader task
//! per held shard, and the batch assembly the pipeline calls.
//!
//! - The coordinator (every third of the lease duration) renews the held
//!   leases, describes the stream to create leases for new shards and to
//!   detect shards trimmed before they were finished, and takes leases
//!   (free, expired, or — to balance — one stolen) whose parent is finished.
//! - A reader owns one shard: it gets an iterator from the shard's
//!   checkpoint, calls GetRecords with an adaptive pause (none after a full
//!   page, `poll_min_ms` after a partial one, doubling up to `poll_max_ms`
//!   while empty), renews an expired iterator from the last sequence number
//!   it read, and hands pages to one bounded queue. One reader per shard per
//!   host keeps within DynamoDB's limit of two readers per shard.
//! - `next_batch` takes pages from the queue in arrival order (the queue
//!   is fair between readers waiting to put), splits a page that does not
//!   fit, and drops pages of leases lost in the meantime. Its checkpoint is
//!   the last sequence number per shard, with the lease token it was read
//!   under.
//! - `commit` writes each shard's checkpoint conditionally on still holding
//!   the lease; a lease lost meanwhile is skipped (its new holder restarts
//!   from the stored checkpoint: at-least-once, nothing lost). When a
//!   shard's reader has reached the end and everything read is committed,
//!   the checkpoint becomes `SHARD_END`, the lease is released and the
//!   shard's children become readable.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_dynamodbstreams::types::{OperationType, Record};
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::config::{DynamoDbStreamsSourceConfig, OnDataLoss, StartPosition};
use super::leases::{Lease, LeaseError, LeaseTable, Observations, Position, host_of, plan_takes};
use super::shards::{new_leases, parent_finished, vanished_unfinished};
use super::streams::{IteratorStart, SdkStreams, StreamShape, StreamsApi, StreamsError};
use crate::dynamodb::attr::JsonMapping;
use crate::event::{Event, Header, Op};
use crate::source::{Source, SourceBatch, SourceContext, SourceError};

// The source's metrics, named with every other in `crate::metrics`.
const DATA_LOSS: &str = crate::metrics::SOURCE_DYNAMODB_DATA_LOSS.name;
const LEASES_LOST: &str = crate::metrics::SOURCE_DYNAMODB_LEASES_LOST.name;
const LEASES_HELD: &str = crate::metrics::SOURCE_DYNAMODB_LEASES_HELD.name;

/// How much older than a `LatestSince` take a record may be and still be
/// read by a later holder: covers clock differences between hosts and
/// DynamoDB and the coarseness of record creation times.
const LATEST_SINCE_MARGIN: Duration = Duration::from_secs(60);

/// Pages queued between the readers and `next_batch`.
const QUEUE_PAGES: usize = 8;

/// How far a batch reaches: per shard, the last sequence number in it and
/// the lease token it was read under.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamsCheckpoint {
    /// One entry per shard in the batch.
    pub shards: Vec<ShardMark>,
}

impl crate::source::Checkpoint for StreamsCheckpoint {
    fn split(self) -> Vec<(String, Self)> {
        self.shards
            .into_iter()
            .map(|mark| {
                (
                    mark.shard_id.clone(),
                    StreamsCheckpoint { shards: vec![mark] },
                )
            })
            .collect()
    }
}

/// One shard's reach within a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardMark {
    /// The shard.
    pub shard_id: String,
    /// The lease token the records were read under.
    pub token: String,
    /// The last sequence number of the shard in the batch.
    pub sequence: String,
}

/// Settings the tasks need.
#[derive(Debug, Clone)]
struct Settings {
    mapping: JsonMapping,
    start: StartPosition,
    lease_duration: Duration,
    shard_sync_interval: Duration,
    max_leases: Option<usize>,
    records_per_call: i32,
    poll_min: Duration,
    poll_max: Duration,
    on_data_loss: OnDataLoss,
    traceparent_attribute: Option<String>,
}

/// Reading progress of a held shard.
#[derive(Debug, Default)]
struct Progress {
    /// Last sequence number handed to the queue.
    last_read: Option<String>,
    /// Last sequence number the pipeline said is done.
    acked: Option<String>,
    /// Last sequence number stored in the lease table.
    stored: Option<String>,
    /// The reader reached the end of the (closed) shard.
    ended: bool,
    /// `SHARD_END` is stored.
    finished: bool,
}

/// A shard this host holds.
struct Held {
    shard_id: String,
    token: String,
    cancel: CancellationToken,
    progress: tokio::sync::Mutex<Progress>,
}

/// A page of one shard's events.
struct Page {
    shard_id: String,
    token: String,
    events: VecDeque<(String, Event)>,
}

enum Feed {
    Page(Page),
    Error(SourceError),
}

struct Inner {
    name: String,
    api: Arc<dyn StreamsApi>,
    leases: LeaseTable,
    settings: Settings,
    table_name: String,
    host_id: String,
    takes: AtomicU64,
    held: Mutex<HashMap<String, Arc<Held>>>,
    tx: mpsc::Sender<Feed>,
    stop: CancellationToken,
}

struct FeedState {
    rx: mpsc::Receiver<Feed>,
    leftover: Option<Page>,
    error: Option<SourceError>,
}

/// A running DynamoDB Streams source.
pub struct DynamoDbStreamsSource {
    inner: Arc<Inner>,
    feed: tokio::sync::Mutex<FeedState>,
    coordinator: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

fn streams_error(e: StreamsError) -> SourceError {
    match e {
        StreamsError::Transient(m) => SourceError::Transient(m),
        other => SourceError::Fatal(other.to_string()),
    }
}

fn lease_error(e: LeaseError) -> SourceError {
    match e {
        LeaseError::Transient(m) => SourceError::Transient(m),
        LeaseError::Fatal(m) => SourceError::Fatal(m),
    }
}

impl DynamoDbStreamsSource {
    /// Connect to the stream and the lease table and start reading.
    pub async fn connect(
        cfg: &DynamoDbStreamsSourceConfig,
        ctx: &SourceContext,
    ) -> Result<Self, SourceError> {
        cfg.validate()
            .map_err(|e| SourceError::Fatal(e.to_string()))?;
        let api = SdkStreams::connect(
            &cfg.connection(),
            cfg.table.as_deref(),
            cfg.stream_arn.as_deref(),
        )
        .await
        .map_err(streams_error)?;
        Self::with_api(cfg, ctx, Arc::new(api)).await
    }

    /// Start reading through `api` (the real service, or a scripted stream),
    /// with leases in the configured lease table.
    pub async fn with_api(
        cfg: &DynamoDbStreamsSourceConfig,
        ctx: &SourceContext,
        api: Arc<dyn StreamsApi>,
    ) -> Result<Self, SourceError> {
        let sdk = cfg
            .connection()
            .load_checked()
            .await
            .map_err(|e| SourceError::Fatal(e.to_string()))?;
        Self::with_clients(cfg, ctx, api, aws_sdk_dynamodb::Client::new(&sdk)).await
    }

    /// Start reading through `api`, with leases in the configured lease
    /// table reached through `lease_client` (for example a client with its
    /// own interceptors or retry settings).
    pub async fn with_clients(
        cfg: &DynamoDbStreamsSourceConfig,
        ctx: &SourceContext,
        api: Arc<dyn StreamsApi>,
        lease_client: aws_sdk_dynamodb::Client,
    ) -> Result<Self, SourceError> {
        let name = ctx.name.clone();
        cfg.validate()
            .map_err(|e| SourceError::Fatal(e.to_string()))?;
        let shape = api.describe().await.map_err(streams_error)?;
        let client = lease_client;
        let group = format!(
            "{}@{}",
            cfg.lease_group
                .clone()
                .unwrap_or_else(|| ctx.pipeline.clone()),
            shape.stream_arn
        );
        let leases = LeaseTable::new(client, cfg.lease_table.clone(), group);
        leases.ensure_table().await.map_err(lease_error)?;
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
        let host_id = format!(
            "{host}:{}:{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        let (tx, rx) = mpsc::channel(QUEUE_PAGES);
        let inner = Arc::new(Inner {
            name,
            api,
            leases,
            settings: Settings {
                mapping: cfg.mapping(),
                start: cfg.start_position,
                lease_duration: Duration::from_millis(cfg.lease_duration_ms),
                shard_sync_interval: Duration::from_millis(cfg.shard_sync_interval_ms),
                max_leases: cfg.max_leases,
                records_per_call: cfg.records_per_call,
                poll_min: Duration::from_millis(cfg.poll_min_ms),
                poll_max: Duration::from_millis(cfg.poll_max_ms),
                on_data_loss: cfg.on_data_loss,
                traceparent_attribute: cfg.traceparent_attribute.clone(),
            },
            table_name: shape.table_name.clone(),
            host_id,
            takes: AtomicU64::new(0),
            held: Mutex::new(HashMap::new()),
            tx,
            stop: CancellationToken::new(),
        });
        let coordinator = tokio::spawn(Arc::clone(&inner).coordinate(shape));
        Ok(DynamoDbStreamsSource {
            inner,
            feed: tokio::sync::Mutex::new(FeedState {
                rx,
                leftover: None,
                error: None,
            }),
            coordinator: Mutex::new(Some(coordinator)),
        })
    }

    /// This host's id in lease owner tokens.
    pub fn host_id(&self) -> &str {
        &self.inner.host_id
    }

    /// The shards this host holds now, sorted.
    pub fn held_shards(&self) -> Vec<String> {
        let mut v: Vec<String> = self.inner.held_map().keys().cloned().collect();
        v.sort();
        v
    }

    /// Stop without releasing leases, as a crashed host would: they expire
    /// and other hosts take them over from the stored checkpoints.
    pub fn abandon(&self) {
        self.inner.stop.cancel();
    }
}

impl Drop for DynamoDbStreamsSource {
    fn drop(&mut self) {
        self.inner.stop.cancel();
    }
}

impl Inner {
    fn held_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Held>>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn is_live(&self, shard_id: &str, token: &str) -> bool {
        self.held_map()
            .get(shard_id)
            .is_some_and(|h| h.token == token)
    }

    fn drop_held(&self, held: &Held) {
        let mut map = self.held_map();
        if map
            .get(&held.shard_id)
            .is_some_and(|h| h.token == held.token)
        {
            map.remove(&held.shard_id);
        }
        held.cancel.cancel();
        metrics::gauge!(LEASES_HELD, "source" => self.name.clone()).set(map.len() as f64);
    }

    async fn report(&self, err: SourceError) {
        tracing::error!(source = %self.name, "{err}");
        let _ = self.tx.send(Feed::Error(err)).await;
    }

    async fn coordinate(self: Arc<Self>, mut shape: StreamShape) {
        let tick = self.settings.lease_duration / 3;
        let mut obs = Observations::default();
        let mut last_sync: Option<Instant> = None;
        loop {
            if let Err(e) = self.round(&mut obs, &mut last_sync, &mut shape).await {
                match e {
                    SourceError::Transient(m) => {
                        tracing::warn!(source = %self.name, "lease round failed, retrying: {m}")
                    }
                    fatal @ SourceError::Fatal(_) => {
                        self.report(fatal).await;
                        self.stop.cancel();
                        return;
                    }
                }
            }
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep(tick) => {}
            }
        }
    }

    /// One coordinator round: renew, sync shards, balance.
    async fn round(
        self: &Arc<Self>,
        obs: &mut Observations,
        last_sync: &mut Option<Instant>,
        shape: &mut StreamShape,
    ) -> Result<(), SourceError> {
        let name = &self.name;
        // 1. Renew what we hold; finish shards whose end could not be stored before.
        let held: Vec<Arc<Held>> = self.held_map().values().cloned().collect();
        let renewals = futures::future::join_all(
            held.iter()
                .map(|h| self.leases.renew(&h.shard_id, &h.token)),
        )
        .await;
        for (h, r) in held.iter().zip(renewals) {
            match r {
                Ok(true) => {}
                Ok(false) => {
                    tracing::info!(source = %name, shard = %h.shard_id, "lease lost to another host; it resumes from the checkpoint");
                    metrics::counter!(LEASES_LOST, "source" => name.clone()).increment(1);
                    self.drop_held(h);
                }
                Err(e) => return Err(lease_error(e)),
            }
        }
        // Store what a failed commit or shard end left unstored.
        for h in &held {
            let mut p = h.progress.lock().await;
            if let Err(e) = self.store(h, &mut p).await {
                match e {
                    SourceError::Transient(m) => {
                        tracing::warn!(source = %name, shard = %h.shard_id, "storing checkpoint: {m}")
                    }
                    fatal => return Err(fatal),
                }
            }
        }

        // 2. Discover shards. The leases are listed before the stream is
        // described: every lease in the listing was created (by some host)
        // from a description older than ours, so its shard is in ours
        // unless the stream really dropped it. Listing after describing
        // would let a shard another host found in between look vanished.
        let now = Instant::now();
        if last_sync.is_none_or(|t| now.duration_since(t) >= self.settings.shard_sync_interval) {
            let existing: HashMap<String, Lease> = self
                .leases
                .list()
                .await
                .map_err(lease_error)?
                .into_iter()
                .map(|l| (l.shard_id.clone(), l))
                .collect();
            match self.api.describe().await {
                Ok(s) => {
                    *shape = s;
                    self.sync_shards(shape, &existing, obs).await?;
                    *last_sync = Some(now);
                }
                // Without a fresh description nothing can be said about
                // vanished shards: try again next round.
                Err(StreamsError::Transient(m)) => {
                    tracing::warn!(source = %name, "describe stream: {m}")
                }
                Err(e) => return Err(streams_error(e)),
            }
        }

        // 3. Take leases: first those this host took but does not read (a
        // take that was applied although the call reported a failure, for
        // example after an SDK retry), then what balancing asks for.
        let list = self.leases.list().await.map_err(lease_error)?;
        let now = Instant::now();
        obs.observe(&list, now);
        let by_id: HashMap<String, Lease> = list
            .iter()
            .map(|l| (l.shard_id.clone(), l.clone()))
            .collect();
        let ids: HashSet<&str> = shape.shards.iter().map(|s| s.id.as_str()).collect();
        let readable: Vec<&Lease> = list
            .iter()
            .filter(|l| l.position != Position::ShardEnd && parent_finished(l, &by_id, &ids))
            .collect();
        let orphans: Vec<String> = readable
            .iter()
            .filter(|l| self.orphaned(l))
            .map(|l| l.shard_id.clone())
            .collect();
        for shard in &orphans {
            tracing::info!(source = %name, shard = %shard, "lease held under an unused token of this host; taking it again");
            self.try_take(&by_id[shard]).await?;
        }
        let mine = self.held_map().len();
        let duration = self.settings.lease_duration;
        let plan = plan_takes(
            &readable,
            &self.host_id,
            mine,
            |l| obs.expired(l, now, duration),
            self.settings.max_leases,
        );
        for shard in plan.take.iter().chain(plan.steal.iter()) {
            if let Some(lease) = by_id.get(shard) {
                self.try_take(lease).await?;
            }
        }
        Ok(())
    }

    /// Whether a lease names this host as its owner under a token no reader
    /// of this host uses.
    fn orphaned(&self, lease: &Lease) -> bool {
        let Some(token) = lease.owner.as_deref() else {
            return false;
        };
        host_of(token) == self.host_id && !self.is_live(&lease.shard_id, token)
    }

    /// Take a lease as listed and start its reader if the take applied.
    async fn try_take(self: &Arc<Self>, lease: &Lease) -> Result<(), SourceError> {
        let name = &self.name;
        let token = format!(
            "{}#{}",
            self.host_id,
            self.takes.fetch_add(1, Ordering::Relaxed)
        );
        let taken = self
            .leases
            .take(&lease.shard_id, lease.counter, &lease.position, &token)
            .await
            .map_err(lease_error)?;
        if let Some(position) = taken {
            tracing::info!(source = %name, shard = %lease.shard_id, checkpoint = %lease.position.as_str(), "took lease");
            self.start_reader(lease.shard_id.clone(), token, position);
        }
        Ok(())
    }

    /// Create leases for new shards of a fresh description, and report the
    /// shards of `existing` (listed before the description) that left it
    /// unfinished. A lease someone holds and renews (this host or another)
    /// is left to its holder, whose reader meets the lost records itself.
    async fn sync_shards(
        &self,
        shape: &StreamShape,
        existing: &HashMap<String, Lease>,
        obs: &Observations,
    ) -> Result<(), SourceError> {
        let name = &self.name;
        for nl in new_leases(shape, existing, self.settings.start) {
            self.leases
                .create(&nl.shard_id, nl.parent.as_deref(), &nl.position)
                .await
                .map_err(lease_error)?;
        }
        let now = Instant::now();
        for shard in vanished_unfinished(shape, existing) {
            let lease = &existing[&shard];
            let live = lease.owner.is_some()
                && !self.orphaned(lease)
                && !obs.expired(lease, now, self.settings.lease_duration);
            if live {
                continue;
            }
            let msg = format!(
                "shard {shard} of table {} left the stream (24 h retention) while its checkpoint was {}: its unread records are lost",
                self.table_name,
                lease.position.as_str()
            );
            metrics::counter!(DATA_LOSS, "source" => name.clone()).increment(1);
            match self.settings.on_data_loss {
                OnDataLoss::Fail => {
                    return Err(SourceError::Fatal(format!(
                        "{msg}; set on_data_loss = \"skip\" to go on"
                    )));
                }
                OnDataLoss::Skip => {
                    tracing::error!(source = %name, "{msg}; skipping it (on_data_loss = \"skip\")");
                    self.leases
                        .finish_unheld(&shard, lease.counter)
                        .await
                        .map_err(lease_error)?;
                }
            }
        }
        Ok(())
    }

    fn start_reader(self: &Arc<Self>, shard_id: String, token: String, position: Position) {
        let held = Arc::new(Held {
            shard_id: shard_id.clone(),
            token,
            cancel: self.stop.child_token(),
            progress: tokio::sync::Mutex::new(Progress::default()),
        });
        let count = {
            let mut map = self.held_map();
            if let Some(old) = map.insert(shard_id, Arc::clone(&held)) {
                old.cancel.cancel();
            }
            map.len()
        };
        metrics::gauge!(LEASES_HELD, "source" => self.name.clone()).set(count as f64);
        tokio::spawn(Arc::clone(self).read(held, position));
    }

    /// Store `SHARD_END`, release the lease, stop holding it.
    async fn finish(&self, held: &Held, p: &mut Progress) -> Result<(), SourceError> {
        match self
            .leases
            .checkpoint(&held.shard_id, &held.token, &Position::ShardEnd)
            .await
            .map_err(lease_error)?
        {
            true => {
                p.finished = true;
                tracing::info!(source = %self.name, shard = %held.shard_id, "shard finished");
                if let Err(e) = self.leases.release(&held.shard_id, &held.token).await {
                    tracing::warn!(source = %self.name, "releasing a finished lease: {e}");
                }
            }
            false => metrics::counter!(LEASES_LOST, "source" => self.name.clone()).increment(1),
        }
        self.drop_held(held);
        Ok(())
    }

    /// The reader reached the end of a closed shard.
    async fn shard_ended(&self, held: &Held) {
        let mut p = held.progress.lock().await;
        p.ended = true;
        if let Err(e) = self.store(held, &mut p).await {
            // The coordinator retries on its next round.
            tracing::warn!(source = %self.name, shard = %held.shard_id, "storing SHARD_END: {e}");
        }
    }

    /// Store where a shard started at `Latest` first had a record, before
    /// that record is handed on. `false`: the lease is lost (or the source
    /// stops); the reader ends without handing anything on.
    async fn pin(&self, held: &Held, first: &str) -> bool {
        let position = Position::At(first.to_string());
        let mut failures = 0u32;
        loop {
            match self
                .leases
                .checkpoint(&held.shard_id, &held.token, &position)
                .await
            {
                Ok(true) => return true,
                Ok(false) => {
                    tracing::info!(source = %self.name, shard = %held.shard_id, "lease lost before its first record was stored; the new holder reads it");
                    metrics::counter!(LEASES_LOST, "source" => self.name.clone()).increment(1);
                    self.drop_held(held);
                    return false;
                }
                Err(LeaseError::Transient(m)) => {
                    failures += 1;
                    tracing::warn!(source = %self.name, shard = %held.shard_id, "storing the first sequence number read: {m}");
                    let wait = Duration::from_millis((100u64 << failures.min(6)).min(5_000));
                    if !self.pause(held, wait).await {
                        return false;
                    }
                }
                Err(LeaseError::Fatal(m)) => {
                    self.report(SourceError::Fatal(m)).await;
                    return false;
                }
            }
        }
    }

    /// The shard no longer exists: whatever it held after `last` is lost.
    /// With `on_data_loss = "skip"` it is finished like a shard read to its
    /// end (once what was read is acknowledged), so its children are read.
    async fn shard_gone(&self, held: &Held, last: Option<&str>, detail: &str) {
        if self.data_lost(held, last, detail).await {
            self.shard_ended(held).await;
        }
    }

    /// Records were trimmed before they were read. `true`: go on from the
    /// trim horizon; `false`: the loss was reported as fatal.
    async fn data_lost(&self, held: &Held, last: Option<&str>, detail: &str) -> bool {
        metrics::counter!(DATA_LOSS, "source" => self.name.clone()).increment(1);
        let msg = format!(
            "records of shard {} of table {} after {} were trimmed (24 h retention) before they were read: {detail}",
            held.shard_id,
            self.table_name,
            last.map_or_else(
                || "its start".to_string(),
                |s| format!("sequence number {s}")
            ),
        );
        match self.settings.on_data_loss {
            OnDataLoss::Fail => {
                self.report(SourceError::Fatal(format!(
                    "{msg}; set on_data_loss = \"skip\" to go on"
                )))
                .await;
                false
            }
            OnDataLoss::Skip => {
                tracing::error!(source = %self.name, "{msg}; going on from the oldest record (on_data_loss = \"skip\")");
                true
            }
        }
    }

    /// The `traceparent` header from the configured attribute, when the item
    /// has it as a string.
    fn trace_header(&self, ddb: &aws_sdk_dynamodbstreams::types::StreamRecord) -> Option<Header> {
        let name = self.settings.traceparent_attribute.as_deref()?;
        let value = ddb
            .new_image()
            .and_then(|i| i.get(name))
            .or_else(|| ddb.old_image().and_then(|i| i.get(name)))?;
        match value {
            aws_sdk_dynamodbstreams::types::AttributeValue::S(s) => {
                Some(Header::new(crate::telemetry::TRACEPARENT, s.clone()))
            }
            _ => None,
        }
    }

    fn to_event(&self, shard_id: &str, rec: &Record) -> Option<(String, Event)> {
        let ddb = rec.dynamodb()?;
        let seq = ddb.sequence_number()?.to_string();
        let mapping = &self.settings.mapping;
        let op = match rec.event_name() {
            Some(OperationType::Insert) => Op::Insert,
            Some(OperationType::Remove) => Op::Delete,
            _ => Op::Upsert,
        };
        let event = Event {
            key: ddb.keys().map(|k| Bytes::from(mapping.item_to_vec(k))),
            value: ddb.new_image().map(|i| Bytes::from(mapping.item_to_vec(i))),
            old_value: ddb.old_image().map(|i| Bytes::from(mapping.item_to_vec(i))),
            op,
            headers: self.trace_header(ddb).into_iter().collect(),
            timestamp_ms: ddb
                .approximate_creation_date_time()
                .and_then(|t| t.to_millis().ok())
                .unwrap_or(0),
            origin: format!("{}/{}/{}", self.table_name, shard_id, seq),
        };
        Some((seq, event))
    }

    async fn pause(&self, held: &Held, d: Duration) -> bool {
        if d.is_zero() {
            return !held.cancel.is_cancelled();
        }
        tokio::select! {
            _ = held.cancel.cancelled() => false,
            _ = tokio::time::sleep(d) => true,
        }
    }

    /// Read one shard until it ends, the lease is lost or the source stops.
    async fn read(self: Arc<Self>, held: Arc<Held>, position: Position) {
        let s = &self.settings;
        let mut last: Option<String> = None;
        // Records created before this (ms since the epoch) are skipped.
        let mut skip_before: Option<i64> = None;
        // A shard started at `Latest` has no position to resume from until
        // its first record is read; that record's sequence number is stored
        // before anything is handed on, so a next holder resumes there.
        let mut unpinned = matches!(position, Position::Latest | Position::LatestSince(_));
        let mut initial = match position {
            Position::TrimHorizon => IteratorStart::TrimHorizon,
            Position::Latest => IteratorStart::Latest,
            Position::LatestSince(ms) => {
                // The lease moved before its first holder read a record:
                // where that holder's iterator stood is unknown, so read
                // from the oldest record and skip only what is clearly
                // older than its take (a margin covers clock skew and the
                // coarse record times).
                let ms = i64::try_from(ms).unwrap_or(i64::MAX);
                skip_before = Some(ms.saturating_sub(LATEST_SINCE_MARGIN.as_millis() as i64));
                IteratorStart::TrimHorizon
            }
            Position::At(seq) => IteratorStart::At(seq),
            Position::Sequence(seq) => {
                last = Some(seq.clone());
                IteratorStart::After(seq)
            }
            Position::ShardEnd => {
                self.shard_ended(&held).await;
                return;
            }
        };
        let mut iterator: Option<String> = None;
        let idle_base = s.poll_min.max(Duration::from_millis(10));
        let mut idle = idle_base;
        let mut failures: u32 = 0;
        let backoff = |failures: u32| Duration::from_millis((100u64 << failures.min(6)).min(5_000));
        while !held.cancel.is_cancelled() {
            let it = match iterator.take() {
                Some(it) => it,
                None => {
                    let from = last
                        .clone()
                        .map_or_else(|| initial.clone(), IteratorStart::After);
                    match self.api.iterator(&held.shard_id, &from).await {
                        Ok(it) => it,
                        Err(StreamsError::Trimmed(m)) => {
                            if !self.data_lost(&held, last.as_deref(), &m).await {
                                return;
                            }
                            last = None;
                            initial = IteratorStart::TrimHorizon;
                            continue;
                        }
                        Err(StreamsError::NotFound(m)) => {
                            self.shard_gone(&held, last.as_deref(), &m).await;
                            return;
                        }
                        Err(StreamsError::ExpiredIterator) => continue,
                        Err(StreamsError::Transient(m)) => {
                            failures += 1;
                            tracing::warn!(source = %self.name, shard = %held.shard_id, "get shard iterator: {m}");
                            if !self.pause(&held, backoff(failures)).await {
                                return;
                            }
                            continue;
                        }
                        Err(StreamsError::Fatal(m)) => {
                            self.report(SourceError::Fatal(format!(
                                "shard {}: {m}",
                                held.shard_id
                            )))
                            .await;
                            return;
                        }
                    }
                }
            };
            match self.api.records(&it, s.records_per_call).await {
                Ok(page) => {
                    failures = 0;
                    let n = page.records.len();
                    let mut events: VecDeque<(String, Event)> = page
                        .records
                        .iter()
                        .filter_map(|r| self.to_event(&held.shard_id, r))
                        .collect();
                    if let Some(before) = skip_before {
                        let raw_last = events.back().map(|(seq, _)| seq.clone());
                        // Records of a shard come in time order: skip up to
                        // the first one that is recent enough.
                        while events
                            .front()
                            .is_some_and(|(_, e)| e.timestamp_ms > 0 && e.timestamp_ms < before)
                        {
                            events.pop_front();
                        }
                        if events.is_empty() {
                            // Resume after the skipped ones if the iterator expires.
                            last = raw_last.or(last);
                        } else {
                            skip_before = None;
                        }
                    }
                    if unpinned && let Some((first, _)) = events.front() {
                        if !self.pin(&held, first).await {
                            return;
                        }
                        unpinned = false;
                    }
                    // Iterator age for the admin API's /metrics: how old the
                    // newest record read is; 0 once caught up.
                    let newest_ms = events.back().map_or(0, |(_, e)| e.timestamp_ms);
                    let now_ms = crate::calendar::now_unix_ms();
                    let age_ms = if newest_ms > 0 {
                        (now_ms - newest_ms).max(0)
                    } else {
                        0
                    };
                    crate::metrics::dynamodb_streams_iterator_age(
                        &self.name,
                        &held.shard_id,
                        Duration::from_millis(age_ms.unsigned_abs()),
                    );
                    if let Some((seq, _)) = events.back() {
                        last = Some(seq.clone());
                        held.progress.lock().await.last_read = Some(seq.clone());
                        let page = Page {
                            shard_id: held.shard_id.clone(),
                            token: held.token.clone(),
                            events,
                        };
                        tokio::select! {
                            _ = held.cancel.cancelled() => return,
                            sent = self.tx.send(Feed::Page(page)) => if sent.is_err() { return },
                        }
                    }
                    let Some(next) = page.next_iterator else {
                        self.shard_ended(&held).await;
                        return;
                    };
                    iterator = Some(next);
                    let wait = if n >= s.records_per_call as usize {
                        idle = idle_base;
                        Duration::ZERO
                    } else if n > 0 {
                        idle = idle_base;
                        s.poll_min
                    } else {
                        let w = idle;
                        idle = (idle * 2).min(s.poll_max.max(idle_base));
                        w.min(s.poll_max)
                    };
                    if !self.pause(&held, wait).await {
                        return;
                    }
                }
                Err(StreamsError::ExpiredIterator) => {
                    tracing::debug!(source = %self.name, shard = %held.shard_id, "iterator expired; renewing from the last sequence number read");
                }
                Err(StreamsError::Trimmed(m)) => {
                    if !self.data_lost(&held, last.as_deref(), &m).await {
                        return;
                    }
                    last = None;
                    initial = IteratorStart::TrimHorizon;
                }
                Err(StreamsError::NotFound(m)) => {
                    self.shard_gone(&held, last.as_deref(), &m).await;
                    return;
                }
                Err(StreamsError::Transient(m)) => {
                    failures += 1;
                    tracing::warn!(source = %self.name, shard = %held.shard_id, "get records: {m}");
                    iterator = Some(it);
                    if !self.pause(&held, backoff(failures)).await {
                        return;
                    }
                }
                Err(StreamsError::Fatal(m)) => {
                    self.report(SourceError::Fatal(format!("shard {}: {m}", held.shard_id)))
                        .await;
                    return;
                }
            }
        }
    }

    async fn commit_mark(&self, mark: ShardMark) -> Result<(), SourceError> {
        let held = self
            .held_map()
            .get(&mark.shard_id)
            .filter(|h| h.token == mark.token)
            .cloned();
        let Some(held) = held else {
            tracing::debug!(source = %self.name, shard = %mark.shard_id, "not committing: lease no longer held");
            return Ok(());
        };
        let mut p = held.progress.lock().await;
        p.acked = Some(mark.sequence);
        self.store(&held, &mut p).await
    }

    /// Store the acknowledged position (or `SHARD_END` once the reader
    /// reached the end and everything read is acknowledged), conditional
    /// on still holding the lease.
    async fn store(&self, held: &Held, p: &mut Progress) -> Result<(), SourceError> {
        if p.finished {
            return Ok(());
        }
        if p.ended && p.acked == p.last_read {
            return self.finish(held, p).await;
        }
        let Some(seq) = p.acked.clone() else {
            return Ok(());
        };
        if p.stored.as_ref() == Some(&seq) {
            return Ok(());
        }
        let stored = self
            .leases
            .checkpoint(
                &held.shard_id,
                &held.token,
                &Position::Sequence(seq.clone()),
            )
            .await
            .map_err(lease_error)?;
        if stored {
            p.stored = Some(seq);
        } else {
            tracing::info!(source = %self.name, shard = %held.shard_id, "lease lost before commit; the new holder resumes from the stored checkpoint");
            metrics::counter!(LEASES_LOST, "source" => self.name.clone()).increment(1);
            self.drop_held(held);
        }
        Ok(())
    }
}

#[async_trait]
impl Source for DynamoDbStreamsSource {
    type Checkpoint = StreamsCheckpoint;

    async fn next_batch(
        &self,
        max_events: usize,
        max_wait: Duration,
    ) -> Result<SourceBatch<StreamsCheckpoint>, SourceError> {
        let deadline = tokio::time::Instant::now() + max_wait;
        let mut feed = self.feed.lock().await;
        if let Some(e) = feed.error.take() {
            return Err(e);
        }
        let max_events = max_events.max(1);
        let mut events = Vec::with_capacity(max_events.min(4096));
        let mut marks: Vec<ShardMark> = Vec::new();
        // Per event, its entry in `marks`.
        let mut partitions: Vec<u32> = Vec::with_capacity(max_events.min(4096));
        while events.len() < max_events {
            let page = match feed.leftover.take() {
                Some(p) => p,
                None => match tokio::time::timeout_at(deadline, feed.rx.recv()).await {
                    Ok(Some(Feed::Page(p))) => p,
                    Ok(Some(Feed::Error(e))) => {
                        if events.is_empty() {
                            return Err(e);
                        }
                        feed.error = Some(e);
                        break;
                    }
                    Ok(None) | Err(_) => break,
                },
            };
            if !self.inner.is_live(&page.shard_id, &page.token) {
                continue;
            }
            let mut page = page;
            let room = max_events - events.len();
            let take = room.min(page.events.len());
            let mut last_seq = None;
            let mark = marks
                .iter()
                .position(|m| m.shard_id == page.shard_id)
                .unwrap_or(marks.len()) as u32;
            for (seq, ev) in page.events.drain(..take) {
                events.push(ev);
                partitions.push(mark);
                last_seq = Some(seq);
            }
            if let Some(sequence) = last_seq {
                match marks.iter_mut().find(|m| m.shard_id == page.shard_id) {
                    Some(m) => {
                        m.token = page.token.clone();
                        m.sequence = sequence;
                    }
                    None => marks.push(ShardMark {
                        shard_id: page.shard_id.clone(),
                        token: page.token.clone(),
                        sequence,
                    }),
                }
            }
            if !page.events.is_empty() {
                feed.leftover = Some(page);
            }
        }
        Ok(SourceBatch {
            events,
            checkpoint: StreamsCheckpoint { shards: marks },
            partitions,
            exhausted: false,
            unreadable: Vec::new(),
        })
    }

    async fn commit(&self, cp: StreamsCheckpoint) -> Result<(), SourceError> {
        let results =
            futures::future::join_all(cp.shards.into_iter().map(|m| self.inner.commit_mark(m)))
                .await;
        results.into_iter().collect()
    }

    async fn close(&self) -> Result<(), SourceError> {
        self.inner.stop.cancel();
        let handle = self
            .coordinator
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(h) = handle {
            let _ = h.await;
        }
        let held: Vec<Arc<Held>> = self.inner.held_map().drain().map(|(_, h)| h).collect();
        for h in held {
            h.cancel.cancel();
            if let Err(e) = self.inner.leases.release(&h.shard_id, &h.token).await {
                tracing::warn!(source = %self.inner.name, "releasing lease of shard {}: {e}", h.shard_id);
            }
        }
        Ok(())
    }

    async fn check(&self) -> Result<(), SourceError> {
        self.inner
            .api
            .describe()
            .await
            .map(|_| ())
            .map_err(|e| SourceError::Transient(e.to_string()))
    }
}
