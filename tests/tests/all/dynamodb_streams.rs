//! The DynamoDB Streams source against moto: events, view types, stream
//! selection, checkpoints in the lease table, restart and crash recovery.
//!
//! Needs moto: `scripts/services start dynamodb` (or `WEIR_TEST_DYNAMODB`).

use weir_tests::dynamodb_support;

use std::time::Duration;

use dynamodb_support::*;
use serde_json::json;
use weir::dynamodb::aws_sdk_dynamodb::Client;
use weir::dynamodb::aws_sdk_dynamodb::types::{
    AttributeValue, ScalarAttributeType, StreamViewType,
};
use weir::event::Op;
use weir::source::{Source, SourceError};

const WAIT: Duration = Duration::from_secs(30);

async fn put(client: &Client, table: &str, id: &str, n: i64) {
    client
        .put_item()
        .table_name(table)
        .item("id", AttributeValue::S(id.into()))
        .item("n", AttributeValue::N(n.to_string()))
        .send()
        .await
        .unwrap();
}

async fn stream_table(prefix: &str, view: StreamViewType) -> (Client, String, String) {
    let client = client().await;
    let name = unique(prefix);
    let arn = create_table(
        &client,
        &name,
        &[("id", ScalarAttributeType::S)],
        Some(view),
    )
    .await
    .unwrap();
    (client, name, arn)
}

/// The checkpoint stored in the lease table for a group's only shard.
async fn stored_checkpoint(client: &Client, lease_table: &str, group_prefix: &str) -> String {
    let out = client
        .scan()
        .table_name(lease_table)
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let rows: Vec<_> = out
        .items()
        .iter()
        .filter(|i| i["lease_group"].as_s().unwrap().starts_with(group_prefix))
        .collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows[0]["checkpoint"].as_s().unwrap().clone()
}

#[tokio::test]
async fn records_become_events_with_op_key_images_origin_and_time() {
    let client = client().await;
    let table = unique("ddb-events");
    create_table(
        &client,
        &table,
        &[
            ("id", ScalarAttributeType::S),
            ("sk", ScalarAttributeType::N),
        ],
        Some(StreamViewType::NewAndOldImages),
    )
    .await;
    let key = |id: &str| {
        [
            ("id".to_string(), AttributeValue::S(id.into())),
            ("sk".to_string(), AttributeValue::N("1".into())),
        ]
    };
    client
        .put_item()
        .table_name(&table)
        .set_item(Some(
            key("a")
                .into_iter()
                .chain([("v".to_string(), AttributeValue::S("one".into()))])
                .collect(),
        ))
        .send()
        .await
        .unwrap();
    client
        .put_item()
        .table_name(&table)
        .set_item(Some(
            key("a")
                .into_iter()
                .chain([("v".to_string(), AttributeValue::S("two".into()))])
                .collect(),
        ))
        .send()
        .await
        .unwrap();
    client
        .delete_item()
        .table_name(&table)
        .set_key(Some(key("a").into_iter().collect()))
        .send()
        .await
        .unwrap();

    let leases = unique("leases");
    let source = start_source(&source_config(&source_toml(&table, &leases, "g", ""))).await;
    let events = read(&source, 3, WAIT, true).await;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert_eq!(
        events.iter().map(|e| e.op).collect::<Vec<_>>(),
        [Op::Insert, Op::Upsert, Op::Delete]
    );
    for e in &events {
        assert_eq!(json(&e.key), json!({"id": "a", "sk": 1}));
        let parts: Vec<&str> = e.origin.split('/').collect();
        assert_eq!(parts[0], table);
        assert!(parts[1].starts_with("shardId-"), "{}", e.origin);
        assert!(parts[2].parse::<u128>().is_ok(), "{}", e.origin);
        assert!(
            (now_ms - 120_000..=now_ms + 1_000).contains(&e.timestamp_ms),
            "{}",
            e.timestamp_ms
        );
    }
    assert_eq!(
        json(&events[0].value),
        json!({"id": "a", "sk": 1, "v": "one"})
    );
    assert_eq!(events[0].old_value, None);
    assert_eq!(
        json(&events[1].value),
        json!({"id": "a", "sk": 1, "v": "two"})
    );
    assert_eq!(
        json(&events[1].old_value),
        json!({"id": "a", "sk": 1, "v": "one"})
    );
    assert_eq!(events[2].value, None);
    assert_eq!(
        json(&events[2].old_value),
        json!({"id": "a", "sk": 1, "v": "two"})
    );
    // The last sequence number is the stored checkpoint.
    let last_seq = events[2].origin.rsplit('/').next().unwrap();
    assert_eq!(stored_checkpoint(&client, &leases, "g@").await, last_seq);
    source.close().await.unwrap();
}

