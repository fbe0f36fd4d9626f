//! Change data capture end to end against moto: a table's stream through a
//! pipeline into a copy table with the DynamoDB sink. After a mix of
//! inserts, updates and deletes the copy equals the source item by item —
//! also when the `weir run` process is killed with SIGKILL halfway and
//! started again.
//!
//! Needs moto: `scripts/services start dynamodb` (or `WEIR_TEST_DYNAMODB`).

use weir_tests::dynamodb_support;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dynamodb_support::*;
use tokio_util::sync::CancellationToken;
use weir::config::Config;
use weir::dynamodb::aws_sdk_dynamodb::Client;
use weir::dynamodb::aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, PutRequest, ScalarAttributeType, StreamViewType, WriteRequest,
};
use weir::runtime::Runtime;
use weir_tests::weir_bin;

/// A deterministic mix of inserts, updates and deletes over `keys` keys,
/// sent as BatchWriteItem requests of up to 25 distinct keys, in order.
async fn mixed_ops(client: &Client, table: &str, ops: usize, keys: u32, seed: u64) {
    let mut state = seed;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut exists: HashMap<u32, u32> = HashMap::new();
    let mut batch: Vec<WriteRequest> = Vec::new();
    let mut in_batch: Vec<u32> = Vec::new();
    for i in 0..ops {
        let mut k = (next() % u64::from(keys)) as u32;
        while in_batch.contains(&k) {
            k = (k + 1) % keys;
        }
        let r = next() % 10;
        let req = if exists.contains_key(&k) && r < 3 {
            exists.remove(&k);
            WriteRequest::builder()
                .delete_request(
                    DeleteRequest::builder()
                        .key("id", AttributeValue::S(format!("user-{k}")))
                        .build()
                        .unwrap(),
                )
                .build()
        } else {
            let version = exists.entry(k).or_default();
            *version += 1;
            WriteRequest::builder()
                .put_request(
                    PutRequest::builder()
                        .item("id", AttributeValue::S(format!("user-{k}")))
                        .item("version", AttributeValue::N(version.to_string()))
                        .item(
                            "name",
                            AttributeValue::S(format!("name {k} v{version} op {i}")),
                        )
                        .item(
                            "score",
                            // Canonical decimals: DynamoDB stores "5.70" as "5.7";
                            // moto keeps the text, the copy gets the normal form.
                            AttributeValue::N(format!("{}.{}", next() % 1000, 1 + next() % 9)),
                        )
                        .item(
                            "tags",
                            AttributeValue::L(vec![
                                AttributeValue::S("t".into()),
                                AttributeValue::Bool(r % 2 == 0),
                            ]),
                        )
                        .build()
                        .unwrap(),
                )
                .build()
        };
        batch.push(req);
        in_batch.push(k);
        if batch.len() == 25 || i + 1 == ops {
            client
                .batch_write_item()
                .request_items(table, std::mem::take(&mut batch))
                .send()
                .await
                .expect("batch write");
            in_batch.clear();
        }
    }
}

fn pipeline_toml(dir: &Path, src: &str, copy: &str, leases: &str, pipeline: &str) -> String {
    format!(
        r#"
[host]
cache_dir = {cache:?}

[sources.changes]
type = "dynamodb_streams"
table = "{src}"
endpoint = "{endpoint}"
region = "us-east-1"
access_key_id = "test"
secret_access_key = "test"
lease_table = "{leases}"
lease_duration_ms = 2000
poll_min_ms = 20
poll_max_ms = 200

[sinks.copy]
type = "dynamodb"
table = "{copy}"
endpoint = "{endpoint}"
region = "us-east-1"
access_key_id = "test"
secret_access_key = "test"

[pipelines.{pipeline}]
source = "changes"
default_route = "copy"
batch = {{ max_events = 500, max_wait_ms = 100 }}
"#,
        cache = dir.join("cache").display().to_string(),
        endpoint = endpoint(),
    )
}

