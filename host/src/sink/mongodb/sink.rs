//! The MongoDB sink: turns each output into one write model (insert,
//! replace-upsert, update-upsert or delete by `_id`) and sends a batch as one
//! `bulkWrite`.
//!
//! Replays converge: inserts of an existing `_id` count as written, replace
//! and `$set` are idempotent, and `$inc` is guarded by a bounded per-document
//! list of counted event ids (`dedup_field`): the update's filter is
//! `{_id, <dedup_array>: {$ne: event_id}}` and it `$push`es the event id
//! (keeping the last `dedup_window`). An event already counted matches
//! nothing, its upsert then collides with the existing `_id` (E11000), and
//! the sink re-sends that update without upsert to tell "already counted"
//! (matches nothing: done) from a race with a concurrent first write (it
//! now matches and counts). Older ids fall out of the window: a replay
//! reaching further back than `dedup_window` events of one document counts
//! those again.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mongodb::bson::{Bson, Document, doc, oid::ObjectId};
use mongodb::error::{Error as MongoError, ErrorKind, WriteFailure};
use mongodb::options::{
    Acknowledgment, ClientOptions, DeleteOneModel, InsertOneModel, ReplaceOneModel, UpdateOneModel,
    WriteModel,
};
use mongodb::{Client, Namespace};
use serde_json::Value;

use super::config::{
    CollectionFrom, IdCompound, IdSource, IncSource, MongoConfigError, MongoSinkConfig, Resolved,
    WriteConcernW, WriteModelKind,
};
use crate::connector_error::ConnectorError;
use crate::event::{Op, Output};
use crate::sink::{BuildSink, Rejection, Sink, SinkContext, SinkError};

/// Server error codes worth retrying (network, elections, shutdown,
/// timeouts, write concern not yet satisfied).
const RETRYABLE_CODES: &[i32] = &[
    6, 7, 46, 50, 64, 89, 91, 112, 134, 150, 189, 262, 9001, 10107, 11600, 11602, 13388, 13435,
    13436,
];

/// Duplicate key.
const DUPLICATE_KEY: i32 = 11000;

/// A connected MongoDB sink.
pub struct MongoSink {
    client: Client,
    config: MongoSinkConfig,
    resolved: Resolved,
    inc: Vec<(String, IncPlan)>,
    dedup_path: Option<Vec<String>>,
}

enum IncPlan {
    Const(Bson),
    Field(Vec<String>),
}

/// What a planned write is, for reading its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Insert,
    Replace,
    Update,
    /// An update guarded by the dedup filter.
    GuardedUpdate,
    Delete,
}

struct Planned {
    /// Index of the output.
    index: usize,
    kind: Kind,
    model: WriteModel,
    /// The `_id`, for messages.
    id: Bson,
    /// `db.collection`, for messages.
    ns: String,
}

#[async_trait]
impl BuildSink for MongoSinkConfig {
    async fn build(&self, ctx: &SinkContext) -> Result<Arc<dyn Sink>, SinkError> {
        Ok(Arc::new(MongoSink::connect(&ctx.name, self).await?))
    }
}

fn split(path: &str) -> Vec<String> {
    path.split('.').map(str::to_owned).collect()
}

/// The longest one bulk write may take before it fails as transient.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

impl MongoSink {
    /// Validate the config, connect and ping the server.
    pub async fn connect(name: &str, config: &MongoSinkConfig) -> Result<MongoSink, SinkError> {
        let resolved = config.validate(name).map_err(MongoSinkError::Config)?;
        let mut options = ClientOptions::parse(&config.uri)
            .await
            .map_err(MongoSinkError::Uri)?;
        let wc = &config.write_concern;
        if wc.w.is_some() || wc.journal.is_some() || wc.wtimeout_ms.is_some() {
            let mut concern = options.write_concern.clone().unwrap_or_default();
            if let Some(w) = &wc.w {
                concern.w = Some(match w {
                    WriteConcernW::Nodes(n) => Acknowledgment::Nodes(*n),
                    WriteConcernW::Tag(t) if t == "majority" => Acknowledgment::Majority,
                    WriteConcernW::Tag(t) => Acknowledgment::Custom(t.clone()),
                });
            }
            if let Some(j) = wc.journal {
                concern.journal = Some(j);
            }
            if let Some(ms) = wc.wtimeout_ms {
                concern.w_timeout = Some(Duration::from_millis(ms));
            }
            options.write_concern = Some(concern);
        }
        if options.app_name.is_none() {
            options.app_name = Some(format!("weir/{name}"));
        }
        let client = Client::with_options(options).map_err(MongoSinkError::Client)?;
        let inc = config
            .inc
            .iter()
            .map(|(target, source)| {
                let plan = match source {
                    IncSource::Int(n) => IncPlan::Const(Bson::Int64(*n)),
                    IncSource::Float(f) => IncPlan::Const(Bson::Double(*f)),
                    IncSource::Field(path) => IncPlan::Field(split(path)),
                };
                (target.clone(), plan)
            })
            .collect();
        let sink = MongoSink {
            client,
            config: config.clone(),
            resolved,
            inc,
            dedup_path: config.dedup_field.as_deref().map(split),
        };
        sink.check().await?;
        Ok(sink)
    }

