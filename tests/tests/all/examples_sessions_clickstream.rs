//! The `examples/sessions` and `examples/clickstream` pipelines end to end,
//! from their own `weir-kafka.toml`: the real Kafka-compatible broker
//! (`scripts/services start kafka`) → the example Wasm plugins → the real
//! Redis, MongoDB and ClickHouse servers (`scripts/services start redis
//! mongodb clickhouse`).
//! Each test renames the topics, groups, database and keys so runs never
//! meet, and reads to the end of the topics (`stop_at_end`).

use weir_tests::kafka;
use weir_tests::sql_servers;
use weir_tests::stores;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use futures::TryStreamExt;
use kafka::Msg;
use mongodb::bson::{Document, doc};
use redis::AsyncCommands;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use weir::config::Config;
use weir::runtime::Runtime;

fn example(name: &str) -> String {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../examples/{name}/weir-kafka.toml"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Replace `from` (which must occur) by `to`.
fn swap(text: String, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "the example config no longer contains {from:?}"
    );
    text.replace(from, to)
}

/// Point an example's real-broker config at the test services, read to
/// the end of the topics and stop.
fn for_test(text: String) -> String {
    let text = swap(
        text,
        "brokers = \"127.0.0.1:19092\"",
        &format!("brokers = \"{}\"", kafka::brokers()),
    );
    let text = swap(
        text,
        "start = \"earliest\"",
        &format!(
            "start = \"earliest\"\nstop_at_end = true\noptions = {}",
            kafka::group_options_toml()
        ),
    );
    let text = swap(text, "redis://127.0.0.1:16379/0", &stores::redis_url());
    let text = text.replace("http://127.0.0.1:18123/", &sql_servers::clickhouse_url());
    text.replace(
        "mongodb://127.0.0.1:17017/?serverSelectionTimeoutMS=5000",
        &stores::mongo_uri(),
    )
}

async fn run_to_end(text: &str, dir: &Path) {
    let plugin_dir = Path::new(weir_tests::plugins::FILTER)
        .parent()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let env = move |name: &str| (name == "WEIR_PLUGIN_DIR").then(|| plugin_dir.clone());
    let loaded = Config::load_str(text, &dir.join("weir.toml"), &env)
        .unwrap_or_else(|e| panic!("the example config loads: {e:?}"));
    let runtime = Runtime::build(&loaded.config, &loaded.dir)
        .await
        .expect("the example's runtime builds");
    tokio::time::timeout(
        Duration::from_secs(180),
        runtime.run(CancellationToken::new()),
    )
    .await
    .expect("the example pipeline reads its topics to the end and stops")
    .expect("the example pipeline ends cleanly");
}

fn dead_letter_reasons(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("out/dead-letters.jsonl")).unwrap_or_default();
    let mut reasons: Vec<String> = text
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["headers"]["weir.dlq.reason"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    reasons.sort();
    reasons
}

fn keyed_msg(key: &str, value: &str) -> Msg {
    Msg {
        key: Some(key.as_bytes().to_vec()),
        value: Some(value.as_bytes().to_vec()),
        ..Msg::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_land_in_redis_with_their_ttls_and_offsets_are_committed() {
    let brokers = kafka::brokers();
    let mut r = stores::redis().await;
    let topic = kafka::unique("user-sessions");
    let group = kafka::unique("weir-sessions");
    kafka::create_topic(&brokers, &topic, 3).await;
    let p = stores::unique("sess");

    let mut messages = Vec::new();
    let mut expected_sets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for i in 0..60 {
        let user = format!("{p}-u{}", i % 7);
        let session = format!("{p}-s{i}");
        expected_sets
            .entry(user.clone())
            .or_default()
            .insert(session.clone());
        let v = json!({"session_id": session, "user_id": user, "ip": "10.1.2.3", "device": "web", "page_count": i});
        messages.push(keyed_msg(&user, &v.to_string()));
    }
    let orphan = format!("{p}-orphan");
    messages.push(keyed_msg(
        "x",
        &json!({"session_id": orphan, "ip": "10.0.0.1"}).to_string(),
    ));
    messages.push(keyed_msg("y", "not json"));
    kafka::produce(&brokers, &topic, &messages).await;

    let text = for_test(example("sessions"));
    let text = swap(
        text,
        "topics = [\"user-sessions\"]",
        &format!("topics = [\"{topic}\"]"),
    );
    let text = swap(
        text,
        "group_id = \"weir-sessions\"",
        &format!("group_id = \"{group}\""),
    );
    let dir = tempfile::tempdir().unwrap();
    run_to_end(&text, dir.path()).await;

    for i in 0..60 {
        let key = format!("session:{p}-s{i}");
        let v: Option<String> = r.get(&key).await.unwrap();
        let v: Value = serde_json::from_str(&v.unwrap_or_else(|| panic!("{key} is set"))).unwrap();
        assert_eq!(v["ip"], "[redacted]", "{v}");
        assert_eq!(v["page_count"], i);
        assert!(v["updated_at"].is_string(), "{v}");
        let ttl: i64 = r.ttl(&key).await.unwrap();
        assert!((1..=1800).contains(&ttl), "{key} ttl {ttl}");
    }
    for (user, sessions) in &expected_sets {
        let key = format!("user:{user}:sessions");
        let members: BTreeSet<String> = r.smembers(&key).await.unwrap();
        assert_eq!(&members, sessions);
        let ttl: i64 = r.ttl(&key).await.unwrap();
        assert!((86_000..=86_400).contains(&ttl), "{key} ttl {ttl}");
    }
    let orphan_set: bool = r.exists(format!("session:{orphan}")).await.unwrap();
    assert!(!orphan_set, "a rejected output runs none of its commands");

    let reasons = dead_letter_reasons(dir.path());
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains(
            "commands[1] (SADD): key template `user:{value.user_id}:sessions`: field `value.user_id` is missing"
        )),
        "{reasons:?}"
    );
    // A new topic starts at offset 0: the committed offsets add up to the
    // number of events once every one was written or dead-lettered.
    let committed: i64 = kafka::committed(&brokers, &group, &topic, 3).values().sum();
    assert_eq!(
        committed as usize,
        messages.len(),
        "every event acknowledged before its offset was committed"
    );
}

