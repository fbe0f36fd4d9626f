//! Writing outputs to a DynamoDB table.
//!
//! A group of outputs is first *planned* without I/O ([`Planner`]): each
//! output becomes a put (its value as an item, TTL added) or a delete (its
//! key attributes); outputs that cannot become a request are rejected with
//! the reason; several outputs for the same key are collapsed into one
//! (DynamoDB rejects a BatchWriteItem naming a key twice): the last one, or
//! with a version attribute the one with the highest version, which is what
//! writing them one after the other would leave; the rest is cut into
//! batches of at most 25 requests (DynamoDB's limit).
//!
//! Without a version attribute each batch is one BatchWriteItem; unprocessed
//! items are resent with exponential backoff. A batch the service refuses as
//! invalid is replayed item by item to find the culprits, which are rejected
//! with the service's message. With a version attribute every request is a
//! conditional PutItem/DeleteItem; a failed condition means the stored item
//! is newer and counts as done.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};
use base64::Engine as _;
use futures::StreamExt as _;

use super::config::DynamoDbSinkConfig;
use crate::connector_error::{BoxError, ConnectorError};
use crate::dynamodb::attr::{JsonMapping, canonical_number, compare_decimal};
use crate::dynamodb::client::error_text;
use crate::dynamodb::json::Json;
use crate::event::{Op, Output};
use crate::sink::{Rejection, Sink, SinkError};

/// Most requests DynamoDB accepts in one BatchWriteItem.
pub const MAX_BATCH_WRITE: usize = 25;

/// An item, as the SDK holds it.
pub type Item = HashMap<String, AttributeValue>;

/// One write, planned.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Put this item.
    Put(Item),
    /// Delete the item with this key.
    Delete(Item),
}

/// A planned write and the output it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// Index of the output in the group.
    pub index: usize,
    /// What to send.
    pub request: Request,
    /// The output's version attribute value, when conditional writes are on.
    pub version: Option<AttributeValue>,
    /// Whether the write is sent on the condition that the stored version
    /// is not greater than `version`: it has one, and no unconditional
    /// delete of the key came before it in the group.
    pub conditional: bool,
}

/// A group of outputs turned into requests.
#[derive(Debug, Default)]
pub struct Plan {
    /// Batches of at most [`MAX_BATCH_WRITE`] requests, no key twice.
    pub batches: Vec<Vec<Planned>>,
    /// Outputs that cannot be written, with the reason.
    pub rejections: Vec<Rejection>,
}

/// Turns outputs into requests (no I/O).
#[derive(Debug, Clone)]
pub struct Planner {
    /// Key attribute names.
    pub key: Vec<String>,
    /// JSON mapping.
    pub mapping: JsonMapping,
    /// TTL attribute, if any.
    pub ttl_attribute: Option<String>,
    /// Default TTL in seconds.
    pub ttl_seconds: Option<u32>,
    /// Version attribute, if conditional writes are on.
    pub version_attribute: Option<String>,
}

impl Planner {
    /// Plan a group of outputs.
    pub fn plan(&self, outputs: &[Output]) -> Plan {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut plan = Plan::default();
        let mut planned: Vec<Planned> = Vec::with_capacity(outputs.len());
        let mut by_key: HashMap<String, usize> = HashMap::with_capacity(outputs.len());
        for (index, output) in outputs.iter().enumerate() {
            match self.prepare(index, output, now) {
                Ok((dedupe, p)) => match by_key.get(&dedupe) {
                    Some(&slot) => self.collapse(&mut planned[slot], p),
                    None => {
                        by_key.insert(dedupe, planned.len());
                        planned.push(p);
                    }
                },
                Err(reason) => plan.rejections.push(Rejection { index, reason }),
            }
        }
        let mut it = planned.into_iter().peekable();
        while it.peek().is_some() {
            plan.batches
                .push(it.by_ref().take(MAX_BATCH_WRITE).collect());
        }
        plan
    }

