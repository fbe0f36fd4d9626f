//! The records written to a dead-letter sink.
//!
//! A dead-letter record is the original source event (for an event a plugin
//! failed or the engine isolated as poison) or the rejected output (for an
//! output a sink refused or no sink matched), with its own headers kept and
//! `weir.dlq.*` headers added that say what happened.
//!
//! A dead letter must never be refused for its size forever (the pipeline
//! cannot commit past an event it could not dead-letter): the reason is cut
//! to [`MAX_REASON_BYTES`] always, and a record the dead-letter sink still
//! refuses is written again [`shrunk`]: without its value and the event's
//! own headers, with the origin (topic/partition/offset or
//! table/shard/sequence) kept and a sha256 digest and the size of what was
//! left out, so the original can be found at the source.

use crate::event::{Event, Header, Op, Output};

/// Every header Weir adds to a dead-letter record starts with this.
pub const DLQ_HEADER_PREFIX: &str = "weir.dlq.";

fn now_ms() -> i64 {
    crate::calendar::now_unix_ms()
}

/// Longest `weir.dlq.reason` header, in bytes; a longer reason is cut (at
/// a character boundary) and says how long it was.
pub const MAX_REASON_BYTES: usize = 4096;

/// Longest key a [`shrunk`] record keeps, in bytes.
pub const MAX_SHRUNK_KEY_BYTES: usize = 1024;

/// `reason` cut to [`MAX_REASON_BYTES`].
fn cap_reason(reason: &str) -> String {
    if reason.len() <= MAX_REASON_BYTES {
        return reason.to_owned();
    }
    let mut end = MAX_REASON_BYTES;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… (cut; {} bytes in all)", &reason[..end], reason.len())
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// `record` made small enough for any sink: the value and the headers not
/// added by Weir are left out (their sha256 and size are added as
/// `weir.dlq.value_sha256`, `weir.dlq.value_bytes`,
/// `weir.dlq.headers_dropped`), a key longer than [`MAX_SHRUNK_KEY_BYTES`]
/// likewise (`weir.dlq.key_sha256`, `weir.dlq.key_bytes`), and
/// `weir.dlq.truncated = "true"` says so. The origin and reason headers stay.
pub fn shrunk(record: &Output) -> Output {
    let mut headers: Vec<Header> = record
        .headers
        .iter()
        .filter(|h| h.key.starts_with(DLQ_HEADER_PREFIX) && h.key.len() <= 256)
        .cloned()
        .collect();
    let dropped = record.headers.len() - headers.len();
    headers.push(Header::new("weir.dlq.truncated", "true"));
    if let Some(value) = &record.value {
        headers.push(Header::new("weir.dlq.value_sha256", sha256_hex(value)));
        headers.push(Header::new("weir.dlq.value_bytes", value.len().to_string()));
    }
    headers.push(Header::new("weir.dlq.headers_dropped", dropped.to_string()));
    let key = match &record.key {
        Some(key) if key.len() > MAX_SHRUNK_KEY_BYTES => {
            headers.push(Header::new("weir.dlq.key_sha256", sha256_hex(key)));
            headers.push(Header::new("weir.dlq.key_bytes", key.len().to_string()));
            None
        }
        key => key.clone(),
    };
    Output {
        route: None,
        key,
        value: None,
        op: Op::Insert,
        headers,
        ttl_seconds: None,
    }
}

fn dlq_headers(
    mut headers: Vec<Header>,
    pipeline: &str,
    stage: (&str, &str),
    reason: &str,
    origin: &str,
) -> Vec<Header> {
    let (kind, name) = stage;
    headers.push(Header::new("weir.dlq.pipeline", pipeline.to_owned()));
    headers.push(Header::new(
        format!("{DLQ_HEADER_PREFIX}{kind}"),
        name.to_owned(),
    ));
    headers.push(Header::new("weir.dlq.reason", cap_reason(reason)));
    headers.push(Header::new("weir.dlq.origin", origin.to_owned()));
    headers.push(Header::new("weir.dlq.time_ms", now_ms().to_string()));
    headers
}

/// The record for a source event that `plugin` failed with `reason`.
pub fn dead_letter_for_event(event: &Event, pipeline: &str, plugin: &str, reason: &str) -> Output {
    Output {
        route: None,
        key: event.key.clone(),
        value: event.value.clone(),
        op: Op::Insert,
        headers: dlq_headers(
            event.headers.clone(),
            pipeline,
            ("plugin", plugin),
            reason,
            &event.origin,
        ),
        ttl_seconds: None,
    }
}

/// The record for an output that sink `sink` rejected (or, with sink
/// `"(router)"`, that no sink matched), descended from `source`.
pub fn dead_letter_for_output(
    output: &Output,
    source: &Event,
    pipeline: &str,
    sink: &str,
    reason: &str,
) -> Output {
    let mut headers = output.headers.clone();
    if let Some(route) = &output.route {
        headers.push(Header::new("weir.dlq.route", route.clone()));
    }
    headers.push(Header::new("weir.dlq.op", output.op.as_str()));
    Output {
        route: None,
        key: output.key.clone(),
        value: output.value.clone(),
        op: Op::Insert,
        headers: dlq_headers(headers, pipeline, ("sink", sink), reason, &source.origin),
        ttl_seconds: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_REASON_BYTES);
        let cut = cap_reason(&long);
        assert!(cut.len() < MAX_REASON_BYTES + 64, "{}", cut.len());
        assert!(cut.ends_with(&format!("(cut; {} bytes in all)", long.len())));
        assert_eq!(cap_reason("short"), "short");
    }

    #[test]
    fn a_shrunk_record_keeps_the_origin_and_digests() {
        let event = Event {
            key: Some(vec![b'k'; 2000].into()),
            value: Some(vec![b'v'; 10_000_000].into()),
            headers: vec![Header::new("big", vec![0u8; 100_000])],
            origin: "t/0/42".into(),
            ..Event::default()
        };
        let record = dead_letter_for_event(&event, "p", "plug", "why");
        let small = shrunk(&record);
        assert_eq!(small.value, None);
        assert_eq!(small.key, None);
        let header = |name: &str| {
            small
                .headers
                .iter()
                .find(|h| h.key == name)
                .map(|h| String::from_utf8_lossy(&h.value).into_owned())
        };
        assert_eq!(header("weir.dlq.origin").as_deref(), Some("t/0/42"));
        assert_eq!(header("weir.dlq.reason").as_deref(), Some("why"));
        assert_eq!(header("weir.dlq.value_bytes").as_deref(), Some("10000000"));
        assert_eq!(
            header("weir.dlq.value_sha256"),
            Some(sha256_hex(&vec![b'v'; 10_000_000]))
        );
        assert_eq!(header("weir.dlq.key_bytes").as_deref(), Some("2000"));
        assert_eq!(header("weir.dlq.headers_dropped").as_deref(), Some("1"));
        assert_eq!(header("big"), None);
    }
}
