//! Paths from the config file resolved against the config's directory.
//!
//! Every setting that names a file (plugin paths, plugin directories, file
//! sinks, seed files) means "relative to the config file", so a config can be
//! moved together with its files; one function keeps that rule identical
//! everywhere.

use std::path::{Path, PathBuf};

/// `path` if absolute, else `dir/path`.
pub fn resolve(dir: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        dir.join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_join_the_config_dir_and_absolute_ones_stay() {
        let dir = Path::new("/etc/weir");
        assert_eq!(
            resolve(dir, Path::new("plugins/a.wasm")),
            PathBuf::from("/etc/weir/plugins/a.wasm")
        );
        assert_eq!(
            resolve(dir, Path::new("/opt/a.wasm")),
            PathBuf::from("/opt/a.wasm")
        );
        assert_eq!(
            resolve(Path::new("."), Path::new("out.jsonl")),
            PathBuf::from("./out.jsonl")
        );
    }
}
