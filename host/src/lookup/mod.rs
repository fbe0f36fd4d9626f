//! Enrichment lookups: plugins read configured reference stores
//! (`[lookups.NAME]`) through the host, which does the I/O, caches the
//! answers and bounds every call.
//!
//! - `config`: `[lookups.NAME]` and its checks.
//! - `store`: the driver trait; `file`, `redis`, `mongodb` and `dynamodb`:
//!   the drivers (`io`: the runtime the async ones answer through).
//! - `cache`: the per-store cache.
//! - here: [`Lookups`] (every store of a config, opened once per process),
//!   [`Granted`] (the stores one plugin may read) and the call itself:
//!   cache first, one round trip for the rest, metrics.
//!
//! A store that fails is never an "absent": the call fails as
//! [`LookupFailure::Unavailable`] and the engine retries the whole batch,
//! unless the store says `on_error = "miss"`.

pub mod cache;
pub mod config;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
pub mod file;
#[cfg(any(feature = "mongodb", feature = "dynamodb"))]
pub mod io;
#[cfg(feature = "mongodb")]
pub mod mongodb;
#[cfg(feature = "redis")]
pub mod redis;
pub mod slots;
pub mod store;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use config::{LookupConfig, OnError, StoreType};

use cache::StoreCache;
use store::{Store, StoreError};

/// Most keys one `get-many` takes.
pub const MAX_KEYS: usize = 10_000;

/// Why a lookup call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupFailure {
    /// The store is not granted to the plugin.
    #[error("no lookup store `{0}` is granted to this plugin")]
    NotGranted(String),
    /// The store cannot use the key.
    #[error("{0}")]
    InvalidKey(String),
    /// More keys than [`MAX_KEYS`].
    #[error("more than {MAX_KEYS} keys in one get-many")]
    TooManyKeys(u32),
    /// The store is down or too slow: the batch must be retried.
    #[error("lookup store `{store}` unavailable: {reason}")]
    Unavailable {
        /// The store's name.
        store: String,
        /// What its driver said.
        reason: String,
    },
}

/// Could not open a store at start.
#[derive(Debug, thiserror::Error)]
#[error("lookup store `{store}`: {reason}")]
pub struct OpenError {
    /// The store's name.
    pub store: String,
    /// Why.
    pub reason: String,
}

/// The counters of one store.
struct StoreMetrics {
    lookups: metrics::Counter,
    hits: metrics::Counter,
    misses: metrics::Counter,
    cache_hits: metrics::Counter,
    calls: metrics::Counter,
    errors: metrics::Counter,
    seconds: metrics::Histogram,
}

impl StoreMetrics {
    fn new(store: &str) -> StoreMetrics {
        use crate::metrics as m;
        let c =
            |metric: m::Metric| metrics::counter!(metric.name, m::label::STORE => store.to_owned());
        StoreMetrics {
            lookups: c(m::LOOKUP_KEYS),
            hits: c(m::LOOKUP_HITS),
            misses: c(m::LOOKUP_MISSES),
            cache_hits: c(m::LOOKUP_CACHE_HITS),
            calls: c(m::LOOKUP_STORE_CALLS),
            errors: c(m::LOOKUP_ERRORS),
            seconds: metrics::histogram!(
                m::LOOKUP_STORE_SECONDS.name,
                m::label::STORE => store.to_owned()
            ),
        }
    }
}

/// One opened store with its cache and bounds.
pub struct LookupStore {
    name: String,
    driver: Box<dyn Store>,
    cache: StoreCache,
    timeout: Duration,
    slots: slots::Slots,
    on_error: OnError,
    metrics: StoreMetrics,
}

