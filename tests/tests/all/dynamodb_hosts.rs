//! Two hosts share a stream's shards through the lease table; when one
//! crashes the other takes its shards over from the checkpoints, and no
//! record is lost. Four shards on a scripted stream (moto's streams have
//! one shard), leases in moto.
//!
//! Needs moto: `scripts/services start dynamodb` (or `WEIR_TEST_DYNAMODB`).

use weir_tests::dynamodb_support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dynamodb_support::*;
use weir::source::Source;
use weir::source::dynamodb_streams::DynamoDbStreamsSource;

/// Read and commit in a loop until `stop`; every committed event's
/// (shard, sequence) goes to `seen`.
fn drive(
    source: Arc<DynamoDbStreamsSource>,
    seen: Arc<Mutex<Vec<(String, u64)>>>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            let batch = match source.next_batch(20, Duration::from_millis(100)).await {
                Ok(b) => b,
                Err(e) => panic!("next_batch: {e}"),
            };
            let got: Vec<(String, u64)> = batch.events.iter().map(shard_seq).collect();
            if stop.load(Ordering::Relaxed) {
                return; // crashed: this batch is never committed
            }
            source.commit(batch.checkpoint).await.expect("commit");
            seen.lock().unwrap().extend(got);
        }
    })
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(40);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_share_the_shards_and_a_crash_hands_them_over() {
    let ids = ["s0", "s1", "s2", "s3"];
    let stream = FakeStream::new(
        ids.iter()
            .map(|id| FakeShard {
                id: (*id).into(),
                parent: None,
                closed: false,
                records: (1..=40).map(|s| (s, format!("{id}-{s}"))).collect(),
                trim_below: 0,
            })
            .collect(),
    );
    let cfg = fake_source_config(&unique("leases"), "hosts", "");
    let a = Arc::new(start_fake_source(&cfg, &stream).await);
    let b = Arc::new(start_fake_source(&cfg, &stream).await);
    let seen_a = Arc::new(Mutex::new(Vec::new()));
    let seen_b = Arc::new(Mutex::new(Vec::new()));
    let stop_a = Arc::new(AtomicBool::new(false));
    let stop_b = Arc::new(AtomicBool::new(false));
    let run_a = drive(Arc::clone(&a), Arc::clone(&seen_a), Arc::clone(&stop_a));
    let run_b = drive(Arc::clone(&b), Arc::clone(&seen_b), Arc::clone(&stop_b));

    // They settle on two shards each.
    wait_for("a 2/2 split", || {
        a.held_shards().len() == 2 && b.held_shards().len() == 2
    })
    .await;
    let mut all: Vec<String> = a.held_shards().into_iter().chain(b.held_shards()).collect();
    all.sort();
    assert_eq!(all, ids);

    // More records arrive and both hosts read their share of them.
    let append = |from: u64, to: u64| {
        let mut shards = stream.shards.lock().unwrap();
        for s in shards.iter_mut() {
            let id = s.id.clone();
            s.records
                .extend((from..=to).map(|q| (q, format!("{id}-{q}"))));
        }
    };
    append(41, 80);
    let read_new =
        |seen: &Arc<Mutex<Vec<(String, u64)>>>| seen.lock().unwrap().iter().any(|(_, q)| *q > 40);
    wait_for("both hosts to read new records", || {
        read_new(&seen_a) && read_new(&seen_b)
    })
    .await;
    // Yet more arrive; host A crashes (no release, last batch uncommitted).
    append(81, 120);
    stop_a.store(true, Ordering::Relaxed);
    a.abandon();
    run_a.await.unwrap();

    // B takes A's shards once their leases expire, and reads everything.
    wait_for("b to hold all shards", || b.held_shards().len() == 4).await;
    let want: BTreeSet<(String, u64)> = ids
        .iter()
        .flat_map(|id| (1..=120).map(move |q| (id.to_string(), q)))
        .collect();
    wait_for("every record", || {
        let got: BTreeSet<(String, u64)> = seen_a
            .lock()
            .unwrap()
            .iter()
            .chain(seen_b.lock().unwrap().iter())
            .cloned()
            .collect();
        got == want
    })
    .await;
    stop_b.store(true, Ordering::Relaxed);
    run_b.await.unwrap();
    b.close().await.unwrap();
}