    fn classify(&self, what: &'static str, e: &MongoError) -> SinkError {
        MongoSinkError::Call {
            what,
            source: e.clone(),
        }
        .into()
    }

    fn collection<'o>(&'o self, output: &'o Output) -> Result<&'o str, String> {
        let chosen = match &self.config.collection_from {
            None => None,
            Some(CollectionFrom::Route) => output.route.as_deref(),
            Some(CollectionFrom::Header(h)) => match output.headers.iter().find(|x| &x.key == h) {
                None => None,
                Some(x) => Some(
                    std::str::from_utf8(&x.value)
                        .map_err(|_| format!("header `{h}` (the collection) is not UTF-8"))?,
                ),
            },
        };
        chosen
            .filter(|c| !c.is_empty())
            .or(self.config.collection.as_deref())
            .ok_or_else(|| match &self.config.collection_from {
                Some(CollectionFrom::Header(h)) => {
                    format!("the output has no header `{h}` naming the collection, and no `collection` is configured")
                }
                _ => "the output has no route naming the collection, and no `collection` is configured".to_owned(),
            })
    }

    /// The `_id` of an output.
    fn id(&self, output: &Output, json: Option<&Value>) -> Result<Bson, String> {
        match self.resolved.id {
            IdSource::Generated => Ok(Bson::ObjectId(ObjectId::new())),
            IdSource::Key => {
                let key = output
                    .key
                    .as_ref()
                    .ok_or("the output has no key (the id comes from the key)")?;
                match serde_json::from_slice::<Value>(key) {
                    Ok(
                        v @ (Value::Object(_)
                        | Value::String(_)
                        | Value::Number(_)
                        | Value::Bool(_)),
                    ) => Bson::try_from(v).map_err(|e| format!("key is not a usable id: {e}")),
                    Ok(_) | Err(_) => Ok(match std::str::from_utf8(key) {
                        Ok(s) => Bson::String(s.to_owned()),
                        Err(_) => Bson::Binary(mongodb::bson::Binary {
                            subtype: mongodb::bson::spec::BinarySubtype::Generic,
                            bytes: key.to_vec(),
                        }),
                    }),
                }
            }
            IdSource::Fields => {
                let json =
                    json.ok_or("the output has no value (the id comes from value fields)")?;
                let mut parts = Vec::with_capacity(self.resolved.id_paths.len());
                for (path, name) in self.resolved.id_paths.iter().zip(&self.config.id_fields) {
                    let v = lookup(json, path)
                        .filter(|v| !v.is_null())
                        .ok_or_else(|| format!("id field `{name}` is missing from the value"))?;
                    if v.is_array() {
                        return Err(format!(
                            "id field `{name}` is an array, which cannot be an id"
                        ));
                    }
                    parts.push((name, v));
                }
                if let [(_, v)] = parts.as_slice() {
                    return to_bson(v);
                }
                match self.config.id_compound {
                    IdCompound::Document => {
                        let mut d = Document::new();
                        for (name, v) in parts {
                            d.insert(name.clone(), to_bson(v)?);
                        }
                        Ok(Bson::Document(d))
                    }
                    IdCompound::Joined => {
                        let mut s = String::new();
                        for (i, (_, v)) in parts.iter().enumerate() {
                            if i > 0 {
                                s.push_str(&self.config.id_separator);
                            }
                            match v {
                                Value::String(x) => s.push_str(x),
                                other => s.push_str(&other.to_string()),
                            }
                        }
                        Ok(Bson::String(s))
                    }
                }
            }
        }
    }