    /// Fold a later write of a key into the earlier one kept for it, so the
    /// single request left has the effect the writes would have one after
    /// the other.
    ///
    /// Without a version attribute the later write wins. With one, the
    /// write with the highest version wins (the later one on a tie, as the
    /// `<=` condition lets an equal version overwrite); a write after an
    /// unconditional delete (one without a version) applies whatever is
    /// stored, so it is sent unconditionally. Versions of different types
    /// do not compare: the later write wins.
    fn collapse(&self, kept: &mut Planned, later: Planned) {
        if self.version_attribute.is_none() {
            *kept = later;
            return;
        }
        match (&kept.version, &later.version) {
            (_, None) => *kept = later,
            (None, Some(_)) => {
                *kept = Planned {
                    conditional: false,
                    ..later
                }
            }
            (Some(a), Some(b)) => {
                if compare_versions(a, b) != Some(std::cmp::Ordering::Greater) {
                    let conditional = kept.conditional && later.conditional;
                    *kept = Planned {
                        conditional,
                        ..later
                    };
                }
            }
        }
    }

    fn prepare(
        &self,
        index: usize,
        output: &Output,
        now: u64,
    ) -> Result<(String, Planned), String> {
        let key_json = match &output.key {
            Some(bytes) => Some(self.key_json(bytes)?),
            None => None,
        };
        let value_json = match &output.value {
            Some(bytes) => Some(Json::parse(bytes).map_err(|e| format!("value is not JSON: {e}"))?),
            None => None,
        };
        let key_item = match &key_json {
            Some(k) => Some(self.mapping.json_to_item(k, "key")?),
            None => None,
        };
        let (request, version) = if output.op == Op::Delete {
            let value_item = match &value_json {
                Some(v) if v.is_object() => Some(self.mapping.json_to_item(v, "value")?),
                _ => None,
            };
            let mut key = Item::new();
            for name in &self.key {
                let attr = key_item
                    .as_ref()
                    .and_then(|k| k.get(name))
                    .or_else(|| value_item.as_ref().and_then(|v| v.get(name)))
                    .ok_or_else(|| {
                        format!("delete has no key attribute `{name}` in its key or value")
                    })?;
                key.insert(name.clone(), attr.clone());
            }
            let version = self.version_attribute.as_ref().and_then(|v| {
                value_item
                    .as_ref()
                    .and_then(|i| i.get(v))
                    .or_else(|| key_item.as_ref().and_then(|k| k.get(v)))
                    .cloned()
            });
            (Request::Delete(key), version)
        } else {
            let value =
                value_json.ok_or_else(|| format!("{} output has no value", output.op.as_str()))?;
            let mut item = self.mapping.json_to_item(&value, "value")?;
            for name in &self.key {
                if !item.contains_key(name) {
                    let attr = key_item.as_ref().and_then(|k| k.get(name)).ok_or_else(|| {
                        format!("value has no key attribute `{name}` and the key does not give it")
                    })?;
                    item.insert(name.clone(), attr.clone());
                }
            }
            if let Some(ttl_attr) = &self.ttl_attribute
                && let Some(ttl) = output.ttl_seconds.or(self.ttl_seconds)
            {
                item.insert(
                    ttl_attr.clone(),
                    AttributeValue::N((now + u64::from(ttl)).to_string()),
                );
            }
            let version = match &self.version_attribute {
                Some(v) => Some(
                    item.get(v)
                        .cloned()
                        .ok_or_else(|| format!("value has no version attribute `{v}`"))?,
                ),
                None => None,
            };
            (Request::Put(item), version)
        };
        let key_of = match &request {
            Request::Put(item) | Request::Delete(item) => item,
        };
        let dedupe = self.dedupe_key(key_of)?;
        Ok((
            dedupe,
            Planned {
                index,
                conditional: version.is_some(),
                request,
                version,
            },
        ))
    }

    /// The output key as JSON: an object of key attributes, or (for a
    /// single-attribute key) a scalar or plain UTF-8 text meaning that attribute.
    fn key_json(&self, bytes: &[u8]) -> Result<Json, String> {
        let parsed = Json::parse(bytes).ok();
        match (parsed, self.key.as_slice()) {
            (Some(v @ Json::Object(_)), _) => Ok(v),
            (Some(v @ (Json::String(_) | Json::Number(_))), [single])
                if self.mapping.format == crate::dynamodb::attr::JsonFormat::Natural =>
            {
                Ok(Json::Object([(single.clone(), v)].into_iter().collect()))
            }
            (None, [single]) => match std::str::from_utf8(bytes) {
                Ok(text) if self.mapping.format == crate::dynamodb::attr::JsonFormat::Natural => {
                    Ok(Json::Object(
                        [(single.clone(), Json::String(text.to_owned()))]
                            .into_iter()
                            .collect(),
                    ))
                }
                _ => Err("key is neither a JSON object nor UTF-8 text".into()),
            },
            _ => Err(format!(
                "key must be a JSON object with the attributes {:?}",
                self.key
            )),
        }
    }

