//! The generated bindings of every world the engine runs, and the `host`
//! import implemented once for both contract versions.
//!
//! - [`v1`]: `weir:transform@0.1.0`, world `transform` (packed).
//! - [`packed`]: `weir:transform@0.2.0`, world `transform` (packed).
//! - [`typed`]: `weir:transform@0.2.0`, world `typed`; shares the `host`
//!   interface generated for [`packed`], so one `Host` impl serves both.
//!
//! The 0.2.0 worlds with `state` or `lookup` are not generated: the host
//! does not provide those imports yet and refuses such components at load
//! (see `world`).

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
