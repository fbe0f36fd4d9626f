//! The Redis sink against a real Redis server (`scripts/services start
//! redis`): every command template, TTLs, deletes, per-output rejections
//! and a 10k-event replay that must leave the same state.

use weir_tests::stores;

use std::collections::BTreeMap;

use redis::AsyncCommands;
use serde_json::json;
use stores::{build_sink, delete, keyed, out, redis, redis_url, unique};

fn sink_table(commands: &str) -> String {
    format!("type = \"redis\"\nurl = \"{}\"\n{commands}", redis_url())
}

#[tokio::test]
async fn set_writes_the_value_with_ttl_from_config_or_output() {
    let mut r = redis().await;
    let p = unique("set");
    let sink = build_sink(
        "cache",
        &sink_table(&format!(
            "[[commands]]\ncmd = \"SET\"\nkey = \"{p}:session:{{value.session_id}}\"\nttl_seconds = 1800\n\
             [[commands]]\ncmd = \"SET\"\nkey = \"{p}:plain:{{key}}\"\nvalue = \"{{value.user_id}}\"\n"
        )),
    )
    .await;
    let a = keyed("k1", json!({"session_id": "s1", "user_id": "u1"}));
    let mut b = keyed("k2", json!({"session_id": "s2", "user_id": "u2"}));
    b.ttl_seconds = Some(60);
    let rejected = sink.write(&[a, b]).await.unwrap();
    assert!(rejected.is_empty(), "{rejected:?}");

    let v: String = r.get(format!("{p}:session:s1")).await.unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&v).unwrap(),
        json!({"session_id": "s1", "user_id": "u1"})
    );
    let ttl1: i64 = r.ttl(format!("{p}:session:s1")).await.unwrap();
    assert!((1700..=1800).contains(&ttl1), "config ttl: {ttl1}");
    let ttl2: i64 = r.ttl(format!("{p}:session:s2")).await.unwrap();
    assert!((1..=60).contains(&ttl2), "the output's ttl wins: {ttl2}");
    let plain: String = r.get(format!("{p}:plain:k1")).await.unwrap();
    assert_eq!(plain, "u1");
    let no_ttl: i64 = r.ttl(format!("{p}:plain:k1")).await.unwrap();
    assert_eq!(no_ttl, -1, "no ttl configured: the key does not expire");
}

