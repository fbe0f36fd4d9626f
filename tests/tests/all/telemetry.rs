//! Tracing and logs of the real `weir run` binary, reading a real topic of
//! the Kafka-compatible broker (`scripts/services start kafka`):
//! - spans reach an OTLP/HTTP receiver started by the test (built on
//!   `opentelemetry-proto`): names, parentage, attributes; an event carrying
//!   a `traceparent` gets a span in the producer's trace, linked to its
//!   batch, and its outputs carry a `traceparent` naming that span;
//! - `sampling_ratio = 0` sends no span at all;
//! - with JSON logs every stderr line is one flat JSON object, and a run
//!   that dead-letters hundreds of events logs a few lines with counts, not
//!   one line per event.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use serde_json::Value;
use weir_tests::kafka::{Msg, brokers, create_topic, produce, unique};
use weir_tests::{plugins, weir_bin};

/// Spans received, with the `service.name` of their resource.
type Received = Arc<Mutex<Vec<(String, Span)>>>;

async fn export(State(received): State<Received>, body: Bytes) -> impl IntoResponse {
    let request = match ExportTraceServiceRequest::decode(body) {
        Ok(r) => r,
        Err(e) => {
            return (
                axum::http::StatusCode::BAD_REQUEST,
                e.to_string().into_bytes(),
            );
        }
    };
    let mut spans = received.lock().unwrap();
    for resource in request.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|a| a.key == "service.name")
            .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                AnyValue::StringValue(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default();
        for scope in resource.scope_spans {
            spans.extend(scope.spans.into_iter().map(|s| (service.clone(), s)));
        }
    }
    (
        axum::http::StatusCode::OK,
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
}

/// An OTLP/HTTP (protobuf) traces receiver on a free port: its base URL and
/// what it received.
async fn start_receiver() -> (String, Received) {
    let received = Received::default();
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(export))
        .layer(axum::middleware::map_response(
            |mut r: axum::response::Response| async move {
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("application/x-protobuf"),
                );
                r
            },
        ))
        .with_state(Arc::clone(&received));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), received)
}

fn attr(span: &Span, key: &str) -> Option<Value> {
    let v = span.attributes.iter().find(|a| a.key == key)?;
    match v.value.as_ref()?.value.as_ref()? {
        AnyValue::StringValue(s) => Some(Value::from(s.clone())),
        AnyValue::IntValue(i) => Some(Value::from(*i)),
        AnyValue::BoolValue(b) => Some(Value::from(*b)),
        AnyValue::DoubleValue(d) => Some(Value::from(*d)),
        _ => None,
    }
}