    /// Turn one output into a write model, or say why it cannot be written.
    fn plan(&self, index: usize, output: &Output, upsert: bool) -> Result<Planned, String> {
        let coll = self.collection(output)?;
        let namespace = Namespace::new(self.config.database.as_str(), coll);
        let ns = format!("{}.{coll}", self.config.database);
        let json: Option<Value> = match &output.value {
            None => None,
            Some(bytes) => Some(
                serde_json::from_slice(bytes).map_err(|e| format!("the value is not JSON: {e}"))?,
            ),
        };
        let id = self.id(output, json.as_ref())?;
        if output.op == Op::Delete {
            if self.resolved.id == IdSource::Generated {
                return Err(
                    "cannot delete: ids are generated, so there is no id to delete by".to_owned(),
                );
            }
            let model = DeleteOneModel::builder()
                .namespace(namespace)
                .filter(doc! { "_id": id.clone() })
                .build();
            return Ok(Planned {
                index,
                kind: Kind::Delete,
                model: model.into(),
                id,
                ns,
            });
        }
        let Some(json) = json else {
            return Err(format!(
                "the output has no value to {}",
                self.config.write_model.verb()
            ));
        };
        let Value::Object(map) = json else {
            return Err(format!(
                "the value is {}, not a JSON object, so it cannot be a document",
                kind_of(&json)
            ));
        };
        match self.config.write_model {
            WriteModelKind::Insert | WriteModelKind::Replace => {
                let mut document = Document::try_from(map)
                    .map_err(|e| format!("the value cannot be a document: {e}"))?;
                document.insert("_id", id.clone());
                let (kind, model) = if self.config.write_model == WriteModelKind::Insert {
                    let m = InsertOneModel::builder()
                        .namespace(namespace)
                        .document(document)
                        .build();
                    (Kind::Insert, m.into())
                } else {
                    let m = ReplaceOneModel::builder()
                        .namespace(namespace)
                        .filter(doc! { "_id": id.clone() })
                        .replacement(document)
                        .upsert(true)
                        .build();
                    (Kind::Replace, m.into())
                };
                Ok(Planned {
                    index,
                    kind,
                    model,
                    id,
                    ns,
                })
            }
            WriteModelKind::Update => {
                let map_value = Value::Object(map);
                let mut inc = Document::new();
                for (target, plan) in &self.inc {
                    let n = match plan {
                        IncPlan::Const(b) => b.clone(),
                        IncPlan::Field(path) => {
                            let v = lookup(&map_value, path).ok_or_else(|| {
                                format!(
                                    "inc `{target}`: field `{}` is missing from the value",
                                    path.join(".")
                                )
                            })?;
                            if !v.is_number() {
                                return Err(format!(
                                    "inc `{target}`: field `{}` is {}, not a number",
                                    path.join("."),
                                    kind_of(v)
                                ));
                            }
                            to_bson(v)?
                        }
                    };
                    inc.insert(target.clone(), n);
                }
                let event_id = match &self.dedup_path {
                    None => None,
                    Some(path) => Some(
                        lookup(&map_value, path)
                            .filter(|v| !v.is_null())
                            .map(to_bson)
                            .transpose()?
                            .ok_or_else(|| {
                                format!(
                                    "dedup field `{}` is missing from the value",
                                    path.join(".")
                                )
                            })?,
                    ),
                };
                let Value::Object(map) = map_value else {
                    return Err("the value is not a JSON object".to_owned());
                };
                let mut set = Document::new();
                for (field, v) in map {
                    if field == "_id"
                        || inc.contains_key(&field)
                        || field == self.config.dedup_array
                        || self
                            .config
                            .set_fields
                            .as_ref()
                            .is_some_and(|only| !only.contains(&field))
                    {
                        continue;
                    }
                    set.insert(field, to_bson(&v)?);
                }
                let mut update = Document::new();
                if !set.is_empty() {
                    update.insert("$set", set);
                }
                if !inc.is_empty() {
                    update.insert("$inc", inc);
                }
                let mut filter = doc! { "_id": id.clone() };
                let kind = match event_id {
                    Some(eid) => {
                        filter.insert(self.config.dedup_array.clone(), doc! { "$ne": eid.clone() });
                        update.insert(
                            "$push",
                            doc! { self.config.dedup_array.clone(): {
                                "$each": [eid],
                                "$slice": -i64::from(self.config.dedup_window),
                            } },
                        );
                        Kind::GuardedUpdate
                    }
                    None => Kind::Update,
                };
                if update.is_empty() {
                    return Err("nothing to write: the value has none of `set_fields` and no `inc` is configured".to_owned());
                }
                let m = UpdateOneModel::builder()
                    .namespace(namespace)
                    .filter(filter)
                    .update(update)
                    .upsert(upsert)
                    .build();
                Ok(Planned {
                    index,
                    kind,
                    model: m.into(),
                    id,
                    ns,
                })
            }
        }
    }

