//! The DynamoDB sink against moto: what lands in the table.
//!
//! Needs moto: `scripts/services start dynamodb` (or `WEIR_TEST_DYNAMODB`).

use weir_tests::dynamodb_support;

use bytes::Bytes;
use dynamodb_support::*;
use serde_json::json;
use weir::dynamodb::aws_sdk_dynamodb::types::{AttributeValue, ScalarAttributeType};
use weir::event::{Op, Output};
use weir::sink::dynamodb::{DynamoDbSink, DynamoDbSinkConfig};
use weir::sink::{Sink, SinkError};

fn sink_config(table: &str, extra: &str) -> DynamoDbSinkConfig {
    toml::from_str(&format!(
        r#"
table = "{table}"
endpoint = "{endpoint}"
region = "us-east-1"
access_key_id = "test"
secret_access_key = "test"
{extra}
"#,
        endpoint = endpoint()
    ))
    .expect("sink config")
}

fn put(value: serde_json::Value) -> Output {
    Output {
        value: Some(Bytes::from(value.to_string())),
        ..Output::default()
    }
}

fn delete(key: serde_json::Value) -> Output {
    Output {
        key: Some(Bytes::from(key.to_string())),
        op: Op::Delete,
        ..Output::default()
    }
}

async fn table(prefix: &str) -> (weir::dynamodb::aws_sdk_dynamodb::Client, String) {
    let client = client().await;
    let name = unique(prefix);
    create_table(&client, &name, &[("id", ScalarAttributeType::S)], None).await;
    (client, name)
}

#[tokio::test]
async fn puts_deletes_and_repeated_keys_land_as_the_last_write() {
    let (client, name) = table("sink-last").await;
    let sink = DynamoDbSink::connect("copy", &sink_config(&name, ""))
        .await
        .unwrap();
    // 60 keys written twice in one group (120 outputs, so more than 25 per
    // request and every key twice), then 10 of them deleted.
    let mut outputs: Vec<Output> = (0..60)
        .map(|i| put(json!({"id": format!("k{i}"), "v": 1})))
        .collect();
    outputs.extend((0..60).map(|i| put(json!({"id": format!("k{i}"), "v": 2, "tags": ["a", i]}))));
    outputs.extend((0..10).map(|i| delete(json!({"id": format!("k{i}")}))));
    let rejected = sink.write(&outputs).await.unwrap();
    assert!(rejected.is_empty(), "{rejected:?}");

    let items = scan_all(&client, &name, &["id"]).await;
    assert_eq!(items.len(), 50);
    for i in 10..60 {
        let key = json!({"id": {"S": format!("k{i}")}}).to_string();
        assert_eq!(
            items[&key],
            json!({"id": {"S": format!("k{i}")}, "v": {"N": "2"}, "tags": {"L": [{"S": "a"}, {"N": i.to_string()}]}})
        );
    }
}

