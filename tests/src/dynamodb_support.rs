//! Helpers of the DynamoDB tests: moto's address (failing loudly when it is
//! not running), clients, tables with streams, connector configs, reading
//! a source, comparing tables, and a scripted stream (shard splits, expired
//! iterators, trimmed data) that moto cannot produce.

use std::collections::{BTreeMap, HashMap};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use weir::dynamodb::attr::{JsonFormat, JsonMapping};
use weir::dynamodb::aws_sdk_dynamodb::Client;
use weir::dynamodb::aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, StreamSpecification, StreamViewType,
};
use weir::dynamodb::aws_sdk_dynamodbstreams::types::{
    self as st, OperationType, Record, StreamRecord,
};
use weir::dynamodb::client::AwsConnection;
use weir::event::Event;
use weir::source::dynamodb_streams::streams::{
    IteratorStart, RecordsPage, ShardInfo, StreamShape, StreamsApi, StreamsError,
};
use weir::source::dynamodb_streams::{
    DynamoDbStreamsSource, DynamoDbStreamsSourceConfig, StreamsCheckpoint,
};
use weir::source::{Source, SourceContext};

/// moto's endpoint: `WEIR_TEST_DYNAMODB` or http://127.0.0.1:15000. Panics
/// with how to start it when nothing listens there.
pub fn endpoint() -> String {
    let url =
        std::env::var("WEIR_TEST_DYNAMODB").unwrap_or_else(|_| "http://127.0.0.1:15000".into());
    let hostport = url
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .trim_end_matches('/');
    let reachable = hostport
        .to_socket_addrs()
        .map(|mut a| {
            a.any(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok())
        })
        .unwrap_or(false);
    assert!(
        reachable,
        "no DynamoDB emulator at {url} (WEIR_TEST_DYNAMODB): start it with `scripts/services start dynamodb`"
    );
    url
}

/// Connection settings for moto.
pub fn connection() -> AwsConnection {
    AwsConnection {
        endpoint: Some(endpoint()),
        region: Some("us-east-1".into()),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
    }
}

/// A DynamoDB client for moto.
pub async fn client() -> Client {
    Client::new(&connection().load().await)
}

/// A name no other test run uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{millis}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Create a table keyed by `keys` (name, type; the first is the partition
/// key), with a stream of `view` if given. Returns the stream ARN.
pub async fn create_table(
    client: &Client,
    name: &str,
    keys: &[(&str, ScalarAttributeType)],
    view: Option<StreamViewType>,
) -> Option<String> {
    let mut req = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest);
    for (i, (attr, ty)) in keys.iter().enumerate() {
        req = req
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(*attr)
                    .attribute_type(ty.clone())
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(*attr)
                    .key_type(if i == 0 {
                        KeyType::Hash
                    } else {
                        KeyType::Range
                    })
                    .build()
                    .unwrap(),
            );
    }
    if let Some(view) = view {
        req = req.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(view)
                .build()
                .unwrap(),
        );
    }
    let out = req.send().await.expect("create table");
    out.table_description()
        .and_then(|t| t.latest_stream_arn())
        .map(str::to_owned)
}

/// Common TOML lines of a source config for moto.
pub fn source_toml(table: &str, lease_table: &str, group: &str, extra: &str) -> String {
    format!(
        r#"
table = "{table}"
endpoint = "{endpoint}"
region = "us-east-1"
access_key_id = "test"
secret_access_key = "test"
lease_table = "{lease_table}"
lease_group = "{group}"
lease_duration_ms = 1500
shard_sync_interval_ms = 500
poll_min_ms = 20
poll_max_ms = 200
{extra}
"#,
        endpoint = endpoint()
    )
}

/// A source config parsed from TOML lines.
pub fn source_config(toml_text: &str) -> DynamoDbStreamsSourceConfig {
    toml::from_str(toml_text).expect("source config")
}

/// The context a source gets.
pub fn source_ctx(pipeline: &str) -> SourceContext {
    SourceContext {
        name: "stream".into(),
        pipeline: pipeline.into(),
        config_dir: std::env::temp_dir(),
    }
}

