//! Throughput of the MongoDB, Redis, PostgreSQL and ClickHouse sinks
//! against the same servers driven directly by their clients, with the same
//! batch size, in the same run.
//!
//! ```text
//! scripts/services start redis mongodb postgres clickhouse
//! cargo bench -p weir-tests --bench nosql_sinks            # 200k outputs
//! WEIR_BENCH_OUTPUTS=50000 WEIR_BENCH_ROUNDS=1 WEIR_BENCH_ONLY=mongodb \
//!     cargo bench -p weir-tests --bench nosql_sinks
//! ```
//!
//! Each case writes the same outputs (JSON values of ~150 bytes) in batches
//! of 1000. The direct runs get the field values ready-made (no JSON
//! parsing): what a hand-written consumer for one fixed schema would send.
//! The sink runs start from the JSON bytes an output carries. Runs
//! alternate (direct, sink, direct, sink; `WEIR_BENCH_ROUNDS`) and the best
//! of each is reported. `WEIR_BENCH_ONLY=redis|mongodb|postgres|clickhouse`
//! runs one server.

use std::time::Instant;

use futures::TryStreamExt;
use mongodb::bson::{Document, doc};
use mongodb::options::{ReplaceOneModel, UpdateOneModel, WriteModel};
use weir::event::Output;
use weir::sink::{SinkConfig, SinkContext};

const BATCH: usize = 1000;
const REDIS_URL: &str = "redis://127.0.0.1:16379/15";
const MONGO_URI: &str = "mongodb://127.0.0.1:17017/?serverSelectionTimeoutMS=3000";
const DB: &str = "weir_bench";
const POSTGRES_URL: &str = "postgresql://postgres@127.0.0.1:15432/postgres";
const CLICKHOUSE_URL: &str = "http://127.0.0.1:18123/";

struct Event {
    event_id: String,
    user_id: String,
    session_id: String,
    url: String,
    amount: f64,
    json: Vec<u8>,
}

fn events(n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let event_id = format!("e{i:08}");
            let user_id = format!("u{}", i % 5000);
            let session_id = format!("s{}", i % 20000);
            let url = format!("/products/{}", i % 300);
            let amount = (i % 100) as f64 + 0.5;
            let json = serde_json::json!({
                "event_id": event_id, "user_id": user_id, "session_id": session_id,
                "url": url, "amount": amount, "event_type": "purchase", "ts": 1_763_700_000_000_i64 + i as i64,
            })
            .to_string()
            .into_bytes();
            Event { event_id, user_id, session_id, url, amount, json }
        })
        .collect()
}

fn outputs(evs: &[Event]) -> Vec<Output> {
    evs.iter()
        .map(|e| Output {
            value: Some(e.json.clone().into()),
            ..Output::default()
        })
        .collect()
}

async fn build(name: &str, table: &str) -> std::sync::Arc<dyn weir::sink::Sink> {
    let config: SinkConfig = toml::from_str(table).expect("bench sink config");
    let ctx = SinkContext {
        name: name.to_owned(),
        config_dir: ".".into(),
    };
    let config = config
        .validate(name, &ctx.config_dir)
        .unwrap_or_else(|p| panic!("bench sink config: {p:?}"));
    match config.build(&ctx).await {
        Ok(s) => s,
        Err(e) => panic!("{e}\nstart the servers with: scripts/services start redis mongodb"),
    }
}

