//! Shared helpers of the Weir integration tests.

/// Absolute paths of the plugins and fixtures built for wasm32-wasip2 by `build.rs`.
pub mod plugins {
    include!(concat!(env!("OUT_DIR"), "/plugins.rs"));
}
