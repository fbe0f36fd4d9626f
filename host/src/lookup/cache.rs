//! The in-host cache of one store: bounded in entries and in bytes, each
//! answer kept for a TTL, "absent" answers kept too unless negative caching
//! is off.
//!
//! The cache (moka's, least recently used out first) has one capacity, in
//! weights: every entry weighs `max(SLOT, bytes × SLOT × max_entries /
//! max_bytes)` against a capacity of `SLOT × max_entries`. An entry weighs
//! at least a slot, so no more than `max_entries` fit; and at least its
//! share of the bytes, so no more than `max_bytes` fit.

use std::sync::Arc;
use std::time::Duration;

use super::config::CacheConfig;

/// A cached answer: the value, or `None` for a cached "absent".
pub type Answer = Option<Arc<[u8]>>;

/// The weight of an entry's slot.
const SLOT: u64 = 1024;
/// What an entry costs beyond its key and value.
const ENTRY_OVERHEAD: u64 = 64;

/// An entry's weight (see the module's comment).
fn weight(key: &[u8], answer: &Answer, max_entries: u64, max_bytes: u64) -> u32 {
    let bytes =
        (key.len() + answer.as_ref().map_or(0, |v| v.len())) as u128 + u128::from(ENTRY_OVERHEAD);
    let share = bytes * u128::from(SLOT) * u128::from(max_entries) / u128::from(max_bytes.max(1));
    u32::try_from(share.max(u128::from(SLOT))).unwrap_or(u32::MAX)
}

/// The cache of one store (off when `max_entries` or `max_bytes` is 0).
pub struct StoreCache {
    inner: Option<moka::sync::Cache<Vec<u8>, Answer>>,
    negative: bool,
}

impl StoreCache {
    /// A cache as `[lookups.NAME.cache]` sets it.
    pub fn new(config: &CacheConfig) -> StoreCache {
        let on = config.max_entries > 0 && config.max_bytes > 0 && config.ttl_ms > 0;
        let inner = on.then(|| {
            let (entries, bytes) = (config.max_entries, config.max_bytes);
            moka::sync::Cache::builder()
                .max_capacity(SLOT.saturating_mul(entries))
                .weigher(move |key: &Vec<u8>, answer: &Answer| weight(key, answer, entries, bytes))
                .time_to_live(Duration::from_millis(config.ttl_ms))
                .build()
        });
        StoreCache {
            inner,
            negative: config.negative,
        }
    }

    /// No cache at all.
    pub fn off() -> StoreCache {
        StoreCache {
            inner: None,
            negative: false,
        }
    }

    /// `Some(answer)` if `key` is cached.
    pub fn get(&self, key: &[u8]) -> Option<Answer> {
        self.inner.as_ref()?.get(key)
    }

    /// Remember the store's answer for `key`.
    pub fn put(&self, key: &[u8], value: Option<&[u8]>) {
        let Some(inner) = &self.inner else { return };
        match value {
            Some(v) => inner.insert(key.to_vec(), Some(Arc::from(v))),
            None if self.negative => inner.insert(key.to_vec(), None),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_answers_are_cached_only_with_negative_caching() {
        let mut config = CacheConfig::default();
        let cache = StoreCache::new(&config);
        cache.put(b"a", Some(b"1"));
        cache.put(b"b", None);
        assert_eq!(cache.get(b"a"), Some(Some(Arc::from(&b"1"[..]))));
        assert_eq!(cache.get(b"b"), Some(None));
        assert_eq!(cache.get(b"c"), None);
        config.negative = false;
        let cache = StoreCache::new(&config);
        cache.put(b"b", None);
        assert_eq!(cache.get(b"b"), None);
    }

    #[test]
    fn the_cache_holds_no_more_entries_nor_bytes_than_allowed() {
        let count = |config: CacheConfig, value: usize| {
            let cache = StoreCache::new(&config);
            for i in 0..1000u32 {
                cache.put(&i.to_be_bytes(), Some(&vec![b'x'; value]));
            }
            let inner = cache.inner.as_ref().unwrap();
            inner.run_pending_tasks();
            let bytes: usize = inner
                .iter()
                .map(|(_, v)| v.as_ref().map_or(0, |v| v.len()))
                .sum();
            (inner.entry_count(), bytes)
        };
        let (entries, _) = count(
            CacheConfig {
                max_entries: 100,
                ..CacheConfig::default()
            },
            10,
        );
        assert!(entries <= 100 && entries > 50, "{entries} entries");
        let (entries, bytes) = count(
            CacheConfig {
                max_entries: 10_000,
                max_bytes: 100_000,
                ..CacheConfig::default()
            },
            1000,
        );
        assert!(
            bytes <= 100_000 && bytes > 50_000,
            "{entries} entries of {bytes} bytes"
        );
    }

    #[test]
    fn zero_entries_turns_the_cache_off() {
        let cache = StoreCache::new(&CacheConfig {
            max_entries: 0,
            ..CacheConfig::default()
        });
        cache.put(b"a", Some(b"1"));
        assert_eq!(cache.get(b"a"), None);
    }
}