    /// A text naming the item's key, equal for two items exactly when
    /// their keys are equal (numbers by value). Each attribute is written
    /// as its type, its length, `:` and its text, so no attribute's text
    /// can imitate the boundary to the next one.
    fn dedupe_key(&self, item: &Item) -> Result<String, String> {
        use std::fmt::Write as _;
        let mut out = String::new();
        for name in &self.key {
            let (tag, text) = match item.get(name) {
                Some(AttributeValue::S(s)) => ('S', s.clone()),
                Some(AttributeValue::N(n)) => ('N', canonical_number(n)),
                Some(AttributeValue::B(b)) => (
                    'B',
                    base64::engine::general_purpose::STANDARD.encode(b.as_ref()),
                ),
                Some(_) => {
                    return Err(format!(
                        "key attribute `{name}` must be a string, number or binary"
                    ));
                }
                None => return Err(format!("no key attribute `{name}`")),
            };
            let _ = write!(out, "{tag}{}:{text}", text.len());
        }
        Ok(out)
    }
}

/// The order of two version attribute values as DynamoDB's `<=` compares
/// them: numbers by value, strings and binaries byte by byte; `None` for
/// values of different or unordered types.
fn compare_versions(a: &AttributeValue, b: &AttributeValue) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (AttributeValue::N(x), AttributeValue::N(y)) => compare_decimal(x, y),
        (AttributeValue::S(x), AttributeValue::S(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (AttributeValue::B(x), AttributeValue::B(y)) => Some(x.as_ref().cmp(y.as_ref())),
        _ => None,
    }
}

/// A running DynamoDB sink.
pub struct DynamoDbSink {
    name: String,
    table: String,
    client: Client,
    planner: Planner,
    concurrency: usize,
    unprocessed_attempts: u32,
}

/// What a failed call means.
enum Failure {
    /// The stored item is newer (conditional writes only).
    ConditionFailed,
    /// The request is invalid: reject the output with this message.
    Invalid(String),
    /// Retry later, or stop: as the error says.
    Call(DynamoDbSinkError),
}

/// What a failed call means, before the error is kept.
enum Kind {
    ConditionFailed,
    Invalid(String),
    Transient,
    Fatal,
}

fn kind<E, R>(err: &SdkError<E, R>) -> Kind
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    match err {
        SdkError::ServiceError(ctx) => match ctx.err().code().unwrap_or("") {
            "ConditionalCheckFailedException" => Kind::ConditionFailed,
            "ValidationException" | "SerializationException" => Kind::Invalid(
                ctx.err()
                    .message()
                    .map_or_else(|| error_text(err), str::to_string),
            ),
            "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "LimitExceededException"
            | "InternalServerError"
            | "ServiceUnavailable"
            | "TransactionConflictException" => Kind::Transient,
            "ResourceNotFoundException"
            | "AccessDeniedException"
            | "UnrecognizedClientException"
            | "MissingAuthenticationTokenException"
            | "InvalidSignatureException" => Kind::Fatal,
            _ => Kind::Transient,
        },
        SdkError::ConstructionFailure(_) => Kind::Fatal,
        _ => Kind::Transient,
    }
}

fn classify<E, R>(err: SdkError<E, R>) -> Failure
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let transient = match kind(&err) {
        Kind::ConditionFailed => return Failure::ConditionFailed,
        Kind::Invalid(reason) => return Failure::Invalid(reason),
        Kind::Transient => true,
        Kind::Fatal => false,
    };
    Failure::Call(DynamoDbSinkError::Service {
        message: error_text(&err),
        transient,
        source: Box::new(err),
    })
}

