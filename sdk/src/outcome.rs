//! What a plugin returns for one event: [`Outcome`] and the [`Output`]
//! records it emits, built with a small builder.

use std::fmt;

use crate::event::{Event, Op};

/// One record to write: value, key, op, route, headers, TTL.
///
/// Built with [`Output::json`], [`Output::bytes`], [`Output::delete`] or
/// [`Output::from_event`], then refined:
///
/// ```
/// use weir_sdk::{Op, Output};
/// use weir_sdk::serde_json::json;
///
/// let out = Output::json(&json!({"id": 7}))
///     .route("mongo")
///     .key("7")
///     .header("source", "checkout")
///     .ttl(3600);
/// assert_eq!(out.value_bytes(), Some(&br#"{"id":7}"#[..]));
/// assert_eq!(out.op_kind(), Op::Upsert);
/// assert_eq!(out.route_name(), Some("mongo"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Output {
    route: Option<String>,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    op: Op,
    headers: Vec<(String, Vec<u8>)>,
    ttl_seconds: Option<u32>,
}

impl Output {
    /// An upsert whose value is `value` serialized as JSON.
    pub fn json(value: &serde_json::Value) -> Output {
        // Serializing a `Value` cannot fail: its map keys are strings.
        Output::bytes(serde_json::to_vec(value).unwrap_or_default())
    }

    /// An upsert whose value is `value` serialized as JSON, for any
    /// serializable type (a struct with `#[derive(Serialize)]`).
    pub fn serialize<T: serde::Serialize + ?Sized>(value: &T) -> Result<Output, String> {
        serde_json::to_vec(value)
            .map(Output::bytes)
            .map_err(|e| format!("output value cannot be serialized: {e}"))
    }

    /// An upsert whose value is these bytes.
    pub fn bytes(value: impl Into<Vec<u8>>) -> Output {
        Output {
            value: Some(value.into()),
            ..Output::default()
        }
    }

    /// A delete of `key` (no value).
    pub fn delete(key: impl Into<Vec<u8>>) -> Output {
        Output {
            key: Some(key.into()),
            op: Op::Delete,
            ..Output::default()
        }
    }

    /// The event passed through: its value, key, op and headers, copied.
    pub fn from_event(event: &Event<'_>) -> Output {
        Output {
            route: None,
            key: event.key().map(<[u8]>::to_vec),
            value: event.value().map(<[u8]>::to_vec),
            op: event.op(),
            headers: event
                .headers()
                .map(|(k, v)| (k.to_owned(), v.to_vec()))
                .collect(),
            ttl_seconds: None,
        }
    }

    /// Send to the sink named `route` instead of the pipeline's default.
    pub fn route(mut self, route: impl Into<String>) -> Output {
        self.route = Some(route.into());
        self
    }

    /// Set the key.
    pub fn key(mut self, key: impl Into<Vec<u8>>) -> Output {
        self.key = Some(key.into());
        self
    }

    /// Keep the key of `event` (no key if it has none).
    pub fn key_of(mut self, event: &Event<'_>) -> Output {
        self.key = event.key().map(<[u8]>::to_vec);
        self
    }

    /// Set the op (default upsert).
    pub fn op(mut self, op: Op) -> Output {
        self.op = op;
        self
    }

    /// Add a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Output {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Expire the record after `seconds` at sinks that support a TTL.
    pub fn ttl(mut self, seconds: u32) -> Output {
        self.ttl_seconds = Some(seconds);
        self
    }

    /// Replace the value with these bytes.
    pub fn value(mut self, value: impl Into<Vec<u8>>) -> Output {
        self.value = Some(value.into());
        self
    }

    /// The route, if set.
    pub fn route_name(&self) -> Option<&str> {
        self.route.as_deref()
    }

    /// The key, if set.
    pub fn key_bytes(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }

    /// The value, if set.
    pub fn value_bytes(&self) -> Option<&[u8]> {
        self.value.as_deref()
    }

    /// The op.
    pub fn op_kind(&self) -> Op {
        self.op
    }

    /// The headers, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.headers.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// The TTL, if set.
    pub fn ttl_seconds(&self) -> Option<u32> {
        self.ttl_seconds
    }

    pub(crate) fn write_to(&self, writer: &mut weir_contract::OutcomeWriter) {
        writer.push_output(
            weir_contract::OutputFields {
                route: self.route.as_deref(),
                key: self.key.as_deref(),
                value: self.value.as_deref(),
                op: self.op,
                ttl_seconds: self.ttl_seconds,
            },
            self.headers(),
        );
    }
}

/// What the plugin decided for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Write these outputs (one per route for a fan-out).
    Emit(Vec<Output>),
    /// Filter the event out.
    Drop,
    /// Send the event to the dead-letter sink with this reason; the rest of
    /// the batch goes on.
    Fail(String),
}

impl Outcome {
    /// Emit one output.
    pub fn emit(output: Output) -> Outcome {
        Outcome::Emit(vec![output])
    }

    /// Emit several outputs.
    pub fn emit_all(outputs: impl IntoIterator<Item = Output>) -> Outcome {
        Outcome::Emit(outputs.into_iter().collect())
    }

    /// Pass the event through unchanged (value, key, op, headers).
    pub fn pass(event: &Event<'_>) -> Outcome {
        Outcome::emit(Output::from_event(event))
    }

    /// Fail the event with `reason` (anything printable: a message, an
    /// error).
    pub fn fail(reason: impl fmt::Display) -> Outcome {
        Outcome::Fail(reason.to_string())
    }

    pub(crate) fn write_to(&self, writer: &mut weir_contract::OutcomeWriter) {
        match self {
            Outcome::Drop => writer.drop_event(),
            Outcome::Fail(reason) => writer.fail(reason),
            Outcome::Emit(outputs) => {
                writer.begin_emit();
                for output in outputs {
                    output.write_to(writer);
                }
            }
        }
    }
}

/// `Ok(outcome)` is that outcome, `Err(e)` is [`Outcome::Fail`] with `e`:
/// write the logic as a closure or function returning `Result` and use `?`.
///
/// ```
/// use weir_sdk::{Outcome, Output};
/// fn logic(raw: &[u8]) -> Result<Outcome, String> {
///     let v: weir_sdk::serde_json::Value =
///         weir_sdk::serde_json::from_slice(raw).map_err(|e| e.to_string())?;
///     Ok(Outcome::emit(Output::json(&v)))
/// }
/// assert!(matches!(Outcome::from(logic(b"{")), Outcome::Fail(_)));
/// ```
impl<E: fmt::Display> From<Result<Outcome, E>> for Outcome {
    fn from(r: Result<Outcome, E>) -> Outcome {
        r.unwrap_or_else(Outcome::fail)
    }
}
