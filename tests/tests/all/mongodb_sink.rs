//! The MongoDB sink against a real server speaking the MongoDB wire
//! protocol (`scripts/services start mongodb`): each write model, id
//! strategy and collection choice, per-output rejections, and a 10k-event
//! replay that must leave the same state.

use weir_tests::stores;

use futures::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};
use serde_json::json;
use stores::{build_sink, delete, keyed, mongo, mongo_uri, out, unique, with_header};

fn table(db: &str, rest: &str) -> String {
    format!(
        "type = \"mongodb\"\nuri = \"{}\"\ndatabase = \"{db}\"\n{rest}",
        mongo_uri()
    )
}

async fn all(client: &mongodb::Client, db: &str, coll: &str) -> Vec<Document> {
    client
        .database(db)
        .collection::<Document>(coll)
        .find(doc! {})
        .sort(doc! { "_id": 1 })
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

#[tokio::test]
async fn insert_by_key_counts_an_already_written_event_as_success() {
    let client = mongo().await;
    let db = unique("ins");
    let sink = build_sink(
        "events",
        &table(&db, "collection = \"events\"\nwrite_model = \"insert\"\n"),
    )
    .await;
    let batch = [
        keyed("e1", json!({"n": 1})),
        keyed(r#"{"tenant":"t","id":2}"#, json!({"n": 2})),
        keyed("3", json!({"n": 3})),
    ];
    assert!(sink.write(&batch).await.unwrap().is_empty());
    // A replay of the same events: duplicates of `_id` are not errors.
    assert!(sink.write(&batch).await.unwrap().is_empty());
    let docs = all(&client, &db, "events").await;
    assert_eq!(docs.len(), 3);
    let ids: Vec<&Bson> = docs.iter().map(|d| d.get("_id").unwrap()).collect();
    assert!(
        ids.contains(&&Bson::String("e1".into())),
        "a plain key is a string id"
    );
    assert!(
        ids.contains(&&Bson::Int32(3)),
        "a JSON number key is a number id"
    );
    assert!(
        ids.contains(&&Bson::Document(doc! {"tenant": "t", "id": 2})),
        "a JSON object key is a document id"
    );
}

#[tokio::test]
async fn insert_with_generated_ids_writes_every_output() {
    let client = mongo().await;
    let db = unique("gen");
    let sink = build_sink(
        "events",
        &table(
            &db,
            "collection = \"events\"\nwrite_model = \"insert\"\nid = \"generated\"\n",
        ),
    )
    .await;
    assert!(
        sink.write(&[out(json!({"a": 1})), out(json!({"a": 1}))])
            .await
            .unwrap()
            .is_empty()
    );
    let docs = all(&client, &db, "events").await;
    assert_eq!(docs.len(), 2);
    assert!(
        docs.iter()
            .all(|d| matches!(d.get("_id"), Some(Bson::ObjectId(_))))
    );
}

#[tokio::test]
async fn replace_upserts_by_business_key_single_compound_and_joined() {
    let client = mongo().await;
    let db = unique("repl");
    let single = build_sink(
        "single",
        &table(
            &db,
            "collection = \"single\"\nwrite_model = \"replace\"\nid_fields = [\"event_id\"]\n",
        ),
    )
    .await;
    let compound = build_sink(
        "compound",
        &table(
            &db,
            "collection = \"compound\"\nid_fields = [\"tenant\", \"order.id\"]\n",
        ),
    )
    .await;
    let joined = build_sink(
        "joined",
        &table(
            &db,
            "collection = \"joined\"\nid_fields = [\"tenant\", \"order.id\"]\nid_compound = \"joined\"\nid_separator = \"/\"\n",
        ),
    )
    .await;
    let v1 = json!({"event_id": "e1", "tenant": "acme", "order": {"id": 7}, "status": "new", "extra": 1});
    let v2 = json!({"event_id": "e1", "tenant": "acme", "order": {"id": 7}, "status": "paid"});
    for sink in [&single, &compound, &joined] {
        assert!(sink.write(&[out(v1.clone())]).await.unwrap().is_empty());
        assert!(sink.write(&[out(v2.clone())]).await.unwrap().is_empty());
    }
    let expect = |id: Bson| {
        let mut d = doc! { "_id": id };
        d.extend(doc! {"event_id": "e1", "tenant": "acme", "order": {"id": 7}, "status": "paid"});
        d
    };
    assert_eq!(
        all(&client, &db, "single").await,
        vec![expect(Bson::String("e1".into()))]
    );
    assert_eq!(
        all(&client, &db, "compound").await,
        vec![expect(Bson::Document(
            doc! {"tenant": "acme", "order.id": 7}
        ))]
    );
    assert_eq!(
        all(&client, &db, "joined").await,
        vec![expect(Bson::String("acme/7".into()))]
    );
}

#[tokio::test]
async fn update_sets_fields_and_counts_each_event_once_across_replays() {
    let client = mongo().await;
    let db = unique("upd");
    let sink = build_sink(
        "totals",
        &table(
            &db,
            "collection = \"user_totals\"\nwrite_model = \"update\"\nid_fields = [\"user_id\"]\n\
             set_fields = [\"user_id\", \"last_event\"]\ninc = { total_amount = \"amount\", purchases = 1 }\n\
             dedup_field = \"event_id\"\ndedup_window = 3\n",
        ),
    )
    .await;
    let ev = |e: u32, user: &str, amount: f64| {
        out(
            json!({"event_id": format!("e{e}"), "user_id": user, "amount": amount, "last_event": format!("e{e}"), "ignored": true}),
        )
    };
    let batch = [
        ev(1, "u1", 10.0),
        ev(2, "u1", 2.5),
        ev(3, "u2", 1.0),
        ev(4, "u1", 0.5),
    ];
    assert!(sink.write(&batch).await.unwrap().is_empty());
    // Replays: whole batch, then part of it mixed with a new event.
    assert!(sink.write(&batch).await.unwrap().is_empty());
    assert!(
        sink.write(&[ev(4, "u1", 0.5), ev(5, "u2", 4.0)])
            .await
            .unwrap()
            .is_empty()
    );
    let docs = all(&client, &db, "user_totals").await;
    assert_eq!(
        docs,
        vec![
            doc! {"_id": "u1", "user_id": "u1", "last_event": "e4", "total_amount": 13.0, "purchases": 3_i64, "_applied": ["e1", "e2", "e4"]},
            doc! {"_id": "u2", "user_id": "u2", "last_event": "e5", "total_amount": 5.0, "purchases": 2_i64, "_applied": ["e3", "e5"]},
        ]
    );
}

#[tokio::test]
async fn update_without_set_fields_sets_every_field() {
    let client = mongo().await;
    let db = unique("upd_all");
    let sink = build_sink(
        "profiles",
        &table(&db, "collection = \"profiles\"\nwrite_model = \"update\"\n"),
    )
    .await;
    assert!(
        sink.write(&[keyed("p1", json!({"name": "ann", "age": 30}))])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        sink.write(&[keyed("p1", json!({"age": 31}))])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        all(&client, &db, "profiles").await,
        vec![doc! {"_id": "p1", "name": "ann", "age": 31}]
    );
}

#[tokio::test]
async fn delete_op_deletes_by_key_or_business_key() {
    let client = mongo().await;
    let db = unique("del");
    let by_key = build_sink("k", &table(&db, "collection = \"by_key\"\n")).await;
    let by_field = build_sink(
        "f",
        &table(&db, "collection = \"by_field\"\nid_fields = [\"id\"]\n"),
    )
    .await;
    assert!(
        by_key
            .write(&[keyed("a", json!({"x": 1})), keyed("b", json!({"x": 2}))])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        by_key
            .write(&[delete(Some("a"), None)])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        all(&client, &db, "by_key").await,
        vec![doc! {"_id": "b", "x": 2}]
    );
    assert!(
        by_field
            .write(&[out(json!({"id": 1})), out(json!({"id": 2}))])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        by_field
            .write(&[delete(None, Some(json!({"id": 2})))])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        all(&client, &db, "by_field").await,
        vec![doc! {"_id": 1, "id": 1}]
    );
    // Deleting what is not there is not an error (a replayed delete).
    assert!(
        by_key
            .write(&[delete(Some("a"), None)])
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn collection_comes_from_the_route_or_a_header_with_a_fallback() {
    let client = mongo().await;
    let db = unique("coll");
    let by_route = build_sink(
        "r",
        &table(
            &db,
            "collection = \"fallback\"\ncollection_from = \"route\"\n",
        ),
    )
    .await;
    let by_header = build_sink(
        "h",
        &table(&db, "collection_from = { header = \"coll\" }\n"),
    )
    .await;
    let mut routed = keyed("a", json!({"x": 1}));
    routed.route = Some("orders".to_owned());
    assert!(
        by_route
            .write(&[routed, keyed("b", json!({"x": 2}))])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        all(&client, &db, "orders").await,
        vec![doc! {"_id": "a", "x": 1}]
    );
    assert_eq!(
        all(&client, &db, "fallback").await,
        vec![doc! {"_id": "b", "x": 2}]
    );
    let rejected = by_header
        .write(&[
            with_header(keyed("c", json!({"x": 3})), "coll", "from_header"),
            keyed("d", json!({"x": 4})),
        ])
        .await
        .unwrap();
    assert_eq!(
        all(&client, &db, "from_header").await,
        vec![doc! {"_id": "c", "x": 3}]
    );
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].index, 1);
    assert_eq!(
        rejected[0].reason,
        "the output has no header `coll` naming the collection, and no `collection` is configured"
    );
}

#[tokio::test]
async fn a_document_the_server_rejects_is_the_only_output_rejected_with_the_server_message() {
    let client = mongo().await;
    let db = unique("reject");
    client
        .database(&db)
        .create_collection("people")
        .validator(doc! { "$jsonSchema": { "bsonType": "object", "required": ["name"] } })
        .await
        .unwrap();
    let sink = build_sink(
        "people",
        &table(&db, "collection = \"people\"\nid_fields = [\"id\"]\n"),
    )
    .await;
    let batch = [
        out(json!({"id": 1, "name": "ann"})),
        out(json!({"id": 2, "nickname": "no name"})),
        out(json!({"id": 3, "name": "cy"})),
    ];
    let rejected = sink.write(&batch).await.unwrap();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0].index, 1);
    // The server's own words follow the prefix (their exact text differs
    // between server versions).
    let reason = &rejected[0].reason;
    assert!(
        reason.starts_with(&format!("{db}.people _id 2: server rejected the write: "))
            && reason.contains("Document failed validation")
            && reason.contains("(code 121"),
        "{reason}"
    );
    let ids: Vec<Bson> = all(&client, &db, "people")
        .await
        .iter()
        .map(|d| d.get("_id").unwrap().clone())
        .collect();
    assert_eq!(ids, vec![Bson::Int32(1), Bson::Int32(3)]);
}

