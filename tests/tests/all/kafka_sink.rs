//! The Kafka sink against the real Kafka-compatible broker
//! (`scripts/services start kafka`): what lands in the topic (keys, headers,
//! values, tombstones), topics taken from routes, and an output the client
//! refuses for good rejected on its own while the rest is written.

use weir_tests::kafka;

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use kafka::{brokers, create_topic, read_topic, unique};
use weir::event::{Header, Op, Output};
use weir::sink::kafka::{KafkaSink, KafkaSinkConfig};
use weir::sink::{Sink, SinkContext};

fn ctx() -> SinkContext {
    SinkContext {
        name: "out".into(),
        config_dir: PathBuf::from("."),
    }
}

fn sink(toml_text: &str) -> KafkaSink {
    let config: KafkaSinkConfig =
        toml::from_str(toml_text).unwrap_or_else(|e| panic!("{e}\n{toml_text}"));
    KafkaSink::connect(&config, &ctx()).expect("connect")
}

fn output(route: Option<&str>, key: &str, value: Option<&str>) -> Output {
    Output {
        route: route.map(str::to_string),
        key: Some(Bytes::from(key.to_string())),
        value: value.map(|v| Bytes::from(v.to_string())),
        op: if value.is_some() {
            Op::Upsert
        } else {
            Op::Delete
        },
        headers: vec![
            Header::new("source", "test"),
            Header::new("bin", vec![1u8, 2, 3]),
        ],
        ttl_seconds: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_keys_headers_values_and_tombstones() {
    let brokers = brokers();
    let topic = unique("sink-basic");
    create_topic(&brokers, &topic, 3).await;
    let sink = sink(&format!("brokers = \"{brokers}\"\ntopic = \"{topic}\""));
    let mut outputs: Vec<Output> = (0..500)
        .map(|i| {
            output(
                None,
                &format!("k{}", i % 10),
                Some(&format!("{{\"i\":{i}}}")),
            )
        })
        .collect();
    outputs.push(output(None, "k3", None));
    let rejections = sink.write(&outputs).await.expect("write");
    assert!(rejections.is_empty(), "{rejections:?}");
    sink.flush().await.expect("flush");

    let got = read_topic(&brokers, &topic, 501, Duration::from_secs(15));
    assert_eq!(got.len(), 501);
    // Everything of key k3 is in one partition, in write order, ending with
    // the tombstone.
    let k3: Vec<_> = got
        .iter()
        .filter(|m| m.key.as_deref() == Some(b"k3"))
        .collect();
    assert_eq!(k3.len(), 51);
    assert!(k3.iter().all(|m| m.partition == k3[0].partition));
    let mut k3 = k3;
    k3.sort_by_key(|m| m.offset);
    let values: Vec<Option<String>> = k3
        .iter()
        .map(|m| {
            m.value
                .as_ref()
                .map(|v| String::from_utf8(v.clone()).unwrap())
        })
        .collect();
    let mut expected: Vec<Option<String>> = (0..500)
        .filter(|i| i % 10 == 3)
        .map(|i| Some(format!("{{\"i\":{i}}}")))
        .collect();
    expected.push(None);
    assert_eq!(values, expected);
    assert_eq!(
        k3[0].headers,
        vec![
            ("source".to_string(), b"test".to_vec()),
            ("bin".to_string(), vec![1, 2, 3])
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_comes_from_the_route_when_unset() {
    let brokers = brokers();
    let (a, b) = (unique("route-a"), unique("route-b"));
    create_topic(&brokers, &a, 1).await;
    create_topic(&brokers, &b, 1).await;
    let sink = sink(&format!("brokers = \"{brokers}\""));
    let outputs = vec![
        output(Some(&a), "1", Some("{\"to\":\"a\"}")),
        output(Some(&b), "2", Some("{\"to\":\"b\"}")),
        output(None, "3", Some("{\"to\":\"nowhere\"}")),
        output(Some(&a), "4", Some("{\"to\":\"a2\"}")),
    ];
    let rejections = sink.write(&outputs).await.expect("write");
    assert_eq!(rejections.len(), 1);
    assert_eq!(rejections[0].index, 2);
    assert_eq!(
        rejections[0].reason,
        "the output has no route and the sink no `topic`"
    );
    let in_a: Vec<String> = read_topic(&brokers, &a, 2, Duration::from_secs(15))
        .iter()
        .map(kafka::Msg::text)
        .collect();
    let in_b: Vec<String> = read_topic(&brokers, &b, 1, Duration::from_secs(15))
        .iter()
        .map(kafka::Msg::text)
        .collect();
    assert_eq!(in_a, vec!["{\"to\":\"a\"}", "{\"to\":\"a2\"}"]);
    assert_eq!(in_b, vec!["{\"to\":\"b\"}"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_output_is_rejected_alone() {
    let brokers = brokers();
    let topic = unique("sink-big");
    create_topic(&brokers, &topic, 1).await;
    let sink = sink(&format!(
        "brokers = \"{brokers}\"\ntopic = \"{topic}\"\noptions = {{ \"message.max.bytes\" = 2000 }}"
    ));
    let big = format!("{{\"blob\":\"{}\"}}", "x".repeat(5000));
    let outputs = vec![
        output(None, "a", Some("{\"n\":1}")),
        output(None, "b", Some(&big)),
        output(None, "c", Some("{\"n\":3}")),
    ];
    let rejections = sink.write(&outputs).await.expect("write");
    assert_eq!(rejections.len(), 1, "{rejections:?}");
    assert_eq!(rejections[0].index, 1);
    assert!(
        rejections[0].reason.contains("Message size too large"),
        "{}",
        rejections[0].reason
    );
    let got: Vec<String> = read_topic(&brokers, &topic, 2, Duration::from_secs(15))
        .iter()
        .map(kafka::Msg::text)
        .collect();
    assert_eq!(got, vec!["{\"n\":1}", "{\"n\":3}"]);
}

#[tokio::test]
async fn an_unreachable_cluster_is_a_transient_error() {
    let sink = sink(
        "brokers = \"127.0.0.1:1\"\ntopic = \"t\"\noptions = { \"message.timeout.ms\" = 1500 }",
    );
    let err = sink
        .write(&[output(None, "k", Some("{}"))])
        .await
        .unwrap_err();
    assert!(
        matches!(err, weir::sink::SinkError::Transient(_)),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with("write failed, will be retried"),
        "{err}"
    );
}

#[test]
fn config_rejects_unknown_keys_and_bad_acks() {
    let err = toml::from_str::<KafkaSinkConfig>("brokers = \"x\"\ntopik = \"t\"").unwrap_err();
    assert!(err.to_string().contains("unknown field `topik`"), "{err}");
    let config: KafkaSinkConfig = toml::from_str("brokers = \"x\"\nacks = \"most\"").unwrap();
    let err = KafkaSink::connect(&config, &ctx()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "acks must be \"all\", \"1\" or \"0\", not \"most\""
    );
}
