//! The scylla sink on the CQL wire: the real `scylla` driver inside the sink
//! talks TCP to a CQL responder on 127.0.0.1 (no ScyllaDB/Cassandra server
//! can run on the test machines), and each test asserts what crossed the
//! wire: the statements prepared, the bound values in their CQL encodings,
//! consistency, TTL, write timestamps, batch grouping and deletes, and what
//! the sink does with Overloaded/timeouts (retried) and Invalid (dead-lettered).

use weir_tests::cql_responder;
use weir_tests::tls;

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use cql_responder::{Answer, Bound, CqlResponder, Request, Write};
use scylla_cql::Consistency;
use scylla_cql::frame::response::error::{DbError, WriteType};
use weir::event::{Op, Output};
use weir::sink::scylla::ScyllaSinkConfig;
use weir::sink::{BuildSink, Sink, SinkContext, SinkError};

/// The readings table of the IoT example.
const READINGS: &[(&str, &str)] = &[
    ("device_id", "text"),
    ("reading_date", "date"),
    ("timestamp", "timestamp"),
    ("temperature", "double"),
    ("humidity", "float"),
    ("tags", "set<text>"),
];

const READINGS_TOML: &str = r#"
keyspace = "iot_telemetry"
table = "iot_readings"
partition_key = ["device_id", "reading_date"]
clustering_key = ["timestamp"]
columns = { device_id = "text", reading_date = "date", timestamp = "timestamp", temperature = "double", humidity = "float", tags = "set<text>" }
mapping = { device_id = "value.deviceId", reading_date = "value.ts", timestamp = "value.ts", temperature = "value.temp", humidity = "value.hum", tags = "value.tags" }
retry = { attempts = 4, initial_ms = 1, max_ms = 5 }
"#;

async fn build(responder: &CqlResponder, toml_text: &str) -> Result<Arc<dyn Sink>, SinkError> {
    let text = format!("contact_points = [\"{}\"]\n{toml_text}", responder.addr);
    let cfg: ScyllaSinkConfig = toml::from_str(&text).expect("valid scylla sink config");
    cfg.build(&SinkContext {
        name: "readings".into(),
        config_dir: PathBuf::from("."),
    })
    .await
}

async fn sink(responder: &CqlResponder, toml_text: &str) -> Arc<dyn Sink> {
    build(responder, toml_text)
        .await
        .expect("sink connects to the responder")
}

fn upsert(json: &str) -> Output {
    Output {
        value: Some(Bytes::copy_from_slice(json.as_bytes())),
        op: Op::Upsert,
        ..Output::default()
    }
}

fn delete(json: &str) -> Output {
    Output {
        value: Some(Bytes::copy_from_slice(json.as_bytes())),
        op: Op::Delete,
        ..Output::default()
    }
}

fn b(bytes: &[u8]) -> Bound {
    Bound::Bytes(bytes.to_vec())
}

fn int(v: i32) -> Bound {
    b(&v.to_be_bytes())
}

fn bigint(v: i64) -> Bound {
    b(&v.to_be_bytes())
}

fn text(s: &str) -> Bound {
    b(s.as_bytes())
}

/// CQL `date`: days since the epoch + 2^31, as u32.
fn date(days: u32) -> Bound {
    b(&((1_u32 << 31) + days).to_be_bytes())
}

/// A collection of one text element.
fn text_set(items: &[&str]) -> Bound {
    let mut v = (items.len() as i32).to_be_bytes().to_vec();
    for i in items {
        v.extend((i.len() as i32).to_be_bytes());
        v.extend(i.as_bytes());
    }
    b(&v)
}

fn distinct(mut v: Vec<String>) -> Vec<String> {
    v.dedup();
    v.sort();
    v.dedup();
    v
}

const INSERT_READINGS: &str = "INSERT INTO iot_telemetry.iot_readings (device_id, reading_date, timestamp, humidity, tags, temperature) VALUES (?, ?, ?, ?, ?, ?)";