#[tokio::test]
async fn outputs_that_cannot_be_documents_are_rejected_one_by_one() {
    let client = mongo().await;
    let db = unique("bad");
    let sink = build_sink(
        "docs",
        &table(&db, "collection = \"docs\"\nid_fields = [\"id\"]\n"),
    )
    .await;
    let not_json = weir::event::Output {
        value: Some("not json".into()),
        ..Default::default()
    };
    let batch = [
        out(json!([1, 2])),
        out(json!({"no_id": true})),
        not_json,
        out(json!({"id": "ok"})),
    ];
    let rejected = sink.write(&batch).await.unwrap();
    let reasons: Vec<(usize, &str)> = rejected
        .iter()
        .map(|r| (r.index, r.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (0, "id field `id` is missing from the value"),
            (1, "id field `id` is missing from the value"),
            (
                2,
                "the value is not JSON: expected ident at line 1 column 2"
            ),
        ]
    );
    assert_eq!(
        all(&client, &db, "docs").await,
        vec![doc! {"_id": "ok", "id": "ok"}]
    );
    let by_key = build_sink("keyed", &table(&db, "collection = \"keyed\"\n")).await;
    let rejected = by_key.write(&[keyed("a", json!([1, 2]))]).await.unwrap();
    assert_eq!(
        rejected[0].reason,
        "the value is an array, not a JSON object, so it cannot be a document"
    );
}

