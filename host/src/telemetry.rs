//! OpenTelemetry tracing of pipelines, exported over OTLP/HTTP (protobuf).
//!
//! Off unless `[host.tracing] otlp_endpoint` is set. Then every sampled
//! batch is one `weir.batch` span (from the start of its read to its
//! commit) with children `weir.read`, one `weir.plugin` per plugin call,
//! one `weir.sink.write` per sink write (dead-letter writes included) and
//! `weir.commit`. An event carrying a W3C `traceparent` header gets a
//! `weir.event` span that continues the producer's trace (its parent is the
//! producer's span) and links to the batch span; every output of that event
//! leaves with a `traceparent` naming the `weir.event` span, so the trace
//! goes on downstream.
//!
//! The pipeline code only sees [`BatchTrace`] and [`StageSpan`], both of
//! which are nothing at all (`None`) when tracing is off or the batch was not
//! sampled: then no span is built and no header is read or written. Spans
//! are built with the OpenTelemetry API directly rather than through
//! `tracing` spans, because a batch span starts before its read (known to
//! be non-empty only afterwards) and its stages run on different threads.

use std::borrow::Cow;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{
    Link, Span as _, SpanContext, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider,
};
use opentelemetry::{Context, ContextGuard};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, Tracer};
use serde::Deserialize;

use crate::event::{Event, Header};

/// Span attributes, as the pipeline builds them.
pub use opentelemetry::KeyValue;

/// The W3C trace-context header read from events and written to outputs.
pub const TRACEPARENT: &str = "traceparent";

/// `[host.tracing]`: OpenTelemetry traces of the pipelines.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracingConfig {
    /// OTLP/HTTP receiver to send spans to, e.g. `"http://otel-collector:4318"`
    /// (`/v1/traces` is added unless the URL already ends with it). Unset:
    /// tracing is off and costs nothing.
    pub otlp_endpoint: Option<String>,
    /// Share of batches traced, from 0.0 (none) to 1.0 (all, the default).
    /// An event's span follows the producer's sampling decision, inside a
    /// traced batch only.
    pub sampling_ratio: f64,
    /// `service.name` of the spans.
    pub service_name: String,
    /// How long one export request may take before it is given up
    /// (its spans are then lost; pipelines never wait for exports).
    pub export_timeout_ms: u64,
}

impl Default for TracingConfig {
    fn default() -> Self {
        TracingConfig {
            otlp_endpoint: None,
            sampling_ratio: 1.0,
            service_name: "weir".to_owned(),
            export_timeout_ms: 10_000,
        }
    }
}

impl TracingConfig {
    /// What is wrong with these settings, by key, if anything.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if !(0.0..=1.0).contains(&self.sampling_ratio) {
            problems.push((
                "sampling_ratio",
                format!("must be between 0.0 and 1.0, not {}", self.sampling_ratio),
            ));
        }
        if let Some(url) = &self.otlp_endpoint
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            problems.push((
                "otlp_endpoint",
                format!("`{url}` is not an http:// or https:// URL"),
            ));
        }
        if self.export_timeout_ms == 0 {
            problems.push(("export_timeout_ms", "must be at least 1".to_owned()));
        }
        problems
    }

    /// The traces URL: the endpoint with `/v1/traces` added.
    fn traces_url(endpoint: &str) -> String {
        let base = endpoint.trim_end_matches('/');
        if base.ends_with("/v1/traces") {
            base.to_owned()
        } else {
            format!("{base}/v1/traces")
        }
    }
}

/// Why tracing could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// A setting is out of range.
    #[error("host.tracing.{key}: {message}")]
    Config {
        /// The key at fault.
        key: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The OTLP exporter could not be built.
    #[error("host.tracing: cannot set up the OTLP exporter for {url}: {error}")]
    Exporter {
        /// The traces URL.
        url: String,
        /// What the exporter said.
        error: String,
    },
    /// Tracing was already set up in this process.
    #[error("host.tracing: tracing is already set up in this process")]
    AlreadySet,
}

