//! The batch loop behind [`crate::export!`]: decode the packed batch
//! without copying, call [`Transform::process`] per event, encode the
//! outcomes into a buffer sized from the previous batch, and hand that
//! buffer to the host as the return value (no copy, no regrowth). The
//! native test harness ([`crate::testing`]) runs exactly this code.

use weir_contract::{BatchReader, OutcomeWriter};

use crate::{Config, Event, Transform};

/// One plugin instance: the initialised transform and the size of the last
/// outcome buffer. The export glue keeps one per Wasm instance.
#[doc(hidden)]
pub struct Runtime<T> {
    plugin: Option<T>,
    last_len: usize,
}

impl<T> std::fmt::Debug for Runtime<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("initialised", &self.plugin.is_some())
            .finish_non_exhaustive()
    }
}

impl<T> Default for Runtime<T> {
    fn default() -> Self {
        Runtime {
            plugin: None,
            last_len: 0,
        }
    }
}

impl<T: Transform> Runtime<T> {
    /// Build the transform from its config; a second call replaces it.
    pub fn init(&mut self, config: &Config) -> Result<(), String> {
        self.plugin = Some(T::init(config)?);
        Ok(())
    }

    /// The initialised transform, if `init` succeeded.
    pub fn plugin(&self) -> Option<&T> {
        self.plugin.as_ref()
    }

    /// Process one encoded batch and return the encoded outcomes, one per
    /// event.
    ///
    /// Never panics on bad input: an event that cannot be decoded, and
    /// every event after it, gets a `fail` outcome naming the problem; a
    /// buffer that is not a batch at all gets an empty outcome list, which
    /// the host reports as malformed.
    pub fn process(&mut self, batch: &[u8]) -> Vec<u8> {
        // The returned buffer goes to the host, which frees it after
        // copying: allocate it once, at about the size the last batch
        // needed (or the input size at first), so it rarely regrows.
        let hint = self.last_len.max(batch.len() / 2);
        let mut writer = OutcomeWriter::with_capacity(hint + hint / 8 + 64);
        self.encode(batch, &mut writer);
        let out = writer.into_bytes();
        self.last_len = out.len();
        out
    }

    fn encode(&mut self, batch: &[u8], writer: &mut OutcomeWriter) {
        let Ok(reader) = BatchReader::new(batch) else {
            return;
        };
        let count = reader.remaining();
        let Some(plugin) = self.plugin.as_mut() else {
            for _ in 0..count {
                writer.fail("plugin was not initialised (init was not called)");
            }
            return;
        };
        if T::PREFETCH {
            let mut keys = crate::lookup::Prefetch::default();
            // A second, borrowing pass over the same bytes: decoding is
            // cheap next to a round trip per event.
            for raw in reader.clone().flatten() {
                plugin.prefetch(&Event::new(raw), &mut keys);
            }
            crate::lookup::begin_batch(keys);
        }
        for (written, event) in reader.enumerate() {
            match event {
                Ok(raw) => plugin.process(&Event::new(raw)).write_to(writer),
                Err(e) => {
                    let reason = format!("event could not be decoded: {e}");
                    for _ in written..count {
                        writer.fail(&reason);
                    }
                    break;
                }
            }
        }
        if T::PREFETCH {
            crate::lookup::end_batch();
        }
    }
}