    /// Send planned writes; fill `rejections` and `already` (indexes into
    /// `planned` of guarded updates that hit a duplicate `_id`).
    async fn send(
        &self,
        planned: &[Planned],
        rejections: &mut Vec<Rejection>,
        already: &mut Vec<usize>,
    ) -> Result<(), SinkError> {
        let mut start = 0;
        while start < planned.len() {
            let models: Vec<WriteModel> =
                planned[start..].iter().map(|p| p.model.clone()).collect();
            let call = self.client.bulk_write(models).ordered(self.config.ordered);
            // The driver bounds server selection but not a call on a
            // connection the server accepted and never answers: without a
            // bound, one such write would hold the pipeline forever. The
            // writes are upserts or duplicate-tolerant inserts, so retrying
            // one that did land is harmless.
            let Ok(result) = tokio::time::timeout(WRITE_TIMEOUT, call).await else {
                return Err(MongoSinkError::NoAnswer {
                    what: "bulk write",
                    after: WRITE_TIMEOUT,
                }
                .into());
            };
            let e = match result {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            let ErrorKind::BulkWrite(bulk) = e.kind.as_ref() else {
                return Err(self.classify("bulk write", &e));
            };
            if let Some(wce) = bulk.write_concern_errors.first() {
                return Err(MongoSinkError::WriteConcern {
                    message: wce.message.clone(),
                    code: wce.code,
                }
                .into());
            }
            if let Some(cause) =
                std::error::Error::source(&e).and_then(|s| s.downcast_ref::<MongoError>())
            {
                return Err(self.classify("bulk write", cause));
            }
            if bulk.write_errors.is_empty() {
                return Err(self.classify("bulk write", &e));
            }
            let mut last = 0;
            for (&i, we) in &bulk.write_errors {
                let p = &planned[start + i];
                last = last.max(i);
                if RETRYABLE_CODES.contains(&we.code) {
                    return Err(MongoSinkError::RetryableWrite {
                        ns: p.ns.clone(),
                        id: p.id.to_string(),
                        message: we.message.clone(),
                        code: we.code,
                    }
                    .into());
                }
                match (we.code, p.kind) {
                    (DUPLICATE_KEY, Kind::Insert) => {}
                    (DUPLICATE_KEY, Kind::GuardedUpdate) => already.push(start + i),
                    _ => rejections.push(Rejection {
                        index: p.index,
                        reason: format!(
                            "{} _id {}: server rejected the write: {} (code {}{})",
                            p.ns,
                            p.id,
                            we.message,
                            we.code,
                            we.code_name
                                .as_deref()
                                .map(|n| format!(" {n}"))
                                .unwrap_or_default()
                        ),
                    }),
                }
            }
            if !self.config.ordered {
                return Ok(());
            }
            // Ordered: nothing after the failed write ran; send the rest.
            start += last + 1;
        }
        Ok(())
    }
}

#[async_trait]
impl Sink for MongoSink {
    async fn write(&self, outputs: &[Output]) -> Result<Vec<Rejection>, SinkError> {
        let mut rejections = Vec::new();
        let mut planned = Vec::with_capacity(outputs.len());
        for (i, output) in outputs.iter().enumerate() {
            match self.plan(i, output, true) {
                Ok(p) => planned.push(p),
                Err(why) => rejections.push(Rejection {
                    index: i,
                    reason: why,
                }),
            }
        }
        if planned.is_empty() {
            return Ok(rejections);
        }
        let mut already = Vec::new();
        self.send(&planned, &mut rejections, &mut already).await?;
        if !already.is_empty() {
            // Guarded updates whose upsert collided with an existing `_id`:
            // without upsert they either match (a concurrent writer created
            // the document first: count now) or not (counted before: done).
            let mut again = Vec::with_capacity(already.len());
            for &k in &already {
                let idx = planned[k].index;
                match self.plan(idx, &outputs[idx], false) {
                    Ok(p) => again.push(p),
                    Err(why) => rejections.push(Rejection {
                        index: idx,
                        reason: why,
                    }),
                }
            }
            let mut ignored = Vec::new();
            self.send(&again, &mut rejections, &mut ignored).await?;
        }
        rejections.sort_by_key(|r| r.index);
        rejections.dedup_by_key(|r| r.index);
        Ok(rejections)
    }