/// The tracer of this process, once [`init`] has run with an endpoint.
static TRACER: OnceLock<Tracer> = OnceLock::new();

/// Keeps the exporter running; [`TracingGuard::shutdown`] sends what is
/// still buffered.
#[derive(Debug)]
pub struct TracingGuard {
    provider: SdkTracerProvider,
}

impl TracingGuard {
    /// Export the spans still buffered (waiting at most `timeout`) and stop.
    pub fn shutdown(self, timeout: Duration) {
        if let Err(e) = self.provider.shutdown_with_timeout(timeout) {
            tracing::warn!(error = %e, "tracing: spans still buffered at exit may be lost");
        }
    }
}

/// Set up tracing for this process. `Ok(None)` when `otlp_endpoint` is unset.
/// Call it outside any async runtime (the HTTP client has one of its own).
pub fn init(config: &TracingConfig) -> Result<Option<TracingGuard>, TelemetryError> {
    if let Some((key, message)) = config.problems().into_iter().next() {
        return Err(TelemetryError::Config { key, message });
    }
    let Some(endpoint) = &config.otlp_endpoint else {
        return Ok(None);
    };
    let url = TracingConfig::traces_url(endpoint);
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url.clone())
        .with_timeout(Duration::from_millis(config.export_timeout_ms))
        .build()
        .map_err(|e| TelemetryError::Exporter {
            url: url.clone(),
            error: e.to_string(),
        })?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        // Batch spans are roots: the ratio decides. Their children follow
        // them; an event span follows the producer's decision.
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.sampling_ratio,
        ))))
        .with_resource(
            Resource::builder()
                .with_service_name(config.service_name.clone())
                .build(),
        )
        .build();
    TRACER
        .set(provider.tracer("weir"))
        .map_err(|_| TelemetryError::AlreadySet)?;
    tracing::info!(endpoint = %url, sampling_ratio = config.sampling_ratio, "tracing to OTLP");
    Ok(Some(TracingGuard { provider }))
}

/// Event headers as the propagator reads them (UTF-8 values only).
struct HeaderReader<'a>(&'a [Header]);

impl Extractor for HeaderReader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|h| h.key.eq_ignore_ascii_case(key))
            .and_then(|h| std::str::from_utf8(&h.value).ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|h| h.key.as_str()).collect()
    }
}

/// Output headers as the propagator writes them: a header it sets replaces
/// any of the same name.
struct HeaderWriter<'a>(&'a mut Vec<Header>);

impl Injector for HeaderWriter<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.retain(|h| !h.key.eq_ignore_ascii_case(key));
        self.0.push(Header::new(key.to_owned(), value));
    }
}

/// The spans of one sampled batch; `None` everywhere it is not traced.
pub struct BatchTrace {
    tracer: &'static Tracer,
    batch: Context,
    /// `(event index, context of its weir.event span)`, by index.
    events: Vec<(usize, Context)>,
}

impl std::fmt::Debug for BatchTrace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchTrace")
            .field("span", self.batch.span().span_context())
            .field("events", &self.events.len())
            .finish()
    }
}