/// Start a source against moto.
pub async fn start_source(cfg: &DynamoDbStreamsSourceConfig) -> DynamoDbStreamsSource {
    DynamoDbStreamsSource::connect(cfg, &source_ctx("test"))
        .await
        .expect("source")
}

/// Read until `want` events arrived or `within` passed; commit each batch
/// when `commit`. Returns the events in the order read.
pub async fn read(
    source: &DynamoDbStreamsSource,
    want: usize,
    within: Duration,
    commit: bool,
) -> Vec<Event> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    while out.len() < want && Instant::now() < deadline {
        let batch = source
            .next_batch(want - out.len(), Duration::from_millis(200))
            .await
            .expect("next_batch");
        out.extend(batch.events);
        if commit {
            source.commit(batch.checkpoint).await.expect("commit");
        }
    }
    out
}

/// Read batches (up to `max` events each) for `within`, committing each;
/// returns each batch's events and checkpoint.
pub async fn read_batches(
    source: &DynamoDbStreamsSource,
    max: usize,
    within: Duration,
    until: impl Fn(usize) -> bool,
) -> Vec<(Vec<Event>, StreamsCheckpoint)> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    let mut total = 0;
    while !until(total) && Instant::now() < deadline {
        let batch = source
            .next_batch(max, Duration::from_millis(200))
            .await
            .expect("next_batch");
        total += batch.events.len();
        let cp = batch.checkpoint.clone();
        source.commit(batch.checkpoint).await.expect("commit");
        if !batch.events.is_empty() {
            out.push((batch.events, cp));
        }
    }
    out
}

/// Every item of a table, keyed by the typed JSON of its key attributes,
/// as typed JSON.
pub async fn scan_all(
    client: &Client,
    table: &str,
    key: &[&str],
) -> BTreeMap<String, serde_json::Value> {
    let typed = JsonMapping {
        format: JsonFormat::Typed,
        ..JsonMapping::default()
    };
    let mut out = BTreeMap::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .expect("scan");
        for item in page.items() {
            let k: HashMap<String, AttributeValue> = key
                .iter()
                .map(|k| (k.to_string(), item[*k].clone()))
                .collect();
            out.insert(
                typed.item_to_value(&k).to_string(),
                typed.item_to_value(item),
            );
        }
        match page.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => break,
        }
    }
    out
}

/// The JSON of an event field.
pub fn json(bytes: &Option<bytes::Bytes>) -> serde_json::Value {
    bytes.as_ref().map_or(serde_json::Value::Null, |b| {
        serde_json::from_slice(b).expect("JSON")
    })
}

// ---------------------------------------------------------------------------
// A scripted stream.

/// A shard of a scripted stream: its records' sequence numbers and keys.
#[derive(Debug, Clone)]
pub struct FakeShard {
    pub id: String,
    pub parent: Option<String>,
    pub closed: bool,
    /// (sequence number, key `id`) per record.
    pub records: Vec<(u64, String)>,
    /// Records with a sequence number below this are trimmed.
    pub trim_below: u64,
}

/// What the scripted stream saw.
#[derive(Debug, Default)]
pub struct FakeLog {
    /// GetRecords calls in flight per shard now, and the most ever seen.
    pub in_flight: HashMap<String, usize>,
    pub max_in_flight: usize,
    /// Iterators handed out that expired.
    pub expired: usize,
}

/// What a scripted stream's DescribeStream answers, given the shape it
/// would answer (to fail it, delay it, or change the stream meanwhile).
pub type DescribeHook = Arc<
    dyn Fn(StreamShape) -> futures::future::BoxFuture<'static, Result<StreamShape, StreamsError>>
        + Send
        + Sync,
>;

/// A stream whose shards, splits, expiries and trims a test scripts.
#[derive(Clone)]
pub struct FakeStream {
    pub arn: String,
    pub shards: Arc<Mutex<Vec<FakeShard>>>,
    pub log: Arc<Mutex<FakeLog>>,
    /// Every Nth GetRecords call answers "iterator expired" (0 = never).
    pub expire_every: usize,
    calls: Arc<AtomicU32>,
    /// Records per page at most (besides the caller's limit).
    pub page: usize,
    /// Records with this sequence number or above carry the time they were
    /// read as their creation time; older ones a fixed time in 2023.
    pub recent_from: Arc<std::sync::atomic::AtomicU64>,
    /// Records with these sequence numbers come without their `dynamodb`
    /// part (only an event ID `malformed-<seq>` and the event name).
    pub malformed: Arc<Mutex<std::collections::HashSet<u64>>>,
    describe_hook: Option<DescribeHook>,
}

