//! The Redis sink's generic command (`cmd` + `args` templates), the path
//! to Redis Stack / Valkey module commands (`TS.ADD`, `JSON.SET`,
//! `BF.ADD`), against the real Redis (`scripts/services start redis`) with
//! core commands the built-in set does not have: what the server stored,
//! deletes skipped or applied, the server's refusal (an unknown module
//! command on a plain Redis) dead-lettering only its output.

use weir_tests::stores;

use std::collections::BTreeMap;

use redis::AsyncCommands;
use serde_json::json;
use stores::{build_sink, delete, keyed, out, redis, redis_url, unique, with_header};

fn sink_table(commands: &str) -> String {
    format!("type = \"redis\"\nurl = \"{}\"\n{commands}", redis_url())
}

#[tokio::test]
async fn core_commands_through_the_generic_path_store_what_the_templates_render() {
    let mut r = redis().await;
    let p = unique("gen");
    let sink = build_sink(
        "gen",
        &sink_table(&format!(
            "[[commands]]\ncmd = \"RPUSH\"\nargs = [\"{p}:log:{{value.user}}\", \"{{value.page}}\", \"{{header.src}}\"]\n\
             [[commands]]\ncmd = \"ZADD\"\nargs = [\"{p}:latest\", \"{{value.ts}}\", \"{{value.page}}\"]\nidempotent = true\n\
             [[commands]]\ncmd = \"hset\"\nargs = [\"{p}:user:{{value.user}}\", \"last\", \"{{value.page}}\", \"day\", \"{{value.ts|date}}\"]\n\
             [[commands]]\ncmd = \"SET\"\nargs = [\"{p}:raw:{{key}}\", \"{{value}}\", \"EX\", \"600\"]\n"
        )),
    )
    .await;
    let a = with_header(
        keyed(
            "k1",
            json!({"user": "ann", "page": "/home", "ts": 1_700_000_000_000_i64}),
        ),
        "src",
        "web",
    );
    let b = with_header(
        keyed(
            "k2",
            json!({"user": "ann", "page": "/cart", "ts": 1_700_000_100_000_i64}),
        ),
        "src",
        "app",
    );
    let rejected = sink.write(&[a, b]).await.unwrap();
    assert!(rejected.is_empty(), "{rejected:?}");

    let log: Vec<String> = r.lrange(format!("{p}:log:ann"), 0, -1).await.unwrap();
    assert_eq!(log, ["/home", "web", "/cart", "app"]);
    let latest: Vec<(String, f64)> = r
        .zrange_withscores(format!("{p}:latest"), 0, -1)
        .await
        .unwrap();
    assert_eq!(
        latest,
        [
            ("/home".to_owned(), 1.7e12),
            ("/cart".to_owned(), 1.7000001e12)
        ]
    );
    let user: BTreeMap<String, String> = r.hgetall(format!("{p}:user:ann")).await.unwrap();
    assert_eq!(
        user,
        BTreeMap::from([
            ("last".to_owned(), "/cart".to_owned()),
            ("day".to_owned(), "2023-11-14".to_owned()),
        ])
    );
    let raw: String = r.get(format!("{p}:raw:k1")).await.unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&raw).unwrap(),
        json!({"user": "ann", "page": "/home", "ts": 1_700_000_000_000_i64})
    );
    let ttl: i64 = r.ttl(format!("{p}:raw:k1")).await.unwrap();
    assert!((590..=600).contains(&ttl), "{ttl}");
}

#[tokio::test]
async fn deletes_skip_a_generic_command_unless_it_applies_to_them() {
    let mut r = redis().await;
    let p = unique("gendel");
    let sink = build_sink(
        "gen",
        &sink_table(&format!(
            "[[commands]]\ncmd = \"RPUSH\"\nargs = [\"{p}:skipped\", \"{{value.id}}\"]\n\
             [[commands]]\ncmd = \"RPUSH\"\nargs = [\"{p}:applied\", \"{{value.id}}\"]\non_delete = \"apply\"\n"
        )),
    )
    .await;
    let rejected = sink
        .write(&[out(json!({"id": 1})), delete(None, Some(json!({"id": 2})))])
        .await
        .unwrap();
    assert!(rejected.is_empty(), "{rejected:?}");
    let skipped: Vec<String> = r.lrange(format!("{p}:skipped"), 0, -1).await.unwrap();
    assert_eq!(skipped, ["1"]);
    let applied: Vec<String> = r.lrange(format!("{p}:applied"), 0, -1).await.unwrap();
    assert_eq!(applied, ["1", "2"]);
}

#[tokio::test]
async fn refusals_and_missing_fields_dead_letter_only_their_output() {
    let mut r = redis().await;
    let p = unique("generr");
    // Plain Redis has no TimeSeries module: the server refuses TS.ADD, and
    // only the outputs that reached it are rejected, with its message.
    let sink = build_sink(
        "gen",
        &sink_table(&format!(
            "[[commands]]\ncmd = \"RPUSH\"\nargs = [\"{p}:ok\", \"{{value.url}}\"]\n\
             [[commands]]\ncmd = \"TS.ADD\"\nargs = [\"{p}:pageviews:{{value.url}}\", \"{{value.ts}}\", \"1\"]\n"
        )),
    )
    .await;
    let rejected = sink
        .write(&[out(json!({"url": "/a", "ts": 1})), out(json!({"ts": 2}))])
        .await
        .unwrap();
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert_eq!(rejected[0].index, 0);
    assert!(
        rejected[0]
            .reason
            .starts_with("commands[1] (TS.ADD): server said: ERR unknown command"),
        "{}",
        rejected[0].reason
    );
    assert_eq!(rejected[1].index, 1);
    assert_eq!(
        rejected[1].reason,
        "commands[0] (RPUSH): args[1] template `{value.url}`: field `value.url` is missing"
    );
    // The first output's RPUSH came before the refused command: applied.
    let ok: Vec<String> = r.lrange(format!("{p}:ok"), 0, -1).await.unwrap();
    assert_eq!(ok, ["/a"]);
}