/// Rounds per case (`WEIR_BENCH_ROUNDS`, default 2); the best is reported.
fn rounds() -> usize {
    std::env::var("WEIR_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2)
}

fn rate(n: usize, start: Instant) -> f64 {
    n as f64 / start.elapsed().as_secs_f64()
}

async fn redis_flush(conn: &mut redis::aio::MultiplexedConnection) {
    let _: () = redis::cmd("FLUSHDB")
        .query_async(conn)
        .await
        .expect("FLUSHDB");
}

/// Redis: `SET session:{session_id} <json> EX 1800` + `SADD user:{user_id}:sessions {session_id}`.
async fn redis_case(evs: &[Event], outs: &[Output]) -> (f64, f64) {
    let client = redis::Client::open(REDIS_URL).unwrap();
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| {
            panic!("Redis at {REDIS_URL}: {e}\nstart it with: scripts/services start redis")
        });
    let sink = build(
        "bench_redis",
        &format!(
            "type = \"redis\"\nurl = \"{REDIS_URL}\"\n\
             [[commands]]\ncmd = \"SET\"\nkey = \"session:{{value.session_id}}\"\nttl_seconds = 1800\n\
             [[commands]]\ncmd = \"SADD\"\nkey = \"user:{{value.user_id}}:sessions\"\nmembers = [\"{{value.session_id}}\"]\n"
        ),
    )
    .await;
    let (mut best_direct, mut best_sink) = (0f64, 0f64);
    for _ in 0..rounds() {
        redis_flush(&mut conn).await;
        let start = Instant::now();
        for chunk in evs.chunks(BATCH) {
            let mut pipe = redis::pipe();
            for e in chunk {
                pipe.cmd("SET")
                    .arg(format!("session:{}", e.session_id))
                    .arg(&e.json[..])
                    .arg("EX")
                    .arg(1800);
                pipe.cmd("SADD")
                    .arg(format!("user:{}:sessions", e.user_id))
                    .arg(&e.session_id);
            }
            let _: Vec<redis::Value> = pipe.query_async(&mut conn).await.expect("direct pipeline");
        }
        best_direct = best_direct.max(rate(evs.len(), start));

        redis_flush(&mut conn).await;
        let start = Instant::now();
        for chunk in outs.chunks(BATCH) {
            let rejected = sink.write(chunk).await.expect("sink write");
            assert!(rejected.is_empty());
        }
        best_sink = best_sink.max(rate(outs.len(), start));
    }
    let keys: usize = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    assert_eq!(
        keys,
        20_000.min(evs.len()) + 5000.min(evs.len()),
        "the sink wrote every key"
    );
    redis_flush(&mut conn).await;
    (best_direct, best_sink)
}

async fn mongo_reset(client: &mongodb::Client) {
    client
        .database(DB)
        .drop()
        .await
        .expect("drop bench database");
}

/// MongoDB replace-upsert by `event_id` into `user_events`.
async fn mongo_replace_case(
    client: &mongodb::Client,
    evs: &[Event],
    outs: &[Output],
) -> (f64, f64) {
    let sink = build(
        "bench_mongo",
        &format!(
            "type = \"mongodb\"\nuri = \"{MONGO_URI}\"\ndatabase = \"{DB}\"\ncollection = \"user_events\"\n\
             write_model = \"replace\"\nid_fields = [\"event_id\"]\n"
        ),
    )
    .await;
    let ns = mongodb::Namespace::new(DB, "user_events");
    let (mut best_direct, mut best_sink) = (0f64, 0f64);
    for _ in 0..rounds() {
        mongo_reset(client).await;
        let start = Instant::now();
        for chunk in evs.chunks(BATCH) {
            let models: Vec<WriteModel> = chunk
                .iter()
                .map(|e| {
                    let d = doc! {
                        "_id": &e.event_id, "event_id": &e.event_id, "user_id": &e.user_id,
                        "session_id": &e.session_id, "url": &e.url, "amount": e.amount,
                        "event_type": "purchase", "ts": 0_i64,
                    };
                    ReplaceOneModel::builder()
                        .namespace(ns.clone())
                        .filter(doc! { "_id": &e.event_id })
                        .replacement(d)
                        .upsert(true)
                        .build()
                        .into()
                })
                .collect();
            client
                .bulk_write(models)
                .ordered(false)
                .await
                .expect("direct bulk write");
        }
        best_direct = best_direct.max(rate(evs.len(), start));

        mongo_reset(client).await;
        let start = Instant::now();
        for chunk in outs.chunks(BATCH) {
            assert!(sink.write(chunk).await.expect("sink write").is_empty());
        }
        best_sink = best_sink.max(rate(outs.len(), start));
    }
    let n = client
        .database(DB)
        .collection::<Document>("user_events")
        .count_documents(doc! {})
        .await
        .unwrap();
    assert_eq!(n as usize, evs.len(), "the sink wrote every document");
    (best_direct, best_sink)
}