#[tokio::test]
async fn hset_writes_all_top_level_fields_or_a_mapping() {
    let mut r = redis().await;
    let p = unique("hset");
    let sink = build_sink(
        "h",
        &sink_table(&format!(
            "[[commands]]\ncmd = \"HSET\"\nkey = \"{p}:all:{{value.id}}\"\n\
             [[commands]]\ncmd = \"HSET\"\nkey = \"{p}:map:{{value.id}}\"\nfields = {{ who = \"{{value.user.name}}\", seen = \"at {{value.n}}\" }}\n"
        )),
    )
    .await;
    let rejected = sink
        .write(&[out(
            json!({"id": 7, "n": 3, "ok": true, "user": {"name": "ann"}}),
        )])
        .await
        .unwrap();
    assert!(rejected.is_empty(), "{rejected:?}");
    let all: BTreeMap<String, String> = r.hgetall(format!("{p}:all:7")).await.unwrap();
    assert_eq!(
        all,
        BTreeMap::from([
            ("id".to_owned(), "7".to_owned()),
            ("n".to_owned(), "3".to_owned()),
            ("ok".to_owned(), "true".to_owned()),
            ("user".to_owned(), r#"{"name":"ann"}"#.to_owned()),
        ])
    );
    let mapped: BTreeMap<String, String> = r.hgetall(format!("{p}:map:7")).await.unwrap();
    assert_eq!(
        mapped,
        BTreeMap::from([
            ("who".to_owned(), "ann".to_owned()),
            ("seen".to_owned(), "at 3".to_owned())
        ])
    );
}

#[tokio::test]
async fn xadd_appends_entries_and_trims_to_maxlen() {
    let mut r = redis().await;
    let p = unique("xadd");
    let sink = build_sink(
        "s",
        &sink_table(&format!(
            "[[commands]]\ncmd = \"XADD\"\nkey = \"{p}:exact\"\nmaxlen = 5\nexact_maxlen = true\n\
             [[commands]]\ncmd = \"XADD\"\nkey = \"{p}:approx\"\nmaxlen = 5\nfields = {{ page = \"{{value.url}}\" }}\n"
        )),
    )
    .await;
    let outputs: Vec<_> = (0..20)
        .map(|i| out(json!({"url": format!("/p/{i}"), "i": i})))
        .collect();
    assert!(sink.write(&outputs).await.unwrap().is_empty());
    let exact: usize = r.xlen(format!("{p}:exact")).await.unwrap();
    assert_eq!(exact, 5, "MAXLEN 5 keeps exactly 5");
    let approx: usize = r.xlen(format!("{p}:approx")).await.unwrap();
    assert!(
        (5..=20).contains(&approx),
        "MAXLEN ~ 5 keeps at least 5: {approx}"
    );
    let last: redis::streams::StreamRangeReply = r
        .xrevrange_count(format!("{p}:exact"), "+", "-", 1)
        .await
        .unwrap();
    let entry = &last.ids[0];
    assert_eq!(entry.get::<String>("url").as_deref(), Some("/p/19"));
    assert_eq!(entry.get::<String>("i").as_deref(), Some("19"));
    let last: redis::streams::StreamRangeReply = r
        .xrevrange_count(format!("{p}:approx"), "+", "-", 1)
        .await
        .unwrap();
    assert_eq!(last.ids[0].get::<String>("page").as_deref(), Some("/p/19"));
    assert_eq!(last.ids[0].map.len(), 1, "only the mapped field");
}

#[tokio::test]
async fn sadd_and_expire_build_a_user_session_index() {
    let mut r = redis().await;
    let p = unique("sadd");
    let sink = build_sink(
        "s",
        &sink_table(&format!(
            "[[commands]]\ncmd = \"SADD\"\nkey = \"{p}:user:{{value.user_id}}:sessions\"\nmembers = [\"{{value.session_id}}\"]\n\
             [[commands]]\ncmd = \"EXPIRE\"\nkey = \"{p}:user:{{value.user_id}}:sessions\"\nttl_seconds = 86400\n"
        )),
    )
    .await;
    let outputs = [
        out(json!({"user_id": "u1", "session_id": "a"})),
        out(json!({"user_id": "u1", "session_id": "b"})),
        out(json!({"user_id": "u1", "session_id": "a"})),
        out(json!({"user_id": "u2", "session_id": "c"})),
    ];
    assert!(sink.write(&outputs).await.unwrap().is_empty());
    let mut u1: Vec<String> = r.smembers(format!("{p}:user:u1:sessions")).await.unwrap();
    u1.sort();
    assert_eq!(u1, ["a", "b"]);
    let ttl: i64 = r.ttl(format!("{p}:user:u1:sessions")).await.unwrap();
    assert!((86000..=86400).contains(&ttl), "{ttl}");
    let u2: Vec<String> = r.smembers(format!("{p}:user:u2:sessions")).await.unwrap();
    assert_eq!(u2, ["c"]);
}

#[tokio::test]
async fn zincrby_pfadd_incrby_and_incrbyfloat_count() {
    let mut r = redis().await;
    let p = unique("count");
    let sink = build_sink(
        "s",
        &sink_table(&format!(
            "[[commands]]\ncmd = \"ZINCRBY\"\nkey = \"{p}:top_pages\"\nmember = \"{{value.url}}\"\n\
             [[commands]]\ncmd = \"PFADD\"\nkey = \"{p}:visitors:{{value.date}}\"\nmembers = [\"{{value.user_id}}\"]\n\
             [[commands]]\ncmd = \"INCRBY\"\nkey = \"{p}:views\"\n\
             [[commands]]\ncmd = \"INCRBY\"\nkey = \"{p}:ms\"\nincrement = \"{{value.ms}}\"\n\
             [[commands]]\ncmd = \"INCRBYFLOAT\"\nkey = \"{p}:revenue\"\nincrement = \"{{value.amount}}\"\n"
        )),
    )
    .await;
    let v = |url: &str, user: &str, ms: i64, amount: f64| {
        out(json!({"url": url, "user_id": user, "date": "2026-11-21", "ms": ms, "amount": amount}))
    };
    let outputs = [
        v("/a", "u1", 10, 1.5),
        v("/a", "u2", 20, 2.25),
        v("/b", "u1", 5, 0.25),
    ];
    assert!(sink.write(&outputs).await.unwrap().is_empty());
    let top: Vec<(String, f64)> = r
        .zrevrange_withscores(format!("{p}:top_pages"), 0, -1)
        .await
        .unwrap();
    assert_eq!(top, vec![("/a".to_owned(), 2.0), ("/b".to_owned(), 1.0)]);
    let uniques: u64 = r.pfcount(format!("{p}:visitors:2026-11-21")).await.unwrap();
    assert_eq!(uniques, 2);
    let views: i64 = r.get(format!("{p}:views")).await.unwrap();
    assert_eq!(views, 3);
    let ms: i64 = r.get(format!("{p}:ms")).await.unwrap();
    assert_eq!(ms, 35);
    let revenue: f64 = r.get(format!("{p}:revenue")).await.unwrap();
    assert!((revenue - 4.0).abs() < 1e-9, "{revenue}");
}

#[tokio::test]
async fn delete_op_removes_set_and_hash_keys_and_skips_counters() {
    let mut r = redis().await;
    let p = unique("del");
    let sink = build_sink(
        "s",
        &sink_table(&format!(
            "[[commands]]\ncmd = \"SET\"\nkey = \"{p}:s:{{key}}\"\n\
             [[commands]]\ncmd = \"HSET\"\nkey = \"{p}:h:{{key}}\"\n\
             [[commands]]\ncmd = \"INCRBY\"\nkey = \"{p}:n\"\n\
             [[commands]]\ncmd = \"SADD\"\nkey = \"{p}:set\"\nmembers = [\"{{key}}\"]\non_delete = \"del\"\n"
        )),
    )
    .await;
    assert!(
        sink.write(&[keyed("a", json!({"x": 1})), keyed("b", json!({"x": 2}))])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        sink.write(&[delete(Some("a"), None)])
            .await
            .unwrap()
            .is_empty()
    );
    let gone: bool = r.exists(format!("{p}:s:a")).await.unwrap();
    assert!(!gone);
    let gone: bool = r.exists(format!("{p}:h:a")).await.unwrap();
    assert!(!gone);
    let kept: bool = r.exists(format!("{p}:s:b")).await.unwrap();
    assert!(kept);
    let n: i64 = r.get(format!("{p}:n")).await.unwrap();
    assert_eq!(n, 2, "a delete does not count");
    let set_gone: bool = r.exists(format!("{p}:set")).await.unwrap();
    assert!(!set_gone, "on_delete = del removes the set key");
}

#[tokio::test]
async fn a_missing_field_rejects_only_that_output_naming_template_and_field() {
    let mut r = redis().await;
    let p = unique("missing");
    let sink = build_sink(
        "sessions",
        &sink_table(&format!(
            "[[commands]]\ncmd = \"SET\"\nkey = \"{p}:session:{{value.session_id}}\"\n\
             [[commands]]\ncmd = \"SADD\"\nkey = \"{p}:user:{{value.user_id}}:sessions\"\nmembers = [\"{{value.session_id}}\"]\n"
        )),
    )
    .await;
    let outputs = [
        out(json!({"session_id": "s1", "user_id": "u1"})),
        out(json!({"session_id": "s2"})),
        out(json!({"session_id": "s3", "user_id": "u3"})),
    ];
    let rejected = sink.write(&outputs).await.unwrap();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0].index, 1);
    assert_eq!(
        rejected[0].reason,
        format!(
            "commands[1] (SADD): key template `{p}:user:{{value.user_id}}:sessions`: field `value.user_id` is missing"
        )
    );
    let s1: bool = r.exists(format!("{p}:session:s1")).await.unwrap();
    let s2: bool = r.exists(format!("{p}:session:s2")).await.unwrap();
    let s3: bool = r.exists(format!("{p}:session:s3")).await.unwrap();
    assert_eq!(
        (s1, s2, s3),
        (true, false, true),
        "none of the rejected output's commands ran"
    );
}

