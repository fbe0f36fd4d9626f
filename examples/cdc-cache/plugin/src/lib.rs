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
