//! Backpressure against the real broker: with a slow sink, the pipeline
//! holds a bounded number of events however many wait in the topic, and
//! still delivers and commits all of them.

use weir_tests::kafka;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;
use weir::config::{BatchConfig, RetryConfig};
use weir::event::Output;
use weir::pipeline::{NamedSink, Pipeline, PipelineParts};
use weir::sink::{Rejection, Sink, SinkError};
use weir::source::{SourceConfig, SourceContext};

/// Acknowledges everything, slowly.
struct SlowSink {
    written: AtomicUsize,
    per_write: Duration,
}

#[async_trait]
impl Sink for SlowSink {
    async fn write(&self, outputs: &[Output]) -> Result<Vec<Rejection>, SinkError> {
        tokio::time::sleep(self.per_write).await;
        self.written.fetch_add(outputs.len(), Ordering::SeqCst);
        Ok(Vec::new())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_sink_pauses_the_kafka_source_instead_of_buffering() {
    const EVENTS: usize = 20_000;
    const PARTITIONS: i32 = 3;
    const MAX_EVENTS: usize = 100;
    const MAX_IN_FLIGHT: usize = 2;

    let brokers = kafka::brokers();
    let topic = kafka::unique("backpressure");
    let group = kafka::unique("backpressure-group");
    kafka::create_topic(&brokers, &topic, PARTITIONS).await;
    let values: Vec<String> = (0..EVENTS).map(|i| format!("{{\"n\":{i}}}")).collect();
    kafka::produce_values(&brokers, &topic, PARTITIONS, &values).await;

    let source: SourceConfig = toml::from_str(&format!(
        r#"
        type = "kafka"
        brokers = "{brokers}"
        topics = ["{topic}"]
        group_id = "{group}"
        options = {options}
        "#,
        options = kafka::group_options_toml()
    ))
    .expect("source config");
    let source = source
        .validate("in", std::path::Path::new("."))
        .expect("offline checks")
        .build(&SourceContext {
            name: "in".into(),
            pipeline: "backpressure".into(),
            config_dir: ".".into(),
        })
        .await
        .expect("kafka source");

    let sink = Arc::new(SlowSink {
        written: AtomicUsize::new(0),
        per_write: Duration::from_millis(20),
    });
    let out = NamedSink {
        name: "slow".into(),
        sink: Arc::clone(&sink) as Arc<dyn Sink>,
    };
    let pipeline = Pipeline::new(PipelineParts {
        name: "backpressure".into(),
        source_name: "in".into(),
        source,
        chains: vec![Vec::new()],
        flow: weir::pipeline::FlowConfig::default(),
        default_route: out.clone(),
        routes: BTreeMap::from([("slow".to_owned(), out)]),
        dead_letter: None,
        batch: BatchConfig {
            max_events: MAX_EVENTS,
            max_wait_ms: 50,
            max_in_flight: MAX_IN_FLIGHT,
        },
        retry: RetryConfig::default(),
    });
    let stats = pipeline.stats();
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(pipeline.run(shutdown.clone()));

    // Sample the queue depth while the sink works through the backlog.
    let mut samples = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    while sink.written.load(Ordering::SeqCst) < EVENTS {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {EVENTS} events delivered: {:?}",
            sink.written.load(Ordering::SeqCst),
            stats.snapshot()
        );
        samples.push(stats.snapshot().in_flight_events);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown.cancel();
    run.await.expect("pipeline task").expect("pipeline");

    let bound = (MAX_EVENTS * MAX_IN_FLIGHT) as u64;
    let s = stats.snapshot();
    assert!(
        s.max_in_flight_events <= bound,
        "held {} events at once with {EVENTS} waiting; the bound is {bound}",
        s.max_in_flight_events
    );
    assert!(
        samples.iter().all(|&d| d <= bound),
        "a sampled queue depth exceeded {bound}"
    );
    assert_eq!(s.events_in, EVENTS as u64, "{s:?}");
    assert_eq!(s.in_flight_events, 0);

    // Everything delivered was committed: the group's offsets are at the
    // end of each partition (values were spread round robin on a new topic).
    let committed = kafka::committed(&brokers, &group, &topic, PARTITIONS);
    let ends: BTreeMap<i32, i64> = (0..PARTITIONS)
        .map(|p| {
            (
                p,
                (0..EVENTS).filter(|i| *i as i32 % PARTITIONS == p).count() as i64,
            )
        })
        .collect();
    assert_eq!(committed, ends);
}