// 2024-05-01T12:00:00Z
const TS: i64 = 1_714_564_800_000;
const DAY: u32 = 19_844;

#[tokio::test]
async fn every_type_is_bound_in_its_cql_encoding() {
    let columns = [
        ("id", "text"),
        ("a_ascii", "ascii"),
        ("a_int", "int"),
        ("a_bigint", "bigint"),
        ("a_smallint", "smallint"),
        ("a_tinyint", "tinyint"),
        ("a_varint", "varint"),
        ("a_float", "float"),
        ("a_double", "double"),
        ("a_decimal", "decimal"),
        ("a_boolean", "boolean"),
        ("a_timestamp", "timestamp"),
        ("a_ts_millis", "timestamp"),
        ("a_date", "date"),
        ("a_time", "time"),
        ("a_uuid", "uuid"),
        ("a_timeuuid", "timeuuid"),
        ("a_inet", "inet"),
        ("a_inet6", "inet"),
        ("a_blob", "blob"),
        ("a_list", "list<int>"),
        ("a_set", "set<text>"),
        ("a_map", "map<text, bigint>"),
        ("a_nested", "frozen<map<int, list<boolean>>>"),
    ];
    let responder = CqlResponder::start(&columns).await;
    let col_toml: Vec<String> = columns
        .iter()
        .map(|(n, t)| format!("{n} = \"{t}\""))
        .collect();
    let map_toml: Vec<String> = columns
        .iter()
        .map(|(n, _)| format!("{n} = \"value.{n}\""))
        .collect();
    let sink = sink(
        &responder,
        &format!(
            "keyspace = \"ks\"\ntable = \"all_types\"\npartition_key = [\"id\"]\ncolumns = {{ {} }}\nmapping = {{ {} }}\n",
            col_toml.join(", "),
            map_toml.join(", ")
        ),
    )
    .await;

    let rejections = sink
        .write(&[upsert(
            r#"{"id": "row-1", "a_ascii": "A", "a_int": 42, "a_bigint": -2, "a_smallint": "300",
                "a_tinyint": -5, "a_varint": "-129", "a_float": 1.5, "a_double": 2.25,
                "a_decimal": "12.345", "a_boolean": true, "a_timestamp": "2024-05-01T14:00:00+02:00",
                "a_ts_millis": 1714564800000, "a_date": "2024-05-01", "a_time": "01:02:03.5",
                "a_uuid": "123e4567-e89b-42d3-a456-426614174000",
                "a_timeuuid": "123e4567-e89b-12d3-a456-426614174000",
                "a_inet": "10.0.0.1", "a_inet6": "::1", "a_blob": "AAEC",
                "a_list": [1, 2], "a_set": ["a"], "a_map": {"k": 7},
                "a_nested": {"5": [true, false]}}"#,
        )])
        .await
        .expect("write succeeds");
    assert_eq!(rejections, vec![]);

    // Primary key first, then the other columns by name.
    let mut names: Vec<&str> = columns
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| *n != "id")
        .collect();
    names.sort();
    let expected_cql = format!(
        "INSERT INTO ks.all_types (id, {}) VALUES ({})",
        names.join(", "),
        vec!["?"; columns.len()].join(", ")
    );
    assert!(
        distinct(responder.prepared()).contains(&expected_cql),
        "prepared: {:?}",
        responder.prepared()
    );

    let writes = responder.writes();
    assert_eq!(writes.len(), 1, "{writes:#?}");
    let Request::Execute {
        consistency,
        write,
        answer,
    } = &writes[0]
    else {
        panic!("expected one EXECUTE, got {writes:#?}");
    };
    assert_eq!(
        *consistency,
        Consistency::LocalQuorum,
        "default consistency"
    );
    assert_eq!(*answer, Answer::Ok);
    assert_eq!(write.cql, expected_cql);

    let uuid = [
        0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x42, 0xd3, 0xa4, 0x56, 0x42, 0x66, 0x14, 0x17, 0x40,
        0x00,
    ];
    let mut timeuuid = uuid;
    timeuuid[6] = 0x12;
    let mut ipv6 = [0_u8; 16];
    ipv6[15] = 1;
    let mut list = vec![0, 0, 0, 2];
    list.extend([0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 2]);
    let mut map = vec![0, 0, 0, 1, 0, 0, 0, 1, b'k', 0, 0, 0, 8];
    map.extend(7_i64.to_be_bytes());
    let mut nested = vec![0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 5];
    nested.extend([0, 0, 0, 14, 0, 0, 0, 2, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0]);
    let expected = |name: &str| -> Bound {
        match name {
            "id" => text("row-1"),
            "a_ascii" => b(b"A"),
            "a_int" => int(42),
            "a_bigint" => bigint(-2),
            "a_smallint" => b(&300_i16.to_be_bytes()),
            "a_tinyint" => b(&[0xfb]),
            "a_varint" => b(&[0xff, 0x7f]),
            "a_float" => b(&1.5_f32.to_be_bytes()),
            "a_double" => b(&2.25_f64.to_be_bytes()),
            "a_decimal" => b(&[0, 0, 0, 3, 0x30, 0x39]),
            "a_boolean" => b(&[1]),
            "a_timestamp" | "a_ts_millis" => bigint(TS),
            "a_date" => date(DAY),
            "a_time" => bigint(3_723_500_000_000),
            "a_uuid" => b(&uuid),
            "a_timeuuid" => b(&timeuuid),
            "a_inet" => b(&[10, 0, 0, 1]),
            "a_inet6" => b(&ipv6),
            "a_blob" => b(&[0, 1, 2]),
            "a_list" => b(&list),
            "a_set" => text_set(&["a"]),
            "a_map" => b(&map),
            "a_nested" => b(&nested),
            other => panic!("unexpected column {other}"),
        }
    };
    let order: Vec<&str> = std::iter::once("id").chain(names.iter().copied()).collect();
    assert_eq!(write.values.len(), order.len());
    for (name, got) in order.iter().zip(&write.values) {
        assert_eq!(got, &expected(name), "encoding of column {name}");
    }
    responder.stop().await;
}

