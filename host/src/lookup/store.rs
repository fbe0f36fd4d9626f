//! What every store driver implements: many keys in, one value (or none)
//! per key out, in one round trip.

use std::time::Duration;

/// Why a store could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store cannot use this key (not UTF-8 for a key template, ...).
    #[error("{0}")]
    InvalidKey(String),
    /// The store is down or did not answer in time: transient.
    #[error("{0}")]
    Unavailable(String),
}

/// A store driver. Calls come from plugin threads, synchronously: a driver
/// bounds each call by `timeout` itself.
pub trait Store: Send + Sync {
    /// The values of `keys`, in order, in one round trip.
    fn get_many(
        &self,
        keys: &[&[u8]],
        timeout: Duration,
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError>;

    /// Whether the store's answers are worth the in-host cache (not for a
    /// table held in memory already).
    fn cacheable(&self) -> bool {
        true
    }
}
