//! The standard plugins shipped inside the binary: `path = "builtin:filter"`,
//! `"builtin:transform"`, `"builtin:router"`.
//!
//! They are the components of `plugins/filter`, `plugins/transform` and
//! `plugins/router`, built for wasm32-wasip2 by `host/build.rs` and
//! embedded as bytes. Everything past reading the bytes is the same as for
//! a file: the content hash names the version, the engine compiles it once
//! and keeps it in the compiled-plugin cache, the same sandbox and limits
//! apply. A builtin plugin has no file, so it is never watched; a reload
//! through the admin API without a path reports it unchanged, and one with
//! a path switches the plugin to that file (within the usual rules).

use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// What starts the path of a builtin plugin.
pub const SCHEME: &str = "builtin:";

/// One embedded plugin.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    /// The name after `builtin:`.
    pub name: &'static str,
    /// The component.
    pub bytes: &'static [u8],
}

/// Every embedded plugin, by name.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "filter",
        bytes: include_bytes!(concat!(env!("OUT_DIR"), "/filter.wasm")),
    },
    Builtin {
        name: "transform",
        bytes: include_bytes!(concat!(env!("OUT_DIR"), "/transform.wasm")),
    },
    Builtin {
        name: "router",
        bytes: include_bytes!(concat!(env!("OUT_DIR"), "/router.wasm")),
    },
];

/// A `builtin:` path naming no embedded plugin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no builtin plugin `{name}` (there are: {})", names().join(", "))]
pub struct UnknownBuiltin {
    /// What followed `builtin:`.
    pub name: String,
}

/// The names of the embedded plugins, each with its `builtin:` prefix.
pub fn names() -> Vec<String> {
    BUILTINS
        .iter()
        .map(|b| format!("{SCHEME}{}", b.name))
        .collect()
}

/// The name after `builtin:` if `path` is a builtin path.
pub fn builtin_name(path: &Path) -> Option<&str> {
    path.to_str()?.strip_prefix(SCHEME)
}

/// Whether `path` names a builtin plugin (known or not).
pub fn is_builtin(path: &Path) -> bool {
    builtin_name(path).is_some()
}

/// The embedded plugin `path` names: `None` when `path` is a file path,
/// an error when it is a `builtin:` path naming no embedded plugin.
pub fn lookup(path: &Path) -> Option<Result<&'static Builtin, UnknownBuiltin>> {
    let name = builtin_name(path)?;
    Some(
        BUILTINS
            .iter()
            .find(|b| b.name == name)
            .ok_or_else(|| UnknownBuiltin {
                name: name.to_owned(),
            }),
    )
}

/// A plugin path from the config resolved against the config's directory:
/// a `builtin:` path stays as it is.
pub fn resolve(dir: &Path, path: &Path) -> PathBuf {
    if is_builtin(path) {
        path.to_path_buf()
    } else {
        crate::paths::resolve(dir, path)
    }
}

/// The bytes of a plugin: the embedded component for a `builtin:` path,
/// else the file's content.
pub fn read(path: &Path) -> Result<Cow<'static, [u8]>, String> {
    match lookup(path) {
        Some(Ok(builtin)) => Ok(Cow::Borrowed(builtin.bytes)),
        Some(Err(unknown)) => Err(unknown.to_string()),
        None => std::fs::read(path)
            .map(Cow::Owned)
            .map_err(|e| e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_paths_name_embedded_components() {
        for name in ["filter", "transform", "router"] {
            let path = PathBuf::from(format!("builtin:{name}"));
            let bytes = read(&path).unwrap();
            // A component's preamble: `\0asm`, version 0x0d, layer 1.
            assert_eq!(&bytes[..8], b"\0asm\x0d\x00\x01\x00", "{name}");
            assert_eq!(resolve(Path::new("/etc/weir"), &path), path);
        }
        assert_eq!(
            read(Path::new("builtin:sorter")).unwrap_err(),
            "no builtin plugin `sorter` (there are: builtin:filter, builtin:transform, builtin:router)"
        );
        assert!(lookup(Path::new("plugins/filter.wasm")).is_none());
        assert_eq!(
            resolve(Path::new("/etc/weir"), Path::new("p/filter.wasm")),
            PathBuf::from("/etc/weir/p/filter.wasm")
        );
    }
}