    async fn check(&self) -> Result<(), SinkError> {
        self.client
            .database(&self.config.database)
            .run_command(doc! { "ping": 1 })
            .await
            .map(|_| ())
            .map_err(|e| self.classify("ping", &e))
    }
}

impl WriteModelKind {
    fn verb(self) -> &'static str {
        match self {
            WriteModelKind::Insert => "insert",
            WriteModelKind::Replace => "replace with",
            WriteModelKind::Update => "update with",
        }
    }
}

/// Why the MongoDB sink failed (without the sink's name: the caller adds
/// it once).
#[derive(Debug, thiserror::Error)]
pub enum MongoSinkError {
    /// The write-model settings do not fit together.
    #[error(transparent)]
    Config(MongoConfigError),
    /// The driver cannot read `uri`.
    #[error("invalid uri: {0}")]
    Uri(#[source] MongoError),
    /// The driver refused the client options.
    #[error("{0}")]
    Client(#[source] MongoError),
    /// A call to the server failed.
    #[error("{what}: {source}")]
    Call {
        /// `bulk write` or `ping`.
        what: &'static str,
        /// The driver's error.
        #[source]
        source: MongoError,
    },
    /// The writes landed but the write concern was not satisfied in time.
    #[error("write concern not satisfied: {message} (code {code})")]
    WriteConcern {
        /// The server's message.
        message: String,
        /// The server's code.
        code: i32,
    },
    /// The server did not answer a call in time.
    #[error("{what}: no answer from the server in {after:?}")]
    NoAnswer {
        /// `bulk write`.
        what: &'static str,
        /// How long the sink waited.
        after: Duration,
    },
    /// A write failed with a code worth retrying.
    #[error("{ns} _id {id}: {message} (code {code})")]
    RetryableWrite {
        /// `database.collection`.
        ns: String,
        /// The document's `_id`.
        id: String,
        /// The server's message.
        message: String,
        /// The server's code.
        code: i32,
    },
}

impl ConnectorError for MongoSinkError {
    fn is_transient(&self) -> bool {
        match self {
            MongoSinkError::Config(_) | MongoSinkError::Uri(_) | MongoSinkError::Client(_) => false,
            MongoSinkError::Call { source, .. } => is_transient(source),
            MongoSinkError::WriteConcern { .. }
            | MongoSinkError::RetryableWrite { .. }
            | MongoSinkError::NoAnswer { .. } => true,
        }
    }
}

/// Whether a driver error is worth retrying.
pub fn is_transient(e: &MongoError) -> bool {
    use mongodb::error::{RETRYABLE_WRITE_ERROR, TRANSIENT_TRANSACTION_ERROR};
    if [
        RETRYABLE_WRITE_ERROR,
        TRANSIENT_TRANSACTION_ERROR,
        "RetryableError",
        "SystemOverloadedError",
    ]
    .iter()
    .any(|l| e.contains_label(l))
    {
        return true;
    }
    let by_kind = match e.kind.as_ref() {
        ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::ServerSelection { .. }
        | ErrorKind::DnsResolve { .. } => true,
        ErrorKind::Command(c) => RETRYABLE_CODES.contains(&c.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(_)) => true,
        ErrorKind::Write(WriteFailure::WriteError(w)) => RETRYABLE_CODES.contains(&w.code),
        ErrorKind::BulkWrite(b) => !b.write_concern_errors.is_empty(),
        _ => false,
    };
    by_kind
        || std::error::Error::source(e)
            .and_then(|s| s.downcast_ref::<MongoError>())
            .is_some_and(is_transient)
}

fn lookup<'v>(value: &'v Value, path: &[String]) -> Option<&'v Value> {
    let mut cur = value;
    for seg in path {
        cur = match cur {
            Value::Object(map) => map.get(seg)?,
            Value::Array(items) => items.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn to_bson(v: &Value) -> Result<Bson, String> {
    Bson::try_from(v.clone()).map_err(|e| format!("cannot convert {} to BSON: {e}", kind_of(v)))
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
