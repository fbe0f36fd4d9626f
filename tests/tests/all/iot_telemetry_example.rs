//! The `examples/iot-telemetry` pipeline end to end, from its own config
//! file: embedded Kafka seeded with readings → the iot-telemetry Wasm
//! plugin → the scylla sink (its real driver talking to the CQL responder
//! on 127.0.0.1, schema read from `system_schema.columns`) and the Redis
//! alert sink (the real test Redis, `scripts/services start redis`) → the
//! dead-letter file; and the second pipeline into the TimescaleDB-style
//! table of the real test PostgreSQL (`scripts/services start postgres`).
//! The same config against a real cluster is in the example's README.

use weir_tests::cql_responder;
use weir_tests::sql_servers;

use std::path::Path;
use std::time::Duration;

use cql_responder::{Answer, Bound, CqlResponder, Request};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use weir::config::Config;
use weir::runtime::Runtime;

const TS: i64 = 1_714_564_800_000; // 2024-05-01T12:00:00Z
const DAY: u32 = 19_844;

fn redis_url() -> String {
    std::env::var("WEIR_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:16379/".to_owned())
}

fn b(bytes: &[u8]) -> Bound {
    Bound::Bytes(bytes.to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_land_in_the_table_alerts_in_redis_and_bad_readings_in_the_dead_letters() {
    let mut redis = {
        let url = redis_url();
        let client = redis::Client::open(url.as_str()).expect("redis url");
        client
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| {
                panic!("Redis is not reachable at {url}: {e}\nstart it with: scripts/services start redis")
            })
    };

    let responder = CqlResponder::start(&[
        ("device_id", "text"),
        ("reading_date", "date"),
        ("timestamp", "timestamp"),
        ("temperature", "double"),
        ("humidity", "float"),
        ("battery_v", "float"),
    ])
    .await;
    // As created by examples/iot-telemetry/schema.cql.
    responder.set_schema_rows(&[
        ("device_id", "partition_key", 0, "text"),
        ("reading_date", "partition_key", 1, "date"),
        ("timestamp", "clustering", 0, "timestamp"),
        ("temperature", "regular", -1, "double"),
        ("humidity", "regular", -1, "float"),
        ("battery_v", "regular", -1, "float"),
    ]);

    let p = format!("it{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let readings = [
        json!({"deviceId": format!("{p}-a"), "timestamp": "2024-05-01T12:00:00Z",
               "temperature": 71.6, "unit": "F", "humidity": 40.5, "battery": 3.5}),
        json!({"deviceId": format!("{p}-a"), "timestamp": TS + 60_000, "temperature": 22.5}),
        json!({"deviceId": format!("{p}-boiler"), "timestamp": TS, "temperature": 318.15, "unit": "K"}),
        json!({"deviceId": format!("{p}-b"), "timestamp": TS, "temperature": 20, "humidity": 150}),
        json!({"timestamp": TS, "temperature": 20}),
    ];
    let lines: Vec<String> = readings.iter().map(Value::to_string).collect();
    std::fs::write(dir.path().join("readings.jsonl"), lines.join("\n") + "\n").unwrap();

    // PostgreSQL: the example's table (timescale.sql), under a name of this run.
    let pg = sql_servers::postgres().await;
    let pg_table = format!("readings_{p}");
    let ddl = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/iot-telemetry/timescale.sql"),
    )
    .unwrap();
    pg.batch_execute(&format!("DROP TABLE IF EXISTS iot_telemetry.{pg_table}"))
        .await
        .ok();
    pg.batch_execute(&ddl.replace(
        "iot_telemetry.readings",
        &format!("iot_telemetry.{pg_table}"),
    ))
    .await
    .expect("timescale.sql runs");

    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/iot-telemetry/weir.toml");
    let text = std::fs::read_to_string(&example)
        .unwrap()
        .replace("redis://127.0.0.1:16379/0", &redis_url());
    assert!(text.contains("table = \"readings\""));
    let text = text
        .replace("table = \"readings\"", &format!("table = \"{pg_table}\""))
        .replace(
            "postgresql://postgres@127.0.0.1:15432/postgres",
            &sql_servers::postgres_url(),
        );
    let plugin_dir = Path::new(weir_tests::plugins::IOT_TELEMETRY)
        .parent()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let scylla = responder.addr.to_string();
    let env = move |name: &str| match name {
        "WEIR_PLUGIN_DIR" => Some(plugin_dir.clone()),
        "SCYLLA_NODES" => Some(scylla.clone()),
        _ => None,
    };
    let loaded = Config::load_str(&text, &dir.path().join("weir.toml"), &env)
        .unwrap_or_else(|e| panic!("the example config loads: {e:?}"));
    let runtime = Runtime::build(&loaded.config, &loaded.dir)
        .await
        .expect("the example's runtime builds");
    // stop_at_end: the pipeline ends once the seeded topic is read.
    tokio::time::timeout(
        Duration::from_secs(120),
        runtime.run(CancellationToken::new()),
    )
    .await
    .expect("the example pipeline reads its seed and stops")
    .expect("the example pipeline ends cleanly");

    // ScyllaDB: exactly the three valid readings, converted.
    let mut rows: Vec<Vec<Bound>> = responder
        .writes()
        .into_iter()
        .flat_map(|r| match r {
            Request::Execute {
                write,
                answer: Answer::Ok,
                ..
            } => vec![write],
            Request::Batch {
                writes,
                answer: Answer::Ok,
                batch_type: 1,
                ..
            } => writes,
            other => panic!("unexpected request {other:?}"),
        })
        .map(|w| {
            assert!(
                w.cql.starts_with("INSERT INTO iot_telemetry.iot_readings (device_id, reading_date, timestamp, battery_v, humidity, temperature) VALUES (?, ?, ?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?"),
                "{}",
                w.cql
            );
            w.values
        })
        .collect();
    rows.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    let date = b(&((1_u32 << 31) + DAY).to_be_bytes());
    let ttl = b(&2_592_000_i32.to_be_bytes());
    let row = |dev: &str, ts: i64, battery: Bound, hum: Bound, temp: f64| {
        vec![
            b(format!("{p}-{dev}").as_bytes()),
            date.clone(),
            b(&ts.to_be_bytes()),
            battery,
            hum,
            b(&temp.to_be_bytes()),
            ttl.clone(),
            b(&(ts * 1000).to_be_bytes()),
        ]
    };
    let mut expected = vec![
        row(
            "a",
            TS,
            b(&3.5_f32.to_be_bytes()),
            b(&40.5_f32.to_be_bytes()),
            22.0,
        ),
        row("a", TS + 60_000, Bound::Unset, Bound::Unset, 22.5),
        row("boiler", TS, Bound::Unset, Bound::Unset, 45.0),
    ];
    expected.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    assert_eq!(rows, expected);

    // Redis: an alert for the hot reading only, with its TTL.
    let alert: Option<String> = redis::cmd("GET")
        .arg(format!("alert:{p}-boiler"))
        .query_async(&mut redis)
        .await
        .unwrap();
    let alert: Value = serde_json::from_str(&alert.expect("alert key set")).unwrap();
    assert_eq!(
        alert,
        json!({"deviceId": format!("{p}-boiler"), "timestamp": TS, "temperature_c": 45.0, "threshold_c": 40.0})
    );
    let ttl: i64 = redis::cmd("TTL")
        .arg(format!("alert:{p}-boiler"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 3600, "alert TTL {ttl}");
    let other: Option<String> = redis::cmd("GET")
        .arg(format!("alert:{p}-a"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(other, None);

    // Dead letters: the two invalid readings with the plugin's reasons.
    let dlq = std::fs::read_to_string(dir.path().join("out/dead-letters.jsonl")).unwrap();
    let mut reasons: Vec<String> = dlq
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["headers"]["weir.dlq.reason"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        vec![
            "deviceId is missing".to_string(),
            "humidity must be a number in 0..=100, got 150".to_string(),
        ]
    );
    // PostgreSQL: the same three readings, upserted by (device_id, time).
    let got: Vec<String> = pg
        .query(
            &format!(
                "SELECT device_id, (extract(epoch from time) * 1000)::bigint, reading_date::text, \
                 temperature_c, humidity, battery_v FROM iot_telemetry.{pg_table} ORDER BY device_id, time"
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let humidity: Option<f32> = r.get(4);
            let battery: Option<f32> = r.get(5);
            format!(
                "{}|{}|{}|{}|{humidity:?}|{battery:?}",
                r.get::<_, String>(0),
                r.get::<_, i64>(1),
                r.get::<_, String>(2),
                r.get::<_, f64>(3)
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            format!("{p}-a|{TS}|2024-05-01|22|Some(40.5)|Some(3.5)"),
            format!("{p}-a|{}|2024-05-01|22.5|None|None", TS + 60_000),
            format!("{p}-boiler|{TS}|2024-05-01|45|None|None"),
        ]
    );
    // Its own dead letters: the same two invalid readings.
    let dlq = std::fs::read_to_string(dir.path().join("out/dead-letters-timescale.jsonl")).unwrap();
    assert_eq!(dlq.lines().count(), 2, "{dlq}");
    pg.batch_execute(&format!("DROP TABLE iot_telemetry.{pg_table}"))
        .await
        .unwrap();
    responder.stop().await;
}
