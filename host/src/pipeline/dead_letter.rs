//! The records written to a dead-letter sink.
//!
//! A dead-letter record is the original source event (for an event a plugin
//! failed or the engine isolated as poison) or the rejected output (for an
//! output a sink refused or no sink matched), with its own headers kept and
//! `weir.dlq.*` headers added that say what happened.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::event::{Event, Header, Op, Output};

/// Every header Weir adds to a dead-letter record starts with this.
pub const DLQ_HEADER_PREFIX: &str = "weir.dlq.";

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
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
    headers.push(Header::new("weir.dlq.reason", reason.to_owned()));
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
