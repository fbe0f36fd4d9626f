//! Decoding: zero-copy batch views (plugin side) and owned outcomes (host
//! side). Every length is checked against the buffer: the host decodes what
//! an untrusted plugin wrote.

use std::fmt;

use bytes::Bytes;

use crate::flags::*;
use crate::{
    BATCH_MAGIC, EVENT_FIXED, Event, Header, OUTCOMES_MAGIC, OUTPUT_FIXED, Op, Outcome, Output,
};

/// A buffer that does not follow the layout of `wit/0.2.0/plugin.wit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Byte offset where decoding stopped.
    pub offset: usize,
    /// What was wrong there.
    pub problem: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "malformed buffer at byte {}: {}",
            self.offset, self.problem
        )
    }
}

impl std::error::Error for DecodeError {}

#[derive(Clone)]
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn err(&self, problem: impl Into<String>) -> DecodeError {
        DecodeError {
            offset: self.pos,
            problem: problem.into(),
        }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| {
                self.err(format!(
                    "{what} needs {n} bytes but {} remain",
                    self.buf.len() - self.pos
                ))
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self, what: &str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }

    fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i64(&mut self, what: &str) -> Result<i64, DecodeError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_le_bytes(a))
    }

    fn str(&mut self, n: usize, what: &str) -> Result<&'a str, DecodeError> {
        let at = self.pos;
        let b = self.take(n, what)?;
        std::str::from_utf8(b).map_err(|_| DecodeError {
            offset: at,
            problem: format!("{what} is not UTF-8"),
        })
    }

    fn opt(
        &mut self,
        present: bool,
        len: u32,
        what: &str,
    ) -> Result<Option<&'a [u8]>, DecodeError> {
        if present {
            Ok(Some(self.take(len as usize, what)?))
        } else if len != 0 {
            Err(self.err(format!("{what} is absent but has length {len}")))
        } else {
            Ok(None)
        }
    }

    fn op(&mut self) -> Result<Op, DecodeError> {
        let code = self.u8("op")?;
        Op::from_code(code).ok_or_else(|| self.err(format!("unknown op code {code}")))
    }

    /// Check `count` headers and return the bytes they occupy.
    fn headers(&mut self, count: u32) -> Result<&'a [u8], DecodeError> {
        let start = self.pos;
        for _ in 0..count {
            let k = self.u32("header name length")?;
            let v = self.u32("header value length")?;
            self.str(k as usize, "header name")?;
            self.take(v as usize, "header value")?;
        }
        Ok(&self.buf[start..self.pos])
    }

    fn magic(&mut self, expected: u32, what: &str) -> Result<u32, DecodeError> {
        let magic = self.u32("magic")?;
        if magic != expected {
            self.pos = 0;
            return Err(self.err(format!(
                "not {what} (magic {magic:#010x}, expected {expected:#010x})"
            )));
        }
        self.u32("count")
    }
}

/// Iterates the headers of an event without copying them.
#[derive(Clone, Debug)]
pub struct HeaderIter<'a> {
    data: &'a [u8],
    remaining: u32,
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = (&'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        // The region was validated when the event was decoded.
        let mut c = Cursor {
            buf: self.data,
            pos: 0,
        };
        let k = c.u32("").ok()? as usize;
        let v = c.u32("").ok()? as usize;
        let name = c.str(k, "").ok()?;
        let value = c.take(v, "").ok()?;
        self.data = &self.data[c.pos..];
        Some((name, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining as usize, Some(self.remaining as usize))
    }
}

impl ExactSizeIterator for HeaderIter<'_> {}

/// One event of an encoded batch, borrowed from the buffer.
#[derive(Clone, Debug)]
pub struct EventRef<'a> {
    /// Record key.
    pub key: Option<&'a [u8]>,
    /// Record value (JSON by convention); `None` for a tombstone.
    pub value: Option<&'a [u8]>,
    /// Previous value, where the source knows it.
    pub old_value: Option<&'a [u8]>,
    /// What happened.
    pub op: Op,
    /// Event time, ms since the Unix epoch.
    pub timestamp_ms: i64,
    /// `topic/partition/offset` or `table/shard/sequence`.
    pub origin: &'a str,
    /// Headers, in order.
    pub headers: HeaderIter<'a>,
}

impl EventRef<'_> {
    /// An owned copy.
    pub fn to_owned_event(&self) -> Event {
        Event {
            key: self.key.map(Bytes::copy_from_slice),
            value: self.value.map(Bytes::copy_from_slice),
            old_value: self.old_value.map(Bytes::copy_from_slice),
            op: self.op,
            headers: self
                .headers
                .clone()
                .map(|(k, v)| Header::new(k, Bytes::copy_from_slice(v)))
                .collect(),
            timestamp_ms: self.timestamp_ms,
            origin: self.origin.to_owned(),
        }
    }
}

/// Reads the events of an encoded batch without copying.
#[derive(Clone)]
pub struct BatchReader<'a> {
    cur: Cursor<'a>,
    remaining: u32,
}

