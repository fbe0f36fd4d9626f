//! Encoding: batches (host side) and outcomes (plugin side).

use crate::flags::*;
use crate::{BATCH_MAGIC, Event, OUTCOMES_MAGIC, Op, Outcome};

fn put_u32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_le_bytes());
}

fn patch_u32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Length of a field as the u32 the layout stores.
///
/// Fields are bounded far below 4 GiB by the plugin memory cap and the
/// sources' message size limits; saturating keeps the encoder panic-free and
/// the decoder then reports the buffer as malformed.
fn len32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

fn opt_len(field: Option<&[u8]>) -> u32 {
    field.map_or(0, |f| len32(f.len()))
}

/// Encode `events` as one batch into `buf`, replacing its contents.
///
/// The buffer is reused between batches so that steady state allocates
/// nothing.
pub fn encode_batch(events: &[Event], buf: &mut Vec<u8>) {
    buf.clear();
    put_u32(buf, BATCH_MAGIC);
    put_u32(buf, len32(events.len()));
    for ev in events {
        let mut f = 0;
        if ev.key.is_some() {
            f |= EVENT_KEY;
        }
        if ev.value.is_some() {
            f |= EVENT_VALUE;
        }
        if ev.old_value.is_some() {
            f |= EVENT_OLD_VALUE;
        }
        buf.push(f);
        buf.push(ev.op.code());
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(&ev.timestamp_ms.to_le_bytes());
        put_u32(buf, opt_len(ev.key.as_deref()));
        put_u32(buf, opt_len(ev.value.as_deref()));
        put_u32(buf, opt_len(ev.old_value.as_deref()));
        put_u32(buf, len32(ev.origin.len()));
        put_u32(buf, len32(ev.headers.len()));
        for field in [&ev.key, &ev.value, &ev.old_value].into_iter().flatten() {
            buf.extend_from_slice(field);
        }
        buf.extend_from_slice(ev.origin.as_bytes());
        for h in &ev.headers {
            put_u32(buf, len32(h.key.len()));
            put_u32(buf, len32(h.value.len()));
            buf.extend_from_slice(h.key.as_bytes());
            buf.extend_from_slice(&h.value);
        }
    }
}

/// The fields of one output, borrowed, for [`OutcomeWriter::push_output`].
#[derive(Debug, Clone, Copy, Default)]
pub struct OutputFields<'a> {
    /// Sink name; `None` for the pipeline's default route.
    pub route: Option<&'a str>,
    /// Record key.
    pub key: Option<&'a [u8]>,
    /// Record value.
    pub value: Option<&'a [u8]>,
    /// Write kind.
    pub op: Op,
    /// Time to live at the sink.
    pub ttl_seconds: Option<u32>,
}

/// Appends outcomes to a buffer in the layout of `wit/0.2.0/plugin.wit`.
///
/// The plugin side keeps one writer for its lifetime and calls
/// [`OutcomeWriter::reset`] per batch, so steady state allocates nothing.
#[derive(Debug, Default)]
pub struct OutcomeWriter {
    buf: Vec<u8>,
    outcomes: u32,
    /// Where the output count of the emit being written sits, and its value.
    open_emit: Option<(usize, u32)>,
}

impl OutcomeWriter {
    /// An empty writer, ready for the first outcome.
    pub fn new() -> Self {
        let mut w = OutcomeWriter::default();
        w.reset();
        w
    }

    /// An empty writer with room for `capacity` bytes, for a caller that
    /// hands the buffer over with [`OutcomeWriter::into_bytes`] after each
    /// batch and knows roughly how large the next one will be.
    pub fn with_capacity(capacity: usize) -> Self {
        let mut w = OutcomeWriter {
            buf: Vec::with_capacity(capacity),
            ..OutcomeWriter::default()
        };
        w.reset();
        w
    }

    /// Forget everything written and start a new outcome list.
    pub fn reset(&mut self) {
        self.buf.clear();
        put_u32(&mut self.buf, OUTCOMES_MAGIC);
        put_u32(&mut self.buf, 0);
        self.outcomes = 0;
        self.open_emit = None;
    }

