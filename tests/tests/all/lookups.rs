//! Lookups end to end: the real `weir run` binary reads a real topic
//! (`scripts/services start kafka`), runs the `enrich` fixture (the Rust
//! SDK's `lookup` with prefetch) against a Redis server of the test's own
//! (`weir_tests::private_server`, so stopping it touches nothing else),
//! and writes to a file sink. What is checked is what a user sees: the
//! enriched outputs, how many keys Redis was asked for (its own
//! `keyspace_hits`/`keyspace_misses` and `MGET` counts), and that a store
//! outage holds the events back instead of enriching them with nothing.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use weir_tests::kafka::{brokers, create_topic, group_options_toml, produce_values, unique};
use weir_tests::private_server::PrivateServer;
use weir_tests::weir_run::WeirRun;
use weir_tests::{plugins, weir_bin};

/// How long a condition may take (generous: the machine is shared).
const PATIENCE: Duration = Duration::from_secs(120);

fn redis(server: &PrivateServer) -> redis::Connection {
    redis::Client::open(server.redis_url())
        .and_then(|c| c.get_connection())
        .expect("connect to the test's redis")
}

/// A counter of Redis's `INFO` (`keyspace_hits`, `cmdstat_mget`'s calls).
fn info_counter(conn: &mut redis::Connection, section: &str, field: &str) -> u64 {
    let text: String = redis::cmd("INFO").arg(section).query(conn).expect("INFO");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(field) {
            let rest = rest.trim_start_matches(':');
            // `cmdstat_mget:calls=3,usec=...` or `keyspace_hits:500`.
            let number = rest.strip_prefix("calls=").unwrap_or(rest);
            let digits: String = number.chars().take_while(char::is_ascii_digit).collect();
            return digits.parse().expect("a number");
        }
    }
    0
}

/// The config: topic → `enrich` (store `users` on `redis_url`) → file.
fn config(dir: &Path, topic: &str, group: &str, redis_url: &str, stop_at_end: bool) -> String {
    format!(
        r#"[host.admin]
enabled = false

[sources.in]
type = "kafka"
brokers = "{brokers}"
topics = ["{topic}"]
group_id = "{group}"
stop_at_end = {stop_at_end}
options = {options}

[lookups.users]
type = "redis"
url = "{redis_url}"
key_template = "user:{{key}}"

[plugins.enrich]
path = "{enrich}"
lookups = ["users"]

[sinks.out]
type = "file"
path = "{out}"

[pipelines.enriched]
source = "in"
plugins = ["enrich"]
default_route = "out"
workers = 1
batch = {{ max_events = 500, max_wait_ms = 200 }}
"#,
        brokers = brokers(),
        options = group_options_toml(),
        enrich = plugins::ENRICH,
        out = dir.join("out.jsonl").display(),
    )
}