#[tokio::test]
async fn every_view_type_gives_the_images_it_has() {
    for (view, has_new, has_old) in [
        (StreamViewType::KeysOnly, false, false),
        (StreamViewType::NewImage, true, false),
        (StreamViewType::OldImage, false, true),
    ] {
        let (client, table, _) = stream_table("ddb-view", view.clone()).await;
        put(&client, &table, "a", 1).await;
        put(&client, &table, "a", 2).await;
        let source = start_source(&source_config(&source_toml(
            &table,
            &unique("leases"),
            "g",
            "",
        )))
        .await;
        let events = read(&source, 2, WAIT, true).await;
        assert_eq!(events.len(), 2, "{view:?}");
        assert_eq!(json(&events[1].key), json!({"id": "a"}));
        assert_eq!(events[1].value.is_some(), has_new, "{view:?}");
        assert_eq!(events[1].old_value.is_some(), has_old, "{view:?}");
        if has_new {
            assert_eq!(json(&events[1].value), json!({"id": "a", "n": 2}));
        }
        if has_old {
            assert_eq!(json(&events[1].old_value), json!({"id": "a", "n": 1}));
        }
        source.close().await.unwrap();
    }
}

#[tokio::test]
async fn a_stream_chosen_by_arn_from_latest_skips_older_records() {
    let (client, table, arn) = stream_table("ddb-latest", StreamViewType::NewImage).await;
    put(&client, &table, "old", 1).await;
    let toml_text = source_toml(
        &table,
        &unique("leases"),
        "g",
        "start_position = \"latest\"",
    )
    .replace(
        &format!("table = \"{table}\""),
        &format!("stream_arn = \"{arn}\""),
    );
    let source = start_source(&source_config(&toml_text)).await;
    // The reader positions itself at the end some time after it takes the
    // shard: write new records until one arrives. The old one never does.
    let mut events = Vec::new();
    for i in 0..20 {
        put(&client, &table, &format!("new-{i}"), 2).await;
        events = read(&source, 1, Duration::from_secs(2), true).await;
        if !events.is_empty() {
            break;
        }
    }
    assert_eq!(events.len(), 1);
    let first = json(&events[0].key)["id"].as_str().unwrap().to_string();
    assert!(first.starts_with("new-"), "{first}");
    source.close().await.unwrap();
}

#[tokio::test]
async fn a_restart_resumes_after_the_last_commit() {
    let (client, table, _) = stream_table("ddb-restart", StreamViewType::NewImage).await;
    for i in 0..50 {
        put(&client, &table, &format!("k{i:02}"), i).await;
    }
    let leases = unique("leases");
    let cfg = source_config(&source_toml(&table, &leases, "g", ""));
    let first = start_source(&cfg).await;
    // Three batches of 10 committed, a fourth read but not committed.
    let mut seen = Vec::new();
    for i in 0..4 {
        let mut batch = first.next_batch(10, WAIT).await.unwrap();
        while batch.events.len() < 10 {
            let more = first
                .next_batch(10 - batch.events.len(), WAIT)
                .await
                .unwrap();
            batch.events.extend(more.events);
            batch.checkpoint = more.checkpoint;
        }
        seen.extend(batch.events);
        if i < 3 {
            first.commit(batch.checkpoint).await.unwrap();
        }
    }
    first.close().await.unwrap();
    let committed_seq = seen[29].origin.rsplit('/').next().unwrap().to_string();
    assert_eq!(
        stored_checkpoint(&client, &leases, "g@").await,
        committed_seq
    );

    let second = start_source(&cfg).await;
    let rest = read(&second, 20, WAIT, true).await;
    let keys: Vec<String> = rest
        .iter()
        .map(|e| json(&e.key)["id"].as_str().unwrap().to_string())
        .collect();
    let want: Vec<String> = (30..50).map(|i| format!("k{i:02}")).collect();
    assert_eq!(keys, want);
    // Nothing beyond.
    assert!(
        second
            .next_batch(10, Duration::from_millis(500))
            .await
            .unwrap()
            .events
            .is_empty()
    );
    second.close().await.unwrap();
}

