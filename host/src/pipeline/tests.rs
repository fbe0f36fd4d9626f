//! Pipeline behaviour with in-memory sources, sinks and native transforms.
//! (The same behaviours against a real broker are in the weir-tests crate.)

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use bytes::Bytes;

use super::*;
use super::watermark::Watermarks;
use crate::event::{Event, Outcome, Output};
use crate::sink::{Rejection, Sink, SinkError};
use crate::source::{Checkpoint, Source, SourceBatch, erase};

/// Hands out prepared batches, then reports itself exhausted.
struct VecSource {
    batches: Mutex<VecDeque<Vec<Event>>>,
    next_id: AtomicUsize,
    committed: Mutex<Vec<usize>>,
    endless: bool,
}

impl VecSource {
    fn new(batches: Vec<Vec<Event>>) -> Arc<Self> {
        Arc::new(VecSource {
            batches: Mutex::new(batches.into()),
            next_id: AtomicUsize::new(0),
            committed: Mutex::new(Vec::new()),
            endless: false,
        })
    }
}

/// The test source has one partition.
impl Checkpoint for usize {
    fn split(self) -> Vec<(String, Self)> {
        vec![(String::new(), self)]
    }
}

#[async_trait]
impl Source for VecSource {
    type Checkpoint = usize;

    async fn next_batch(
        &self,
        _max: usize,
        wait: Duration,
    ) -> Result<SourceBatch<usize>, SourceError> {
        let next = self.batches.lock().unwrap().pop_front();
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        match next {
            Some(events) => Ok(SourceBatch {
                events,
                checkpoint: id,
                partitions: Vec::new(),
                exhausted: false,
                unreadable: Vec::new(),
            }),
            None if self.endless => {
                tokio::time::sleep(wait).await;
                Ok(SourceBatch {
                    events: Vec::new(),
                    checkpoint: id,
                    partitions: Vec::new(),
                    exhausted: false,
                    unreadable: Vec::new(),
                })
            }
            None => Ok(SourceBatch {
                events: Vec::new(),
                checkpoint: id,
                partitions: Vec::new(),
                exhausted: true,
                unreadable: Vec::new(),
            }),
        }
    }

    async fn commit(&self, id: usize) -> Result<(), SourceError> {
        self.committed.lock().unwrap().push(id);
        Ok(())
    }
}

/// Records what it is given; can reject, fail transiently, or be slow.
#[derive(Default)]
struct MemSink {
    written: Mutex<Vec<Output>>,
    reject_value: Option<&'static str>,
    /// Refuse records larger than this (value, key and headers), as Kafka's
    /// `message.max.bytes` does.
    max_record_bytes: Option<usize>,
    transient_failures: AtomicUsize,
    delay: Duration,
}

#[async_trait]
impl Sink for MemSink {
    async fn write(&self, outputs: &[Output]) -> Result<Vec<Rejection>, SinkError> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        if self
            .transient_failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(SinkError::Transient("connection reset".into()));
        }
        let mut rejections = Vec::new();
        let mut written = self.written.lock().unwrap();
        for (index, o) in outputs.iter().enumerate() {
            let size = o.value.as_ref().map_or(0, Bytes::len)
                + o.key.as_ref().map_or(0, Bytes::len)
                + o.headers
                    .iter()
                    .map(|h| h.key.len() + h.value.len())
                    .sum::<usize>();
            if self.max_record_bytes.is_some_and(|max| size > max) {
                rejections.push(Rejection {
                    index,
                    reason: format!("message size {size} is larger than the maximum"),
                });
            } else if self
                .reject_value
                .is_some_and(|r| o.value.as_deref() == Some(r.as_bytes()))
            {
                rejections.push(Rejection {
                    index,
                    reason: "document failed validation".into(),
                });
            } else {
                written.push(o.clone());
            }
        }
        Ok(rejections)
    }
}

