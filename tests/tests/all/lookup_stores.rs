//! The `mongodb`, `dynamodb` and `redis` lookup stores against the real
//! servers (MongoDB and Redis of `scripts/services`, moto), each through a proxy of the
//! test's own that counts the store's requests and can cut or stall them:
//! hits and misses, the cache answering without a round trip, its TTL,
//! a batch of 1000 keys in one round trip, a timeout and an outage
//! (unavailable, never "absent", unless `on_error = "miss"`), and a store
//! that is not granted.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use weir::dynamodb::aws_sdk_dynamodb::types::{
    AttributeValue, PutRequest, ScalarAttributeType, WriteRequest,
};
use weir::lookup::{Granted, LookupConfig, LookupFailure, LookupStore};
use weir_tests::dynamodb_support as ddb;
use weir_tests::stores;
use weir_tests::tcp_proxy::TcpProxy;

/// Plenty of a plugin's deadline left.
const REMAINING: Duration = Duration::from_secs(10);

fn open(name: &str, toml_text: &str) -> LookupStore {
    let config: LookupConfig = toml::from_str(toml_text).expect("lookup config");
    assert!(config.problems().is_empty(), "{:?}", config.problems());
    LookupStore::open(name, &config, Path::new(".")).expect("open store")
}

fn keys(keys: &[&str]) -> Vec<Vec<u8>> {
    keys.iter().map(|k| k.as_bytes().to_vec()).collect()
}

fn json_of(value: &Option<Vec<u8>>) -> Value {
    match value {
        Some(bytes) => serde_json::from_slice(bytes).expect("a store answers JSON"),
        None => Value::Null,
    }
}

fn answers(store: &LookupStore, asked: &[&str]) -> Vec<Value> {
    store
        .get_many(&keys(asked), REMAINING)
        .expect("store answers")
        .iter()
        .map(json_of)
        .collect()
}

/// A call that must fail as an outage, and soon (`timeout_ms` bounds it).
fn assert_unavailable(store: &LookupStore, asked: &[&str], name: &str) {
    let start = Instant::now();
    match store.get_many(&keys(asked), REMAINING) {
        Err(LookupFailure::Unavailable { store, .. }) => assert_eq!(store, name),
        other => panic!("an unreachable store must be unavailable, not {other:?}"),
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "the call took {:?}, its timeout_ms is far less",
        start.elapsed()
    );
}

