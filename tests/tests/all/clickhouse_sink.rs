//! The ClickHouse sink against a real ClickHouse (Debian's 18.16,
//! `scripts/services start clickhouse`): every mapping type lands as
//! written, values ClickHouse would silently wrap are rejected first,
//! upsert → update → delete on a `ReplacingMergeTree` with a delete column,
//! a replay of 10k outputs leaves identical state under `FINAL`, a row the
//! server refuses dead-letters only its output with the server's message,
//! and a 10 s outage of a server of the test's own loses nothing.

use weir_tests::sql_servers;
use weir_tests::stores;
use weir_tests::tls;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sql_servers::{PrivateClickhouse, clickhouse_query, clickhouse_query_at, clickhouse_url};
use stores::{delete, keyed, out, unique, with_header};
use weir::event::Output;
use weir::sink::{Sink, SinkConfig, SinkContext, SinkError};

async fn sink_at(url: &str, table: &str, mapping: &str, extra: &str) -> Arc<dyn Sink> {
    stores::build_sink(
        "ch",
        &format!("type = \"clickhouse\"\nurl = \"{url}\"\ntable = \"{table}\"\n{extra}\n[mapping]\n{mapping}"),
    )
    .await
}

async fn sink(table: &str, mapping: &str, extra: &str) -> Arc<dyn Sink> {
    sink_at(&clickhouse_url(), table, mapping, extra).await
}

