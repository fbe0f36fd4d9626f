//! Shared helpers of the Weir integration tests.

/// Absolute paths of the plugins and fixtures built for wasm32-wasip2 by `build.rs`.
pub mod plugins {
    include!(concat!(env!("OUT_DIR"), "/plugins.rs"));
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_plugin_was_built_as_a_component_file() {
        for (name, path) in super::plugins::ALL {
            let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{name} at {path}: {e}"));
            // A component's preamble: magic, then version 0x0d with layer 1.
            assert_eq!(
                &bytes[..8],
                b"\0asm\x0d\0\x01\0",
                "{name} at {path} is not a component"
            );
        }
        assert_ne!(
            std::fs::read(super::plugins::STAMP_A).unwrap(),
            std::fs::read(super::plugins::STAMP_B).unwrap(),
            "the two hot-reload versions must differ"
        );
    }
}