/// MongoDB update with a deduplicated `$inc` per user (running totals).
async fn mongo_totals_case(client: &mongodb::Client, evs: &[Event], outs: &[Output]) -> (f64, f64) {
    let sink = build(
        "bench_totals",
        &format!(
            "type = \"mongodb\"\nuri = \"{MONGO_URI}\"\ndatabase = \"{DB}\"\ncollection = \"user_totals\"\n\
             write_model = \"update\"\nid_fields = [\"user_id\"]\nset_fields = [\"user_id\"]\n\
             inc = {{ total_amount = \"amount\", purchases = 1 }}\ndedup_field = \"event_id\"\n"
        ),
    )
    .await;
    let ns = mongodb::Namespace::new(DB, "user_totals");
    let (mut best_direct, mut best_sink) = (0f64, 0f64);
    for _ in 0..rounds() {
        mongo_reset(client).await;
        let start = Instant::now();
        for chunk in evs.chunks(BATCH) {
            let models: Vec<WriteModel> = chunk
                .iter()
                .map(|e| {
                    UpdateOneModel::builder()
                        .namespace(ns.clone())
                        .filter(doc! { "_id": &e.user_id, "_applied": { "$ne": &e.event_id } })
                        .update(doc! {
                            "$set": { "user_id": &e.user_id },
                            "$inc": { "total_amount": e.amount, "purchases": 1_i64 },
                            "$push": { "_applied": { "$each": [&e.event_id], "$slice": -1000 } },
                        })
                        .upsert(true)
                        .build()
                        .into()
                })
                .collect();
            client
                .bulk_write(models)
                .ordered(false)
                .await
                .expect("direct bulk write");
        }
        best_direct = best_direct.max(rate(evs.len(), start));

        mongo_reset(client).await;
        let start = Instant::now();
        for chunk in outs.chunks(BATCH) {
            assert!(sink.write(chunk).await.expect("sink write").is_empty());
        }
        best_sink = best_sink.max(rate(outs.len(), start));
    }
    let docs: Vec<Document> = client
        .database(DB)
        .collection::<Document>("user_totals")
        .find(doc! {})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let counted: i64 = docs.iter().map(|d| d.get_i64("purchases").unwrap()).sum();
    assert_eq!(counted as usize, evs.len(), "every event counted once");
    (best_direct, best_sink)
}