/// The rows of `query` (tab-separated), one string per row.
async fn rows(query: &str) -> Vec<String> {
    clickhouse_query(&format!("{query} FORMAT TabSeparated"))
        .await
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn every_mapping_type_lands_as_written() {
    let t = unique("ch_types");
    clickhouse_query(&format!(
        "CREATE TABLE {t} (id UInt64, i8 Int8, u16 UInt16, i64 Int64, f32 Float32, f64 Float64, \
         amount Decimal(12, 3), s String, code FixedString(3), day Date, at DateTime, uid UUID, \
         n Nullable(Int32), kind Enum8('view' = 1, 'click' = 2), tags Array(String), who String, trace Int32) \
         ENGINE = MergeTree ORDER BY id"
    ))
    .await;
    let s = sink(
        &t,
        "id = \"key\"\ni8 = \"value.i8\"\nu16 = \"value.u16\"\ni64 = \"value.i64\"\nf32 = \"value.f32\"\n\
         f64 = \"value.f64\"\namount = \"value.amount\"\ns = \"value.s\"\ncode = \"value.code\"\nday = \"value.day\"\n\
         at = \"value.at\"\nuid = \"value.uid\"\nn = \"value.n\"\nkind = \"value.kind\"\ntags = \"value.tags\"\n\
         who = \"header.who\"\ntrace = \"header.trace.id\"\n",
        "",
    )
    .await;
    let full = with_header(
        with_header(
            keyed(
                "1",
                json!({
                    "i8": -128, "u16": "65535", "i64": i64::MIN, "f32": 1.5, "f64": -2.25e100,
                    "amount": "-12345.678", "s": {"nested": [1, 2]}, "code": "abc",
                    "day": "2026-05-01", "at": "2026-05-01T12:00:00+02:00",
                    "uid": "550E8400-E29B-41D4-A716-446655440000", "n": null, "kind": "click",
                    "tags": ["a", "b"]
                }),
            ),
            "who",
            "alice",
        ),
        "trace",
        "{\"id\": 42}",
    );
    // Missing fields take the column's default.
    let sparse = keyed("2", json!({"at": 1_700_000_000_999_i64, "n": 5}));
    let r = s.write(&[full, sparse]).await.expect("write");
    assert!(r.is_empty(), "{r:?}");
    assert_eq!(
        rows(&format!(
            "SELECT id, i8, u16, i64, f32, f64, amount, s, code, day, toUnixTimestamp(at), uid, n, kind, tags, who, trace FROM {t} ORDER BY id"
        ))
        .await,
        [
            "1\t-128\t65535\t-9223372036854775808\t1.5\t-2.25e100\t-12345.678\t{\"nested\":[1,2]}\tabc\t2026-05-01\t1777629600\t550e8400-e29b-41d4-a716-446655440000\t\\N\tclick\t['a','b']\talice\t42",
            "2\t0\t0\t0\t0\t0\t0.000\t\t\\0\\0\\0\t0000-00-00\t1700000000\t00000000-0000-0000-0000-000000000000\t5\tview\t[]\t\t0",
        ]
    );
}

#[tokio::test]
async fn values_clickhouse_would_wrap_are_rejected_naming_the_column() {
    let t = unique("ch_range");
    clickhouse_query(&format!(
        "CREATE TABLE {t} (id UInt32, i8 Int8, u16 UInt16, day Date, at DateTime, f32 Float32) ENGINE = MergeTree ORDER BY id"
    ))
    .await;
    let s = sink(
        &t,
        "id = \"value.id\"\ni8 = \"value.i8\"\nu16 = \"value.u16\"\nday = \"value.day\"\nat = \"value.at\"\nf32 = \"value.f32\"\n",
        "",
    )
    .await;
    let r = s
        .write(&[
            out(json!({"id": 1, "i8": 200})),
            out(json!({"id": 2, "u16": -1})),
            out(json!({"id": 3, "day": "2200-01-01"})),
            out(json!({"id": 4, "at": "1969-12-31T23:59:59Z"})),
            out(json!({"id": 5, "f32": 1e39})),
            out(json!({"id": 6, "i8": 7})),
            out(json!({"id": -6})),
        ])
        .await
        .unwrap();
    let reasons: Vec<(usize, String)> = r.into_iter().map(|r| (r.index, r.reason)).collect();
    assert_eq!(reasons.len(), 6, "{reasons:?}");
    assert_eq!(
        reasons[0],
        (
            0,
            "column `i8` (Int8): expected Int8, got 200: out of range (-128..=127)".to_owned()
        )
    );
    assert!(
        reasons[1]
            .1
            .contains("column `u16` (UInt16): expected UInt16, got -1: out of range (0..=65535)"),
        "{}",
        reasons[1].1
    );
    assert!(
        reasons[2]
            .1
            .contains("column `day` (Date): expected Date, got \"2200-01-01\": out of range"),
        "{}",
        reasons[2].1
    );
    assert!(
        reasons[3]
            .1
            .contains("column `at` (DateTime): expected DateTime"),
        "{}",
        reasons[3].1
    );
    assert!(
        reasons[4]
            .1
            .contains("column `f32` (Float32): expected 32-bit float, got 1e+39: out of range"),
        "{}",
        reasons[4].1
    );
    assert_eq!(reasons[5].0, 6);
    assert_eq!(rows(&format!("SELECT id, i8 FROM {t}")).await, ["6\t7"]);
}

/// A CDC target: newest version per key wins, `deleted = 1` marks a delete.
async fn cdc_table() -> String {
    let t = unique("ch_views");
    clickhouse_query(&format!(
        "CREATE TABLE {t} (id UInt64, url String, views UInt32, ts DateTime, version UInt64, deleted UInt8) \
         ENGINE = ReplacingMergeTree(version) ORDER BY id"
    ))
    .await;
    t
}

const CDC_MAPPING: &str = "id = \"value.id\"\nurl = \"value.url\"\nviews = \"value.views\"\nts = \"value.ts\"\nversion = \"value.version\"\n";

#[tokio::test]
async fn upsert_then_update_then_delete_on_a_replacing_merge_tree() {
    let t = cdc_table().await;
    let s = sink(&t, CDC_MAPPING, "delete_column = \"deleted\"").await;
    let live = format!("SELECT id, url, views FROM {t} FINAL WHERE deleted = 0 ORDER BY id");
    let r = s
        .write(&[
            out(json!({"id": 1, "url": "/a", "views": 1, "ts": 1000, "version": 1})),
            out(json!({"id": 2, "url": "/b", "views": 1, "ts": 1000, "version": 1})),
        ])
        .await
        .unwrap();
    assert!(r.is_empty(), "{r:?}");
    assert_eq!(rows(&live).await, ["1\t/a\t1", "2\t/b\t1"]);
    s.write(&[out(
        json!({"id": 1, "url": "/a", "views": 5, "ts": 2000, "version": 2}),
    )])
    .await
    .unwrap();
    assert_eq!(rows(&live).await, ["1\t/a\t5", "2\t/b\t1"]);
    let r = s
        .write(&[delete(None, Some(json!({"id": 2, "version": 3})))])
        .await
        .unwrap();
    assert!(r.is_empty(), "{r:?}");
    assert_eq!(rows(&live).await, ["1\t/a\t5"]);
    // Without a delete column a delete cannot be written: dead-lettered.
    let plain = sink(&t, CDC_MAPPING, "").await;
    let r = plain
        .write(&[delete(None, Some(json!({"id": 1, "version": 9})))])
        .await
        .unwrap();
    assert_eq!(r.len(), 1);
    assert!(
        r[0].reason.contains("no `delete_column` is configured"),
        "{}",
        r[0].reason
    );
    assert_eq!(rows(&live).await, ["1\t/a\t5"]);
}

fn views(n: usize) -> Vec<Output> {
    (0..n)
        .map(|i| {
            out(json!({
                "id": i % 2_500,
                "url": format!("/page/{}", i % 97),
                "views": i,
                "ts": 1_777_593_600_000_i64 + i as i64 * 1_000,
                "version": i,
            }))
        })
        .collect()
}

async fn snapshot(url: &str, t: &str) -> String {
    clickhouse_query_at(
        url,
        &format!("SELECT count(), sum(cityHash64(id, url, views, ts, version)) FROM {t} FINAL WHERE deleted = 0 FORMAT TabSeparated"),
    )
    .await
}

#[tokio::test]
async fn a_replay_of_10k_outputs_leaves_identical_state() {
    let t = cdc_table().await;
    let s = sink(&t, CDC_MAPPING, "delete_column = \"deleted\"").await;
    let all = views(10_000);
    for batch in all.chunks(500) {
        assert!(s.write(batch).await.unwrap().is_empty());
    }
    let first = snapshot(&clickhouse_url(), &t).await;
    assert!(first.starts_with("2500\t"), "{first}");
    for batch in all.chunks(1_250) {
        assert!(s.write(batch).await.unwrap().is_empty());
    }
    assert_eq!(snapshot(&clickhouse_url(), &t).await, first);
    // The newest version of each key is the one that is read.
    assert_eq!(
        rows(&format!("SELECT views FROM {t} FINAL WHERE id = 7")).await,
        ["7507"]
    );
}

#[tokio::test]
async fn a_row_the_server_refuses_dead_letters_only_that_output_with_the_server_message() {
    let t = unique("ch_refused");
    clickhouse_query(&format!(
        "CREATE TABLE {t} (id UInt32, code FixedString(2), kind Enum8('view' = 1, 'click' = 2)) ENGINE = MergeTree ORDER BY id"
    ))
    .await;
    let s = sink(
        &t,
        "id = \"value.id\"\ncode = \"value.code\"\nkind = \"value.kind\"\n",
        "",
    )
    .await;
    let batch: Vec<Output> = (0..20)
        .map(|i| match i {
            4 => out(json!({"id": i, "code": "abc", "kind": "view"})),
            11 => out(json!({"id": i, "code": "ok", "kind": "scroll"})),
            _ => out(json!({"id": i, "code": "ok", "kind": "click"})),
        })
        .collect();
    let r = s.write(&batch).await.unwrap();
    let got: Vec<(usize, &str)> = r.iter().map(|r| (r.index, r.reason.as_str())).collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].0, 4);
    assert!(
        got[0].1.starts_with(&format!(
            "`default`.`{t}` rejected the row: HTTP 500: Code: 131"
        )),
        "{}",
        got[0].1
    );
    assert!(
        got[0].1.contains("Too large value for FixedString(2)"),
        "{}",
        got[0].1
    );
    assert_eq!(got[1].0, 11);
    assert!(
        got[1].1.contains("Unknown element 'scroll' for type Enum8"),
        "{}",
        got[1].1
    );
    assert_eq!(rows(&format!("SELECT count() FROM {t}")).await, ["18"]);
}