/// Why the DynamoDB sink failed (without the sink's name: the caller adds
/// it once).
#[derive(Debug, thiserror::Error)]
pub enum DynamoDbSinkError {
    /// The connection settings, credentials, `key` or `concurrency` are
    /// not usable.
    #[error("{0}")]
    Setup(String),
    /// The SDK refused to build a write request.
    #[error("{0}")]
    Request(#[source] aws_sdk_dynamodb::error::BuildError),
    /// The table could not be described at start.
    #[error("cannot describe table {table}: {message}")]
    Describe {
        /// The table.
        table: String,
        /// The service's or SDK's message.
        message: String,
        /// Whether retrying may help.
        transient: bool,
        /// The SDK's error.
        #[source]
        source: BoxError,
    },
    /// A call failed.
    #[error("{message}")]
    Service {
        /// The service's or SDK's message.
        message: String,
        /// Whether retrying may help.
        transient: bool,
        /// The SDK's error.
        #[source]
        source: BoxError,
    },
    /// Items stayed unprocessed (throttled) after every attempt.
    #[error("{count} items still unprocessed (throttled) after {attempts} attempts")]
    Unprocessed {
        /// Items left.
        count: usize,
        /// Attempts made.
        attempts: u32,
    },
    /// A batch write reported a condition failure it cannot have.
    #[error("unexpected condition failure in BatchWriteItem")]
    UnexpectedCondition,
}

impl ConnectorError for DynamoDbSinkError {
    fn is_transient(&self) -> bool {
        match self {
            DynamoDbSinkError::Setup(_) | DynamoDbSinkError::Request(_) => false,
            DynamoDbSinkError::Describe { transient, .. }
            | DynamoDbSinkError::Service { transient, .. } => *transient,
            DynamoDbSinkError::Unprocessed { .. } | DynamoDbSinkError::UnexpectedCondition => true,
        }
    }
}

fn backoff(attempt: u32) -> Duration {
    let base = 50u64.saturating_mul(1 << attempt.min(7)).min(5_000);
    Duration::from_millis(base / 2 + rand::random_range(0..=base / 2))
}

impl DynamoDbSink {
    /// Connect, check the table exists and learn its key schema.
    pub async fn connect(name: &str, cfg: &DynamoDbSinkConfig) -> Result<Self, SinkError> {
        let conn = cfg.connection();
        conn.validate().map_err(DynamoDbSinkError::Setup)?;
        let sdk = conn
            .load_checked()
            .await
            .map_err(DynamoDbSinkError::Setup)?;
        let client = Client::new(&sdk);
        let described = client
            .describe_table()
            .table_name(&cfg.table)
            .send()
            .await
            .map_err(|e| DynamoDbSinkError::Describe {
                table: cfg.table.clone(),
                message: error_text(&e),
                transient: matches!(kind(&e), Kind::Transient),
                source: Box::new(e),
            })?;
        let schema: Vec<String> = described
            .table()
            .map(|t| {
                t.key_schema()
                    .iter()
                    .map(|k| k.attribute_name().to_string())
                    .collect()
            })
            .unwrap_or_default();
        let key = match &cfg.key {
            Some(key) => {
                let mut a = key.clone();
                let mut b = schema.clone();
                a.sort();
                b.sort();
                if a != b {
                    return Err(DynamoDbSinkError::Setup(format!(
                        "key {key:?} does not match table {}'s key schema {schema:?}",
                        cfg.table
                    ))
                    .into());
                }
                key.clone()
            }
            None => schema,
        };
        if cfg.concurrency == 0 {
            return Err(
                DynamoDbSinkError::Setup("concurrency must be at least 1".to_owned()).into(),
            );
        }
        Ok(DynamoDbSink {
            name: name.to_string(),
            table: cfg.table.clone(),
            client,
            planner: Planner {
                key,
                mapping: cfg.mapping(),
                ttl_attribute: cfg.ttl_attribute.clone(),
                ttl_seconds: cfg.ttl_seconds,
                version_attribute: cfg.version_attribute.clone(),
            },
            concurrency: cfg.concurrency,
            unprocessed_attempts: cfg.unprocessed_attempts.max(1),
        })
    }

    /// The planner this sink uses.
    pub fn planner(&self) -> &Planner {
        &self.planner
    }

    fn write_request(&self, p: &Planned) -> Result<WriteRequest, SinkError> {
        let built = match &p.request {
            Request::Put(item) => PutRequest::builder()
                .set_item(Some(item.clone()))
                .build()
                .map(|r| WriteRequest::builder().put_request(r).build()),
            Request::Delete(key) => DeleteRequest::builder()
                .set_key(Some(key.clone()))
                .build()
                .map(|r| WriteRequest::builder().delete_request(r).build()),
        };
        built.map_err(|e| DynamoDbSinkError::Request(e).into())
    }