async fn mongo_all(client: &mongodb::Client, db: &str, coll: &str) -> Vec<Document> {
    client
        .database(db)
        .collection::<Document>(coll)
        .find(doc! {})
        .sort(doc! {"_id": 1})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickstream_ranks_pages_counts_visitors_and_keeps_purchase_totals_across_a_replay() {
    let brokers = kafka::brokers();
    let mut r = stores::redis().await;
    let client = stores::mongo().await;
    let pv = kafka::unique("page-views");
    let ue = kafka::unique("user-events");
    kafka::create_topic(&brokers, &pv, 3).await;
    kafka::create_topic(&brokers, &ue, 3).await;
    let p = stores::unique("click");
    let db = stores::unique("analytics");
    // A day of its own, so the daily HyperLogLog key is this run's only.
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let ts0 = ((secs % 40_000) as i64) * 86_400_000 + 3_600_000;
    let date = weir::sink::redis::template::utc_date(&json!(ts0)).unwrap();

    let mut views = Vec::new();
    let mut expected_rank: BTreeMap<String, f64> = BTreeMap::new();
    for i in 0..40 {
        let bot = i % 10 == 9;
        let user = if bot {
            format!("{p}-bot")
        } else {
            format!("{p}-u{}", i % 6)
        };
        let url = format!("/{p}/page{}", i % 4);
        if !bot {
            *expected_rank.entry(url.clone()).or_default() += 1.0;
        }
        let v = json!({"user_id": user, "url": url, "ts": ts0 + i * 1000, "is_bot": bot});
        views.push(keyed_msg(&user, &v.to_string()));
    }
    kafka::produce(&brokers, &pv, &views).await;

    let mut events = Vec::new();
    let mut totals: BTreeMap<String, (f64, i64)> = BTreeMap::new();
    let mut purchases = BTreeSet::new();
    for i in 0..30 {
        let user = format!("{p}-u{}", i % 4);
        let kind = ["purchase", "view", "add_to_cart"][i % 3];
        let amount = if kind == "purchase" {
            i as f64 + 0.5
        } else {
            0.0
        };
        let event_id = format!("{p}-e{i}");
        if kind == "purchase" {
            let t = totals.entry(user.clone()).or_default();
            t.0 += amount;
            t.1 += 1;
            purchases.insert(event_id.clone());
        }
        let v = json!({"event_id": event_id, "user_id": user, "event_type": kind, "amount": amount, "ts": ts0});
        events.push(keyed_msg(&user, &v.to_string()));
    }
    kafka::produce(&brokers, &ue, &events).await;

    let config = |round: u32| {
        let text = for_test(example("clickstream"));
        let text = swap(
            text,
            "topics = [\"page-views\"]",
            &format!("topics = [\"{pv}\"]"),
        );
        let text = swap(
            text,
            "topics = [\"user-events\"]",
            &format!("topics = [\"{ue}\"]"),
        );
        let text = swap(
            text,
            "group_id = \"weir-clickstream-pages\"",
            &format!("group_id = \"{p}-pages-{round}\""),
        );
        let text = swap(
            text,
            "group_id = \"weir-clickstream-events\"",
            &format!("group_id = \"{p}-events-{round}\""),
        );
        swap(
            text,
            "database = \"analytics\"",
            &format!("database = \"{db}\""),
        )
    };
    // ClickHouse: the example's table, in this run's database.
    let ddl = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/clickstream/clickhouse.sql"),
    )
    .unwrap();
    for statement in ddl
        .split(';')
        .map(|s| {
            s.lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .filter(|s| !s.trim().is_empty())
    {
        sql_servers::clickhouse_query(&statement.replace("analytics", &db)).await;
    }
    let page_counts = || async {
        let text = sql_servers::clickhouse_query(&format!(
            "SELECT url, count() FROM {db}.page_views FINAL GROUP BY url ORDER BY url FORMAT TabSeparated"
        ))
        .await;
        text.lines()
            .map(|l| {
                let (url, n) = l.split_once('\t').unwrap();
                (url.to_owned(), n.parse::<f64>().unwrap())
            })
            .collect::<BTreeMap<String, f64>>()
    };

    // The profiles the purchases are enriched with: users 0 to 2 have one,
    // user 3 has none.
    let plans = ["free", "plus", "pro"];
    client
        .database(&db)
        .collection::<Document>("user_profiles")
        .insert_many((0..3).map(|u| {
            mongodb::bson::doc! {"_id": format!("{p}-u{u}"), "plan": plans[u], "country": "FR", "email": "not copied"}
        }))
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    run_to_end(&config(1), dir.path()).await;

    // ClickHouse: one row per page view that is not a bot's.
    assert_eq!(page_counts().await, expected_rank);

    // Redis: the ranking of this run's pages, and its daily unique visitors.
    for (url, score) in &expected_rank {
        let got: Option<f64> = r.zscore("top_pages:realtime", url).await.unwrap();
        assert_eq!(got, Some(*score), "{url}");
    }
    let uniques: u64 = r.pfcount(format!("unique_visitors:{date}")).await.unwrap();
    assert_eq!(uniques, 6, "bots are not counted");

    // MongoDB: one document per purchase, totals per user.
    let docs = mongo_all(&client, &db, "user_events").await;
    let ids: BTreeSet<String> = docs
        .iter()
        .map(|d| d.get_str("_id").unwrap().to_owned())
        .collect();
    assert_eq!(ids, purchases);
    assert!(
        docs.iter()
            .all(|d| d.get_str("event_type") == Ok("purchase"))
    );
    // Each purchase carries its buyer's profile (the store's projection:
    // plan and country only), or the default for the buyer without one.
    for d in &docs {
        let user = d.get_str("user_id").unwrap();
        let profile = d.get_document("profile").unwrap();
        let u: usize = user.rsplit('u').next().unwrap().parse().unwrap();
        if u < 3 {
            assert_eq!(
                profile,
                &mongodb::bson::doc! {"plan": plans[u], "country": "FR"},
                "{user}"
            );
        } else {
            assert_eq!(profile, &mongodb::bson::doc! {"plan": "unknown"}, "{user}");
        }
    }
    assert!(
        docs.iter()
            .any(|d| d.get_str("user_id").unwrap().ends_with("-u3")),
        "the buyer without a profile bought something"
    );
    let check_totals = |docs: &[Document]| {
        let got: BTreeMap<String, (f64, i64)> = docs
            .iter()
            .map(|d| {
                assert_eq!(d.get_str("user_id").unwrap(), d.get_str("_id").unwrap());
                (
                    d.get_str("_id").unwrap().to_owned(),
                    (
                        d.get_f64("total_amount").unwrap(),
                        d.get_i64("purchases").unwrap(),
                    ),
                )
            })
            .collect();
        assert_eq!(got, totals);
    };
    let first_totals = mongo_all(&client, &db, "user_totals").await;
    check_totals(&first_totals);

    for (topic, group, n) in [
        (&pv, format!("{p}-pages-1"), views.len()),
        (&ue, format!("{p}-events-1"), events.len()),
    ] {
        let committed: i64 = kafka::committed(&brokers, &group, topic, 3).values().sum();
        assert_eq!(
            committed as usize, n,
            "{topic}: every event written before its offset was committed"
        );
    }

    // A replay of both topics from the start (new consumer groups, as after
    // losing the committed offsets): MongoDB and the HyperLogLog converge.
    run_to_end(&config(2), dir.path()).await;
    assert_eq!(mongo_all(&client, &db, "user_events").await, docs);
    assert_eq!(
        mongo_all(&client, &db, "user_totals").await,
        first_totals,
        "no purchase counted twice"
    );
    let uniques_again: u64 = r.pfcount(format!("unique_visitors:{date}")).await.unwrap();
    assert_eq!(uniques_again, 6);
    // The replayed page views are the same ClickHouse rows again.
    assert_eq!(page_counts().await, expected_rank);
    // ZINCRBY is not idempotent: the replayed page views count again.
    for (url, score) in &expected_rank {
        let got: Option<f64> = r.zscore("top_pages:realtime", url).await.unwrap();
        assert_eq!(got, Some(score * 2.0), "{url}");
    }
    assert!(dead_letter_reasons(dir.path()).is_empty());
    // Leave the shared ranking as the example's own runs would see it.
    let urls: Vec<&String> = expected_rank.keys().collect();
    let _: i64 = r.zrem("top_pages:realtime", urls).await.unwrap();
}
