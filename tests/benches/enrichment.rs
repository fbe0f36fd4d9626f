//! Events/s of the clickstream example's purchases pipeline (Kafka →
//! `filter` → `enrich` with the buyer's profile from MongoDB → `router` →
//! two MongoDB sinks) with the lookup cache, without it, and without the
//! enrichment at all, in one run; and the same three with two file sinks
//! in place of MongoDB's, where the sinks no longer hide what the lookups
//! cost.
//!
//! ```text
//! scripts/services start kafka mongodb
//! cargo bench -p weir-tests --bench enrichment      # 2 rounds
//! WEIR_BENCH_EVENTS=50000 WEIR_BENCH_MONGODB_EVENTS=5000 WEIR_BENCH_ROUNDS=1 \
//!     cargo bench -p weir-tests --bench enrichment
//! ```
//!
//! The MongoDB runs read `WEIR_BENCH_MONGODB_EVENTS` (20,000) purchases,
//! the file runs `WEIR_BENCH_EVENTS` (200,000).
//!
//! Every event is a purchase of one of 300 users, 250 of whom have a
//! profile, produced once to a topic of 3 partitions of the real broker
//! (the example's `weir-kafka.toml`) and read by each run with a consumer
//! group of its own, in batches of 1000. The three variants run one
//! after the other in each round and the best of each is reported; the
//! time is from the first event read to the pipeline's end (every output
//! written and committed), so start-up and the consumer group's join are
//! not counted. Without the cache each batch costs one MongoDB `find`
//! (the plugin's prefetch); with it, a user's profile is fetched once.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use weir::config::Config;
use weir::runtime::Runtime;
use weir_tests::kafka::{self, Msg};
use weir_tests::plugins::{ENRICH_PLUGIN, FILTER, ROUTER};
use weir_tests::stores;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Plain,
    Cached,
    Uncached,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Plain => "no enrichment",
            Variant::Cached => "enriched, cache on",
            Variant::Uncached => "enriched, cache off",
        }
    }
}

/// Where the purchases are written.
#[derive(Clone, Copy, PartialEq)]
enum Sinks {
    /// The example's two MongoDB sinks.
    Mongodb,
    /// Two files, so that the lookups' own cost shows.
    Files,
}

fn sinks(kind: Sinks, mongo: &str, db: &str) -> String {
    match kind {
        Sinks::Mongodb => format!(
            r#"
[sinks.user_events]
type = "mongodb"
uri = "{mongo}"
database = "{db}"
collection = "user_events"
write_model = "replace"
id_fields = ["event_id"]

[sinks.user_totals]
type = "mongodb"
uri = "{mongo}"
database = "{db}"
collection = "user_totals"
write_model = "update"
id_fields = ["user_id"]
set_fields = ["user_id"]
inc = {{ total_amount = "amount", purchases = 1 }}
"#
        ),
        Sinks::Files => format!(
            r#"
[sinks.user_events]
type = "file"
path = "out/{db}-events.jsonl"

[sinks.user_totals]
type = "file"
path = "out/{db}-totals.jsonl"
"#
        ),
    }
}

fn config(variant: Variant, kind: Sinks, topic: &str, db: &str, group: &str) -> String {
    let plugins = match variant {
        Variant::Plain => r#"["only_purchases", "fan_out"]"#,
        _ => r#"["only_purchases", "add_profile", "fan_out"]"#,
    };
    let cache = match variant {
        Variant::Uncached => "{ max_entries = 0 }",
        _ => "{ max_entries = 10000, ttl_ms = 60000 }",
    };
    let mongo = stores::mongo_uri();
    let brokers = kafka::brokers();
    let group_options = kafka::group_options_toml();
    let sinks = sinks(kind, &mongo, db);
    format!(
        r#"
[sources.user_events]
type = "kafka"
brokers = "{brokers}"
topics = ["{topic}"]
group_id = "{group}"
start = "earliest"
stop_at_end = true
options = {group_options}

[plugins.only_purchases]
path = "{FILTER}"
config = {{ field = "event_type", equals = "purchase", action = "keep" }}

[plugins.add_profile]
path = "{ENRICH_PLUGIN}"
lookups = ["profiles"]
config = {{ store = "profiles", key = "user_id", into = "profile", on_missing = "default", default = '{{"plan": "unknown"}}' }}

[lookups.profiles]
type = "mongodb"
url = "{mongo}"
database = "{db}"
collection = "user_profiles"
projection = ["plan", "country"]
cache = {cache}

[plugins.fan_out]
path = "{ROUTER}"
config = {{ field = "event_type", default = "user_events+user_totals" }}

{sinks}
[pipelines.purchases]
source = "user_events"
plugins = {plugins}
default_route = "user_events"
routes = {{ user_totals = "user_totals" }}
batch = {{ max_events = 1000, max_wait_ms = 100 }}
"#
    )
}

