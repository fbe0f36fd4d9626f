//! What `weir run` writes to its log: human-readable lines or one flat JSON
//! object per line, and summaries of warnings that would otherwise repeat
//! once per event.
//!
//! A JSON line holds `timestamp`, `level`, `target`, `message` and the
//! event's fields side by side (not nested under `fields`), numbers and
//! booleans as JSON numbers and booleans, and a field recorded with `?` whose
//! debug form is a list (`topics = ?topics`) as a JSON array. Log
//! aggregators index such lines without a parsing rule.
//!
//! [`WarningSummary`] keeps a log readable when something goes wrong for
//! many events at once (a bad deploy dead-letters every event): the first
//! occurrence is logged at once, the following ones are counted and logged
//! as one line with the count at most once per interval, and what is still
//! counted when the pipeline stops is logged then.

use std::collections::BTreeMap;
use std::fmt;
use std::io::IsTerminal;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::secrets::RedactingStderr;

/// Log line format (`host.log_format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The format logging was set up with, once it was.
static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Whether log lines are JSON: then everything `weir run` reports goes
/// through the log, so that stderr holds JSON lines only.
pub fn is_json() -> bool {
    FORMAT.get() == Some(&LogFormat::Json)
}

/// Set up logging once for the process: `RUST_LOG` filters (default
/// `info`), lines to stderr with secrets redacted. Later calls change
/// nothing.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactingStderr::default);
    let installed = match format {
        LogFormat::Json => builder.event_format(FlatJson).try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
    if installed.is_ok() {
        let _ = FORMAT.set(format);
    }
}

/// One flat JSON object per event.
#[derive(Debug, Clone, Copy, Default)]
pub struct FlatJson;

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        writer.write_str(&flat_json_line(event))?;
        writer.write_char('\n')
    }
}

/// The JSON object of `event`, without the newline.
fn flat_json_line(event: &Event<'_>) -> String {
    let mut object = Map::new();
    event.record(&mut FieldsVisitor(&mut object));
    let mut timestamp = String::new();
    let _ = tracing_subscriber::fmt::time::SystemTime.format_time(&mut Writer::new(&mut timestamp));
    let meta = event.metadata();
    // The fixed keys win over an event field of the same name.
    object.insert("timestamp".into(), Value::String(timestamp));
    object.insert("level".into(), Value::String(meta.level().to_string()));
    object.insert("target".into(), Value::String(meta.target().to_owned()));
    Value::Object(object).to_string()
}

/// Records an event's fields as JSON values of one object.
struct FieldsVisitor<'a>(&'a mut Map<String, Value>);

impl FieldsVisitor<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        self.0.insert(field.name().to_owned(), value);
    }
}

impl Visit for FieldsVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        // A list recorded with `?` (`["a", "b"]`, `[1, 2]`) is written as
        // the array it is; any other value as its text.
        if field.name() != "message"
            && text.starts_with('[')
            && let Ok(array @ Value::Array(_)) = serde_json::from_str::<Value>(&text)
        {
            self.put(field, array);
            return;
        }
        self.put(field, Value::String(text));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_owned()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::String(value.to_string()));
    }
}

/// How many distinct reasons a summary line lists; the rest are counted
/// under `(other reasons)`.
const MAX_REASONS: usize = 8;

/// The longest reason a summary line shows, in bytes.
const MAX_REASON_BYTES: usize = 200;

/// A warning that can happen once per event (a dead letter), logged as the
/// first occurrence plus, at most once per interval, one line with the
/// count of the rest, their reasons and the origins of the first and last.
#[derive(Debug)]
pub struct WarningSummary {
    pipeline: String,
    every: Duration,
    window: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    /// When the last line was logged.
    logged: Option<Instant>,
    count: u64,
    reasons: BTreeMap<String, u64>,
    first_origin: String,
    last_origin: String,
}

fn short(reason: &str) -> String {
    if reason.len() <= MAX_REASON_BYTES {
        return reason.to_owned();
    }
    let mut end = MAX_REASON_BYTES;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &reason[..end])
}

impl WarningSummary {
    /// Dead letters of `pipeline`, summarised at most once per `every`.
    pub fn dead_letters(pipeline: &str, every: Duration) -> WarningSummary {
        WarningSummary {
            pipeline: pipeline.to_owned(),
            every,
            window: Mutex::new(Window::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        // A panic while logging leaves nothing half-done worth refusing.
        self.window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// One more occurrence, for the event at `origin`.
    pub fn record(&self, origin: &str, reason: &str) {
        let mut w = self.lock();
        if w.count == 0 {
            w.first_origin = origin.to_owned();
        }
        w.count += 1;
        w.last_origin = origin.to_owned();
        let reason = short(reason);
        if w.reasons.len() < MAX_REASONS || w.reasons.contains_key(&reason) {
            *w.reasons.entry(reason).or_default() += 1;
        } else {
            *w.reasons.entry("(other reasons)".to_owned()).or_default() += 1;
        }
        self.log_if_due(&mut w);
    }

    /// Log what was counted if the interval has passed since the last line.
    pub fn tick(&self) {
        let mut w = self.lock();
        self.log_if_due(&mut w);
    }

    /// Log what was counted, whatever the time (the pipeline stops).
    pub fn flush(&self) {
        let mut w = self.lock();
        self.log(&mut w);
    }

    fn log_if_due(&self, w: &mut Window) {
        if w.logged.is_none_or(|at| at.elapsed() >= self.every) {
            self.log(w);
        }
    }

    fn log(&self, w: &mut Window) {
        if w.count == 0 {
            return;
        }
        let reasons: Vec<String> = w
            .reasons
            .iter()
            .map(|(reason, n)| format!("{reason} ({n})"))
            .collect();
        if w.count == 1 {
            tracing::warn!(
                pipeline = %self.pipeline,
                dead_lettered = 1u64,
                origin = %w.first_origin,
                reason = %w.reasons.keys().next().map(String::as_str).unwrap_or_default(),
                "dead-lettered an event"
            );
        } else {
            tracing::warn!(
                pipeline = %self.pipeline,
                dead_lettered = w.count,
                first_origin = %w.first_origin,
                last_origin = %w.last_origin,
                reasons = ?reasons,
                "dead-lettered {} events",
                w.count
            );
        }
        w.count = 0;
        w.reasons.clear();
        w.logged = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_bounded_in_number_and_length() {
        let summary = WarningSummary::dead_letters("p", Duration::from_secs(3600));
        summary.record("t/0/0", "first");
        for i in 0..100 {
            summary.record(
                &format!("t/0/{i}"),
                &format!("reason {i} {}", "x".repeat(500)),
            );
        }
        let w = summary.lock();
        assert_eq!(w.count, 100);
        assert_eq!(w.reasons.len(), MAX_REASONS + 1);
        assert_eq!(w.reasons["(other reasons)"], 100 - MAX_REASONS as u64);
        assert!(w.reasons.keys().all(|r| r.len() <= MAX_REASON_BYTES + 3));
        assert_eq!(w.first_origin, "t/0/0");
        assert_eq!(w.last_origin, "t/0/99");
    }
}
