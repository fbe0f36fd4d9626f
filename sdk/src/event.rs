//! The event a plugin sees: a view borrowed from the batch buffer, so
//! reading a key, value or header copies nothing.

use std::fmt;

use weir_contract::{EventRef, HeaderIter};

pub use weir_contract::Op;

/// The event value could not be read as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonError {
    /// The event has no value (a tombstone or a delete).
    NoValue,
    /// The value is not valid JSON (or not of the requested shape).
    Invalid(String),
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonError::NoValue => f.write_str("event has no value"),
            JsonError::Invalid(e) => write!(f, "event value is not valid JSON: {e}"),
        }
    }
}

impl std::error::Error for JsonError {}

impl From<JsonError> for String {
    fn from(e: JsonError) -> String {
        e.to_string()
    }
}

/// One event of the batch being processed.
///
/// Everything it returns borrows from the batch buffer the host sent: no
/// copy is made until the plugin asks for one (parsing JSON, building an
/// [`crate::Output`]).
#[derive(Clone, Debug)]
pub struct Event<'a> {
    raw: EventRef<'a>,
}

impl<'a> Event<'a> {
    pub(crate) fn new(raw: EventRef<'a>) -> Self {
        Event { raw }
    }

    /// The record key (Kafka key; DynamoDB key attributes as JSON).
    pub fn key(&self) -> Option<&'a [u8]> {
        self.raw.key
    }

    /// The key as UTF-8 text, if it is present and valid UTF-8.
    pub fn key_str(&self) -> Option<&'a str> {
        self.raw.key.and_then(|k| std::str::from_utf8(k).ok())
    }

    /// The value (JSON by convention); `None` for a tombstone.
    pub fn value(&self) -> Option<&'a [u8]> {
        self.raw.value
    }

    /// The previous value, where the source knows it (DynamoDB OLD_IMAGE).
    pub fn old_value(&self) -> Option<&'a [u8]> {
        self.raw.old_value
    }

    /// What happened at the source: insert, upsert or delete.
    pub fn op(&self) -> Op {
        self.raw.op
    }

    /// The headers, in order, as `(name, value)` pairs.
    pub fn headers(&self) -> HeaderIter<'a> {
        self.raw.headers.clone()
    }

    /// The value of the first header called `name`.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// Event time in milliseconds since the Unix epoch.
    pub fn timestamp_ms(&self) -> i64 {
        self.raw.timestamp_ms
    }

    /// Where the event came from: `topic/partition/offset` or
    /// `table/shard/sequence`.
    pub fn origin(&self) -> &'a str {
        self.raw.origin
    }

    /// The value parsed as a JSON tree.
    pub fn json(&self) -> Result<serde_json::Value, JsonError> {
        self.json_as()
    }

    /// The value deserialized into `T`, which may borrow strings from the
    /// batch buffer (`&'a str` fields): the fastest way to read a few
    /// fields of a large value.
    pub fn json_as<T: serde::Deserialize<'a>>(&self) -> Result<T, JsonError> {
        let value = self.raw.value.ok_or(JsonError::NoValue)?;
        serde_json::from_slice(value).map_err(|e| JsonError::Invalid(e.to_string()))
    }

    /// The previous value parsed as JSON, `None` if there is none.
    pub fn old_json(&self) -> Result<Option<serde_json::Value>, JsonError> {
        self.raw
            .old_value
            .map(|v| serde_json::from_slice(v).map_err(|e| JsonError::Invalid(e.to_string())))
            .transpose()
    }

    /// An owned copy, as the host holds it.
    pub fn to_owned_event(&self) -> weir_contract::Event {
        self.raw.to_owned_event()
    }
}
