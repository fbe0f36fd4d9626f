//! Every attribute type through source -> JSON -> sink, against moto: typed
//! JSON is lossless; natural JSON keeps what JSON can say and turns sets
//! and binary into lists and base64 strings, as documented.
//!
//! Needs moto: `scripts/services start dynamodb` (or `WEIR_TEST_DYNAMODB`).

use weir_tests::dynamodb_support;

use std::collections::HashMap;
use std::time::Duration;

use dynamodb_support::*;
use serde_json::json;
use weir::dynamodb::attr::{JsonFormat, JsonMapping, same_decimal};
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

/// Numbers at the edges of DynamoDB's range and precision.
fn edge_numbers() -> HashMap<String, A> {
    let n = |text: &str| A::N(text.into());
    HashMap::from([
        ("id".to_string(), A::S("edges".into())),
        ("tiny".to_string(), n("1E-130")),
        ("neg_tiny".to_string(), n("-1E-130")),
        (
            "huge".to_string(),
            n("9.9999999999999999999999999999999999999E+125"),
        ),
        (
            "neg_huge".to_string(),
            n("-9.9999999999999999999999999999999999999E+125"),
        ),
        (
            "digits38".to_string(),
            n("12345678901234567890123456789012345678"),
        ),
        (
            "frac38".to_string(),
            n("0.12345678901234567890123456789012345678"),
        ),
        ("two63".to_string(), n("9223372036854775808")),
        ("neg_two63".to_string(), n("-9223372036854775808")),
        ("minus_zero".to_string(), n("-0")),
        (
            "in_a_list".to_string(),
            A::L(vec![n("1E-130"), n("-1E-130"), n("1.5E-129")]),
        ),
    ])
}

async fn setup(prefix: &str) -> (Client, String, String) {
    setup_with(prefix, every_type()).await
}

async fn setup_with(prefix: &str, item: HashMap<String, A>) -> (Client, String, String) {
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
        .set_item(Some(item))
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
    let rejected = sink.write(&[to_output(&events[0])]).await.unwrap();
    assert!(rejected.is_empty(), "the copy was refused: {rejected:?}");
    events[0].clone()
}

async fn copied(client: &Client, copy: &str) -> HashMap<String, A> {
    copied_item(client, copy, "all-types").await
}

async fn copied_item(client: &Client, copy: &str, id: &str) -> HashMap<String, A> {
    client
        .get_item()
        .table_name(copy)
        .key("id", A::S(id.into()))
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

#[tokio::test]
async fn typed_json_copies_numbers_at_the_edges_of_the_range_exactly() {
    let (client, src, copy) = setup_with("rt-edges-typed", edge_numbers()).await;
    let event = copy_through(&src, &copy, "typed").await;
    assert_eq!(json(&event.value)["tiny"], json!({"N": "1E-130"}));
    let typed = JsonMapping {
        format: JsonFormat::Typed,
        ..JsonMapping::default()
    };
    assert_eq!(
        typed.item_to_value(&copied_item(&client, &copy, "edges").await),
        typed.item_to_value(&edge_numbers())
    );
}

#[tokio::test]
async fn natural_json_writes_back_exact_numbers_as_the_same_decimal() {
    let (client, src, copy) = setup_with("rt-edges-natural", edge_numbers()).await;
    let event = copy_through(&src, &copy, "natural").await;
    // The source hands exact numbers on as DynamoDB's own decimal text.
    let text = String::from_utf8(event.value.clone().unwrap().to_vec()).unwrap();
    assert!(text.contains(r#""tiny":1E-130"#), "{text}");
    assert!(text.contains(r#""two63":9223372036854775808"#), "{text}");
    let got = copied_item(&client, &copy, "edges").await;
    let original = edge_numbers();
    let same = |attr: &str| match (&got[attr], &original[attr]) {
        (A::N(a), A::N(b)) => same_decimal(a, b),
        _ => false,
    };
    for attr in ["tiny", "neg_tiny", "two63", "neg_two63", "minus_zero"] {
        assert!(
            same(attr),
            "{attr}: {:?} became {:?}",
            original[attr],
            got[attr]
        );
    }
    let A::L(list) = &got["in_a_list"] else {
        panic!("in_a_list: {:?}", got["in_a_list"])
    };
    let list: Vec<&str> = list.iter().map(|a| a.as_n().unwrap().as_str()).collect();
    for (got, want) in list.iter().zip(["1E-130", "-1E-130", "1.5E-129"]) {
        assert!(same_decimal(got, want), "{want} became {got}");
    }
    // Numbers a double cannot carry travel as strings holding the decimal
    // (inexact_numbers = "string", the default) and are written back as such.
    for attr in ["huge", "neg_huge", "digits38", "frac38"] {
        let A::N(text) = &original[attr] else {
            unreachable!()
        };
        assert_eq!(got[attr], A::S(text.clone()), "{attr}");
    }
}