impl<'a> BatchReader<'a> {
    /// Check the header of `buf` and prepare to read its events.
    pub fn new(buf: &'a [u8]) -> Result<Self, DecodeError> {
        let mut cur = Cursor { buf, pos: 0 };
        let remaining = cur.magic(BATCH_MAGIC, "a Weir batch")?;
        Ok(BatchReader { cur, remaining })
    }

    /// Number of events not read yet.
    pub fn remaining(&self) -> usize {
        self.remaining as usize
    }

    fn read_event(&mut self) -> Result<EventRef<'a>, DecodeError> {
        let c = &mut self.cur;
        c.take(0, "event")?;
        if c.buf.len() - c.pos < EVENT_FIXED {
            return Err(c.err("truncated event"));
        }
        let f = c.u8("flags")?;
        let op = c.op()?;
        c.take(2, "reserved")?;
        let timestamp_ms = c.i64("timestamp")?;
        let key_len = c.u32("key length")?;
        let value_len = c.u32("value length")?;
        let old_len = c.u32("old-value length")?;
        let origin_len = c.u32("origin length")?;
        let header_count = c.u32("header count")?;
        let key = c.opt(f & EVENT_KEY != 0, key_len, "key")?;
        let value = c.opt(f & EVENT_VALUE != 0, value_len, "value")?;
        let old_value = c.opt(f & EVENT_OLD_VALUE != 0, old_len, "old value")?;
        let origin = c.str(origin_len as usize, "origin")?;
        let data = c.headers(header_count)?;
        Ok(EventRef {
            key,
            value,
            old_value,
            op,
            timestamp_ms,
            origin,
            headers: HeaderIter {
                data,
                remaining: header_count,
            },
        })
    }
}

impl<'a> Iterator for BatchReader<'a> {
    type Item = Result<EventRef<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let r = self.read_event();
        if r.is_err() {
            self.remaining = 0;
        }
        Some(r)
    }
}

/// Decode a whole batch into owned events (tests, native runners).
pub fn decode_batch(buf: &[u8]) -> Result<Vec<Event>, DecodeError> {
    BatchReader::new(buf)?
        .map(|e| e.map(|e| e.to_owned_event()))
        .collect()
}

/// Decode the outcomes a plugin returned for a batch of `expected` events.
///
/// Keys, values and header values are slices of `buf`, not copies.
pub fn decode_outcomes(buf: Bytes, expected: usize) -> Result<Vec<Outcome>, DecodeError> {
    let mut c = Cursor { buf: &buf, pos: 0 };
    let count = c.magic(OUTCOMES_MAGIC, "a Weir outcome list")? as usize;
    if count != expected {
        return Err(c.err(format!(
            "{count} outcomes returned for a batch of {expected} events"
        )));
    }
    let slice = |s: &[u8]| buf.slice_ref(s);
    // Every outcome takes at least its tag byte: never reserve more than the
    // buffer can hold, whatever count the caller expects.
    let mut outcomes = Vec::with_capacity(count.min(c.buf.len() - c.pos));
    for _ in 0..count {
        let outcome = match c.u8("outcome tag")? {
            TAG_DROP => Outcome::Drop,
            TAG_FAIL => {
                let n = c.u32("reason length")?;
                Outcome::Fail(c.str(n as usize, "fail reason")?.to_owned())
            }
            TAG_EMIT => {
                let n = c.u32("output count")? as usize;
                // Bound the allocation by what the buffer can hold.
                let mut outputs = Vec::with_capacity(n.min((c.buf.len() - c.pos) / OUTPUT_FIXED));
                for _ in 0..n {
                    let f = c.u8("output flags")?;
                    let op = c.op()?;
                    c.take(2, "reserved")?;
                    let ttl = c.u32("ttl")?;
                    let route_len = c.u32("route length")?;
                    let key_len = c.u32("key length")?;
                    let value_len = c.u32("value length")?;
                    let header_count = c.u32("header count")?;
                    let route = match c.opt(f & OUTPUT_ROUTE != 0, route_len, "route")? {
                        Some(r) => Some(
                            std::str::from_utf8(r)
                                .map_err(|_| c.err("route is not UTF-8"))?
                                .to_owned(),
                        ),
                        None => None,
                    };
                    let key = c.opt(f & OUTPUT_KEY != 0, key_len, "key")?.map(slice);
                    let value = c.opt(f & OUTPUT_VALUE != 0, value_len, "value")?.map(slice);
                    let mut headers = Vec::with_capacity((header_count as usize).min(64));
                    for _ in 0..header_count {
                        let k = c.u32("header name length")?;
                        let v = c.u32("header value length")?;
                        let name = c.str(k as usize, "header name")?.to_owned();
                        let value = slice(c.take(v as usize, "header value")?);
                        headers.push(Header { key: name, value });
                    }
                    outputs.push(Output {
                        route,
                        key,
                        value,
                        op,
                        headers,
                        ttl_seconds: (f & OUTPUT_TTL != 0).then_some(ttl),
                    });
                }
                Outcome::Emit(outputs)
            }
            tag => return Err(c.err(format!("unknown outcome tag {tag}"))),
        };
        outcomes.push(outcome);
    }
    if c.pos != c.buf.len() {
        return Err(c.err(format!(
            "{} bytes after the last outcome",
            c.buf.len() - c.pos
        )));
    }
    Ok(outcomes)
}