async fn pg_exec(client: &tokio_postgres::Client, sql: &str) {
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// PostgreSQL: upsert by `event_id` of 5 columns. Direct: one prepared
/// `INSERT ... SELECT FROM unnest(typed arrays) ON CONFLICT DO UPDATE` per
/// batch, the efficient hand-written form.
async fn postgres_case(evs: &[Event], outs: &[Output]) -> (f64, f64) {
    let (client, conn) = tokio_postgres::connect(POSTGRES_URL, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL at {POSTGRES_URL}: {e}\nstart it with: scripts/services start postgres"
            )
        });
    tokio::spawn(conn);
    pg_exec(
        &client,
        "DROP TABLE IF EXISTS weir_bench_events; CREATE TABLE weir_bench_events \
         (event_id text PRIMARY KEY, user_id text, url text, amount double precision, ts bigint)",
    )
    .await;
    let sink = build(
        "bench_postgres",
        &format!(
            "type = \"postgres\"\nurl = \"{POSTGRES_URL}\"\ntable = \"weir_bench_events\"\nkey = [\"event_id\"]\n\
             mapping = {{ event_id = \"value.event_id\", user_id = \"value.user_id\", url = \"value.url\", amount = \"value.amount\", ts = \"value.ts\" }}\n"
        ),
    )
    .await;
    let direct = client
        .prepare(
            "INSERT INTO weir_bench_events (event_id, user_id, url, amount, ts) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::int8[]) \
             ON CONFLICT (event_id) DO UPDATE SET user_id = EXCLUDED.user_id, url = EXCLUDED.url, \
             amount = EXCLUDED.amount, ts = EXCLUDED.ts",
        )
        .await
        .expect("prepare");
    let ts: Vec<i64> = (0..evs.len() as i64)
        .map(|i| 1_763_700_000_000 + i)
        .collect();
    let (mut best_direct, mut best_sink) = (0f64, 0f64);
    for _ in 0..rounds() {
        pg_exec(&client, "TRUNCATE weir_bench_events").await;
        let start = Instant::now();
        for (c, chunk) in evs.chunks(BATCH).enumerate() {
            let ids: Vec<&str> = chunk.iter().map(|e| e.event_id.as_str()).collect();
            let users: Vec<&str> = chunk.iter().map(|e| e.user_id.as_str()).collect();
            let urls: Vec<&str> = chunk.iter().map(|e| e.url.as_str()).collect();
            let amounts: Vec<f64> = chunk.iter().map(|e| e.amount).collect();
            let tss = &ts[c * BATCH..c * BATCH + chunk.len()];
            client
                .execute(&direct, &[&ids, &users, &urls, &amounts, &tss])
                .await
                .expect("direct upsert");
        }
        best_direct = best_direct.max(rate(evs.len(), start));

        pg_exec(&client, "TRUNCATE weir_bench_events").await;
        let start = Instant::now();
        for chunk in outs.chunks(BATCH) {
            let rejected = sink.write(chunk).await.expect("sink write");
            assert!(rejected.is_empty(), "{rejected:?}");
        }
        best_sink = best_sink.max(rate(outs.len(), start));
    }
    let n: i64 = client
        .query_one("SELECT count(*) FROM weir_bench_events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n as usize, evs.len(), "the sink wrote every row");
    pg_exec(&client, "DROP TABLE weir_bench_events").await;
    (best_direct, best_sink)
}

async fn ch_query(http: &reqwest::Client, query: &str, body: String) -> String {
    // Without a body the query is the body (old servers refuse a POST
    // without Content-Length).
    let req = if body.is_empty() {
        http.post(CLICKHOUSE_URL).body(query.to_owned())
    } else {
        http.post(CLICKHOUSE_URL)
            .query(&[("query", query)])
            .body(body)
    };
    let resp = req.send().await.unwrap_or_else(|e| {
        panic!(
            "ClickHouse at {CLICKHOUSE_URL}: {e}\nstart it with: scripts/services start clickhouse"
        )
    });
    let status = resp.status();
    let text = resp.text().await.expect("clickhouse body");
    assert!(status.is_success(), "{query}: {text}");
    text
}