/// The outputs' values, in file order.
fn outputs(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("out.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|mut o| o["value"].take())
        .collect()
}

fn events(users: impl Iterator<Item = (i64, String)>) -> Vec<String> {
    users
        .map(|(id, user)| serde_json::json!({"id": id, "user": user}).to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_enriched_with_a_round_trip_per_batch_and_repeated_keys_come_from_the_cache() {
    let server = PrivateServer::redis();
    let mut conn = redis(&server);
    // Users u0..u999; only the even ones exist.
    for j in (0..1000).step_by(2) {
        let _: () = redis::cmd("SET")
            .arg(format!("user:u{j}"))
            .arg(format!(r#"{{"plan":"p{j}"}}"#))
            .query(&mut conn)
            .expect("SET");
    }
    let hits_before = info_counter(&mut conn, "stats", "keyspace_hits");
    let misses_before = info_counter(&mut conn, "stats", "keyspace_misses");

    // 2000 events: every user twice, the second time after the first pass.
    let topic = unique("lookup-in");
    create_topic(&brokers(), &topic, 1).await;
    let values = events((0..2000).map(|i| (i, format!("u{}", i % 1000))));
    produce_values(&brokers(), &topic, 1, &values).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let group = unique("lookup-group");
    let mut weir = WeirRun::start_in(
        dir.path(),
        &config(dir.path(), &topic, &group, &server.redis_url(), true),
    );
    weir.wait_success(PATIENCE);

    let out = outputs(dir.path());
    assert_eq!(out.len(), 2000, "{}", weir.log_text());
    for value in &out {
        let id = value["id"].as_i64().expect("id");
        let j = id % 1000;
        let expected = if j % 2 == 0 {
            serde_json::json!({"plan": format!("p{j}")})
        } else {
            serde_json::Value::Null
        };
        assert_eq!(value["found"], expected, "event {id}: {value}");
    }

    // Redis was asked for each user once: the second pass, and every
    // repeat within a batch, came from the host's cache (absent answers
    // included).
    let hits = info_counter(&mut conn, "stats", "keyspace_hits") - hits_before;
    let misses = info_counter(&mut conn, "stats", "keyspace_misses") - misses_before;
    assert_eq!(
        (hits, misses),
        (500, 500),
        "keys read from redis (hits, misses)"
    );
    // And in few round trips: one MGET per batch that had keys the cache
    // lacked, never one per event.
    let mgets = info_counter(&mut conn, "commandstats", "cmdstat_mget");
    let gets = info_counter(&mut conn, "commandstats", "cmdstat_get");
    assert!(
        (1..=20).contains(&mgets),
        "{mgets} MGETs for 1000 distinct keys in batches of up to 500"
    );
    assert_eq!(gets, 0, "no GET per event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_holds_events_back_and_they_are_enriched_once_it_is_back() {
    let mut server = PrivateServer::redis();
    let mut conn = redis(&server);
    for j in 0..40 {
        let _: () = redis::cmd("SET")
            .arg(format!("user:u{j}"))
            .arg(format!(r#"{{"plan":"p{j}"}}"#))
            .query(&mut conn)
            .expect("SET");
    }
    drop(conn);
    let topic = unique("lookup-outage");
    create_topic(&brokers(), &topic, 1).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let group = unique("lookup-outage-group");
    let weir = WeirRun::start_in(
        dir.path(),
        &config(dir.path(), &topic, &group, &server.redis_url(), false),
    );

    // Flowing: ten events enriched.
    let first = events((0..10).map(|i| (i, format!("u{i}"))));
    produce_values(&brokers(), &topic, 1, &first).await;
    let wait_for = |n: usize, what: &str| {
        let start = Instant::now();
        loop {
            let out = outputs(dir.path());
            if out.len() >= n {
                return out;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "{what}: {} of {n} outputs\n{}",
                out.len(),
                weir.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for(10, "before the outage");

    // The store goes down (the test's own server, checked to be down).
    // Events keep coming: none may be written enriched with "absent".
    server.stop();
    let second = events((10..40).map(|i| (i, format!("u{i}"))));
    produce_values(&brokers(), &topic, 1, &second).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let during = outputs(dir.path());
    assert_eq!(
        during.len(),
        10,
        "written while the store was down: {:?}",
        &during[10..]
    );

    // Back: every held event is enriched, once, in order.
    server.start_again();
    wait_for(40, "after the outage");
    // A moment more, for anything written twice to show.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let out = outputs(dir.path());
    let ids: Vec<i64> = out.iter().map(|v| v["id"].as_i64().expect("id")).collect();
    assert_eq!(
        ids,
        (0..40).collect::<Vec<_>>(),
        "each event once, in order"
    );
    for value in &out {
        let id = value["id"].as_i64().expect("id");
        assert_eq!(
            value["found"],
            serde_json::json!({"plan": format!("p{id}")}),
            "{value}"
        );
    }
    let log = weir.log_text();
    assert!(!log.contains("panicked"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_checks_a_plugin_that_looks_things_up_with_its_grants() {
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = unique("lookup-validate");
    // Nothing listens on the store's port: validate does not connect.
    let granted = config(dir.path(), &topic, "g", "redis://127.0.0.1:1/", true);
    std::fs::write(dir.path().join("granted.toml"), &granted).expect("write");
    let run = Command::new(weir_bin())
        .args(["validate", "granted.toml"])
        .current_dir(dir.path())
        .env("WEIR_CACHE_DIR", dir.path().join("cache"))
        .output()
        .expect("weir validate");
    assert!(
        run.status.success(),
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );

    // The same plugin without the grant: refused at its path, naming it.
    let ungranted = granted.replace("lookups = [\"users\"]\n", "");
    std::fs::write(dir.path().join("ungranted.toml"), &ungranted).expect("write");
    let run = Command::new(weir_bin())
        .args(["validate", "ungranted.toml"])
        .current_dir(dir.path())
        .env("WEIR_CACHE_DIR", dir.path().join("cache"))
        .output()
        .expect("weir validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(!run.status.success(), "{text}");
    assert!(
        text.contains("plugin `enrich`")
            && text.contains("imports weir:transform/lookup@0.2.0")
            && text.contains("set `lookups = [\"STORE\"]`"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sighup_reload_of_a_plugin_that_looks_things_up_keeps_its_stores() {
    let server = PrivateServer::redis();
    let mut conn = redis(&server);
    for j in 0..10 {
        let _: () = redis::cmd("SET")
            .arg(format!("user:u{j}"))
            .arg(format!(r#"{{"plan":"p{j}"}}"#))
            .query(&mut conn)
            .expect("SET");
    }
    let topic = unique("lookup-hup");
    create_topic(&brokers(), &topic, 1).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let group = unique("lookup-hup-group");
    let text = config(dir.path(), &topic, &group, &server.redis_url(), false);
    let weir = WeirRun::start_in(dir.path(), &text);
    let wait_for = |n: usize, what: &str| {
        let start = Instant::now();
        while outputs(dir.path()).len() < n {
            assert!(start.elapsed() < PATIENCE, "{what}\n{}", weir.log_text());
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    produce_values(
        &brokers(),
        &topic,
        1,
        &events((0..5).map(|i| (i, format!("u{i}")))),
    )
    .await;
    wait_for(5, "before the reload");

    // The plugin's config changes (prefetch off): SIGHUP reloads it with
    // the stores it was granted at start.
    let changed = text.replace(
        "lookups = [\"users\"]\n",
        "lookups = [\"users\"]\nconfig = { prefetch = \"false\" }\n",
    );
    assert_ne!(changed, text);
    std::fs::write(dir.path().join("weir.toml"), &changed).expect("rewrite the config");
    let hup = Command::new("kill")
        .args(["-HUP", &weir.id().to_string()])
        .status()
        .expect("kill -HUP");
    assert!(hup.success());
    let start = Instant::now();
    while !weir
        .log_text()
        .contains("plugin reloaded with the new settings")
    {
        assert!(
            start.elapsed() < PATIENCE,
            "the plugin was not reloaded:\n{}",
            weir.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    produce_values(
        &brokers(),
        &topic,
        1,
        &events((5..10).map(|i| (i, format!("u{i}")))),
    )
    .await;
    wait_for(10, "after the reload");
    for value in outputs(dir.path()) {
        let id = value["id"].as_i64().expect("id");
        assert_eq!(
            value["found"],
            serde_json::json!({"plan": format!("p{id}")}),
            "{value}"
        );
    }
}