/// A native transform from a closure.
struct FnTransform<F>(&'static str, F);

impl<F: FnMut(&Event) -> Outcome + Send> Transform for FnTransform<F> {
    fn name(&self) -> &str {
        self.0
    }

    fn process_batch(&mut self, events: &[Event]) -> Result<Vec<Outcome>, PluginError> {
        Ok(events.iter().map(&mut self.1).collect())
    }
}

fn event(value: &str, offset: usize) -> Event {
    Event {
        value: Some(Bytes::copy_from_slice(value.as_bytes())),
        origin: format!("t/0/{offset}"),
        ..Event::default()
    }
}

fn value_of(o: &Output) -> String {
    String::from_utf8(o.value.clone().unwrap_or_default().to_vec()).unwrap()
}

fn named(name: &str, sink: &Arc<MemSink>) -> NamedSink {
    NamedSink {
        name: name.into(),
        sink: Arc::clone(sink) as Arc<dyn Sink>,
    }
}

fn parts(
    source: Arc<VecSource>,
    chain: Vec<Box<dyn Transform>>,
    out: &Arc<MemSink>,
) -> PipelineParts {
    PipelineParts {
        name: "p".into(),
        source_name: "src".into(),
        source: erase(source),
        chains: vec![chain],
        flow: FlowConfig::default(),
        default_route: named("out", out),
        routes: BTreeMap::from([("out".to_owned(), named("out", out))]),
        dead_letter: None,
        batch: BatchConfig::default(),
        retry: RetryConfig {
            initial_ms: 1,
            max_ms: 5,
        },
    }
}

/// Events `v0..vN` in batches of `size`.
fn batches(n: usize, size: usize) -> Vec<Vec<Event>> {
    (0..n)
        .collect::<Vec<_>>()
        .chunks(size)
        .map(|c| c.iter().map(|&i| event(&format!("v{i}"), i)).collect())
        .collect()
}

#[tokio::test]
async fn every_batch_is_written_in_order_and_committed_in_order() {
    let source = VecSource::new(batches(100, 7));
    let out = Arc::new(MemSink::default());
    let upper = FnTransform("upper", |e: &Event| {
        Outcome::Emit(vec![Output {
            value: e
                .value
                .as_ref()
                .map(|v| Bytes::from(v.to_ascii_uppercase())),
            ..Output::default()
        }])
    });
    let pipeline = Pipeline::new(parts(Arc::clone(&source), vec![Box::new(upper)], &out));
    let stats = pipeline.stats();
    pipeline.run(CancellationToken::new()).await.unwrap();

    let written: Vec<String> = out.written.lock().unwrap().iter().map(value_of).collect();
    let expected: Vec<String> = (0..100).map(|i| format!("V{i}")).collect();
    assert_eq!(written, expected);
    // 15 data batches (ids 0..=14), committed in order; the exhausted
    // marker batch (id 15) is empty and committed last.
    assert_eq!(
        *source.committed.lock().unwrap(),
        (0..=15).collect::<Vec<_>>()
    );
    let s = stats.snapshot();
    assert_eq!((s.events_in, s.outputs, s.in_flight_events), (100, 100, 0));
}

#[tokio::test]
async fn chained_plugins_see_previous_outputs_and_inherit_routes() {
    let source = VecSource::new(batches(10, 10));
    let out = Arc::new(MemSink::default());
    let other = Arc::new(MemSink::default());
    let route_odd = FnTransform("route", |e: &Event| {
        let v = value_of(&Output {
            value: e.value.clone(),
            ..Output::default()
        });
        let n: usize = v[1..].parse().unwrap();
        if n.is_multiple_of(5) {
            return Outcome::Drop;
        }
        Outcome::Emit(vec![Output {
            route: (n % 2 == 1).then(|| "other".to_owned()),
            value: e.value.clone(),
            ..Output::default()
        }])
    });
    let suffix = FnTransform("suffix", |e: &Event| {
        let mut v = e.value.clone().unwrap().to_vec();
        v.extend_from_slice(b"!");
        Outcome::Emit(vec![Output {
            value: Some(v.into()),
            ..Output::default()
        }])
    });
    let mut p = parts(
        Arc::clone(&source),
        vec![Box::new(route_odd), Box::new(suffix)],
        &out,
    );
    p.routes.insert("other".into(), named("other", &other));
    let pipeline = Pipeline::new(p);
    let stats = pipeline.stats();
    pipeline.run(CancellationToken::new()).await.unwrap();

    let got = |s: &Arc<MemSink>| {
        s.written
            .lock()
            .unwrap()
            .iter()
            .map(value_of)
            .collect::<Vec<_>>()
    };
    assert_eq!(got(&out), ["v2!", "v4!", "v6!", "v8!"]);
    assert_eq!(got(&other), ["v1!", "v3!", "v7!", "v9!"]);
    assert_eq!(stats.snapshot().dropped, 2);
}

#[tokio::test]
async fn failed_events_rejected_and_unroutable_outputs_are_dead_lettered_with_headers() {
    let source = VecSource::new(batches(6, 6));
    let out = Arc::new(MemSink {
        reject_value: Some("v2"),
        ..MemSink::default()
    });
    let dlq = Arc::new(MemSink::default());
    let t = FnTransform("t", |e: &Event| match e.value.as_deref() {
        Some(b"v1") => Outcome::Fail("field `amount` is not a number".into()),
        Some(b"v3") => Outcome::Emit(vec![Output {
            route: Some("nowhere".into()),
            value: e.value.clone(),
            ..Output::default()
        }]),
        _ => Outcome::Emit(vec![Output {
            value: e.value.clone(),
            ..Output::default()
        }]),
    });
    let mut p = parts(Arc::clone(&source), vec![Box::new(t)], &out);
    p.dead_letter = Some(named("dlq", &dlq));
    let pipeline = Pipeline::new(p);
    let stats = pipeline.stats();
    pipeline.run(CancellationToken::new()).await.unwrap();

    let written: Vec<String> = out.written.lock().unwrap().iter().map(value_of).collect();
    assert_eq!(written, ["v0", "v4", "v5"]);
    let dead = dlq.written.lock().unwrap().clone();
    let header = |o: &Output, k: &str| {
        o.headers
            .iter()
            .find(|h| h.key == k)
            .map(|h| String::from_utf8(h.value.to_vec()).unwrap())
    };
    let by_value: BTreeMap<String, &Output> = dead.iter().map(|o| (value_of(o), o)).collect();
    assert_eq!(by_value.len(), 3, "{dead:?}");
    let failed = by_value["v1"];
    assert_eq!(header(failed, "weir.dlq.plugin").as_deref(), Some("t"));
    assert_eq!(
        header(failed, "weir.dlq.reason").as_deref(),
        Some("field `amount` is not a number")
    );
    assert_eq!(header(failed, "weir.dlq.origin").as_deref(), Some("t/0/1"));
    assert_eq!(header(failed, "weir.dlq.pipeline").as_deref(), Some("p"));
    assert!(header(failed, "weir.dlq.time_ms").is_some());
    let rejected = by_value["v2"];
    assert_eq!(header(rejected, "weir.dlq.sink").as_deref(), Some("out"));
    assert_eq!(
        header(rejected, "weir.dlq.reason").as_deref(),
        Some("document failed validation")
    );
    let unroutable = by_value["v3"];
    assert_eq!(
        header(unroutable, "weir.dlq.sink").as_deref(),
        Some("(router)")
    );
    assert!(
        header(unroutable, "weir.dlq.reason")
            .unwrap()
            .contains("route `nowhere` matches no sink")
    );
    let s = stats.snapshot();
    assert_eq!((s.outputs, s.failed, s.dead_lettered), (3, 1, 3));
    assert_eq!(*source.committed.lock().unwrap(), [0, 1]);
}

#[tokio::test]
async fn without_a_dead_letter_sink_the_pipeline_stops_before_committing_the_batch() {
    let source = VecSource::new(vec![
        vec![event("ok", 0)],
        vec![event("bad", 1), event("ok", 2)],
        vec![event("ok", 3)],
    ]);
    let out = Arc::new(MemSink::default());
    let t = FnTransform("t", |e: &Event| match e.value.as_deref() {
        Some(b"bad") => Outcome::Fail("boom".into()),
        _ => Outcome::Emit(vec![Output::default()]),
    });
    let err = Pipeline::new(parts(Arc::clone(&source), vec![Box::new(t)], &out))
        .run(CancellationToken::new())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("event t/0/1 must be dead-lettered (plugin `t`: boom)"),
        "{msg}"
    );
    assert!(msg.contains("no `dead_letter` sink"), "{msg}");
    assert_eq!(
        *source.committed.lock().unwrap(),
        [0],
        "the failing batch must not be committed"
    );
}

