//! The generated bindings of every world the engine runs, and the `host`
//! import implemented once for both contract versions.
//!
//! - [`v1`]: `weir:transform@0.1.0`, world `transform` (packed).
//! - [`packed`]: `weir:transform@0.2.0`, world `transform` (packed).
//! - [`typed`]: `weir:transform@0.2.0`, world `typed`; shares the `host`
//!   interface generated for [`packed`], so one `Host` impl serves both.
//!
//! - [`lookup`]: `weir:transform@0.2.0`, world `transform-lookup`, generated
//!   only for its `lookup` import: the linker provides it to every 0.2.0
//!   component (packed or typed) that imports it; only its exports decide
//!   which of [`packed`] or [`typed`] calls it.
//!
//! The 0.2.0 worlds with `state` are not generated: the host does not
//! provide that import yet and refuses such components at load (see
//! `world`).

use std::sync::PoisonError;

use super::state::HostState;

/// `weir:transform@0.1.0`, world `transform`.
pub(crate) mod v1 {
    wasmtime::component::bindgen!({
        path: "../wit/0.1.0",
        world: "transform",
    });
}

/// `weir:transform@0.2.0`, world `transform`.
pub(crate) mod packed {
    wasmtime::component::bindgen!({
        path: "../wit/0.2.0",
        world: "transform",
    });
}

/// `weir:transform@0.2.0`, world `typed`.
pub(crate) mod typed {
    wasmtime::component::bindgen!({
        path: "../wit/0.2.0",
        world: "typed",
        with: {
            "weir:transform/host": super::packed::weir::transform::host,
        },
    });
}

/// `weir:transform@0.2.0`, world `transform-lookup`, for its `lookup`
/// import. Trappable: a store that is down aborts the call.
pub(crate) mod lookup {
    wasmtime::component::bindgen!({
        path: "../wit/0.2.0",
        world: "transform-lookup",
        imports: { default: trappable },
        with: {
            "weir:transform/host": super::packed::weir::transform::host,
        },
    });
}

use packed::weir::transform::host::Level;

impl v1::weir::transform::host::Host for HostState {
    fn log(&mut self, level: v1::weir::transform::host::Level, message: String) {
        use v1::weir::transform::host::Level as V1;
        let level = match level {
            V1::Trace => Level::Trace,
            V1::Debug => Level::Debug,
            V1::Info => Level::Info,
            V1::Warn => Level::Warn,
            V1::Error => Level::Error,
        };
        packed::weir::transform::host::Host::log(self, level, message);
    }
}

impl packed::weir::transform::host::Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write(level, &message);
    }
}

use crate::lookup::LookupFailure;
use lookup::weir::transform::lookup::LookupError;

impl HostState {
    /// A lookup of the running call: the store's answer, a refusal the
    /// plugin sees, or a trap when the store is unavailable (recorded, so
    /// the engine retries the batch instead of isolating poison events).
    fn lookup_many(
        &mut self,
        store: &str,
        keys: &[Vec<u8>],
    ) -> wasmtime::Result<Result<Vec<Option<Vec<u8>>>, LookupError>> {
        match self
            .lookups
            .get_many(store, keys, self.deadline.remaining())
        {
            Ok(values) => Ok(Ok(values)),
            Err(LookupFailure::NotGranted(name)) => Ok(Err(LookupError::NotGranted(name))),
            Err(LookupFailure::InvalidKey(why)) => Ok(Err(LookupError::InvalidKey(why))),
            Err(LookupFailure::TooManyKeys(max)) => Ok(Err(LookupError::TooManyKeys(max))),
            Err(outage @ LookupFailure::Unavailable { .. }) => {
                let message = outage.to_string();
                self.lookup_outage = Some(message.clone());
                Err(wasmtime::format_err!(message))
            }
        }
    }
}

impl lookup::weir::transform::lookup::Host for HostState {
    fn get(
        &mut self,
        store: String,
        key: Vec<u8>,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, LookupError>> {
        Ok(self
            .lookup_many(&store, std::slice::from_ref(&key))?
            .map(|mut values| values.pop().flatten()))
    }

    fn get_many(
        &mut self,
        store: String,
        keys: Vec<Vec<u8>>,
    ) -> wasmtime::Result<Result<Vec<Option<Vec<u8>>>, LookupError>> {
        self.lookup_many(&store, &keys)
    }
}