impl std::fmt::Debug for FakeStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeStream")
            .field("arn", &self.arn)
            .field("shards", &self.shards)
            .finish_non_exhaustive()
    }
}

impl FakeStream {
    pub fn new(shards: Vec<FakeShard>) -> Self {
        FakeStream {
            arn: format!(
                "arn:aws:dynamodb:us-east-1:000000000000:table/fake/stream/{}",
                unique("s")
            ),
            shards: Arc::new(Mutex::new(shards)),
            log: Arc::new(Mutex::new(FakeLog::default())),
            expire_every: 0,
            calls: Arc::new(AtomicU32::new(0)),
            page: 7,
            recent_from: Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX)),
            malformed: Arc::new(Mutex::new(std::collections::HashSet::new())),
            describe_hook: None,
        }
    }

    /// GetRecords calls answered so far (by every view of this stream).
    pub fn records_calls(&self) -> u32 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Append records `from..=to` to shard `id` (keys `id-seq`).
    pub fn append(&self, id: &str, from: u64, to: u64) {
        let mut shards = self.shards.lock().unwrap();
        let shard = shards
            .iter_mut()
            .find(|s| s.id == id)
            .expect("no such shard");
        shard
            .records
            .extend((from..=to).map(|q| (q, format!("{id}-{q}"))));
    }

    /// The same stream (shards, log) seen through a DescribeStream that
    /// `hook` answers, as one host would see it.
    pub fn with_describe_hook(&self, hook: DescribeHook) -> FakeStream {
        FakeStream {
            describe_hook: Some(hook),
            ..self.clone()
        }
    }

    fn record(&self, seq: u64, id: &str) -> Record {
        if self.malformed.lock().unwrap().contains(&seq) {
            return Record::builder()
                .event_id(format!("malformed-{seq}"))
                .event_name(OperationType::Insert)
                .build();
        }
        let created = if seq >= self.recent_from.load(Ordering::Relaxed) {
            weir::dynamodb::aws_sdk_dynamodbstreams::primitives::DateTime::from(SystemTime::now())
        } else {
            weir::dynamodb::aws_sdk_dynamodbstreams::primitives::DateTime::from_secs(1_700_000_000)
        };
        Record::builder()
            .event_name(OperationType::Insert)
            .dynamodb(
                StreamRecord::builder()
                    .sequence_number(seq.to_string())
                    .approximate_creation_date_time(created)
                    .keys("id", st::AttributeValue::S(id.into()))
                    .new_image("id", st::AttributeValue::S(id.into()))
                    .new_image("seq", st::AttributeValue::N(seq.to_string()))
                    .build(),
            )
            .build()
    }
}

/// Iterator text: `shard|next sequence number to read`.
fn parse_iterator(it: &str) -> Option<(String, u64)> {
    let (shard, pos) = it.split_once('|')?;
    Some((shard.to_string(), pos.parse().ok()?))
}

#[async_trait::async_trait]
impl StreamsApi for FakeStream {
    async fn describe(&self) -> Result<StreamShape, StreamsError> {
        let shape = {
            let shards = self.shards.lock().unwrap();
            StreamShape {
                stream_arn: self.arn.clone(),
                table_name: "fake".into(),
                shards: shards
                    .iter()
                    .map(|s| ShardInfo {
                        id: s.id.clone(),
                        parent: s.parent.clone(),
                        closed: s.closed,
                    })
                    .collect(),
            }
        };
        match &self.describe_hook {
            Some(hook) => hook(shape).await,
            None => Ok(shape),
        }
    }

