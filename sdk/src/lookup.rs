//! Lookups in reference stores the host serves (`[lookups.NAME]` in the
//! pipeline config, granted with `[plugins.NAME] lookups = ["NAME"]`): a
//! Redis key or hash, a row of a reference file, ... The host does the I/O,
//! caches the answers and bounds every call by the plugin's deadline.
//!
//! ```ignore
//! let user = weir_sdk::lookup::get_json("users", user_id.as_bytes())?;
//! ```
//!
//! A store that is down never answers "absent": the host aborts the call
//! and runs the batch again later, so `Ok(None)` always means the key is
//! not in the store. The errors are refusals that trying again cannot
//! mend: a store not granted, a key the store cannot use, too many keys.
//!
//! **One round trip per batch.** [`get`] asks the host once per key. A
//! plugin that knows from an event which keys it will want says so in
//! [`crate::Transform::prefetch`]; the SDK then asks for every key of the
//! batch in one [`get_many`] per store before the first `process`, and
//! `get` answers those keys from that batch's answers.
//!
//! Natively (unit tests with [`crate::testing::Harness`]) the stores are
//! maps the test fills ([`crate::testing::Harness::with_lookup`]), and the
//! round trips are counted ([`round_trips`]).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

/// Why a lookup was refused. None of these goes away by trying again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// No store of this name is granted to the plugin.
    NotGranted(String),
    /// The store cannot use this key; says why.
    InvalidKey(String),
    /// More keys than the host takes in one `get_many` (the limit).
    TooManyKeys(u32),
    /// The value is not JSON ([`get_json`] only).
    NotJson(String),
}

impl std::fmt::Display for LookupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LookupError::NotGranted(store) => {
                write!(f, "lookup store `{store}` is not granted to this plugin")
            }
            LookupError::InvalidKey(why) => write!(f, "invalid lookup key: {why}"),
            LookupError::TooManyKeys(limit) => {
                write!(f, "too many keys in one lookup (the host takes {limit})")
            }
            LookupError::NotJson(why) => write!(f, "lookup value is not JSON: {why}"),
        }
    }
}

impl std::error::Error for LookupError {}

/// The keys [`crate::Transform::prefetch`] asks for, per store, each once.
#[derive(Debug, Default)]
pub struct Prefetch {
    keys: HashMap<String, HashSet<Vec<u8>>>,
}

impl Prefetch {
    /// Ask for `key` in `store` before the batch runs.
    pub fn key(&mut self, store: &str, key: impl Into<Vec<u8>>) {
        let key = key.into();
        match self.keys.get_mut(store) {
            Some(keys) => {
                keys.insert(key);
            }
            None => {
                self.keys.insert(store.to_owned(), HashSet::from([key]));
            }
        }
    }