    async fn write_batch(&self, batch: &[Planned]) -> Result<Vec<Rejection>, SinkError> {
        let mut pending = batch
            .iter()
            .map(|p| self.write_request(p))
            .collect::<Result<Vec<_>, _>>()?;
        let mut attempt = 0;
        loop {
            let sent = self
                .client
                .batch_write_item()
                .request_items(&self.table, pending)
                .send()
                .await;
            match sent {
                Ok(out) => {
                    let unprocessed = out
                        .unprocessed_items
                        .and_then(|mut m| m.remove(&self.table))
                        .unwrap_or_default();
                    if unprocessed.is_empty() {
                        return Ok(Vec::new());
                    }
                    attempt += 1;
                    metrics::counter!(UNPROCESSED_RETRIES, "sink" => self.name.clone())
                        .increment(unprocessed.len() as u64);
                    if attempt >= self.unprocessed_attempts {
                        return Err(DynamoDbSinkError::Unprocessed {
                            count: unprocessed.len(),
                            attempts: attempt,
                        }
                        .into());
                    }
                    tokio::time::sleep(backoff(attempt)).await;
                    pending = unprocessed;
                }
                Err(e) => {
                    return match classify(e) {
                        // Find out which items the service refuses.
                        Failure::Invalid(_) => self.write_singly(batch, false).await,
                        Failure::Call(e) => Err(e.into()),
                        Failure::ConditionFailed => {
                            Err(DynamoDbSinkError::UnexpectedCondition.into())
                        }
                    };
                }
            }
        }
    }

    /// One request per item, conditional on the version attribute if asked.
    async fn write_singly(
        &self,
        batch: &[Planned],
        conditional: bool,
    ) -> Result<Vec<Rejection>, SinkError> {
        let calls: Vec<_> = batch
            .iter()
            .map(|p| self.write_one(p, conditional))
            .collect();
        let results: Vec<Result<Option<Rejection>, SinkError>> = futures::stream::iter(calls)
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let mut rejections = Vec::new();
        for r in results {
            if let Some(rej) = r? {
                rejections.push(rej);
            }
        }
        Ok(rejections)
    }

    async fn write_one(
        &self,
        p: &Planned,
        conditional: bool,
    ) -> Result<Option<Rejection>, SinkError> {
        let condition = match (conditional, &self.planner.version_attribute, &p.version) {
            (true, Some(attr), Some(v)) if p.conditional => Some((attr.clone(), v.clone())),
            _ => None,
        };
        const CONDITION: &str = "attribute_not_exists(#v) OR #v <= :v";
        let sent = match &p.request {
            Request::Put(item) => {
                let mut req = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(item.clone()));
                if let Some((attr, v)) = condition {
                    req = req
                        .condition_expression(CONDITION)
                        .expression_attribute_names("#v", attr)
                        .expression_attribute_values(":v", v);
                }
                req.send().await.map(|_| ()).map_err(classify)
            }
            Request::Delete(key) => {
                let mut req = self
                    .client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(key.clone()));
                if let Some((attr, v)) = condition {
                    req = req
                        .condition_expression(CONDITION)
                        .expression_attribute_names("#v", attr)
                        .expression_attribute_values(":v", v);
                }
                req.send().await.map(|_| ()).map_err(classify)
            }
        };
        match sent {
            Ok(()) => Ok(None),
            Err(Failure::ConditionFailed) => {
                metrics::counter!(STALE_WRITES, "sink" => self.name.clone()).increment(1);
                Ok(None)
            }
            Err(Failure::Invalid(reason)) => Ok(Some(Rejection {
                index: p.index,
                reason,
            })),
            Err(Failure::Call(e)) => Err(e.into()),
        }
    }
}

// The sink's metrics, named with every other in `crate::metrics`.
const UNPROCESSED_RETRIES: &str = crate::metrics::SINK_DYNAMODB_UNPROCESSED_RETRIES.name;
const STALE_WRITES: &str = crate::metrics::SINK_DYNAMODB_STALE_WRITES.name;

#[async_trait]
impl Sink for DynamoDbSink {
    async fn write(&self, outputs: &[Output]) -> Result<Vec<Rejection>, SinkError> {
        let plan = self.planner.plan(outputs);
        let mut rejections = plan.rejections;
        if self.planner.version_attribute.is_some() {
            let all: Vec<Planned> = plan.batches.into_iter().flatten().collect();
            rejections.extend(self.write_singly(&all, true).await?);
        } else {
            let calls: Vec<_> = plan.batches.iter().map(|b| self.write_batch(b)).collect();
            let results: Vec<Result<Vec<Rejection>, SinkError>> = futures::stream::iter(calls)
                .buffer_unordered(self.concurrency)
                .collect()
                .await;
            for r in results {
                rejections.extend(r?);
            }
        }
        rejections.sort_by_key(|r| r.index);
        Ok(rejections)
    }

