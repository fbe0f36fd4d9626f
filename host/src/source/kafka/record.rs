//! A Kafka message as an [`Event`], whatever bytes it carries.
//!
//! Keys, values and header values are opaque bytes and cross as they are.
//! Header names are the one part that must be text (the contract's header
//! names are strings), and rdkafka's own accessors (`Headers::try_get`,
//! `Headers::get`, `Headers::iter`) panic on a name that is not UTF-8 and
//! `get` also on an index it cannot read — a record anyone can produce.
//! So the headers are read here through librdkafka's C API directly: a
//! name that is not UTF-8 makes the event *unreadable* (it is dead-lettered
//! with the reason, its name written lossily), never a panic. A header
//! without a value (Kafka's null) becomes an empty value.

use std::ffi::CStr;

use bytes::Bytes;
use rdkafka::bindings as rd;
use rdkafka::message::{BorrowedMessage, Message};

use crate::event::{Event, Header, Op};

/// The event `msg` carries, and why it cannot be given to plugins as it is
/// (`None`: it can).
pub(super) fn to_event(msg: &BorrowedMessage<'_>, now_ms: i64) -> (Event, Option<String>) {
    let (headers, problem) = headers(msg);
    let value = msg.payload().map(Bytes::copy_from_slice);
    let event = Event {
        key: msg.key().map(Bytes::copy_from_slice),
        op: if value.is_some() {
            Op::Insert
        } else {
            Op::Delete
        },
        value,
        old_value: None,
        headers,
        timestamp_ms: msg.timestamp().to_millis().unwrap_or(now_ms),
        origin: origin(msg.topic(), msg.partition(), msg.offset()),
    };
    (event, problem)
}

/// `topic/partition/offset`, built in one exactly sized allocation (this
/// runs once per record; `format!` reallocated and went through the
/// formatting machinery).
fn origin(topic: &str, partition: i32, offset: i64) -> String {
    let mut p = itoa::Buffer::new();
    let mut o = itoa::Buffer::new();
    let (p, o) = (p.format(partition), o.format(offset));
    let mut origin = String::with_capacity(topic.len() + p.len() + o.len() + 2);
    origin.push_str(topic);
    origin.push('/');
    origin.push_str(p);
    origin.push('/');
    origin.push_str(o);
    origin
}

/// The headers of `msg`, and the first problem met reading them.
fn headers(msg: &BorrowedMessage<'_>) -> (Vec<Header>, Option<String>) {
    let mut hdrs: *mut rd::rd_kafka_headers_t = std::ptr::null_mut();
    // SAFETY: `msg.ptr()` is the live message `msg` borrows; librdkafka
    // parses its headers on demand and keeps them owned by the message, so
    // `hdrs` is valid for as long as `msg` is borrowed here.
    let err = unsafe { rd::rd_kafka_message_headers(msg.ptr(), &raw mut hdrs) };
    if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || hdrs.is_null() {
        // `_NOENT`: no headers. Any other code means librdkafka could not
        // parse them; the message itself is still whole.
        let problem = (err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__NOENT)
            .then(|| format!("the record's headers cannot be read (librdkafka: {err:?})"));
        return (Vec::new(), problem);
    }
    // SAFETY: `hdrs` is the valid header list obtained above.
    let count = unsafe { rd::rd_kafka_header_cnt(hdrs) };
    let mut out = Vec::with_capacity(count);
    let mut problem = None;
    for idx in 0..count {
        let mut name: *const std::ffi::c_char = std::ptr::null();
        let mut value: *const std::ffi::c_void = std::ptr::null();
        let mut size: usize = 0;
        // SAFETY: `hdrs` is valid, `idx < count`, and the out-pointers point
        // at locals; librdkafka writes pointers into the list it owns.
        let err = unsafe {
            rd::rd_kafka_header_get_all(hdrs, idx, &raw mut name, &raw mut value, &raw mut size)
        };
        if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
            problem.get_or_insert_with(|| {
                format!("header #{idx} cannot be read (librdkafka: {err:?})")
            });
            continue;
        }
        // SAFETY: librdkafka stores every header name NUL-terminated.
        let name = unsafe { CStr::from_ptr(name) }.to_bytes();
        let value = if value.is_null() {
            Bytes::new()
        } else {
            // SAFETY: `value` points at `size` bytes owned by the list.
            Bytes::copy_from_slice(unsafe { std::slice::from_raw_parts(value.cast::<u8>(), size) })
        };
        let key = match std::str::from_utf8(name) {
            Ok(key) => key.to_owned(),
            Err(e) => {
                problem.get_or_insert_with(|| {
                    format!(
                        "header #{idx} has a name that is not UTF-8 ({e}; hex {})",
                        hex::encode(&name[..name.len().min(64)])
                    )
                });
                String::from_utf8_lossy(name).into_owned()
            }
        };
        out.push(Header { key, value });
    }
    (out, problem)
}