#[tokio::test]
async fn a_server_error_rejects_only_that_output_with_the_server_message() {
    let mut r = redis().await;
    let p = unique("wrongtype");
    let _: () = r
        .set(format!("{p}:h:2"), "a string, not a hash")
        .await
        .unwrap();
    let sink = build_sink(
        "hashes",
        &sink_table(&format!(
            "[[commands]]\ncmd = \"HSET\"\nkey = \"{p}:h:{{value.id}}\"\n"
        )),
    )
    .await;
    let rejected = sink
        .write(&[
            out(json!({"id": 1})),
            out(json!({"id": 2})),
            out(json!({"id": 3})),
        ])
        .await
        .unwrap();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0].index, 1);
    assert_eq!(
        rejected[0].reason,
        "commands[0] (HSET): server said: WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    let n1: bool = r.exists(format!("{p}:h:1")).await.unwrap();
    let n3: bool = r.exists(format!("{p}:h:3")).await.unwrap();
    assert!(n1 && n3);
}

/// A bad command never reaches `build`: it is refused as the config is
/// read (the check `weir validate` reports at the command's table).
#[test]
fn bad_commands_are_refused_as_the_config_is_read() {
    let cases = [(
        "[[commands]]\ncmd = \"SET\"\nkey = \"a\"\n[[commands]]\ncmd = \"LPUSH\"\nkey = \"k\"\n",
        "unknown command `LPUSH` (expected one of SET, HSET, XADD, SADD, ZINCRBY, PFADD, INCRBY, INCRBYFLOAT, EXPIRE, DEL, or any command with `args`)",
    )];
    for (commands, expected) in cases {
        let err = toml::from_str::<weir::sink::SinkConfig>(&sink_table(commands))
            .expect_err("the command must be refused");
        assert_eq!(err.message(), expected);
    }
}