/// What a batch came to, recorded on its span when it is committed.
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchOutcome {
    /// Outputs written to sinks.
    pub outputs: usize,
    /// Events filtered out.
    pub dropped: usize,
    /// Events a plugin failed.
    pub failed: usize,
    /// Records written to the dead-letter sink.
    pub dead_lettered: usize,
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl BatchTrace {
    /// Spans for a batch of `events` of `pipeline` whose read started at
    /// `read_started`: `None` when tracing is off or the batch is not sampled.
    pub fn start(pipeline: &str, read_started: SystemTime, events: &[Event]) -> Option<BatchTrace> {
        let tracer = TRACER.get()?;
        let pipeline_attr = KeyValue::new("weir.pipeline", pipeline.to_owned());
        let span = tracer
            .span_builder("weir.batch")
            .with_kind(SpanKind::Consumer)
            .with_start_time(read_started)
            .with_attributes([
                pipeline_attr.clone(),
                KeyValue::new("weir.batch.events", count(events.len())),
            ])
            .start_with_context(tracer, &Context::new());
        if !span.span_context().is_sampled() {
            return None;
        }
        let batch = Context::new().with_span(span);
        tracer
            .span_builder("weir.read")
            .with_start_time(read_started)
            .with_attributes([KeyValue::new("weir.events", count(events.len()))])
            .start_with_context(tracer, &batch)
            .end();

        let propagator = TraceContextPropagator::new();
        let batch_link = batch.span().span_context().clone();
        let mut event_spans = Vec::new();
        for (index, event) in events.iter().enumerate() {
            if !event
                .headers
                .iter()
                .any(|h| h.key.eq_ignore_ascii_case(TRACEPARENT))
            {
                continue;
            }
            let producer = propagator.extract(&HeaderReader(&event.headers));
            if !producer.span().span_context().is_valid() {
                continue;
            }
            let span = tracer
                .span_builder("weir.event")
                .with_kind(SpanKind::Consumer)
                .with_links(vec![Link::with_context(batch_link.clone())])
                .with_attributes([
                    pipeline_attr.clone(),
                    KeyValue::new("weir.origin", event.origin.clone()),
                ])
                .start_with_context(tracer, &producer);
            event_spans.push((index, producer.with_span(span)));
        }
        Some(BatchTrace {
            tracer,
            batch,
            events: event_spans,
        })
    }

    /// The batch's span context (for tests and logs).
    pub fn span_context(&self) -> SpanContext {
        self.batch.span().span_context().clone()
    }

    /// Make the batch span the current one on this thread (until the guard
    /// is dropped), so that [`current_child`] spans hang under it.
    pub fn attach(&self) -> ContextGuard {
        self.batch.clone().attach()
    }

    /// A child span of the batch, ended when dropped.
    pub fn child(&self, name: &'static str, attributes: Vec<KeyValue>) -> StageSpan {
        StageSpan(Some(
            self.tracer
                .span_builder(name)
                .with_attributes(attributes)
                .start_with_context(self.tracer, &self.batch),
        ))
    }

    /// Set `traceparent` (and `tracestate`, when the producer sent one) on
    /// the headers of an output of source event `event`, naming that event's
    /// span; nothing when the event carried no trace context.
    pub fn propagate(&self, event: usize, headers: &mut Vec<Header>) {
        if let Ok(i) = self.events.binary_search_by_key(&event, |(e, _)| *e) {
            TraceContextPropagator::new()
                .inject_context(&self.events[i].1, &mut HeaderWriter(headers));
        }
    }

    /// The batch is committed: record what it came to and end its spans.
    pub fn finish(self, outcome: BatchOutcome) {
        for (_, cx) in &self.events {
            cx.span().end();
        }
        let span = self.batch.span();
        span.set_attributes([
            KeyValue::new("weir.batch.outputs", count(outcome.outputs)),
            KeyValue::new("weir.batch.dropped", count(outcome.dropped)),
            KeyValue::new("weir.batch.failed", count(outcome.failed)),
            KeyValue::new("weir.batch.dead_lettered", count(outcome.dead_lettered)),
        ]);
        span.end();
    }
}

/// A child span of the current batch, or nothing; ended when dropped.
#[derive(Debug)]
pub struct StageSpan(Option<opentelemetry_sdk::trace::Span>);

impl StageSpan {
    /// No span (tracing off or the batch not sampled).
    pub fn none() -> StageSpan {
        StageSpan(None)
    }

    /// Whether this is a recorded span (attributes worth computing).
    pub fn is_recording(&self) -> bool {
        self.0.as_ref().is_some_and(|s| s.is_recording())
    }

    /// Set a count attribute.
    pub fn set_count(&mut self, key: &'static str, n: usize) {
        if let Some(span) = &mut self.0 {
            span.set_attribute(KeyValue::new(key, count(n)));
        }
    }

    /// Mark the span failed with `message`.
    pub fn fail(&mut self, message: impl std::fmt::Display) {
        if let Some(span) = &mut self.0 {
            span.set_status(Status::Error {
                description: Cow::Owned(message.to_string()),
            });
        }
    }
}

/// A child of the span current on this thread (see [`BatchTrace::attach`]),
/// or nothing when no sampled batch is current.
pub fn current_child(name: &'static str, attributes: impl FnOnce() -> Vec<KeyValue>) -> StageSpan {
    let Some(tracer) = TRACER.get() else {
        return StageSpan::none();
    };
    let cx = Context::current();
    if !cx.span().span_context().is_sampled() {
        return StageSpan::none();
    }
    StageSpan(Some(
        tracer
            .span_builder(name)
            .with_attributes(attributes())
            .start_with_context(tracer, &cx),
    ))
}

/// A child span of `trace`, or nothing when there is no trace.
pub fn child_of(
    trace: Option<&BatchTrace>,
    name: &'static str,
    attributes: impl FnOnce() -> Vec<KeyValue>,
) -> StageSpan {
    match trace {
        Some(t) => t.child(name, attributes()),
        None => StageSpan::none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_path_is_added_once() {
        assert_eq!(
            TracingConfig::traces_url("http://c:4318"),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            TracingConfig::traces_url("http://c:4318/"),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            TracingConfig::traces_url("http://c:4318/v1/traces"),
            "http://c:4318/v1/traces"
        );
    }

    #[test]
    fn out_of_range_settings_are_named() {
        let config = TracingConfig {
            sampling_ratio: 1.5,
            otlp_endpoint: Some("collector:4318".into()),
            ..TracingConfig::default()
        };
        let keys: Vec<_> = config.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["sampling_ratio", "otlp_endpoint"]);
        assert!(TracingConfig::default().problems().is_empty());
    }

    /// `traceparent` and `tracestate` come from topic data: whatever they
    /// hold, reading them gives a context or none, never a panic.
    #[test]
    fn hostile_trace_headers_are_read_without_a_panic() {
        let valid = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let parents: Vec<Vec<u8>> = vec![
            valid.into(),
            b"".to_vec(),
            b"-".repeat(10_000),
            "00-é0f7651916cd43dd8448eb211c8031-b7ad6b7169203331-01".into(),
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra".into(),
            "00-00000000000000000000000000000000-0000000000000000-01".into(),
            "0x-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-zz".into(),
            vec![0xff, 0xfe, b'-', 0x80],
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
                .repeat(1000)
                .into(),
        ];
        let states: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            "a=b,c=d".into(),
            "=,==,é=ü,,,k=".into(),
            format!("{}=x", "k".repeat(100_000)).into(),
            ",".repeat(50_000).into(),
            vec![0xc3, 0x28],
        ];
        let propagator = TraceContextPropagator::new();
        for parent in &parents {
            for state in &states {
                let headers = vec![
                    Header::new(TRACEPARENT, parent.clone()),
                    Header::new("tracestate", state.clone()),
                ];
                let cx = propagator.extract(&HeaderReader(&headers));
                let span = cx.span();
                if parent.as_slice() == valid.as_bytes() {
                    assert!(span.span_context().is_valid());
                }
            }
        }
    }

    #[test]
    fn a_traceparent_set_on_an_output_replaces_the_old_one() {
        let mut headers = vec![Header::new("TraceParent", "old"), Header::new("k", "v")];
        HeaderWriter(&mut headers).set(TRACEPARENT, "new".into());
        assert_eq!(headers.len(), 2);
        assert_eq!(headers[1].key, TRACEPARENT);
        assert_eq!(&headers[1].value[..], b"new");
    }
}
