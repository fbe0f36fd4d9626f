//! Owned events, outputs and outcomes, as the host holds them.

use bytes::Bytes;

/// What a write does at the sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Op {
    /// A new record (Kafka message, DynamoDB INSERT).
    Insert,
    /// Insert or replace by key (DynamoDB MODIFY; the default for outputs).
    #[default]
    Upsert,
    /// Remove by key (Kafka tombstone, DynamoDB REMOVE).
    Delete,
}

impl Op {
    /// The byte that encodes this op.
    pub fn code(self) -> u8 {
        match self {
            Op::Insert => 0,
            Op::Upsert => 1,
            Op::Delete => 2,
        }
    }

    /// The op a byte encodes, if any.
    pub fn from_code(code: u8) -> Option<Op> {
        match code {
            0 => Some(Op::Insert),
            1 => Some(Op::Upsert),
            2 => Some(Op::Delete),
            _ => None,
        }
    }

    /// The lower-case name used in JSON and configs.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Insert => "insert",
            Op::Upsert => "upsert",
            Op::Delete => "delete",
        }
    }

    /// Parse the lower-case name.
    pub fn parse(name: &str) -> Option<Op> {
        match name {
            "insert" => Some(Op::Insert),
            "upsert" => Some(Op::Upsert),
            "delete" => Some(Op::Delete),
            _ => None,
        }
    }
}

/// A header of an event or output: a UTF-8 name and opaque bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Header name.
    pub key: String,
    /// Header value.
    pub value: Bytes,
}

impl Header {
    /// A header from a name and a value.
    pub fn new(key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        Header {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// One event read from a source.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// The record key (Kafka key; DynamoDB key attributes as JSON).
    pub key: Option<Bytes>,
    /// The value, JSON by convention; `None` for a tombstone.
    pub value: Option<Bytes>,
    /// The previous value where the source knows it (DynamoDB OLD_IMAGE).
    pub old_value: Option<Bytes>,
    /// What happened: insert, upsert or delete.
    pub op: Op,
    /// Headers carried with the event.
    pub headers: Vec<Header>,
    /// Event time in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// Where it came from: `topic/partition/offset` or `table/shard/sequence`.
    pub origin: String,
}

/// One record a plugin asks the host to write.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Output {
    /// The sink to write to; `None` means the pipeline's default route.
    pub route: Option<String>,
    /// Key of the record at the sink.
    pub key: Option<Bytes>,
    /// Value of the record; `None` for deletes.
    pub value: Option<Bytes>,
    /// Write, upsert or delete.
    pub op: Op,
    /// Headers to write where the sink supports them.
    pub headers: Vec<Header>,
    /// Time to live at the sink, where it supports one.
    pub ttl_seconds: Option<u32>,
}

/// What a plugin decided for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Write these outputs.
    Emit(Vec<Output>),
    /// Filter the event out.
    Drop,
    /// Send the event to the dead-letter sink with this reason.
    Fail(String),
}
