//! Outages of Redis and MongoDB servers in the middle of a stream of
//! writes: while a server is down (stopped for 10 s) every write of the
//! sink fails as *transient*, so the pipeline retries it; once the server
//! is back the same sink object writes again by itself, and every output is
//! in the database.
//!
//! The last test does the same under the whole pipeline (real Kafka →
//! plugin → Redis): the consumer group's committed offsets never pass an
//! event whose commands are not in Redis.
//!
//! Each test stops only a server it started itself on a port of its own
//! ([`PrivateServer`]), never the shared ones other tests use; stopping
//! checks that the server is the test's and that it really went down.

use weir_tests::kafka;
use weir_tests::private_server::PrivateServer;
use weir_tests::stores;

use std::sync::Arc;
use std::time::Duration;

use mongodb::bson::{Document, doc};
use serde_json::json;
use stores::{build_sink, mongo_at, out, redis_at, unique, write_through};
use tokio::sync::Mutex;
use weir::event::Output;

const BATCHES: usize = 40;
const PER_BATCH: usize = 250;
/// Between two batches, so that the writes span the outage.
const PAUSE: Duration = Duration::from_millis(300);

fn batches() -> Vec<Vec<Output>> {
    (0..BATCHES)
        .map(|b| {
            (0..PER_BATCH)
                .map(|j| out(json!({"i": b * PER_BATCH + j, "batch": b})))
                .collect()
        })
        .collect()
}