/// ClickHouse: INSERT of 5 columns. Direct: the same `JSONEachRow` body
/// formatted from ready-made fields and POSTed with the same HTTP client.
async fn clickhouse_case(evs: &[Event], outs: &[Output]) -> (f64, f64) {
    let http = reqwest::Client::new();
    ch_query(
        &http,
        "DROP TABLE IF EXISTS weir_bench_events",
        String::new(),
    )
    .await;
    ch_query(
        &http,
        "CREATE TABLE weir_bench_events (event_id String, user_id String, url String, amount Float64, ts UInt64) \
         ENGINE = MergeTree ORDER BY event_id",
        String::new(),
    )
    .await;
    let sink = build(
        "bench_clickhouse",
        &format!(
            "type = \"clickhouse\"\nurl = \"{CLICKHOUSE_URL}\"\ntable = \"weir_bench_events\"\n\
             mapping = {{ event_id = \"value.event_id\", user_id = \"value.user_id\", url = \"value.url\", amount = \"value.amount\", ts = \"value.ts\" }}\n"
        ),
    )
    .await;
    let insert =
        "INSERT INTO weir_bench_events (event_id, user_id, url, amount, ts) FORMAT JSONEachRow";
    let (mut best_direct, mut best_sink) = (0f64, 0f64);
    for _ in 0..rounds() {
        ch_query(&http, "TRUNCATE TABLE weir_bench_events", String::new()).await;
        let start = Instant::now();
        for (c, chunk) in evs.chunks(BATCH).enumerate() {
            let mut body = String::with_capacity(chunk.len() * 120);
            for (i, e) in chunk.iter().enumerate() {
                body.push_str(&format!(
                    "{{\"event_id\":\"{}\",\"user_id\":\"{}\",\"url\":\"{}\",\"amount\":{},\"ts\":{}}}\n",
                    e.event_id,
                    e.user_id,
                    e.url,
                    e.amount,
                    1_763_700_000_000_i64 + (c * BATCH + i) as i64
                ));
            }
            ch_query(&http, insert, body).await;
        }
        best_direct = best_direct.max(rate(evs.len(), start));

        ch_query(&http, "TRUNCATE TABLE weir_bench_events", String::new()).await;
        let start = Instant::now();
        for chunk in outs.chunks(BATCH) {
            let rejected = sink.write(chunk).await.expect("sink write");
            assert!(rejected.is_empty(), "{rejected:?}");
        }
        best_sink = best_sink.max(rate(outs.len(), start));
    }
    let n = ch_query(
        &http,
        "SELECT count() FROM weir_bench_events",
        String::new(),
    )
    .await;
    assert_eq!(n.trim(), evs.len().to_string(), "the sink wrote every row");
    ch_query(&http, "DROP TABLE weir_bench_events", String::new()).await;
    (best_direct, best_sink)
}

fn row(name: &str, n: usize, (direct, sink): (f64, f64)) {
    println!(
        "| {name} | {n} | {BATCH} | {direct:.0} | {sink:.0} | {:.1} % |",
        100.0 * sink / direct
    );
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs a smoke size.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("WEIR_BENCH_OUTPUTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if smoke { 5_000 } else { 200_000 });
    let which = std::env::var("WEIR_BENCH_ONLY").unwrap_or_default();
    let evs = events(n);
    let outs = outputs(&evs);
    println!(
        "| case | outputs | batch | direct driver (outputs/s) | weir sink (outputs/s) | sink / direct |"
    );
    println!("|---|---|---|---|---|---|");
    if which.is_empty() || which == "redis" {
        row(
            "Redis SET EX + SADD (2 commands/output)",
            n,
            redis_case(&evs, &outs).await,
        );
    }
    if which.is_empty() || which == "mongodb" {
        let client = mongodb::Client::with_uri_str(MONGO_URI)
            .await
            .expect("mongodb uri");
        row(
            "MongoDB replace-upsert by event_id",
            n,
            mongo_replace_case(&client, &evs, &outs).await,
        );
        row(
            "MongoDB update $set + deduplicated $inc",
            n,
            mongo_totals_case(&client, &evs, &outs).await,
        );
        mongo_reset(&client).await;
    }
    if which.is_empty() || which == "postgres" {
        row(
            "PostgreSQL upsert ON CONFLICT by event_id",
            n,
            postgres_case(&evs, &outs).await,
        );
    }
    if which.is_empty() || which == "clickhouse" {
        row(
            "ClickHouse INSERT JSONEachRow",
            n,
            clickhouse_case(&evs, &outs).await,
        );
    }
}