impl LookupStore {
    /// Open `[lookups.NAME]`: a `file` store reads its table now; the
    /// others connect on their first lookup.
    pub fn open(name: &str, config: &LookupConfig, dir: &Path) -> Result<LookupStore, OpenError> {
        let err = |reason: String| OpenError {
            store: name.to_owned(),
            reason,
        };
        let missing = |key: &str| err(format!("no `{key}`"));
        // The config check names these first; here they only keep a
        // hand-built config from panicking.
        let need = |value: &Option<String>, key: &str| value.clone().ok_or_else(|| missing(key));
        #[cfg(not(all(feature = "redis", feature = "mongodb", feature = "dynamodb")))]
        let not_built = |what: &str| err(format!("this build of weir has no {what} support"));
        let driver: Box<dyn Store> = match config.kind {
            StoreType::File => {
                let path = config.path.as_ref().ok_or_else(|| missing("path"))?;
                let path = crate::paths::resolve(dir, path);
                let format = match config.format.or_else(|| config::Format::of_path(&path)) {
                    Some(config::Format::Jsonl) => file::FileFormat::Jsonl,
                    Some(config::Format::Csv) => file::FileFormat::Csv,
                    _ => return Err(missing("format")),
                };
                let key_field = need(&config.key_field, "key_field")?;
                Box::new(
                    file::FileStore::watch(name, &path, format, &key_field, file::POLL_INTERVAL)
                        .map_err(err)?,
                )
            }
            #[cfg(not(feature = "redis"))]
            StoreType::Redis => return Err(not_built("Redis")),
            #[cfg(feature = "redis")]
            StoreType::Redis => {
                let url = need(&config.url, "url")?;
                Box::new(
                    redis::RedisStore::new(
                        &url,
                        config.read.unwrap_or_default(),
                        config.key_template.clone(),
                    )
                    .map_err(err)?,
                )
            }
            #[cfg(not(feature = "mongodb"))]
            StoreType::Mongodb => return Err(not_built("MongoDB")),
            #[cfg(feature = "mongodb")]
            StoreType::Mongodb => {
                let lookup = mongodb::MongoLookup {
                    url: need(&config.url, "url")?,
                    database: need(&config.database, "database")?,
                    collection: need(&config.collection, "collection")?,
                    key_field: config.key_field.clone().unwrap_or_else(|| "_id".to_owned()),
                    key_type: config.key_type.unwrap_or_default(),
                    projection: config.projection.clone(),
                };
                Box::new(mongodb::MongoStore::new(name, &lookup).map_err(err)?)
            }
            #[cfg(not(feature = "dynamodb"))]
            StoreType::Dynamodb => return Err(not_built("DynamoDB")),
            #[cfg(feature = "dynamodb")]
            StoreType::Dynamodb => {
                use crate::dynamodb::attr;
                let lookup = dynamodb::DynamoLookup {
                    connection: crate::dynamodb::client::AwsConnection {
                        endpoint: config.endpoint.clone(),
                        region: config.region.clone(),
                        access_key_id: config.access_key_id.clone(),
                        secret_access_key: config.secret_access_key.clone(),
                    },
                    table: need(&config.table, "table")?,
                    key_field: need(&config.key_field, "key_field")?,
                    key_type: config.key_type.unwrap_or_default(),
                    projection: config.projection.clone(),
                    mapping: attr::JsonMapping {
                        format: match config.format {
                            Some(config::Format::Typed) => attr::JsonFormat::Typed,
                            _ => attr::JsonFormat::Natural,
                        },
                        inexact_numbers: match config.inexact_numbers.unwrap_or_default() {
                            config::InexactNumbers::String => attr::InexactNumbers::String,
                            config::InexactNumbers::Float => attr::InexactNumbers::Float,
                        },
                    },
                };
                Box::new(dynamodb::DynamoStore::new(name, &lookup).map_err(err)?)
            }
        };
        Ok(LookupStore::with_driver(name, driver, config))
    }

    /// A store over any driver (tests give their own).
    pub fn with_driver(name: &str, driver: Box<dyn Store>, config: &LookupConfig) -> LookupStore {
        let cache = if driver.cacheable() {
            StoreCache::new(&config.cache)
        } else {
            StoreCache::off()
        };
        LookupStore {
            name: name.to_owned(),
            driver,
            cache,
            timeout: Duration::from_millis(config.timeout_ms),
            slots: slots::Slots::new(
                usize::try_from(config.max_concurrent_calls).unwrap_or(usize::MAX),
            ),
            on_error: config.on_error,
            metrics: StoreMetrics::new(name),
        }
    }