#[tokio::test]
async fn transient_sink_errors_are_retried_until_the_write_succeeds() {
    let source = VecSource::new(batches(20, 5));
    let out = Arc::new(MemSink {
        transient_failures: AtomicUsize::new(3),
        ..MemSink::default()
    });
    Pipeline::new(parts(Arc::clone(&source), vec![], &out))
        .run(CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(out.written.lock().unwrap().len(), 20);
    assert_eq!(source.committed.lock().unwrap().len(), 5);
}

#[tokio::test]
async fn a_slow_sink_bounds_the_events_in_flight() {
    let source = VecSource::new(batches(2_000, 50));
    let out = Arc::new(MemSink {
        delay: Duration::from_millis(2),
        ..MemSink::default()
    });
    let mut p = parts(Arc::clone(&source), vec![], &out);
    p.batch = BatchConfig {
        max_events: 50,
        max_wait_ms: 10,
        max_in_flight: 3,
    };
    let pipeline = Pipeline::new(p);
    let stats = pipeline.stats();
    pipeline.run(CancellationToken::new()).await.unwrap();
    let s = stats.snapshot();
    assert_eq!(s.outputs, 2_000);
    // The source had 2 000 events ready; only 3 batches may be held at once.
    assert!(s.max_in_flight_events <= 150, "{s:?}");
    assert!(s.max_in_flight_events >= 50, "{s:?}");
}

#[tokio::test]
async fn shutdown_drains_what_was_read_and_commits_it() {
    let source = Arc::new(VecSource {
        batches: Mutex::new(batches(30, 10).into()),
        next_id: AtomicUsize::new(0),
        committed: Mutex::new(Vec::new()),
        endless: true,
    });
    let out = Arc::new(MemSink::default());
    let shutdown = CancellationToken::new();
    let pipeline = Pipeline::new(parts(Arc::clone(&source), vec![], &out));
    let stats = pipeline.stats();
    let run = tokio::spawn(pipeline.run(shutdown.clone()));
    while stats.snapshot().outputs < 30 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    shutdown.cancel();
    run.await.unwrap().unwrap();
    let s = stats.snapshot();
    assert_eq!((s.outputs, s.in_flight_events), (30, 0));
    assert_eq!(out.written.lock().unwrap().len(), 30);
}

fn dlq_reason(o: &Output) -> String {
    o.headers
        .iter()
        .find(|h| h.key == "weir.dlq.reason")
        .map(|h| String::from_utf8(h.value.to_vec()).unwrap())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_plugin_reaches_only_the_sinks_its_pipeline_declares() {
    let (out, audit, dlq, elsewhere) = (
        Arc::new(MemSink::default()),
        Arc::new(MemSink::default()),
        Arc::new(MemSink::default()),
        Arc::new(MemSink::default()),
    );
    // The config has four sinks; this pipeline names three of them.
    let sinks: BTreeMap<String, NamedSink> = [
        named("out", &out),
        named("audit", &audit),
        named("dlq", &dlq),
        named("elsewhere", &elsewhere),
    ]
    .into_iter()
    .map(|s| (s.name.clone(), s))
    .collect();
    let routes: BTreeMap<String, String> = [("purchase".into(), "audit".into())].into();
    let config = RouteNames {
        default_route: "out",
        dead_letter: Some("dlq"),
        routes: &routes,
    };
    let declared = DeclaredRoutes::resolve(config, &sinks).unwrap();
    assert_eq!(
        declared.routes.keys().collect::<Vec<_>>(),
        ["audit", "dlq", "out", "purchase"]
    );

    let source = VecSource::new(vec![vec![
        event("purchase", 0),
        event("audit", 1),
        event("elsewhere", 2),
        event("default", 3),
    ]]);
    let t = FnTransform("t", |e: &Event| {
        let route = match e.value.as_deref() {
            Some(b"default") => None,
            Some(v) => Some(String::from_utf8(v.to_vec()).unwrap()),
            None => None,
        };
        Outcome::Emit(vec![Output {
            route,
            value: e.value.clone(),
            ..Output::default()
        }])
    });
    let mut p = parts(Arc::clone(&source), vec![Box::new(t)], &out);
    p.default_route = declared.default_route;
    p.routes = declared.routes;
    p.dead_letter = declared.dead_letter;
    Pipeline::new(p)
        .run(CancellationToken::new())
        .await
        .unwrap();

    let values = |s: &Arc<MemSink>| {
        s.written
            .lock()
            .unwrap()
            .iter()
            .map(value_of)
            .collect::<Vec<_>>()
    };
    assert_eq!(values(&audit), ["purchase", "audit"]);
    assert_eq!(values(&out), ["default"]);
    assert!(
        values(&elsewhere).is_empty(),
        "an undeclared sink was written"
    );
    let dead = dlq.written.lock().unwrap().clone();
    assert_eq!(dead.len(), 1);
    assert_eq!(value_of(&dead[0]), "elsewhere");
    assert_eq!(
        dlq_reason(&dead[0]),
        "route `elsewhere` matches no sink of pipeline `p`"
    );

    let gone: BTreeMap<String, String> = [("x".into(), "gone".into())].into();
    let missing = RouteNames {
        default_route: "out",
        dead_letter: None,
        routes: &gone,
    };
    assert_eq!(
        DeclaredRoutes::resolve(missing, &sinks).unwrap_err(),
        UnknownSink("gone".into())
    );
}

#[tokio::test]
async fn huge_fail_reasons_are_cut_before_they_reach_logs_and_dead_letters() {
    let source = VecSource::new(vec![vec![event("v", 0)]]);
    let out = Arc::new(MemSink::default());
    let dlq = Arc::new(MemSink::default());
    let t = FnTransform("t", |_: &Event| Outcome::Fail("y".repeat(10 << 20)));
    let mut p = parts(Arc::clone(&source), vec![Box::new(t)], &out);
    p.dead_letter = Some(named("dlq", &dlq));
    Pipeline::new(p)
        .run(CancellationToken::new())
        .await
        .unwrap();
    let dead = dlq.written.lock().unwrap().clone();
    let reason = dlq_reason(&dead[0]);
    assert!(
        reason.len() < crate::engine::MAX_REASON_BYTES + 40,
        "{} bytes",
        reason.len()
    );
    assert!(reason.ends_with("more bytes cut)"), "{reason}");
}

/// Stands for a plugin isolating a poison batch: the second batch never
/// finishes on its own, only a shutdown stops it (as `Interrupted`).
struct Isolating {
    batches: usize,
    shutdown: Option<CancellationToken>,
}

impl Transform for Isolating {
    fn name(&self) -> &str {
        "isolating"
    }

    fn process_batch(&mut self, events: &[Event]) -> Result<Vec<Outcome>, PluginError> {
        self.batches += 1;
        if self.batches == 2 {
            let shutdown = self
                .shutdown
                .clone()
                .expect("the pipeline hands over its shutdown token");
            while !shutdown.is_cancelled() {
                std::thread::sleep(Duration::from_millis(2));
            }
            return Err(PluginError {
                plugin: "isolating".into(),
                path: "isolating.wasm".into(),
                kind: PluginErrorKind::Interrupted,
            });
        }
        Ok(events
            .iter()
            .map(|e| {
                Outcome::Emit(vec![Output {
                    value: e.value.clone(),
                    ..Output::default()
                }])
            })
            .collect())
    }

    fn set_shutdown(&mut self, shutdown: CancellationToken) {
        self.shutdown = Some(shutdown);
    }
}

#[tokio::test]
async fn shutdown_during_isolation_stops_cleanly_without_committing_the_batch() {
    let source = Arc::new(VecSource {
        batches: Mutex::new(batches(30, 10).into()),
        next_id: AtomicUsize::new(0),
        committed: Mutex::new(Vec::new()),
        endless: true,
    });
    let out = Arc::new(MemSink::default());
    let shutdown = CancellationToken::new();
    let transform = Isolating {
        batches: 0,
        shutdown: None,
    };
    let pipeline = Pipeline::new(parts(Arc::clone(&source), vec![Box::new(transform)], &out));
    let run = tokio::spawn(pipeline.run(shutdown.clone()));
    while source.committed.lock().unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    shutdown.cancel();
    // The pipeline stops without an error; the interrupted batch and the
    // ones after it are neither written nor committed.
    run.await.unwrap().unwrap();
    assert_eq!(*source.committed.lock().unwrap(), [0]);
    assert_eq!(out.written.lock().unwrap().len(), 10);
}

#[tokio::test]
async fn a_dead_letter_refused_for_its_size_is_written_again_smaller() {
    let huge = "x".repeat(10_000_000);
    let mut events = batches(3, 3);
    events[0][1].value = Some(Bytes::from(huge.clone()));
    let source = VecSource::new(events);
    let out = Arc::new(MemSink::default());
    let dlq = Arc::new(MemSink {
        max_record_bytes: Some(1_000_000),
        ..MemSink::default()
    });
    let reason = "r".repeat(5_000_000);
    let t = FnTransform("t", move |e: &Event| {
        if e.value.as_ref().is_some_and(|v| v.len() > 100) {
            Outcome::Fail(reason.clone())
        } else {
            Outcome::Emit(vec![Output {
                value: e.value.clone(),
                ..Output::default()
            }])
        }
    });
    let mut p = parts(Arc::clone(&source), vec![Box::new(t)], &out);
    p.dead_letter = Some(named("dlq", &dlq));
    Pipeline::new(p)
        .run(CancellationToken::new())
        .await
        .expect("the pipeline goes on");

    let written: Vec<String> = out.written.lock().unwrap().iter().map(value_of).collect();
    assert_eq!(written, ["v0", "v2"]);
    let dead = dlq.written.lock().unwrap().clone();
    assert_eq!(
        dead.len(),
        1,
        "{:?}",
        dead.iter().map(|d| &d.headers).collect::<Vec<_>>()
    );
    let header = |k: &str| {
        dead[0]
            .headers
            .iter()
            .find(|h| h.key == k)
            .map(|h| String::from_utf8(h.value.to_vec()).unwrap())
    };
    assert_eq!(dead[0].value, None);
    assert_eq!(header("weir.dlq.origin").as_deref(), Some("t/0/1"));
    assert_eq!(header("weir.dlq.truncated").as_deref(), Some("true"));
    assert_eq!(header("weir.dlq.value_bytes").as_deref(), Some("10000000"));
    use sha2::Digest;
    assert_eq!(
        header("weir.dlq.value_sha256"),
        Some(hex::encode(sha2::Sha256::digest(huge.as_bytes())))
    );
    // The chain already bounds a plugin's reason (to 1 KiB), before the
    // dead letter's own, larger bound could apply.
    let kept_reason = header("weir.dlq.reason").unwrap();
    assert!(kept_reason.len() < 1_200, "{}", kept_reason.len());
    assert!(kept_reason.ends_with("more bytes cut)"), "{kept_reason}");
    assert_eq!(*source.committed.lock().unwrap(), [0, 1]);
}

/// How far a batch of [`PartSource`] reached: per partition, the next
/// offset.
#[derive(Debug)]
struct PartMarks(Vec<(String, usize)>);

impl Checkpoint for PartMarks {
    fn split(self) -> Vec<(String, Self)> {
        self.0
            .into_iter()
            .map(|(p, o)| (p.clone(), PartMarks(vec![(p, o)])))
            .collect()
    }
}

/// A source of several partitions. Event values are `PARTITION/OFFSET`;
/// every commit is checked against what the sink has: a commit past an
/// event the sink does not hold yet is recorded as a violation.
struct PartSource {
    batches: Mutex<VecDeque<Vec<(u32, Event)>>>,
    sink: Arc<MemSink>,
    committed: Mutex<BTreeMap<String, usize>>,
    violations: Mutex<Vec<String>>,
}

impl PartSource {
    /// `partitions` partitions of `per_partition` events each, with keys
    /// `k0..k{keys}`, read `size` at a time, the partitions interleaved.
    fn new(
        partitions: u32,
        per_partition: usize,
        keys: usize,
        size: usize,
        sink: &Arc<MemSink>,
    ) -> Arc<PartSource> {
        let mut all = Vec::new();
        for offset in 0..per_partition {
            for p in 0..partitions {
                let mut e = event(&format!("{p}/{offset}"), offset);
                e.key = Some(Bytes::from(format!("k{}", offset % keys.max(1))));
                all.push((p, e));
            }
        }
        let batches = all.chunks(size).map(<[_]>::to_vec).collect();
        Arc::new(PartSource {
            batches: Mutex::new(batches),
            sink: Arc::clone(sink),
            committed: Mutex::new(BTreeMap::new()),
            violations: Mutex::new(Vec::new()),
        })
    }
}

fn part_and_offset(o: &Output) -> (String, usize) {
    let v = value_of(o);
    let (p, off) = v.split_once('/').unwrap();
    (p.to_owned(), off.trim_end_matches(|c: char| !c.is_ascii_digit()).parse().unwrap())
}

#[async_trait]
impl Source for PartSource {
    type Checkpoint = PartMarks;

    async fn next_batch(
        &self,
        _max: usize,
        _wait: Duration,
    ) -> Result<SourceBatch<PartMarks>, SourceError> {
        let Some(batch) = self.batches.lock().unwrap().pop_front() else {
            return Ok(SourceBatch {
                events: Vec::new(),
                checkpoint: PartMarks(Vec::new()),
                partitions: Vec::new(),
                exhausted: true,
                unreadable: Vec::new(),
            });
        };
        let mut marks: Vec<(String, usize)> = Vec::new();
        let mut partitions = Vec::new();
        let mut events = Vec::new();
        for (p, e) in batch {
            let name = p.to_string();
            let offset: usize = e.origin.rsplit('/').next().unwrap().parse().unwrap();
            match marks.iter().position(|(n, _)| *n == name) {
                Some(i) => {
                    marks[i].1 = offset + 1;
                    partitions.push(i as u32);
                }
                None => {
                    partitions.push(marks.len() as u32);
                    marks.push((name, offset + 1));
                }
            }
            events.push(e);
        }
        Ok(SourceBatch {
            events,
            checkpoint: PartMarks(marks),
            partitions,
            exhausted: false,
            unreadable: Vec::new(),
        })
    }

    async fn commit(&self, marks: PartMarks) -> Result<(), SourceError> {
        let written: std::collections::HashSet<(String, usize)> =
            self.sink.written.lock().unwrap().iter().map(part_and_offset).collect();
        for (p, next) in marks.0 {
            if let Some(missing) = (0..next).find(|o| !written.contains(&(p.clone(), *o))) {
                self.violations
                    .lock()
                    .unwrap()
                    .push(format!("committed {p}@{next} before {p}/{missing} was written"));
            }
            let mut committed = self.committed.lock().unwrap();
            let before = committed.insert(p.clone(), next);
            if before.is_some_and(|b| b > next) {
                self.violations
                    .lock()
                    .unwrap()
                    .push(format!("commit of {p} went back to {next}"));
            }
        }
        Ok(())
    }
}

/// A chain that copies events and is slow on partition 0 (or on one key),
/// so that workers finish out of order.
fn slow_chain(slow_on: &'static str) -> Vec<Box<dyn Transform>> {
    vec![Box::new(FnTransform("slow", move |e: &Event| {
        let v = e.value.as_deref().unwrap_or_default();
        let key = e.key.as_deref().unwrap_or_default();
        if v.starts_with(slow_on.as_bytes()) || key == slow_on.as_bytes() {
            std::thread::sleep(Duration::from_micros(300));
        }
        Outcome::Emit(vec![Output {
            key: e.key.clone(),
            value: e.value.clone(),
            ..Output::default()
        }])
    }))]
}

/// What the sink holds, per lane key (partition, key): offsets in the order
/// they were written.
fn written_per(out: &MemSink, by_key: bool) -> BTreeMap<(String, String), Vec<usize>> {
    let mut seen: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for o in out.written.lock().unwrap().iter() {
        let (p, off) = part_and_offset(o);
        let key = if by_key {
            String::from_utf8(o.key.clone().unwrap_or_default().to_vec()).unwrap()
        } else {
            String::new()
        };
        seen.entry((p, key)).or_default().push(off);
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_finish_out_of_order_and_commits_never_pass_an_unwritten_event() {
    let out = Arc::new(MemSink::default());
    let source = PartSource::new(4, 300, 7, 64, &out);
    let mut p = parts(VecSource::new(Vec::new()), vec![], &out);
    p.source = erase(Arc::clone(&source));
    p.chains = vec![slow_chain("0/"), slow_chain("0/")];
    p.batch = BatchConfig {
        max_events: 64,
        max_wait_ms: 5,
        max_in_flight: 4,
    };
    let pipeline = Pipeline::new(p);
    let stats = pipeline.stats();
    pipeline.run(CancellationToken::new()).await.unwrap();

    assert_eq!(*source.violations.lock().unwrap(), Vec::<String>::new());
    let seen = written_per(&out, false);
    assert_eq!(seen.len(), 4, "{:?}", seen.keys());
    for ((p, _), offsets) in &seen {
        assert_eq!(*offsets, (0..300).collect::<Vec<_>>(), "partition {p} out of order");
    }
    let committed = source.committed.lock().unwrap().clone();
    assert_eq!(
        committed,
        (0..4).map(|p| (p.to_string(), 300)).collect::<BTreeMap<_, _>>()
    );
    // The memory bound holds with several workers: 4 read batches of 64.
    let s = stats.snapshot();
    assert!(s.max_in_flight_events <= 4 * 64, "{s:?}");
    assert_eq!(s.in_flight_events, 0, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_ordering_by_key_each_key_keeps_its_order_and_every_event_lands_once() {
    let out = Arc::new(MemSink::default());
    let source = PartSource::new(2, 500, 11, 100, &out);
    let mut p = parts(VecSource::new(Vec::new()), vec![], &out);
    p.source = erase(Arc::clone(&source));
    p.chains = vec![slow_chain("k3"), slow_chain("k3"), slow_chain("k3")];
    p.flow = FlowConfig {
        ordering: super::Ordering::Key,
        max_concurrent_writes: 3,
    };
    Pipeline::new(p).run(CancellationToken::new()).await.unwrap();

    assert_eq!(*source.violations.lock().unwrap(), Vec::<String>::new());
    let seen = written_per(&out, true);
    let mut total = 0;
    for ((p, k), offsets) in &seen {
        assert!(
            offsets.windows(2).all(|w| w[0] < w[1]),
            "key {k} of partition {p} out of order: {offsets:?}"
        );
        total += offsets.len();
    }
    assert_eq!(total, 1000, "every event exactly once");
    assert_eq!(seen.len(), 22);
}

#[test]
fn a_partition_commits_only_its_done_prefix_and_merges_what_waits() {
    let mut marks = Watermarks::default();
    let p: Arc<str> = Arc::from("t/0");
    let q: Arc<str> = Arc::from("t/1");
    let a = marks.register(Arc::clone(&p), 2, None);
    let b = marks.register(Arc::clone(&p), 1, None);
    let c = marks.register(Arc::clone(&p), 1, None);
    let other = marks.register(Arc::clone(&q), 1, None);
    // Later units finishing first commit nothing and are merged.
    assert!(marks.done(&c).is_none());
    assert!(marks.done(&b).is_none());
    assert_eq!(marks.held(), 3, "a, and b merged into c, and the other partition's");
    assert!(marks.done(&a).is_none(), "one of a's two pieces is still running");
    assert_eq!(marks.held(), 3);
    // The other partition is not held back by this one.
    let _ = marks.done(&other);
    assert_eq!(marks.held(), 2);
    let _ = marks.done(&a);
    assert_eq!(marks.held(), 0);
}
