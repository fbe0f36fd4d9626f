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
                let hashes: Vec<BTreeMap<String, String>> = pipe.query(conn)?;
                Ok(hashes
                    .into_iter()
                    .map(|h| (!h.is_empty()).then(|| serde_json::to_vec(&h).unwrap_or_default()))
                    .collect())
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
            Err(e) => {
                // A timed-out connection may still deliver the late answer:
                // never reuse it.
                *slot = None;
                Err(down(e))
            }
        }
    }
}
