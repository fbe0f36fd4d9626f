//! The scylla sink against a real ScyllaDB or Apache Cassandra cluster.
//!
//! Opt-in: these tests are `#[ignore]`d with the reason "needs
//! SCYLLA_NODES", so a plain `cargo test` lists each of them by name as
//! ignored instead of passing. Run them with
//!
//! ```text
//! SCYLLA_NODES=127.0.0.1:9042 make test-scylla
//! # or
//! SCYLLA_NODES=127.0.0.1:9042 cargo test -p weir-tests --test all scylla_cluster:: -- --ignored
//! ```
//!
//! Run without SCYLLA_NODES they fail, naming the variable. Each test
//! creates its own keyspace (SimpleStrategy, RF 1; `SCYLLA_DC` names the
//! datacenter, default `datacenter1`), writes through the sink, reads the
//! rows back with the driver and drops the keyspace.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::value::{CqlDate, CqlTimestamp, CqlValue, Row};
use weir::event::{Op, Output};
use weir::sink::scylla::ScyllaSinkConfig;
use weir::sink::{BuildSink, Sink, SinkContext};

fn nodes(test: &str) -> Vec<String> {
    match std::env::var("SCYLLA_NODES") {
        Ok(v) if !v.trim().is_empty() => v.split(',').map(|s| s.trim().to_string()).collect(),
        _ => panic!(
            "scylla_cluster::{test}: NOT RUN — set SCYLLA_NODES=host:port (for example \
             SCYLLA_NODES=127.0.0.1:9042 make test-scylla); see docs/sinks/scylla.md"
        ),
    }
}

fn datacenter() -> String {
    std::env::var("SCYLLA_DC").unwrap_or_else(|_| "datacenter1".to_string())
}

/// A keyspace of its own for one test, dropped at the end.
struct Cluster {
    session: Session,
    nodes: Vec<String>,
    keyspace: String,
}

impl Cluster {
    /// `test` names the test in messages; `tag` (short) names its keyspace.
    async fn new(test: &str, tag: &str) -> Cluster {
        let nodes = nodes(test);
        let session = SessionBuilder::new()
            .known_nodes(&nodes)
            .build()
            .await
            .unwrap_or_else(|e| panic!("scylla_cluster::{test}: cannot connect to {nodes:?}: {e}"));
        let keyspace = format!("weir_it_{tag}_{}", std::process::id());
        session
            .query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), ())
            .await
            .unwrap();
        session
            .query_unpaged(
                format!(
                    "CREATE KEYSPACE {keyspace} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
                ),
                (),
            )
            .await
            .unwrap();
        Cluster {
            session,
            nodes,
            keyspace,
        }
    }

    async fn ddl(&self, cql: &str) {
        self.session
            .query_unpaged(cql.replace("KS.", &format!("{}.", self.keyspace)), ())
            .await
            .unwrap_or_else(|e| panic!("{cql}: {e}"));
        self.session.await_schema_agreement().await.unwrap();
    }

    async fn sink(&self, toml_rest: &str) -> Arc<dyn Sink> {
        let text = format!(
            "contact_points = {:?}\nlocal_datacenter = \"{}\"\nkeyspace = \"{}\"\nconsistency = \"one\"\n{toml_rest}",
            self.nodes,
            datacenter(),
            self.keyspace
        );
        let cfg: ScyllaSinkConfig = toml::from_str(&text).expect("config");
        cfg.build(&SinkContext {
            name: "cluster".into(),
            config_dir: PathBuf::from("."),
        })
        .await
        .expect("sink connects")
    }

    async fn rows(&self, cql: &str) -> Vec<Vec<Option<CqlValue>>> {
        let result = self
            .session
            .query_unpaged(cql.replace("KS.", &format!("{}.", self.keyspace)), ())
            .await
            .unwrap_or_else(|e| panic!("{cql}: {e}"))
            .into_rows_result()
            .unwrap();
        result
            .rows::<Row>()
            .unwrap()
            .map(|r| r.unwrap().columns)
            .collect()
    }

    async fn drop(self) {
        let _ = self
            .session
            .query_unpaged(format!("DROP KEYSPACE IF EXISTS {}", self.keyspace), ())
            .await;
    }
}

