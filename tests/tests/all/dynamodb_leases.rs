//! Lease handovers and shard discovery lose nothing: a failing or racing
//! DescribeStream never makes a live shard look vanished, a lease started
//! at `latest` that moves before its first checkpoint resumes where its
//! first holder started, and a take whose write applied although the call
//! reported a failure does not leave a lease no reader serves. Scripted
//! streams, leases in moto.
//!
//! Needs moto: `scripts/services start dynamodb` (or `WEIR_TEST_DYNAMODB`).

use weir_tests::dynamodb_support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use dynamodb_support::*;
use weir::dynamodb::aws_sdk_dynamodb as ddb;
use weir::dynamodb::aws_sdk_dynamodb::config::interceptors::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextRef,
};
use weir::dynamodb::aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use weir::dynamodb::aws_sdk_dynamodb::error::BoxError;
use weir::source::Source;
use weir::source::dynamodb_streams::DynamoDbStreamsSource;
use weir::source::dynamodb_streams::leases::{LeaseTable, Position};
use weir::source::dynamodb_streams::streams::StreamsError;

fn open_shard(id: &str, to: u64) -> FakeShard {
    FakeShard {
        id: id.into(),
        parent: None,
        closed: false,
        records: (1..=to).map(|q| (q, format!("{id}-{q}"))).collect(),
        trim_below: 0,
    }
}

fn seqs(events: &[weir::event::Event]) -> BTreeSet<(String, u64)> {
    events.iter().map(shard_seq).collect()
}

