//! The PostgreSQL sink against a real PostgreSQL 15 (`scripts/services
//! start postgres`): every mapping type lands as written, upsert → update
//! → delete by key, a replay of 10k outputs into a time-partitioned table
//! (what a TimescaleDB hypertable is to the sink) leaves identical state,
//! a row the server refuses dead-letters only its output with the
//! server's message, and a 10 s outage of a server of the test's own loses
//! nothing.

use weir_tests::sql_servers;
use weir_tests::stores;
use weir_tests::tls;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sql_servers::{PrivatePostgres, postgres, postgres_at, postgres_url};
use stores::{delete, keyed, out, unique, with_header};
use weir::event::Output;
use weir::sink::{Sink, SinkConfig, SinkContext, SinkError};

/// A sink on table `table` of the server at `url`.
async fn sink_at(url: &str, table: &str, key: &str, mapping: &str, extra: &str) -> Arc<dyn Sink> {
    let toml_text = format!(
        "type = \"postgres\"\nurl = \"{url}\"\ntable = \"{table}\"\nkey = {key}\n{extra}\n[mapping]\n{mapping}"
    );
    stores::build_sink("pg", &toml_text).await
}

async fn sink(table: &str, key: &str, mapping: &str) -> Arc<dyn Sink> {
    sink_at(&postgres_url(), table, key, mapping, "").await
}