/// Stop `server` after 2 s, keep it down 10 s, start it again. The caller
/// keeps its own handle: dropping the last one kills the server.
async fn outage(server: Arc<Mutex<PrivateServer>>) {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = server.clone();
    tokio::task::spawn_blocking(move || s.blocking_lock().stop())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    tokio::task::spawn_blocking(move || server.blocking_lock().start_again())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_is_transient_and_loses_nothing() {
    let server = Arc::new(Mutex::new(PrivateServer::redis()));
    let url = server.lock().await.redis_url();
    redis_at(&url).await;
    let p = unique("outage");
    let sink = build_sink(
        "cache",
        &format!(
            "type = \"redis\"\nurl = \"{url}\"\n[[commands]]\ncmd = \"SET\"\nkey = \"{p}:{{value.i}}\"\n"
        ),
    )
    .await;
    let writer = tokio::spawn(write_through(sink, batches(), PAUSE));
    outage(server.clone()).await;
    let transient = writer.await.unwrap();
    assert!(
        transient > 0,
        "the writes during the outage failed as transient"
    );
    let mut r = redis_at(&url).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{p}:*"))
        .query_async(&mut r)
        .await
        .unwrap();
    assert_eq!(keys.len(), BATCHES * PER_BATCH, "every output is in Redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_outage_is_transient_and_loses_nothing() {
    let server = Arc::new(Mutex::new(PrivateServer::mongodb()));
    let uri = server.lock().await.mongo_uri();
    mongo_at(&uri).await;
    let db = unique("outage");
    let sink = build_sink(
        "events",
        &format!(
            "type = \"mongodb\"\nuri = \"{uri}\"\ndatabase = \"{db}\"\ncollection = \"events\"\nid_fields = [\"i\"]\n"
        ),
    )
    .await;
    let writer = tokio::spawn(write_through(sink, batches(), PAUSE));
    outage(server.clone()).await;
    let transient = writer.await.unwrap();
    assert!(
        transient > 0,
        "the writes during the outage failed as transient"
    );
    let client = mongo_at(&uri).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_rides_out_a_redis_outage_and_never_commits_past_unwritten_events() {
    use redis::AsyncCommands;
    use std::collections::BTreeMap;
    use tokio_util::sync::CancellationToken;
    use weir::config::Config;
    use weir::runtime::Runtime;

    let mut server = PrivateServer::redis();
    let url = server.redis_url();
    let brokers = kafka::brokers();
    let topic = kafka::unique("outage-sessions");
    let group = kafka::unique("weir-outage");
    kafka::create_topic(&brokers, &topic, 3).await;
    let p = unique("pipe_outage");
    let total = 2400;

    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/sessions/weir-kafka.toml");
    let text = std::fs::read_to_string(path)
        .unwrap()
        .replace(
            "brokers = \"127.0.0.1:19092\"",
            &format!("brokers = \"{brokers}\""),
        )
        .replace(
            "topics = [\"user-sessions\"]",
            &format!("topics = [\"{topic}\"]"),
        )
        .replace(
            "group_id = \"weir-sessions\"",
            &format!("group_id = \"{group}\""),
        )
        .replace(
            "start = \"earliest\"",
            &format!(
                "start = \"earliest\"\noptions = {}",
                kafka::group_options_toml()
            ),
        )
        .replace("redis://127.0.0.1:16379/0", &url);
    let text = text.replace(
        "batch = { max_events = 1000, max_wait_ms = 100 }",
        "batch = { max_events = 100, max_wait_ms = 50 }\nretry = { initial_ms = 100, max_ms = 1000 }",
    );
    let plugin_dir = std::path::Path::new(weir_tests::plugins::TRANSFORM)
        .parent()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let env = move |name: &str| (name == "WEIR_PLUGIN_DIR").then(|| plugin_dir.clone());
    let dir = tempfile::tempdir().unwrap();
    let loaded = Config::load_str(&text, &dir.path().join("weir.toml"), &env)
        .unwrap_or_else(|e| panic!("config loads: {e:?}"));
    let runtime = Runtime::build(&loaded.config, &loaded.dir)
        .await
        .expect("runtime builds");
    let stop = CancellationToken::new();
    let running = tokio::spawn(runtime.run(stop.clone()));

    // A steady stream: 100 events every 250 ms for about 6 s.
    let producer = {
        let (brokers, topic, p) = (brokers.clone(), topic.clone(), p.clone());
        tokio::spawn(async move {
            for chunk in 0..total / 100 {
                let msgs: Vec<kafka::Msg> = (chunk * 100..chunk * 100 + 100)
                    .map(|i| {
                        let user = format!("{p}-u{}", i % 13);
                        kafka::Msg {
                            key: Some(user.clone().into_bytes()),
                            value: Some(json!({"session_id": format!("{p}-s{i}"), "user_id": user, "ip": "10.0.0.1"}).to_string().into_bytes()),
                            ..kafka::Msg::default()
                        }
                    })
                    .collect();
                kafka::produce(&brokers, &topic, &msgs).await;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };

    tokio::time::sleep(Duration::from_secs(2)).await;
    let server = tokio::task::spawn_blocking(move || {
        server.stop();
        server
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    // Mid-outage: what the group has committed so far.
    let during: BTreeMap<i32, i64> = {
        let (b, g, t) = (brokers.clone(), group.clone(), topic.clone());
        tokio::task::spawn_blocking(move || kafka::committed(&b, &g, &t, 3))
            .await
            .unwrap()
    };
    let during_sum: i64 = during.values().sum();
    assert!(
        (during_sum as usize) < total,
        "with Redis down the group cannot have committed everything: {during:?}"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let _server = tokio::task::spawn_blocking(move || {
        let mut server = server;
        server.start_again();
        server
    })
    .await
    .unwrap();
    producer.await.unwrap();

    // The pipeline catches up by itself.
    let mut r = redis_at(&url).await;
    let mut present = 0;
    for _ in 0..600 {
        let keys: Vec<String> = r.keys(format!("session:{p}-s*")).await.unwrap();
        present = keys.len();
        if present == total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(present, total, "every event reached Redis after the outage");
    stop.cancel();
    running.await.unwrap().expect("the pipeline stops cleanly");

    // Every event below the offsets committed during the outage had been
    // written before the server went away (and survived its restart).
    let messages = kafka::read_topic(&brokers, &topic, total, Duration::from_secs(20));
    assert_eq!(messages.len(), total);
    for m in &messages {
        if m.offset < during.get(&m.partition).copied().unwrap_or(0) {
            let session = m.json()["session_id"].as_str().unwrap().to_owned();
            let there: bool = r.exists(format!("session:{session}")).await.unwrap();
            assert!(
                there,
                "offset {} of partition {} was committed before {session} was written",
                m.offset, m.partition
            );
        }
    }
    let committed: i64 = kafka::committed(&brokers, &group, &topic, 3).values().sum();
    assert_eq!(
        committed as usize, total,
        "everything is committed in the end"
    );
}

/// The ownership checks themselves: a port another process holds is never
/// taken for the test's server, and stopping a server that is not running
/// fails saying so instead of reporting an outage that did not happen.
#[test]
fn a_server_the_test_does_not_control_is_refused_with_that_reason() {
    let mut server = PrivateServer::redis();
    server.stop();
    let squatter = std::net::TcpListener::bind(("127.0.0.1", server.port)).expect("bind the port");
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| server.start_again()))
        .expect_err("start_again on a taken port must fail");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        msg.contains("is served by another process: the test does not control that server"),
        "{msg}"
    );
    drop(squatter);
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| server.stop()))
        .expect_err("stopping a server that is not running must fail");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        msg.contains("is not running: nothing of the test's to stop"),
        "{msg}"
    );
}