/// Run one variant to the end; events/s from the first event read.
async fn run(text: &str, dir: &Path, events: usize) -> f64 {
    let loaded = Config::load_str(text, &dir.join("weir.toml"), &|_: &str| None)
        .unwrap_or_else(|e| panic!("the bench config loads: {e:?}"));
    let runtime = Runtime::build(&loaded.config, &loaded.dir)
        .await
        .expect("the bench runtime builds");
    let stats = runtime.stats();
    let running = tokio::spawn(runtime.run(CancellationToken::new()));
    let mut first = None;
    while !running.is_finished() {
        if first.is_none() && stats.iter().any(|(_, s)| s.snapshot().events_in > 0) {
            first = Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let end = Instant::now();
    running
        .await
        .expect("the pipeline task")
        .expect("the pipeline ends cleanly");
    let outputs: u64 = stats.iter().map(|(_, s)| s.snapshot().outputs).sum();
    assert_eq!(
        outputs as usize,
        2 * events,
        "every purchase written to both sinks"
    );
    let elapsed = end - first.expect("events were read");
    events as f64 / elapsed.as_secs_f64()
}

/// `n` purchases of 300 users, keyed by user.
fn purchases(n: usize) -> Vec<Msg> {
    (0..n)
        .map(|i| {
            let user = format!("u{:04}", (i * 7919) % 300);
            let value = format!(
                "{{\"event_id\":\"ev{i:07}\",\"user_id\":\"{user}\",\"event_type\":\"purchase\",\"amount\":{}.5,\"ts\":{}}}",
                i % 200,
                1_763_700_000_000_u64 + i as u64 * 500
            );
            Msg {
                key: Some(user.into_bytes()),
                value: Some(value.into_bytes()),
                ..Msg::default()
            }
        })
        .collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let events = env_usize("WEIR_BENCH_EVENTS", 200_000);
    let rounds = env_usize("WEIR_BENCH_ROUNDS", 2);
    let client = stores::mongo().await;
    let db = stores::unique("bench_enrich");
    let dir = tempfile::tempdir().expect("temp dir");

    let brokers = kafka::brokers();
    // The MongoDB sinks take about a thousand writes a second on the test
    // server: their runs read fewer events.
    let mongo_events = env_usize("WEIR_BENCH_MONGODB_EVENTS", 20_000).min(events);
    let topics = [
        (kafka::unique("bench-enrich-mongodb"), mongo_events),
        (kafka::unique("bench-enrich-files"), events),
    ];
    for (topic, n) in &topics {
        kafka::create_topic(&brokers, topic, 3).await;
        kafka::produce(&brokers, topic, &purchases(*n)).await;
    }
    let plans = ["free", "plus", "pro"];
    client
        .database(&db)
        .collection::<mongodb::bson::Document>("user_profiles")
        .insert_many((0..250).map(|u| {
            mongodb::bson::doc! {"_id": format!("u{u:04}"), "plan": plans[u % 3], "country": "FR"}
        }))
        .await
        .expect("profiles");

    let variants = [Variant::Plain, Variant::Cached, Variant::Uncached];
    let kinds = [Sinks::Mongodb, Sinks::Files];
    let mut best = [[0.0_f64; 3]; 2];
    for round in 0..rounds {
        for (k, &kind) in kinds.iter().enumerate() {
            for (i, &variant) in variants.iter().enumerate() {
                // A database of its own per run, so each writes new documents.
                let run_db = format!("{db}_{round}_{k}_{i}");
                client
                    .database(&db)
                    .collection::<mongodb::bson::Document>("user_profiles")
                    .aggregate([
                        mongodb::bson::doc! {"$out": {"db": &run_db, "coll": "user_profiles"}},
                    ])
                    .await
                    .expect("copy the profiles");
                let group = format!("{db}-{round}-{k}-{i}");
                let (topic, n) = &topics[k];
                let text = config(variant, kind, topic, &run_db, &group);
                let rate = run(&text, dir.path(), *n).await;
                println!(
                    "round {}, {:<8} {:<22} {:>9.0} events/s",
                    round + 1,
                    kind.name(),
                    variant.name(),
                    rate
                );
                best[k][i] = best[k][i].max(rate);
                client.database(&run_db).drop().await.expect("drop run db");
            }
        }
    }
    client.database(&db).drop().await.expect("drop bench db");
    println!("\nbest of {rounds}:");
    for (k, kind) in kinds.iter().enumerate() {
        println!("  {} purchases to {}:", topics[k].1, kind.name());
        for (i, variant) in variants.iter().enumerate() {
            println!(
                "  {:<8} {:<22} {:>9.0} events/s  {:.2}x no enrichment",
                kind.name(),
                variant.name(),
                best[k][i],
                best[k][i] / best[k][0]
            );
        }
    }
}

impl Sinks {
    fn name(self) -> &'static str {
        match self {
            Sinks::Mongodb => "mongodb",
            Sinks::Files => "files",
        }
    }
}
