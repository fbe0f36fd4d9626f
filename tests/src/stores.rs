//! Helpers of the MongoDB and Redis tests: the real servers' addresses
//! (failing loudly with how to start them), unique names, outputs, building
//! a sink, and writing batches through an outage.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use weir::event::{Header, Op, Output};
use weir::sink::{Sink, SinkConfig, SinkContext, SinkError};

/// The repository root (the directory of the sinks' relative paths).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Redis URL of the test server (`WEIR_TEST_REDIS` overrides).
pub fn redis_url() -> String {
    std::env::var("WEIR_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:16379/".to_owned())
}

/// The MongoDB URI of the test server (`WEIR_TEST_MONGODB` overrides),
/// with short timeouts so an outage shows up as an error within seconds.
pub fn mongo_uri() -> String {
    let base = std::env::var("WEIR_TEST_MONGODB")
        .unwrap_or_else(|_| "mongodb://127.0.0.1:17017/".to_owned());
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}serverSelectionTimeoutMS=2000&connectTimeoutMS=2000")
}

/// A connection to the test Redis, or a panic saying how to start it.
pub async fn redis() -> redis::aio::MultiplexedConnection {
    redis_at(&redis_url()).await
}

/// A connection to the Redis at `url` once it answers PING.
pub async fn redis_at(url: &str) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(url).expect("valid redis url");
    let mut conn = match client.get_multiplexed_async_connection().await {
        Ok(c) => c,
        Err(e) => panic!(
            "Redis is not reachable at {url}: {e}\nstart it with: scripts/services start redis"
        ),
    };
    // Wait while a restarted server loads its append-only file.
    for _ in 0..100 {
        match redis::cmd("PING").query_async::<String>(&mut conn).await {
            Ok(_) => return conn,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("Redis at {url} does not answer PING; start it with: scripts/services start redis")
}

/// A client of the test MongoDB, or a panic saying how to start it.
pub async fn mongo() -> mongodb::Client {
    mongo_at(&mongo_uri()).await
}

/// A client of the MongoDB at `uri` once it answers a ping.
pub async fn mongo_at(uri: &str) -> mongodb::Client {
    let client = mongodb::Client::with_uri_str(uri)
        .await
        .expect("valid mongodb uri");
    if let Err(e) = client
        .database("admin")
        .run_command(mongodb::bson::doc! { "ping": 1 })
        .await
    {
        panic!(
            "MongoDB is not reachable at {uri}: {e}\nstart it with: scripts/services start mongodb"
        );
    }
    client
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
        % 100_000_000;
    format!(
        "{prefix}_{t}_{}_{}",
        std::process::id() % 10_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// An upsert output with a JSON value.
pub fn out(value: serde_json::Value) -> Output {
    Output {
        value: Some(value.to_string().into()),
        ..Output::default()
    }
}

/// An output with a key and a JSON value.
pub fn keyed(key: &str, value: serde_json::Value) -> Output {
    Output {
        key: Some(key.to_owned().into()),
        ..out(value)
    }
}

/// A delete output.
pub fn delete(key: Option<&str>, value: Option<serde_json::Value>) -> Output {
    Output {
        key: key.map(|k| k.to_owned().into()),
        value: value.map(|v| v.to_string().into()),
        op: Op::Delete,
        ..Output::default()
    }
}

/// Add a header.
pub fn with_header(mut o: Output, name: &str, value: &str) -> Output {
    o.headers.push(Header::new(name, value.to_owned()));
    o
}

/// Build a sink from a `[sinks.NAME]` TOML table body (with its `type`).
pub async fn build_sink(name: &str, table: &str) -> Arc<dyn Sink> {
    let config: SinkConfig =
        toml::from_str(table).unwrap_or_else(|e| panic!("bad sink config: {e}\n{table}"));
    let ctx = SinkContext {
        name: name.to_owned(),
        config_dir: repo_root(),
    };
    let config = config
        .validate(name, &ctx.config_dir)
        .unwrap_or_else(|p| panic!("sink `{name}` is invalid: {p:?}\n{table}"));
    match config.build(&ctx).await {
        Ok(s) => s,
        Err(e) => panic!("sink `{name}` did not build: {e}"),
    }
}

/// How long one write of [`write_through`] may take. Longer than any bound a
/// sink puts on its own writes (the MongoDB sink's bulk write gives up after
/// 30 s), so a sink that honours its bounds never trips it; one that hangs
/// fails the test with a message instead of hanging the suite.
pub const WRITE_BOUND: Duration = Duration::from_secs(60);

/// Write every batch the way the pipeline does: retry a batch on a
/// transient error until it is written, wait `pause` between batches (so
/// that the writes span an outage); return how many transient errors were
/// seen. A fatal error, a rejected output, or one write that takes longer
/// than [`WRITE_BOUND`] fails the test.
pub async fn write_through(
    sink: Arc<dyn Sink>,
    batches: Vec<Vec<Output>>,
    pause: Duration,
) -> usize {
    let mut transient = 0;
    for (index, batch) in batches.iter().enumerate() {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let written = tokio::time::timeout(WRITE_BOUND, sink.write(batch))
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "write {attempt} of batch {index} ({} outputs) neither succeeded nor \
                         failed within {WRITE_BOUND:?}: the sink hangs instead of reporting \
                         the outage",
                        batch.len()
                    )
                });
            match written {
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
        tokio::time::sleep(pause).await;
    }
    transient
}