    /// Whether no key was asked for.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Answers fetched for the batch being processed: store → key → value
/// (nested, so a `get` looks up by `&str` and `&[u8]` without allocating).
type Answers = HashMap<String, HashMap<Vec<u8>, Option<Vec<u8>>>>;

thread_local! {
    static BATCH: RefCell<Answers> = RefCell::new(HashMap::new());
}

/// Fetch what `prefetch` asked for, one `get_many` per store, and keep the
/// answers for the batch. A refused store is left out: its `get`s then ask
/// the host one by one and see the refusal themselves.
pub(crate) fn begin_batch(prefetch: Prefetch) {
    let mut answers = Answers::new();
    for (store, keys) in prefetch.keys {
        let keys: Vec<Vec<u8>> = keys.into_iter().collect();
        let mut values = HashMap::with_capacity(keys.len());
        // The host caps one get-many; split rather than be refused.
        for chunk in keys.chunks(MAX_KEYS_PER_CALL) {
            if let Ok(answered) = backend::get_many(&store, chunk) {
                values.extend(chunk.iter().cloned().zip(answered));
            }
        }
        answers.insert(store, values);
    }
    BATCH.with(|b| *b.borrow_mut() = answers);
}

/// Forget the batch's answers (the next batch may see other values).
pub(crate) fn end_batch() {
    BATCH.with(|b| b.borrow_mut().clear());
}

/// The most keys the SDK puts in one `get_many` (the host's limit).
pub const MAX_KEYS_PER_CALL: usize = 10_000;

/// The value stored under `key` in `store`, or `None` if there is none.
pub fn get(store: &str, key: &[u8]) -> Result<Option<Vec<u8>>, LookupError> {
    let prefetched = BATCH.with(|b| b.borrow().get(store).and_then(|s| s.get(key)).cloned());
    match prefetched {
        Some(value) => Ok(value),
        None => backend::get(store, key),
    }
}

/// The values of many keys at once, in order: one round trip to the store
/// for the keys the host's cache does not hold.
pub fn get_many(store: &str, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, LookupError> {
    backend::get_many(store, keys)
}

/// [`get`], parsed as JSON (a Redis hash, a file row or a document arrives
/// as a JSON object).
pub fn get_json(store: &str, key: &[u8]) -> Result<Option<serde_json::Value>, LookupError> {
    get(store, key)?
        .map(|bytes| {
            serde_json::from_slice(&bytes).map_err(|e| LookupError::NotJson(e.to_string()))
        })
        .transpose()
}

/// How many round trips to the stores this thread made (native only: the
/// host counts its own, in `weir_lookup_store_calls_total`).
#[cfg(not(target_arch = "wasm32"))]
pub fn round_trips() -> u64 {
    backend::ROUND_TRIPS.with(std::cell::Cell::get)
}

#[cfg(target_arch = "wasm32")]
mod backend {
    use super::LookupError;
    use crate::bindings::weir::transform::lookup::{self as host, LookupError as E};

    fn error(e: E) -> LookupError {
        match e {
            E::NotGranted(s) => LookupError::NotGranted(s),
            E::InvalidKey(s) => LookupError::InvalidKey(s),
            E::TooManyKeys(n) => LookupError::TooManyKeys(n),
        }
    }

    pub(super) fn get(store: &str, key: &[u8]) -> Result<Option<Vec<u8>>, LookupError> {
        host::get(store, key).map_err(error)
    }

    pub(super) fn get_many(
        store: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, LookupError> {
        host::get_many(store, keys).map_err(error)
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod backend {
    //! Native stores for unit tests: maps filled by the test.

    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;

    use super::{LookupError, MAX_KEYS_PER_CALL};

    type Stores = HashMap<String, HashMap<Vec<u8>, Vec<u8>>>;

    thread_local! {
        pub(super) static ROUND_TRIPS: Cell<u64> = const { Cell::new(0) };
        static STORES: RefCell<Stores> = RefCell::new(HashMap::new());
    }

    /// Put `key` = `value` into native store `store` (creating it: a store
    /// exists, that is is granted, once it has been named here).
    pub(crate) fn put(store: &str, key: Vec<u8>, value: Vec<u8>) {
        STORES.with(|s| {
            s.borrow_mut()
                .entry(store.to_owned())
                .or_default()
                .insert(key, value);
        });
    }

    /// Declare native store `store` (granted, maybe empty).
    pub(crate) fn declare(store: &str) {
        STORES.with(|s| {
            s.borrow_mut().entry(store.to_owned()).or_default();
        });
    }

    fn read<R>(
        store: &str,
        f: impl FnOnce(&HashMap<Vec<u8>, Vec<u8>>) -> R,
    ) -> Result<R, LookupError> {
        ROUND_TRIPS.with(|n| n.set(n.get() + 1));
        STORES.with(|s| {
            s.borrow()
                .get(store)
                .map(f)
                .ok_or_else(|| LookupError::NotGranted(store.to_owned()))
        })
    }

    pub(super) fn get(store: &str, key: &[u8]) -> Result<Option<Vec<u8>>, LookupError> {
        read(store, |m| m.get(key).cloned())
    }

    pub(super) fn get_many(
        store: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, LookupError> {
        if keys.len() > MAX_KEYS_PER_CALL {
            return Err(LookupError::TooManyKeys(
                u32::try_from(MAX_KEYS_PER_CALL).unwrap_or(u32::MAX),
            ));
        }
        read(store, |m| keys.iter().map(|k| m.get(k).cloned()).collect())
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn prefetched_keys_are_answered_from_the_batch_in_one_round_trip_per_store() {
        backend::put("users", b"u1".to_vec(), br#"{"name":"Ada"}"#.to_vec());
        backend::declare("plans");
        let before = round_trips();
        let mut p = Prefetch::default();
        for k in ["u1", "u2", "u1"] {
            p.key("users", k);
        }
        p.key("plans", "gold");
        begin_batch(p);
        assert_eq!(round_trips() - before, 2, "one get_many per store");
        assert_eq!(
            get_json("users", b"u1").unwrap(),
            Some(serde_json::json!({"name": "Ada"}))
        );
        assert_eq!(get("users", b"u2").unwrap(), None);
        assert_eq!(get("plans", b"gold").unwrap(), None);
        assert_eq!(round_trips() - before, 2, "answered from the batch");
        // A key not prefetched goes to the store.
        assert_eq!(get("users", b"u3").unwrap(), None);
        assert_eq!(round_trips() - before, 3);
        end_batch();
        assert_eq!(
            get("users", b"u1").unwrap().as_deref(),
            Some(&br#"{"name":"Ada"}"#[..])
        );
        assert_eq!(round_trips() - before, 4, "the next batch asks again");
    }

    #[test]
    fn a_store_not_granted_and_a_value_that_is_not_json_are_refusals() {
        assert_eq!(
            get("nowhere", b"k"),
            Err(LookupError::NotGranted("nowhere".into()))
        );
        backend::put("raw", b"k".to_vec(), b"not json".to_vec());
        assert!(matches!(
            get_json("raw", b"k"),
            Err(LookupError::NotJson(_))
        ));
        let too_many = vec![Vec::new(); MAX_KEYS_PER_CALL + 1];
        assert_eq!(
            get_many("raw", &too_many),
            Err(LookupError::TooManyKeys(10_000))
        );
    }
}
