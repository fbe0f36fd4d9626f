//! Records/s of a DynamoDB Streams pipeline against a plain GetRecords loop
//! over the same stream, in the same run.
//!
//! ```text
//! scripts/services start dynamodb
//! cargo bench -p weir-tests --bench dynamodb_stream                # 20k records
//! WEIR_BENCH_RECORDS=50000 cargo bench -p weir-tests --bench dynamodb_stream
//! ```
//!
//! The table gets N items of ~250 bytes (a NEW_IMAGE stream). The plain
//! loop is what a hand-written consumer does at the least: one iterator
//! from the trim horizon, GetRecords of 1000 until N records arrived (the
//! SDK parses them; nothing else is done with them). The pipeline reads the
//! same stream from the trim horizon with a fresh lease group (lease table
//! setup, lease take, attribute -> JSON conversion, checkpoints after every
//! batch), runs the `filter` example plugin set to pass every event (it
//! parses each value), and writes JSON lines to a file (no fsync); its time
//! runs from building the pipeline until the file sink acknowledged N
//! outputs. Runs alternate (plain, pipeline) three times; the best of each
//! is reported.
//!
//! moto serves well under a thousand records/s, which hides the host's own
//! cost, so a second comparison reads an in-memory scripted stream (the
//! tests' `StreamsApi`, pages of 1000 small records, no network): a plain
//! loop over its GetRecords against the source alone (`next_batch` of
//! 1000 and a checkpoint commit to the lease table in moto per batch).

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use tokio_util::sync::CancellationToken;
use weir::config::Config;
use weir::dynamodb::aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, PutRequest,
    ScalarAttributeType, StreamSpecification, StreamViewType, WriteRequest,
};
use weir::dynamodb::aws_sdk_dynamodbstreams::types::ShardIteratorType;
use weir::dynamodb::client::AwsConnection;
use weir::runtime::Runtime;
use weir::source::Source as _;
use weir::source::dynamodb_streams::streams::{IteratorStart, StreamsApi as _};

use weir_tests::dynamodb_support;

fn endpoint() -> String {
    std::env::var("WEIR_TEST_DYNAMODB").unwrap_or_else(|_| "http://127.0.0.1:15000".into())
}

fn connection() -> AwsConnection {
    AwsConnection {
        endpoint: Some(endpoint()),
        region: Some("us-east-1".into()),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
    }
}

async fn load(client: &weir::dynamodb::aws_sdk_dynamodb::Client, table: &str, n: usize) {
    let requests: Vec<Vec<WriteRequest>> = (0..n)
        .map(|i| {
            let put = PutRequest::builder()
                .item("id", AttributeValue::S(format!("user-{i:08}")))
                .item("name", AttributeValue::S(format!("User number {i}")))
                .item("email", AttributeValue::S(format!("user{i}@example.com")))
                .item(
                    "country",
                    AttributeValue::S(["FR", "DE", "US", "JP"][i % 4].into()),
                )
                .item("score", AttributeValue::N(format!("{}.5", i % 1000)))
                .item("visits", AttributeValue::N((i % 97).to_string()))
                .item("active", AttributeValue::Bool(i % 3 != 0))
                .item(
                    "tags",
                    AttributeValue::L(vec![
                        AttributeValue::S("a".into()),
                        AttributeValue::S("b".into()),
                    ]),
                )
                .item(
                    "address",
                    AttributeValue::M(
                        [
                            ("city".to_string(), AttributeValue::S("Lyon".into())),
                            ("zip".to_string(), AttributeValue::S("69001".into())),
                        ]
                        .into(),
                    ),
                )
                .build()
                .expect("put request");
            WriteRequest::builder().put_request(put).build()
        })
        .collect::<Vec<_>>()
        .chunks(25)
        .map(<[WriteRequest]>::to_vec)
        .collect();
    let calls: Vec<_> = requests
        .into_iter()
        .map(|chunk| client.batch_write_item().request_items(table, chunk).send())
        .collect();
    let results: Vec<_> = futures::stream::iter(calls)
        .buffer_unordered(8)
        .collect()
        .await;
    for r in results {
        r.expect("batch write");
    }
}

async fn plain_loop(
    client: &weir::dynamodb::aws_sdk_dynamodbstreams::Client,
    arn: &str,
    n: usize,
) -> Duration {
    let started = Instant::now();
    let desc = client
        .describe_stream()
        .stream_arn(arn)
        .send()
        .await
        .expect("describe stream");
    let shard = desc.stream_description().unwrap().shards()[0]
        .shard_id()
        .unwrap()
        .to_string();
    let mut iterator = client
        .get_shard_iterator()
        .stream_arn(arn)
        .shard_id(shard)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .expect("iterator")
        .shard_iterator
        .expect("an iterator");
    let mut count = 0;
    while count < n {
        let page = client
            .get_records()
            .shard_iterator(&iterator)
            .limit(1000)
            .send()
            .await
            .expect("get records");
        count += page.records().len();
        iterator = page.next_shard_iterator.expect("open shard");
    }
    started.elapsed()
}