fn upsert(json: &str) -> Output {
    Output {
        value: Some(Bytes::copy_from_slice(json.as_bytes())),
        op: Op::Upsert,
        ..Output::default()
    }
}

const READINGS_DDL: &str = "CREATE TABLE KS.iot_readings (
    device_id text, reading_date date, timestamp timestamp,
    temperature double, humidity float, tags set<text>,
    PRIMARY KEY ((device_id, reading_date), timestamp)
) WITH CLUSTERING ORDER BY (timestamp DESC)";

const READINGS_SINK: &str = r#"
table = "iot_readings"
mapping = { device_id = "value.deviceId", reading_date = "value.ts", timestamp = "value.ts", temperature = "value.temp", humidity = "value.hum", tags = "value.tags" }
"#;

const TS: i64 = 1_714_564_800_000;
const DAY: u32 = (1 << 31) + 19_844;

#[tokio::test]
#[ignore = "needs SCYLLA_NODES"]
async fn every_type_round_trips() {
    let c = Cluster::new("every_type_round_trips", "types").await;
    c.ddl(
        "CREATE TABLE KS.all_types (id text PRIMARY KEY, a_ascii ascii, a_int int, a_bigint bigint,
        a_smallint smallint, a_tinyint tinyint, a_varint varint, a_float float, a_double double,
        a_decimal decimal, a_boolean boolean, a_timestamp timestamp, a_date date, a_time time,
        a_uuid uuid, a_timeuuid timeuuid, a_inet inet, a_blob blob, a_list list<int>,
        a_set set<text>, a_map map<text, bigint>)",
    )
    .await;
    let cols = [
        "a_ascii",
        "a_int",
        "a_bigint",
        "a_smallint",
        "a_tinyint",
        "a_varint",
        "a_float",
        "a_double",
        "a_decimal",
        "a_boolean",
        "a_timestamp",
        "a_date",
        "a_time",
        "a_uuid",
        "a_timeuuid",
        "a_inet",
        "a_blob",
        "a_list",
        "a_set",
        "a_map",
    ];
    let mapping: Vec<String> = std::iter::once("id".to_string())
        .chain(cols.iter().map(|c| c.to_string()))
        .map(|c| format!("{c} = \"value.{c}\""))
        .collect();
    // The schema is read from system_schema.columns (no `columns` here).
    let sink = c
        .sink(&format!(
            "table = \"all_types\"\nmapping = {{ {} }}\n",
            mapping.join(", ")
        ))
        .await;
    let rejections = sink
        .write(&[upsert(
            r#"{"id": "row-1", "a_ascii": "A", "a_int": 42, "a_bigint": -2, "a_smallint": "300",
                "a_tinyint": -5, "a_varint": "-129", "a_float": 1.5, "a_double": 2.25,
                "a_decimal": "12.345", "a_boolean": true, "a_timestamp": "2024-05-01T14:00:00+02:00",
                "a_date": "2024-05-01", "a_time": "01:02:03.5",
                "a_uuid": "123e4567-e89b-42d3-a456-426614174000",
                "a_timeuuid": "123e4567-e89b-12d3-a456-426614174000",
                "a_inet": "10.0.0.1", "a_blob": "AAEC",
                "a_list": [1, 2], "a_set": ["a", "b"], "a_map": {"k": 7}}"#,
        )])
        .await
        .expect("write");
    assert_eq!(rejections, vec![]);
    let rows = c
        .rows(&format!(
            "SELECT {} FROM KS.all_types WHERE id = 'row-1'",
            cols.join(", ")
        ))
        .await;
    assert_eq!(rows.len(), 1);
    let got: Vec<String> = rows[0]
        .iter()
        .map(|v| format!("{:?}", v.as_ref().expect("every column written")))
        .collect();
    let want = [
        CqlValue::Ascii("A".into()),
        CqlValue::Int(42),
        CqlValue::BigInt(-2),
        CqlValue::SmallInt(300),
        CqlValue::TinyInt(-5),
        CqlValue::Varint(scylla::value::CqlVarint::from_signed_bytes_be(vec![
            0xff, 0x7f,
        ])),
        CqlValue::Float(1.5),
        CqlValue::Double(2.25),
        CqlValue::Decimal(
            scylla::value::CqlDecimal::from_signed_be_bytes_and_exponent(vec![0x30, 0x39], 3),
        ),
        CqlValue::Boolean(true),
        CqlValue::Timestamp(CqlTimestamp(TS)),
        CqlValue::Date(CqlDate(DAY)),
        CqlValue::Time(scylla::value::CqlTime(3_723_500_000_000)),
    ];
    for (i, w) in want.iter().enumerate() {
        assert_eq!(got[i], format!("{w:?}"), "column {}", cols[i]);
    }
    assert!(
        got[13].contains("123e4567-e89b-42d3-a456-426614174000"),
        "{}",
        got[13]
    );
    assert!(
        got[14].contains("123e4567-e89b-12d3-a456-426614174000"),
        "{}",
        got[14]
    );
    assert_eq!(got[15], "Inet(10.0.0.1)");
    assert_eq!(got[16], "Blob([0, 1, 2])");
    assert_eq!(got[17], "List([Int(1), Int(2)])");
    assert_eq!(got[18], "Set([Text(\"a\"), Text(\"b\")])");
    assert_eq!(got[19], "Map([(Text(\"k\"), BigInt(7))])");
    c.drop().await;
}