/// The rows of `query` as text, one string per row (columns joined by `|`).
async fn rows(client: &tokio_postgres::Client, query: &str) -> Vec<String> {
    client
        .simple_query(query)
        .await
        .unwrap_or_else(|e| panic!("{query}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("NULL").to_owned())
                    .collect::<Vec<_>>()
                    .join("|"),
            ),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn every_mapping_type_lands_as_written() {
    let db = postgres().await;
    let t = unique("pg_types");
    db.batch_execute(&format!(
        "CREATE TABLE {t} (id bigint PRIMARY KEY, small smallint, whole integer, r real, d double precision, \
         amount numeric(12,3), flag boolean, note text, code varchar(10), at timestamptz, local_at timestamp, \
         day date, uid uuid, doc jsonb, raw bytea, addr inet, nums integer[], who text, trace integer)"
    ))
    .await
    .unwrap();
    let s = sink(
        &t,
        "[\"id\"]",
        "id = \"key\"\nsmall = \"value.small\"\nwhole = \"value.whole\"\nr = \"value.r\"\nd = \"value.d\"\n\
         amount = \"value.amount\"\nflag = \"value.flag\"\nnote = \"value.note\"\ncode = \"value.code\"\n\
         at = \"value.at\"\nlocal_at = \"value.at\"\nday = \"value.day\"\nuid = \"value.uid\"\ndoc = \"value.doc\"\n\
         raw = \"value.raw\"\naddr = \"value.addr\"\nnums = \"value.nums\"\nwho = \"header.who\"\ntrace = \"header.trace.id\"\n",
    )
    .await;
    let full = with_header(
        with_header(
            keyed(
                "1",
                json!({
                    "small": -32768, "whole": "2147483647", "r": 1.5, "d": 2.25e100,
                    "amount": "12345.678", "flag": true, "note": {"nested": [1, 2]}, "code": "ABC",
                    "at": "2026-05-01T12:00:00.250+02:00", "day": 1_700_000_000_000_i64,
                    "uid": "550E8400-E29B-41D4-A716-446655440000", "doc": {"a": [1, "x", null]},
                    "raw": "aGVsbG8=", "addr": "10.0.0.1", "nums": "{1,2,3}"
                }),
            ),
            "who",
            "alice",
        ),
        "trace",
        "{\"id\": 42}",
    );
    // Missing and null fields are NULL (`null_values` defaults to `null`).
    let sparse = keyed("2", json!({"small": null, "at": 1_700_000_000_123_i64}));
    let rejected = s.write(&[full, sparse]).await.expect("write");
    assert!(rejected.is_empty(), "{rejected:?}");
    db.batch_execute("SET TIME ZONE 'UTC'").await.unwrap();
    assert_eq!(
        rows(
            &db,
            &format!(
                "SELECT id, small, whole, r, d, amount, flag, note, code, at, local_at, day, uid, doc, \
                 encode(raw, 'escape'), addr, nums, who, trace FROM {t} ORDER BY id"
            )
        )
        .await,
        [
            "1|-32768|2147483647|1.5|2.25e+100|12345.678|t|{\"nested\":[1,2]}|ABC|2026-05-01 10:00:00.25+00|\
             2026-05-01 10:00:00.25|2023-11-14|550e8400-e29b-41d4-a716-446655440000|{\"a\": [1, \"x\", null]}|\
             hello|10.0.0.1|{1,2,3}|alice|42",
            "2|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|2023-11-14 22:13:20.123+00|2023-11-14 22:13:20.123|\
             NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL",
        ]
    );
}

#[tokio::test]
async fn values_out_of_their_column_range_are_rejected_naming_the_column() {
    let db = postgres().await;
    let t = unique("pg_range");
    db.batch_execute(&format!(
        "CREATE TABLE {t} (id integer PRIMARY KEY, small smallint, r real, day date, uid uuid)"
    ))
    .await
    .unwrap();
    let s = sink(
        &t,
        "[\"id\"]",
        "id = \"value.id\"\nsmall = \"value.small\"\nr = \"value.r\"\nday = \"value.day\"\nuid = \"value.uid\"\n",
    )
    .await;
    let rejected = s
        .write(&[
            out(json!({"id": 1, "small": 40000})),
            out(json!({"id": 2, "r": 1e39})),
            out(json!({"id": 3, "day": "2026-02-30"})),
            out(json!({"id": 4, "uid": "nope"})),
            out(json!({"id": 5000000000_i64})),
            out(json!({"small": 1})),
            out(json!({"id": 6, "small": 7})),
        ])
        .await
        .expect("write");
    let reasons: Vec<(usize, String)> = rejected.into_iter().map(|r| (r.index, r.reason)).collect();
    assert_eq!(reasons.len(), 6, "{reasons:?}");
    assert_eq!(
        reasons[0],
        (
            0,
            "column `small` (smallint): expected smallint, got 40000: out of range (-32768..=32767)".to_owned()
        )
    );
    assert!(
        reasons[1]
            .1
            .contains("column `r` (real): expected 32-bit float, got 1e+39: out of range"),
        "{}",
        reasons[1].1
    );
    assert!(
        reasons[2]
            .1
            .contains("column `day` (date): expected date, got \"2026-02-30\": not a date"),
        "{}",
        reasons[2].1
    );
    assert!(
        reasons[3]
            .1
            .contains("column `uid` (uuid): expected uuid, got \"nope\": not a UUID"),
        "{}",
        reasons[3].1
    );
    assert!(
        reasons[4]
            .1
            .contains("column `id` (integer): expected integer, got 5000000000: out of range"),
        "{}",
        reasons[4].1
    );
    assert_eq!(
        reasons[5],
        (
            5,
            "key column `id` (integer): no value at `value.id`".to_owned()
        )
    );
    assert_eq!(
        rows(&db, &format!("SELECT id, small FROM {t}")).await,
        ["6|7"]
    );
}

#[tokio::test]
async fn upsert_then_update_then_delete_by_key() {
    let db = postgres().await;
    let t = unique("pg_crud");
    db.batch_execute(&format!(
        "CREATE TABLE {t} (device text, ts timestamptz, temp double precision, note text, PRIMARY KEY (device, ts))"
    ))
    .await
    .unwrap();
    let s = sink(
        &t,
        "[\"device\", \"ts\"]",
        "device = \"value.device\"\nts = \"value.ts\"\ntemp = \"value.temp\"\nnote = \"value.note\"\n",
    )
    .await;
    let select = format!(
        "SELECT device, extract(epoch from ts)::bigint, temp, note FROM {t} ORDER BY device, ts"
    );
    let r = s
        .write(&[
            out(json!({"device": "a", "ts": 1000, "temp": 20.5, "note": "first"})),
            out(json!({"device": "b", "ts": 1000, "temp": 7.0})),
        ])
        .await
        .unwrap();
    assert!(r.is_empty(), "{r:?}");
    assert_eq!(rows(&db, &select).await, ["a|1|20.5|first", "b|1|7|NULL"]);
    // Update: the same key again replaces the row's other columns.
    let r = s
        .write(&[out(
            json!({"device": "a", "ts": 1000, "temp": 21.0, "note": "second"}),
        )])
        .await
        .unwrap();
    assert!(r.is_empty(), "{r:?}");
    assert_eq!(rows(&db, &select).await, ["a|1|21|second", "b|1|7|NULL"]);
    // Delete by key; in one group a key written, updated and deleted ends
    // deleted, and one deleted then written again ends written.
    let r = s
        .write(&[
            delete(None, Some(json!({"device": "a", "ts": 1000}))),
            out(json!({"device": "c", "ts": 2000, "temp": 1.0})),
            out(json!({"device": "c", "ts": 2000, "temp": 2.0})),
            delete(None, Some(json!({"device": "c", "ts": 2000}))),
            delete(None, Some(json!({"device": "b", "ts": 1000}))),
            out(json!({"device": "b", "ts": 1000, "temp": 9.5, "note": "back"})),
        ])
        .await
        .unwrap();
    assert!(r.is_empty(), "{r:?}");
    assert_eq!(rows(&db, &select).await, ["b|1|9.5|back"]);
}

#[tokio::test]
async fn keep_null_values_leaves_existing_columns_alone() {
    let db = postgres().await;
    let t = unique("pg_keep");
    db.batch_execute(&format!(
        "CREATE TABLE {t} (id int PRIMARY KEY, a text, b text)"
    ))
    .await
    .unwrap();
    let s = sink_at(
        &postgres_url(),
        &t,
        "[\"id\"]",
        "id = \"value.id\"\na = \"value.a\"\nb = \"value.b\"\n",
        "null_values = \"keep\"",
    )
    .await;
    s.write(&[out(json!({"id": 1, "a": "x", "b": "y"}))])
        .await
        .unwrap();
    s.write(&[out(json!({"id": 1, "b": "z"}))]).await.unwrap();
    assert_eq!(
        rows(&db, &format!("SELECT id, a, b FROM {t}")).await,
        ["1|x|z"]
    );
}

/// A TimescaleDB-style table: partitioned by time (what a hypertable is to
/// the sink), unique on (device, time).
async fn time_partitioned_table(db: &tokio_postgres::Client) -> String {
    let t = unique("pg_readings");
    db.batch_execute(&format!(
        "CREATE TABLE {t} (device_id text NOT NULL, time timestamptz NOT NULL, temperature double precision, \
           humidity real, PRIMARY KEY (device_id, time)) PARTITION BY RANGE (time);
         CREATE TABLE {t}_2026_05 PARTITION OF {t} FOR VALUES FROM ('2026-05-01') TO ('2026-06-01');
         CREATE TABLE {t}_2026_06 PARTITION OF {t} FOR VALUES FROM ('2026-06-01') TO ('2026-07-01');"
    ))
    .await
    .unwrap();
    t
}

const READINGS_MAPPING: &str = "device_id = \"value.deviceId\"\ntime = \"value.timestamp\"\ntemperature = \"value.temp\"\nhumidity = \"value.humidity\"\n";

/// 10k readings spread over two monthly partitions.
fn readings(n: usize) -> Vec<Output> {
    let start = 1_777_593_600_000_i64; // 2026-05-01T00:00:00Z
    (0..n)
        .map(|i| {
            out(json!({
                "deviceId": format!("dev-{}", i % 50),
                "timestamp": start + (i as i64) * 400_000,
                "temp": 15.0 + (i % 200) as f64 / 10.0,
                "humidity": (i % 100) as f64,
            }))
        })
        .collect()
}

async fn snapshot(db: &tokio_postgres::Client, t: &str) -> Vec<String> {
    rows(
        db,
        &format!(
            "SELECT count(*), md5(string_agg(device_id || '|' || time::text || '|' || temperature || '|' || humidity, ',' \
             ORDER BY device_id, time)), (SELECT count(*) FROM {t}_2026_06) FROM {t}"
        ),
    )
    .await
}

#[tokio::test]
async fn a_replay_of_10k_outputs_leaves_identical_state() {
    let db = postgres().await;
    let t = time_partitioned_table(&db).await;
    let s = sink(&t, "[\"device_id\", \"time\"]", READINGS_MAPPING).await;
    let all = readings(10_000);
    for batch in all.chunks(500) {
        let r = s.write(batch).await.unwrap();
        assert!(r.is_empty(), "{r:?}");
    }
    let first = snapshot(&db, &t).await;
    assert!(first[0].starts_with("10000|"), "{first:?}");
    assert!(
        !first[0].ends_with("|0"),
        "both partitions are written: {first:?}"
    );
    // The replay, in other batch boundaries.
    for batch in all.chunks(1_250) {
        let r = s.write(batch).await.unwrap();
        assert!(r.is_empty(), "{r:?}");
    }
    assert_eq!(snapshot(&db, &t).await, first);
}

#[tokio::test]
async fn a_row_the_server_refuses_dead_letters_only_that_output_with_the_server_message() {
    let db = postgres().await;
    let t = unique("pg_refused");
    db.batch_execute(&format!(
        "CREATE TABLE {t} (id int PRIMARY KEY, code varchar(5), qty int CHECK (qty >= 0))"
    ))
    .await
    .unwrap();
    let s = sink(
        &t,
        "[\"id\"]",
        "id = \"value.id\"\ncode = \"value.code\"\nqty = \"value.qty\"\n",
    )
    .await;
    let batch: Vec<Output> = (0..20)
        .map(|i| match i {
            7 => out(json!({"id": i, "code": "much-too-long", "qty": 1})),
            13 => out(json!({"id": i, "code": "ok", "qty": -1})),
            _ => out(json!({"id": i, "code": format!("c{i}"), "qty": i})),
        })
        .collect();
    let rejected = s.write(&batch).await.expect("write");
    let got: Vec<(usize, &str)> = rejected
        .iter()
        .map(|r| (r.index, r.reason.as_str()))
        .collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].0, 7);
    assert!(
        got[0].1.starts_with(&format!("\"public\".\"{t}\" rejected the row: ERROR 22001: value too long for type character varying(5)")),
        "{}",
        got[0].1
    );
    assert_eq!(got[1].0, 13);
    assert!(
        got[1].1.contains(&format!(
            "ERROR 23514: new row for relation \"{t}\" violates check constraint"
        )),
        "{}",
        got[1].1
    );
    assert_eq!(
        rows(&db, &format!("SELECT count(*), sum(qty) FROM {t}")).await,
        [format!(
            "18|{}",
            (0..20).filter(|i| *i != 7 && *i != 13).sum::<i32>()
        )]
    );
}