async fn tables(prefix: &str) -> (Client, String, String) {
    let client = client().await;
    let src = unique(prefix);
    let copy = unique(&format!("{prefix}-copy"));
    create_table(
        &client,
        &src,
        &[("id", ScalarAttributeType::S)],
        Some(StreamViewType::NewAndOldImages),
    )
    .await;
    create_table(&client, &copy, &[("id", ScalarAttributeType::S)], None).await;
    (client, src, copy)
}

/// Wait until the copy equals the source; on timeout show the difference.
async fn wait_equal(client: &Client, src: &str, copy: &str, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let a = scan_all(client, src, &["id"]).await;
        let b = scan_all(client, copy, &["id"]).await;
        if a == b {
            return a.len();
        }
        if Instant::now() > deadline {
            let missing: Vec<(&serde_json::Value, Option<&serde_json::Value>)> = a
                .iter()
                .filter(|(k, v)| b.get(*k) != Some(*v))
                .map(|(k, v)| (v, b.get(k)))
                .take(3)
                .collect();
            let extra: Vec<&String> = b.keys().filter(|k| !a.contains_key(*k)).take(5).collect();
            panic!(
                "copy differs from source: {} vs {} items; differing/missing {missing:?}; extra {extra:?}",
                a.len(),
                b.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_mixed_changes_make_an_identical_copy() {
    let (client, src, copy) = tables("cdc").await;
    let dir = tempfile::tempdir().unwrap();
    let pipeline = unique("cdc").replace('-', "_");
    let text = pipeline_toml(dir.path(), &src, &copy, &unique("leases"), &pipeline);
    let config: Config = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let runtime = Runtime::build(&config, dir.path()).await.expect("runtime");
    let stop = CancellationToken::new();
    let running = tokio::spawn(runtime.run(stop.clone()));

    mixed_ops(&client, &src, 5_000, 1_500, 0x9e37_79b9_7f4a_7c15).await;
    let items = wait_equal(&client, &src, &copy, Duration::from_secs(180)).await;
    assert!(items > 500, "the mix leaves items behind: {items}");
    stop.cancel();
    running.await.unwrap().expect("pipeline ends cleanly");
}

fn spawn_weir(config: &Path, log: &Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    Command::new(weir_bin())
        .arg("run")
        .arg(config)
        .env("WEIR_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("cannot start weir")
}

/// The stored checkpoints of a lease table, by shard.
async fn checkpoints(client: &Client, lease_table: &str) -> BTreeMap<String, String> {
    let out = client
        .scan()
        .table_name(lease_table)
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    out.items()
        .iter()
        .map(|i| {
            (
                i["shard_id"].as_s().unwrap().clone(),
                i["checkpoint"].as_s().unwrap().clone(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_and_restart_loses_nothing() {
    let (client, src, copy) = tables("cdc-kill").await;
    let dir = tempfile::tempdir().unwrap();
    let leases = unique("leases");
    let pipeline = unique("kill").replace('-', "_");
    let config = dir.path().join("weir.toml");
    std::fs::write(
        &config,
        pipeline_toml(dir.path(), &src, &copy, &leases, &pipeline),
    )
    .unwrap();

    let mut first = spawn_weir(&config, &dir.path().join("first.log"));
    mixed_ops(&client, &src, 1_500, 400, 7).await;
    // Kill it once it has committed something, while the rest is in flight.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let cps = checkpoints(&client, &leases).await;
        if cps
            .values()
            .any(|c| c.chars().all(|ch| ch.is_ascii_digit()))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the first process never committed; its log: {}",
            std::fs::read_to_string(dir.path().join("first.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    mixed_ops(&client, &src, 1_500, 400, 11).await;

    let mut second = spawn_weir(&config, &dir.path().join("second.log"));
    let items = wait_equal(&client, &src, &copy, Duration::from_secs(180)).await;
    assert!(items > 100, "{items}");
    second.kill().unwrap();
    second.wait().unwrap();
}