fn json_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Run `weir run` on `config` in `dir` (off the async runtime, which serves
/// the receiver meanwhile) and return what it did.
async fn weir_run(dir: &Path, config: String, args: &[&str]) -> Output {
    let path = dir.join("weir.toml");
    std::fs::write(&path, config).expect("config");
    let cache = dir.join("cache");
    let mut cmd = Command::new(weir_bin());
    cmd.arg("run")
        .arg(&path)
        .args(args)
        .env("WEIR_CACHE_DIR", cache)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    tokio::task::spawn_blocking(move || cmd.output().expect("weir run"))
        .await
        .expect("weir run task")
}

/// A config reading `topic` through the `stamp` plugin into `out.jsonl`,
/// dead letters into `dlq.jsonl`; `host` is added to `[host]`.
fn config(brokers: &str, topic: &str, host: &str) -> String {
    format!(
        r#"[host]
{host}

[host.admin]
enabled = false

[sources.in]
type = "kafka"
brokers = "{brokers}"
topics = ["{topic}"]
group_id = "{group}"
stop_at_end = true
options = {options}

[plugins.stamp]
path = "{stamp}"

[sinks.out]
type = "file"
path = "out.jsonl"

[sinks.dlq]
type = "file"
path = "dlq.jsonl"

[pipelines.traced]
source = "in"
plugins = ["stamp"]
default_route = "out"
dead_letter = "dlq"
batch = {{ max_events = 10, max_wait_ms = 100 }}
"#,
        group = unique("tracing-group"),
        options = weir_tests::kafka::group_options_toml(),
        stamp = plugins::STAMP_A,
    )
}

const PRODUCER_A: (&str, &str) = ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331");
const PRODUCER_B: (&str, &str) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");

/// Three events: two carrying a producer's `traceparent`, one without.
async fn produce_traced(brokers: &str, topic: &str) {
    let traced = |id: u32, (trace, span): (&str, &str)| Msg {
        value: Some(format!(r#"{{"id":{id}}}"#).into_bytes()),
        headers: vec![(
            "traceparent".into(),
            format!("00-{trace}-{span}-01").into_bytes(),
        )],
        partition: 0,
        ..Msg::default()
    };
    produce(
        brokers,
        topic,
        &[
            traced(0, PRODUCER_A),
            Msg {
                value: Some(br#"{"id":1}"#.to_vec()),
                partition: 0,
                ..Msg::default()
            },
            traced(2, PRODUCER_B),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_spans_reach_the_receiver_and_outputs_continue_the_producers_trace() {
    let brokers = brokers();
    let topic = unique("tracing-in");
    create_topic(&brokers, &topic, 1).await;
    produce_traced(&brokers, &topic).await;
    let (endpoint, received) = start_receiver().await;

    let dir = tempfile::tempdir().expect("tempdir");
    let host = format!(
        "tracing = {{ otlp_endpoint = \"{endpoint}\", sampling_ratio = 1.0, service_name = \"weir-test\" }}"
    );
    let run = weir_run(
        dir.path(),
        config(&brokers, &topic, &host),
        &["--progress", "0"],
    )
    .await;
    let log = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "weir run failed: {log}");

    let spans = received.lock().unwrap().clone();
    assert!(
        spans.iter().all(|(service, _)| service == "weir-test"),
        "service.name: {:?}",
        spans.iter().map(|(s, _)| s).collect::<Vec<_>>()
    );
    let spans: Vec<Span> = spans.into_iter().map(|(_, s)| s).collect();
    let named = |name: &'static str| spans.iter().filter(move |s| s.name == name);

    // Batch spans are roots with the pipeline and their event counts.
    let batches: BTreeMap<Vec<u8>, &Span> = named("weir.batch")
        .map(|s| (s.span_id.clone(), s))
        .collect();
    assert!(!batches.is_empty(), "no weir.batch span among {spans:#?}");
    let mut events_in_batches = 0;
    for b in batches.values() {
        assert!(b.parent_span_id.is_empty(), "a batch span is a root: {b:?}");
        assert_eq!(attr(b, "weir.pipeline"), Some("traced".into()), "{b:?}");
        events_in_batches += attr(b, "weir.batch.events")
            .and_then(|v| v.as_i64())
            .expect("weir.batch.events");
        assert!(attr(b, "weir.batch.outputs").is_some(), "{b:?}");
    }
    assert_eq!(events_in_batches, 3, "{batches:#?}");

    // Every stage span is a child of a batch span, in its trace.
    let child_of_batch = |s: &Span| {
        batches
            .get(&s.parent_span_id)
            .is_some_and(|b| b.trace_id == s.trace_id)
    };
    for name in ["weir.read", "weir.plugin", "weir.sink.write", "weir.commit"] {
        let stage: Vec<&Span> = named(name).collect();
        assert!(!stage.is_empty(), "no {name} span among {spans:#?}");
        assert!(
            stage.iter().all(|s| child_of_batch(s)),
            "{name} spans not under a batch: {stage:#?}"
        );
    }
    assert!(
        named("weir.plugin").all(|s| attr(s, "weir.plugin") == Some("stamp".into())),
        "{spans:#?}"
    );
    let plugin_events: i64 = named("weir.plugin")
        .filter_map(|s| attr(s, "weir.events")?.as_i64())
        .sum();
    assert_eq!(plugin_events, 3);
    assert!(
        named("weir.sink.write").all(|s| attr(s, "weir.sink") == Some("out".into())
            && attr(s, "weir.rejected") == Some(0.into())),
        "{spans:#?}"
    );

    // One event span per traced event: in the producer's trace, a child of
    // the producer's span, linked to its batch.
    let events: Vec<&Span> = named("weir.event").collect();
    assert_eq!(events.len(), 2, "{events:#?}");
    let mut event_span_of = BTreeMap::new();
    for (trace, span) in [PRODUCER_A, PRODUCER_B] {
        let e = events
            .iter()
            .find(|e| hex(&e.trace_id) == trace)
            .unwrap_or_else(|| panic!("no weir.event span in trace {trace}: {events:#?}"));
        assert_eq!(hex(&e.parent_span_id), span, "{e:?}");
        assert_eq!(e.links.len(), 1, "{e:?}");
        let link = &e.links[0];
        assert!(
            batches
                .get(&link.span_id)
                .is_some_and(|b| b.trace_id == link.trace_id),
            "the link names no batch span: {e:?}"
        );
        let origin = attr(e, "weir.origin").expect("weir.origin");
        assert!(
            origin.as_str().is_some_and(|o| o.starts_with(&topic)),
            "{origin}"
        );
        event_span_of.insert(trace, hex(&e.span_id));
    }

    // The outputs carry a traceparent naming Weir's event span; the event
    // without one gets none.
    let out = json_lines(&dir.path().join("out.jsonl"));
    assert_eq!(out.len(), 3, "{out:#?}");
    for o in &out {
        let id = o["value"]["id"].as_i64().expect("id");
        let traceparent = o["headers"]["traceparent"].as_str();
        let expected = match id {
            0 => Some(PRODUCER_A.0),
            2 => Some(PRODUCER_B.0),
            _ => None,
        }
        .map(|trace| format!("00-{trace}-{}-01", event_span_of[trace]));
        assert_eq!(traceparent, expected.as_deref(), "output {o}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_ratio_zero_sends_no_span_and_leaves_headers_alone() {
    let brokers = brokers();
    let topic = unique("tracing-off-in");
    create_topic(&brokers, &topic, 1).await;
    produce_traced(&brokers, &topic).await;
    let (endpoint, received) = start_receiver().await;

    let dir = tempfile::tempdir().expect("tempdir");
    let host = format!("tracing = {{ otlp_endpoint = \"{endpoint}\", sampling_ratio = 0.0 }}");
    let run = weir_run(
        dir.path(),
        config(&brokers, &topic, &host),
        &["--progress", "0"],
    )
    .await;
    let log = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "weir run failed: {log}");
    assert!(
        log.contains("tracing to OTLP"),
        "tracing was not set up: {log}"
    );

    assert!(
        received.lock().unwrap().is_empty(),
        "spans were sent at sampling_ratio 0"
    );
    // Nothing traced: the outputs keep the producer's traceparent the plugin
    // passed on.
    let out = json_lines(&dir.path().join("out.jsonl"));
    assert_eq!(out.len(), 3, "{out:#?}");
    let first = out.iter().find(|o| o["value"]["id"] == 0).expect("id 0");
    assert_eq!(
        first["headers"]["traceparent"],
        format!("00-{}-{}-01", PRODUCER_A.0, PRODUCER_A.1)
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_flat_objects_and_dead_letters_are_counted_not_listed() {
    const EVENTS: usize = 300;
    let brokers = brokers();
    let topic = unique("json-logs-in");
    create_topic(&brokers, &topic, 1).await;
    // Not JSON objects: the stamp plugin fails every one.
    let messages: Vec<Msg> = (0..EVENTS)
        .map(|i| Msg {
            value: Some(format!("not json {i}").into_bytes()),
            partition: 0,
            ..Msg::default()
        })
        .collect();
    produce(&brokers, &topic, &messages).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let run = weir_run(
        dir.path(),
        config(&brokers, &topic, ""),
        &["--log-format", "json", "--progress", "1"],
    )
    .await;
    let log = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(run.status.success(), "weir run failed: {log}");
    assert_eq!(json_lines(&dir.path().join("dlq.jsonl")).len(), EVENTS);

    let lines: Vec<serde_json::Map<String, Value>> = log
        .lines()
        .map(|l| match serde_json::from_str::<Value>(l) {
            Ok(Value::Object(o)) => o,
            _ => panic!("not a JSON object: {l}\n{log}"),
        })
        .collect();
    for line in &lines {
        assert!(line.values().all(|v| !v.is_object()), "not flat: {line:?}");
        assert!(!line.contains_key("fields"), "{line:?}");
        for key in ["timestamp", "level", "target", "message"] {
            assert!(line.contains_key(key), "no {key}: {line:?}");
        }
    }

    let message =
        |l: &serde_json::Map<String, Value>| l["message"].as_str().unwrap_or_default().to_owned();
    let dead: Vec<_> = lines
        .iter()
        .filter(|l| message(l).starts_with("dead-lettered"))
        .collect();
    let counted: u64 = dead
        .iter()
        .map(|l| l["dead_lettered"].as_u64().expect("dead_lettered count"))
        .sum();
    assert_eq!(counted, EVENTS as u64, "{dead:#?}");
    // The first at once, then one line per 10 s at most: a handful, not 300.
    assert!(
        dead.len() < 10,
        "{} dead-letter lines: {dead:#?}",
        dead.len()
    );
    assert_eq!(dead[0]["dead_lettered"], 1, "{:?}", dead[0]);
    assert!(
        dead[0]["origin"]
            .as_str()
            .is_some_and(|o| o.starts_with(&topic))
    );
    let summary = dead.last().expect("a summary line");
    let reasons = summary["reasons"].as_array().expect("reasons as an array");
    assert!(!reasons.is_empty() && reasons.len() <= 9, "{summary:?}");
    assert_eq!(summary["level"], "WARN");

    // The list of topics is an array, and the end-of-run summary is a log
    // line, not text.
    let subscribed = lines
        .iter()
        .find(|l| message(l) == "kafka source subscribed")
        .expect("subscribed line");
    assert_eq!(subscribed["topics"], serde_json::json!([topic]));
    let end = lines
        .iter()
        .find(|l| message(l) == "pipeline summary")
        .expect("pipeline summary line");
    assert_eq!(end["pipeline"], "traced");
    assert_eq!(end["dead_lettered"], EVENTS as u64);
    assert!(end["outputs_per_sink"].is_array(), "{end:?}");
}