async fn pipeline_run(
    table: &str,
    dir: &std::path::Path,
    filter: &str,
    n: usize,
    round: usize,
) -> Duration {
    let text = format!(
        r#"
[host]
cache_dir = {cache:?}

[sources.changes]
type = "dynamodb_streams"
table = "{table}"
endpoint = "{endpoint}"
region = "us-east-1"
access_key_id = "test"
secret_access_key = "test"
lease_table = "weir_bench_leases"
lease_group = "bench-{round}-{pid}"
poll_min_ms = 0

[plugins.pass]
path = {filter:?}
config = {{ field = "__never_present__", exists = true, action = "drop" }}

[sinks.out]
type = "file"
path = "out-{round}.jsonl"
fsync = false

[pipelines.bench]
source = "changes"
plugins = ["pass"]
default_route = "out"
batch = {{ max_events = 1000, max_wait_ms = 50, max_in_flight = 4 }}
"#,
        cache = dir.join("cache").display().to_string(),
        endpoint = endpoint(),
        pid = std::process::id(),
    );
    let config: Config = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let started = Instant::now();
    let runtime = Runtime::build(&config, dir).await.expect("runtime");
    let stats = runtime.stats();
    let stop = CancellationToken::new();
    let running = tokio::spawn(runtime.run(stop.clone()));
    loop {
        let done: u64 = stats.iter().map(|(_, s)| s.snapshot().outputs).sum();
        if done >= n as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let took = started.elapsed();
    stop.cancel();
    running.await.expect("join").expect("pipeline");
    took
}

/// Plain loop and source over the same in-memory stream of `n` records.
async fn in_memory(n: u64) -> (Duration, Duration) {
    use dynamodb_support::{FakeShard, FakeStream, fake_source_config, start_fake_source, unique};
    let mut stream = FakeStream::new(vec![FakeShard {
        id: "s0".into(),
        parent: None,
        closed: false,
        records: (1..=n).map(|s| (s, format!("user-{s:08}"))).collect(),
        trim_below: 0,
    }]);
    stream.page = 1000;
    let started = Instant::now();
    let mut it = stream
        .iterator("s0", &IteratorStart::TrimHorizon)
        .await
        .expect("iterator");
    let mut count = 0;
    while count < n as usize {
        let page = stream.records(&it, 1000).await.expect("records");
        count += page.records.len();
        it = page.next_iterator.expect("open shard");
    }
    let plain = started.elapsed();

    let cfg = fake_source_config("weir_bench_leases", &unique("bench-mem"), "");
    let started = Instant::now();
    let source = start_fake_source(&cfg, &stream).await;
    let mut count = 0;
    while count < n as usize {
        let batch = source
            .next_batch(1000, Duration::from_millis(50))
            .await
            .expect("next_batch");
        count += batch.events.len();
        source.commit(batch.checkpoint).await.expect("commit");
    }
    let took = started.elapsed();
    source.close().await.expect("close");
    (plain, took)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::var("WEIR_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let sdk = connection().load().await;
    let ddb = weir::dynamodb::aws_sdk_dynamodb::Client::new(&sdk);
    let streams = weir::dynamodb::aws_sdk_dynamodbstreams::Client::new(&sdk);
    let table = format!(
        "bench-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    );
    let created = ddb
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(KeySchemaElement::builder().attribute_name("id").key_type(KeyType::Hash).build().unwrap())
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewImage)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot create a table at {}: {e:?} — start moto with `scripts/services start dynamodb`",
                endpoint()
            )
        });
    let arn = created
        .table_description()
        .unwrap()
        .latest_stream_arn()
        .unwrap()
        .to_string();
    let loading = Instant::now();
    load(&ddb, &table, n).await;
    eprintln!("loaded {n} items in {:.1?}", loading.elapsed());

    let dir = tempfile::tempdir().unwrap();
    let filter = weir_tests::plugins::FILTER;
    // Warm up: compile the plugin into the cache.
    pipeline_run(&table, dir.path(), filter, 1, 0).await;
    let (mut plain_best, mut weir_best) = (Duration::MAX, Duration::MAX);
    for round in 1..=3 {
        let plain = plain_loop(&streams, &arn, n).await;
        let weir = pipeline_run(&table, dir.path(), filter, n, round).await;
        eprintln!(
            "round {round}: plain {:.0} records/s, pipeline {:.0} records/s",
            n as f64 / plain.as_secs_f64(),
            n as f64 / weir.as_secs_f64()
        );
        plain_best = plain_best.min(plain);
        weir_best = weir_best.min(weir);
    }
    let plain_rate = n as f64 / plain_best.as_secs_f64();
    let weir_rate = n as f64 / weir_best.as_secs_f64();
    println!("records: {n}");
    println!("plain GetRecords loop: {plain_rate:.0} records/s ({plain_best:.2?})");
    println!("weir pipeline:         {weir_rate:.0} records/s ({weir_best:.2?})");
    println!(
        "pipeline / plain:      {:.1} %",
        100.0 * weir_rate / plain_rate
    );

    let m: u64 = std::env::var("WEIR_BENCH_MEMORY_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let (mut plain_best, mut source_best) = (Duration::MAX, Duration::MAX);
    for round in 1..=3 {
        let (plain, source) = in_memory(m).await;
        eprintln!(
            "in-memory round {round}: plain {:.0} records/s, source {:.0} records/s",
            m as f64 / plain.as_secs_f64(),
            m as f64 / source.as_secs_f64()
        );
        plain_best = plain_best.min(plain);
        source_best = source_best.min(source);
    }
    let plain_rate = m as f64 / plain_best.as_secs_f64();
    let source_rate = m as f64 / source_best.as_secs_f64();
    println!("in-memory stream, records: {m}");
    println!("plain GetRecords loop: {plain_rate:.0} records/s ({plain_best:.2?})");
    println!("source (next_batch + commit): {source_rate:.0} records/s ({source_best:.2?})");
    println!(
        "source / plain:        {:.1} %",
        100.0 * source_rate / plain_rate
    );
}
