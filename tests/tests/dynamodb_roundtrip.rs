//! Every attribute type through source -> JSON -> sink, against moto: typed
//! JSON is lossless; natural JSON keeps what JSON can say and turns sets
//! and binary into lists and base64 strings, as documented.
//!
//! Needs moto: `scripts/services start dynamodb` (or `WEIR_TEST_DYNAMODB`).

mod dynamodb_support;

use std::collections::HashMap;
use std::time::Duration;

use dynamodb_support::*;
use serde_json::json;
use weir::dynamodb::attr::{JsonFormat, JsonMapping};
use weir::dynamodb::aws_sdk_dynamodb::Client;
use weir::dynamodb::aws_sdk_dynamodb::primitives::Blob;
use weir::dynamodb::aws_sdk_dynamodb::types::{
    AttributeValue as A, ScalarAttributeType, StreamViewType,
};
use weir::event::{Event, Output};
use weir::sink::Sink;
use weir::sink::dynamodb::{DynamoDbSink, DynamoDbSinkConfig};
use weir::source::Source;

fn every_type() -> HashMap<String, A> {
    HashMap::from([
        ("id".to_string(), A::S("all-types".into())),
        ("s".to_string(), A::S("üñíçødé \"quoted\" \n".into())),
        ("int".to_string(), A::N("-9007199254740993".into())),
        ("dec".to_string(), A::N("2.71".into())),
        (
            "big".to_string(),
            A::N("99999999999999999999999999999999999999".into()),
        ),
        (
            "small".to_string(),
            A::N("0.000000000000000000000000000000000000012345".into()),
        ),
        (
            "bin".to_string(),
            A::B(Blob::new(vec![0u8, 159, 146, 150, 255])),
        ),
        ("yes".to_string(), A::Bool(true)),
        ("nothing".to_string(), A::Null(true)),
        ("ss".to_string(), A::Ss(vec!["a".into(), "b".into()])),
        (
            "ns".to_string(),
            A::Ns(vec!["1".into(), "12345678901234567890.5".into()]),
        ),
        (
            "bs".to_string(),
            A::Bs(vec![Blob::new(vec![1u8]), Blob::new(vec![2u8, 3])]),
        ),
        (
            "nested".to_string(),
            A::M(HashMap::from([
                (
                    "list".to_string(),
                    A::L(vec![
                        A::N("1".into()),
                        A::S("two".into()),
                        A::M(HashMap::from([("deep".to_string(), A::Bool(false))])),
                    ]),
                ),
                ("empty_map".to_string(), A::M(HashMap::new())),
                ("empty_list".to_string(), A::L(vec![])),
            ])),
        ),
    ])
}

async fn setup(prefix: &str) -> (Client, String, String) {
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
    client
        .put_item()
        .table_name(&src)
        .set_item(Some(every_type()))
        .send()
        .await
        .unwrap();
    (client, src, copy)
}

fn to_output(e: &Event) -> Output {
    Output {
        key: e.key.clone(),
        value: e.value.clone(),
        op: e.op,
        ..Output::default()
    }
}

async fn copy_through(src: &str, copy: &str, format: &str) -> Event {
    let cfg = source_config(&source_toml(
        src,
        &unique("leases"),
        "g",
        &format!("format = \"{format}\""),
    ));
    let source = start_source(&cfg).await;
    let events = read(&source, 1, Duration::from_secs(30), true).await;
    source.close().await.unwrap();
    let sink_cfg: DynamoDbSinkConfig = toml::from_str(&format!(
        "table = \"{copy}\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\naccess_key_id = \"test\"\nsecret_access_key = \"test\"\nformat = \"{format}\"",
        endpoint()
    ))
    .unwrap();
    let sink = DynamoDbSink::connect("copy", &sink_cfg).await.unwrap();
    assert!(
        sink.write(&[to_output(&events[0])])
            .await
            .unwrap()
            .is_empty()
    );
    events[0].clone()
}

async fn copied(client: &Client, copy: &str) -> HashMap<String, A> {
    client
        .get_item()
        .table_name(copy)
        .key("id", A::S("all-types".into()))
        .send()
        .await
        .unwrap()
        .item()
        .cloned()
        .expect("copied item")
}

#[tokio::test]
async fn typed_json_round_trips_every_attribute_type_exactly() {
    let (client, src, copy) = setup("rt-typed").await;
    let event = copy_through(&src, &copy, "typed").await;
    assert_eq!(json(&event.value)["bin"], json!({"B": "AJ+Slv8="}));
    assert_eq!(
        json(&event.value)["big"],
        json!({"N": "99999999999999999999999999999999999999"})
    );
    let typed = JsonMapping {
        format: JsonFormat::Typed,
        ..JsonMapping::default()
    };
    assert_eq!(
        typed.item_to_value(&copied(&client, &copy).await),
        typed.item_to_value(&every_type())
    );
}

#[tokio::test]
async fn natural_json_is_plain_and_writes_back_what_json_can_say() {
    let (client, src, copy) = setup("rt-natural").await;
    let event = copy_through(&src, &copy, "natural").await;
    let value = json(&event.value);
    assert_eq!(
        value,
        json!({
            "id": "all-types",
            "s": "üñíçødé \"quoted\" \n",
            "int": -9007199254740993i64,
            "dec": 2.71,
            "big": "99999999999999999999999999999999999999",
            "small": 1.2345e-38,
            "bin": "AJ+Slv8=",
            "yes": true,
            "nothing": null,
            "ss": ["a", "b"],
            "ns": [1, "12345678901234567890.5"],
            "bs": ["AQ==", "AgM="],
            "nested": {"list": [1, "two", {"deep": false}], "empty_map": {}, "empty_list": []}
        })
    );
    let got = copied(&client, &copy).await;
    let original = every_type();
    // Exact for S, N (when exact as JSON), BOOL, NULL, M, L.
    for attr in ["id", "s", "int", "dec", "yes", "nothing", "nested"] {
        assert_eq!(got[attr], original[attr], "{attr}");
    }
    assert_eq!(
        got["small"],
        A::N("0.000000000000000000000000000000000000012345".into())
    );
    // Documented losses: inexact numbers and binary become strings, sets lists.
    assert_eq!(
        got["big"],
        A::S("99999999999999999999999999999999999999".into())
    );
    assert_eq!(got["bin"], A::S("AJ+Slv8=".into()));
    assert_eq!(got["ss"], A::L(vec![A::S("a".into()), A::S("b".into())]));
}