    /// The values of `keys`: cached answers, then one round trip for the
    /// rest, bounded by the store's timeout and `remaining` (what is left
    /// of the plugin's deadline).
    pub fn get_many(
        &self,
        keys: &[Vec<u8>],
        remaining: Duration,
    ) -> Result<Vec<Option<Vec<u8>>>, LookupFailure> {
        if keys.len() > MAX_KEYS {
            return Err(LookupFailure::TooManyKeys(MAX_KEYS as u32));
        }
        self.metrics.lookups.increment(keys.len() as u64);
        let mut values: Vec<Option<Vec<u8>>> = Vec::with_capacity(keys.len());
        let mut wanted: Vec<usize> = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            match self.cache.get(key) {
                Some(answer) => values.push(answer.map(|v| v.to_vec())),
                None => {
                    values.push(None);
                    wanted.push(i);
                }
            }
        }
        self.metrics
            .cache_hits
            .increment((keys.len() - wanted.len()) as u64);
        if !wanted.is_empty() {
            let asked: Vec<&[u8]> = wanted.iter().map(|&i| keys[i].as_slice()).collect();
            self.metrics.calls.increment(1);
            let started = std::time::Instant::now();
            let budget = self.timeout.min(remaining);
            // A driver answering a different number of values than keys
            // asked would leave some keys "absent" that were never looked
            // up: treat it as a failed call, never as misses.
            let answer = match self.slots.acquire(budget) {
                None => Err(StoreError::Unavailable(format!(
                    "{} round trips (max_concurrent_calls) were in flight for all of the call's {} ms",
                    self.slots.max(),
                    budget.as_millis()
                ))),
                Some(_slot) => self
                    .driver
                    .get_many(&asked, budget.saturating_sub(started.elapsed()))
                    .and_then(|found| {
                        if found.len() == asked.len() {
                            Ok(found)
                        } else {
                            Err(StoreError::Unavailable(format!(
                                "answered {} values for {} keys",
                                found.len(),
                                asked.len()
                            )))
                        }
                    }),
            };
            self.metrics.seconds.record(started.elapsed());
            match answer {
                Ok(found) => {
                    for (&i, value) in wanted.iter().zip(found) {
                        self.cache.put(&keys[i], value.as_deref());
                        values[i] = value;
                    }
                }
                Err(StoreError::InvalidKey(why)) => return Err(LookupFailure::InvalidKey(why)),
                Err(StoreError::Unavailable(reason)) => {
                    self.metrics.errors.increment(1);
                    tracing::warn!(store = %self.name, %reason, "lookup store unavailable");
                    if self.on_error == OnError::Retry {
                        return Err(LookupFailure::Unavailable {
                            store: self.name.clone(),
                            reason,
                        });
                    }
                    // `on_error = "miss"`: the un-cached keys stay none.
                }
            }
        }
        let hits = values.iter().filter(|v| v.is_some()).count() as u64;
        self.metrics.hits.increment(hits);
        self.metrics.misses.increment(keys.len() as u64 - hits);
        Ok(values)
    }
}

/// Every store of a config, opened once per process.
#[derive(Default, Clone)]
pub struct Lookups {
    stores: BTreeMap<String, Arc<LookupStore>>,
}

impl Lookups {
    /// Open every `[lookups.NAME]`.
    pub fn open(
        configs: &BTreeMap<String, LookupConfig>,
        dir: &Path,
    ) -> Result<Lookups, OpenError> {
        let mut stores = BTreeMap::new();
        for (name, config) in configs {
            stores.insert(
                name.clone(),
                Arc::new(LookupStore::open(name, config, dir)?),
            );
        }
        Ok(Lookups { stores })
    }

    /// The stores `names` grants (names not opened are left out; the
    /// config check refuses them first).
    pub fn grant(&self, names: &[String]) -> Granted {
        Granted(Arc::new(
            names
                .iter()
                .filter_map(|n| Some((n.clone(), Arc::clone(self.stores.get(n)?))))
                .collect(),
        ))
    }
}

/// The stores one plugin may read.
#[derive(Clone, Default)]
pub struct Granted(Arc<BTreeMap<String, Arc<LookupStore>>>);

impl Granted {
    /// Whether no store is granted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A set of stores (tests build their own).
    pub fn of(stores: impl IntoIterator<Item = Arc<LookupStore>>) -> Granted {
        Granted(Arc::new(
            stores.into_iter().map(|s| (s.name.clone(), s)).collect(),
        ))
    }

    /// [`LookupStore::get_many`] on the store named `store`.
    pub fn get_many(
        &self,
        store: &str,
        keys: &[Vec<u8>],
        remaining: Duration,
    ) -> Result<Vec<Option<Vec<u8>>>, LookupFailure> {
        self.0
            .get(store)
            .ok_or_else(|| LookupFailure::NotGranted(store.to_owned()))?
            .get_many(keys, remaining)
    }
}

impl std::fmt::Debug for Granted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

/// Two grants are equal when they grant the very same stores (a reload
/// with the same config keeps its instances).
impl PartialEq for Granted {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(other.0.iter())
                .all(|((a, x), (b, y))| a == b && Arc::ptr_eq(x, y))
    }
}
impl Eq for Granted {}
