//! The in-host cache of one store: bounded in entries, each answer kept
//! for a TTL, "absent" answers kept too unless negative caching is off.

use std::sync::Arc;
use std::time::Duration;

use super::config::CacheConfig;

/// A cached answer: the value, or `None` for a cached "absent".
pub type Answer = Option<Arc<[u8]>>;

/// The cache of one store (off when `max_entries` is 0).
pub struct StoreCache {
    inner: Option<moka::sync::Cache<Vec<u8>, Answer>>,
    negative: bool,
}

impl StoreCache {
    /// A cache as `[lookups.NAME.cache]` sets it.
    pub fn new(config: &CacheConfig) -> StoreCache {
        let inner = (config.max_entries > 0 && config.ttl_ms > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(config.max_entries)
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
    fn zero_entries_turns_the_cache_off() {
        let cache = StoreCache::new(&CacheConfig {
            max_entries: 0,
            ..CacheConfig::default()
        });
        cache.put(b"a", Some(b"1"));
        assert_eq!(cache.get(b"a"), None);
    }
}