    async fn check(&self) -> Result<(), SinkError> {
        self.client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                DynamoDbSinkError::Service {
                    message: error_text(&e),
                    transient: true,
                    source: Box::new(e),
                }
                .into()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamodb::attr::JsonFormat;
    use bytes::Bytes;

    fn planner() -> Planner {
        Planner {
            key: vec!["id".into()],
            mapping: JsonMapping::default(),
            ttl_attribute: None,
            ttl_seconds: None,
            version_attribute: None,
        }
    }

    fn put(id: u32, v: u32) -> Output {
        Output {
            value: Some(Bytes::from(format!(r#"{{"id":"k{id}","v":{v}}}"#))),
            ..Output::default()
        }
    }

    #[test]
    fn batches_hold_at_most_25_distinct_keys_and_the_last_write_wins() {
        // 60 keys, each written twice, then key 7 deleted: 60 requests.
        let mut outputs: Vec<Output> = (0..60).map(|i| put(i, 1)).collect();
        outputs.extend((0..60).map(|i| put(i, 2)));
        outputs.push(Output {
            key: Some(Bytes::from_static(br#"{"id":"k7"}"#)),
            op: Op::Delete,
            ..Output::default()
        });
        let plan = planner().plan(&outputs);
        assert!(plan.rejections.is_empty());
        let sizes: Vec<usize> = plan.batches.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![25, 25, 10]);
        let all: Vec<&Planned> = plan.batches.iter().flatten().collect();
        for p in &all {
            match &p.request {
                Request::Put(item) => {
                    assert_eq!(item["v"], AttributeValue::N("2".into()), "{p:?}");
                    assert!(p.index >= 60);
                }
                Request::Delete(key) => {
                    assert_eq!(
                        key,
                        &Item::from([("id".into(), AttributeValue::S("k7".into()))])
                    );
                    assert_eq!(p.index, 120);
                }
            }
        }
        let mut keys: Vec<String> = all
            .iter()
            .map(|p| match &p.request {
                Request::Put(i) | Request::Delete(i) => format!("{:?}", i["id"]),
            })
            .collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), 60);
    }

    fn json_output(value: serde_json::Value) -> Output {
        Output {
            value: Some(Bytes::from(value.to_string())),
            ..Output::default()
        }
    }

    #[test]
    fn with_a_version_attribute_the_highest_version_of_a_key_is_kept() {
        let p = Planner {
            version_attribute: Some("version".into()),
            ..planner()
        };
        let v =
            |id: &str, version: i64| json_output(serde_json::json!({"id": id, "version": version}));
        let kept = |plan: &Plan| -> Vec<(usize, bool)> {
            plan.batches
                .iter()
                .flatten()
                .map(|p| (p.index, p.conditional))
                .collect()
        };
        // a: newest first; b: newest last; c: a tie keeps the later one.
        let plan = p.plan(&[
            v("a", 5),
            v("a", 3),
            v("b", 1),
            v("b", 2),
            v("c", 7),
            v("c", 7),
        ]);
        assert_eq!(kept(&plan), [(0, true), (3, true), (5, true)]);
        // Numbers compare by value, not as text.
        let plan = p.plan(&[v("a", 10), v("a", 9)]);
        assert_eq!(kept(&plan), [(0, true)]);
        // After a delete without a version the stored item is gone, so the
        // highest later write applies unconditionally.
        let del = Output {
            key: Some(Bytes::from_static(br#"{"id":"a"}"#)),
            op: Op::Delete,
            ..Output::default()
        };
        let plan = p.plan(&[v("a", 1), del.clone(), v("a", 5), v("a", 3)]);
        assert_eq!(kept(&plan), [(2, false)]);
        let plan = p.plan(&[v("a", 5), del]);
        assert_eq!(kept(&plan), [(1, false)]);
    }

    #[test]
    fn composite_keys_whose_texts_run_together_stay_apart() {
        let p = Planner {
            key: vec!["pk".into(), "sk".into()],
            ..planner()
        };
        // The old encoding (type, text, U+001F per attribute) gave both the
        // same dedupe key.
        let plan = p.plan(&[
            json_output(serde_json::json!({"pk": "x\u{1f}Sy", "sk": "z"})),
            json_output(serde_json::json!({"pk": "x", "sk": "y\u{1f}Sz"})),
            json_output(serde_json::json!({"pk": "1", "sk": "23"})),
            json_output(serde_json::json!({"pk": "12", "sk": "3"})),
        ]);
        let indexes: Vec<usize> = plan.batches.iter().flatten().map(|p| p.index).collect();
        assert_eq!(indexes, [0, 1, 2, 3]);
    }

    #[test]
    fn numeric_keys_collapse_by_value() {
        let p = Planner {
            key: vec!["n".into()],
            ..planner()
        };
        let outputs = vec![
            Output {
                value: Some(Bytes::from_static(br#"{"n":1.0,"x":1}"#)),
                ..Output::default()
            },
            Output {
                value: Some(Bytes::from_static(br#"{"n":1,"x":2}"#)),
                ..Output::default()
            },
        ];
        let plan = p.plan(&outputs);
        assert_eq!(plan.batches.len(), 1);
        assert_eq!(plan.batches[0].len(), 1);
        assert_eq!(plan.batches[0][0].index, 1);
    }

    #[test]
    fn unwritable_outputs_are_rejected_with_the_reason() {
        let p = Planner {
            version_attribute: Some("version".into()),
            ..planner()
        };
        let outputs = vec![
            Output {
                value: Some(Bytes::from_static(b"not json")),
                ..Output::default()
            },
            Output {
                value: Some(Bytes::from_static(br#"{"x":1}"#)),
                ..Output::default()
            },
            Output {
                value: Some(Bytes::from_static(br#"{"id":"a"}"#)),
                ..Output::default()
            },
            Output {
                op: Op::Delete,
                ..Output::default()
            },
            Output {
                value: Some(Bytes::from_static(br#"{"id":["a"],"version":1}"#)),
                ..Output::default()
            },
        ];
        let plan = p.plan(&outputs);
        let reasons: Vec<(usize, &str)> = plan
            .rejections
            .iter()
            .map(|r| (r.index, r.reason.as_str()))
            .collect();
        assert_eq!(reasons[0].0, 0);
        assert!(
            reasons[0].1.starts_with("value is not JSON"),
            "{}",
            reasons[0].1
        );
        assert_eq!(
            reasons[1],
            (
                1,
                "value has no key attribute `id` and the key does not give it"
            )
        );
        assert_eq!(reasons[2], (2, "value has no version attribute `version`"));
        assert_eq!(
            reasons[3],
            (3, "delete has no key attribute `id` in its key or value")
        );
        assert_eq!(
            reasons[4],
            (4, "key attribute `id` must be a string, number or binary")
        );
        assert!(plan.batches.is_empty());
    }

    #[test]
    fn ttl_and_plain_keys() {
        let p = Planner {
            ttl_attribute: Some("exp".into()),
            ttl_seconds: Some(60),
            ..planner()
        };
        let outputs = vec![
            Output {
                key: Some(Bytes::from_static(b"plain-key")),
                value: Some(Bytes::from_static(br#"{"x":1}"#)),
                ttl_seconds: Some(3600),
                ..Output::default()
            },
            Output {
                key: Some(Bytes::from_static(b"gone")),
                op: Op::Delete,
                ..Output::default()
            },
        ];
        let plan = p.plan(&outputs);
        assert!(plan.rejections.is_empty(), "{:?}", plan.rejections);
        let Request::Put(item) = &plan.batches[0][0].request else {
            panic!("not a put")
        };
        assert_eq!(item["id"], AttributeValue::S("plain-key".into()));
        let AttributeValue::N(exp) = &item["exp"] else {
            panic!("no ttl")
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let exp: u64 = exp.parse().unwrap();
        assert!(exp >= now + 3590 && exp <= now + 3600, "{exp} vs {now}");
        assert_eq!(
            plan.batches[0][1].request,
            Request::Delete(Item::from([(
                "id".into(),
                AttributeValue::S("gone".into())
            )]))
        );
        let typed = Planner {
            mapping: JsonMapping {
                format: JsonFormat::Typed,
                ..JsonMapping::default()
            },
            ..planner()
        };
        let plan = typed.plan(&[Output {
            value: Some(Bytes::from_static(br#"{"id":{"B":"AAE="}}"#)),
            ..Output::default()
        }]);
        assert!(plan.rejections.is_empty());
    }
}