#[tokio::test]
#[ignore = "needs SCYLLA_NODES"]
async fn ttl_write_time_batches_and_deletes() {
    let c = Cluster::new("ttl_write_time_batches_and_deletes", "ttl").await;
    c.ddl(READINGS_DDL).await;
    let sink = c
        .sink(&format!(
            "{READINGS_SINK}ttl_seconds = 2592000\nwrite_timestamp = {{ field = \"value.ts\" }}\nbatch = {{ max_statements = 2 }}\n"
        ))
        .await;
    let outputs: Vec<Output> = (0..5)
        .map(|i| {
            upsert(&format!(
                r#"{{"deviceId": "d1", "ts": {}, "temp": {i}.5}}"#,
                TS + i
            ))
        })
        .chain([Output {
            ttl_seconds: Some(600),
            ..upsert(&format!(r#"{{"deviceId": "d2", "ts": {TS}, "temp": 9.0}}"#))
        }])
        .collect();
    assert_eq!(sink.write(&outputs).await.unwrap(), vec![]);

    let rows = c
        .rows("SELECT timestamp, temperature, TTL(temperature), WRITETIME(temperature) FROM KS.iot_readings WHERE device_id = 'd1' AND reading_date = '2024-05-01'")
        .await;
    assert_eq!(rows.len(), 5, "all rows of the batched partition landed");
    // Clustering order is DESC: newest first.
    assert_eq!(rows[0][0], Some(CqlValue::Timestamp(CqlTimestamp(TS + 4))));
    for row in &rows {
        let Some(CqlValue::Timestamp(CqlTimestamp(ms))) = row[0] else {
            panic!()
        };
        let Some(CqlValue::Int(ttl)) = row[2] else {
            panic!("{row:?}")
        };
        assert!(ttl > 2_590_000 && ttl <= 2_592_000, "ttl {ttl}");
        assert_eq!(
            row[3],
            Some(CqlValue::BigInt(ms * 1000)),
            "USING TIMESTAMP in µs"
        );
    }
    let d2 = c
        .rows("SELECT TTL(temperature) FROM KS.iot_readings WHERE device_id = 'd2' AND reading_date = '2024-05-01'")
        .await;
    let Some(CqlValue::Int(ttl)) = d2[0][0] else {
        panic!("{d2:?}")
    };
    assert!(ttl <= 600 && ttl > 500, "the output's own TTL wins: {ttl}");

    // A replay of the same events converges to the same rows.
    assert_eq!(sink.write(&outputs).await.unwrap(), vec![]);
    assert_eq!(
        c.rows("SELECT timestamp FROM KS.iot_readings WHERE device_id = 'd1' AND reading_date = '2024-05-01'")
            .await
            .len(),
        5
    );

    // A delete carries the event time too; a tie goes to the delete.
    let delete_row = Output {
        value: Some(Bytes::from(format!(r#"{{"deviceId": "d1", "ts": {TS}}}"#))),
        op: Op::Delete,
        ..Output::default()
    };
    assert_eq!(sink.write(&[delete_row]).await.unwrap(), vec![]);
    let rows = c
        .rows("SELECT timestamp FROM KS.iot_readings WHERE device_id = 'd1' AND reading_date = '2024-05-01'")
        .await;
    assert_eq!(rows.len(), 4, "the row at TS was deleted: {rows:?}");
    c.drop().await;
}

#[tokio::test]
#[ignore = "needs SCYLLA_NODES"]
async fn null_is_unset_by_default_and_a_tombstone_when_configured() {
    let c = Cluster::new(
        "null_is_unset_by_default_and_a_tombstone_when_configured",
        "nulls",
    )
    .await;
    c.ddl(READINGS_DDL).await;
    let unset = c.sink(READINGS_SINK).await;
    let null = c
        .sink(&format!("{READINGS_SINK}null_values = \"null\"\n"))
        .await;
    let first = upsert(&format!(
        r#"{{"deviceId": "a", "ts": {TS}, "temp": 1.0, "hum": 2.0}}"#
    ));
    let partial = upsert(&format!(r#"{{"deviceId": "a", "ts": {TS}, "hum": 3.0}}"#));
    assert_eq!(
        unset.write(std::slice::from_ref(&first)).await.unwrap(),
        vec![]
    );
    assert_eq!(
        unset.write(std::slice::from_ref(&partial)).await.unwrap(),
        vec![]
    );
    let q = "SELECT temperature, humidity FROM KS.iot_readings WHERE device_id = 'a' AND reading_date = '2024-05-01'";
    assert_eq!(
        c.rows(q).await,
        vec![vec![
            Some(CqlValue::Double(1.0)),
            Some(CqlValue::Float(3.0))
        ]]
    );
    assert_eq!(null.write(&[partial]).await.unwrap(), vec![]);
    assert_eq!(
        c.rows(q).await,
        vec![vec![None, Some(CqlValue::Float(3.0))]]
    );
    c.drop().await;
}

#[tokio::test]
#[ignore = "needs SCYLLA_NODES"]
async fn a_value_the_table_refuses_is_dead_lettered() {
    let c = Cluster::new("a_value_the_table_refuses_is_dead_lettered", "refuse").await;
    c.ddl(READINGS_DDL).await;
    // Declared types that disagree with the table: the driver refuses to
    // serialize the text into the double column; only that output is rejected.
    let sink = c
        .sink(&format!(
            "{READINGS_SINK}columns = {{ device_id = \"text\", reading_date = \"date\", timestamp = \"timestamp\", temperature = \"text\", humidity = \"float\", tags = \"set<text>\" }}\npartition_key = [\"device_id\", \"reading_date\"]\nclustering_key = [\"timestamp\"]\n"
        ))
        .await;
    let rejections = sink
        .write(&[
            upsert(&format!(r#"{{"deviceId": "a", "ts": {TS}, "hum": 1.0}}"#)),
            upsert(&format!(
                r#"{{"deviceId": "a", "ts": {}, "temp": "hot"}}"#,
                TS + 1
            )),
        ])
        .await
        .unwrap();
    assert_eq!(rejections.len(), 1, "{rejections:?}");
    assert_eq!(rejections[0].index, 1);
    let rows = c
        .rows("SELECT timestamp FROM KS.iot_readings WHERE device_id = 'a' AND reading_date = '2024-05-01'")
        .await;
    assert_eq!(rows.len(), 1);
    c.drop().await;
}