#[tokio::test]
async fn mistakes_against_the_table_are_fatal_at_start() {
    let db = postgres().await;
    let t = unique("pg_fatal");
    db.batch_execute(&format!(
        "CREATE TABLE {t} (id int PRIMARY KEY, a text, b text)"
    ))
    .await
    .unwrap();
    let build = |table: String, key: &'static str, mapping: &'static str| async move {
        let cfg: SinkConfig = toml::from_str(&format!(
            "type = \"postgres\"\nurl = \"{}\"\ntable = \"{table}\"\nkey = {key}\n[mapping]\n{mapping}",
            postgres_url()
        ))
        .unwrap();
        let ctx = SinkContext {
            name: "pg".to_owned(),
            config_dir: stores::repo_root(),
        };
        let cfg = cfg.validate("pg", &ctx.config_dir).expect("offline checks");
        match cfg.build(&ctx).await {
            Ok(_) => panic!("built"),
            Err(e) => e,
        }
    };
    let e = build(
        t.clone(),
        "[\"id\"]",
        "id = \"value.id\"\nc = \"value.c\"\n",
    )
    .await;
    assert!(
        matches!(&e, SinkError::Fatal(m) if m.to_string().contains(&format!("column `c` is mapped but \"public\".\"{t}\" has no such column (it has: a, b, id)"))),
        "{e}"
    );
    let e = build(t.clone(), "[\"a\"]", "a = \"value.a\"\nid = \"value.id\"\n").await;
    assert!(
        matches!(&e, SinkError::Fatal(m) if m.to_string().contains("there is no unique or exclusion constraint matching the ON CONFLICT specification")),
        "{e}"
    );
    // The driver's error is the cause, not only text in the message.
    let SinkError::Fatal(cause) = &e else {
        unreachable!()
    };
    let own = cause
        .downcast_ref::<weir::sink::postgres::PostgresSinkError>()
        .expect("the sink's own error type");
    let driver = std::error::Error::source(own)
        .and_then(|s| s.downcast_ref::<tokio_postgres::Error>())
        .expect("the driver's error as its source");
    assert_eq!(
        driver.code(),
        Some(&tokio_postgres::error::SqlState::INVALID_COLUMN_REFERENCE)
    );
    let e = build(
        "no_such_table".to_owned(),
        "[\"id\"]",
        "id = \"value.id\"\n",
    )
    .await;
    assert!(
        matches!(&e, SinkError::Fatal(m) if m.to_string().contains("table \"public\".\"no_such_table\" does not exist")),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_10s_outage_mid_stream_loses_nothing() {
    let pg = PrivatePostgres::start();
    let db = postgres_at(&pg.url()).await;
    let t = time_partitioned_table(&db).await;
    drop(db);
    let s = sink_at(
        &pg.url(),
        &t,
        "[\"device_id\", \"time\"]",
        READINGS_MAPPING,
        "connect_timeout_ms = 1000",
    )
    .await;
    let all = readings(10_000);
    let batches: Vec<Vec<Output>> = all.chunks(250).map(<[Output]>::to_vec).collect();
    let writer = tokio::spawn(stores::write_through(s, batches, Duration::from_millis(20)));
    // Stop the server once part of the stream is in.
    let url = pg.url();
    loop {
        let db = postgres_at(&url).await;
        let n: i64 = db
            .query_one(&format!("SELECT count(*) FROM {t}"), &[])
            .await
            .unwrap()
            .get(0);
        if n >= 1_000 {
            assert!(n < 10_000, "the stream ended before the outage");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pg.stop();
    tokio::time::sleep(Duration::from_secs(10)).await;
    pg.start_again();
    let transient = tokio::time::timeout(Duration::from_secs(120), writer)
        .await
        .expect("the stream finishes after the outage")
        .expect("writer task");
    assert!(transient > 0, "the outage was never seen as transient");
    let db = postgres_at(&pg.url()).await;
    let expected = postgres().await;
    let reference = time_partitioned_table(&expected).await;
    let s = sink(&reference, "[\"device_id\", \"time\"]", READINGS_MAPPING).await;
    for batch in all.chunks(1_000) {
        assert!(s.write(batch).await.unwrap().is_empty());
    }
    let got = snapshot(&db, &t).await;
    assert!(got[0].starts_with("10000|"), "{got:?}");
    // Same content as the same outputs written without an outage.
    let want = snapshot(&expected, &reference).await;
    assert_eq!(got, want);
}

/// TLS to the server: a server of the test's own that accepts only TLS
/// over TCP, reached through a tap that keeps every byte. The rows land,
/// the wire carries PostgreSQL's SSLRequest and then only TLS records (no
/// plaintext value), and a wrong CA is refused.
#[tokio::test(flavor = "multi_thread")]
async fn tls_to_the_server_is_encrypted_and_a_wrong_ca_is_refused() {
    let pki = tls::pki();
    let pg = PrivatePostgres::start();
    pg.stop();
    pg.require_tls(&pki.server_cert, &pki.server_key);
    pg.start_again();
    let (tap, captured) = tls::tap(format!("127.0.0.1:{}", pg.port).parse().unwrap()).await;
    let direct = postgres_at(&pg.socket_url()).await;
    let table = unique("tls");
    direct
        .batch_execute(&format!(
            "CREATE TABLE {table} (id bigint PRIMARY KEY, secret text)"
        ))
        .await
        .unwrap();
    let url = format!("postgresql://postgres@{tap}/postgres");
    let sink = sink_at(
        &url,
        &table,
        "[\"id\"]",
        "id = \"value.id\"\nsecret = \"value.secret\"",
        &format!("tls = {{ ca_file = \"{}\" }}", tls::p(&pki.ca)),
    )
    .await;
    let marker = unique("plaintext_marker");
    let outputs: Vec<Output> = (0..20)
        .map(|i| out(json!({ "id": i, "secret": format!("{marker}-{i}") })))
        .collect();
    let rejected = sink.write(&outputs).await.expect("write over TLS");
    assert!(rejected.is_empty(), "{rejected:?}");
    assert_eq!(
        rows(&direct, &format!("SELECT secret FROM {table} WHERE id = 7")).await,
        [format!("{marker}-7")]
    );
    {
        let captured = captured.lock().unwrap();
        assert!(captured.bytes() > 0, "nothing crossed the tap");
        // SSLRequest (length 8, code 80877103), then a TLS handshake record.
        for (up, _) in captured.connections.iter().filter(|(up, _)| !up.is_empty()) {
            assert_eq!(
                &up[..8],
                &[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f],
                "no SSLRequest first"
            );
            assert_eq!(
                up.get(8),
                Some(&22),
                "no TLS handshake after the SSLRequest"
            );
        }
        assert!(
            !captured.contains(marker.as_bytes()),
            "the values' plaintext crossed the wire"
        );
    }
    drop(sink);

    // A wrong CA: refused at start, saying why.
    let toml_text = format!(
        "type = \"postgres\"\nurl = \"{url}\"\ntable = \"{table}\"\nkey = [\"id\"]\ntls = {{ ca_file = \"{}\" }}\n[mapping]\nid = \"value.id\"\n",
        tls::p(&pki.other_ca)
    );
    let config: SinkConfig = toml::from_str(&toml_text).unwrap();
    let err = config
        .validate("pg", std::path::Path::new("/"))
        .expect("offline checks")
        .build(&SinkContext {
            name: "pg".into(),
            config_dir: std::path::PathBuf::from("/"),
        })
        .await
        .err()
        .expect("a wrong CA must be refused")
        .to_string();
    assert!(
        err.contains("certificate") || err.contains("UnknownIssuer"),
        "the error does not say the server's certificate was not trusted: {err}"
    );
}
