//! Shard lineage, expired iterators, trimmed data and the reader limit, on
//! a scripted stream (moto never splits, expires or trims shards); leases
//! and checkpoints live in moto.
//!
//! Needs moto: `scripts/services start dynamodb` (or `WEIR_TEST_DYNAMODB`).

use weir_tests::dynamodb_support;

use std::collections::HashMap;
use std::time::Duration;

use dynamodb_support::*;
use weir::source::{Source, SourceError};

const WAIT: Duration = Duration::from_secs(30);

fn shard(
    id: &str,
    parent: Option<&str>,
    closed: bool,
    seqs: std::ops::RangeInclusive<u64>,
) -> FakeShard {
    FakeShard {
        id: id.into(),
        parent: parent.map(Into::into),
        closed,
        records: seqs.map(|s| (s, format!("{id}-{s}"))).collect(),
        trim_below: 0,
    }
}

#[tokio::test]
async fn no_child_record_is_emitted_before_its_parents_last_record() {
    // root -> (left, right); left -> grandchild. Listed children first.
    let stream = FakeStream::new(vec![
        shard("grandchild", Some("left"), false, 400..=420),
        shard("right", Some("root"), true, 300..=340),
        shard("left", Some("root"), true, 200..=230),
        shard("root", None, true, 100..=160),
    ]);
    let cfg = fake_source_config(&unique("leases"), "lineage", "");
    let source = start_fake_source(&cfg, &stream).await;
    let total = 61 + 31 + 41 + 21;
    let batches = read_batches(&source, 25, WAIT, |n| n >= total).await;
    let events: Vec<(String, u64)> = batches
        .iter()
        .flat_map(|(evs, _)| evs.iter().map(shard_seq))
        .collect();
    assert_eq!(events.len(), total, "every record once");

    let position = |shard: &str, seq: u64| {
        events
            .iter()
            .position(|e| e.0 == shard && e.1 == seq)
            .unwrap()
    };
    let first_of = |shard: &str| events.iter().position(|e| e.0 == shard).unwrap();
    assert!(first_of("left") > position("root", 160));
    assert!(first_of("right") > position("root", 160));
    assert!(first_of("grandchild") > position("left", 230));
    // Within a shard, sequence order.
    let mut last: HashMap<&str, u64> = HashMap::new();
    for (s, q) in &events {
        if let Some(prev) = last.insert(s.as_str(), *q) {
            assert!(*q > prev, "{s}: {q} after {prev}");
        }
    }
    // One reader per shard at a time (DynamoDB allows two).
    assert_eq!(stream.log.lock().unwrap().max_in_flight, 1);
    source.close().await.unwrap();
}

#[tokio::test]
async fn expired_iterators_are_renewed_without_loss_or_repeats() {
    let mut stream = FakeStream::new(vec![shard("only", None, false, 1..=100)]);
    stream.expire_every = 3;
    let cfg = fake_source_config(&unique("leases"), "expiry", "");
    let source = start_fake_source(&cfg, &stream).await;
    let events = read(&source, 100, WAIT, true).await;
    let seqs: Vec<u64> = events.iter().map(|e| shard_seq(e).1).collect();
    assert_eq!(seqs, (1..=100).collect::<Vec<_>>());
    assert!(stream.log.lock().unwrap().expired > 0);
    source.close().await.unwrap();
}

#[tokio::test]
async fn records_trimmed_before_they_were_read_stop_the_source_loudly() {
    let stream = FakeStream::new(vec![shard("s1", None, false, 1..=10)]);
    let leases = unique("leases");
    let cfg = fake_source_config(&leases, "trim", "");
    let first = start_fake_source(&cfg, &stream).await;
    assert_eq!(read(&first, 10, WAIT, true).await.len(), 10);
    first.close().await.unwrap();

    // While nothing reads, records 11..=60 arrive and 1..=49 are trimmed.
    {
        let mut shards = stream.shards.lock().unwrap();
        shards[0]
            .records
            .extend((11..=60).map(|s| (s, format!("s1-{s}"))));
        shards[0].trim_below = 50;
    }
    let second = start_fake_source(&cfg, &stream).await;
    let err = loop {
        match second.next_batch(100, Duration::from_millis(500)).await {
            Ok(b) => assert!(
                b.events.is_empty(),
                "read past a gap: {:?}",
                b.events.first()
            ),
            Err(e) => break e,
        }
    };
    let SourceError::Fatal(msg) = err else {
        panic!("not fatal: {err:?}")
    };
    let msg = msg.to_string();
    assert!(
        msg.starts_with("records of shard s1 of table fake after sequence number 10 were trimmed (24 h retention) before they were read"),
        "{msg}"
    );
    assert!(
        msg.ends_with("set on_data_loss = \"skip\" to go on"),
        "{msg}"
    );
    second.abandon();

    // With on_data_loss = "skip" the source goes on from the oldest record left.
    let skip = fake_source_config(&leases, "trim", "on_data_loss = \"skip\"");
    let third = start_fake_source(&skip, &stream).await;
    let events = read(&third, 11, WAIT, true).await;
    let seqs: Vec<u64> = events.iter().map(|e| shard_seq(e).1).collect();
    assert_eq!(seqs, (50..=60).collect::<Vec<_>>());
    third.close().await.unwrap();
}