#[test]
fn a_bad_template_is_refused_as_the_config_is_read() {
    let table = sink_table("[[commands]]\ncmd = \"SET\"\nkey = \"session:{value.session_id\"\n");
    let err = toml::from_str::<weir::sink::SinkConfig>(&table)
        .expect_err("the template must not parse")
        .to_string();
    assert!(
        err.contains("template `session:{value.session_id`: unclosed `{` at byte 8"),
        "{err}"
    );
}

/// Everything under `prefix`: key → (type, contents), for comparing states.
async fn snapshot(
    r: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
) -> BTreeMap<String, String> {
    let keys: Vec<String> = r.keys(format!("{prefix}:*")).await.unwrap();
    let mut state = BTreeMap::new();
    for k in keys {
        let t: String = redis::cmd("TYPE").arg(&k).query_async(r).await.unwrap();
        let v = match t.as_str() {
            "string" => {
                let bytes: Vec<u8> = r.get(&k).await.unwrap();
                if bytes.starts_with(b"HYLL") {
                    // A HyperLogLog: its bytes carry a cache; compare the count.
                    format!("hll {}", r.pfcount::<_, u64>(&k).await.unwrap())
                } else {
                    String::from_utf8_lossy(&bytes).into_owned()
                }
            }
            "hash" => format!(
                "{:?}",
                r.hgetall::<_, BTreeMap<String, String>>(&k).await.unwrap()
            ),
            "set" => {
                let mut m: Vec<String> = r.smembers(&k).await.unwrap();
                m.sort();
                format!("{m:?}")
            }
            other => panic!("unexpected type {other} of {k}"),
        };
        let ttl: i64 = r.ttl(&k).await.unwrap();
        state.insert(k, format!("{t} ttl:{} {v}", ttl > 0));
    }
    state
}