#[tokio::test]
async fn a_crashed_host_loses_nothing() {
    let (client, table, _) = stream_table("ddb-crash", StreamViewType::NewImage).await;
    for i in 0..40 {
        put(&client, &table, &format!("k{i:02}"), i).await;
    }
    let leases = unique("leases");
    let cfg = source_config(&source_toml(&table, &leases, "g", ""));
    let first = start_source(&cfg).await;
    let committed = read(&first, 25, WAIT, true).await;
    assert_eq!(committed.len(), 25);
    let uncommitted = read(&first, 5, WAIT, false).await;
    assert_eq!(uncommitted.len(), 5);
    // Crash: no release, no further commits. The lease must expire first.
    first.abandon();
    drop(first);
    for i in 40..60 {
        put(&client, &table, &format!("k{i:02}"), i).await;
    }
    let second = start_source(&cfg).await;
    let rest = read(&second, 35, WAIT, true).await;
    let keys: Vec<String> = rest
        .iter()
        .map(|e| json(&e.key)["id"].as_str().unwrap().to_string())
        .collect();
    let want: Vec<String> = (25..60).map(|i| format!("k{i:02}")).collect();
    assert_eq!(
        keys, want,
        "the uncommitted 5 are read again, nothing is skipped"
    );
    second.close().await.unwrap();
}

#[tokio::test]
async fn a_table_without_a_stream_is_a_fatal_error_naming_it() {
    let client = client().await;
    let table = unique("ddb-nostream");
    create_table(&client, &table, &[("id", ScalarAttributeType::S)], None).await;
    let cfg = source_config(&source_toml(&table, &unique("leases"), "g", ""));
    let err =
        weir::source::dynamodb_streams::DynamoDbStreamsSource::connect(&cfg, &source_ctx("p"))
            .await
            .err()
            .unwrap();
    let SourceError::Fatal(msg) = err else {
        panic!("not fatal: {err:?}")
    };
    let msg = msg.to_string();
    assert_eq!(
        msg,
        format!("table {table} has no stream (enable DynamoDB Streams on it)")
    );
}

#[tokio::test]
async fn a_configured_attribute_becomes_the_events_traceparent_header() {
    let (client, table, _) = stream_table("ddb-traceparent", StreamViewType::NewAndOldImages).await;
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    client
        .put_item()
        .table_name(&table)
        .item("id", AttributeValue::S("traced".into()))
        .item("tp", AttributeValue::S(traceparent.into()))
        .send()
        .await
        .unwrap();
    put(&client, &table, "plain", 1).await;
    client
        .delete_item()
        .table_name(&table)
        .key("id", AttributeValue::S("traced".into()))
        .send()
        .await
        .unwrap();
    let cfg = source_config(&source_toml(
        &table,
        &unique("leases"),
        &unique("g"),
        "traceparent_attribute = \"tp\"",
    ));
    let source = start_source(&cfg).await;
    let events = read(&source, 3, WAIT, true).await;
    let header = |e: &weir::event::Event| {
        e.headers
            .iter()
            .find(|h| h.key == "traceparent")
            .map(|h| String::from_utf8_lossy(&h.value).into_owned())
    };
    let found: Vec<(Op, Option<String>)> = events.iter().map(|e| (e.op, header(e))).collect();
    // The removal has the attribute in its old image only.
    assert_eq!(
        found,
        [
            (Op::Insert, Some(traceparent.to_owned())),
            (Op::Insert, None),
            (Op::Delete, Some(traceparent.to_owned())),
        ],
        "{events:#?}"
    );
    source.close().await.unwrap();
}