#[tokio::test]
async fn write_concern_options_are_accepted() {
    let client = mongo().await;
    let db = unique("wc");
    let sink = build_sink(
        "wc",
        &table(
            &db,
            "collection = \"c\"\nwrite_concern = { w = 1, journal = true, wtimeout_ms = 5000 }\n",
        ),
    )
    .await;
    assert!(
        sink.write(&[keyed("a", json!({"x": 1}))])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(all(&client, &db, "c").await.len(), 1);
}

#[tokio::test]
async fn replaying_10k_events_leaves_the_same_state() {
    let client = mongo().await;
    let db = unique("replay");
    let events_sink = build_sink(
        "events",
        &table(
            &db,
            "collection = \"user_events\"\nwrite_model = \"replace\"\nid_fields = [\"event_id\"]\n",
        ),
    )
    .await;
    let log_sink = build_sink(
        "log",
        &table(
            &db,
            "collection = \"log\"\nwrite_model = \"insert\"\nid_fields = [\"event_id\"]\n",
        ),
    )
    .await;
    let totals_sink = build_sink(
        "totals",
        &table(
            &db,
            "collection = \"user_totals\"\nwrite_model = \"update\"\nid_fields = [\"user_id\"]\nset_fields = [\"user_id\"]\n\
             inc = { total_amount = \"amount\", purchases = 1 }\ndedup_field = \"event_id\"\ndedup_window = 1000\n",
        ),
    )
    .await;
    let events: Vec<_> = (0..10_000)
        .map(|i| out(json!({"event_id": format!("e{i}"), "user_id": format!("u{}", i % 97), "amount": (i % 50) as i64, "kind": "purchase"})))
        .collect();
    let run = || async {
        for chunk in events.chunks(1000) {
            for sink in [&events_sink, &log_sink, &totals_sink] {
                let rejected = sink.write(chunk).await.unwrap();
                assert!(rejected.is_empty(), "{rejected:?}");
            }
        }
    };
    run().await;
    let first = (
        all(&client, &db, "user_events").await,
        all(&client, &db, "log").await,
        all(&client, &db, "user_totals").await,
    );
    assert_eq!(first.0.len(), 10_000);
    assert_eq!(first.1.len(), 10_000);
    assert_eq!(first.2.len(), 97);
    let total: i64 = first
        .2
        .iter()
        .map(|d| d.get_i64("purchases").unwrap())
        .sum();
    assert_eq!(total, 10_000);
    // The same 10k events again, as after a crash before the checkpoint.
    run().await;
    let second = (
        all(&client, &db, "user_events").await,
        all(&client, &db, "log").await,
        all(&client, &db, "user_totals").await,
    );
    assert!(first == second, "the replay changed the database");
}