#[tokio::test]
async fn a_refused_item_is_rejected_with_the_service_message_and_the_rest_is_written() {
    let (client, name) = table("sink-reject").await;
    let sink = DynamoDbSink::connect("copy", &sink_config(&name, ""))
        .await
        .unwrap();
    let outputs = vec![
        put(json!({"id": "a"})),
        put(json!({"id": "b"})),
        put(json!({"id": ""})),
        put(json!({"id": "c"})),
        put(json!({"no_key": 1})),
    ];
    let rejected = sink.write(&outputs).await.unwrap();
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert_eq!(rejected[0].index, 2);
    assert!(
        // The service's own message, from the single-item retry that found it.
        rejected[0].reason.contains("empty string") && rejected[0].reason.contains("Key: id"),
        "{}",
        rejected[0].reason
    );
    assert_eq!(rejected[1].index, 4);
    assert_eq!(
        rejected[1].reason,
        "value has no key attribute `id` and the key does not give it"
    );
    let items = scan_all(&client, &name, &["id"]).await;
    let ids: Vec<&str> = items
        .values()
        .map(|v| v["id"]["S"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b", "c"]);
}

#[tokio::test]
async fn an_older_event_never_overwrites_a_newer_item() {
    let (client, name) = table("sink-version").await;
    let sink = DynamoDbSink::connect(
        "copy",
        &sink_config(&name, r#"version_attribute = "version""#),
    )
    .await
    .unwrap();
    let v = |version: u32, note: &str| put(json!({"id": "p1", "version": version, "note": note}));
    assert!(sink.write(&[v(2, "second")]).await.unwrap().is_empty());
    // Older events (also replays of the same one) are done, not errors.
    assert!(sink.write(&[v(1, "first")]).await.unwrap().is_empty());
    let items = scan_all(&client, &name, &["id"]).await;
    assert_eq!(
        items.values().next().unwrap()["note"],
        json!({"S": "second"})
    );
    // A delete of an older version leaves the item; a newer one removes it.
    let del = |version: u32| Output {
        key: Some(Bytes::from_static(br#"{"id":"p1"}"#)),
        value: Some(Bytes::from(
            json!({"id": "p1", "version": version}).to_string(),
        )),
        op: Op::Delete,
        ..Output::default()
    };
    assert!(sink.write(&[del(1)]).await.unwrap().is_empty());
    assert_eq!(scan_all(&client, &name, &["id"]).await.len(), 1);
    assert!(sink.write(&[del(3)]).await.unwrap().is_empty());
    assert!(scan_all(&client, &name, &["id"]).await.is_empty());
    // A put without the version attribute is rejected.
    let rejected = sink.write(&[put(json!({"id": "p2"}))]).await.unwrap();
    assert_eq!(
        rejected[0].reason,
        "value has no version attribute `version`"
    );
}

#[tokio::test]
async fn of_several_versions_of_a_key_in_one_write_the_highest_lands() {
    let (client, name) = table("sink-version-group").await;
    let sink = DynamoDbSink::connect(
        "copy",
        &sink_config(&name, r#"version_attribute = "version""#),
    )
    .await
    .unwrap();
    let v = |version: u32, note: &str| put(json!({"id": "p1", "version": version, "note": note}));
    assert!(sink.write(&[v(4, "stored")]).await.unwrap().is_empty());
    // The newest event, then an older one (a replay, or events out of
    // order): the older one must not decide what is written.
    assert!(
        sink.write(&[v(5, "newest"), v(3, "older")])
            .await
            .unwrap()
            .is_empty()
    );
    let items = scan_all(&client, &name, &["id"]).await;
    assert_eq!(
        items.values().next().unwrap()["note"],
        json!({"S": "newest"})
    );
    // Numbers compare by value (10 > 9, although "10" < "9" as text).
    assert!(
        sink.write(&[v(10, "ten"), v(9, "nine")])
            .await
            .unwrap()
            .is_empty()
    );
    let items = scan_all(&client, &name, &["id"]).await;
    assert_eq!(items.values().next().unwrap()["note"], json!({"S": "ten"}));
}

#[tokio::test]
async fn different_composite_keys_are_never_collapsed_into_one() {
    let client = client().await;
    let name = unique("sink-composite");
    create_table(
        &client,
        &name,
        &[
            ("pk", ScalarAttributeType::S),
            ("sk", ScalarAttributeType::S),
        ],
        None,
    )
    .await;
    let sink = DynamoDbSink::connect("copy", &sink_config(&name, ""))
        .await
        .unwrap();
    // Two different keys whose attribute texts, run together with a
    // separator character, read the same.
    let outputs = [
        put(json!({"pk": "x\u{1f}Sy", "sk": "z", "n": 1})),
        put(json!({"pk": "x", "sk": "y\u{1f}Sz", "n": 2})),
    ];
    assert!(sink.write(&outputs).await.unwrap().is_empty());
    let items = scan_all(&client, &name, &["pk", "sk"]).await;
    let mut ns: Vec<&serde_json::Value> = items.values().map(|i| &i["n"]).collect();
    ns.sort_by_key(|v| v.to_string());
    assert_eq!(ns, [&json!({"N": "1"}), &json!({"N": "2"})]);
}

#[tokio::test]
async fn ttl_comes_from_the_output_or_the_config() {
    let (client, name) = table("sink-ttl").await;
    let sink = DynamoDbSink::connect(
        "copy",
        &sink_config(&name, "ttl_attribute = \"expires_at\"\nttl_seconds = 60"),
    )
    .await
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut own = put(json!({"id": "own"}));
    own.ttl_seconds = Some(86_400);
    sink.write(&[own, put(json!({"id": "default"}))])
        .await
        .unwrap();
    let items = scan_all(&client, &name, &["id"]).await;
    let exp = |id: &str| -> u64 {
        let key = json!({"id": {"S": id}}).to_string();
        items[&key]["expires_at"]["N"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(
        (now + 86_400..now + 86_400 + 30).contains(&exp("own")),
        "{}",
        exp("own")
    );
    assert!(
        (now + 60..now + 90).contains(&exp("default")),
        "{}",
        exp("default")
    );
}

#[tokio::test]
async fn a_missing_table_or_a_wrong_key_fails_the_build_naming_it() {
    let err = DynamoDbSink::connect("copy", &sink_config("no-such-table-here", ""))
        .await
        .err()
        .unwrap();
    let SinkError::Fatal(msg) = err else {
        panic!("not fatal: {err:?}")
    };
    let msg = msg.to_string();
    assert!(
        msg.starts_with("cannot describe table no-such-table-here"),
        "{msg}"
    );
    let (_client, name) = table("sink-key").await;
    let err = DynamoDbSink::connect("copy", &sink_config(&name, r#"key = ["user"]"#))
        .await
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        format!("key [\"user\"] does not match table {name}'s key schema [\"id\"]")
    );
}

#[tokio::test]
async fn typed_json_writes_every_type_exactly() {
    let (client, name) = table("sink-typed").await;
    let sink = DynamoDbSink::connect("copy", &sink_config(&name, r#"format = "typed""#))
        .await
        .unwrap();
    let item = json!({
        "id": {"S": "t1"}, "n": {"N": "12345678901234567890123456789012345678"},
        "b": {"B": "AAEC"}, "ss": {"SS": ["x", "y"]}, "ns": {"NS": ["1", "2.5"]},
        "bs": {"BS": ["AQ=="]}, "m": {"M": {"l": {"L": [{"NULL": true}, {"BOOL": false}]}}}
    });
    assert!(sink.write(&[put(item.clone())]).await.unwrap().is_empty());
    let got = client
        .get_item()
        .table_name(&name)
        .key("id", AttributeValue::S("t1".into()))
        .send()
        .await
        .unwrap();
    let typed = weir::dynamodb::attr::JsonMapping {
        format: weir::dynamodb::attr::JsonFormat::Typed,
        ..Default::default()
    };
    assert_eq!(typed.item_to_value(got.item().unwrap()), item);
}
