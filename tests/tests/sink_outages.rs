//! Outages of the real Redis and MongoDB servers in the middle of a stream
//! of writes: while a server is down (stopped with `scripts/services stop`
//! for 10 s) every write of the sink fails as *transient*, so the pipeline
//! retries it; once the server is back (`scripts/services start`) the same
//! sink object writes again by itself, and every output is in the database.
//!
//! These tests stop shared servers, so they live in their own test binary
//! (cargo runs test binaries one after another) and run one at a time.

#[path = "common/stores.rs"]
mod stores;

use std::sync::Arc;
use std::time::Duration;

use mongodb::bson::{Document, doc};
use serde_json::json;
use stores::{build_sink, mongo, mongo_uri, out, redis, redis_url, services, unique};
use tokio::sync::Mutex;
use weir::event::Output;
use weir::sink::{Sink, SinkError};

/// One test at a time: both stop a server.
static SERIAL: Mutex<()> = Mutex::const_new(());

const BATCHES: usize = 40;
const PER_BATCH: usize = 250;

fn batches() -> Vec<Vec<Output>> {
    (0..BATCHES)
        .map(|b| {
            (0..PER_BATCH)
                .map(|j| out(json!({"i": b * PER_BATCH + j, "batch": b})))
                .collect()
        })
        .collect()
}

/// Write every batch the way the pipeline does: retry a batch on a
/// transient error until it is written; return how many transient errors
/// were seen.
async fn write_through(sink: Arc<dyn Sink>, batches: Vec<Vec<Output>>) -> usize {
    let mut transient = 0;
    for batch in &batches {
        loop {
            match sink.write(batch).await {
                Ok(rejected) => {
                    assert!(rejected.is_empty(), "{rejected:?}");
                    break;
                }
                Err(SinkError::Transient(_)) => {
                    transient += 1;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Err(e) => panic!("a server outage must be a transient error, got: {e}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    transient
}

/// Stop `service` after 2 s, keep it down 10 s, start it again.
async fn outage(service: &'static str) {
    tokio::time::sleep(Duration::from_secs(2)).await;
    tokio::task::spawn_blocking(move || services("stop", service))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    tokio::task::spawn_blocking(move || services("start", service))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_is_transient_and_loses_nothing() {
    let _serial = SERIAL.lock().await;
    redis().await;
    let p = unique("outage");
    let sink = build_sink(
        "cache",
        &format!(
            "type = \"redis\"\nurl = \"{}\"\n[[commands]]\ncmd = \"SET\"\nkey = \"{p}:{{value.i}}\"\n",
            redis_url()
        ),
    )
    .await;
    let writer = tokio::spawn(write_through(sink, batches()));
    outage("redis").await;
    let transient = writer.await.unwrap();
    assert!(
        transient > 0,
        "the writes during the outage failed as transient"
    );
    let mut r = redis().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{p}:*"))
        .query_async(&mut r)
        .await
        .unwrap();
    assert_eq!(keys.len(), BATCHES * PER_BATCH, "every output is in Redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_outage_is_transient_and_loses_nothing() {
    let _serial = SERIAL.lock().await;
    mongo().await;
    let db = unique("outage");
    let sink = build_sink(
        "events",
        &format!(
            "type = \"mongodb\"\nuri = \"{}\"\ndatabase = \"{db}\"\ncollection = \"events\"\nid_fields = [\"i\"]\n",
            mongo_uri()
        ),
    )
    .await;
    let writer = tokio::spawn(write_through(sink, batches()));
    outage("mongodb").await;
    let transient = writer.await.unwrap();
    assert!(
        transient > 0,
        "the writes during the outage failed as transient"
    );
    let client = mongo().await;
    let n = client
        .database(&db)
        .collection::<Document>("events")
        .count_documents(doc! {})
        .await
        .unwrap();
    assert_eq!(
        n as usize,
        BATCHES * PER_BATCH,
        "every output is in MongoDB"
    );
}
