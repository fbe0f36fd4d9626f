//! The `redis` store: `MGET` (strings) or a pipeline of `HGETALL` (hashes
//! as JSON objects) — one round trip for any number of keys — over one
//! synchronous connection per store, bounded by the call's timeout.
//!
//! Synchronous because plugin calls are: a lookup runs on the plugin's
//! thread, inside its call, and must finish (or time out) before the
//! plugin gets its answer.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::config::{KEY_PLACEHOLDER, RedisRead};
use super::store::{Store, StoreError};

/// A Redis server as a lookup store.
pub struct RedisStore {
    client: redis::Client,
    read: RedisRead,
    template: Option<String>,
    /// The connection, made on first use and again after a failure.
    conn: Mutex<Option<redis::Connection>>,
}

impl RedisStore {
    /// A store on `url`; nothing connects until the first lookup.
    pub fn new(url: &str, read: RedisRead, template: Option<String>) -> Result<RedisStore, String> {
        let client = redis::Client::open(url).map_err(|e| format!("bad url: {e}"))?;
        Ok(RedisStore {
            client,
            read,
            template: template.filter(|t| t != KEY_PLACEHOLDER),
            conn: Mutex::new(None),
        })
    }

    fn redis_key(&self, key: &[u8]) -> Result<Vec<u8>, StoreError> {
        match &self.template {
            None => Ok(key.to_vec()),
            Some(t) => {
                let key = std::str::from_utf8(key).map_err(|_| {
                    StoreError::InvalidKey(
                        "not UTF-8, and the store's key_template needs text".to_owned(),
                    )
                })?;
                Ok(t.replace(KEY_PLACEHOLDER, key).into_bytes())
            }
        }
    }

    fn query(
        &self,
        conn: &mut redis::Connection,
        keys: &[Vec<u8>],
    ) -> redis::RedisResult<Vec<Option<Vec<u8>>>> {
        match self.read {
            RedisRead::Get => redis::cmd("MGET").arg(keys).query(conn),
            RedisRead::Hgetall => {
                let mut pipe = redis::pipe();
                for key in keys {
                    pipe.cmd("HGETALL").arg(key);
                }
                // Bytes, not strings: a field or value that is not UTF-8
                // must not fail the whole call (which would be retried for
                // ever); it is carried over with U+FFFD in its place.
                let hashes: Vec<BTreeMap<Vec<u8>, Vec<u8>>> = pipe.query(conn)?;
                Ok(hashes.into_iter().map(|h| hash_to_json(&h)).collect())
            }
        }
    }
}

impl Store for RedisStore {
    fn get_many(
        &self,
        keys: &[&[u8]],
        timeout: Duration,
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys = keys
            .iter()
            .map(|k| self.redis_key(k))
            .collect::<Result<Vec<_>, _>>()?;
        let down = |e: redis::RedisError| StoreError::Unavailable(format!("redis: {e}"));
        let mut slot = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let conn = match slot.as_mut() {
            Some(conn) => conn,
            None => slot.insert(
                self.client
                    .get_connection_with_timeout(timeout)
                    .map_err(down)?,
            ),
        };
        let timeout = Some(timeout.max(Duration::from_millis(1)));
        let answer = conn
            .set_read_timeout(timeout)
            .and_then(|()| conn.set_write_timeout(timeout))
            .and_then(|()| self.query(conn, &keys));
        match answer {
            Ok(values) if values.len() == keys.len() => Ok(values),
            Ok(values) => {
                *slot = None;
                Err(StoreError::Unavailable(format!(
                    "redis answered {} values for {} keys",
                    values.len(),
                    keys.len()
                )))
            }
            // A key holding another type than the read expects (HGETALL
            // on a string): the server answered, so it is not an outage to
            // retry; the call is refused, naming the reason, and the
            // connection stays usable.
            Err(e) if e.code() == Some("WRONGTYPE") => Err(StoreError::InvalidKey(format!(
                "redis: a key of this lookup holds another type than `{}` reads ({e})",
                match self.read {
                    RedisRead::Get => "GET",
                    RedisRead::Hgetall => "HGETALL",
                }
            ))),
            Err(e) => {
                // A timed-out connection may still deliver the late answer:
                // never reuse it.
                *slot = None;
                Err(down(e))
            }
        }
    }
}

/// A hash as a JSON object of strings; none for an empty hash (Redis keeps
/// no empty hashes, so it is an absent key).
fn hash_to_json(hash: &BTreeMap<Vec<u8>, Vec<u8>>) -> Option<Vec<u8>> {
    if hash.is_empty() {
        return None;
    }
    let object: serde_json::Map<String, serde_json::Value> = hash
        .iter()
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(k).into_owned(),
                serde_json::Value::String(String::from_utf8_lossy(v).into_owned()),
            )
        })
        .collect();
    Some(serde_json::Value::Object(object).to_string().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_becomes_a_json_object_and_bytes_that_are_not_utf8_do_not_fail_it() {
        let mut hash = BTreeMap::new();
        hash.insert(b"plan".to_vec(), b"gold".to_vec());
        hash.insert(b"raw".to_vec(), vec![0xff, b'x']);
        let json: serde_json::Value =
            serde_json::from_slice(&hash_to_json(&hash).expect("not empty")).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"plan": "gold", "raw": "\u{fffd}x"})
        );
        assert_eq!(hash_to_json(&BTreeMap::new()), None);
    }
}