#[tokio::test]
async fn mistakes_against_the_table_are_fatal_at_start() {
    let t = cdc_table().await;
    let build = |mapping: &'static str, extra: &'static str, table: String| async move {
        let cfg: SinkConfig = toml::from_str(&format!(
            "type = \"clickhouse\"\nurl = \"{}\"\ntable = \"{table}\"\n{extra}\n[mapping]\n{mapping}",
            clickhouse_url()
        ))
        .unwrap();
        let ctx = SinkContext {
            name: "ch".to_owned(),
            config_dir: stores::repo_root(),
        };
        let cfg = cfg.validate("ch", &ctx.config_dir).expect("offline checks");
        match cfg.build(&ctx).await {
            Ok(_) => panic!("built"),
            Err(e) => e,
        }
    };
    let e = build("url = \"value.url\"\n", "", t.clone()).await;
    assert!(
        matches!(&e, SinkError::Fatal(m) if m.to_string().contains(&format!("sorting-key column `id` of `default`.`{t}` is not mapped"))),
        "{e}"
    );
    let e = build("id = \"value.id\"\nnope = \"value.x\"\n", "", t.clone()).await;
    assert!(
        matches!(&e, SinkError::Fatal(m) if m.to_string().contains("column `nope` is mapped but")),
        "{e}"
    );
    let e = build("id = \"value.id\"\n", "delete_column = \"url\"", t.clone()).await;
    assert!(
        matches!(&e, SinkError::Fatal(m) if m.to_string().contains("`delete_column` `url` is String (expected UInt8)")),
        "{e}"
    );
    let e = build("id = \"value.id\"\n", "", "no_such_table".to_owned()).await;
    assert!(
        matches!(&e, SinkError::Fatal(m) if m.to_string().contains("table `default`.`no_such_table` does not exist")),
        "{e}"
    );
    let e = build("id = \"value.id\"\n", "user = \"nobody\"", t.clone()).await;
    assert!(
        matches!(&e, SinkError::Fatal(m) if m.to_string().contains("Unknown user nobody")),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_10s_outage_mid_stream_loses_nothing() {
    let mut ch = PrivateClickhouse::start();
    let url = ch.url();
    let t = unique("ch_outage");
    clickhouse_query_at(
        &url,
        &format!(
            "CREATE TABLE {t} (id UInt64, url String, views UInt32, ts DateTime, version UInt64, deleted UInt8) \
             ENGINE = ReplacingMergeTree(version) ORDER BY id"
        ),
    )
    .await;
    let s = sink_at(
        &url,
        &t,
        CDC_MAPPING,
        "delete_column = \"deleted\"\nconnect_timeout_ms = 500\nretry = { attempts = 2, initial_ms = 50, max_ms = 100 }",
    )
    .await;
    let all: Vec<Output> = views(10_000)
        .into_iter()
        .enumerate()
        .map(|(i, mut o)| {
            // Distinct keys, so the count shows every output.
            let mut v: serde_json::Value =
                serde_json::from_slice(o.value.as_ref().unwrap()).unwrap();
            v["id"] = json!(i);
            o.value = Some(v.to_string().into());
            o
        })
        .collect();
    let batches: Vec<Vec<Output>> = all.chunks(125).map(<[Output]>::to_vec).collect();
    let writer = tokio::spawn(stores::write_through(
        s,
        batches,
        Duration::from_millis(200),
    ));
    loop {
        let n: u64 = clickhouse_query_at(&url, &format!("SELECT count() FROM {t}"))
            .await
            .trim()
            .parse()
            .unwrap();
        if n >= 500 {
            assert!(n < 10_000, "the stream ended before the outage");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ch.stop();
    tokio::time::sleep(Duration::from_secs(10)).await;
    ch.start_again();
    let transient = tokio::time::timeout(Duration::from_secs(120), writer)
        .await
        .expect("the stream finishes after the outage")
        .expect("writer task");
    assert!(transient > 0, "the outage was never seen as transient");
    let got = snapshot(&url, &t).await;
    assert!(got.starts_with("10000\t"), "{got}");
    // Same content as the same outputs written without an outage.
    let reference = cdc_table().await;
    let s = sink(&reference, CDC_MAPPING, "delete_column = \"deleted\"").await;
    for batch in all.chunks(1_000) {
        assert!(s.write(batch).await.unwrap().is_empty());
    }
    assert_eq!(got, snapshot(&clickhouse_url(), &reference).await);
}

/// The test server's HTTP address (from `clickhouse_url()`).
fn clickhouse_addr() -> std::net::SocketAddr {
    let url = clickhouse_url();
    let host = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    std::net::ToSocketAddrs::to_socket_addrs(&host)
        .expect("clickhouse address")
        .next()
        .expect("clickhouse address")
}

/// HTTPS to the server: the test server behind the test crate's TLS
/// terminator (ClickHouse 18.16 here serves plain HTTP), reached through a
/// tap that keeps every byte. The rows land, every connection starts with
/// a TLS handshake, no value crosses the wire in plaintext, and a wrong CA
/// is refused.
#[tokio::test(flavor = "multi_thread")]
async fn https_is_encrypted_and_a_wrong_ca_is_refused() {
    let pki = tls::pki();
    let terminator = tls::terminator(&pki, clickhouse_addr(), false).await;
    let (tap, captured) = tls::tap(terminator).await;
    let t = unique("ch_tls");
    clickhouse_query(&format!(
        "CREATE TABLE {t} (id UInt64, secret String) ENGINE = MergeTree ORDER BY id"
    ))
    .await;
    let url = format!("https://localhost:{}/", tap.port());
    let s = sink_at(
        &url,
        &t,
        "id = \"value.id\"\nsecret = \"value.secret\"\n",
        &format!("tls = {{ ca_file = \"{}\" }}", tls::p(&pki.ca)),
    )
    .await;
    let marker = unique("plaintext_marker");
    let outputs: Vec<Output> = (0..20)
        .map(|i| out(json!({ "id": i, "secret": format!("{marker}-{i}") })))
        .collect();
    let rejected = s.write(&outputs).await.expect("write over HTTPS");
    assert!(rejected.is_empty(), "{rejected:?}");
    assert_eq!(
        rows(&format!("SELECT secret FROM {t} WHERE id = 7")).await,
        [format!("{marker}-7")]
    );
    {
        let captured = captured.lock().unwrap();
        assert!(
            captured.all_tls(),
            "a connection did not start with a TLS handshake"
        );
        assert!(
            !captured.contains(marker.as_bytes()),
            "the values' plaintext crossed the wire"
        );
    }

    let config: SinkConfig = toml::from_str(&format!(
        "type = \"clickhouse\"\nurl = \"{url}\"\ntable = \"{t}\"\ntls = {{ ca_file = \"{}\" }}\nretry = {{ attempts = 1 }}\n[mapping]\nid = \"value.id\"\n",
        tls::p(&pki.other_ca)
    ))
    .unwrap();
    let err = match config
        .validate("ch", std::path::Path::new("/"))
        .expect("offline checks")
        .build(&SinkContext {
            name: "ch".into(),
            config_dir: std::path::PathBuf::from("/"),
        })
        .await
    {
        Err(e) => e.to_string(),
        Ok(sink) => sink
            .write(&[out(json!({ "id": 1 }))])
            .await
            .expect_err("a wrong CA must be refused")
            .to_string(),
    };
    assert!(
        err.contains("certificate") || err.contains("UnknownIssuer"),
        "the error does not say the server's certificate was not trusted: {err}"
    );
}