#[tokio::test]
async fn replaying_10k_events_leaves_the_same_state() {
    let mut r = redis().await;
    let p = unique("replay");
    let sink = build_sink(
        "replay",
        &sink_table(&format!(
            "[[commands]]\ncmd = \"SET\"\nkey = \"{p}:session:{{value.session_id}}\"\nttl_seconds = 3600\n\
             [[commands]]\ncmd = \"HSET\"\nkey = \"{p}:user:{{value.user_id}}\"\nfields = {{ last_session = \"{{value.session_id}}\", last_page = \"{{value.page}}\" }}\n\
             [[commands]]\ncmd = \"SADD\"\nkey = \"{p}:user:{{value.user_id}}:sessions\"\nmembers = [\"{{value.session_id}}\"]\n\
             [[commands]]\ncmd = \"PFADD\"\nkey = \"{p}:visitors\"\nmembers = [\"{{value.user_id}}\"]\n"
        )),
    )
    .await;
    let events: Vec<_> = (0..10_000)
        .map(|i| out(json!({"session_id": format!("s{}", i % 3000), "user_id": format!("u{}", i % 700), "page": format!("/p/{i}")})))
        .collect();
    for chunk in events.chunks(500) {
        assert!(sink.write(chunk).await.unwrap().is_empty());
    }
    let first = snapshot(&mut r, &p).await;
    let uniques_first: u64 = r.pfcount(format!("{p}:visitors")).await.unwrap();
    assert_eq!(first.len(), 3000 + 700 + 700 + 1);
    // The same events again, as after a crash before the checkpoint.
    for chunk in events.chunks(500) {
        assert!(sink.write(chunk).await.unwrap().is_empty());
    }
    let second = snapshot(&mut r, &p).await;
    let uniques_second: u64 = r.pfcount(format!("{p}:visitors")).await.unwrap();
    let changed: Vec<&String> = first
        .keys()
        .filter(|k| first.get(*k) != second.get(*k))
        .collect();
    assert!(
        changed.is_empty() && first.len() == second.len(),
        "the replay changed {changed:?}"
    );
    assert_eq!(uniques_first, uniques_second);
}

/// `weir run` with a Redis sink whose server is not there: the error names
/// the sink once ("sink `cache`: connect: ..."), with the driver's message,
/// and not again as "redis sink `cache`" inside it.
#[test]
fn an_unreachable_server_fails_the_run_naming_the_sink_once() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("events.jsonl"), "{\"id\":1}\n").unwrap();
    let config = dir.path().join("weir.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[host.admin]
enabled = false

[sources.events]
type = "kafka"
topics = ["events"]
embedded = {{ partitions = 1, seed_file = "events.jsonl" }}
stop_at_end = true

[plugins.keep]
path = "builtin:filter"
config = {{ field = "id", equals = "none" }}

[sinks.cache]
type = "redis"
url = "redis://127.0.0.1:{port}"
[[sinks.cache.commands]]
cmd = "SET"
key = "k:{{key}}"

[pipelines.p]
source = "events"
plugins = ["keep"]
default_route = "cache"
"#
        ),
    )
    .unwrap();
    let run = std::process::Command::new(weir_tests::weir_bin())
        .arg("run")
        .arg(&config)
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("weir run");
    let log = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "weir run succeeded: {log}");
    assert_eq!(log.matches("sink `cache`").count(), 1, "{log}");
    assert!(log.contains("sink `cache`: connect: "), "{log}");
    assert!(!log.contains("redis sink"), "{log}");
}