    fn close_emit(&mut self) {
        if let Some((at, n)) = self.open_emit.take() {
            patch_u32(&mut self.buf, at, n);
        }
    }

    /// Outcome `drop` for the next event.
    pub fn drop_event(&mut self) {
        self.close_emit();
        self.buf.push(TAG_DROP);
        self.outcomes += 1;
    }

    /// Outcome `fail(reason)` for the next event.
    pub fn fail(&mut self, reason: &str) {
        self.close_emit();
        self.buf.push(TAG_FAIL);
        put_u32(&mut self.buf, len32(reason.len()));
        self.buf.extend_from_slice(reason.as_bytes());
        self.outcomes += 1;
    }

    /// Start outcome `emit` for the next event; add its outputs with
    /// [`OutcomeWriter::push_output`].
    pub fn begin_emit(&mut self) {
        self.close_emit();
        self.buf.push(TAG_EMIT);
        let at = self.buf.len();
        put_u32(&mut self.buf, 0);
        self.open_emit = Some((at, 0));
        self.outcomes += 1;
    }

    /// Add an output to the emit begun last.
    ///
    /// # Panics
    /// If no emit was begun since the last other outcome: a bug in the
    /// caller, not a data error.
    pub fn push_output<'h>(
        &mut self,
        fields: OutputFields<'_>,
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    ) {
        let Some((_, n)) = self.open_emit.as_mut() else {
            panic!("OutcomeWriter::push_output called outside an emit");
        };
        *n += 1;
        let buf = &mut self.buf;
        let mut f = 0;
        if fields.route.is_some() {
            f |= OUTPUT_ROUTE;
        }
        if fields.key.is_some() {
            f |= OUTPUT_KEY;
        }
        if fields.value.is_some() {
            f |= OUTPUT_VALUE;
        }
        if fields.ttl_seconds.is_some() {
            f |= OUTPUT_TTL;
        }
        buf.push(f);
        buf.push(fields.op.code());
        buf.extend_from_slice(&[0, 0]);
        put_u32(buf, fields.ttl_seconds.unwrap_or(0));
        put_u32(buf, opt_len(fields.route.map(str::as_bytes)));
        put_u32(buf, opt_len(fields.key));
        put_u32(buf, opt_len(fields.value));
        let header_count_at = buf.len();
        put_u32(buf, 0);
        for field in [fields.route.map(str::as_bytes), fields.key, fields.value]
            .into_iter()
            .flatten()
        {
            buf.extend_from_slice(field);
        }
        let mut headers_written = 0u32;
        for (k, v) in headers {
            put_u32(buf, len32(k.len()));
            put_u32(buf, len32(v.len()));
            buf.extend_from_slice(k.as_bytes());
            buf.extend_from_slice(v);
            headers_written += 1;
        }
        patch_u32(buf, header_count_at, headers_written);
    }

    /// Number of outcomes written since the last reset.
    pub fn outcome_count(&self) -> u32 {
        self.outcomes
    }

    /// Finish the list and return the encoded bytes.
    pub fn finish(&mut self) -> &[u8] {
        self.close_emit();
        patch_u32(&mut self.buf, 4, self.outcomes);
        &self.buf
    }

    /// Finish the list and hand over the buffer.
    pub fn into_bytes(mut self) -> Vec<u8> {
        self.finish();
        self.buf
    }
}

/// Encode owned outcomes (for tests and native runners).
pub fn encode_outcomes(outcomes: &[Outcome]) -> Vec<u8> {
    let mut w = OutcomeWriter::new();
    for o in outcomes {
        match o {
            Outcome::Drop => w.drop_event(),
            Outcome::Fail(reason) => w.fail(reason),
            Outcome::Emit(outputs) => {
                w.begin_emit();
                for out in outputs {
                    w.push_output(
                        OutputFields {
                            route: out.route.as_deref(),
                            key: out.key.as_deref(),
                            value: out.value.as_deref(),
                            op: out.op,
                            ttl_seconds: out.ttl_seconds,
                        },
                        out.headers.iter().map(|h| (h.key.as_str(), &h.value[..])),
                    );
                }
            }
        }
    }
    w.into_bytes()
}