    async fn iterator(
        &self,
        shard_id: &str,
        start: &IteratorStart,
    ) -> Result<String, StreamsError> {
        let shards = self.shards.lock().unwrap();
        let shard = shards
            .iter()
            .find(|s| s.id == shard_id)
            .ok_or_else(|| StreamsError::NotFound(format!("shard {shard_id}")))?;
        let pos = match start {
            IteratorStart::TrimHorizon => shard.trim_below,
            IteratorStart::Latest => shard.records.last().map_or(0, |r| r.0 + 1),
            IteratorStart::At(seq) => {
                let seq: u64 = seq.parse().unwrap();
                if seq < shard.trim_below {
                    return Err(StreamsError::Trimmed(format!(
                        "sequence number {seq} is trimmed"
                    )));
                }
                seq
            }
            IteratorStart::After(seq) => {
                let seq: u64 = seq.parse().unwrap();
                if seq + 1 < shard.trim_below {
                    return Err(StreamsError::Trimmed(format!(
                        "sequence number {seq} is trimmed"
                    )));
                }
                seq + 1
            }
        };
        Ok(format!("{shard_id}|{pos}"))
    }

    async fn records(&self, iterator: &str, limit: i32) -> Result<RecordsPage, StreamsError> {
        let (shard_id, pos) = parse_iterator(iterator).expect("our iterator");
        {
            let mut log = self.log.lock().unwrap();
            let n = log.in_flight.entry(shard_id.clone()).or_default();
            *n += 1;
            let n = *n;
            log.max_in_flight = log.max_in_flight.max(n);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        let done = |log: &Arc<Mutex<FakeLog>>| {
            *log.lock()
                .unwrap()
                .in_flight
                .entry(shard_id.clone())
                .or_default() -= 1;
        };
        let call = self.calls.fetch_add(1, Ordering::Relaxed) as usize + 1;
        if self.expire_every > 0 && call.is_multiple_of(self.expire_every) {
            self.log.lock().unwrap().expired += 1;
            done(&self.log);
            return Err(StreamsError::ExpiredIterator);
        }
        done(&self.log);
        let shards = self.shards.lock().unwrap();
        let shard = shards
            .iter()
            .find(|s| s.id == shard_id)
            .ok_or_else(|| StreamsError::NotFound(format!("shard {shard_id}")))?;
        if pos < shard.trim_below {
            return Err(StreamsError::Trimmed(format!(
                "iterator position {pos} is trimmed"
            )));
        }
        let from = shard.records.partition_point(|r| r.0 < pos);
        let page = &shard.records[from..]
            [..(shard.records.len() - from).min(self.page.min(limit as usize))];
        let records: Vec<Record> = page.iter().map(|r| self.record(r.0, &r.1)).collect();
        let next_pos = page.last().map_or(pos, |r| r.0 + 1);
        let at_end = shard.records.last().is_none_or(|r| r.0 < next_pos);
        Ok(RecordsPage {
            records,
            next_iterator: if shard.closed && at_end {
                None
            } else {
                Some(format!("{shard_id}|{next_pos}"))
            },
        })
    }
}

/// A source config for a scripted stream (leases in moto).
pub fn fake_source_config(
    lease_table: &str,
    group: &str,
    extra: &str,
) -> DynamoDbStreamsSourceConfig {
    source_config(&format!(
        r#"
stream_arn = "unused"
endpoint = "{endpoint}"
region = "us-east-1"
access_key_id = "test"
secret_access_key = "test"
lease_table = "{lease_table}"
lease_group = "{group}"
lease_duration_ms = 900
shard_sync_interval_ms = 200
poll_min_ms = 5
poll_max_ms = 50
{extra}
"#,
        endpoint = endpoint()
    ))
}

/// Start a source over a scripted stream.
pub async fn start_fake_source(
    cfg: &DynamoDbStreamsSourceConfig,
    stream: &FakeStream,
) -> DynamoDbStreamsSource {
    DynamoDbStreamsSource::with_api(cfg, &source_ctx("test"), Arc::new(stream.clone()))
        .await
        .expect("source")
}

/// `(shard, sequence number)` of an event from a scripted stream.
pub fn shard_seq(ev: &Event) -> (String, u64) {
    let mut parts = ev.origin.rsplitn(3, '/');
    let seq = parts.next().unwrap().parse().unwrap();
    let shard = parts.next().unwrap().to_string();
    (shard, seq)
}