/// The outage every store must ride out, through its proxy: stalled
/// (accepting, never answering) and then cut, `store` is unavailable within
/// its timeout each time and `lenient` (`on_error = "miss"`) answers none;
/// each time the proxy forwards again, `store` answers `u1` as it did
/// before (a client reconnects on its own schedule: up to 20 s).
fn rides_out_a_stall_and_a_cut(proxy: &TcpProxy, store: &LookupStore, lenient: &LookupStore) {
    let u1 = |store: &LookupStore| {
        store
            .get_many(&keys(&["u1"]), REMAINING)
            .map(|mut v| v.remove(0))
    };
    let same = |value: &Option<Vec<u8>>| {
        let bytes = value.as_deref().unwrap_or_default();
        serde_json::from_slice::<Value>(bytes).map_err(|_| bytes.to_vec())
    };
    let before = u1(store).expect("the store answers before the outage");
    assert!(before.is_some(), "u1 is in the store");
    let back_again = || {
        let start = Instant::now();
        loop {
            match u1(store) {
                // As JSON where it is JSON: a DynamoDB item's attributes
                // come in no fixed order.
                Ok(value) => break assert_eq!(same(&value), same(&before), "as before"),
                Err(e) if start.elapsed() > Duration::from_secs(20) => {
                    panic!("the store did not answer again within 20 s: {e}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    };
    proxy.stall();
    assert_unavailable(store, &["u1"], "outage");
    assert_eq!(u1(lenient), Ok(None), "on_error = miss");
    proxy.restore();
    back_again();

    proxy.cut();
    assert_unavailable(store, &["u1"], "outage");
    assert_eq!(u1(lenient), Ok(None), "on_error = miss");
    proxy.restore();
    back_again();
}

fn upstream(url: &str) -> SocketAddr {
    let hostport = url
        .split("://")
        .nth(1)
        .unwrap_or(url)
        .split(['/', '?'])
        .next()
        .unwrap_or_default();
    hostport
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| panic!("cannot resolve the server of {url}"))
}

// ---- MongoDB ----

/// `find` and `getMore` commands sent to the server.
const FIND: usize = 0;
const GET_MORE: usize = 1;

fn mongo_proxy() -> TcpProxy {
    let base = std::env::var("WEIR_TEST_MONGODB")
        .unwrap_or_else(|_| "mongodb://127.0.0.1:17017/".to_owned());
    // A BSON string element "find" and an int64 element "getMore": the
    // first element of the two commands.
    TcpProxy::start(upstream(&base), &[b"\x02find\x00", b"\x12getMore\x00"])
}

fn mongo_toml(proxy: &TcpProxy, collection: &str, extra: &str) -> String {
    format!(
        r#"
type = "mongodb"
url = "mongodb://{}/?directConnection=true&serverSelectionTimeoutMS=2000&heartbeatFrequencyMS=500"
database = "weir_lookups"
collection = "{collection}"
{extra}
"#,
        proxy.addr()
    )
}

async fn seed_mongo(collection: &str, docs: Vec<mongodb::bson::Document>) {
    stores::mongo()
        .await
        .database("weir_lookups")
        .collection::<mongodb::bson::Document>(collection)
        .insert_many(docs)
        .await
        .expect("seed documents");
}

#[tokio::test]
async fn a_mongodb_store_answers_a_batch_in_one_find_and_repeats_from_its_cache() {
    let proxy = mongo_proxy();
    let coll = stores::unique("profiles");
    let mut docs = vec![
        mongodb::bson::doc! {"_id": "u1", "plan": "gold", "country": "FR", "secret": "s1"},
        mongodb::bson::doc! {"_id": "u2", "plan": "free", "country": "DE", "secret": "s2"},
    ];
    docs.extend((0..1000).map(|i| mongodb::bson::doc! {"_id": format!("bulk{i}"), "n": i}));
    seed_mongo(&coll, docs).await;
    let store = open(
        "profiles",
        &mongo_toml(&proxy, &coll, r#"projection = ["plan", "country"]"#),
    );

    assert_eq!(
        answers(&store, &["u1", "u9", "u2"]),
        vec![
            json!({"plan": "gold", "country": "FR"}),
            Value::Null,
            json!({"plan": "free", "country": "DE"})
        ],
        "the projection leaves `_id` and `secret` out; an absent key is none"
    );
    assert_eq!(proxy.count(FIND), 1, "three keys, one find");

    // Hits and the miss are cached: no round trip at all.
    assert_eq!(answers(&store, &["u2", "u9"])[0]["plan"], "free");
    assert_eq!(proxy.count(FIND), 1, "answered from the cache");

    // 1000 keys: one find, its answers in one batch (no getMore).
    let bulk: Vec<String> = (0..1000).map(|i| format!("bulk{i}")).collect();
    let asked: Vec<&str> = bulk.iter().map(String::as_str).collect();
    // A thousand documents take more than the default 200 ms on a busy
    // test machine.
    let store_all = open("bulk", &mongo_toml(&proxy, &coll, "timeout_ms = 10000"));
    let found = answers(&store_all, &asked);
    assert_eq!(proxy.count(FIND), 2, "1000 keys are one find");
    assert_eq!(proxy.count(GET_MORE), 0, "and one batch of answers");
    for (i, doc) in found.iter().enumerate() {
        assert_eq!(doc["n"], json!(i), "key bulk{i}");
        assert_eq!(doc["_id"], json!(format!("bulk{i}")));
    }

    // A store that is not granted is refused by name.
    let granted = Granted::of([std::sync::Arc::new(store)]);
    assert_eq!(
        granted.get_many("bulk", &keys(&["u1"]), REMAINING),
        Err(LookupFailure::NotGranted("bulk".into()))
    );
}

#[tokio::test]
async fn a_mongodb_store_matches_numbers_and_nested_fields_and_refuses_a_bad_key() {
    let proxy = mongo_proxy();
    let coll = stores::unique("accounts");
    seed_mongo(
        &coll,
        vec![
            mongodb::bson::doc! {"account": {"no": 7_i32}, "plan": "gold"},
            mongodb::bson::doc! {"account": {"no": 8.0_f64}, "plan": "free"},
        ],
    )
    .await;
    let store = open(
        "accounts",
        &mongo_toml(
            &proxy,
            &coll,
            "key_field = \"account.no\"\nkey_type = \"number\"\nprojection = [\"plan\"]",
        ),
    );
    assert_eq!(
        answers(&store, &["7", "8", "9"]),
        vec![
            json!({"plan": "gold"}),
            json!({"plan": "free"}),
            Value::Null
        ],
        "an int32 and a double match the number keys"
    );
    match store.get_many(&keys(&["seven"]), REMAINING) {
        Err(LookupFailure::InvalidKey(why)) => assert!(why.contains("`seven`"), "{why}"),
        other => panic!("a word is not a number key: {other:?}"),
    }
}

#[tokio::test]
async fn a_mongodb_answer_expires_with_the_cache_ttl() {
    let proxy = mongo_proxy();
    let coll = stores::unique("ttl");
    seed_mongo(
        &coll,
        vec![mongodb::bson::doc! {"_id": "u1", "plan": "gold"}],
    )
    .await;
    let store = open(
        "ttl",
        &mongo_toml(&proxy, &coll, "cache = { ttl_ms = 400 }"),
    );
    assert_eq!(answers(&store, &["u1"])[0]["plan"], "gold");
    stores::mongo()
        .await
        .database("weir_lookups")
        .collection::<mongodb::bson::Document>(&coll)
        .update_one(
            mongodb::bson::doc! {"_id": "u1"},
            mongodb::bson::doc! {"$set": {"plan": "platinum"}},
        )
        .await
        .expect("update");
    assert_eq!(answers(&store, &["u1"])[0]["plan"], "gold", "still cached");
    assert_eq!(proxy.count(FIND), 1);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(answers(&store, &["u1"])[0]["plan"], "platinum", "expired");
    assert_eq!(proxy.count(FIND), 2);
}

#[tokio::test]
async fn a_mongodb_store_that_stalls_or_goes_down_is_unavailable_until_it_is_back() {
    let proxy = mongo_proxy();
    let coll = stores::unique("outage");
    seed_mongo(
        &coll,
        vec![mongodb::bson::doc! {"_id": "u1", "plan": "gold"}],
    )
    .await;
    let no_cache = "timeout_ms = 300\ncache = { max_entries = 0 }";
    let store = open("outage", &mongo_toml(&proxy, &coll, no_cache));
    let lenient = open(
        "lenient",
        &mongo_toml(&proxy, &coll, &format!("{no_cache}\non_error = \"miss\"")),
    );
    assert_eq!(answers(&store, &["u1"])[0]["plan"], "gold");
    assert_eq!(answers(&lenient, &["u1"])[0]["plan"], "gold");
    rides_out_a_stall_and_a_cut(&proxy, &store, &lenient);
}

// ---- DynamoDB ----

const BATCH_GET: usize = 0;

fn dynamo_proxy() -> TcpProxy {
    TcpProxy::start(
        upstream(&ddb::endpoint()),
        &[b"DynamoDB_20120810.BatchGetItem"],
    )
}

fn dynamo_toml(proxy: &TcpProxy, table: &str, extra: &str) -> String {
    format!(
        r#"
type = "dynamodb"
table = "{table}"
key_field = "id"
endpoint = "http://{}"
region = "us-east-1"
access_key_id = "test"
secret_access_key = "test"
{extra}
"#,
        proxy.addr()
    )
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: &str) -> AttributeValue {
    AttributeValue::N(v.to_owned())
}

async fn seed_dynamo(
    table: &str,
    key_type: ScalarAttributeType,
    items: Vec<Vec<(&str, AttributeValue)>>,
) {
    let client = ddb::client().await;
    ddb::create_table(&client, table, &[("id", key_type)], None).await;
    let requests: Vec<WriteRequest> = items
        .into_iter()
        .map(|item| {
            let item = item.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            WriteRequest::builder()
                .put_request(PutRequest::builder().set_item(Some(item)).build().unwrap())
                .build()
        })
        .collect();
    for chunk in requests.chunks(25) {
        client
            .batch_write_item()
            .request_items(table, chunk.to_vec())
            .send()
            .await
            .expect("seed items");
    }
}

#[tokio::test]
async fn a_dynamodb_store_answers_from_batch_gets_and_repeats_from_its_cache() {
    let proxy = dynamo_proxy();
    let table = ddb::unique("profiles");
    let mut items = vec![
        vec![
            ("id", s("u1")),
            ("plan", s("gold")),
            ("visits", n("3")),
            ("secret", s("x")),
        ],
        vec![
            ("id", s("u2")),
            ("plan", s("free")),
            ("visits", n("0")),
            ("secret", s("y")),
        ],
    ];
    let bulk: Vec<String> = (0..1000).map(|i| format!("bulk{i}")).collect();
    items.extend(
        bulk.iter()
            .enumerate()
            .map(|(i, id)| vec![("id", s(id)), ("n", n(&i.to_string()))]),
    );
    seed_dynamo(&table, ScalarAttributeType::S, items).await;
    let store = open(
        "profiles",
        &dynamo_toml(&proxy, &table, r#"projection = ["plan", "visits"]"#),
    );
    assert_eq!(
        answers(&store, &["u1", "u9", "u2", "u1"]),
        vec![
            json!({"plan": "gold", "visits": 3}),
            Value::Null,
            json!({"plan": "free", "visits": 0}),
            json!({"plan": "gold", "visits": 3})
        ],
        "natural JSON, the projection only, a key asked twice answered twice"
    );
    assert_eq!(proxy.count(BATCH_GET), 1);
    assert_eq!(answers(&store, &["u9", "u2"])[1]["plan"], "free");
    assert_eq!(proxy.count(BATCH_GET), 1, "answered from the cache");

    // 1000 keys: one lookup round trip, as the API's ten BatchGetItem
    // requests of 100 keys sent at once.
    let asked: Vec<&str> = bulk.iter().map(String::as_str).collect();
    let typed = open(
        "bulk",
        &dynamo_toml(&proxy, &table, "format = \"typed\"\ntimeout_ms = 10000"),
    );
    let found = answers(&typed, &asked);
    assert_eq!(proxy.count(BATCH_GET), 11, "100 keys per BatchGetItem");
    for (i, item) in found.iter().enumerate() {
        assert_eq!(item["n"], json!({"N": i.to_string()}), "key bulk{i}");
        assert_eq!(item["id"], json!({"S": format!("bulk{i}")}));
    }
}

#[tokio::test]
async fn a_dynamodb_store_matches_number_keys_whatever_their_spelling() {
    let proxy = dynamo_proxy();
    let table = ddb::unique("devices");
    seed_dynamo(
        &table,
        ScalarAttributeType::N,
        vec![vec![("id", n("1.5")), ("site", s("lyon"))]],
    )
    .await;
    let store = open(
        "devices",
        &dynamo_toml(&proxy, &table, "key_type = \"number\""),
    );
    assert_eq!(
        answers(&store, &["15e-1", "2"]),
        vec![json!({"id": 1.5, "site": "lyon"}), Value::Null]
    );
    match store.get_many(&keys(&["one"]), REMAINING) {
        Err(LookupFailure::InvalidKey(why)) => assert!(why.contains("`one`"), "{why}"),
        other => panic!("a word is not a number key: {other:?}"),
    }
}

#[tokio::test]
async fn a_dynamodb_answer_expires_with_the_cache_ttl() {
    let proxy = dynamo_proxy();
    let table = ddb::unique("ttl");
    seed_dynamo(
        &table,
        ScalarAttributeType::S,
        vec![vec![("id", s("u1")), ("plan", s("gold"))]],
    )
    .await;
    let store = open(
        "ttl",
        &dynamo_toml(&proxy, &table, "cache = { ttl_ms = 400 }"),
    );
    assert_eq!(answers(&store, &["u1"])[0]["plan"], "gold");
    ddb::client()
        .await
        .put_item()
        .table_name(&table)
        .item("id", s("u1"))
        .item("plan", s("platinum"))
        .send()
        .await
        .expect("update");
    assert_eq!(answers(&store, &["u1"])[0]["plan"], "gold", "still cached");
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(answers(&store, &["u1"])[0]["plan"], "platinum", "expired");
    assert_eq!(proxy.count(BATCH_GET), 2);
}

#[tokio::test]
async fn a_dynamodb_store_that_stalls_or_goes_down_is_unavailable_until_it_is_back() {
    let proxy = dynamo_proxy();
    let table = ddb::unique("outage");
    seed_dynamo(
        &table,
        ScalarAttributeType::S,
        vec![vec![("id", s("u1")), ("plan", s("gold"))]],
    )
    .await;
    let no_cache = "timeout_ms = 300\ncache = { max_entries = 0 }";
    let store = open("outage", &dynamo_toml(&proxy, &table, no_cache));
    let lenient = open(
        "lenient",
        &dynamo_toml(&proxy, &table, &format!("{no_cache}\non_error = \"miss\"")),
    );
    assert_eq!(answers(&store, &["u1"])[0]["plan"], "gold");
    rides_out_a_stall_and_a_cut(&proxy, &store, &lenient);
}

// ---- Redis ----

const MGET: usize = 0;

fn redis_proxy() -> TcpProxy {
    // RESP: a command's name is a bulk string, `$4\r\nMGET\r\n`.
    TcpProxy::start(upstream(&stores::redis_url()), &[b"$4\r\nMGET\r\n"])
}

fn redis_toml(proxy: &TcpProxy, prefix: &str, extra: &str) -> String {
    format!(
        r#"
type = "redis"
url = "redis://{}/0"
key_template = "{prefix}:{{key}}"
{extra}
"#,
        proxy.addr()
    )
}

#[tokio::test]
async fn a_redis_store_answers_1000_keys_in_one_mget_and_expires_its_cache() {
    use redis::AsyncCommands as _;
    let proxy = redis_proxy();
    let prefix = stores::unique("profile");
    let mut conn = stores::redis().await;
    let bulk: Vec<String> = (0..1000).map(|i| format!("k{i}")).collect();
    for (i, k) in bulk.iter().enumerate() {
        let _: () = conn
            .set(format!("{prefix}:{k}"), format!("{{\"n\":{i}}}"))
            .await
            .unwrap();
    }
    let store = open(
        "profiles",
        &redis_toml(
            &proxy,
            &prefix,
            "timeout_ms = 10000\ncache = { ttl_ms = 400 }",
        ),
    );
    let mut asked: Vec<&str> = bulk.iter().map(String::as_str).collect();
    asked.push("absent");
    let found = answers(&store, &asked);
    assert_eq!(proxy.count(MGET), 1, "1001 keys, one MGET");
    for (i, value) in found.iter().take(1000).enumerate() {
        assert_eq!(value, &json!({"n": i}), "key k{i}");
    }
    assert_eq!(found[1000], Value::Null);

    let _: () = conn
        .set(format!("{prefix}:k0"), "{\"n\":-1}")
        .await
        .unwrap();
    assert_eq!(
        answers(&store, &["k0", "absent"])[0],
        json!({"n": 0}),
        "cached"
    );
    assert_eq!(proxy.count(MGET), 1, "answered from the cache");
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(answers(&store, &["k0"])[0], json!({"n": -1}), "expired");
    assert_eq!(proxy.count(MGET), 2);
}

#[tokio::test]
async fn a_redis_store_that_stalls_or_goes_down_is_unavailable_until_it_is_back() {
    use redis::AsyncCommands as _;
    let proxy = redis_proxy();
    let prefix = stores::unique("outage");
    let mut conn = stores::redis().await;
    let _: () = conn.set(format!("{prefix}:u1"), "gold").await.unwrap();
    let no_cache = "timeout_ms = 300\ncache = { max_entries = 0 }";
    let store = open("outage", &redis_toml(&proxy, &prefix, no_cache));
    let lenient = open(
        "lenient",
        &redis_toml(&proxy, &prefix, &format!("{no_cache}\non_error = \"miss\"")),
    );
    let u1 = store.get_many(&keys(&["u1"]), REMAINING);
    assert_eq!(u1, Ok(vec![Some(b"gold".to_vec())]));
    rides_out_a_stall_and_a_cut(&proxy, &store, &lenient);
}