#[tokio::test]
async fn nulls_and_missing_fields_are_unset_by_default_and_null_when_configured() {
    let responder = CqlResponder::start(READINGS).await;
    let unset_sink = sink(&responder, READINGS_TOML).await;
    let out = upsert(r#"{"deviceId": "d1", "ts": 1714564800000, "temp": null}"#);
    assert_eq!(
        unset_sink.write(std::slice::from_ref(&out)).await.unwrap(),
        vec![]
    );

    let null_sink = sink(
        &responder,
        &format!("{READINGS_TOML}null_values = \"null\"\n"),
    )
    .await;
    assert_eq!(null_sink.write(&[out]).await.unwrap(), vec![]);

    let writes = responder.writes();
    let values: Vec<Vec<Bound>> = writes
        .iter()
        .map(|r| match r {
            Request::Execute { write, .. } => write.values.clone(),
            other => panic!("expected EXECUTE, got {other:?}"),
        })
        .collect();
    let key = [text("d1"), date(DAY), bigint(TS)];
    let mut unset = key.to_vec();
    unset.extend([Bound::Unset, Bound::Unset, Bound::Unset]);
    let mut null = key.to_vec();
    null.extend([Bound::Null, Bound::Null, Bound::Null]);
    assert_eq!(values, vec![unset, null]);
    responder.stop().await;
}

#[tokio::test]
async fn ttl_timestamp_and_consistency_reach_the_wire() {
    let responder = CqlResponder::start(READINGS).await;
    let sink = sink(
        &responder,
        &format!(
            "{READINGS_TOML}ttl_seconds = 2592000\nconsistency = \"one\"\nserial_consistency = \"local_serial\"\nwrite_timestamp = {{ field = \"value.ts\", unit = \"milliseconds\" }}\n"
        ),
    )
    .await;
    let with_own_ttl = Output {
        ttl_seconds: Some(60),
        ..upsert(r#"{"deviceId": "d2", "ts": 1714564800000, "temp": 21.5}"#)
    };
    let rejections = sink
        .write(&[
            upsert(r#"{"deviceId": "d1", "ts": "2024-05-01T12:00:00Z", "temp": 20.0}"#),
            with_own_ttl,
        ])
        .await
        .unwrap();
    assert_eq!(rejections, vec![]);

    let with_ttl = format!("{INSERT_READINGS} USING TTL ? AND TIMESTAMP ?");
    let prepared = distinct(responder.prepared());
    assert_eq!(
        prepared,
        distinct(vec![
            with_ttl.clone(),
            "DELETE FROM iot_telemetry.iot_readings USING TIMESTAMP ? WHERE device_id = ? AND reading_date = ? AND timestamp = ?".to_string(),
        ]),
        "with a configured TTL only the TTL insert and the delete are prepared"
    );

    let mut seen = Vec::new();
    for r in responder.writes() {
        let Request::Execute {
            consistency, write, ..
        } = r
        else {
            panic!("two partitions: two EXECUTEs, got {r:?}");
        };
        assert_eq!(consistency, Consistency::One);
        assert_eq!(write.cql, with_ttl);
        seen.push(write.values);
    }
    seen.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    assert_eq!(
        seen,
        vec![
            vec![
                text("d1"),
                date(DAY),
                bigint(TS),
                Bound::Unset,
                Bound::Unset,
                b(&20.0_f64.to_be_bytes()),
                int(2_592_000),
                bigint(TS * 1000),
            ],
            vec![
                text("d2"),
                date(DAY),
                bigint(TS),
                Bound::Unset,
                Bound::Unset,
                b(&21.5_f64.to_be_bytes()),
                int(60),
                bigint(TS * 1000),
            ],
        ],
        "TTL from the config or the output's own, USING TIMESTAMP in microseconds"
    );
    responder.stop().await;
}

#[tokio::test]
async fn without_a_ttl_the_plain_insert_is_used_and_output_ttls_still_apply() {
    let responder = CqlResponder::start(READINGS).await;
    let sink = sink(&responder, READINGS_TOML).await;
    let rejections = sink
        .write(&[
            upsert(r#"{"deviceId": "d1", "ts": 1714564800000}"#),
            Output {
                ttl_seconds: Some(5),
                ..upsert(r#"{"deviceId": "d2", "ts": 1714564800000}"#)
            },
        ])
        .await
        .unwrap();
    assert_eq!(rejections, vec![]);
    let mut cqls: Vec<(String, Option<Bound>)> = responder
        .writes()
        .into_iter()
        .map(|r| match r {
            Request::Execute { write, .. } => {
                let ttl = (write.values.len() == 7).then(|| write.values[6].clone());
                (write.cql, ttl)
            }
            other => panic!("{other:?}"),
        })
        .collect();
    cqls.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        cqls,
        vec![
            (INSERT_READINGS.to_string(), None),
            (format!("{INSERT_READINGS} USING TTL ?"), Some(int(5))),
        ]
    );
    responder.stop().await;
}

#[tokio::test]
async fn outputs_are_grouped_by_partition_into_bounded_unlogged_batches() {
    let responder = CqlResponder::start(READINGS).await;
    let sink = sink(
        &responder,
        &format!("{READINGS_TOML}batch = {{ max_statements = 2 }}\n"),
    )
    .await;
    let r = |dev: &str, ms: i64| upsert(&format!(r#"{{"deviceId": "{dev}", "ts": {ms}}}"#));
    let outputs = [
        r("a", TS),
        r("b", TS),
        r("a", TS + 1),
        r("a", TS + 2),
        // Same device, next day: another partition.
        r("a", TS + 86_400_000),
        // The same row as the first: must not share a batch with it.
        r("b", TS),
    ];
    assert_eq!(sink.write(&outputs).await.unwrap(), vec![]);

    // Per request: (batch type or EXECUTE, [(device, day, ts)]).
    let key = |w: &Write| {
        (
            w.values[0].clone(),
            w.values[1].clone(),
            w.values[2].clone(),
        )
    };
    type RowKey = (Bound, Bound, Bound);
    let mut requests: Vec<(Option<u8>, Vec<RowKey>)> = responder
        .writes()
        .into_iter()
        .map(|r| match r {
            Request::Execute {
                write, consistency, ..
            } => {
                assert_eq!(consistency, Consistency::LocalQuorum);
                (None, vec![key(&write)])
            }
            Request::Batch {
                batch_type,
                consistency,
                writes,
                ..
            } => {
                assert_eq!(consistency, Consistency::LocalQuorum);
                assert!(writes.iter().all(|w| w.cql == INSERT_READINGS));
                (Some(batch_type), writes.iter().map(key).collect())
            }
            other => panic!("{other:?}"),
        })
        .collect();
    requests.sort_by(|a, b| format!("{:?}", a.1).cmp(&format!("{:?}", b.1)));
    let k = |dev: &str, day: u32, ts: i64| (text(dev), date(day), bigint(ts));
    let mut expected = vec![
        // Partition (a, day): 3 rows, at most 2 per batch, in order.
        (Some(1), vec![k("a", DAY, TS), k("a", DAY, TS + 1)]),
        (None, vec![k("a", DAY, TS + 2)]),
        (None, vec![k("a", DAY + 1, TS + 86_400_000)]),
        // Partition (b, day): the repeated row goes into a second request.
        (None, vec![k("b", DAY, TS)]),
        (None, vec![k("b", DAY, TS)]),
    ];
    expected.sort_by(|a, b| format!("{:?}", a.1).cmp(&format!("{:?}", b.1)));
    assert_eq!(
        requests, expected,
        "1 = UNLOGGED batch, None = single EXECUTE"
    );

    // Within a partition the requests keep the input order.
    let order_a: Vec<i64> = responder
        .writes()
        .into_iter()
        .flat_map(|r| match r {
            Request::Execute { write, .. } => vec![write],
            Request::Batch { writes, .. } => writes,
            _ => vec![],
        })
        .filter(|w| w.values[0] == text("a") && w.values[1] == date(DAY))
        .map(|w| match &w.values[2] {
            Bound::Bytes(b) => i64::from_be_bytes(b[..].try_into().unwrap()),
            _ => panic!(),
        })
        .collect();
    assert_eq!(order_a, vec![TS, TS + 1, TS + 2]);
    responder.stop().await;
}

#[tokio::test]
async fn delete_outputs_delete_by_primary_key() {
    let responder = CqlResponder::start(READINGS).await;
    let sink = sink(&responder, READINGS_TOML).await;
    let rejections = sink
        .write(&[
            delete(r#"{"deviceId": "d1", "ts": 1714564800000, "temp": 3.0}"#),
            delete(r#"{"deviceId": "d1"}"#),
        ])
        .await
        .unwrap();
    assert_eq!(
        rejections,
        vec![weir::sink::Rejection {
            index: 1,
            reason: "column `reading_date` (date): primary key value missing at `value.ts`".into()
        }]
    );
    let writes = responder.writes();
    assert_eq!(
        writes,
        vec![Request::Execute {
            consistency: Consistency::LocalQuorum,
            write: Write {
                cql: "DELETE FROM iot_telemetry.iot_readings WHERE device_id = ? AND reading_date = ? AND timestamp = ?".into(),
                values: vec![text("d1"), date(DAY), bigint(TS)],
            },
            answer: Answer::Ok,
        }]
    );
    responder.stop().await;
}

#[tokio::test]
async fn the_schema_is_read_from_system_schema_columns() {
    let responder = CqlResponder::start(READINGS).await;
    responder.set_schema_rows(&[
        ("device_id", "partition_key", 0, "text"),
        ("reading_date", "partition_key", 1, "date"),
        ("timestamp", "clustering", 0, "timestamp"),
        ("temperature", "regular", -1, "double"),
        ("humidity", "regular", -1, "float"),
        ("tags", "regular", -1, "frozen<set<text>>"),
    ]);
    let sink = sink(
        &responder,
        r#"
keyspace = "iot_telemetry"
table = "iot_readings"
mapping = { device_id = "key", reading_date = "value.ts", timestamp = "value.ts", temperature = "value.t" }
"#,
    )
    .await;
    let out = Output {
        key: Some(Bytes::from_static(b"sensor-9")),
        ..upsert(r#"{"ts": 1714564800000, "t": 1}"#)
    };
    assert_eq!(sink.write(&[out]).await.unwrap(), vec![]);
    assert!(responder.log().contains(&Request::Query(
        "SELECT column_name, kind, position, type FROM system_schema.columns WHERE keyspace_name = 'iot_telemetry' AND table_name = 'iot_readings'".into()
    )));
    let writes = responder.writes();
    assert_eq!(
        writes,
        vec![Request::Execute {
            consistency: Consistency::LocalQuorum,
            write: Write {
                cql: "INSERT INTO iot_telemetry.iot_readings (device_id, reading_date, timestamp, temperature) VALUES (?, ?, ?, ?)".into(),
                values: vec![text("sensor-9"), date(DAY), bigint(TS), b(&1.0_f64.to_be_bytes())],
            },
            answer: Answer::Ok,
        }],
        "a plain-string key maps to a text column; 1 converts to double"
    );
    responder.stop().await;
}

#[tokio::test]
async fn a_bad_mapping_fails_at_start_naming_the_column() {
    let responder = CqlResponder::start(READINGS).await;
    let err = build(
        &responder,
        &READINGS_TOML.replace("tags = \"value.tags\"", "tagz = \"value.tags\""),
    )
    .await
    .err()
    .expect("an unknown column fails the build");
    let msg = err.to_string();
    assert!(matches!(err, SinkError::Fatal(_)));
    assert!(
        msg.starts_with(
            "column `tagz` is mapped but iot_telemetry.iot_readings has no such column"
        ),
        "{msg}"
    );
    let err = build(
        &responder,
        &READINGS_TOML.replace("device_id = \"value.deviceId\", ", ""),
    )
    .await
    .err()
    .expect("an unmapped key column fails the build");
    assert_eq!(
        err.to_string(),
        "primary key column `device_id` of iot_telemetry.iot_readings is not mapped"
    );
    responder.stop().await;
}

#[tokio::test]
async fn conversion_errors_are_rejected_naming_column_type_and_value() {
    let responder = CqlResponder::start(READINGS).await;
    let sink = sink(&responder, READINGS_TOML).await;
    let rejections = sink
        .write(&[
            upsert(r#"{"deviceId": "d1", "ts": 1714564800000, "temp": "warm"}"#),
            upsert(r#"{"deviceId": "d1", "ts": "yesterday"}"#),
            upsert(r#"{"deviceId": "d1", "ts": 1714564800000, "hum": 1e39}"#),
            upsert(r#"{"deviceId": "d1", "ts": 1714564800000, "tags": ["x", 1, null]}"#),
            upsert("not json"),
            upsert(r#"{"deviceId": "ok", "ts": 1714564800000}"#),
        ])
        .await
        .unwrap();
    let reasons: Vec<(usize, String)> = rejections
        .into_iter()
        .map(|r| (r.index, r.reason))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (0, "column `temperature`: expected double, got \"warm\": not a number".into()),
            (1, "column `reading_date`: expected date, got \"yesterday\": not epoch milliseconds or an ISO-8601 date-time (2024-05-01T12:00:00Z)".into()),
            (2, "column `humidity`: expected float, got 1e+39: out of range (±3.4028235e38)".into()),
            (3, "column `tags`: expected set<text>, got [\"x\",1,null]: element: expected text, got null: null is not allowed here".into()),
            (4, "output value is not JSON: expected ident at line 1 column 2".into()),
        ]
    );
    // Only the good output reached the wire.
    assert_eq!(responder.writes().len(), 1);
    responder.stop().await;
}

#[tokio::test]
async fn overloaded_and_timeouts_are_retried_then_succeed() {
    let responder = CqlResponder::start(READINGS).await;
    let sink = sink(&responder, READINGS_TOML).await;
    responder.fail_next([
        DbError::Overloaded,
        DbError::WriteTimeout {
            consistency: Consistency::LocalQuorum,
            received: 1,
            required: 2,
            write_type: WriteType::Simple,
        },
        DbError::Unavailable {
            consistency: Consistency::LocalQuorum,
            required: 2,
            alive: 1,
        },
    ]);
    let out = upsert(r#"{"deviceId": "d1", "ts": 1714564800000, "temp": 1.0}"#);
    assert_eq!(
        sink.write(&[out]).await.unwrap(),
        vec![],
        "written after retries"
    );
    let writes = responder.writes();
    let answers: Vec<Answer> = writes
        .iter()
        .map(|r| match r {
            Request::Execute { answer, .. } => answer.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(answers.len(), 4, "{writes:#?}");
    assert!(matches!(&answers[0], Answer::Error(m) if m.contains("Overloaded")));
    assert!(matches!(&answers[1], Answer::Error(m) if m.contains("WriteTimeout")));
    assert!(matches!(&answers[2], Answer::Error(m) if m.contains("Unavailable")));
    assert_eq!(answers[3], Answer::Ok);
    // Every attempt carried the same statement and values.
    let first = &writes[0];
    for w in &writes[1..] {
        match (first, w) {
            (Request::Execute { write: a, .. }, Request::Execute { write: b, .. }) => {
                assert_eq!(a, b)
            }
            _ => unreachable!(),
        }
    }
    responder.stop().await;
}

#[tokio::test]
async fn retries_run_out_as_a_transient_error_for_the_pipeline() {
    let responder = CqlResponder::start(READINGS).await;
    let sink = sink(&responder, READINGS_TOML).await;
    responder.fail_next(std::iter::repeat_n(DbError::Overloaded, 4));
    let out = upsert(r#"{"deviceId": "d1", "ts": 1714564800000}"#);
    let err = sink
        .write(&[out])
        .await
        .expect_err("4 overloaded answers use up 4 attempts");
    assert!(matches!(err, SinkError::Transient(_)), "{err:?}");
    assert!(err.to_string().contains("after 4 attempts"), "{err}");
    assert_eq!(responder.writes().len(), 4);
    responder.stop().await;
}

#[tokio::test]
async fn an_invalid_answer_dead_letters_only_that_output() {
    let responder = CqlResponder::start(READINGS).await;
    let sink = sink(&responder, READINGS_TOML).await;
    responder.poison(b"poison", DbError::Invalid);
    let rejections = sink
        .write(&[
            upsert(r#"{"deviceId": "d1", "ts": 1714564800000, "tags": ["fine"]}"#),
            upsert(r#"{"deviceId": "d1", "ts": 1714564800001, "tags": ["poison"]}"#),
            upsert(r#"{"deviceId": "d1", "ts": 1714564800002}"#),
            upsert(r#"{"deviceId": "d2", "ts": 1714564800000, "tags": ["poison"]}"#),
        ])
        .await
        .unwrap();
    let indexes: Vec<usize> = rejections.iter().map(|r| r.index).collect();
    assert_eq!(indexes, vec![1, 3]);
    for r in &rejections {
        assert!(
            r.reason
                .starts_with("iot_telemetry.iot_readings rejected the write: ")
                && r.reason.contains("forged Invalid"),
            "{}",
            r.reason
        );
    }
    // The batch of partition d1 was refused as a whole, then each statement
    // was sent alone so that the good rows were still written.
    let log = responder.writes();
    let ok_rows: Vec<Bound> = log
        .iter()
        .filter_map(|r| match r {
            Request::Execute {
                write,
                answer: Answer::Ok,
                ..
            } => Some(write.values[2].clone()),
            _ => None,
        })
        .collect();
    let mut ok_rows = ok_rows;
    ok_rows.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    let mut expected = vec![bigint(TS), bigint(TS + 2)];
    expected.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    assert_eq!(ok_rows, expected);
    assert!(log.iter().any(|r| matches!(
        r,
        Request::Batch { batch_type: 1, writes, answer: Answer::Error(_), .. } if writes.len() == 3
    )));
    responder.stop().await;
}

#[tokio::test]
async fn unauthorized_is_fatal() {
    let responder = CqlResponder::start(READINGS).await;
    let sink = sink(&responder, READINGS_TOML).await;
    responder.fail_next([DbError::Unauthorized]);
    let err = sink
        .write(&[upsert(r#"{"deviceId": "d1", "ts": 1714564800000}"#)])
        .await
        .expect_err("unauthorized");
    assert!(matches!(err, SinkError::Fatal(_)), "{err:?}");
    assert!(
        err.to_string().starts_with(
            "Database returned an error: The logged user doesn't have the right to perform the query"
        ),
        "{err}"
    );
    responder.stop().await;
}

/// TLS to the nodes: the responder behind the test crate's TLS terminator,
/// reached through a tap that keeps every byte. The write lands, every
/// connection starts with a TLS handshake, the bound values' plaintext
/// never crosses the wire, and a wrong CA is refused.
#[tokio::test(flavor = "multi_thread")]
async fn tls_to_the_nodes_is_encrypted_and_a_wrong_ca_is_refused() {
    let responder = CqlResponder::start(READINGS).await;
    let pki = tls::pki();
    let terminator = tls::terminator(&pki, responder.addr, false).await;
    let (tap, captured) = tls::tap(terminator).await;
    let config = |ca: &std::path::Path| {
        format!(
            "contact_points = [\"{tap}\"]\ntls = {{ ca_file = \"{}\" }}\n{READINGS_TOML}",
            tls::p(ca)
        )
    };
    let build_with = |text: String| async move {
        let cfg: ScyllaSinkConfig = toml::from_str(&text).expect("valid scylla sink config");
        cfg.build(&SinkContext {
            name: "readings".into(),
            config_dir: PathBuf::from("."),
        })
        .await
    };
    let sink = build_with(config(&pki.ca))
        .await
        .expect("the sink connects over TLS");
    let marker = "plaintext-marker-device-0042";
    let rejections = sink
        .write(&[upsert(&format!(
            r#"{{"deviceId": "{marker}", "ts": 1714564800000, "temp": 3.0, "hum": 1.5, "tags": ["a"]}}"#
        ))])
        .await
        .unwrap();
    assert!(rejections.is_empty(), "{rejections:?}");
    let writes = responder.writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    let Request::Execute { write, .. } = &writes[0] else {
        panic!("not an EXECUTE: {writes:?}");
    };
    assert!(write.values.contains(&text(marker)), "{write:?}");
    {
        let captured = captured.lock().unwrap();
        assert!(
            captured.all_tls(),
            "a connection did not start with a TLS handshake"
        );
        assert!(
            !captured.contains(marker.as_bytes()),
            "the bound values' plaintext crossed the wire"
        );
    }
    drop(sink);

    let err = build_with(config(&pki.other_ca))
        .await
        .err()
        .expect("a wrong CA must be refused")
        .to_string();
    assert!(
        err.contains("certificate") || err.contains("UnknownIssuer"),
        "the error does not say the nodes' certificate was not trusted: {err}"
    );
    responder.stop().await;
}
