//! Weir example plugin `cdc-cache`: turns each DynamoDB Streams change
//! event into two outputs:
//!
//! - route `cache_route` (default `cache`): keyed by the item's id (the
//!   text of the key attribute `key_field`, default `id`); an insert or
//!   modify carries the new image (the sink SETs it), a remove is a delete
//!   (the sink DELs the key);
//! - route `audit_route` (default `audit`): the same key, and a JSON record
//!   `{"op", "key", "new", "old", "at_ms", "origin"}` of the change.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `key_field` | `id` | key attribute whose text keys the cache entry |
//! | `cache_route` | `cache` | route of the cache write |
//! | `audit_route` | `audit` | route of the audit record |

use weir_sdk::{Config, Event, Op, Outcome, Output, json};

/// The configured routes and key field.
#[derive(Debug)]
pub struct CdcCache {
    key_field: String,
    cache_route: String,
    audit_route: String,
}

fn op_name(op: Op) -> &'static str {
    match op {
        Op::Insert => "insert",
        Op::Upsert => "upsert",
        Op::Delete => "delete",
    }
}

impl weir_sdk::Transform for CdcCache {
    fn init(config: &Config) -> Result<Self, String> {
        config.deny_unknown(&["key_field", "cache_route", "audit_route"], &[])?;
        Ok(CdcCache {
            key_field: config.get("key_field").unwrap_or("id").to_string(),
            cache_route: config.get("cache_route").unwrap_or("cache").to_string(),
            audit_route: config.get("audit_route").unwrap_or("audit").to_string(),
        })
    }

    fn process(&mut self, event: &Event<'_>) -> Outcome {
        let Some(key_bytes) = event.key() else {
            return Outcome::fail("event has no key");
        };
        let key: json::Value = match weir_sdk::serde_json::from_slice(key_bytes) {
            Ok(k) => k,
            Err(e) => return Outcome::fail(format!("key is not JSON: {e}")),
        };
        let Some(id) = json::get(&key, &self.key_field) else {
            return Outcome::fail(format!("key has no attribute `{}`", self.key_field));
        };
        let id = json::to_text(id).into_owned();
        let parse = |bytes: Option<&[u8]>| -> Result<json::Value, String> {
            match bytes {
                Some(b) => weir_sdk::serde_json::from_slice(b)
                    .map_err(|e| format!("image is not JSON: {e}")),
                None => Ok(json::Value::Null),
            }
        };
        let (new, old) = match (parse(event.value()), parse(event.old_value())) {
            (Ok(n), Ok(o)) => (n, o),
            (Err(e), _) | (_, Err(e)) => return Outcome::fail(e),
        };
        let cache = match event.op() {
            Op::Delete => Output::delete(id.clone()).route(self.cache_route.clone()),
            op => match event.value() {
                Some(v) => Output::bytes(v.to_vec())
                    .key(id.clone())
                    .op(op)
                    .route(self.cache_route.clone()),
                None => {
                    return Outcome::fail(
                        "insert/modify without a new image (stream view type KEYS_ONLY or OLD_IMAGE?)",
                    );
                }
            },
        };
        let mut record = json::Value::Object(Default::default());
        let fields = [
            ("op", json::Value::from(op_name(event.op()))),
            ("key", key),
            ("new", new),
            ("old", old),
            ("at_ms", json::Value::from(event.timestamp_ms())),
            ("origin", json::Value::from(event.origin())),
        ];
        for (name, value) in fields {
            if let Err(e) = json::set(&mut record, name, value) {
                return Outcome::fail(e.to_string());
            }
        }
        let audit = Output::json(&record)
            .key(id)
            .route(self.audit_route.clone());
        Outcome::emit_all([cache, audit])
    }
}

weir_sdk::export!(CdcCache);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::serde_json::json;
    use weir_sdk::testing::{self, Harness, OwnedEvent, OwnedOutcome};

    fn change(op: Op, new: Option<json::Value>, old: Option<json::Value>) -> OwnedEvent {
        OwnedEvent {
            key: Some(json!({"id": "u-1"}).to_string().into()),
            value: new.map(|v| v.to_string().into()),
            old_value: old.map(|v| v.to_string().into()),
            op,
            timestamp_ms: 1_700_000_000_000,
            origin: "profiles/shardId-1/42".into(),
            ..OwnedEvent::default()
        }
    }

    #[test]
    fn a_modify_warms_the_cache_and_is_audited() {
        let mut h = Harness::<CdcCache>::new(Vec::<(String, String)>::new()).unwrap();
        let new = json!({"id": "u-1", "plan": "pro"});
        let old = json!({"id": "u-1", "plan": "free"});
        let out = h.run(&[change(Op::Upsert, Some(new.clone()), Some(old.clone()))]);
        let outputs = testing::outputs(&out[0]);
        assert_eq!(outputs.len(), 2);
        assert_eq!(outputs[0].route.as_deref(), Some("cache"));
        assert_eq!(outputs[0].key.as_deref(), Some(&b"u-1"[..]));
        assert_eq!(outputs[0].op, Op::Upsert);
        assert_eq!(testing::json_of(&outputs[0]), new);
        assert_eq!(outputs[1].route.as_deref(), Some("audit"));
        assert_eq!(
            testing::json_of(&outputs[1]),
            json!({"op": "upsert", "key": {"id": "u-1"}, "new": new, "old": old,
                   "at_ms": 1_700_000_000_000i64, "origin": "profiles/shardId-1/42"})
        );
    }

    #[test]
    fn a_remove_deletes_the_cache_entry_and_is_audited() {
        let mut h = Harness::<CdcCache>::new([("cache_route", "redis")]).unwrap();
        let old = json!({"id": "u-1"});
        let out = h.run(&[change(Op::Delete, None, Some(old.clone()))]);
        let outputs = testing::outputs(&out[0]);
        assert_eq!(outputs[0].route.as_deref(), Some("redis"));
        assert_eq!(outputs[0].op, Op::Delete);
        assert_eq!(outputs[0].key.as_deref(), Some(&b"u-1"[..]));
        assert_eq!(outputs[0].value, None);
        assert_eq!(testing::json_of(&outputs[1])["op"], json!("delete"));
        assert_eq!(testing::json_of(&outputs[1])["new"], json!(null));
    }

    #[test]
    fn an_event_without_the_key_attribute_fails() {
        let mut h = Harness::<CdcCache>::new([("key_field", "user")]).unwrap();
        let out = h.run(&[change(Op::Insert, Some(json!({"id": "u-1"})), None)]);
        assert_eq!(
            out[0],
            OwnedOutcome::Fail("key has no attribute `user`".into())
        );
        assert!(Harness::<CdcCache>::new([("colour", "blue")]).is_err());
    }
}