fn range(shard: &str, from: u64, to: u64) -> BTreeSet<(String, u64)> {
    (from..=to).map(|q| (shard.to_string(), q)).collect()
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(40);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The stored checkpoint of a shard's lease.
async fn checkpoint(lease_table: &str, shard: &str) -> String {
    let out = client()
        .await
        .scan()
        .table_name(lease_table)
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    out.items()
        .iter()
        .find(|i| i["shard_id"].as_s().ok().map(String::as_str) == Some(shard))
        .and_then(|i| i["checkpoint"].as_s().ok().cloned())
        .unwrap_or_else(|| panic!("no lease for shard {shard}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_describe_never_finishes_another_hosts_new_shard() {
    let stream = FakeStream::new(vec![open_shard("s0", 10)]);
    let failing = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicU32::new(0));
    let (f, n) = (Arc::clone(&failing), Arc::clone(&failed));
    // Host A sees the stream through a DescribeStream that can be throttled.
    let a_view = stream.with_describe_hook(Arc::new(move |shape| {
        let (f, n) = (Arc::clone(&f), Arc::clone(&n));
        Box::pin(async move {
            if f.load(Ordering::Relaxed) {
                n.fetch_add(1, Ordering::Relaxed);
                Err(StreamsError::Transient(
                    "ThrottlingException: rate of requests exceeds the allowed throughput".into(),
                ))
            } else {
                Ok(shape)
            }
        })
    }));
    let leases = unique("leases");
    // One shard per host, so B (not A) takes the new shard.
    let cfg = fake_source_config(
        &leases,
        "describe",
        "on_data_loss = \"skip\"\nmax_leases = 1",
    );
    let a = start_fake_source(&cfg, &a_view).await;
    assert_eq!(
        seqs(&read(&a, 10, Duration::from_secs(30), true).await),
        range("s0", 1, 10)
    );

    // From now on A's describes fail; a new shard appears, and host B
    // (whose describes work) creates its lease and reads it.
    failing.store(true, Ordering::Relaxed);
    stream.shards.lock().unwrap().push(open_shard("s1", 10));
    let b = start_fake_source(&cfg, &stream).await;
    assert_eq!(
        seqs(&read(&b, 10, Duration::from_secs(30), true).await),
        range("s1", 1, 10)
    );
    // A goes through several shard syncs whose describe fails while s1's
    // lease exists.
    let base = failed.load(Ordering::Relaxed);
    wait_for("three failed describes on A", || {
        failed.load(Ordering::Relaxed) >= base + 3
    })
    .await;

    // s1 is still B's, unfinished, and what arrives in it is read.
    assert_eq!(b.held_shards(), ["s1"]);
    assert_ne!(checkpoint(&leases, "s1").await, "SHARD_END");
    stream.append("s1", 11, 20);
    assert_eq!(
        seqs(&read(&b, 10, Duration::from_secs(30), true).await),
        range("s1", 11, 20)
    );
    a.close().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_found_by_another_host_between_describe_and_listing_is_not_lost() {
    let stream = FakeStream::new(vec![open_shard("s0", 5)]);
    let leases = unique("leases");
    let group = "race";
    let armed = Arc::new(AtomicBool::new(false));
    let raced = Arc::new(AtomicBool::new(false));
    let (arm, done) = (Arc::clone(&armed), Arc::clone(&raced));
    let (shards, arn, table) = (
        Arc::clone(&stream.shards),
        stream.arn.clone(),
        leases.clone(),
    );
    // Once armed, A's next describe answers the stream as it was, and
    // before the answer arrives the stream gains s1 and another host
    // creates s1's lease (as a host describing a moment later would).
    let a_view = stream.with_describe_hook(Arc::new(move |shape| {
        let (arm, done) = (Arc::clone(&arm), Arc::clone(&done));
        let (shards, arn, table) = (Arc::clone(&shards), arn.clone(), table.clone());
        Box::pin(async move {
            if arm.swap(false, Ordering::Relaxed) {
                shards.lock().unwrap().push(open_shard("s1", 10));
                let other = LeaseTable::new(client().await, table, format!("{group}@{arn}"));
                assert!(
                    other
                        .create("s1", None, &Position::TrimHorizon)
                        .await
                        .unwrap()
                );
                done.store(true, Ordering::Relaxed);
            }
            Ok(shape)
        })
    }));
    // on_data_loss = "fail" (the default): a shard seen as vanished would
    // stop the source with an error from next_batch.
    let cfg = fake_source_config(&leases, group, "");
    let a = start_fake_source(&cfg, &a_view).await;
    assert_eq!(
        seqs(&read(&a, 5, Duration::from_secs(30), true).await),
        range("s0", 1, 5)
    );
    armed.store(true, Ordering::Relaxed);
    wait_for("the race", || raced.load(Ordering::Relaxed)).await;
    // A reads s1 in full, without an error.
    assert_eq!(
        seqs(&read(&a, 10, Duration::from_secs(30), true).await),
        range("s1", 1, 10)
    );
    assert_eq!(a.held_shards(), ["s0", "s1"]);
    a.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latest_lease_moved_before_its_first_checkpoint_resumes_where_its_first_holder_read() {
    let stream = FakeStream::new(vec![open_shard("s0", 20)]);
    let leases = unique("leases");
    let cfg = fake_source_config(&leases, "latest", "start_position = \"latest\"");
    let a = start_fake_source(&cfg, &stream).await;
    // A holds s0 and has polled it from its newest record on.
    wait_for("A to hold s0", || a.held_shards() == ["s0"]).await;
    let polled = stream.records_calls();
    wait_for("A to poll", || stream.records_calls() > polled).await;
    stream.append("s0", 21, 30);
    // A reads the new records, then crashes before committing any of them.
    assert_eq!(
        seqs(&read(&a, 10, Duration::from_secs(30), false).await),
        range("s0", 21, 30)
    );
    a.abandon();

    // B takes the lease over once it expires; more records arrive after.
    let b = start_fake_source(&cfg, &stream).await;
    wait_for("B to hold s0", || b.held_shards() == ["s0"]).await;
    let polled = stream.records_calls();
    wait_for("B to poll", || stream.records_calls() > polled).await;
    stream.append("s0", 31, 35);
    // B delivers what A read and never committed, and what came after.
    let got = read(&b, 15, Duration::from_secs(30), true).await;
    assert_eq!(seqs(&got), range("s0", 21, 35));
    assert_eq!(got.len(), 15, "no record twice within B");
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latest_lease_moved_before_any_record_arrived_misses_nothing_written_since() {
    let stream = FakeStream::new(vec![open_shard("s0", 20)]);
    let leases = unique("leases");
    let cfg = fake_source_config(&leases, "latest-idle", "start_position = \"latest\"");
    let a = start_fake_source(&cfg, &stream).await;
    wait_for("A to hold s0", || a.held_shards() == ["s0"]).await;
    let polled = stream.records_calls();
    wait_for("A to poll", || stream.records_calls() > polled).await;
    // A crashes before any record arrived; records arrive while nobody
    // reads the shard (records 1..=20 are from long before the start).
    a.abandon();
    stream.recent_from.store(21, Ordering::Relaxed);
    stream.append("s0", 21, 25);
    let b = start_fake_source(&cfg, &stream).await;
    let got = read(&b, 5, Duration::from_secs(30), true).await;
    assert_eq!(seqs(&got), range("s0", 21, 25));
    // Nothing from before A's start arrives either.
    let more = read(&b, 1, Duration::from_secs(2), true).await;
    assert!(
        more.is_empty(),
        "older records delivered: {:?}",
        seqs(&more)
    );
    b.close().await.unwrap();
}

/// Answers the first lease take with a server error after DynamoDB applied
/// it, so the SDK retries a write that already happened (its condition then
/// fails), as after a lost response.
#[derive(Debug, Default)]
struct LoseFirstTakeResponse {
    take_in_flight: AtomicBool,
    fired: Arc<AtomicU32>,
}

impl Intercept for LoseFirstTakeResponse {
    fn name(&self) -> &'static str {
        "LoseFirstTakeResponse"
    }

    fn read_before_transmit(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let body = ctx.request().body().bytes().unwrap_or_default();
        let is_take = String::from_utf8_lossy(body).contains("\"SET #o = :o, heartbeat_ms");
        if is_take && self.fired.load(Ordering::Relaxed) == 0 {
            self.take_in_flight.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        ctx: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if self.take_in_flight.swap(false, Ordering::Relaxed) {
            *ctx.response_mut().status_mut() = 500u16.try_into().expect("a status code");
            self.fired.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_take_applied_but_reported_failed_leaves_no_lease_unread() {
    let stream = FakeStream::new(vec![open_shard("s0", 10)]);
    let fired = Arc::new(AtomicU32::new(0));
    let sdk = connection().load().await;
    let lease_client = ddb::Client::from_conf(
        ddb::config::Builder::from(&sdk)
            .interceptor(LoseFirstTakeResponse {
                take_in_flight: AtomicBool::new(false),
                fired: Arc::clone(&fired),
            })
            .build(),
    );
    let cfg = fake_source_config(&unique("leases"), "orphan", "");
    let source: DynamoDbStreamsSource = DynamoDbStreamsSource::with_clients(
        &cfg,
        &source_ctx("test"),
        Arc::new(stream.clone()),
        lease_client,
    )
    .await
    .expect("source");
    let got = read(&source, 10, Duration::from_secs(30), true).await;
    assert_eq!(
        fired.load(Ordering::Relaxed),
        1,
        "the take's answer was lost"
    );
    // The only host reads the shard although its take "failed".
    assert_eq!(seqs(&got), range("s0", 1, 10));
    source.close().await.unwrap();
}

/// A stream record without its `dynamodb` part carries no item and no
/// sequence number: it is handed on as an unreadable event (so the pipeline
/// dead-letters it) whose reason names the shard, the event ID and the
/// sequence number it came after, and the records around it go on, their
/// checkpoint included. Before, it was dropped without a word.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_record_without_its_dynamodb_part_is_dead_lettered_not_skipped() {
    let stream = FakeStream::new(vec![open_shard("s0", 6)]);
    stream.malformed.lock().unwrap().insert(4);
    let leases = unique("leases");
    let cfg = fake_source_config(&leases, "malformed", "");
    let source = start_fake_source(&cfg, &stream).await;

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut events = Vec::new();
    let mut unreadable = Vec::new();
    while events.len() < 6 && Instant::now() < deadline {
        let batch = source
            .next_batch(6 - events.len(), Duration::from_millis(200))
            .await
            .expect("next_batch");
        for u in &batch.unreadable {
            unreadable.push((events.len() + u.index, u.reason.clone()));
        }
        events.extend(batch.events);
        source.commit(batch.checkpoint).await.expect("commit");
    }
    let origins: Vec<&str> = events.iter().map(|e| e.origin.as_str()).collect();
    assert_eq!(
        origins,
        [
            "fake/s0/1",
            "fake/s0/2",
            "fake/s0/3",
            "fake/s0/3+",
            "fake/s0/5",
            "fake/s0/6"
        ]
    );
    assert_eq!(
        unreadable,
        [(
            3,
            "stream record has no `dynamodb` part (table `fake`, shard s0, event ID \
             malformed-4, read after sequence number 3): it carries no item"
                .to_owned()
        )]
    );
    let described: serde_json::Value =
        serde_json::from_slice(events[3].value.as_deref().expect("value")).expect("json");
    assert_eq!(described["event_id"], "malformed-4");
    assert_eq!(described["after_sequence_number"], "3");
    assert_eq!(checkpoint(&leases, "s0").await, "6");
    source.close().await.unwrap();
}
